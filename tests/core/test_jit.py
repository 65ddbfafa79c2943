"""How the model is compiled (sim/core/jit.py): each function once, entries callable from both sides.

The cold-compile time users pay depends on these properties; they are structural, so they
are tested as such (the time itself is measured by ``experiments/bench.py``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from numba import njit, typeof, types

from sim import api
from sim.core import jit, loop, rules
from sim.engines.numba import kernels
from sim.core.population import draw_population
from sim.core.results import new_series
from sim.core.state import make_params, new_state, struct_type

ROOT = Path(__file__).resolve().parents[2]


_COLD = """
import gc, json, os
from numba.core import event, types
from sim import api
from sim.core import jit
from sim.engines.numba import kernels
cfg = api.under_regime(api.compose("scenario.firms.n=60", "scenario.months=6"), "combined")
with event.install_recorder("numba:compile") as rec:
    series = kernels.simulate(cfg, 3)[0]
here = sorted({e.data["dispatcher"].py_func.__qualname__ for _, e in rec.buffer if e.is_start and e.data})
compiled = [o for o in gc.get_objects() if isinstance(o, jit.Dispatcher) and o.signatures]
print(json.dumps({"cores": len(os.sched_getaffinity(0)), "here": here, "series": series.tolist(),
                  "literals": {o.py_func.__qualname__: [[str(t) for t in sig if isinstance(t, types.Literal)]
                                                        for sig in o.signatures] for o in compiled}}))
"""


def _cold(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "TECHTRANSFER_CACHE_DIR")}
    env.update(TECHTRANSFER_CACHE_DIR=str(tmp_path), PYTHONPATH=str(ROOT))
    p = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-c", _COLD], env=env, cwd=ROOT,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_a_cold_compile_compiles_each_kernel_once_on_two_cores(tmp_path):
    cold = _cold(tmp_path)
    # A compiled caller's constants (a payment's kind, a contract form, 0 or 1) make no new
    # specialisations: the whole model is one compilation of each function (pay was compiled
    # six times, once per kind).
    literals = cold["literals"]
    assert {"run_months", "pay", "settle", "negotiate.compiled"} <= set(literals)  # kernels and entries' twins
    assert {name: sigs for name, sigs in literals.items() if any(sigs)} == {}
    assert {name: len(sigs) for name, sigs in literals.items() if len(sigs) > 1} == {"_to_struct": 2}  # Params, State
    # On two cores a helper process compiles some phases; this process loads them from the cache.
    here = set(cold["here"])
    if cold["cores"] >= 2:
        assert not here & set(kernels.HELPER_PHASES)
    assert set(loop.PHASES) - set(kernels.HELPER_PHASES) <= here
    # ... and the numbers are the model's (a warm process, this one, gives the same series).
    cfg = api.under_regime(api.compose("scenario.firms.n=60", "scenario.months=6"), "combined")
    assert cold["series"] == kernels.simulate(cfg, 3)[0].tolist()


def test_a_failed_helper_is_reported_and_changes_nothing():
    cfg = api.under_regime(api.compose("scenario.firms.n=60", "scenario.months=6"), "baseline")
    pop = draw_population(cfg, 0)
    arrays = new_state(cfg, pop, 0)
    signature = (struct_type(make_params(cfg, 0, pop.n_achievements)), struct_type(arrays),
                 typeof(new_series(6)), types.int64)
    helper = jit.compile_beside("sim.engines.numba.kernels", ["no_such_kernel"], signature)
    with pytest.warns(RuntimeWarning, match="no_such_kernel"):
        jit.join(helper)
    jit.join(None)  # a single core: nothing to wait for


def test_an_entry_gives_the_same_from_python_and_from_compiled_code():
    # Python calls the entry (with Numba's wrapper); compiled code calls its twin (without).
    @njit
    def from_compiled(willingness, reservation):  # literal 0.5: typed as a plain float on the way in
        return rules.licence_price(willingness, reservation, 0.5), rules.settles_as_abandoned(3, 2)

    assert isinstance(rules.licence_price, jit.EntryDispatcher)
    assert type(rules.licence_price.compiled) is jit.Dispatcher
    for w, r in [(1e6, 2e5), (3e5, 4e5), (12_345.0, 0.0)]:
        price, abandoned = from_compiled(w, r)
        assert price == rules.licence_price(w, r, 0.5)
        assert abandoned == rules.settles_as_abandoned(3, 2)
    assert rules.licence_price.compiled.signatures and not any(
        isinstance(t, types.Literal) for sig in rules.licence_price.compiled.signatures for t in sig)
