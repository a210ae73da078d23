"""Errors that mean "the user's input is wrong", as opposed to a bug in ka_tf.

Command-line tools catch :class:`UserInputError` (and its subclasses) and print
its message as one line on stderr with exit status 2, without a traceback. The
message must name the bad value, file or flag and say what was expected.
"""


class UserInputError(ValueError):
    """Bad input from the user: a flag, gin binding, file or folder."""


class ConfigError(UserInputError):
    """A gin file, gin binding, flag value or option is invalid."""


class DataError(UserInputError):
    """A dataset file or folder is missing, malformed or inconsistent."""


class ModelFileError(UserInputError):
    """A model or checkpoint file cannot be used for what was asked."""


class StorageError(UserInputError):
    """A file cannot be written: the disk is full, over quota, read-only or not ours."""


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. a non-finite loss); the last good checkpoint is kept."""
