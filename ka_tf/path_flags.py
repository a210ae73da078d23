"""Path flags for the command-line tools: ``--model=~/m.keras`` means what it says.

The shell expands ``~`` only at the start of a word, so after ``--flag=`` a tool
receives the literal ``~``. Every flag that names a file or folder is defined with
:func:`define_path` (repeatable: :func:`define_multi_path`; a comma list:
:func:`define_path_list`), whose parser expands it once, so no tool expands by hand
and none forgets to. Importing this module does not import TensorFlow
(``ka_tf.config`` uses it).
"""

from __future__ import annotations

import os

from absl import flags

# The DEFINE_* calls in the define_* functions below run on behalf of a tool;
# disclaiming makes absl count their flags as the calling tool's own (its --help).
flags.disclaim_key_flags()


class _PathParser(flags.ArgumentParser):
    """Parses a path flag, expanding a leading ``~`` or ``~user``.

    The shell expands ``~`` only at the start of a word, so ``--model=~/m.keras``
    reaches the tool as the literal ``~/m.keras``; every path flag expands it here,
    once, instead of each tool doing it by hand (or not at all).
    """

    syntactic_help = "a path; a leading ~ is expanded"

    def parse(self, argument: str) -> str:
        return os.path.expanduser(argument) if argument else argument

    def flag_type(self) -> str:
        return "path"


def define_path(
    name: str, default: str | None, help: str, **kwargs
) -> flags.FlagHolder[str | None]:
    """Defines a string flag holding a file or folder path; ``~`` is expanded.

    Args:
        name: The flag's name (``--name``).
        default: Its default (not expanded: write defaults without ``~``).
        help: The ``--help`` text.
        **kwargs: Passed to ``absl.flags.DEFINE`` (e.g. ``flag_values``).
    """
    return flags.DEFINE(
        _PathParser(), name, default, help, serializer=flags.ArgumentSerializer(), **kwargs
    )


def define_multi_path(
    name: str, default: list[str] | None, help: str, **kwargs
) -> flags.FlagHolder[list[str]]:
    """Defines a repeatable path flag (``--name=a --name=b``); ``~`` is expanded in each."""
    return flags.DEFINE_multi(
        _PathParser(), flags.ArgumentSerializer(), name, default, help, **kwargs
    )


class _PathListParser(flags.ListParser):
    """Parses a comma-separated list of paths, expanding a leading ``~`` in each."""

    def __init__(self) -> None:
        super().__init__()
        self.syntactic_help = "a comma-separated list of paths; a leading ~ is expanded in each"

    def parse(self, argument: str | list[str]) -> list[str]:
        return [_PathParser().parse(path) for path in super().parse(argument)]


def define_path_list(
    name: str, default: list[str] | None, help: str, **kwargs
) -> flags.FlagHolder[list[str] | None]:
    """Defines a comma-separated list of paths (``--name=a,b``); ``~`` is expanded in each."""
    return flags.DEFINE(
        _PathListParser(), name, default, help, serializer=flags.CsvListSerializer(","), **kwargs
    )
