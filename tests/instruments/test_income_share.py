"""Income-share reform for inventors (sim/instruments/income_share.py).

* closed form: the inventors' involvement and the success chance by hand; in a run, the
  inventors get exactly the reformed share of every payment's net (base plus extra, the
  two roundings adding up);
* direction: the reform raises the success rate of implementations (paired seeds,
  Wilcoxon at 1%), more for early-stage achievements;
* invariants and validation: inventors paid beyond their share are refused; a share
  above 1 is refused in one line.
"""

import numpy as np
import pytest

from sim import api
from sim.engines.numba import kernels
from sim.core import ledger, rules
from sim.instruments import income_share as I
from sim.core.results import InvariantError
from sim.core.schema import ConfigError

from ..conftest import SMALL, paired_effect

SEEDS = range(1300, 1360)   # seeds no other suite uses


def test_involvement_and_the_chance_by_hand():
    assert I.involvement(0.2, 0.7) == pytest.approx(2 / 3)   # 0.2 of the 0.3 they could still gain
    assert I.involvement(0.0, 0.7) == 0.0 and I.involvement(0.3, 0.7) == pytest.approx(1.0)
    # 0.4 + (1 - 0.4) x 0.3 x 2/3 x (1 - 0.25) = 0.49
    assert I.involved_chance(0.4, 0.3, 2 / 3, 0.25) == pytest.approx(0.49)
    assert I.involved_chance(0.4, 0.3, 2 / 3, 1.0) == pytest.approx(0.4)   # a mature achievement needs no inventor


def test_inventors_get_exactly_the_reformed_share_of_each_payment():
    cfg = api.compose(*SMALL, "regime.name=mix", "regime.instruments=[income_share,broker_reward,free_trial]")
    base, extra = cfg.scenario.universities.inventor_share, cfg.income_share.extra_share
    n = 0
    for seed in SEEDS[:3]:
        series, _, _, arr = kernels.run(cfg, seed, audit_rows=100_000)
        audit = arr.audit[:arr.audit_n[0]]
        for i in np.nonzero(audit[:, 1] == I.INVENTOR_INCOME_REFORM)[0]:
            assert audit[i + 1, 1] == ledger.INVENTOR_INCOME   # the base share follows, from the same university
            assert audit[i, 2] == audit[i + 1, 2]
            # the university's net of this payment: what it was paid less its part of the broker's fee
            j = i - 1
            while not (audit[j, 3] == audit[i, 2] and audit[j, 2] < arr.acct_base[ledger.FIRM + 1]):
                j -= 1
            net = audit[j, 4] - audit[j:i][(audit[j:i, 1] == ledger.BROKER_FEES_UNIVERSITY), 4].sum()
            assert audit[i + 1, 4] == rules.inventor_payment(net, base)
            assert audit[i, 4] + audit[i + 1, 4] == rules.inventor_payment(net, base + extra)
            n += 1
    assert n > 0


def test_the_reform_raises_the_success_rate():
    rate = lambda s: s["successes"] / max(1.0, s["successes"] + s["failures"])   # noqa: E731
    control, treated = api.compose(*SMALL), api.compose(*SMALL, "regime=income_share")
    mean, p = paired_effect(treated, control, rate, SEEDS)
    assert mean > 0 and p < 0.01, (mean, p)
    # and by more where the inventors' work matters more: achievements less mature
    early = api.compose(*SMALL, "scenario.achievements.maturity_a=1", "scenario.achievements.maturity_b=9")
    early_treated = api.compose(*SMALL, "scenario.achievements.maturity_a=1", "scenario.achievements.maturity_b=9",
                                "regime=income_share")
    mean_early, _ = paired_effect(early_treated, early, rate, SEEDS)
    assert mean_early > mean


def test_inventors_paid_beyond_their_share_are_refused_and_a_share_above_one_too():
    cfg = api.compose(*SMALL, "regime=income_share")
    series = api.simulate(cfg, SEEDS[0], "numba").series
    I.check_series(series, cfg)
    bad = series.copy()
    month = int(np.nonzero(series[:, I.INVENTOR_INCOME_REFORM])[0][0])
    bad[month, I.INVENTOR_INCOME_REFORM] += series[month, I.columns.UNIVERSITY_INCOME]
    with pytest.raises(InvariantError, match="inventors paid"):
        I.check_series(bad, cfg)
    with pytest.raises(ConfigError, match=r"^income_share.extra_share = 0.5: .* \(allowed: <= 0.3\)$"):
        api.compose(*SMALL, "regime=income_share", "income_share.extra_share=0.5")
