"""Shared plumbing for the command-line tools (``ka_tf/commands``, ``tools/``).

Every tool is started with :func:`run`, which parses absl flags and turns the
two kinds of user mistakes — a bad flag and a :class:`~ka_tf.errors.UserInputError`
raised anywhere below ``main`` — into one line on stderr and exit status 2.
Importing this module imports TensorFlow with its C++ start-up lines held back
(:func:`import_tensorflow_quietly`).
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
from collections.abc import Callable, Sequence

from absl import app, flags

from ka_tf.errors import TrainingError, UserInputError

EXIT_USAGE = 2


def _tensorflow_logs_requested(argv: Sequence[str]) -> bool:
    """Whether ``--verbosity``/``-v`` asks for debug output (1 or more)."""
    for index, arg in enumerate(argv):
        name, _, value = arg.partition("=")
        if name not in ("--verbosity", "-v"):
            continue
        if not value and index + 1 < len(argv):
            value = argv[index + 1]
        try:
            return int(value) >= 1
        except ValueError:
            return False
    return False


def import_tensorflow_quietly(argv: Sequence[str] | None = None) -> None:
    """Imports TensorFlow with its C++ start-up lines held back, unless asked for.

    TF 2.21 logs "Could not find cuda drivers", "oneDNN custom operations are on" and
    "All log messages before absl::InitializeLog() ..." straight to file descriptor 2
    while it loads, whatever ``TF_CPP_MIN_LOG_LEVEL`` says (../shared/TOOLCHAIN.md).
    The import therefore runs with descriptor 2 pointed at a temporary file; what
    was written there is printed if the import fails, or always with
    ``--verbosity=1`` or more (then TensorFlow's C++ level is lowered to INFO too).
    Later C++ messages follow ``TF_CPP_MIN_LOG_LEVEL`` (default 3 here: none; a
    failure still reaches the user as a Python exception).
    """
    verbose = _tensorflow_logs_requested(sys.argv if argv is None else argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if verbose else "3")
    if "tensorflow" in sys.modules or verbose:
        import tensorflow

        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as held:
        os.dup2(held.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        except BaseException:
            os.dup2(saved, 2)
            held.seek(0)
            sys.stderr.write(held.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


# Every tool imports this module before anything imports TensorFlow.
import_tensorflow_quietly()

# TensorFlow's Python warnings about tf.function retracing fire on every new phase
# model (expected here) and bury the progress output.
logging.getLogger("tensorflow").setLevel(logging.ERROR)


def exit_now(code: int) -> None:
    """Flushes stdout/stderr and ends the process at once with ``code``.

    An error raised while a ``tf.data`` pipeline is being iterated leaves its
    background threads blocked, and a normal ``sys.exit`` then hangs in interpreter
    shutdown after the error line was printed: with the old generator loaders in about
    one run in three; with Python reads inside ``tf.data`` (``tf.py_function``, as the
    NYUv2 loader does) every time in the bad-input corpus. In a multi-worker run,
    TensorFlow's coordination-service shutdown also prints its own error lines after
    ours. Everything ka_tf writes is written atomically, so nothing is lost by
    skipping the shutdown.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


# gin appends "In call to configurable 'name' (<function name at 0x...>)" to errors
# raised inside configurables: noise to a user, already named by the message itself.
_GIN_CONTEXT = re.compile(r"\s*In call to configurable '[^']*' \(<[^>]*>\)")


def _error_line(message: object) -> str:
    """``error: <message>`` on one line, without gin's call-site suffix."""
    return "error: " + " ".join(_GIN_CONTEXT.sub("", str(message)).split())


def fail(message: str) -> None:
    """Prints ``error: <message>`` as one line on stderr and exits with status 2."""
    print(_error_line(message), file=sys.stderr)
    exit_now(EXIT_USAGE)


_HELP_FLAGS = ("--help", "-help", "--helpshort", "--helpfull", "--helpxml", "-h", "-?")


def _parse_flags_or_fail(argv: Sequence[str]) -> list[str]:
    try:
        return flags.FLAGS(list(argv))
    except flags.Error as error:
        fail(f"{error}. Run with --help to see the flags.")
    except SystemExit:
        # absl prints the help text and exits 1; asking for help is not an error.
        if any(arg.split("=")[0] in _HELP_FLAGS for arg in argv[1:]):
            sys.exit(0)
        raise
    return []  # unreachable; fail() exits


def _distributed_context() -> str | None:
    """The running distributed run's strategy/worker/phase, if any (see
    :func:`ka_tf.distribute.failure_context`); None before a strategy exists."""
    module = sys.modules.get("ka_tf.distribute")
    return module.failure_context() if module is not None else None


def run(main: Callable[[list[str]], int | None]) -> None:
    """Runs ``main`` like ``absl.app.run``, with one-line errors for bad input.

    Args:
        main: The tool's entry point; receives the non-flag arguments.
    """

    def guarded_main(argv: list[str]) -> int | None:
        if len(argv) > 1:
            fail(f"unexpected positional arguments {argv[1:]}; all inputs are --flags.")
        try:
            return main(argv)
        except UserInputError as error:
            fail(str(error))
        except TrainingError as error:
            context = _distributed_context()
            print(_error_line(f"{context}: {error}" if context else error), file=sys.stderr)
            exit_now(1)
        except Exception as error:
            # In a distributed run, every worker ends with one line naming the strategy,
            # the worker, the phase and the cause (the traceback at --verbosity=1): with
            # several workers, N tracebacks interleaved on a terminal hide what happened.
            if _distributed_context() is None:
                raise
            from ka_tf import distribute

            logging.getLogger("absl").debug("traceback:", exc_info=True)
            print(_error_line(distribute.failure_line(error)), file=sys.stderr)
            exit_now(1)
        return None

    _present_as_main(main)
    app.run(guarded_main, flags_parser=_parse_flags_or_fail)


def _present_as_main(main: Callable[..., object]) -> None:
    """Makes ``--help`` describe the command when its module is not ``__main__``.

    A console script (``ka-train``) or ``tools/train.py`` is a front that imports
    ``ka_tf.commands.train``; absl's ``--help`` prints the ``__main__`` module's
    docstring and the flags declared by the module named ``sys.argv[0]``, which would
    be the front's. The command module's docstring and key flags are lent to it.
    """
    module = sys.modules.get(getattr(main, "__module__", "") or "")
    front = sys.modules.get("__main__")
    if module is None or front is None or module is front:
        return
    if module.__doc__:
        front.__doc__ = module.__doc__
    for flag in flags.FLAGS.get_key_flags_for_module(module.__name__):
        flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)


def require_flag(name: str) -> str:
    """The value of ``--name``, or a one-line ConfigError if it was not given."""
    from ka_tf.errors import ConfigError

    value = getattr(flags.FLAGS, name)
    if not value:
        raise ConfigError(f"--{name} is required. Run with --help to see the flags.")
    return value
