"""The two ways a function of the model is compiled with Numba.

* :func:`kernel`: called only from compiled code (a payment, a hook, a helper of a phase).
  It has no wrapper for Python or C callers.
* :func:`entry`: callable from Python too (a Mesa agent's decision, the Numba engine's run,
  a rule a test calls). Python calls compile it with Numba's wrapper for Python callers;
  compiled callers call a second dispatcher of the same function, a kernel, so the Numba
  engine never builds wrappers it does not use.

Both are cached on disk (:mod:`sim.engine_cache` says where and why that is safe).

Why not plain ``njit``: compiling the model from an empty cache is paid by every new user
and after every change to ``sim/``. Two things made it slow (45 s, then 22 s):

* A compiled caller passing a constant (a ledger kind, a contract form, ``0``) types it as
  a literal, and Numba compiles the callee once per literal value (``pay`` six times, one
  per kind). :class:`Dispatcher` types a compiled caller's arguments as plain values, so
  each function is compiled once per argument *types*. Nothing here relies on literal
  dispatch.
* Wrappers for Python callers on functions only compiled code calls (above).
"""

from __future__ import annotations

import types as pytypes

from numba.core import types
from numba.core.registry import CPUDispatcher

INLINE = "never"


class Dispatcher(CPUDispatcher):
    """Numba's CPU dispatcher; a compiled caller's literal arguments are typed as their plain types."""

    def get_call_template(self, args, kws):
        args = tuple(types.unliteral(a) for a in args)
        kws = {k: types.unliteral(v) for k, v in kws.items()}
        return super().get_call_template(args, kws)


class EntryDispatcher(Dispatcher):
    """A function Python calls (through Numba's wrapper); compiled callers call :attr:`compiled` instead."""

    compiled: Dispatcher

    @property
    def _numba_type_(self):  # the type of this object as a global of compiled code
        return types.Dispatcher(self.compiled)


def _dispatcher(cls, fn, **options):
    options = dict(nopython=True, no_cfunc_wrapper=True, **options)
    disp = cls(py_func=fn, locals={}, targetoptions=options)
    disp.enable_caching()
    return disp


def kernel(fn=None, **options):
    """Compile ``fn`` for compiled callers only (no wrapper for Python)."""
    if fn is None:
        return lambda f: kernel(f, **options)
    options.setdefault("inline", INLINE)
    return _dispatcher(Dispatcher, fn, no_cpython_wrapper=True, **options)


def entry(fn=None, **options):
    """Compile ``fn`` for Python callers and, separately, for compiled callers."""
    if fn is None:
        return lambda f: entry(f, **options)
    disp = _dispatcher(EntryDispatcher, fn, **options)
    # A copy of the function under another name: its own dispatcher and its own cache files
    # (Numba's cache index is named after the qualified name and does not tell wrappers apart).
    twin = pytypes.FunctionType(fn.__code__, fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__)
    twin.__qualname__ = f"{fn.__qualname__}.compiled"
    twin.__module__ = fn.__module__
    twin.__doc__ = fn.__doc__
    disp.compiled = kernel(twin, **options)
    return disp


def generated(fn):
    """Compile a function built from generated source (:mod:`sim.hooks`, :mod:`sim.loop`): not cached (no source
    file; its cached callers hold its code)."""
    options = dict(nopython=True, no_cfunc_wrapper=True, no_cpython_wrapper=True, inline="always")
    return Dispatcher(py_func=fn, locals={}, targetoptions=options)
