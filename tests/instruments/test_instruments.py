"""What every instrument promises, checked for each registered one (a new instrument is tested by being registered).

* At zero strength (its ``ZERO_STRENGTH`` overrides) it is on yet changes nothing: every
  column it does not own equals the baseline run's exactly, and no money moves under its
  payment kinds.
* Off (not in the regime), its parameters change nothing, whatever they are set to.
* Its parameters are documented: each field of its ``Params`` has a meaning, and a
  source or the word "judgement".
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from sim.core import columns, ledger
from sim.engines.numba import kernels
from sim.instruments import INSTRUMENTS
from sim.core.population import draw_population
from sim.core.results import SERIES_NAMES
from sim.core.schema import ConfigError

from ..conftest import small

SEEDS = (201, 202)  # seeds no other suite uses
BY_NAME = {m.NAME: m for m in INSTRUMENTS}
# a parameter's doc names its source (a seed, a place of the seeds, a reported figure, a law) or says "judgement"
SOURCES = ("judgement", "seed", "domain.md", "reported", "calibrated", "law", "lishui", "tianjin", "zhenhai",
           "ningbo", "shanghai", "longquan", "jinyun", "beijing")


def _run(cfg, seed):
    series, _, _ = kernels.simulate(cfg, seed, draw_population(cfg, seed))
    return series


def _differing(a, b, skip=()):
    return [SERIES_NAMES[c] for c in range(a.shape[1]) if c not in skip and not np.array_equal(a[:, c], b[:, c])]


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_at_zero_strength_an_instrument_is_on_yet_the_run_is_the_baseline(name):
    module = BY_NAME[name]
    zero = getattr(module, "ZERO_STRENGTH", None)
    assert zero, f"{name} declares no ZERO_STRENGTH"
    on = small("regime.name=zero", f"regime.instruments=[{name}]", *zero)
    off = small("regime.name=baseline", "regime.instruments=[]", *zero)
    own = {c for c, col in enumerate(columns.COLUMNS) if col.owner == name}
    own_flows = [c for k in ledger.KINDS if k.owner == name for c in (k.column, k.sme_column) if c >= 0]
    for seed in SEEDS:
        a, b = _run(on, seed), _run(off, seed)
        assert not _differing(a, b, skip=own), f"{name} at zero strength, seed {seed}: {_differing(a, b, skip=own)}"
        moved = {SERIES_NAMES[c]: a[:, c].sum() for c in own_flows if a[:, c].any()}
        assert not moved, f"{name} at zero strength moved money: {moved}"


def test_a_module_without_zero_strength_is_refused_when_the_registry_loads():
    import types

    from sim import instruments

    module = types.ModuleType("sim.instruments.tax_deduction")
    module.NAME, module.Params = "tax_deduction", object
    with pytest.raises(ImportError, match=r"^sim.instruments.tax_deduction: an instrument module must define "
                                          r"ZERO_STRENGTH \("):
        instruments.check_module(module)
    module.ZERO_STRENGTH = ("tax.rate=0",)
    instruments.check_module(module)   # complete: accepted


def _perturbed(module, up=True):
    """Overrides moving every numeric parameter of ``module`` off its default, within its range (towards its upper
    bound, or its lower one when ``up`` is false)."""
    out = []
    for f in dataclasses.fields(module.Params):
        default, meta = f.default, f.metadata
        if isinstance(default, bool) or not isinstance(default, (int, float)):
            continue
        hi = meta.get("le", meta.get("lt"))
        lo = meta.get("ge", meta.get("gt"))
        if up:
            value = default + (hi - default) / 2 if hi is not None and hi < 1e6 else default * 2 + 1
        else:
            value = default / 2 if lo is None or default / 2 > lo or (default / 2 == lo and "ge" in meta) else default
        if isinstance(default, int):
            value = int(round(value))
        if value != default:
            out.append(f"{module.NAME}.{f.name}={value}")
    return out


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_an_instrument_off_changes_nothing_whatever_its_parameters(name):
    module = BY_NAME[name]
    baseline = small("regime.name=baseline", "regime.instruments=[]")
    try:
        changed = small("regime.name=baseline", "regime.instruments=[]", *_perturbed(module))
    except ConfigError:  # a rule between its parameters (checked even when off): move them the other way
        changed = small("regime.name=baseline", "regime.instruments=[]", *_perturbed(module, up=False))
    seed = SEEDS[0]
    # its stock columns may show its agents idle (an insurer's reserves): every other column is the baseline's
    idle = {c for c, col in enumerate(columns.COLUMNS) if col.owner == name and col.stock}
    assert not _differing(_run(baseline, seed), _run(changed, seed), skip=idle)


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_every_parameter_has_a_meaning_and_a_source_or_a_judgement(name):
    module = BY_NAME[name]
    for f in dataclasses.fields(module.Params):
        doc = f.metadata.get("doc", "")
        assert doc, f"{module.NAME}.{f.name} has no meaning"
        assert any(w in doc.lower() for w in SOURCES), \
            f"{module.NAME}.{f.name}: no source and no judgement in {doc!r}"
