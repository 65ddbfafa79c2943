"""The main job as a user runs it: python -m experiments.run, its tables and files."""

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sim.core import ledger
from sim.core.config import INSTRUMENT_NAMES, Config, regime_files
from sim.core.results import BALANCE_COLUMNS, SERIES_NAMES, METRICS

from ..conftest import BROAD_INSURANCE, SMALL

ROOT = Path(__file__).resolve().parents[2]


def _run(tmp_path, *args):
    out = tmp_path / "run"
    p = subprocess.run([sys.executable, "-m", "experiments.run", *SMALL, *args, f"hydra.run.dir={out}"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    return p, out


@pytest.fixture(scope="module")
def main_run(tmp_path_factory):
    # the default comparison (every instrument alone and together, and at equal spend), on the fast engine
    p, out = _run(tmp_path_factory.mktemp("main"), "seeds=4", "engine=numba", *BROAD_INSURANCE)
    assert p.returncode == 0, p.stderr
    return p, out


REGIMES = list(Config().regimes)


def test_writes_every_output_and_no_temporary_file(main_run):
    p, out = main_run
    names = {f.name for f in out.iterdir() if f.is_file()}
    assert {"summary.csv", "series.csv", "sectors.csv", "table.csv", "table.md", "comparison.png"} <= names
    assert {"summary_equal_spend.csv", "series_equal_spend.csv", "table_equal_spend.csv",
            "comparison_equal_spend.png"} <= names
    assert not [n for n in names if n.endswith(".tmp")]
    png = (out / "comparison.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000


def test_summary_is_tidy_one_row_per_regime_and_seed(main_run):
    _, out = main_run
    s = pd.read_csv(out / "summary.csv")
    # every instrument alone, and all of them together
    assert set(regime_files()["combined"]) == set(INSTRUMENT_NAMES)
    assert {i for name in REGIMES for i in regime_files()[name] if len(regime_files()[name]) == 1} == set(INSTRUMENT_NAMES)
    assert list(dict.fromkeys(s.regime)) == REGIMES
    assert len(s) == len(REGIMES) * 4 and not s.duplicated(["regime", "seed"]).any()
    for col in ("scenario.firms.n", "broker_reward.rate", "broker_reward.cap", "free_trial.term_months", "regime.name",
                "regime.instruments", *METRICS):
        assert col in s.columns, col
    assert (s["scenario.firms.n"] == 400).all()
    assert (s["regime.name"] == s.regime).all()
    # each row lists the instruments of its regime (written as a list)
    files = regime_files()
    assert all(ast.literal_eval(text) == files[name] for name, text in zip(s.regime, s["regime.instruments"]))


def test_invariants_recomputed_from_the_tables(main_run):
    _, out = main_run
    s = pd.read_csv(out / "summary.csv")
    assert (s.needs_raised >= s.matches).all() and (s.matches >= s.contracts).all()
    assert (s.contracts >= s.successes + s.failures).all()
    assert (s.successes >= s.trials_converted).all()
    assert (s.contracts == s[[c for c in s.columns if c.startswith("signed_") and c != "signed_insured"]].sum(axis=1)).all()
    assert (s.gov_spend == s[[c for c in s.columns if c.startswith("gov_spend_")
                               and not c.endswith(("_pv", "_sme", "_large"))]].sum(axis=1)).all()
    assert (s.gov_spend_rewards == s.broker_rewards).all() and (s.gov_spend_subsidies == s.premium_subsidies).all()
    # metrics that are groups of payment kinds
    assert (s.broker_fees == s.service_fees + s.broker_fees_firm + s.broker_fees_university).all()
    assert (s.premiums == s.premiums_firm + s.premium_subsidies).all()
    assert (s.broker_income == s.broker_fees + s.broker_rewards).all()
    # no reward above the cap: total rewards at most cap x brokered contracts
    assert (s.broker_rewards <= s["broker_reward.cap"] * s.contracts).all()
    # switched-off instruments cost nothing and sign nothing
    base = s[s.regime == "baseline"]
    assert (base.gov_spend == 0).all() and (base.signed_trial == 0).all() and (base.signed_insured == 0).all()
    on = s["regime.instruments"].map(ast.literal_eval)
    insured, trials, rewards = (on.map(lambda i, name=name: name in i)
                                for name in ("insurance", "free_trial", "broker_reward"))
    assert insured.any() and not insured.all() and trials.any() and not trials.all()
    assert (s[~insured].claims == 0).all() and (s[~insured].premiums == 0).all()
    assert (s[~trials].trials_converted == 0).all() and (s[~trials].signed_trial == 0).all()
    assert (s[~rewards].broker_rewards == 0).all()
    assert s[insured].signed_insured.sum() > 0 and s[trials].signed_trial.sum() > 0  # and those on do something

    series = pd.read_csv(out / "series.csv")
    assert len(series) == len(REGIMES) * 4 * 36
    money = series[[SERIES_NAMES[c] for c in BALANCE_COLUMNS]].sum(axis=1)
    for _, g in money.groupby([series.regime, series.seed]):
        assert g.nunique() == 1  # conserved to the yuan, every month
    # the summary agrees with the series it came from
    tot = series.groupby(["regime", "seed"], sort=False)[["successes", "broker_rewards"]].sum().reset_index()
    merged = s.merge(tot, on=["regime", "seed"], suffixes=("", "_series"))
    assert np.array_equal(merged.successes, merged.successes_series)
    assert np.array_equal(merged.broker_rewards, merged.broker_rewards_series)


def test_prints_table_with_intervals_and_cost_per_extra_conversion(main_run):
    p, out = main_run
    assert "mean [95% interval]" in p.stdout
    assert "cost_per_extra_conversion" in p.stdout
    t = pd.read_csv(out / "table.csv")
    row = t[(t.regime == "insurance") & (t.metric == "cost_per_extra_conversion")].iloc[0]
    assert row["mean"] > 0 and row.ci_low <= row["mean"] <= row.ci_high
    m = t[(t.regime == "free_trial") & (t.metric == "contracts")].iloc[0]
    assert m.ci_low <= m["mean"] <= m.ci_high and m.effect > 0


def test_at_equal_spend_every_regime_keeps_within_the_budget_the_named_regime_spends(main_run):
    p, out = main_run
    free, capped = pd.read_csv(out / "summary.csv"), pd.read_csv(out / "summary_equal_spend.csv")
    years = 36 / 12
    budget = np.floor(free[free.regime == "broker_reward"].gov_spend.mean() / years)
    assert (capped["government.annual_budget"] == budget).all() and list(dict.fromkeys(capped.regime)) == REGIMES
    assert f"{budget:,.0f} yuan" in p.stdout
    series = pd.read_csv(out / "series_equal_spend.csv")
    gov = [k.name for k in ledger.KINDS if k.payer == ledger.GOVERNMENT]
    yearly = series.copy().assign(year=series.month // 12, spend=series[gov].sum(axis=1)).groupby(
        ["regime", "seed", "year"]).spend.sum()
    assert yearly.max() <= budget
    # the regimes that spend more than that without a budget are held to it, and their extra conversions are
    # those the table reports
    spenders = free.groupby("regime").gov_spend.mean() / years > budget
    assert spenders.any()
    t = pd.read_csv(out / "table_equal_spend.csv").set_index(["regime", "metric"])
    base = capped[capped.regime == "baseline"].set_index("seed").successes
    for regime in REGIMES[1:]:
        d = capped[capped.regime == regime].set_index("seed").successes - base
        assert np.isclose(t.loc[(regime, "successes"), "effect"], d.mean())


def test_the_headline_lists_every_regime_cheapest_conversions_first(main_run):
    p, out = main_run
    text = (out / "table.md").read_text()
    head = text.split("# Headline")[1].split("\n\n")[0]
    rows = [line.split("|")[1].strip() for line in head.splitlines()[3:] if line.startswith("|")]
    assert sorted(rows) == sorted(REGIMES[1:])
    t = pd.read_csv(out / "table.csv")
    cost = t[t.metric == "cost_per_extra_conversion"].set_index("regime")["mean"].fillna(np.inf)
    assert list(cost.loc[rows]) == sorted(cost.loc[rows])


def test_overrides_pick_scenario_and_regimes(tmp_path):
    p, out = _run(tmp_path, "scenario=lishui", "scenario.firms.n=300", "regimes=[baseline,free_trial]", "seeds=2")
    assert p.returncode == 0, p.stderr
    s = pd.read_csv(out / "summary.csv")
    assert set(s.regime) == {"baseline", "free_trial"} and len(s) == 4
    assert (s["scenario.name"] == "lishui").all() and (s["scenario.firms.n"] == 300).all()


def test_single_regime_from_the_command_line(tmp_path):
    p, out = _run(tmp_path, "regime=broker_reward", "broker_reward.cap=500000", "seeds=2")
    assert p.returncode == 0, p.stderr
    s = pd.read_csv(out / "summary.csv")
    assert set(s.regime) == {"broker_reward"} and (s["broker_reward.cap"] == 500_000).all()


def test_output_files_are_readable_by_the_group_and_others(tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        p, out = _run(tmp_path, "seeds=1", "regimes=[baseline]")
    finally:
        os.umask(old)
    assert p.returncode == 0, p.stderr
    files = [f for f in out.rglob("*") if f.is_file()]
    assert {"summary.csv", "table.md", "comparison.png", "overrides.yaml"} <= {f.name for f in files}
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o644, (f, oct(f.stat().st_mode))


def test_a_failed_second_run_into_the_same_folder_keeps_the_first_runs_provenance(tmp_path):
    p, out = _run(tmp_path, "seeds=1", "regimes=[baseline]", "broker_reward.cap=123456")
    assert p.returncode == 0, p.stderr
    def files():  # all but the lock file, which holds the pid of its last holder (for a second job's message)
        return {f.name: f.read_bytes() for f in out.rglob("*") if f.is_file() and f.name != ".lock"}

    first = files()
    assert b"broker_reward.cap=123456" in first["overrides.yaml"]
    p2, _ = _run(tmp_path, "seeds=1", "regimes=[baseline]", "broker_reward.cap=-1")  # refused: exit 2
    assert p2.returncode == 2
    assert files() == first and (out / ".lock").is_file()


_LEAKY = """
import sys
from sim.core import ledger
from sim.engines.mesa.agents import Project
settle = Project.settle
def leaky_settle(self):  # a yuan lost from the firm's account at every settlement
    out = settle(self)
    arrays = self.model.arrays
    arrays.balance[arrays.acct_base[ledger.FIRM] + self.firm.index] -= 1
    return out
Project.settle = leaky_settle
sys.argv = ["experiments.run", *sys.argv[1:]]
from experiments.app import main
main()
"""


def test_a_run_that_breaks_an_invariant_writes_no_table(tmp_path):
    out = tmp_path / "run"
    p = subprocess.run([sys.executable, "-c", _LEAKY, *SMALL, "seeds=1", "regimes=[baseline]",
                        f"hydra.run.dir={out}"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "run failed: a run broke an invariant of the model" in p.stderr and "money adds up to" in p.stderr
    assert not list(out.glob("*.csv")) and "Traceback" not in p.stderr


def test_a_sweep_run_that_breaks_an_invariant_is_a_failed_run_not_a_row(tmp_path):
    p = subprocess.run([sys.executable, "-c", _LEAKY, "-m", "engine=mesa", "regime=baseline", "seed=0", *SMALL],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert p.returncode == 1, p.stdout + p.stderr
    (d,) = list((tmp_path / "multirun").iterdir())
    assert not list((d / "results").glob("*.json"))
    (failure,) = list((d / "failed").glob("*.json"))
    assert "InvariantError" in failure.read_text() and "money adds up to" in failure.read_text()
