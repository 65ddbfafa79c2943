"""Firms with several projects (``scenario.firms.projects_sme`` / ``projects_large``): the slots, where a need and a
visitor land, learning from several outcomes a month, and firms that adopt again and take several achievements."""

from __future__ import annotations

import numpy as np
import pytest

from sim import api
from sim.core import contracts, rules
from sim.engines.numba import kernels
from sim.engines.mesa.model import TransferModel
from sim.core.population import draw_population
from sim.core.rules import IDLE, IMPLEMENTING, NEED, NEGOTIATING_FIRM

from ..conftest import small

ONE_SLOT = ("scenario.firms.projects_sme=1", "scenario.firms.projects_large=1")


@pytest.mark.parametrize("sme, large", [(1, 1), (2, 5), (3, 1)])
def test_each_firm_has_the_slots_of_its_size(sme, large):
    pop = draw_population(small(f"scenario.firms.projects_sme={sme}", f"scenario.firms.projects_large={large}",
                                "scenario.firms.sme_share=0.5"), seed=4)
    slots = np.diff(pop.project_offsets)
    assert (slots == np.where(pop.firm_sme, sme, large)).all()
    assert (pop.project_firm == np.repeat(np.arange(pop.n_firms), slots)).all()
    assert pop.n_projects == slots.sum() == sme * pop.firm_sme.sum() + large * (~pop.firm_sme).sum()


# nobody matches anything: needs only pile up (no searches, no brokers, no lists), and never expire
STILL = ("scenario.firms.need_rate_sme=1", "scenario.firms.need_rate_large=1", "scenario.firms.self_search_prob=0",
         "scenario.brokers.initial=0", "scenario.brokers.entry_max=0", "scenario.firms.need_patience=1200",
         "scenario.months=7", "scenario.firms.projects_sme=2", "scenario.firms.projects_large=5")


def test_a_need_arises_in_a_free_slot_one_a_month_per_firm():
    """With a need certain every month, a firm with k slots holds min(m + 1, k) open needs after month m: one need a
    month per firm (the firm's need rate, not one per slot), landing in a free slot until none is left."""
    model = TransferModel(small(*STILL), seed=3)
    slots = np.diff(model.population.project_offsets)
    for m in range(model.cfg.scenario.months):
        model.step()
        open_needs = np.add.reduceat(model.arrays.project_state == NEED, model.population.project_offsets[:-1])
        assert (open_needs == np.minimum(m + 1, slots)).all()
        assert model.series[m, contracts.C.NEEDS_RAISED] == (slots > m).sum()


def test_needs_expire_slot_by_slot_and_an_expiring_slot_takes_no_new_need_that_month():
    cfg = small(*STILL[:-3], "scenario.months=5", "scenario.firms.need_patience=2",
                "scenario.firms.projects_sme=3", "scenario.firms.projects_large=3")
    model = TransferModel(cfg, seed=3)
    firms = model.population.n_firms
    # months 0, 1: a need each; month 2: the first expires (patience 2), the third slot takes a need;
    # month 3: the second expires, the first (idle since month 2) takes one; month 4: the third expires ...
    expected_open = [1, 2, 2, 2, 2]
    expected_expired = [0, 0, 1, 1, 1]
    for m in range(cfg.scenario.months):
        model.step()
        assert (model.arrays.project_state == NEED).sum() == expected_open[m] * firms
        assert model.series[m, contracts.C.NEEDS_EXPIRED] == expected_expired[m] * firms


def test_a_visitor_deals_with_the_open_need_else_the_first_idle_slot():
    model = TransferModel(small("scenario.firms.projects_sme=3", "scenario.firms.projects_large=3"), seed=1)
    st, arrays = model.st, model.arrays
    lo = int(model.population.project_offsets[7])
    for states, visited in [((IMPLEMENTING, IDLE, NEED), lo + 2), ((IMPLEMENTING, IDLE, IDLE), lo + 1),
                            ((NEGOTIATING_FIRM, IMPLEMENTING, IMPLEMENTING), -1), ((NEED, NEED, IDLE), lo)]:
        arrays.project_state[lo:lo + 3] = states
        assert contracts.visited_project(st, 7) == visited
        assert contracts.firm_project(st, 7, IDLE) == (lo + states.index(IDLE) if IDLE in states else -1)


def test_a_firm_learns_from_each_of_its_outcomes_and_its_peers_from_all_but_its_own():
    """Beta learning: own successes s and failures f this month add (s, f); the sector's others add peer_weight x
    (sector's successes - s, sector's failures - f)."""
    model = TransferModel(small("scenario.firms.peer_weight=0.25"), seed=2)
    arrays, st = model.arrays, model.st
    arrays.firm_month_successes[:] = 0.0
    arrays.firm_month_failures[:] = 0.0
    f = 5
    arrays.firm_month_successes[f], arrays.firm_month_failures[f] = 2.0, 1.0   # its three projects: two succeeded
    s = int(arrays.firm_sector[f])
    arrays.sector_successes[s], arrays.sector_failures[s] = 6.0, 4.0
    other = next(g for g in range(model.population.n_firms) if g != f and arrays.firm_sector[g] == s)
    alpha, beta = arrays.firm_alpha.copy(), arrays.firm_beta.copy()
    contracts.learn(model.p, st)
    assert arrays.firm_alpha[f] == pytest.approx(alpha[f] + 2 + 0.25 * (6 - 2), rel=1e-15)
    assert arrays.firm_beta[f] == pytest.approx(beta[f] + 1 + 0.25 * (4 - 1), rel=1e-15)
    assert arrays.firm_alpha[other] == pytest.approx(alpha[other] + 0.25 * 6, rel=1e-15)
    assert arrays.firm_beta[other] == pytest.approx(beta[other] + 0.25 * 4, rel=1e-15)
    assert rules.peer_outcomes(6.0, 4.0, 2.0, 1.0) == (4.0, 3.0)


def test_with_one_slot_a_firm_signs_at_most_once_a_term():
    """One project at a time and a 12-month implementation: in a year no firm signs twice (contracts = adopters)."""
    for seed in range(3):
        r = api.simulate(small(*ONE_SLOT, "scenario.months=12"), seed, engine="numba")
        assert r.summary["contracts"] == r.summary["adopters"] > 0


def test_firms_with_several_slots_adopt_again_and_sign_more():
    """Paired seeds: with 2 (SME) and 5 (large) slots, firms sign more contracts per adopting firm than with one
    slot, and more contracts in all."""
    from scipy import stats

    several, one = small("scenario.firms.projects_sme=2", "scenario.firms.projects_large=5"), small(*ONE_SLOT)
    runs = [(api.simulate(several, seed, engine="numba").summary, api.simulate(one, seed, engine="numba").summary)
            for seed in range(24)]   # the same firms (the slots draw nothing), the same chance events per seed
    for metric in ("contracts_per_adopter", "contracts"):
        d = np.array([a[metric] - b[metric] for a, b in runs])
        assert d.mean() > 0 and stats.wilcoxon(d, alternative="greater").pvalue < 0.01, (metric, d)
    assert all(a["contracts_per_adopter"] > 1.0 for a, _ in runs)


def test_a_firm_takes_several_listed_achievements_in_one_month():
    """Two open needs of one firm each search the lists: the firm can open two negotiations from them in one month
    (with one slot it never can)."""
    listing = ("scenario.firms.need_rate_sme=1", "scenario.firms.need_rate_large=1", "scenario.firms.self_search_prob=1",
               "scenario.firms.list_match=0.5", "scenario.brokers.initial=0", "scenario.brokers.entry_max=0",
               "scenario.universities.tto_capacity=1000", "scenario.months=3")

    def firms_opening_two_from_lists(*slots):
        cfg = small(*listing, *slots)
        pop = draw_population(cfg, 6)
        arrays = kernels.run(cfg, 6, pop)[3]
        opened = (arrays.project_state != IDLE) & (arrays.c_broker < 0)
        counts = np.zeros(pop.n_firms, dtype=np.int64)
        for month in range(cfg.scenario.months):
            now = opened & (arrays.c_opened == month)
            counts = np.maximum(counts, np.bincount(pop.project_firm[now], minlength=pop.n_firms))
        return int((counts >= 2).sum())

    assert firms_opening_two_from_lists("scenario.firms.projects_sme=2", "scenario.firms.projects_large=2") > 0
    assert firms_opening_two_from_lists(*ONE_SLOT) == 0
