"""The main job and api.compare on a calibration's posterior: replicate k runs draw k // seeds with seed seed + k."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from sim import api
from sim.core.config import ConfigError, replace
from sim.runs.posterior import load_posterior

from ..conftest import SMALL, small

ROOT = Path(__file__).resolve().parents[2]
RISK, SURFACE, NOISE = "scenario.firms.risk_aversion_sme", "expert_visits.surface_chance", "scenario.firms.self_noise"
REGIMES = ["baseline", "expert_visits"]


def write_posterior(folder: Path, rows: list[dict], scenarios=None, target_set="test") -> Path:
    """A posterior directory as the calibration writes it (rows: {weight, dotted key: value})."""
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(folder / "posterior.csv", index=False)
    keys = [k for k in rows[0] if k != "weight"]
    scenarios = {"default": keys} if scenarios is None else scenarios
    lines = [f"target_set: {target_set}", "scenarios:"] + [f"  {s}: [{', '.join(k)}]" for s, k in scenarios.items()]
    (folder / "posterior.yaml").write_text("\n".join(lines + ["created: by a test"]) + "\n")
    return folder


PARTICLES = [{"weight": 0.5, RISK: 1.0, SURFACE: 0.2, NOISE: 0.5},
             {"weight": 0.3, RISK: 3.0, SURFACE: 0.6, NOISE: 0.5},
             {"weight": 0.2, RISK: 6.0, SURFACE: 0.9, NOISE: 0.5}]


@pytest.fixture(scope="module")
def three(tmp_path_factory):
    # three particles that differ in two influential parameters; NOISE is calibrated for another scenario only
    return write_posterior(tmp_path_factory.mktemp("post") / "three", PARTICLES,
                           {"default": [RISK, SURFACE], "lishui": [NOISE]})


def _cfg(*overrides):
    return small("engine=numba", f"regimes=[{','.join(REGIMES)}]", *overrides)


@pytest.fixture(scope="module")
def on_three(three):
    cfg = _cfg(f"posterior={three}", "posterior_draws=4", "seeds=2", "seed=11")
    return cfg, api.compare(cfg)


def test_one_particle_gives_the_numbers_of_the_plain_config_with_its_values(tmp_path):
    folder = write_posterior(tmp_path / "one", [{"weight": 1.0, RISK: 2.0, SURFACE: 0.4}])
    res = api.compare(_cfg(f"posterior={folder}", "posterior_draws=3", "seeds=2", "seed=5"))
    plain = api.compare(replace(_cfg("seeds=6", "seed=5"), **{RISK: 2.0, SURFACE: 0.4}))
    assert (res.summary["draw"] == 0).all()
    pd.testing.assert_frame_equal(res.summary.drop(columns=["draw", "draw_block"]), plain.summary, check_exact=True)
    pd.testing.assert_frame_equal(res.series, plain.series, check_exact=True)
    # the table is over the 3 draws, each the mean of its 2 seeds (sim.analysis.stats.by_draw): that of the plain runs so grouped
    from sim.analysis.stats import comparison_table

    blocks = plain.summary.assign(draw_block=(plain.summary["seed"] - 5) // 2)
    pd.testing.assert_frame_equal(res.table, comparison_table(blocks), check_exact=True)
    assert (res.table["seeds"] == 3).all()


def test_draws_follow_the_weights_and_depend_on_the_seed_alone(tmp_path):
    post = load_posterior(write_posterior(tmp_path / "two", [{"weight": 8.0, RISK: 1.0}, {"weight": 2.0, RISK: 5.0}]))
    n = 4000
    drawn = post.sample(3, n)
    lo, hi = stats.binom.ppf([0.0005, 0.9995], n, 0.2)  # a 99.9% interval of the count of the second particle
    assert lo <= (drawn == 1).sum() <= hi and set(drawn) == {0, 1}
    assert (post.sample(3, n) == drawn).all() and (post.sample(3, 10) == drawn[:10]).all()
    assert (post.sample(4, n) != drawn).any()
    cfgs = post.draws(api.compose("seed=3"), 10)
    assert [c.scenario.firms.risk_aversion_sme for c in cfgs] == [[1.0, 5.0][i] for i in drawn[:10]]
    zero = load_posterior(write_posterior(tmp_path / "zero", [{"weight": 0.0, RISK: 1.0}, {"weight": 1.0, RISK: 5.0}]))
    assert (zero.sample(0, 1000) == 1).all()


def test_each_rows_parameters_are_those_of_its_draw(on_three):
    cfg, res = on_three
    s = res.summary
    assert len(s) == len(REGIMES) * 4 * 2 and list(s.columns[:3]) == ["regime", "seed", "draw"]
    for key in (RISK, SURFACE):
        assert (s[key] == [PARTICLES[d][key] for d in s["draw"]]).all(), key
    assert (s[NOISE] == cfg.scenario.firms.self_noise).all()  # a key of another scenario is not applied
    # replicate k: draw k // seeds of the posterior's sample, seed seed + k
    sample = load_posterior(cfg.posterior).sample(cfg.seed, 4)
    for _, runs in s.groupby("regime"):
        assert list(runs["seed"]) == list(range(11, 19))
        assert list(runs["draw"]) == [sample[k // 2] for k in range(8)]
    assert s.groupby("seed")["draw"].nunique().eq(1).all()  # paired: the same draw for a seed under every regime
    assert (res.table["seeds"] == 4).all()  # the table's replicates are the 4 draws (each the mean of its 2 seeds)
    assert s["draw"].nunique() > 1  # (the seed was picked so that the draws differ)


def test_at_equal_spend_runs_the_same_draws(on_three):
    cfg, res = on_three
    eq = api.compare_at_spend(cfg, "expert_visits", spend_of=res)
    assert eq.budget == api.yearly_spend(api.under_regime(cfg, "expert_visits"), cfg.seeds)
    assert (eq.summary["draw"] == res.summary["draw"]).all() and (eq.summary["seed"] == res.summary["seed"]).all()
    assert (eq.summary["government.annual_budget"] == eq.budget).all()


def test_results_do_not_depend_on_workers(three):
    cfg = _cfg(f"posterior={three}", "posterior_draws=3", "seeds=2")
    one, two = api.compare(cfg, workers=1), api.compare(cfg, workers=2)
    pd.testing.assert_frame_equal(one.summary, two.summary, check_exact=True)
    pd.testing.assert_frame_equal(one.series, two.series, check_exact=True)


def _bad(folder: Path, case: str) -> Path:
    """A posterior directory with one problem."""
    good = [{"weight": 1.0, RISK: 2.0}]
    if case == "no folder":
        return folder / "nowhere"
    if case == "no yaml":
        write_posterior(folder, good)
        (folder / "posterior.yaml").unlink()
        return folder
    if case == "no csv":
        write_posterior(folder, good)
        (folder / "posterior.csv").unlink()
        return folder
    if case == "csv a fifo":  # read, it would block for ever
        write_posterior(folder, good)
        (folder / "posterior.csv").unlink()
        os.mkfifo(folder / "posterior.csv")
        return folder
    rows = {"no weight": [{"w": 1.0, RISK: 2.0}],
            "negative weight": [{"weight": 1.0, RISK: 2.0}, {"weight": -0.5, RISK: 3.0}],
            "nan weight": [{"weight": np.nan, RISK: 2.0}],
            "zero weights": [{"weight": 0.0, RISK: 2.0}],
            "unknown key": [{"weight": 1.0, "scenario.firms.colour": 2.0}],
            "regime key": [{"weight": 1.0, "regime.name": "free_trial"}],
            "horizon key": [{"weight": 1.0, RISK: 2.0, "scenario.months": 12}, {"weight": 1.0, RISK: 2.0,
                                                                                "scenario.months": 60}],
            "population key": [{"weight": 1.0, RISK: 2.0, "scenario.firms.n": 500}],
            "out of range": [{"weight": 1.0, RISK: 2.0}, {"weight": 1.0, RISK: 500.0}],
            "not a number": [{"weight": 1.0, RISK: "high"}],
            "empty value": [{"weight": 1.0, RISK: 2.0, SURFACE: np.nan}],
            "other scenario": [{"weight": 1.0, RISK: 2.0}]}[case]
    scenarios = {"other scenario": {"lishui": [RISK]}, "unknown key": {"default": []}, "regime key": {"default": []},
                 "no weight": {"default": [RISK]}}.get(case)
    return write_posterior(folder, rows, scenarios)


BAD = [
    ("no folder", "not a directory"),
    ("no yaml", "no posterior.yaml in it"),
    ("no csv", "no posterior.csv in it"),
    ("csv a fifo", "no posterior.csv in it"),  # (not a regular file: never opened)
    ("no weight", "posterior.csv has no 'weight' column"),
    ("negative weight", "particle 1: weight = -0.5: must be a finite number >= 0"),
    ("nan weight", "particle 0: weight = nan: must be a finite number >= 0"),
    ("zero weights", "the weights sum to 0"),
    ("unknown key", "unknown key 'scenario.firms.colour'"),
    ("regime key", "regime.name: not a parameter a calibration sets"),
    # draws of different horizons or sizes would share one table's headers, budget and years (issue 23, point 4)
    ("horizon key", "posterior.csv: scenario.months: a posterior may not set the horizon or the population's size"),
    ("population key", "posterior.csv: scenario.firms.n: a posterior may not set the horizon or the population's "
                       "size"),
    ("out of range", f"particle 1: {RISK} = 500.0: must be >= 0 and <= 100"),
    ("not a number", f"particle 0: {RISK} = 'high': must be a number"),
    ("empty value", f"particle 0: {SURFACE} is empty"),
    ("other scenario", "no keys for scenario 'default'; it calibrated lishui (1 keys)"),
]


@pytest.mark.parametrize("case, fragment", BAD, ids=[c for c, _ in BAD])
def test_a_bad_posterior_is_one_line_naming_it(tmp_path, case, fragment):
    folder = _bad(tmp_path / "post", case)
    with pytest.raises(ConfigError) as e:
        api.compare(_cfg(f"posterior={folder}", "seeds=1", "posterior_draws=1"))
    assert str(e.value).startswith(f"posterior = {folder}: ") and fragment in str(e.value), str(e.value)
    assert "\n" not in str(e.value)


def test_a_name_too_long_for_the_file_system_is_no_directory(tmp_path):
    long = str(tmp_path / ("é" * 150))  # 300 bytes: pathlib's is_dir raised OSError
    with pytest.raises(ConfigError, match=r"^posterior = .*: not a directory"):
        load_posterior(long)


def test_a_draw_that_breaks_a_rule_between_values_names_its_particle(tmp_path):
    folder = write_posterior(tmp_path / "post", [{"weight": 1.0, "scenario.brokers.initial": 30}])
    with pytest.raises(ConfigError, match=r"^posterior = .*: particle 0: scenario.brokers.max = 20: must be >= "
                                          r"scenario.brokers.initial \(30\)$"):
        api.compare(_cfg(f"posterior={folder}", "seeds=1", "posterior_draws=1"))


def test_posterior_settings_are_validated():
    with pytest.raises(ConfigError, match=r"^posterior_draws = 0: must be >= 1"):
        api.compose("posterior_draws=0")
    with pytest.raises(ConfigError, match=r"^seed = .*: with a posterior the last seed"):
        api.compose("posterior=somewhere", "seeds=2", "posterior_draws=2", f"seed={2**63 - 3}")
    api.compose("posterior=somewhere", "seeds=2", "posterior_draws=2", f"seed={2**63 - 4}")  # the largest seed
    api.compose("posterior_draws=0.5e1")  # an integer written as a float, as everywhere


@pytest.mark.parametrize("case", ["no csv", "unknown key", "out of range", "other scenario"])
def test_the_main_job_refuses_a_bad_posterior_in_one_line_exit_2(tmp_path, case):
    folder = _bad(tmp_path / "post", case)
    p = subprocess.run([sys.executable, "-m", "experiments.run", *SMALL, "engine=numba", f"posterior={folder}",
                        f"hydra.run.dir={tmp_path}/run"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"config error: posterior = {folder}: "), p.stderr
    assert "Traceback" not in p.stderr + p.stdout and not (tmp_path / "run" / "summary.csv").exists()


def test_the_main_job_says_it_runs_on_a_posterior(three, tmp_path):
    p = subprocess.run([sys.executable, "-m", "experiments.run", *SMALL, "engine=numba", f"posterior={three}",
                        "posterior_draws=2", "seeds=1", "regimes=[baseline,expert_visits]", "at_spend=expert_visits",
                        f"hydra.run.dir={tmp_path}/run"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert f"posterior {three} (target set test, 3 particles): 2 draws x 1 seeds each; keys applied to scenario " \
           f"default: {RISK}, {SURFACE}" in p.stdout
    assert "over 2 posterior draws x 1 seeds" in p.stdout
    for name in ("summary.csv", "summary_equal_spend.csv"):
        s = pd.read_csv(tmp_path / "run" / name)
        assert len(s) == 4 and (s[RISK] == [PARTICLES[d][RISK] for d in s["draw"]]).all()


def test_a_sweep_refuses_a_posterior(three, tmp_path):
    p = subprocess.run([sys.executable, "-m", "experiments.run", "-m", *SMALL, "engine=numba", f"posterior={three}",
                        f"hydra.sweep.dir={tmp_path}/sweep"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "posterior = " in p.stderr and "a sweep runs the points of its grid" in p.stderr


def test_intervals_are_over_draws_not_over_a_draws_seeds():
    """Runs of one draw share its parameters: the table averages them into one replicate per draw, so a draw's
    many seeds do not narrow the interval as if they were independent draws (closed form: a t interval over the
    draws' means: the bootstrap resamples the three draws, whose resampled means run from the lowest draw to the
    highest, each with chance 1/27 > 2.5%)."""
    from sim.analysis.stats import SIZE_METRICS, TABLE_METRICS, by_draw, comparison_table

    rows = []
    for regime, shift in (("baseline", 0.0), ("free_trial", 1.0)):
        for block, level in enumerate((10.0, 20.0, 40.0)):   # three draws, far apart
            for k, noise in enumerate((-0.5, 0.5)):           # two seeds each
                rows.append({"regime": regime, "seed": 2 * block + k, "draw_block": block, "successes": level + shift
                             + noise * (1 + block), "gov_spend": 0.0, "public_cost": 0.0, "gov_spend_pv": 0.0,
                             "public_cost_pv": 0.0})
    summary = pd.DataFrame(rows)
    summary = pd.concat([summary, pd.DataFrame(0.0, index=summary.index,
                                               columns=[m for m in TABLE_METRICS + SIZE_METRICS if m not in summary])],
                        axis=1)
    table = comparison_table(summary).set_index(["regime", "metric"])
    means = np.array([10.0, 20.0, 40.0])
    row = table.loc[("baseline", "successes")]
    assert row["mean"] == pytest.approx(means.mean()) and row["seeds"] == 3
    assert (row["ci_low"], row["ci_high"]) == (10.0, 40.0)   # over the seeds it would reach 9.5 and 42
    eff = table.loc[("free_trial", "successes")]
    assert eff["effect"] == pytest.approx(1.0) and eff["effect_low"] == pytest.approx(1.0)  # paired by draw
    assert len(by_draw(summary)) == 6


def test_weights_near_the_float_limit_are_read_as_their_ratios(tmp_path):
    # issue 23: weights 1e308, 1e308 summed to inf and the draws failed with a traceback; they are two equal weights
    folder = write_posterior(tmp_path / "post", [{"weight": 1e308, RISK: 2.0}, {"weight": 1e308, RISK: 3.0},
                                                 {"weight": 0.5e308, RISK: 4.0}])
    post = load_posterior(str(folder))
    assert list(post.weights) == [0.4, 0.4, 0.2]
