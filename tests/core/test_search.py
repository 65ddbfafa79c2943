"""Firms search the published lists (sim.core.contracts.search_lists): take-up grows with what is listed, at a cost."""

import numpy as np
import pytest

from sim.core import contracts, rules
from sim.engines.mesa.model import TransferModel

from ..conftest import small


@pytest.mark.parametrize("match, listed, chance", [(0.01, 70, 1 - 0.99 ** 70), (0.3, 1, 0.3), (0.5, 2, 0.75),
                                                   (0.0, 50, 0.0), (0.2, 0, 0.0), (1.0, 1, 1.0)])
def test_the_chance_to_find_grows_with_what_is_listed(match, listed, chance):
    assert rules.find_chance(match, listed) == pytest.approx(chance, abs=1e-15)


def test_the_lists_are_every_shelved_achievement_by_sector():
    model = TransferModel(small("scenario.months=6"), seed=4)
    for _ in range(3):
        model.step()
    contracts.publish(model.st)
    listed, offsets = model.arrays.listed, model.arrays.listed_offsets
    status, offsets_all = model.arrays.ach_status, model.arrays.ach_offsets
    shelved = np.flatnonzero(status == rules.SHELVED)
    assert (listed[:offsets[-1]] == shelved).all()
    for s in range(len(offsets) - 1):
        part = listed[offsets[s]:offsets[s + 1]]
        assert ((part >= offsets_all[s]) & (part < offsets_all[s + 1])).all()


def _first_month(*overrides):
    """The Mesa model of a large 1-month region, stepped to just before the firms' searches: (model, listed per
    sector, searching project slots)."""
    cfg = small("scenario.firms.n=20000", "scenario.months=1", "scenario.firms.need_rate_sme=0.5",
                "scenario.firms.need_rate_large=0.5", "scenario.firms.self_search_prob=1", *overrides)
    model = TransferModel(cfg, seed=9)
    model.open_month()
    model.raise_needs()
    contracts.publish(model.st)
    offsets = model.arrays.listed_offsets.copy()
    searching = np.flatnonzero(model.arrays.project_state == rules.NEED)   # project slots with an open need
    return model, np.diff(offsets), searching


@pytest.mark.parametrize("match", [0.004, 0.02])
def test_finds_follow_the_chance_of_each_firms_sector(match):
    model, per_sector, searching = _first_month(f"scenario.firms.list_match={match}")
    model.firms_search()
    arrays = model.arrays
    chance = rules.find_chance(match, per_sector[arrays.firm_sector[arrays.project_firm[searching]]].astype(float))
    mean, sd = chance.sum(), np.sqrt((chance * (1 - chance)).sum())
    finds = model.series[0, contracts.C.LIST_FINDS]
    assert model.series[0, contracts.C.LIST_SEARCHES] == len(searching)
    assert abs(finds - mean) < 4 * sd, (finds, mean, sd)


def test_every_search_costs_its_price_and_a_firm_that_cannot_pay_does_not_search():
    from sim.core import ledger

    model, _, searching = _first_month("scenario.firms.search_cost=1234")
    model.firms_search()
    assert model.series[0, ledger.SEARCH_COSTS] == 1234 * len(searching) > 0
    model, _, _ = _first_month("scenario.firms.search_cost=1e12")
    model.firms_search()
    assert model.series[0, contracts.C.LIST_SEARCHES] == 0 == model.series[0, ledger.SEARCH_COSTS]


def test_nothing_matches_nothing_is_found():
    model, _, searching = _first_month("scenario.firms.list_match=0")
    model.firms_search()
    assert model.series[0, contracts.C.LIST_SEARCHES] == len(searching) > 0
    assert model.series[0, contracts.C.LIST_FINDS] == 0 == model.series[0, contracts.C.MATCHES]


def test_what_a_search_finds_does_not_depend_on_how_long_the_run_is():
    """Brokers, experts and firms search the published lists (shelved achievements only), not the sector's whole index,
    which holds the achievements a longer run discloses later; and every draw about an achievement is keyed by its
    place among the disclosures: the first year's matches of a 2-year and an 8-year run are the same, seed by seed
    (before, screening the index found fewer shelved achievements the longer the run, and later the draws keyed by
    array positions made them differ in distribution only)."""
    from sim import api

    def first_year(months):
        cfg = small("engine=numba", f"scenario.months={months}", "regime=expert_visits")
        return np.array([api.simulate(cfg, seed).series[:12, contracts.C.MATCHES].sum() for seed in range(40)])

    short, long = first_year(24), first_year(96)
    assert short.sum() > 0 and np.array_equal(short, long)
