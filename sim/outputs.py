"""Output files: written only as files the project creates, never half-written.

:func:`check_target` refuses (a one-line :class:`~sim.config.ConfigError`) a path that is
a symbolic link, a device, a FIFO, a socket or a folder: writing there would replace or
write through something that is not a result of this project (``--out /dev/null`` run as
root once replaced the device with a Parquet file). :func:`write_atomic` checks the
target, writes a temporary file in the same folder and renames it over the target, so a
reader sees the old file or the new one, never a part.

:func:`lock_folder` takes an exclusive lock (``fcntl.flock``) on ``<folder>/.lock``
for a job's life, so that two jobs never write into one folder at once.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import Callable, Optional

from .config import ConfigError

LOCK_NAME = ".lock"


def _file_mode() -> int:
    """The mode of a new file under this process's umask (0644 under the usual 022)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def check_target(path: Path, key: Optional[str] = None) -> None:
    """Refuse, in one line naming ``key`` (or the path), a target that is not absent or a regular file."""
    path = Path(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as e:
        raise ConfigError(f"{_name(path, key)}: cannot be inspected ({e.strerror or e})") from None
    if stat.S_ISREG(st.st_mode):
        return
    what = ("a symbolic link" if stat.S_ISLNK(st.st_mode) else "a folder" if stat.S_ISDIR(st.st_mode)
            else "a FIFO" if stat.S_ISFIFO(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode)
            else "a device")
    raise ConfigError(f"{_name(path, key)}: is {what}; results are written only as regular files the project "
                      "creates (give a new file name)")


def _name(path: Path, key: Optional[str]) -> str:
    return f"{key} = {str(path)!r}" if key else str(path)


def write_atomic(path: Path, write: Callable[[str], object], key: Optional[str] = None) -> None:
    """Write ``path`` through a temporary file in its folder and a rename: never half-written, readable as the
    umask says (``mkstemp`` creates its file 0600), and never over a link, device, FIFO or folder
    (:func:`check_target`)."""
    path = Path(path)
    check_target(path, key)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, _file_mode())
        check_target(path, key)  # again: something may have been put there while the file was written
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class FolderLock:
    """An exclusive lock on ``<folder>/.lock``, held until :meth:`release` (or the process ends)."""

    def __init__(self, folder: Path, fd: int, created: bool = False):
        self.folder, self.fd = Path(folder), fd
        self.created = created  # this process created the lock file

    def release(self, remove: bool = False) -> None:
        """Let the lock go; with ``remove``, delete the lock file first (while still holding it)."""
        import fcntl

        if self.fd < 0:
            return
        if remove:
            try:
                os.unlink(self.folder / LOCK_NAME)
            except OSError:
                pass
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = -1


def lock_folder(folder: Path, key: str) -> FolderLock:
    """Lock ``folder`` for this process, or refuse in one line (another job holds it, or it cannot be locked)."""
    import fcntl

    folder = Path(folder)
    lock = folder / LOCK_NAME
    check_target(lock, key + " lock file")
    created = not os.path.lexists(lock)
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), _file_mode())
    except OSError as e:
        raise ConfigError(f"{key} = {str(folder)!r}: cannot create its lock file {LOCK_NAME} "
                          f"({e.strerror or e})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ConfigError(f"{key} = {str(folder)!r}: another job is writing there (it holds {LOCK_NAME}); "
                          "wait for it to end or choose another folder") from None
    except OSError as e:
        os.close(fd)
        raise ConfigError(f"{key} = {str(folder)!r}: cannot lock it ({e.strerror or e})") from None
    return FolderLock(folder, fd, created)
