"""The Numba engine computes the same model as the Mesa engine: the same series, month by month, exactly.

Both engines apply the same compiled operations (sim/core/contracts.py) to the same state in
the same canonical order; what differs is only which loop finds the acting agents. So
every column must agree to the last bit, for every regime and every combination of
instruments.
"""

import itertools

import numpy as np
import pytest

from sim import api
from sim.engines.numba import kernels
from sim.core.config import INSTRUMENT_NAMES
from sim.engines.mesa.model import TransferModel
from sim.core.population import draw_population
from sim.core.results import SERIES_NAMES, Series

from ..conftest import REGIMES, small

SEEDS = range(20)


def pair_covering(names, size):
    """Blocks of ``size`` names such that every pair of names is in some block (greedy, deterministic): every
    interaction of two instruments is run, in far fewer runs than all 2^n combinations."""
    uncovered = set(itertools.combinations(names, 2))
    blocks = []
    while uncovered:
        block = max(itertools.combinations(names, size),
                    key=lambda b: len(uncovered & set(itertools.combinations(b, 2))))
        blocks.append(list(block))
        uncovered -= set(itertools.combinations(block, 2))
    return blocks


# none, each alone, every pair together (in blocks of five), all at once
COMBINATIONS = ([[]] + [[n] for n in INSTRUMENT_NAMES] + pair_covering(INSTRUMENT_NAMES, min(5, len(INSTRUMENT_NAMES)))
                + [list(INSTRUMENT_NAMES)])


def _assert_same(mesa, numba, label):
    bad = [SERIES_NAMES[c] for c in range(mesa.shape[1]) if not np.array_equal(mesa[:, c], numba[:, c])]
    assert not bad, f"{label}: columns differ: {bad}"


def _assert_same_deals(mesa, numba, label):
    """The contracts recorded one by one (their values and forms, in the order signed) agree too."""
    n = int(numba.deal_n[0])
    assert int(mesa.deal_n[0]) == n, f"{label}: {mesa.deal_n[0]} contracts recorded, not {n}"
    for name in ("deal_value", "deal_form"):
        assert np.array_equal(getattr(mesa, name), getattr(numba, name)), f"{label}: {name} differs"


def _signed(series):
    from sim.core.results import FORM_COLUMNS

    return series[:, list(FORM_COLUMNS)].sum()


@pytest.mark.parametrize("scenario", ["default", "small"])
@pytest.mark.parametrize("regime", REGIMES)
def test_engines_give_the_same_series(scenario, regime):
    base = api.compose("progress=false") if scenario == "default" else small()
    cfg = api.under_regime(base, regime)
    signed = 0
    for seed in SEEDS if scenario == "small" else SEEDS[:3]:
        pop = draw_population(cfg, seed)
        model = TransferModel(cfg, seed, pop)
        mesa = model.run()
        numba, _, _, arrays = kernels.run(cfg, seed, pop)
        _assert_same(mesa, numba, f"{scenario}/{regime}/seed {seed}")
        _assert_same_deals(model.arrays, arrays, f"{scenario}/{regime}/seed {seed}")
        signed += _signed(mesa)
    assert signed > 0  # the runs did something to compare


@pytest.mark.parametrize("instruments", COMBINATIONS, ids=lambda c: "+".join(c) or "none")
def test_engines_agree_on_every_combination_of_instruments(instruments):
    cfg = small("regime.name=mix", f"regime.instruments=[{','.join(instruments)}]", "scenario.months=30")
    for seed in (3 + len(instruments),):  # one seed each, a different one per size
        pop = draw_population(cfg, seed)
        mesa = TransferModel(cfg, seed, pop).run()
        numba, _, _ = kernels.simulate(cfg, seed, pop)
        _assert_same(mesa, numba, f"{instruments}/seed {seed}")


def test_engines_agree_with_a_budget_and_insurer_exits():
    """The rarely taken branches: budget refusals, insurers withdrawing, claims beyond reserves."""
    cfg = api.under_regime(small("government.annual_budget=300000", "insurance.insurers=2",
                                 "insurance.initial_reserves=2e6", "insurance.min_reserves=1.5e6",
                                 "insurance.loading=0", "insurance.prior_failure=0.1", "insurance.claim_share=1",
                                 "broker_reward.rate=0.2"), "combined")
    denied = withdrawn = 0
    for seed in range(10):
        pop = draw_population(cfg, seed)
        mesa = TransferModel(cfg, seed, pop).run()
        numba, _, _ = kernels.simulate(cfg, seed, pop)
        _assert_same(mesa, numba, f"stress/seed {seed}")
        denied += mesa[:, Series.REWARDS_DENIED].sum()
        withdrawn += (mesa[:, Series.INSURERS_ACTIVE] < 2).sum()
    assert denied > 0 and withdrawn > 0


def test_engine_switch_in_api_and_tables():
    cfg = small("seeds=3", "engine=numba")
    a = api.compare(cfg, regimes=["baseline", "combined"])
    b = api.compare(small("seeds=3", "engine=mesa"), regimes=["baseline", "combined"])
    assert (a.summary["engine"] == "numba").all() and (b.summary["engine"] == "mesa").all()
    cols = [c for c in a.summary.columns if c != "engine"]
    assert a.summary[cols].equals(b.summary[cols])
