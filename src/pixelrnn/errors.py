"""Errors a user can cause, the helpers that turn the operating system's write failures into them, and one that
removes the empty folders a failed command made.

Anything raised as :class:`PixelRNNError` is a problem with the user's input or surroundings, never a bug. The
command line prints its message as one line and exits with status 2, without a traceback; library callers can
catch it like any other exception. The family::

    PixelRNNError
    ├── ConfigError        a bad value: an unknown model, preset or option, a number out of range
    ├── DataError          a data set that is missing, corrupt or of the wrong shape
    ├── CheckpointError    a checkpoint that is missing, corrupt, or of another model
    ├── ImageError         an image file that cannot be read, is too large to open, or does not fit the model
    ├── CorruptFileError   a file that is damaged: truncated, altered, of another format or version
    │   └── CodecError     ... a compressed file in particular
    └── OutputError        a file that cannot be written: disk full, read-only, no permission, a directory

This module imports nothing from the package, so that every module can raise these without an import circle.
"""

from __future__ import annotations

import errno
import os
import secrets
from contextlib import contextmanager, suppress
from pathlib import Path


class PixelRNNError(Exception):
    """A problem with the user's input; the message says what is wrong and how to fix it."""


class ConfigError(PixelRNNError):
    """An unknown model, preset, option or an invalid value."""


class DataError(PixelRNNError):
    """A data set is missing, corrupt or of the wrong shape."""


class CheckpointError(PixelRNNError):
    """A checkpoint is missing, corrupt, or belongs to another model."""


class UnverifiedWeights(UserWarning):
    """A checkpoint's weights were loaded without the check against their sha256 (``--no-verify``)."""


class ImageError(PixelRNNError):
    """An image file cannot be read, declares more pixels than PIL will open, or does not fit the model."""


class CorruptFileError(PixelRNNError):
    """A file is damaged: truncated, altered, or of another format or version than this pixelrnn reads."""


class CodecError(CorruptFileError):
    """A compressed file that cannot be decoded: corrupt, truncated, of another version, or of another model."""


class OutputError(PixelRNNError):
    """A file or folder cannot be written: the disk is full, read-only, not ours, or the path is a directory."""


# What to tell the user for the write failures they can fix; anything else falls back to the OS's own words.
_WRITE_ADVICE = {
    errno.ENOSPC: "the disk is full; free some space or write elsewhere",
    errno.EDQUOT: "the disk quota is exceeded; free some space or write elsewhere",
    errno.EFBIG: "the file is larger than this system allows (file size limit); write elsewhere",
    errno.EROFS: "the file system is read-only; write elsewhere",
    errno.EACCES: "permission denied; write somewhere you own",
    errno.EPERM: "operation not permitted; write somewhere you own",
    errno.EISDIR: "it is a directory; give a file name",
    errno.ENOTDIR: "a part of the path is a file, not a directory",
    errno.EEXIST: "a file of that name is in the way",
    errno.ENAMETOOLONG: "the name is too long",
}


def output_error(path: str | Path, error: OSError) -> OutputError:
    """One line for an OSError met while writing ``path``."""
    # An OSError raised by Python itself (shutil's, say) has no errno or strerror: its message is the cause.
    advice = _WRITE_ADVICE.get(error.errno, error.strerror or str(error) or type(error).__name__)
    return OutputError(f"cannot write {path}: {advice}")


@contextmanager
def writing(path: str | Path):
    """Run a block that writes ``path``; an OSError in it becomes an :class:`OutputError` with one clear line."""
    try:
        yield
    except OSError as e:
        raise output_error(path, e) from None


@contextmanager
def no_empty_folders_on_failure(folder: str | Path):
    """Run a block that may create the folder ``folder`` and its missing parents; if the block fails, remove those
    of them that it created and that are empty again, so that a failed command leaves no empty folder behind."""
    folder = Path(folder).absolute()
    missing = [p for p in (folder, *folder.parents) if not p.exists()]  # deepest first
    try:
        yield
    except BaseException:
        for path in missing:
            with suppress(OSError):  # not empty (something of value is in it), or not ours to remove
                path.rmdir()
        raise


def write_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to the file ``path`` so that it holds either its old content or all of ``data``.

    The bytes go to a temporary file beside ``path`` (created with the user's umask, like any file), are flushed to
    disk, and then renamed over ``path``. On any failure, an interrupt included, the temporary file is removed and
    ``path`` is untouched; an OSError becomes an :class:`OutputError`.
    """
    path = Path(path)
    with writing(path):
        if path.is_dir():
            raise IsADirectoryError(errno.EISDIR, "Is a directory", str(path))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            with suppress(OSError):
                tmp.unlink()
            raise
    return path
