"""Crash-safe saving: a file is either the old version or the new one, never half of each.

`save_model_atomically` and `save_weights_atomically` write to a temporary
file in the destination's directory and `os.replace` it over the target
(atomic on POSIX and Windows within one file system), so a process killed
mid-save leaves the previous file intact. `DirectoryLock` keeps two
processes from writing checkpoints into one directory at the same time: the
second one fails at once with a clear `DirectoryLockedError` instead of
interleaving files.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import tempfile


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path beside `path`; on success it replaces `path` atomically."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path)) or "."
    os.makedirs(directory, exist_ok=True)
    base = os.path.basename(path)
    # keep the full suffix (".weights.h5", ".keras") so Keras picks the right format
    suffix = base[base.index("."):] if "." in base else ""
    fd, tmp = tempfile.mkstemp(suffix=suffix, dir=directory, prefix=".tmp-")
    os.close(fd)
    os.remove(tmp)  # Keras refuses to overwrite some formats without asking; let it create the file
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # what a plain open() would have given
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


class _DropLegacyH5Notice(logging.Filter):
    """Keras logs "You are saving your model as an HDF5 file ... legacy" on every .h5 save; ours are
    written on purpose (tools that read Keras 2 files), so the notice is noise on every training run."""

    def filter(self, record):
        return "as an HDF5 file" not in record.getMessage()


def save_model_atomically(model, path, **kwargs):
    """`model.save(path)` that never leaves a truncated file behind. Returns `path`."""
    notice = _DropLegacyH5Notice()
    absl_logger = logging.getLogger("absl")
    absl_logger.addFilter(notice)
    try:
        with atomic_path(path) as tmp:
            model.save(tmp, **kwargs)
    finally:
        absl_logger.removeFilter(notice)
    return os.fspath(path)


def save_weights_atomically(model, path, **kwargs):
    """`model.save_weights(path)` (a `.weights.h5` path), atomically. Returns `path`."""
    with atomic_path(path) as tmp:
        model.save_weights(tmp, **kwargs)
    return os.fspath(path)


def link_atomically(source, path):
    """`path` as a hard link to the file `source` (a copy where the file system has no hard links),
    atomically: for files that are never modified in place, such as checkpoints. Returns `path`."""
    import shutil

    with atomic_path(path) as tmp:
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)
    return os.fspath(path)


class DirectoryLockedError(RuntimeError):
    """Another live process holds the directory's lock."""


class DirectoryLock:
    """An exclusive, process-wide lock on a directory (a `.kerasnets.lock` file, flock'ed).

    The lock dies with its process (the kernel drops flocks), so a killed run
    never leaves a stale lock behind.

        with DirectoryLock("runs/exp1"):
            ...  # only this process writes checkpoints here
    """

    def __init__(self, directory):
        self.directory = os.fspath(directory)
        self.path = os.path.join(self.directory, ".kerasnets.lock")
        self._fd = None

    def acquire(self):
        import fcntl

        os.makedirs(self.directory, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno in (errno.EAGAIN, errno.EACCES):
                with open(self.path) as f:
                    owner = f.read().strip() or "another process"
                raise DirectoryLockedError(
                    f"{self.directory} is in use by {owner}: two runs writing checkpoints into one "
                    "directory would overwrite each other's files. Use another output directory or "
                    "wait for that run to finish."
                ) from None
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}".encode())
        self._fd = fd
        return self

    def release(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
