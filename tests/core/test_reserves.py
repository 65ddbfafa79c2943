"""Agents that hold reserves and withdraw (sim/core/reserves.py): the shared rules as closed forms at their boundaries,
then every declared kind (insurers, lenders, and any added later, by its being declared) in both engines.

Closed forms: a holder writes (lends) while ``active and worth >= min_reserves``, so reserves exactly at the floor
write and one yuan below do not; once withdrawn it never returns, whatever its reserves; its estimate is
``(prior x strength + events) / (strength + observed)``; ``<plural>_withdrawn`` is those in business at the end of
month 0 less those at the end.
"""

from __future__ import annotations

import numpy as np
import pytest

from sim import api
from sim.core import ledger, state
from sim.core.population import draw_population
from sim.core.reserves import HOLDERS, Holders, ReserveHolder, experience_rate, in_business
from sim.core.results import InvariantError, check_invariants
from sim.engines.mesa.model import TransferModel
from sim.engines.numba import kernels
from sim.instruments import BY_NAME

from ..conftest import SMALL

SEEDS = (7800, 7801)  # seeds no other suite uses
FLOOR = 3_000_000


# --------------------------------------------------------------------------- (1) the rules, closed forms
def test_reserves_exactly_at_the_floor_write_one_yuan_below_do_not():
    assert in_business(True, FLOOR, float(FLOOR))
    assert not in_business(True, FLOOR - 1, float(FLOOR))
    assert in_business(True, FLOOR + 1, float(FLOOR))
    # a floor between two yuan: the yuan above it writes, the one below does not
    assert not in_business(True, FLOOR, FLOOR + 0.5) and in_business(True, FLOOR + 1, FLOOR + 0.5)
    # no floor: even empty reserves write; below zero (a lender's equity after losses) does not
    assert in_business(True, 0, 0.0) and not in_business(True, -1, 0.0)


def test_once_withdrawn_it_never_returns_whatever_its_reserves():
    for worth in (FLOOR - 1, FLOOR, FLOOR + 1, 10 * FLOOR, 2 ** 62):
        assert not in_business(False, worth, float(FLOOR))
    assert not in_business(False, 0, 0.0)


@pytest.mark.parametrize("prior, strength, events, observed", [
    (0.25, 20.0, 0, 0),      # no experience: the prior itself
    (0.4, 20.0, 3, 5),
    (0.012, 20.0, 7, 1000),  # experience outweighs the prior
    (0.5, 1.0e6, 1, 1),      # a prior held firmly barely moves
    (0.6, 20.0, 40, 40),     # every one fell due
])
def test_the_estimate_is_the_prior_updated_by_experience(prior, strength, events, observed):
    assert experience_rate(prior, strength, events, observed) == (prior * strength + events) / (strength + observed)
    if observed == 0:
        assert experience_rate(prior, strength, 0, 0) == prior
    # more events among as many settled raise it; more settled without events lower it
    assert experience_rate(prior, strength, events + 1, observed + 1) > experience_rate(prior, strength, events,
                                                                                          observed + 1)
    assert experience_rate(prior, strength, events, observed + 1) < experience_rate(prior, strength, events, observed)


def test_the_instruments_name_the_shared_rules():
    from sim.instruments import insurance, ip_pledge

    assert insurance.insurer_writes is in_business and ip_pledge.lender_lends is in_business
    assert insurance.failure_estimate is experience_rate and ip_pledge.default_estimate is experience_rate


# --------------------------------------------------------------------------- (2) every declared kind, both engines
def test_insurers_and_lenders_are_declared_holders():
    assert [(h.kind, h.section) for h in HOLDERS][:2] == [("insurer", "insurance"), ("lender", "ip_pledge")]
    for h in HOLDERS:
        assert h.column >= 0, f"{h.kind}: its active column was never declared (Holders.active_column)"
        assert isinstance(h, Holders) and ledger.ACCOUNT_CLASSES[h.account].name == h.kind
        cls = BY_NAME[h.section].MESA_AGENTS[h.kind]
        assert issubclass(cls, ReserveHolder) and cls.holders is h


def _cfg(h: Holders, initial: int, floor: int):
    """Its instrument on at zero strength (nothing written, nothing lent: its reserves never move), starting with
    ``initial`` yuan each against a floor of ``floor``."""
    module = BY_NAME[h.section]
    return api.compose(*SMALL, f"regime={h.section}", *module.ZERO_STRENGTH, f"{h.section}.initial_reserves={initial}",
                       f"{h.section}.min_reserves={floor}")


def _runs(h: Holders, cfg, seed):
    """The run's series on both engines (identical, its invariants checked) and how many of ``h`` it has."""
    pop = draw_population(cfg, seed)
    mesa = TransferModel(cfg, seed, pop).run()
    numba, n_ach, money = kernels.simulate(cfg, seed, pop)
    assert np.array_equal(mesa, numba)
    check_invariants(numba, n_ach, money, cfg)
    return numba, int(state.AGENTS[h.kind](cfg, pop))


@pytest.mark.parametrize("h", HOLDERS, ids=lambda h: h.plural)
@pytest.mark.parametrize("seed", SEEDS)
def test_reserves_at_the_floor_stay_in_business_all_run_one_yuan_below_withdraw_in_month_0(h, seed):
    at, below = _cfg(h, FLOOR, FLOOR), _cfg(h, FLOOR - 1, FLOOR)
    s, n = _runs(h, at, seed)
    assert n > 0
    assert (s[:, h.column] == n).all()
    assert (s[:, ledger.ACCOUNT_CLASSES[h.account].column] == n * FLOOR).all()
    s, n = _runs(h, below, seed)
    assert (s[:, h.column] == 0).all()   # out at the first month end, and never back
    assert (s[:, ledger.ACCOUNT_CLASSES[h.account].column] == n * (FLOOR - 1)).all()   # their reserves stay
    summary = h.summarize(s[None])
    assert summary[f"{h.plural}_withdrawn"][0] == 0   # counted from the end of month 0: none were in business then


@pytest.mark.parametrize("h", HOLDERS, ids=lambda h: h.plural)
def test_a_holder_one_yuan_below_withdraws_that_month_and_never_returns(h):
    """Mesa: the first member's reserves set to the floor, then a yuan below it, then ten times it."""
    cfg = _cfg(h, 2 * FLOOR, FLOOR)
    m = TransferModel(cfg, SEEDS[0])
    agents = getattr(m, f"{h.kind}s")
    first = agents[0]
    account = m.arrays.acct_base[h.account]
    held = 0 if h.held is None else 1_000   # money it is owed counts at face value in its worth

    def set_worth(worth):
        if h.held is not None:
            getattr(m.arrays, h.held)[0] = held
        m.arrays.balance[account] = worth - held

    for month, worth, stays in ((0, 2 * FLOOR, True), (1, FLOOR, True), (2, FLOOR - 1, False),
                                (3, 10 * FLOOR, False), (4, 10 * FLOOR, False)):
        set_worth(worth)
        assert first.worth == worth and first.reserves == worth - held
        assert first.in_business == (bool(first.active) and worth >= FLOOR)
        m.step()
        assert bool(first.active) == stays, f"month {month}, worth {worth}"
        assert all(a.active for a in agents[1:])
        assert m.series[month, h.column] == len(agents) - (not stays)
    assert not first.in_business
    s = m.series[:5]
    assert h.summarize(s[None])[f"{h.plural}_withdrawn"][0] == 1
    h.check_series(s)
    s = s.copy()
    s[4, h.column] += 1   # it returns
    with pytest.raises(InvariantError, match=f"month 4: a withdrawn {h.kind} {h.does} again"):
        h.check_series(s)


@pytest.mark.parametrize("h", HOLDERS, ids=lambda h: h.plural)
def test_the_mesa_view_reads_its_experience(h):
    m = TransferModel(_cfg(h, FLOOR, FLOOR), SEEDS[0])
    agent = getattr(m, f"{h.kind}s")[0]
    getattr(m.arrays, h.events)[0], getattr(m.arrays, h.observed)[0] = 3, 5
    events = next(name for name in h.docs if name not in ("active", "observed"))
    assert getattr(agent, events) == 3 and agent.observed == 5
    k = h.params(m.cfg).prior_strength
    assert agent.experience(0.25) == (0.25 * k + 3) / (k + 5)
