"""Robust conclusions (sim.analysis.robustness): the shares of replicates in which each conclusion holds, by hand, and the
main job's robustness tables on a posterior, recomputed through the API."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sim import api
from sim.analysis import robustness
from sim.core.config import replace

from ..conftest import SMALL, small
from ..runs.test_posterior import write_posterior

ROOT = Path(__file__).resolve().parents[2]
RISK, SEARCH = "scenario.firms.risk_aversion_sme", "scenario.firms.self_search_prob"

# per replicate (seed 0..3): extra conversions and extra government spend against baseline
EXTRA = {
    "free_trial": ([2, 1, -1, 3], [0, 0, 0, 0]),            # no public money: not ranked
    "vouchers": ([1, 2, 1, 0], [100, 100, 100, 100]),       # costs 100, 50, 100, inf
    "broker_reward": ([2, 1, 1, 1], [100, 100, 100, 100]),  # costs 50, 100, 100, 100
    "expert_visits": ([1, 1, 1, 1], [300, 300, 300, 300]),  # costs 300 each
}
BASE_CONVERSIONS, BASE_SPEND = np.array([10, 12, 9, 11]), np.array([5, 0, 7, 1])


def hand_summary() -> pd.DataFrame:
    rows = [{"regime": "baseline", "seed": s, "successes": BASE_CONVERSIONS[s], "gov_spend": BASE_SPEND[s]}
            for s in range(4)]
    for name, (conv, spend) in EXTRA.items():
        rows += [{"regime": name, "seed": s, "successes": BASE_CONVERSIONS[s] + conv[s],
                  "gov_spend": BASE_SPEND[s] + spend[s]} for s in range(4)]
    frame = pd.DataFrame(rows)
    # no deal running at the horizon: the expected conversions a cost divides by are the realised ones
    return frame.assign(successes_expected=frame["successes"].astype(float))


REGIMES = ["baseline", *EXTRA]


def test_spending_instruments_are_the_single_instruments_that_pay_public_money():
    assert robustness.spending(REGIMES + ["combined", "royalty", "vouchers+expert_visits"]) == [
        "vouchers", "broker_reward", "expert_visits"]


def test_shares_of_replicates_by_hand():
    rob = robustness.table(hand_summary(), REGIMES, agree=0.9).set_index("regime")
    assert rob.loc["free_trial", "share_positive"] == 0.75 and rob.loc["free_trial", "effect_share"] == 0.75
    assert not rob.loc["free_trial", "spending"] and np.isnan(rob.loc["free_trial", "share_cheapest"])
    # cheapest per replicate: broker_reward; vouchers; both (a tie); broker_reward (vouchers added none: inf)
    assert rob["share_cheapest"].dropna().to_dict() == {"vouchers": 0.5, "broker_reward": 0.75, "expert_visits": 0.0}
    # dearest: expert_visits in the first three, vouchers (inf) in the last
    assert rob["share_dearest"].dropna().to_dict() == {"vouchers": 0.25, "broker_reward": 0.0, "expert_visits": 0.75}
    # by mean cost: broker_reward 100 / 1.25 = 80 < vouchers 100 / 1 = 100 < expert_visits 300
    assert rob["rank"].dropna().to_dict() == {"broker_reward": 1, "vouchers": 2, "expert_visits": 3}
    assert (rob.loc[["vouchers", "broker_reward", "expert_visits"], "effect_share"] == [0.75, 1.0, 1.0]).all()


@pytest.mark.parametrize("agree, verdict", [(0.9, "FLIPS: holds in only 75%"), (0.75, "holds in 75%")])
def test_a_conclusion_holds_at_the_share_and_flips_below_it(agree, verdict):
    rob = robustness.table(hand_summary(), REGIMES, agree)
    lines = robustness.conclusions(rob, agree, "seeds")
    assert f"- free_trial raises conversions (mean +1.25): {verdict} of seeds" in lines
    assert f"- broker_reward is the cheapest spending instrument per extra conversion: {verdict} of seeds" in lines
    assert f"- expert_visits is the dearest spending instrument per extra conversion: {verdict} of seeds" in lines
    assert "- broker_reward raises conversions (mean +1.25): holds in 100% of seeds" in lines


def test_an_instrument_that_spends_nothing_and_adds_nothing_is_never_ranked():
    s = hand_summary()
    idle = s[s["regime"] == "baseline"].assign(regime="ip_pledge")   # the baseline's runs: no loan, no payout
    regimes = REGIMES + ["ip_pledge"]
    rob = robustness.table(pd.concat([s, idle], ignore_index=True), regimes, 0.9).set_index("regime")
    assert not rob.loc["ip_pledge", "spending"] and pd.isna(rob.loc["ip_pledge", "rank"])
    assert np.isnan(rob.loc["ip_pledge", "share_cheapest"]) and np.isnan(rob.loc["ip_pledge", "share_dearest"])
    # the others as without it
    assert rob["share_dearest"].drop("ip_pledge").dropna().to_dict() == {
        "vouchers": 0.25, "broker_reward": 0.0, "expert_visits": 0.75}
    assert robustness.unit_cost([0.0, 5.0, 6.0], [0.0, 0.0, 2.0])[1:].tolist() == [np.inf, 3.0]
    assert np.isnan(robustness.unit_cost(0.0, -1.0))


def test_costs_divide_by_expected_conversions_as_the_tables_cost_does():
    s = hand_summary()
    pick = (s["regime"] == "expert_visits")
    s.loc[pick, "successes_expected"] += 9.0    # deals running at the horizon: 10 expected extra, costs 30 each
    rob = robustness.table(s, REGIMES, 0.9).set_index("regime")
    assert rob.loc["expert_visits", "rank"] == 1 and rob.loc["expert_visits", "share_cheapest"] == 1.0
    assert rob.loc["expert_visits", "share_positive"] == 1.0 and rob.loc["expert_visits", "extra_conversions"] == 1.0


def test_moves_names_a_new_cheapest_and_a_sign_that_changes():
    summary = hand_summary()
    base = robustness.table(summary, REGIMES, 0.9)
    assert robustness.moves(base, base) == "no change"
    other = summary.copy()
    pick = (other["regime"] == "vouchers")
    other.loc[pick, "gov_spend"] = other.loc[pick, "gov_spend"] - 90   # vouchers now 10 a conversion: cheapest
    pick = (other["regime"] == "free_trial")
    other.loc[pick, "successes"] = BASE_CONVERSIONS - 1                  # free trials now lower conversions
    moved = robustness.moves(base, robustness.table(other, REGIMES, 0.9))
    # the free trial's sign held in only 75% of seeds before: its change is not reported as a move (noise) ...
    assert moved == "cheapest broker_reward -> vouchers"
    # ... where 75% is robust enough, it is
    moved = robustness.moves(robustness.table(summary, REGIMES, 0.75), robustness.table(other, REGIMES, 0.75))
    assert moved == "cheapest broker_reward -> vouchers; free_trial now lowers conversions"


def test_conclusions_are_taken_over_posterior_draws_not_seeds():
    # two seeds per draw: a draw's mean decides, so seeds of one draw that disagree count once, as their mean
    s = hand_summary()
    s["draw_block"] = s["seed"] // 2
    rob = robustness.table(s, REGIMES, 0.9).set_index("regime")
    assert rob.loc["free_trial", "replicates"] == 2
    assert rob.loc["free_trial", "share_positive"] == 1.0     # means 1.5 and 1.0


@pytest.fixture(scope="module")
def posterior_job(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("robust")
    post = write_posterior(tmp / "post", [{"weight": 0.5, RISK: 1.0}, {"weight": 0.5, RISK: 6.0}])
    args = [*SMALL, "engine=numba", f"posterior={post}", "posterior_draws=4", "seeds=1", "seed=3",
            "regimes=[baseline,vouchers,broker_reward,expert_visits]", f"robust_parameters=[{RISK},{SEARCH}]",
            "at_spend=null", "progress=false"]
    out = tmp / "out"
    proc = subprocess.run([sys.executable, "-m", "experiments.run", *args, f"hydra.run.dir={out}"], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return args, out, proc.stdout


def test_the_main_job_writes_the_shares_of_its_own_runs(posterior_job):
    args, out, stdout = posterior_job
    summary = pd.read_csv(out / "summary.csv")
    written = pd.read_csv(out / "robustness.csv")
    again = robustness.table(summary, ["baseline", "vouchers", "broker_reward", "expert_visits"], 0.9)
    pd.testing.assert_frame_equal(written, again.astype({"rank": float}), check_dtype=False)
    assert "## Robust conclusions" in stdout and (out / "table.md").read_text().count("of posterior draws") >= 3


def test_ranges_re_run_the_comparison_and_fitted_keys_split_the_draws(posterior_job):
    args, out, _ = posterior_job
    over = pd.read_csv(out / "robustness_parameters.csv")
    regimes = ["baseline", "vouchers", "broker_reward", "expert_visits"]
    # the fitted key: draws split at its median (two particles: 1.0 and 6.0), no new run
    fitted = over[over["parameter"] == RISK]
    assert fitted["replicates"].sum() == 4 and len(fitted) <= 2
    # the other: re-run at the ends of its range in the space (judgement: 0.01 and 0.15), the same draws and seeds
    cfg = api.compose(*[a for a in args if not a.startswith("robust_parameters")])
    rows = over[over["parameter"] == SEARCH]
    assert list(rows["value"]) == ["0.01 (re-run)", "0.15 (re-run)"]
    for value, row in zip((0.01, 0.15), rows.itertuples()):
        rob = robustness.table(api.compare(replace(cfg, **{SEARCH: value}), regimes=regimes).summary, regimes, 0.9)
        assert row.order == robustness.order_text(rob)


def test_a_key_outside_the_space_is_refused_before_any_run(tmp_path):
    post = write_posterior(tmp_path / "post", [{"weight": 1.0, RISK: 2.0}])
    proc = subprocess.run([sys.executable, "-m", "experiments.run", *SMALL, "engine=numba", f"posterior={post}",
                           "robust_parameters=[broker_reward.rate]", f"hydra.run.dir={tmp_path / 'out'}"], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and "robust_parameters contains 'broker_reward.rate'" in proc.stderr
    assert not (tmp_path / "out" / "summary.csv").exists()


@pytest.mark.parametrize("value", ["0.5", "1.5", "-1"])
def test_robust_share_is_bounded(value):
    from sim.core.config import ConfigError

    with pytest.raises(ConfigError, match=f"robust_share = {value}"):
        small(f"robust_share={value}")
