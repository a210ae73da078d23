"""Shared plumbing for the command-line tools in ``tools/``.

Every tool is started with :func:`run`, which parses absl flags and turns the
two kinds of user mistakes — a bad flag and a :class:`~ka_tf.errors.UserInputError`
raised anywhere below ``main`` — into one line on stderr and exit status 2.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Sequence

# Quiet TensorFlow's C++ start-up chatter (CUDA probing, CPU feature notes) before
# any tool imports it. Users can still set the variable themselves.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import logging

from absl import app, flags

from ka_tf.errors import TrainingError, UserInputError

EXIT_USAGE = 2

# TensorFlow's Python warnings about tf.function retracing fire on every new phase
# model (expected here) and bury the progress output.
logging.getLogger("tensorflow").setLevel(logging.ERROR)


def exit_now(code: int) -> None:
    """Flushes stdout/stderr and ends the process at once with ``code``.

    An error raised while a ``tf.data`` pipeline is being iterated (a corrupt image
    found by a generator, say) leaves its background threads blocked; a normal
    ``sys.exit`` then hung in interpreter shutdown in about two runs out of three
    on this machine, after the error line was printed. Everything ka_tf writes is
    written atomically, so nothing is lost by skipping the shutdown.
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

    app.run(guarded_main, flags_parser=_parse_flags_or_fail)


def require_flag(name: str) -> str:
    """The value of ``--name``, or a one-line ConfigError if it was not given."""
    from ka_tf.errors import ConfigError

    value = getattr(flags.FLAGS, name)
    if not value:
        raise ConfigError(f"--{name} is required. Run with --help to see the flags.")
    return value
