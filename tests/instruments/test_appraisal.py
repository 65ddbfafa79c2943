"""Appraisal of universities on conversions (sim/instruments/appraisal.py).

* closed form: the universities' start (reservation price, transfer office, the value of
  a conversion) by hand; every reward in the audit log is one conversion's, paid to the
  university whose achievement it is;
* direction: appraisal raises the trials universities offer when no pilot obliges them
  (paired seeds, Wilcoxon at 1%);
* invariants: a reward without a conversion is refused.
"""

import numpy as np
import pytest

from sim import api
from sim.engines.numba import kernels
from sim.core import ledger, rules, state
from sim.instruments import appraisal as A
from sim.core.population import draw_population
from sim.core.results import InvariantError

from ..conftest import SMALL, paired_effect

SEEDS = range(1200, 1260)   # seeds no other suite uses
NO_PILOT = ("scenario.universities.pilot_share=0",)   # universities offer trials only when worth it to them


def test_the_appraisal_changes_each_university_from_the_start_by_hand():
    cfg = api.compose(*SMALL, "regime=appraisal", "appraisal.reservation_cut=0.25", "appraisal.capacity_add=3",
                      "appraisal.reward=50000")
    arrays = state.new_state(cfg, draw_population(cfg, SEEDS[0]))
    u = cfg.scenario.universities
    assert np.allclose(arrays.univ_reservation, u.reservation_share * 0.75)
    assert (arrays.univ_capacity == u.tto_capacity + 3).all() and (arrays.univ_success_bonus == 50_000).all()
    off = state.new_state(api.compose(*SMALL, "appraisal.reservation_cut=0.25"), draw_population(cfg, SEEDS[0]))
    assert (off.univ_reservation == u.reservation_share).all() and (off.univ_success_bonus == 0).all()


def test_every_reward_is_one_conversion_of_the_universitys_own_achievement():
    # Tianjin's fixed fee: no firm finds a false failure report worth it, so every conversion is one the university
    # sees (a bargained price, large, tempts some: their conversions earn no reward, tested below)
    cfg = api.compose(*SMALL, "regime.name=mix", "regime.instruments=[appraisal,free_trial]", *NO_PILOT,
                      "free_trial.payment=fixed_fee")
    reward = rules.yuan(cfg.appraisal.reward)
    total = 0
    for seed in SEEDS[:4]:
        series, _, _, arr = kernels.run(cfg, seed, audit_rows=100_000)
        audit = arr.audit[:arr.audit_n[0]]
        rows = np.nonzero(audit[:, 1] == A.APPRAISAL_REWARDS)[0]
        assert (audit[rows, 4] == reward).all() and (audit[rows, 2] == arr.acct_base[ledger.GOVERNMENT]).all()
        # an achievement converts once: the rewards per university are its achievements in use (or whose use ended)
        converted = np.isin(arr.ach_status, (rules.IN_USE, rules.USE_ENDED))
        per_univ = np.bincount(arr.ach_owner[converted], minlength=cfg.scenario.universities.n)
        paid = np.bincount(audit[rows, 3] - arr.acct_base[ledger.UNIVERSITY], minlength=cfg.scenario.universities.n)
        assert np.array_equal(per_univ, paid)
        assert len(rows) * reward == series[:, A.APPRAISAL_REWARDS].sum()
        total += len(rows)
    assert total > 0


def test_appraisal_raises_the_trials_universities_offer():
    # with Tianjin's fixed fee the reward on conversion is what makes a trial worth a university's reservation; with a
    # bargained price some payment on success always is, once the match's chance is high enough, whatever the reward
    control = api.compose(*SMALL, "regime=free_trial", *NO_PILOT, "free_trial.payment=fixed_fee")
    treated = api.compose(*SMALL, "regime.name=mix", "regime.instruments=[free_trial,appraisal]", *NO_PILOT,
                          "free_trial.payment=fixed_fee")
    mean, p = paired_effect(treated, control, "trials_offered", SEEDS)
    assert mean > 0 and p < 0.01, (mean, p)


def test_a_reward_without_a_conversion_is_refused():
    cfg = api.compose(*SMALL, "regime=appraisal")
    series = api.simulate(cfg, SEEDS[0], "numba").series
    A.check_series(series, cfg)
    bad = series.copy()
    month = 0
    bad[month, A.APPRAISAL_REWARDS] += rules.yuan(cfg.appraisal.reward)
    with pytest.raises(InvariantError, match="appraisal rewards"):
        A.check_series(bad, cfg)


def test_a_conversion_reported_as_a_failure_earns_no_reward_and_the_budget_refuses_the_rest():
    # trials nobody checks (a false failure report is never found out) under an appraisal with a small budget
    cfg = api.compose(*SMALL, "regime.name=mix", "regime.instruments=[appraisal,free_trial]",
                      "scenario.universities.pilot_share=1", "free_trial.verification=0", "free_trial.success_fee=2e5",
                      "scenario.firms.absorptive_sme_a=8", "scenario.firms.absorptive_sme_b=1",
                      "government.annual_budget=150000")
    reward = rules.yuan(cfg.appraisal.reward)
    unreported = denied = 0
    for seed in SEEDS[:6]:
        s = api.simulate(cfg, seed, "numba").summary   # the appraisal's own invariant is checked too
        hidden = s["trials_misreported"] - s["trials_caught"]
        assert s["appraisal_rewards"] + s["appraisal_rewards_denied"] == reward * (s["successes"] - hidden)
        assert s["appraisal_rewards"] <= 150000 * cfg.scenario.months / 12
        unreported += hidden
        denied += s["appraisal_rewards_denied"]
    assert unreported > 0 and denied > 0   # both branches ran
