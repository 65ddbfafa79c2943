"""Accounts a ministry would sign (sim/core/results.py summarize): present values, deals running at the horizon,
public cost with the income public universities forgo, who pays and who gains.

Closed forms and identities that a wrong summary breaks.
"""

from __future__ import annotations

import numpy as np
import pytest

from sim import api
from sim.engines.numba import kernels
from sim.core import ledger
from sim.core.columns import index as series_column
from sim.core.results import Series, discount_factors, new_series, summarize
from sim.core.rules import IMPLEMENTING

from ..conftest import BROAD_INSURANCE

SMALL = ("scenario.firms.n=400", "scenario.months=36", "progress=false")
ALL = ("regime.name=all", "regime.instruments=[free_trial,broker_reward,insurance,royalty]")


def _run(*overrides, seed=0):
    cfg = api.compose(*SMALL, *ALL, *overrides)
    series, n_ach, _, arrays = kernels.run(cfg, seed)
    return cfg, series, n_ach, arrays


def test_present_values_equal_the_nominal_ones_at_a_zero_rate():
    cfg, series, n_ach, _ = _run()
    out = summarize(series, n_ach, 0.0)
    pv = {k[:-3]: v for k, v in out.items() if k.endswith("_pv")}
    assert len(pv) > 30 and "gov_spend" in pv and "public_cost" in pv
    assert any(out[k] != 0 for k in pv)
    for k, v in pv.items():
        assert v == pytest.approx(out[k], rel=1e-12, abs=1e-6), k


def test_a_present_value_is_the_discounted_sum():
    # one reward of 1,000 yuan in month 24 and a stock of 500 at the horizon (month 35), at 8% a year
    s = new_series(36)
    s[24, Series.BROKER_REWARDS] = 1000.0
    s[35, Series.RUNNING_EXPECTED_VALUE] = 500.0
    out = summarize(s, 1, 0.08)
    assert out["gov_spend_pv"] == pytest.approx(1000.0 / 1.08 ** 2, rel=1e-12)
    assert out["broker_rewards_pv"] == pytest.approx(1000.0 / 1.08 ** 2, rel=1e-12)
    assert out["running_expected_value_pv"] == pytest.approx(500.0 * 1.08 ** (-35 / 12), rel=1e-12)
    assert out["gov_spend"] == 1000.0
    assert discount_factors(13, 0.08)[12] == pytest.approx(1 / 1.08, rel=1e-15)


@pytest.mark.parametrize("month, rate", [(0, 0.08), (1, 0.08), (24, 0.08), (35, 0.05), (24, 0.0)])
def test_a_conversion_is_discounted_from_its_month_as_a_payment_is(month, rate):
    # one conversion in `month`, 0.6 expected from the deals running at the horizon (month 35)
    s = new_series(36)
    s[month, Series.SUCCESSES] = 1.0
    s[35, Series.RUNNING_EXPECTED_SUCCESSES] = 0.6
    out = summarize(s, 1, rate)
    assert out["successes"] == 1.0                                   # realised conversions, as before
    assert out["successes_pv"] == pytest.approx((1 + rate) ** (-month / 12), rel=1e-12)
    assert out["successes_expected"] == pytest.approx(1.6, rel=1e-15)
    assert out["successes_expected_pv"] == pytest.approx((1 + rate) ** (-month / 12) + 0.6 * (1 + rate) ** (-35 / 12),
                                                         rel=1e-12)


def _summary(rows):
    """A hand-made summary.csv: every metric 0 but those given, per (regime, seed)."""
    import pandas as pd
    from sim.core.results import METRICS

    return pd.DataFrame([{**dict.fromkeys(METRICS, 0.0), **r} for r in rows])


def test_cost_per_extra_conversion_divides_by_expected_conversions_and_in_present_values_by_discounted_ones():
    from sim.analysis.stats import comparison_table

    rows = []
    for seed, (spend, spend_pv, conv, conv_pv) in enumerate([(3e5, 2e5, 3.0, 2.5), (5e5, 4e5, 1.0, 0.5)]):
        rows.append({"regime": "baseline", "seed": seed, "successes": 10.0, "successes_expected": 11.0,
                     "successes_expected_pv": 8.0})
        rows.append({"regime": "x", "seed": seed, "gov_spend": spend, "public_cost": spend - 1e5,
                     "gov_spend_pv": spend_pv, "public_cost_pv": spend_pv - 5e4, "successes": 10.0,
                     "successes_expected": 11.0 + conv, "successes_expected_pv": 8.0 + conv_pv})
    t = comparison_table(_summary(rows)).set_index(["regime", "metric"])["mean"]
    assert t[("x", "cost_per_extra_conversion")] == pytest.approx(4e5 / 2.0, rel=1e-12)   # no realised extra
    assert t[("x", "cost_per_extra_conversion_public")] == pytest.approx(3e5 / 2.0, rel=1e-12)
    assert t[("x", "cost_per_extra_conversion_pv")] == pytest.approx(3e5 / 1.5, rel=1e-12)
    assert t[("x", "cost_per_extra_conversion_public_pv")] == pytest.approx(2.5e5 / 1.5, rel=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_net_positions_are_each_partys_payments_and_add_up_to_zero(seed):
    cfg, series, n_ach, _ = _run(seed=seed)
    out = summarize(series, n_ach, cfg.scenario.discount_rate)
    for suffix in ("", "_pv"):
        nets = [out[f"net_{a.plural}{suffix}"] for a in ledger.ACCOUNT_CLASSES]
        assert sum(nets) == pytest.approx(0.0, abs=1e-6 * max(map(abs, nets)))  # money moves between parties only
        assert out[f"net_government{suffix}"] == pytest.approx(-out[f"gov_spend{suffix}"], rel=1e-12)
    assert out["net_firms"] == pytest.approx(out["firm_surplus"], rel=1e-12)
    assert out["gov_spend"] > 0 and out["net_insurers"] != 0


PUBLIC_BODIES = ("regime.name=mix", "regime.instruments=[appraisal,maturation,income_share,free_trial]")


def test_public_cost_counts_what_public_universities_keep():
    for share in (0.0, 1.0):
        cfg, series, n_ach, arrays = _run(f"scenario.universities.public_share={share}", *PUBLIC_BODIES)
        out = summarize(series, n_ach, 0.08)
        assert out["appraisal_rewards"] > 0 and out["maturation_grants"] > 0 and out["inventor_income_reform"] > 0
        if share == 0.0:
            assert out["public_university_retained"] == 0 and out["public_cost"] == out["gov_spend"]
        else:  # every university is public: all they keep, from firms and from government alike, is public money
            assert out["public_university_retained"] == out["net_universities"] > 0
            assert out["public_cost"] == out["gov_spend"] - out["net_universities"]


def test_every_payment_into_or_out_of_a_public_university_is_netted_alike_from_the_audit_log():
    cfg = api.compose(*SMALL, "scenario.universities.public_share=0.5", *PUBLIC_BODIES)
    series, n_ach, _, arr = kernels.run(cfg, 2, audit_rows=500_000)
    audit = arr.audit[:arr.audit_n[0]]
    assert arr.audit_n[0] < arr.audit.shape[0]
    lo, hi = arr.acct_base[ledger.UNIVERSITY], arr.acct_base[ledger.UNIVERSITY + 1]
    assert 0 < arr.univ_public.sum() < len(arr.univ_public)

    def public(acct):
        inside = (acct >= lo) & (acct < hi)
        return inside & arr.univ_public[np.where(inside, acct - lo, 0)]

    into, out_of = public(audit[:, 3]), public(audit[:, 2])
    out = summarize(series, n_ach)
    assert out["public_university_retained"] == audit[into, 4].sum() - audit[out_of, 4].sum()
    rewards = audit[:, 1] == series_column("appraisal_rewards")
    assert (rewards & into).any() and (rewards & ~into).any()   # rewards to public and to private universities
    assert out["public_cost"] == out["gov_spend"] - out["public_university_retained"]


def test_public_bodies_keep_what_a_hand_made_ledger_pays_them():
    from numba import njit

    from sim.core import state
    from sim.core.population import draw_population
    from sim.instruments import appraisal

    cfg = api.compose(*SMALL, "scenario.universities.public_share=0.5")
    arrays = state.new_state(cfg, draw_population(cfg, 0))
    public = np.nonzero(arrays.univ_public)[0][0]
    private = np.nonzero(~arrays.univ_public)[0][0]
    base = arrays.acct_base
    gov, firm = base[ledger.GOVERNMENT], base[ledger.FIRM]
    pub, priv, inventors = base[ledger.UNIVERSITY] + public, base[ledger.UNIVERSITY] + private, base[ledger.INVENTORS]
    payments = np.array([[gov, pub, 1000, appraisal.APPRAISAL_REWARDS],      # government rewards a public university
                         [firm, pub, 500, ledger.LICENCE_PAYMENTS],          # a firm pays it a price
                         [pub, inventors, 100, ledger.INVENTOR_INCOME],      # it pays its inventors
                         [gov, priv, 2000, appraisal.APPRAISAL_REWARDS],     # a private university: not public money
                         [firm, priv, 700, ledger.LICENCE_PAYMENTS]], dtype=np.int64)

    @njit
    def book(st, series, payments):
        for i in range(payments.shape[0]):
            ledger.pay(st, series, 0, payments[i, 0], payments[i, 1], payments[i, 2], payments[i, 3])

    series = new_series(1)
    book(state.to_struct(arrays), series, payments)
    out = summarize(series, 1)
    assert out["public_university_retained"] == 1000 + 500 - 100
    assert out["gov_spend"] == 3000
    assert out["public_cost"] == 3000 - 1400


def test_deals_running_at_the_horizon_are_valued_at_their_expected_value():
    cfg, series, n_ach, arr = _run()
    running = arr.project_state == IMPLEMENTING
    assert running.sum() > 5
    value = float((arr.c_chance[running] * arr.c_value[running]).sum())
    owed = float((arr.c_chance[running] * arr.c_on_success[running]).sum())
    n = int(arr.deal_n[0])
    out = summarize(series, n_ach, 0.0, (arr.deal_value[:n], arr.deal_form[:n]))
    assert out["running_expected_value"] == pytest.approx(value, rel=1e-12)
    assert out["running_expected_payments"] == pytest.approx(owed, rel=1e-12)
    chances = float(arr.c_chance[running].sum())
    assert out["running_expected_successes"] == pytest.approx(chances, rel=1e-12)
    assert out["successes_expected"] == pytest.approx(out["successes"] + chances, rel=1e-12)
    assert out["firm_surplus_valued"] == pytest.approx(out["firm_surplus"] + value - owed, rel=1e-12)
    assert out["university_income_valued"] == pytest.approx(out["university_income"] + owed, rel=1e-12)
    # only ratios without a denominator are NaN (here: no matured outcome, no loan, no royalty signed: its mean and
    # share of value in contracts of 10 M)
    assert np.isfinite(list(out.values())).sum() >= len(out) - 5


def test_a_comparison_at_equal_spend_caps_every_regime_at_the_named_regimes_yearly_spend():
    cfg = api.compose(*SMALL, *BROAD_INSURANCE, "engine=numba", "seeds=3", "at_spend=broker_reward")
    free = api.compare(cfg, regimes=["broker_reward", "insurance"])
    res = api.compare_at_spend(cfg, regimes=["baseline", "broker_reward", "insurance"])
    # measured from the comparison without a budget when given, the same budget
    assert api.compare_at_spend(cfg, regimes=["baseline"], spend_of=free).budget == res.budget
    years = cfg.scenario.months / 12
    spent = free.summary.groupby("regime")["gov_spend"].mean()
    assert res.budget == np.floor(spent["broker_reward"] / years)   # the named regime's mean yearly spend
    assert spent["insurance"] / years > 2 * res.budget       # insurance spends more when free
    for r in res.results:                                            # ... and is held to the budget here
        paid = sum(r.series[:, k.column] for k in ledger.KINDS if k.payer == ledger.GOVERNMENT)
        assert max(paid[m:m + 12].sum() for m in range(0, len(paid), 12)) <= res.budget
    insured = res.summary.groupby("regime")["gov_spend"].mean()["insurance"]
    assert insured <= res.budget * years < spent["insurance"]


def test_at_equal_spend_under_a_budget_of_ones_own_the_budget_is_what_the_regime_spends_within_it():
    budget = 150_000.0
    cfg = api.compose(*SMALL, *BROAD_INSURANCE, "engine=numba", "seeds=2", f"government.annual_budget={budget}")
    res = api.compare_at_spend(cfg, "insurance", regimes=["baseline"])
    assert 0 < res.budget <= budget
    assert res.config.government.annual_budget == res.budget


@pytest.mark.parametrize("overrides, message", [
    (("at_spend=atlantis",), "at_spend = 'atlantis': allowed regimes are"),
    (("at_spend=baseline",), "at_spend = baseline: that regime spends no public money"),
    (("at_spend=free_trial",), "at_spend = free_trial: that regime spends no public money"),
    (("at_spend=null",), "at_spend = null: name the regime"),
])
def test_at_spend_refuses_what_it_cannot_do(overrides, message):
    with pytest.raises(api.ConfigError, match=message):
        api.compare_at_spend(api.compose(*SMALL, "engine=numba", "seeds=2", *overrides), regimes=["baseline"])


def test_the_split_by_firm_size_is_each_payments_firm_from_the_audit_log():
    cfg = api.compose(*SMALL, *ALL, "scenario.firms.sme_share=0.6")
    series, n_ach, _, arr = kernels.run(cfg, 1, audit_rows=500_000)
    audit = arr.audit[:arr.audit_n[0]]
    assert arr.audit_n[0] < arr.audit.shape[0]
    lo, hi = arr.acct_base[ledger.FIRM], arr.acct_base[ledger.FIRM + 1]
    out = summarize(series, n_ach)
    checked = 0
    for k in ledger.KINDS:
        if k.sme_column < 0:
            continue
        rows = audit[audit[:, 1] == k.column]
        firm_acct = np.where((rows[:, 2] >= lo) & (rows[:, 2] < hi), rows[:, 2], rows[:, 3])
        sme = arr.firm_sme[firm_acct - lo]
        assert out[f"{k.name}_sme"] == rows[sme, 4].sum()
        assert out[f"{k.name}_sme"] + out[f"{k.name}_large"] == out[k.name]
        checked += rows[sme, 4].sum() > 0 and rows[~sme, 4].sum() > 0
    assert checked >= 4
    for name in ("matches", "contracts", "successes", "failures", "net_firms"):
        assert out[f"{name}_sme"] + out[f"{name}_large"] == pytest.approx(out[name], abs=1e-6)
    assert 0 < out["successes_sme"] < out["successes"]


def test_firms_below_start_and_time_to_first_conversion():
    cfg, series, n_ach, arr = _run(seed=3)
    out = summarize(series, n_ach)
    lo = arr.acct_base[ledger.FIRM]
    cash = arr.balance[lo:lo + len(arr.firm_cash_start)]
    assert out["firms_below_start"] == pytest.approx((cash < arr.firm_cash_start).mean(), rel=1e-12)
    assert 0 < out["firms_below_start"] < 1
    first = int(np.argmax(series[:, Series.SUCCESSES] > 0))
    assert out["months_to_first_conversion"] == first and series[:first, Series.SUCCESSES].sum() == 0


def test_conversions_by_year_add_up_to_the_runs_successes():
    from sim.analysis.stats import by_year, tails

    res = api.compare(api.compose(*SMALL, "engine=numba", "seeds=3"), regimes=["baseline", "combined"])
    years = by_year(res.series)
    assert list(years.index) == [1, 2, 3]
    means = res.summary.groupby("regime")["successes"].mean()
    for regime in ("baseline", "combined"):
        assert years[regime].sum() == pytest.approx(means[regime], rel=1e-12)
    t = res.table[res.table.metric == "successes"].set_index("regime")
    values = res.summary.set_index("regime").loc["combined", "successes"]
    assert t.loc["combined", "p95"] == pytest.approx(np.percentile(values, 95))
    assert tails(res.table).loc["successes", "combined"].count("/") == 2


@pytest.mark.parametrize("regime", ["baseline", "combined"])
def test_the_funnel_by_sector_is_the_same_in_both_engines_and_adds_up(regime):
    from sim.core.results import InvariantError, check_by_sector

    cfg = api.under_regime(api.compose(*SMALL), regime)
    for seed in (0, 1):
        mesa, numba = api.simulate(cfg, seed, "mesa"), api.simulate(cfg, seed, "numba")  # each checked: it adds up
        assert np.array_equal(mesa.by_sector, numba.by_sector)
        assert numba.by_sector.shape == (cfg.scenario.months, cfg.scenario.sectors, 4)
        assert (numba.by_sector.sum(axis=(0, 2)) > 0).sum() >= 3   # several sectors have deals
    broken = numba.by_sector.copy()
    broken[5, 0, 2] += 1   # a success in sector 0 the series does not have
    with pytest.raises(InvariantError, match="successes by sector"):
        check_by_sector(numba.series, broken)


# --------------------------------------------------------------------------- intervals that keep to their domain
def test_the_interval_of_a_level_is_the_percentile_bootstrap_of_its_mean():
    from sim.analysis.stats import mean_ci, mean_interval

    # resampled means of (0, 0, 0, 1): k/4 with k ~ Binomial(4, 1/4); P(k = 0) = 0.32, P(k <= 2) = 0.95, P(k <= 3) = 0.996
    assert mean_interval([0.0, 0.0, 0.0, 1.0]) == (0.25, 0.0, 0.75)
    assert mean_ci([0.0, 0.0, 0.0, 1.0])[1] < -0.5                      # the t interval leaves the domain
    # one large spend among 20 seeds: no resample draws it with chance 0.95^20 = 0.36, 3 at most with chance 0.984
    spend = [0.0] * 19 + [1e6]
    assert mean_interval(spend) == (5e4, 0.0, 1.5e5)
    assert mean_ci(spend)[1] < 0
    assert mean_interval([7.0]) == (7.0, 7.0, 7.0) and mean_interval([3.0, 3.0, 3.0]) == (3.0, 3.0, 3.0)
    assert mean_interval([np.nan, 2.0, np.inf, 2.0]) == (2.0, 2.0, 2.0)   # non-finite values left out


def test_the_comparison_tables_level_intervals_are_the_bootstrap_and_its_effects_the_t_interval():
    from sim.analysis.stats import comparison_table, mean_ci, mean_interval

    spend = [0.0, 0.0, 0.0, 4e5, 0.0, 1e5]
    rows = [{"regime": "baseline", "seed": k, "gov_spend": 0.0} for k in range(6)]
    rows += [{"regime": "x", "seed": k, "gov_spend": v} for k, v in enumerate(spend)]
    row = comparison_table(_summary(rows)).set_index(["regime", "metric"]).loc[("x", "gov_spend")]
    assert (row["mean"], row["ci_low"], row["ci_high"]) == pytest.approx(mean_interval(spend), rel=1e-12)
    assert row["ci_low"] >= 0
    assert (row["effect"], row["effect_low"], row["effect_high"]) == pytest.approx(mean_ci(spend), rel=1e-12)


from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=0.0, max_value=1e12), min_size=1, max_size=40))
def test_the_interval_of_a_non_negative_sample_never_goes_below_zero(x):
    from sim.analysis.stats import mean_interval

    m, lo, hi = mean_interval(x)
    assert 0.0 <= min(x) <= lo <= hi <= max(x)
    assert lo <= m * (1 + 1e-12) and m <= hi * (1 + 1e-12)
