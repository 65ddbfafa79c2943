"""Global sensitivity (sim/analysis/sensitivity.py, experiments/sensitivity.py) and the model as a function (sim/analysis/explore.py).

* the pipeline (design -> evaluate -> analyse) recovers Ishigami's known Sobol indices;
* on the model, a parameter that does nothing (an insurance parameter under vouchers) has indices 0 within their
  intervals, while a parameter that acts is told apart from 0;
* the model function, driven by EMA Workbench's own ``perform_experiments``, gives the outcomes our evaluation gives,
  on common random numbers; results do not depend on the number of processes;
* the app writes its tables (the indices are those of its outcomes), resumes from its Parquet parts, and refuses bad
  values in one line.
"""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sim import api
from sim.analysis import sensitivity as sa
from sim.analysis.calibration import Param, load_space
from sim.analysis.explore import OUTCOMES, Levers, build_model, from_ema, load_levers
from sim.core.config import ConfigError

DATA = Path(__file__).parents[1] / "data"
ROOT = Path(__file__).resolve().parents[2]
SMALL = ("engine=numba", "scenario.firms.n=300", "scenario.months=24")

# Ishigami (a = 7, b = 0.1) on [-pi, pi]^3: closed-form indices (Sobol' & Levitan 1999; SALib's test function)
ISHIGAMI_S1 = {"x1": 0.3139, "x2": 0.4424, "x3": 0.0}
ISHIGAMI_ST = {"x1": 0.5576, "x2": 0.4424, "x3": 0.2437}
ISHIGAMI_S13 = 0.2437


def _ishigami(points):
    x = np.array([[p["x1"], p["x2"], p["x3"]] for p in points])
    y = np.sin(x[:, 0]) + 7 * np.sin(x[:, 1]) ** 2 + 0.1 * x[:, 2] ** 4 * np.sin(x[:, 0])
    return pd.DataFrame({"y": y})


def test_the_pipeline_recovers_ishigamis_indices():
    params = [Param(k, -math.pi, math.pi) for k in ("x1", "x2", "x3")]
    _, table, idx, undefined = sa.run(params, _ishigami, ["y"], "sobol", 4096, 0, second_order=True, resamples=300)
    assert not undefined and len(table) == 4096 * (2 * 3 + 2)

    def get(index, p, p2=""):
        return idx[(idx["index"] == index) & (idx["parameter"] == p) & (idx["parameter2"] == p2)].iloc[0]

    for p in ("x1", "x2", "x3"):
        for index, truth in (("S1", ISHIGAMI_S1[p]), ("ST", ISHIGAMI_ST[p])):
            r = get(index, p)
            assert abs(r["value"] - truth) < 0.04, (index, p, r["value"], truth)
            assert r["low"] - 0.01 <= truth <= r["high"] + 0.01, (index, p, r["low"], r["high"], truth)
    s13 = get("S2", "x1", "x3")
    assert abs(s13["value"] - ISHIGAMI_S13) < 0.06 and s13["low"] < ISHIGAMI_S13 < s13["high"]
    assert get("S2", "x1", "x2")["low"] < 0 < get("S2", "x1", "x2")["high"]  # no x1-x2 interaction
    # Morris on the same function ranks x3's mean effect (|mu|) far below its mu* (x3 acts only through x1's sign)
    _, _, m, _ = sa.run(params, _ishigami, ["y"], "morris", 200, 0)
    mu = m[m["index"] == "mu"].set_index("parameter")["value"]
    mu_star = m[m["index"] == "mu_star"].set_index("parameter")["value"]
    assert abs(mu["x3"]) < 0.5 * mu_star["x3"] and mu_star["x2"] > mu_star["x3"]


def test_a_parameter_that_does_nothing_has_indices_zero_within_their_intervals():
    """insurance.loading under the vouchers regime (no insurer in the market) cannot change a run; the two firms'
    parameters do. Common random numbers make the inert parameter's indices exactly 0, not noise."""
    base = api.compose("regime=vouchers", *SMALL)
    space = load_space(str(DATA / "inert_space.yaml"))
    model = build_model(base, space, outcomes=["conversions", "gov_spend_per_year"], replicates=2)
    _, table, idx, undefined = sa.run(model.uncertainties, model.evaluate, model.outcomes, "sobol", 64, 0,
                                      resamples=300)
    assert not undefined
    for outcome in model.outcomes:
        t = idx[idx["outcome"] == outcome].set_index(["index", "parameter"])
        for index in ("S1", "ST"):
            r = t.loc[(index, "insurance.loading")]
            assert r["low"] <= 0 <= r["high"] and abs(r["value"]) < 0.01, (outcome, index, r.to_dict())
        # not vacuous: the firms' risk aversion is told apart from nothing
        assert t.loc[("ST", "scenario.firms.risk_aversion_sme"), "low"] > 0.05
    # the inert parameter's pairs of points (A and A with its column from B) gave identical outcomes
    assert table["conversions"].nunique() > 10


def test_common_random_numbers_every_point_runs_the_same_seeds():
    base = api.compose("regime=vouchers", *SMALL)
    model = build_model(base, load_space(str(DATA / "inert_space.yaml")), outcomes=["conversions"], replicates=3,
                        seed=5)
    point = {"scenario.firms.risk_aversion_sme": 2.0}
    assert [s for _, s in model.tasks(point)] == [5, 6, 7]
    runs = api.run_batch(model.tasks(point))
    assert model(**point)["conversions"] == pytest.approx(np.mean([r.summary["successes"] for r in runs]), abs=0)
    # an inert value changes nothing, run by run (the same seeds and draws)
    assert model(**point, **{"insurance.loading": 5.0}) == model(**point)


def test_outcomes_against_baseline_are_paired_differences_on_the_same_seeds():
    base = api.compose("regime=vouchers", *SMALL)
    model = build_model(base, outcomes=["extra_conversions", "cost_per_extra_conversion", "gov_spend_per_year",
                                        "university_income_change"], replicates=3)
    out = model()
    treated = [api.simulate(base, s, "numba").summary for s in range(3)]
    control = [api.simulate(api.under_regime(base, "baseline"), s, "numba").summary for s in range(3)]
    d_conv = np.mean([t["successes"] - c["successes"] for t, c in zip(treated, control)])
    d_expected = np.mean([t["successes_expected"] - c["successes_expected"] for t, c in zip(treated, control)])
    d_spend = np.mean([t["gov_spend"] - c["gov_spend"] for t, c in zip(treated, control)])
    assert out["extra_conversions"] == pytest.approx(d_conv)
    assert out["gov_spend_per_year"] == pytest.approx(np.mean([t["gov_spend"] for t in treated]) / 2.0)
    if d_expected > 0:   # the cost divides by expected conversions, as the main job's table does
        assert out["cost_per_extra_conversion"] == pytest.approx(d_spend / d_expected)
    else:  # spends for nothing: unbounded; adds nothing and spends nothing more: undefined
        assert out["cost_per_extra_conversion"] == math.inf if d_spend > 0 else math.isnan(out["cost_per_extra_conversion"])
    assert out["university_income_change"] == pytest.approx(
        np.mean([t["university_income"] - c["university_income"] for t, c in zip(treated, control)]))


def test_perform_experiments_of_ema_workbench_drives_the_model():
    from ema_workbench import SequentialEvaluator, perform_experiments

    base = api.compose("regime=baseline", *SMALL)
    levers = load_levers(str(DATA / "small_levers.yaml"))
    space = load_space(str(DATA / "inert_space.yaml")).subset(["scenario.firms.risk_aversion_sme"])
    model = build_model(base, space, levers=levers, outcomes=["conversions", "extra_conversions",
                                                              "gov_spend_per_year"], replicates=2)
    ema = model.to_ema()
    with SequentialEvaluator(ema) as evaluator:
        experiments, outcomes = perform_experiments(ema, scenarios=3, policies=2, evaluator=evaluator)
    assert len(experiments) == 6
    names = [p.name for p in ema.uncertainties] + [p.name for p in ema.levers]
    assert names[0] == "log__scenario__firms__risk_aversion_sme"  # sampled on its logarithm, as our designs do
    points = [dict(from_ema(n, row[n]) for n in names) for _, row in experiments.iterrows()]
    ours = model.evaluate(points)
    for o in model.outcomes:
        np.testing.assert_array_equal(np.asarray(outcomes[o], dtype=float), ours[o].to_numpy())
    # a policy with no instrument on is the baseline: no extra conversion, no spend
    off = [i for i, p in enumerate(points) if not any(p[k] for k in p if k.startswith("use."))]
    for i in off:
        assert outcomes["extra_conversions"][i] == 0 and outcomes["gov_spend_per_year"][i] == 0


def test_results_do_not_depend_on_the_number_of_processes():
    from sim.runs.executor import Executor

    base = api.compose("regime=vouchers", *SMALL)
    model = build_model(base, load_space(str(DATA / "inert_space.yaml")), outcomes=["conversions",
                                                                                  "extra_conversions"], replicates=2)
    points = sa.design(model.uncertainties, "sobol", 4, 1).points
    one = model.evaluate(points)
    ex = Executor("local", 2)
    try:
        two = model.evaluate(points, ex)
    finally:
        ex.close()
    pd.testing.assert_frame_equal(one, two)


def test_bad_designs_and_levers_are_refused_in_one_line(tmp_path):
    base = api.compose(*SMALL)
    space = load_space("judgement")
    with pytest.raises(ConfigError, match="power of 2"):
        sa.design(space.params[:3], "sobol", 100, 0)
    with pytest.raises(ConfigError, match="applies to scenarios"):
        build_model(base, space, ["scenario.firms.need_rate_sme"])  # the county's own parameter
    with pytest.raises(ConfigError, match="unknown outcome"):
        build_model(base, outcomes=["happiness"])
    with pytest.raises(ConfigError, match="not an uncertainty or lever"):
        build_model(base, space, ["scenario.firms.prior_success"])(**{"broker_reward.rate": 0.01})
    bad = tmp_path / "bad.yaml"
    bad.write_text("instruments: [free_trial, teleport]\n")
    with pytest.raises(ConfigError, match="levers.instruments"):
        load_levers(str(bad))
    bad.write_text("parameters: {broker_reward.rate: {low: 0, high: 2}}\n")
    with pytest.raises(ConfigError, match="levers.parameters.broker_reward.rate"):
        load_levers(str(bad))
    bad.write_text("parameters: {scenario.firms.prior_success: {low: 0.1, high: 0.5}}\n")
    with pytest.raises(ConfigError, match="is an uncertainty, not a lever"):
        load_levers(str(bad))
    assert set(OUTCOMES) >= {"conversions", "extra_conversions", "cost_per_extra_conversion", "insurer_loss_p95"}
    assert Levers("x", ("vouchers",)).keys == ["use.vouchers"]


# --------------------------------------------------------------------------- the app
APP = ["regime=vouchers", *SMALL, "sensitivity.method=sobol", "sensitivity.sobol.n=8", "sensitivity.replicates=2",
       f"sensitivity.space={DATA / 'inert_space.yaml'}", "sensitivity.parameters=null",
       "sensitivity.outcomes=[conversions,extra_conversions,cost_per_extra_conversion]", "sensitivity.resamples=100",
       "sensitivity.run.part_size=16", "workers=2", "progress=false"]


def _app(tmp_path, *args, folder="out"):
    return subprocess.run([sys.executable, "-m", "experiments.sensitivity", *args,
                           f"hydra.run.dir={tmp_path / folder}"], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)


def test_the_app_writes_indices_of_its_outcomes_and_resumes_from_its_parts(tmp_path):
    p = _app(tmp_path, *APP)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    out = tmp_path / "out"
    table = pd.read_parquet(out / "outcomes.parquet")
    assert len(table) == 8 * (3 + 2)  # n (d + 2) points
    idx = pd.read_parquet(out / "indices.parquet")
    assert len(pd.read_csv(out / "indices.csv")) == len(idx)
    model = build_model(api.compose("regime=vouchers", *SMALL), load_space(str(DATA / "inert_space.yaml")),
                        outcomes=["conversions"], replicates=2)
    d = sa.design(model.uncertainties, "sobol", 8, 0)
    pd.testing.assert_frame_equal(table[model.names], pd.DataFrame(d.points, columns=model.names))
    finite = [o for o in ("conversions", "extra_conversions", "cost_per_extra_conversion")
              if np.isfinite(table[o]).all()]
    again, undefined = sa.analyse(d, {o: table[o].to_numpy() for o in finite}, 100, 0.95, 0)
    pd.testing.assert_frame_equal(idx[idx["outcome"].isin(finite)].reset_index(drop=True),
                                  again.reset_index(drop=True), check_dtype=False)
    assert (out / "indices.png").stat().st_size > 10_000 and (out / "report.md").exists()
    report = (out / "report.md").read_text()
    assert "insurance.loading" in report and "## conversions" in report
    # a part lost (a kill while it was written leaves none: parts are renamed into place) is recomputed alone
    parts = sorted((out / "parts").glob("part-*.parquet"))
    assert len(parts) == 3  # 40 points in parts of 16
    parts[1].unlink()
    p2 = _app(tmp_path, *APP)
    assert p2.returncode == 0, p2.stderr[-2000:]
    # the lost part's 16 points, 2 replicates, each beside its baseline run ("16 runs/s" may be printed too)
    assert re.findall(r"(\d+) runs in this session", p2.stdout) == [str(16 * 2 * 2)], p2.stdout[-2000:]
    pd.testing.assert_frame_equal(pd.read_parquet(out / "outcomes.parquet"), table)
    # another design in the same folder is refused, not mixed
    p3 = _app(tmp_path, *APP, "sensitivity.replicates=3")
    assert p3.returncode == 2 and p3.stderr.count("\n") == 1 and "holds an exploration" in p3.stderr


@pytest.mark.parametrize("arg, words", [
    ("sensitivity.sobol.n=100", "power of 2"),
    ("sensitivity.method=fast", "sensitivity.method"),
    ("sensitivity.bogus=1", "unknown key 'sensitivity.bogus'"),
    ("sensitivity.outcomes=[joy]", "unknown outcome"),
    ("sensitivity.parameters=[broker_reward.rate,scenario.firms.prior_success]", "not in space"),
    ("sensitivity.replicates=0", "sensitivity.replicates"),
])
def test_the_app_refuses_bad_values_in_one_line(tmp_path, arg, words):
    p = _app(tmp_path, *APP, arg)
    assert p.returncode == 2, p.stdout[-1000:] + p.stderr[-1000:]
    assert p.stderr.count("\n") == 1 and words in p.stderr and "Traceback" not in p.stderr, p.stderr
    assert not (tmp_path / "out").exists()  # nothing written


def test_an_apps_seed_range_is_its_own_replicates_not_the_main_jobs_seeds():
    """The last seed an app runs is seed + replicates - 1 (+ the optimiser's fresh interval replicates)."""
    from types import SimpleNamespace

    from experiments.cli import check_seeds
    from sim.core.config import ConfigError
    from sim.core.schema import SEED_MAX

    check_seeds(SEED_MAX - 3, SimpleNamespace(replicates=4), "sensitivity")  # the last seed is SEED_MAX: allowed
    with pytest.raises(ConfigError, match=r"seed \+ sensitivity.replicates - 1 = 9223372036854775808"):
        check_seeds(SEED_MAX - 2, SimpleNamespace(replicates=4), "sensitivity")
    check_seeds(SEED_MAX, SimpleNamespace(replicates=1), "discover")  # refused before: the main job's 10 seeds
    with pytest.raises(ConfigError, match=r"\+ optimise.interval_replicates - 1"):
        check_seeds(SEED_MAX - 22, SimpleNamespace(replicates=4, interval_replicates=20), "optimise")
    check_seeds(SEED_MAX - 23, SimpleNamespace(replicates=4, interval_replicates=20), "optimise")  # last = SEED_MAX
