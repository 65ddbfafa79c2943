"""Agent-based model of university-to-firm technology transfer under policy regimes.

Pipeline: config -> population -> monthly process (engine) -> results -> tables and plots.
See README.md and the docs (docs/index.md); the notebook-facing API is :mod:`sim.api`.
"""

from .core import engine_cache as _engine_cache

# Before any module of the package is imported: Numba's cache must point at the directory
# of this version of the source before the first njit(cache=True), so that a kernel
# compiled from other sources is never loaded (see sim/core/engine_cache.py).
ENGINE_CACHE_DIR = _engine_cache.configure()

__version__ = "0.2.0"
