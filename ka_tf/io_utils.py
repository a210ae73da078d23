"""File helpers that never leave a half-written file behind.

Writes go to a temporary file in the same directory, are flushed and fsynced,
then renamed over the target (``os.replace`` is atomic on POSIX), so a reader or
a restarted run sees either the old file or the complete new one.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from typing import Any

# The errors that mean "this storage cannot take the file", not "ka_tf has a bug".
_STORAGE_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM}
)


def storage_error(error: OSError, what: str, kept: str | None = None):
    """The one-line :class:`~ka_tf.errors.StorageError` for a failed write, or None.

    Args:
        error: The ``OSError`` the write raised.
        what: What could not be written, with its path (``"checkpoint runs/a/ckpt-3"``).
        kept: What is still intact and how to go on (``"ckpt-2 is intact; ..."``).

    Returns:
        The error to raise, or None if ``error`` is not a storage failure (a bug).
    """
    from ka_tf.errors import StorageError

    if error.errno not in _STORAGE_ERRNOS:
        return None
    message = (
        f"cannot write {what}: {error.strerror} (errno {errno.errorcode[error.errno]}); "
        f"free space on that disk or point the output flag at a writable directory with room."
    )
    return StorageError(f"{message} {kept}" if kept else message)


def atomic_write(path: str, write: Callable[[str], None]) -> None:
    """Calls ``write(tmp_path)`` and renames the result to ``path`` atomically.

    Args:
        path: Destination path; its directory is created if missing.
        write: Writes the complete content to the temporary path it is given.

    Raises:
        StorageError: if the disk is full or the directory cannot be written; ``path``
            keeps its previous content.
    """
    directory = os.path.dirname(os.path.abspath(path))
    tmp_path = None
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp_path = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=directory)
        os.close(fd)
        write(tmp_path)
        with open(tmp_path, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp_path, path)
    except BaseException as error:
        if tmp_path is not None and os.path.exists(tmp_path):
            os.remove(tmp_path)
        if isinstance(error, OSError):
            kept = "Its previous version is unchanged." if os.path.exists(path) else None
            translated = storage_error(error, path, kept)
            if translated is not None:
                raise translated from error
        raise


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Writes ``data`` to ``path`` atomically."""

    def write(tmp_path: str) -> None:
        with open(tmp_path, "wb") as handle:
            handle.write(data)

    atomic_write(path, write)


def atomic_write_text(path: str, text: str) -> None:
    """Writes UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str, payload: Any) -> None:
    """Writes ``payload`` as indented JSON to ``path`` atomically."""
    atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=False) + "\n")


def ensure_writable_dir(path: str, flag: str = "--model_dir") -> str:
    """Creates ``path`` if needed and proves it is writable with a probe file.

    Raises:
        UserInputError: if ``path`` is a file or cannot be written, naming ``flag``.
    """
    from ka_tf.errors import UserInputError

    if os.path.exists(path) and not os.path.isdir(path):
        raise UserInputError(f"{flag}={path} is a file, expected a directory.")
    try:
        os.makedirs(path, exist_ok=True)
        atomic_write_bytes(os.path.join(path, ".write_probe"), b"ok")
        os.remove(os.path.join(path, ".write_probe"))
    except OSError as error:
        raise UserInputError(
            f"{flag}={path} is not writable ({error.strerror}); choose a directory you "
            f"can write to and that has free space."
        ) from error
    return path


def atomic_save_keras(model, path: str, weights_only: bool = False) -> None:
    """Saves a Keras model (``.keras``) or its weights (``.weights.h5``) atomically.

    Keras picks the format from the file suffix, so the model is written under a
    temporary name with that suffix and then renamed to ``path``.
    """
    suffix = ".weights.h5" if weights_only else ".keras"

    def write(tmp_path: str) -> None:
        if weights_only:
            model.save_weights(tmp_path + suffix)
        else:
            model.save(tmp_path + suffix)
        os.replace(tmp_path + suffix, tmp_path)

    atomic_write(path, write)


def file_sha256(path: str) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def path_sha256(path: str) -> str:
    """sha256 of a file, or of every file of a folder (a SavedModel) in order, each
    named by its path inside the folder."""
    if not os.path.isdir(path):
        return file_sha256(path)
    digest = hashlib.sha256()
    for folder, dirs, files in sorted(os.walk(path)):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(folder, name)
            digest.update(os.path.relpath(full, path).encode())
            digest.update(file_sha256(full).encode())
    return digest.hexdigest()
