"""Calibration: target files validated like configs, the ABC's pieces by closed forms, parameter recovery,
misfits reported, results independent of the number of processes and of a kill and resume."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from sim.analysis import calibration as cal
from sim.core.config import ConfigError
from sim.analysis.targets import Target, evaluate, load_targets

from ..conftest import abc_generations, kill_after_generations

DATA = Path(__file__).parents[1] / "data"
ROOT = Path(__file__).resolve().parents[2]


def _write(tmp_path, data, name="t.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return str(path)


def _base():
    return yaml.safe_load((DATA / "recovery_targets.yaml").read_text())


# --------------------------------------------------------------------------- target files
@pytest.mark.parametrize("change, message", [
    (lambda d: d["targets"]["needs_per_visit"].update(value=None, sd=None, count=120, denominator=100),
     "targets.needs_per_visit.count = 120: must be <= its denominator (100)"),
    (lambda d: d["targets"]["needs_per_visit"].update(statistic="needs_surfaced_by_visits / visitz"),
     "unknown metric 'visitz'"),
    (lambda d: d["targets"]["needs_per_visit"].update(statistic="__import__('os')"), "targets.needs_per_visit.statistic"),
    (lambda d: d["targets"]["needs_per_visit"].update(use="maybe"), "targets.needs_per_visit.use = 'maybe': must be one of fit, holdout"),
    (lambda d: d["targets"]["needs_per_visit"].update(sd=None), "targets.needs_per_visit.sd: missing"),
    (lambda d: d["targets"]["needs_per_visit"].update(sd=-1), "targets.needs_per_visit.sd = -1: must be > 0"),
    (lambda d: d["targets"]["needs_per_visit"].update(count=3, denominator=10), "give either count and denominator, or value and sd"),
    (lambda d: d["targets"]["needs_per_visit"].update(setting="nowhere"), "targets.needs_per_visit.setting = 'nowhere'"),
    (lambda d: d["targets"]["needs_per_visit"].pop("source"), "targets.needs_per_visit.source = None: must be a non-empty text"),
    (lambda d: d["settings"].update(unused={"scenario": "default"}), "settings.unused in t.yaml: no target uses it"),
    (lambda d: d["settings"]["visits"]["overrides"].update({"scenario.firms.nn": 3}), "unknown key 'scenario.firms.nn'"),
    (lambda d: [t.update(use="holdout") for t in d["targets"].values()], "at least one target must have use: fit"),
])
def test_a_bad_target_file_is_one_clear_error(tmp_path, change, message):
    data = _base()
    change(data)
    with pytest.raises(ConfigError) as e:
        load_targets(_write(tmp_path, data))
    assert message in str(e.value) and "\n" not in str(e.value)


def test_the_app_refuses_a_bad_target_file_in_one_line_with_exit_code_2(tmp_path):
    data = _base()
    data["targets"]["needs_per_visit"].update(value=None, sd=None, count=120, denominator=100)
    p = subprocess.run([sys.executable, "-m", "experiments.calibrate", f"target_set={_write(tmp_path, data)}",
                        f"hydra.run.dir={tmp_path / 'out'}"], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert p.returncode == 2, p.stderr
    assert p.stderr.strip().splitlines() == [
        "config error: targets.needs_per_visit.count = 120: must be <= its denominator (100)"]
    p = subprocess.run([sys.executable, "-m", "experiments.calibrate", "abc.population=3",
                        f"hydra.run.dir={tmp_path / 'out'}"], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert p.returncode == 2 and p.stderr.strip() == "config error: abc.population = 3: must be >= 10 and <= 100000", p.stderr


def test_the_reported_targets_name_their_sources_and_split_fit_from_holdout():
    ts = load_targets("reported")
    names = {t.name for t in ts.targets.values()}
    for required in ("longquan_needs_per_visit", "longquan_matches_per_need", "longquan_contracts_per_match",
                     "lishui_trial_share", "jinyun_licensed_per_need", "zhejiang_pilot_trials_per_listed",
                     "open_licence_takeup", "cnipa_industrialisation", "national_mean_contract", "ningbo_mean_deal",
                     "new_product_failure", "national_contracts_10m_share"):
        assert required in names
    fit, held = ts.by_use("fit"), ts.by_use("holdout")
    assert fit and held and not {t.name for t in fit} & {t.name for t in held}
    # the fit never runs a setting only held-out targets use: they are predicted, never fitted
    model = cal.TargetModel.build(ts, fit, cal.load_space("judgement"))
    only_held = {t.setting for t in held} - {t.setting for t in fit}
    assert only_held and not only_held & {s.name for s in model.settings}
    assert set(model({}, 0)) == {t.name for t in fit}
    # Longquan: 68 needs of 100+ visited firms: binomial sd at (68 + 1/2) / (100 + 1)
    t = ts.targets["longquan_needs_per_visit"]
    p = 68.5 / 101
    assert t.observed == 0.68 and math.isclose(t.sampling_sd, math.sqrt(p * (1 - p) / 100))
    assert math.isclose(t.sigma, math.hypot(t.sampling_sd, t.discrepancy))


def test_a_share_of_all_or_nothing_still_has_a_sampling_sd():
    common = dict(setting="s", statistic="contracts", source="x", definition="x", period="x", use="fit", why="x")
    for count, n in ((1, 1), (0, 1), (0, 50), (50, 50)):
        sd = Target("t", count=count, denominator=n, **common).sampling_sd
        assert 0 < sd <= 0.5 / math.sqrt(n) + 1e-12


def test_a_statistic_is_a_ratio_of_means_over_replicates():
    cfg = load_targets(str(DATA / "recovery_targets.yaml")).settings["visits"].config()
    means = {"contracts": 6.0, "matches": 8.0, "successes": 2.0, "failures": 0.0}
    assert evaluate("contracts / matches", means, cfg) == 0.75
    assert evaluate("successes / (successes + failures)", means, cfg) == 1.0
    assert evaluate("contracts / firms", means, cfg) == 6.0 / 300
    assert math.isnan(evaluate("successes / failures", means, cfg))  # undefined, never inf


def test_distance_weights_each_target_by_its_sigma():
    assert cal.distance({"a": 0.5, "b": 3.0}, {"a": 0.2, "b": 1.0}, {"a": 0.1, "b": 2.0}) == pytest.approx(
        math.hypot(3.0, 1.0))
    assert cal.distance({"a": math.nan}, {"a": 0.2}, {"a": 0.1}) == math.inf


def test_fit_table_reports_a_target_it_cannot_meet_as_a_misfit():
    common = dict(setting="s", statistic="contracts", source="x", definition="x", period="x", why="x")
    met = Target("met", use="fit", value=1.0, sd=0.1, **common)
    missed = Target("missed", use="holdout", count=90, denominator=100, **common)
    pred = pd.DataFrame({"met": np.linspace(0.8, 1.2, 50), "missed": np.linspace(0.1, 0.3, 50)})
    fit = cal.fit_table([met, missed], pred).set_index("target")
    assert not fit.loc["met", "misfit"] and abs(fit.loc["met", "z"]) < 0.1
    p = 90.5 / 101
    z = (0.9 - 0.2) / math.sqrt(pred["missed"].var(ddof=0) + p * (1 - p) / 100)
    assert fit.loc["missed", "z"] == pytest.approx(z) and fit.loc["missed", "misfit"]


def test_fit_table_gives_the_ratio_predicted_to_reported_and_whether_the_90_interval_holds_it():
    common = dict(setting="s", statistic="contracts", source="x", definition="x", period="x", why="x")
    pred = pd.DataFrame({"a": np.linspace(0.0, 2.0, 101), "b": np.linspace(0.0, 2.0, 101)})
    # the 90% interval of 0.00, 0.02, ..., 2.00 is [0.1, 1.9]; the median 1.0
    targets = [Target("a", use="fit", value=1.9, sd=0.1, **common), Target("b", use="holdout", value=1.95, sd=0.1, **common)]
    fit = cal.fit_table(targets, pred).set_index("target")
    assert fit.loc["a", "ratio"] == pytest.approx(1.0 / 1.9) and fit.loc["b", "ratio"] == pytest.approx(1.0 / 1.95)
    assert fit.loc["a", "inside90"] and not fit.loc["b", "inside90"]


def test_the_screens_stability_line_names_what_changes_with_the_seed():
    from experiments.calibrate import screen_stability

    assert cal.union_of_screens(["a", "b"], ["c", "a"]) == ["a", "b", "c"]
    assert cal.union_of_screens(["a", "b"], ["b", "a"]) == ["a", "b"]

    assert screen_stability(["a", "b"], ["b", "a"], 4, 10) == (
        "Screen: the same 2 parameters are kept with seed 4 and seed 5 (10 trajectories each).")
    assert screen_stability(["a", "b"], ["a", "c"], 4, 10) == (
        "Screen: NOT STABLE: with seed 5 the screen keeps c instead of b (10 trajectories; 1 of 2 shared): the fit "
        "takes the 3 either keeps; more trajectories narrow the difference.")


def test_informs_lists_the_targets_a_parameter_moves_by_at_least_the_threshold_largest_first():
    table = pd.DataFrame({"parameter": ["p", "q"], "mu_star": [3.0, 0.6], "mu_star_conf": [0.1, 0.1],
                          "sigma": [1.0, 1.0], "t1": [0.5, 0.6], "t2": [3.0, 0.49], "t3": [0.49, 0.1]})
    assert cal.informs(table, ["p", "q"], 0.5) == {"p": [("t2", 3.0), ("t1", 0.5)], "q": [("t1", 0.6)]}


def test_weighted_quantiles_and_draws_follow_the_weights():
    post = pd.DataFrame({"x": [1.0, 2.0], "weight": [0.8, 0.2]})
    draws = cal.draw_particles(post, 1000, seed=3)
    share = np.mean([d["x"] == 1.0 for d in draws])
    assert abs(share - 0.8) <= 1.0 / 1000 + 1e-12  # systematic resampling: within one draw of the weight
    assert cal.weighted_quantile([0.0, 1.0], [1.0, 1.0], [0.5])[0] == pytest.approx(0.5)


@pytest.mark.parametrize("bad, message", [
    ({"expert_visits.surface_chance": {"low": 0.9, "high": 0.2}}, "low = 0.9 must be < high = 0.2"),
    ({"expert_visits.surface_chance": {"low": 0.2, "high": 1.5}}, "expert_visits.surface_chance = 1.5: must be"),
    ({"expert_visits.nope": {"low": 0.2, "high": 0.5}}, "space.parameters.expert_visits.nope: unknown key"),
    ({"expert_visits.surface_chance": {"low": 0.0, "high": 0.5, "scale": "log"}}, "log needs low > 0"),
])
def test_a_bad_parameter_space_is_one_clear_error(tmp_path, bad, message):
    with pytest.raises(ConfigError) as e:
        cal.load_space(_write(tmp_path, {"name": "x", "parameters": bad}, "space.yaml"))
    assert message in str(e.value)


# --------------------------------------------------------------------------- ABC
def _recovery(truth: dict, seed: int = 11):
    """The recovery target set with its figures simulated at ``truth`` (one evaluation, seeds unused by the fit),
    their sd the spread of one evaluation across seeds."""
    ts = load_targets(str(DATA / "recovery_targets.yaml"))
    space = cal.load_space(str(DATA / "recovery_space.yaml"))
    model = cal.TargetModel.build(ts, ts.by_use("fit"), space)
    sims = pd.DataFrame([model(truth, 10_000 + 100 * k) for k in range(12)])
    observed = model(truth, 50_000 + seed)
    return model, observed, sims.std(ddof=1).to_dict()


def _abc(model, observed, sd, db, workers=1, generations=6, population=100, resume=True, transition="local"):
    ex = cal.Executor("local", workers)
    try:
        res = cal.run_abc(model, observed, sd, db, population=population, generations=generations,
                          max_evaluations=10**6, min_epsilon=0.0, seed=5, executor=ex, resume=resume, progress=False,
                          transition=transition)
    finally:
        ex.close()
    return cal.posterior_frame(res.history, model.space)


@pytest.fixture(scope="module")
def recovery(tmp_path_factory):
    truth = {"expert_visits.surface_chance": 0.7, "scenario.negotiation.breakdown_hazard": 0.3}
    model, observed, sd = _recovery(truth)
    post = _abc(model, observed, sd, tmp_path_factory.mktemp("abc") / "abc.db", workers=2)
    return truth, model, observed, sd, post


# a shorter calibration (40 particles, 4 generations; the last generations of the recovery's are its costliest)
# for the claims that do not need a recovery: the same posterior whatever the processes, or a stop and resume
SHORT = dict(population=40, generations=4)


@pytest.fixture(scope="module")
def short(recovery, tmp_path_factory):
    _, model, observed, sd, _ = recovery
    return _abc(model, observed, sd, tmp_path_factory.mktemp("abc") / "abc.db", workers=2, **SHORT)


def test_calibration_recovers_known_parameters(recovery):
    """Data simulated from known parameters: each identifiable parameter's truth inside the posterior's 90%
    interval, and the interval at most two thirds of the prior's (the data inform it)."""
    truth, model, _, _, post = recovery
    summary = cal.posterior_summary(post, model.space).set_index("parameter")
    for key, value in truth.items():
        row = summary.loc[key]
        assert row["q05"] <= value <= row["q95"], (key, value, row.to_dict())
        assert row["shrinkage"] > 1 / 3, (key, row.to_dict())


def test_the_posterior_does_not_depend_on_the_number_of_processes(recovery, short, tmp_path):
    _, model, observed, sd, _ = recovery
    post1 = _abc(model, observed, sd, tmp_path / "abc.db", workers=1, **SHORT)
    pd.testing.assert_frame_equal(post1, short)
    assert post1["weight"].nunique() > 1  # a later generation's importance weights, not the prior's equal ones


def test_the_fast_prior_and_transitions_give_pyabcs_own_posterior_bit_for_bit(recovery, short, tmp_path, monkeypatch):
    """The short calibration again with pyabc's own uniform prior and transitions in place of ``cal.uniform_prior`` and
    ``cal.fast_transition``: the same particles and weights, to the bit, with the local transition (the default, as
    ``short`` ran) and the normal one."""
    import pyabc

    _, model, observed, sd, _ = recovery
    fast_normal = _abc(model, observed, sd, tmp_path / "fast.db", workers=2, transition="normal", **SHORT)
    used = []
    real = cal.fast_transition
    monkeypatch.setattr(cal, "fast_transition", lambda name: used.append(real(name)) or used[-1])
    _abc(model, observed, sd, tmp_path / "probe.db", workers=1, transition="local", population=10, generations=2)
    assert used and all(getattr(t, "_fast", False) for t in used)   # fitted, and the fast draws did run
    monkeypatch.setattr(cal, "uniform_prior", lambda space: pyabc.Distribution(
        **{p.name: pyabc.RV("uniform", p.bounds[0], p.bounds[1] - p.bounds[0]) for p in space.params}))
    monkeypatch.setattr(cal, "fast_transition", lambda name: {"normal": pyabc.MultivariateNormalTransition,
                                                              "local": pyabc.LocalTransition}[name]())
    own_local = _abc(model, observed, sd, tmp_path / "own_local.db", workers=2, **SHORT)
    pd.testing.assert_frame_equal(own_local, short, check_exact=True)
    own_normal = _abc(model, observed, sd, tmp_path / "own_normal.db", workers=2, transition="normal", **SHORT)
    pd.testing.assert_frame_equal(own_normal, fast_normal, check_exact=True)
    assert not own_normal.equals(own_local)   # the two transitions propose otherwise


def test_a_killed_calibration_resumes_where_it_stopped(recovery, short, tmp_path):
    """Two generations, stopped; the same calibration run again continues pyabc's history from its database and
    ends where an uninterrupted run of four generations ends."""
    _, model, observed, sd, _ = recovery
    db = tmp_path / "abc.db"
    _abc(model, observed, sd, db, workers=2, population=SHORT["population"], generations=2)
    post = _abc(model, observed, sd, db, workers=2, **SHORT)
    pd.testing.assert_frame_equal(post, short)
    import pyabc

    assert pyabc.History("sqlite:///" + str(db)).max_t == SHORT["generations"] - 1


def test_the_app_writes_posterior_predictions_and_scenarios_and_reports_misfits(tmp_path):
    """End to end on a small budget, with a held-out figure the model cannot meet (every trial pilot signs trials
    almost only: a 20% trial share is out of reach): it is reported as a misfit, not hidden."""
    data = _base()
    data["settings"]["pilot"] = {"scenario": "lishui", "instruments": ["free_trial"], "months": 12}
    data["targets"]["trial_share"] = {"setting": "pilot", "statistic": "signed_trial / contracts", "count": 20,
                                      "denominator": 100, "source": "invented", "definition": "x", "period": "x",
                                      "use": "holdout", "why": "cannot be met"}
    out = tmp_path / "out"
    p = subprocess.run([sys.executable, "-m", "experiments.calibrate", f"target_set={_write(tmp_path, data)}",
                        f"space={DATA / 'recovery_space.yaml'}", "budget=3000", "screen.trajectories=3",
                        "screen.threshold=0", "abc.population=40", "abc.generations=2", "predictive_draws=8",
                        "workers=2", "scenario_dir=none", f"hydra.run.dir={out}"],
                       capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    for name in ("screen.csv", "screen_check.csv", "screen.png", "abc.db", "posterior.csv", "posterior.yaml", "posterior_summary.csv",
                 "posterior_pairs.png", "predictive.csv", "fit.csv", "fit.png", "report.md",
                 "scenario/county_calibrated.yaml", "scenario/lishui_calibrated.yaml"):
        assert (out / name).exists(), name
    fit = pd.read_csv(out / "fit.csv").set_index("target")
    assert fit.loc["trial_share", "misfit"] and fit.loc["trial_share", "use"] == "holdout"
    assert "Misfits (the model cannot meet these figures within their uncertainty): " in p.stdout
    # the second screen (seed 1) keeps both parameters too (threshold 0): the report says the set is stable
    assert "Screen: the same 2 parameters are kept with seed 0 and seed 1 (3 trajectories each)." in p.stdout
    assert sorted(pd.read_csv(out / "screen_check.csv")["parameter"]) == sorted(pd.read_csv(out / "screen.csv")["parameter"])
    assert "trial_share" in p.stdout.split("Misfits")[1].splitlines()[0]
    post = pd.read_csv(out / "posterior.csv")
    assert post["weight"].sum() == pytest.approx(1.0) and len(post) == 40
    meta = yaml.safe_load((out / "posterior.yaml").read_text())
    assert set(meta["scenarios"]["county"]) == {"expert_visits.surface_chance", "scenario.negotiation.breakdown_hazard"}
    # the calibrated scenario composes, validates and carries the posterior medians
    from sim import api

    mine = tmp_path / "mine" / "scenario"  # under a name of its own (configs/scenario/ may hold a county_calibrated)
    mine.mkdir(parents=True)
    (mine / "zz_recovered.yaml").write_text((out / "scenario/county_calibrated.yaml").read_text())
    cfg = api.compose("scenario=zz_recovered", config_dirs=[mine.parent])
    median = pd.read_csv(out / "posterior_summary.csv").set_index("parameter")["median"]
    assert cfg.scenario.name == "county_calibrated" and cfg.scenario.firms.n == 300
    assert cfg.expert_visits.surface_chance == pytest.approx(median["expert_visits.surface_chance"], rel=1e-3)
    assert "# command: python -m experiments.calibrate" in (out / "scenario/county_calibrated.yaml").read_text()


def test_a_folder_holding_another_calibration_is_refused_not_mixed(tmp_path):
    """Resuming in a folder whose calibration had other targets would continue a history fitted to other figures:
    refused in one line (resume=false starts again)."""
    out = tmp_path / "out"
    args = [sys.executable, "-m", "experiments.calibrate", f"space={DATA / 'recovery_space.yaml'}",
            "screen.fit=[expert_visits.surface_chance]", "abc.population=10", "abc.generations=1", "predictive_draws=2",
            "workers=1", "scenario_dir=none", "progress=false", f"hydra.run.dir={out}"]
    first = subprocess.run(args + [f"target_set={DATA / 'recovery_targets.yaml'}"], capture_output=True, text=True,
                           timeout=600, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    data = _base()
    data["targets"]["needs_per_visit"]["value"] = 0.6
    other = _write(tmp_path, data)
    p = subprocess.run(args + [f"target_set={other}"], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert p.returncode == 2 and p.stderr.strip().splitlines() == [
        f"config error: hydra.run.dir = {str(out)!r}: holds a calibration with other target_file; start it again "
        "with resume=false, or choose another folder"], p.stderr
    # the same targets proposed by the other transition would continue a history with another sampler: refused too
    p = subprocess.run(args + [f"target_set={DATA / 'recovery_targets.yaml'}", "abc.transition=normal"],
                       capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert p.returncode == 2 and p.stderr.strip().splitlines() == [
        f"config error: hydra.run.dir = {str(out)!r}: holds a calibration with other transition; start it again "
        "with resume=false, or choose another folder"], p.stderr
    # a folder stamped before abc.transition existed was made by what is now called normal: it continues with that
    import json

    stamp = json.loads((out / "calibration.json").read_text())
    del stamp["transition"]
    (out / "calibration.json").write_text(json.dumps(stamp))
    p = subprocess.run(args + [f"target_set={DATA / 'recovery_targets.yaml'}", "abc.transition=normal"],
                       capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]   # continued, not refused
    assert json.loads((out / "calibration.json").read_text())["transition"] == "normal"
    again = subprocess.run(args + [f"target_set={other}", "resume=false"], capture_output=True, text=True,
                           timeout=600, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]


def test_a_calibration_killed_mid_run_resumes_to_the_same_posterior(tmp_path):
    """kill -9 of the whole calibration (its worker processes too) once two generations are stored; the same
    command again continues from the database and ends with the posterior of an uninterrupted calibration."""
    args = [sys.executable, "-m", "experiments.calibrate", f"target_set={DATA / 'recovery_targets.yaml'}",
            f"space={DATA / 'recovery_space.yaml'}", "screen.fit=[expert_visits.surface_chance,"
            "scenario.negotiation.breakdown_hazard]", "abc.population=40", "abc.generations=4", "predictive_draws=4",
            "workers=2", "scenario_dir=none"]
    straight = subprocess.run(args + [f"hydra.run.dir={tmp_path / 'straight'}"], capture_output=True, text=True,
                              timeout=600, cwd=tmp_path)
    assert straight.returncode == 0, straight.stderr[-2000:]

    out = tmp_path / "killed"
    proc = subprocess.Popen(args + [f"hydra.run.dir={out}"], cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    kill_after_generations(proc, out / "abc.db", 2)
    assert abc_generations(out / "abc.db") < 4 and not (out / "posterior.csv").exists()

    again = subprocess.run(args + [f"hydra.run.dir={out}"], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "resuming the history" in again.stdout
    pd.testing.assert_frame_equal(pd.read_csv(out / "posterior.csv"), pd.read_csv(tmp_path / "straight" / "posterior.csv"))


def test_a_settings_own_overrides_win_over_a_fitted_parameter():
    """The mountain-county pilot's setting fixes its transfer offices' capacity (6): a drawn capacity must not
    replace it there, while it applies to a setting that does not fix it."""
    ts = load_targets("reported")
    space = cal.load_space("judgement").subset(["scenario.universities.tto_capacity", "scenario.firms.need_patience"])
    model = cal.TargetModel.build(ts, [ts.targets["zhejiang_pilot_trials_per_listed"],
                                       ts.targets["cnipa_industrialisation"]], space)
    theta = {"scenario.universities.tto_capacity": 3, "scenario.firms.need_patience": 9}
    settings = {s.name: s for s in model.settings}
    pilot = model.config(settings["zhejiang_pilot"], theta)
    region = model.config(settings["region"], theta)
    assert pilot.scenario.universities.tto_capacity == 6 and pilot.scenario.firms.need_patience == 9
    assert region.scenario.universities.tto_capacity == 3


def test_a_target_undefined_in_its_setting_is_refused_before_any_calibration(tmp_path):
    data = _base()
    data["settings"]["visits"]["instruments"] = ["free_trial"]  # no expert visits: needs per visit is 0/0
    p = subprocess.run([sys.executable, "-m", "experiments.calibrate", f"target_set={_write(tmp_path, data)}",
                        f"space={DATA / 'recovery_space.yaml'}", f"hydra.run.dir={tmp_path / 'out'}"],
                       capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert p.returncode == 2 and p.stderr.strip().splitlines() == [
        "config error: targets.needs_per_visit.statistic = 'needs_surfaced_by_visits / visits_made': undefined (0/0) "
        "in setting 'visits' in 3 runs at the defaults; does the setting switch on what it counts?"], p.stderr
    assert not (tmp_path / "out").exists()  # nothing written, no empty folder left


def test_predict_gives_every_target_from_an_earlier_posterior_and_fits_nothing(tmp_path):
    """method=predict: the figures of a target file (held out or not) predicted from a posterior's draws, as the
    calibration predicts its held-out ones: fit.csv equals fit_table of cal.predictive on the same draws and seeds."""
    from ..runs.test_posterior import write_posterior

    post = write_posterior(tmp_path / "post", [{"weight": 0.7, "expert_visits.surface_chance": 0.4},
                                               {"weight": 0.3, "expert_visits.surface_chance": 0.9}],
                           {"county": ["expert_visits.surface_chance"]})
    data = yaml.safe_load((DATA / "recovery_targets.yaml").read_text())
    for t in data["targets"].values():
        t["use"] = "holdout"      # a file of figures never fitted
    targets_file = _write(tmp_path, data)
    out = tmp_path / "out"
    p = subprocess.run([sys.executable, "-m", "experiments.calibrate", "method=predict", f"posterior={post}",
                        f"target_set={targets_file}", f"space={DATA / 'recovery_space.yaml'}", "predictive_draws=4",
                        "workers=1", f"hydra.run.dir={out}"], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert not (out / "abc.db").exists() and not (out / "posterior.csv").exists()   # nothing fitted
    ts = load_targets(str(targets_file), fitting=False)
    space = cal.load_space(str(DATA / "recovery_space.yaml")).subset(["expert_visits.surface_chance"])
    model = cal.TargetModel.build(ts, list(ts.targets.values()), space)
    frame = pd.DataFrame({"expert_visits.surface_chance": [0.4, 0.9], "weight": [0.7, 0.3]})
    particles = cal.draw_particles(frame, 4, 0)
    executor = cal.Executor("local", 1)
    try:
        pred = cal.predictive(model, particles, 0 + 7919, executor)
    finally:
        executor.close()
    written = pd.read_csv(out / "fit.csv").set_index("target")
    expected = cal.fit_table(list(ts.targets.values()), pred).set_index("target")
    for col in ("predicted_median", "predicted_q05", "predicted_q95", "ratio", "z"):
        assert written[col].to_numpy() == pytest.approx(expected[col].to_numpy(), rel=1e-12), col
    assert f"Held-out figures inside their 90% predictive interval: {int(expected['inside90'].sum())} of 2" in p.stdout


@pytest.mark.parametrize("args, fragment", [
    (["method=predict"], "posterior = null: method=predict needs the folder of a calibration"),
    (["posterior=somewhere"], "posterior = somewhere: only method=predict reads a posterior"),
])
def test_predict_and_posterior_go_together(tmp_path, args, fragment):
    p = subprocess.run([sys.executable, "-m", "experiments.calibrate", *args, f"hydra.run.dir={tmp_path / 'out'}"],
                       capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert p.returncode == 2 and fragment in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_the_prior_density_is_scipys_bit_for_bit_inside_at_and_beyond_the_bounds():
    """The calibration's fast prior (``cal.uniform_prior``) gives pyabc's SciPy density exactly: 1 / width inside the
    closed range, 0 a float's step outside it, NaN for NaN; the product over the parameters in their order."""
    import pyabc

    space = cal.load_space("judgement")
    fast = cal.uniform_prior(space)
    slow = pyabc.Distribution(**{p.name: pyabc.RV("uniform", p.bounds[0], p.bounds[1] - p.bounds[0])
                                 for p in space.params})
    rng = np.random.default_rng(5)
    names = [p.name for p in space.params]
    lo = np.array([p.bounds[0] for p in space.params])
    hi = np.array([p.bounds[1] for p in space.params])
    edges = [lo, hi, np.nextafter(lo, -np.inf), np.nextafter(hi, np.inf), np.nextafter(lo, np.inf),
             np.nextafter(hi, -np.inf), (lo + hi) / 2, np.full_like(lo, np.inf), np.full_like(lo, -np.inf)]
    points = [rng.uniform(lo - 0.1 * (hi - lo), hi + 0.1 * (hi - lo)) for _ in range(300)]
    points += [np.where(rng.random(len(lo)) < 0.5, *rng.choice(edges, 2, replace=False)) for _ in range(300)]
    points += [np.where(np.arange(len(lo)) == k, e, (lo + hi) / 2) for e in edges for k in range(len(lo))]
    inside = 0
    for x in points:
        theta = pyabc.Parameter(dict(zip(names, x.tolist())))
        a, b = fast.pdf(theta), slow.pdf(theta)
        assert type(a) is type(b) and a.tobytes() == b.tobytes(), (dict(theta), a, b)
        inside += a > 0
    assert 0 < inside < len(points)   # both sides of the bounds were met
    theta = pyabc.Parameter(dict(zip(names, ((lo + hi) / 2).tolist())))
    theta[names[0]] = math.nan
    assert math.isnan(fast.pdf(theta)) and math.isnan(slow.pdf(theta))
    assert fast.pdf(theta) != 0
    with pytest.raises(Exception, match="parameter mismatch"):
        fast.pdf(pyabc.Parameter({names[0]: 0.5}))


@pytest.mark.parametrize("name", ["normal", "local"])
@pytest.mark.parametrize("cloud", ["even", "uneven", "integer"])
def test_the_fast_transitions_draw_pyabcs_numbers_and_leave_numpys_generator_as_pyabc_does(name, cloud):
    """``cal.fast_transition(name)`` against pyabc's own transition fitted to the same weighted particles (a
    correlated cloud; weights even or uneven; or integer particles, which pyabc's own draw handles): 1,000 draws
    under one seed, the same values to the bit, the same types, the generator left in the same state; and the same
    density. The fast draw runs on float particles, pyabc's on integer ones."""
    import pyabc

    rng = np.random.default_rng(4)
    cloud_values = rng.normal(size=(150, 5)) @ rng.normal(size=(5, 5))
    if cloud == "integer":
        cloud_values = np.round(cloud_values * 100).astype(np.int64)
    X = pd.DataFrame(cloud_values, columns=[f"p{i}" for i in range(5)])
    w = rng.random(150) ** (8 if cloud == "uneven" else 0)
    w /= w.sum()
    own = {"normal": pyabc.MultivariateNormalTransition, "local": pyabc.LocalTransition}[name]()
    fast = cal.fast_transition(name)
    own.fit(X, w)
    fast.fit(X, w)
    assert fast._fast == (cloud != "integer")
    draws, states = [], []
    for t in (own, fast):
        np.random.seed(9)
        draws.append([t.rvs_single() for _ in range(1000)])
        states.append(np.random.get_state()[1].copy())
    for a, b in zip(*draws):
        assert list(a) == list(b) and [type(v) for v in a.values()] == [type(v) for v in b.values()]
        assert np.array(list(a.values())).tobytes() == np.array(list(b.values())).tobytes()
    assert (states[0] == states[1]).all()
    assert fast.pdf(draws[1][0]) == own.pdf(draws[1][0])


def test_a_range_of_width_zero_keeps_scipys_density():
    """A range whose ends are one number (a log-scale range whose ends have one logarithm) gets pyabc's own prior:
    SciPy's NaN density, not a division by zero."""
    import types

    import pyabc

    space = types.SimpleNamespace(params=[types.SimpleNamespace(name="a", bounds=(0.0, 1.0)),
                                          types.SimpleNamespace(name="b", bounds=(690.0, 690.0))])
    prior = cal.uniform_prior(space)
    assert type(prior) is pyabc.Distribution
    assert math.isnan(prior.pdf(pyabc.Parameter({"a": 0.5, "b": 690.0})))
    space.params[1].bounds = (690.0, 691.0)
    assert type(cal.uniform_prior(space)) is not pyabc.Distribution   # the fast one where the widths allow it
