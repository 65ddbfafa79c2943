"""Open licences: a published price, paid at signing, taken without negotiation (sim/instruments/open_licence.py)."""

import numpy as np
import pytest

from sim.engines.numba import kernels
from sim.core import rules
from sim.instruments import open_licence as ol
from sim.engines.mesa.model import TransferModel

from ..conftest import small

ON = ("regime.name=open", "regime.instruments=[open_licence]", "engine=numba", "open_licence.share=0.5")


@pytest.mark.parametrize("u, hazard", [(0.0, 0.0), (0.0, 1.0), (0.5, 0.99), (0.999, 0.3)])
def test_a_negotiation_of_no_months_concludes_at_once_and_never_breaks_down(u, hazard):
    assert rules.negotiation_step(u, 0.0, hazard) == rules.CONCLUDED
    assert rules.negotiation_step(u, 1e-9, hazard) == (rules.BROKE_DOWN if u < hazard else rules.CONCLUDED)


@pytest.mark.parametrize("share, ask, price", [(0.0, 123456, 0), (0.1, 100000, 10000), (0.25, 3, 1), (1.0, 77, 77)])
def test_the_published_price_is_its_share_of_the_asking_price(share, ask, price):
    assert ol.open_price(share, ask) == price == rules.yuan(share * ask)


def test_each_open_licence_is_signed_the_month_it_is_found_at_its_published_price():
    cfg = small(*ON, "open_licence.price_share=0.1", "scenario.months=24")
    model = TransferModel(cfg, seed=5)
    arrays, paid, signed = model.arrays, 0, 0
    col = ol.OPEN_LICENCE_PAYMENTS
    for month in range(cfg.scenario.months):
        model.step()
        now = np.flatnonzero((arrays.c_form == ol.OPEN) & (arrays.c_opened == month)
                             & (arrays.project_state == rules.IMPLEMENTING))
        # opened this month and already implementing: no open licence waits
        assert (arrays.c_ends[now] == month + cfg.scenario.negotiation.implementation_months).all()
        prices = np.array([ol.open_price(0.1, arrays.ach_ask[a]) for a in arrays.c_ach[now]], dtype=np.int64)
        assert (arrays.c_at_sign[now] == prices).all()
        assert model.series[month, col] == prices.sum()
        paid, signed = paid + prices.sum(), signed + len(now)
    assert signed > 0 and paid == model.series[:, col].sum()


def test_when_every_negotiation_breaks_down_only_open_licences_are_signed():
    series = kernels.run(small(*ON, "scenario.negotiation.breakdown_hazard=1", "scenario.months=24"), 3)[0]
    from sim.core import columns

    assert series[:, columns.index("signed_licence")].sum() == 0
    assert series[:, columns.index("signed_open_licence")].sum() > 0


def test_free_open_licences_raise_contracts_over_the_same_seeds():
    from ..conftest import paired_effect

    base, on = small("engine=numba"), small(*ON)
    diff, p = paired_effect(on, base, "contracts", range(48))   # ~+10 contracts; 16 seeds gave p 0.03 on one draw
    assert diff > 0 and p < 0.01
