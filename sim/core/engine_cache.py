"""Where Numba keeps the compiled kernels: one cache directory per version of the ``sim`` source.

Why this exists. The kernels (:mod:`sim.engines.numba.kernels`) and the rules and random numbers they
call (:mod:`sim.core.rules`, :mod:`sim.core.rng`, constants of :mod:`sim.core.results`) are compiled with
``numba.njit(cache=True)``. Numba keys a cached function by its *own* file only (the
index stores that file's modification time and size): when a function it calls, from
another module, changes, Numba still loads the old machine code, in which the old callee
is inlined. Editing ``success_chance`` in ``sim/core/rules.py`` would change ``engine=mesa``
but leave ``engine=numba`` running the old model, in every new process, silently.

The fix: Numba's cache directory is ``<base>/numba-<hash>``, the hash of the contents of
every ``*.py`` file of the ``sim`` package. Any change to any of them names a new, empty
directory, so everything is compiled afresh (~9 s once on two cores); unchanged sources find the
previous compilation. ``<base>`` is, in this order:

1. ``$TECHTRANSFER_CACHE_DIR`` if set;
2. ``$NUMBA_CACHE_DIR`` if set (so a user's or a benchmark's choice of Numba's cache
   location is honoured; its per-version subdirectories go inside it);
3. ``$XDG_CACHE_HOME/techtransfer-sim``, or ``~/.cache/techtransfer-sim``;

and a per-user directory in the system's temporary directory if that one cannot be
written. The 8 most recently used ``numba-*`` directories of ``<base>`` are kept, older
ones are removed when a new one is made.

How. :func:`configure` sets ``os.environ["NUMBA_CACHE_DIR"]`` to that directory (and
reloads Numba's config if Numba is already imported). It must run before the first
``@njit(cache=True)`` decoration: Numba chooses a function's cache locator, and with it
the directory (``numba.core.caching.UserProvidedCacheLocator`` reads
``numba.core.config.CACHE_DIR``), when the decorator creates the dispatcher.
``sim/__init__.py`` calls it, and every module of the package is imported after that.
Processes started from this one (``api.run_batch``'s spawned workers, joblib or Slurm
jobs) inherit the variable and import ``sim`` again: a ``NUMBA_CACHE_DIR`` that already
names a ``numba-<hash>`` directory is read as its parent base, so they compute the same
directory rather than nesting a new one inside it.

A side effect: other code in the same process that uses ``njit(cache=True)`` also
caches under this directory (in its own subdirectory per source file).
"""

from __future__ import annotations

import getpass
import hashlib
import os
import re
import shutil
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Optional

ENV_BASE = "TECHTRANSFER_CACHE_DIR"
ENV_NUMBA = "NUMBA_CACHE_DIR"
KEEP = 8  # cache directories (source versions) kept per base
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # the sim package (this file is sim/core/engine_cache.py)
_NAME = re.compile(r"numba-[0-9a-f]{16}\Z")


def source_hash(package_dir: Path = PACKAGE_DIR) -> str:
    """16 hex digits of SHA-256 over the names and contents of the package's ``*.py`` files (sorted)."""
    h = hashlib.sha256()
    for path in sorted(package_dir.rglob("*.py")):
        data = path.read_bytes()
        name = path.relative_to(package_dir).as_posix().encode()
        h.update(b"%d:%s:%d:" % (len(name), name, len(data)))
        h.update(data)
    return h.hexdigest()[:16]


def default_base() -> Path:
    """The base directory the environment asks for (see the module's docstring), not yet checked."""
    explicit = os.environ.get(ENV_BASE)
    if explicit:
        return Path(explicit).expanduser()
    numba_dir = os.environ.get(ENV_NUMBA)
    if numba_dir:
        path = Path(numba_dir).expanduser()
        # set by configure() in a parent process: its parent is the base (no nesting)
        return path.parent if _NAME.match(path.name) else path
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "techtransfer-sim"


def _writable(path: Path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
        return True
    except OSError:
        return False


def _temp_base() -> Path:
    """A per-user directory in the temporary directory (a fresh private one if another user owns the name)."""
    uid = os.getuid() if hasattr(os, "getuid") else getpass.getuser()
    path = Path(tempfile.gettempdir()) / f"techtransfer-sim-{uid}"
    try:
        path.mkdir(mode=0o700, exist_ok=True)
        if hasattr(os, "getuid") and path.stat().st_uid != os.getuid():
            raise PermissionError(path)
    except OSError:
        path = Path(tempfile.mkdtemp(prefix="techtransfer-sim-"))
    return path


def cache_dir(base: Optional[Path] = None) -> Path:
    """The cache directory of this version of the source: ``<base>/numba-<source_hash()>``, created."""
    base = default_base() if base is None else Path(base)
    if not _writable(base):
        fallback = _temp_base()
        if os.environ.get(ENV_BASE):
            warnings.warn(f"{ENV_BASE}={base} cannot be written; Numba's cache goes to {fallback}",
                          stacklevel=2)
        base = fallback
    path = base / f"numba-{source_hash()}"
    fresh = not path.exists()
    path.mkdir(parents=True, exist_ok=True)
    try:
        os.utime(path)  # "recently used", for prune()
    except OSError:
        pass
    if fresh:
        prune(base, keep=KEEP, current=path)
    return path


def prune(base: Path, keep: int = KEEP, current: Optional[Path] = None) -> list[Path]:
    """Remove all but the ``keep`` most recently used ``numba-<hash>`` directories of ``base``."""
    try:
        dirs = [p for p in Path(base).iterdir() if _NAME.match(p.name) and p.is_dir() and p != current]
    except OSError:
        return []

    def used(p: Path) -> float:
        try:
            return p.stat().st_mtime
        except OSError:
            return 0.0

    dirs.sort(key=used, reverse=True)
    removed = dirs[max(0, keep - (current is not None)):]
    for p in removed:
        shutil.rmtree(p, ignore_errors=True)  # another process may be removing it too
    return removed


def configure() -> Path:
    """Point Numba's cache at this source version's directory (before any ``njit(cache=True)``); returns it."""
    path = cache_dir()
    os.environ[ENV_NUMBA] = str(path)
    if "numba" in sys.modules:  # imported before sim: its config was read already
        from numba.core import config

        config.reload_config()
    return path
