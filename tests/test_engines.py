"""The Numba engine computes the same model as the Mesa engine: the same series, month by month."""

import numpy as np
import pytest

from sim import api
from sim.model import TransferModel
from sim.population import draw_population
from sim.results import BALANCE_COLUMNS, Series
from sim import kernels

from .conftest import REGIMES, small

SEEDS = range(20)
# money columns: flows and balances in yuan (compared within 1e-9 relative); the rest are counts
MONEY = sorted({
    Series.LICENCE_PAYMENTS, Series.TRIAL_PAYMENTS, Series.UNIVERSITY_INCOME, Series.INVENTOR_INCOME,
    Series.FIRM_VALUE, Series.IMPLEMENTATION_COST, Series.BROKER_FEES, Series.BROKER_REWARDS,
    Series.BROKER_COSTS, Series.PREMIUMS, Series.PREMIUM_SUBSIDIES, Series.CLAIMS, Series.CLAIMS_UNPAID,
    Series.REWARDS_DENIED, Series.FIRM_SURPLUS, Series.INSURER_RESERVES, *BALANCE_COLUMNS,
})
COUNTS = [c for c in range(len(Series)) if c not in MONEY and c != Series.MEAN_BELIEF]


def _assert_same(mesa, numba, label):
    bad = [Series(c).name for c in COUNTS if not np.array_equal(mesa[:, c], numba[:, c])]
    assert not bad, f"{label}: counts differ in {bad}"
    np.testing.assert_allclose(numba[:, MONEY], mesa[:, MONEY], rtol=1e-9, atol=0, err_msg=label)
    np.testing.assert_allclose(numba[:, Series.MEAN_BELIEF], mesa[:, Series.MEAN_BELIEF], rtol=1e-12, atol=0,
                               err_msg=label)


@pytest.mark.parametrize("scenario", ["default", "small"])
@pytest.mark.parametrize("regime", REGIMES)
def test_engines_give_the_same_series(scenario, regime):
    base = api.compose("progress=false") if scenario == "default" else small()
    cfg = api.under_regime(base, regime)
    signed = 0
    for seed in SEEDS:
        pop = draw_population(cfg, seed)
        mesa = TransferModel(cfg, seed, pop).run()
        numba, _, _ = kernels.simulate(cfg, seed, pop)
        _assert_same(mesa, numba, f"{scenario}/{regime}/seed {seed}")
        signed += mesa[:, Series.SIGNED_LICENCE].sum() + mesa[:, Series.SIGNED_TRIAL].sum()
    assert signed > 0  # the runs did something to compare


def test_engines_agree_with_a_budget_and_insurer_exits():
    """The rarely taken branches: budget refusals, insurers withdrawing, claims beyond reserves."""
    cfg = api.under_regime(small("government.annual_budget=300000", "insurance.insurers=2",
                                 "insurance.initial_reserves=2e6", "insurance.min_reserves=1.5e6",
                                 "insurance.loading=0", "insurance.prior_failure=0.1", "broker.rate=0.2"), "combined")
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
    np.testing.assert_allclose(a.summary[["contracts", "successes", "gov_spend"]],
                               b.summary[["contracts", "successes", "gov_spend"]], rtol=1e-9)
    assert a.summary[cols].equals(b.summary[cols])
