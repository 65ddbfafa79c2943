"""Output files: written only as files the project creates, never half-written.

:func:`check_target` refuses (a one-line :class:`~sim.core.config.ConfigError`) a path that is
a symbolic link, a device, a FIFO, a socket or a folder: writing there would replace or
write through something that is not a result of this project (``--out /dev/null`` run as
root once replaced the device with a Parquet file). :func:`write_atomic` checks the
target, writes a temporary file in the same folder and renames it over the target, so a
reader sees the old file or the new one, never a part.

:func:`lock_folder` (and :func:`folder_lock`, its ``with`` form) takes an exclusive lock
(``fcntl.flock``) on ``<folder>/.lock`` (or another name) for a job's life, so that two jobs
never write into one folder at once: the second is refused in one line naming the holder's pid.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path
from typing import Callable, Optional

from ..core.config import ConfigError

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
    """An exclusive lock on ``<folder>/<name>``, held until :meth:`release` (or the process ends: the lock is the
    kernel's, so a killed holder leaves no stale lock to clear by hand)."""

    def __init__(self, folder: Path, fd: int, created: bool = False, name: str = LOCK_NAME):
        self.folder, self.fd, self.name = Path(folder), fd, name
        self.created = created  # this process created the lock file

    def release(self, remove: bool = False) -> None:
        """Let the lock go; with ``remove``, delete the lock file first (while still holding it)."""
        import fcntl

        if self.fd < 0:
            return
        if remove:
            try:
                os.unlink(self.folder / self.name)
            except OSError:
                pass
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = -1


def lock_folder(folder: Path, key: str, what: str = "job", name: str = LOCK_NAME) -> FolderLock:
    """Lock ``folder`` (through ``folder/name``) for this process, or refuse in one line naming ``key`` (the config
    key that chose the folder): another job holds it (its kind and pid said), or it cannot be locked.

    Every app locks the same file (``.lock``), so that no two jobs of any kinds (a main job, a calibration, an
    exploration) write one folder at once; the holder writes ``<pid> <what>`` into it for the second one's message.
    The lock file is never opened through a link (:func:`check_target`, ``O_NOFOLLOW``): what is written into it
    would overwrite a file elsewhere. A job that removes the lock file it made (:meth:`FolderLock.release`) may do
    so while another has it open: the lock is held only on the file the name stands for when it is taken (else
    taken again on the new one), so two jobs never both hold a folder."""
    import fcntl

    folder = Path(folder)
    lock = folder / name
    for _attempt in range(100):
        check_target(lock, key + " lock file")
        created = not os.path.lexists(lock)
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), _file_mode())
        except OSError as e:
            raise ConfigError(f"{key} = {str(folder)!r}: cannot create its lock file {name} "
                              f"({e.strerror or e})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = os.pread(fd, 64, 0).decode(errors="replace").split(maxsplit=1)
            except OSError:
                holder = []
            os.close(fd)
            pid, kind = (holder + ["?", what])[:2] if holder else ("?", what)
            raise ConfigError(f"{key} = {str(folder)!r}: another {one_kind(kind, what)} (pid {pid}) is writing in "
                              f"this folder (it holds {name}); wait for it to end, or choose another folder") from None
        except OSError as e:
            os.close(fd)
            raise ConfigError(f"{key} = {str(folder)!r}: cannot lock it ({e.strerror or e})") from None
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(lock, follow_symlinks=False))
        except OSError:  # removed since it was opened
            same = False
        if same:
            break
        fcntl.flock(fd, fcntl.LOCK_UN)  # the file was removed (and maybe made again) since it was opened: again
        os.close(fd)
    else:
        raise ConfigError(f"{key} = {str(folder)!r}: cannot lock it (its lock file {name} keeps being replaced)")
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {what}\n".encode(), 0)
    except OSError:
        pass  # what is written is for the message of a second job only; the lock holds without it
    return FolderLock(folder, fd, created, name)


def one_kind(text: str, default: str) -> str:
    """The kind of job a lock file names (a word or two of letters), else ``default`` (never a stranger's text)."""
    text = text.strip()
    return text if text and len(text) <= 20 and all(c.isalpha() or c == " " for c in text) else default


def only_lock_left(folder: Path, name: str = LOCK_NAME) -> bool:
    """Whether ``folder`` holds nothing but its lock file (a job refused before writing anything leaves no folder)."""
    try:
        return all(entry.name == name for entry in os.scandir(folder))
    except OSError:
        return False


@contextlib.contextmanager
def folder_lock(folder: Path, key: str, what: str = "job", name: str = LOCK_NAME):
    """:func:`lock_folder` for the life of a block (the folder made first); yields the lock file's path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lock = lock_folder(folder, key, what, name)
    try:
        yield folder / name
    finally:
        lock.release()
