"""An exclusive lock on a folder for the life of a job (``fcntl.flock``): two jobs writing one folder at once would
interleave their state files; the second is refused in one line instead."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from .config import ConfigError


@contextlib.contextmanager
def folder_lock(folder: Path, key: str, what: str, name: str = ".lock"):
    """Hold ``folder/name`` exclusively while the block runs; if another process holds it, a one-line
    :class:`ConfigError` naming ``key`` (the config key that chose the folder) and the holder's pid. The lock is
    the kernel's: a killed holder releases it (no stale lock to clear by hand)."""
    from .outputs import check_target

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    check_target(path, key + " lock file")   # never a link, device or FIFO: the pid is written into it
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            except OSError:
                holder = "?"
            raise ConfigError(f"{key} = {str(folder)!r}: another {what} (pid {holder}) is writing in this folder; "
                              "wait for it to end, or choose another folder") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield path
    finally:
        os.close(fd)  # releases the lock (if held)
