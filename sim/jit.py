"""The two ways a function of the model is compiled with Numba.

* :func:`entry`: callable from Python too (a Mesa agent's decision, the Numba engine's run,
  a rule a test calls).
* :func:`kernel`: called only from compiled code (a payment, a hook, a helper of a phase).
  It has no wrappers for Python or C callers: for functions of the whole state (a named
  tuple of ~100 arrays) those wrappers are most of the compile time.

Both are cached on disk (:mod:`sim.engine_cache` says where and why that is safe).
"""

from numba import njit

_OPTIONS = dict(cache=True, no_cfunc_wrapper=True)


def entry(fn=None, **options):
    """``njit`` for a function called from Python as well as from compiled code."""
    if fn is None:
        return lambda f: njit(**_OPTIONS, **options)(f)
    return njit(**_OPTIONS, **options)(fn)


INLINE = "never"


def kernel(fn=None, **options):
    """``njit`` for a function called only from compiled code (no Python wrapper)."""
    options.setdefault("inline", INLINE)
    if fn is None:
        return lambda f: njit(**_OPTIONS, no_cpython_wrapper=True, **options)(f)
    return njit(**_OPTIONS, no_cpython_wrapper=True, **options)(fn)
