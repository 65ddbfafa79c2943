"""The two ways a function of the model is compiled with Numba.

* :func:`kernel`: called only from compiled code (a payment, a hook, a helper of a phase).
  It has no wrapper for Python or C callers.
* :func:`entry`: callable from Python too (a Mesa agent's decision, the Numba engine's run,
  a rule a test calls). Python calls compile it with Numba's wrapper for Python callers;
  compiled callers call a second dispatcher of the same function, a kernel, so the Numba
  engine never builds wrappers it does not use.

Both are cached on disk (:mod:`sim.core.engine_cache` says where and why that is safe).

Why not plain ``njit``: compiling the model from an empty cache is paid by every new user
and after every change to ``sim/``. Three things made it slow (45 s, then 20 s, now ~9 s
on two cores):

* A compiled caller passing a constant (a ledger kind, a contract form, ``0``) types it as
  a literal, and Numba compiles the callee once per literal value (``pay`` six times, one
  per kind). :class:`Dispatcher` types a compiled caller's arguments as plain values, so
  each function is compiled once per argument *types*. Nothing here relies on literal
  dispatch.
* Wrappers for Python callers on functions only compiled code calls (above).
* Levels of calls: Numba links the code of every callee into its caller's module and
  optimises and emits it again there, so each level of calls costs the size of what lies
  below it. The generated chains of hooks and the month are inlined (:func:`generated`).

And one core idle: with an empty cache, the Numba engine starts a helper process that
compiles some phases of the month into the cache while this process compiles the others
(:func:`compile_beside`, :data:`sim.engines.numba.kernels.HELPER_PHASES`).
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import types as pytypes
import warnings
from pathlib import Path

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
    options = {"nopython": True, "no_cfunc_wrapper": True, **options}
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
    """Compile a function built from generated source (:mod:`sim.core.hooks`, :mod:`sim.core.loop`).

    Inlined into its callers in Numba's IR: a chain of hooks or the month is a few calls, and
    as a function of its own its whole call tree would be optimised and emitted once more
    (Numba links every callee's code into each caller's module). Not cached: it has no
    source file, and its cached callers hold its code.
    """
    options = {"nopython": True, "no_cfunc_wrapper": True, "no_cpython_wrapper": True, "inline": "always"}
    return Dispatcher(py_func=fn, locals={}, targetoptions=options)


# --------------------------------------------------------------------------- compiling on two cores
def cached(disp) -> bool:
    """Whether Numba's on-disk cache holds any compilation of ``disp`` (True when that cannot be told)."""
    index = getattr(getattr(getattr(disp, "_cache", None), "_cache_file", None), "_index_path", None)
    return index is None or os.path.exists(index)


_HELPER = """
import importlib, pickle, sys
module = importlib.import_module(sys.argv[1])
signature = pickle.loads(sys.stdin.buffer.read())
for name in sys.argv[2:]:
    getattr(module, name).compile(signature)
"""


def compile_beside(module: str, names, signature):
    """Start a process compiling the kernels ``module.<names>`` for ``signature`` into the on-disk cache.

    Used when the cache is empty: this process compiles other kernels meanwhile, then its
    callers load the helper's kernels from the cache (:func:`join`). Returns ``None`` (and
    this process compiles everything) on a single core. The helper imports the same ``sim``
    and finds the same cache directory (:mod:`sim.core.engine_cache`).
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if cores < 2:
        return None
    package_parent = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [package_parent, os.environ.get("PYTHONPATH")])))
    proc = subprocess.Popen([sys.executable, "-c", _HELPER, module, *names], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    proc.stdin.write(pickle.dumps(signature))
    proc.stdin.close()
    return proc


def join(proc) -> None:
    """Wait for a :func:`compile_beside` helper. If it failed, say so: this process compiles what is missing."""
    if proc is None:
        return
    err = proc.stderr.read().decode(errors="replace").strip()
    proc.stderr.close()
    if proc.wait() != 0:
        warnings.warn(f"the helper compiling kernels beside this process failed (they are compiled here instead): "
                      f"{err.splitlines()[-1] if err else proc.returncode}", RuntimeWarning, stacklevel=2)
