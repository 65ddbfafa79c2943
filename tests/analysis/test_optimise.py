"""Policy search (sim.analysis.optimise): the exact front, NSGA-II on a problem with a known front, the search's front
against a brute-force grid of the real model, resume after a kill anywhere, intervals, the best mix for a budget."""

from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.distributions import FloatDistribution
from scipy import stats

from sim import api
from sim.analysis.calibration import parse_params
from sim.core.config import ConfigError
from sim.runs.executor import Executor
from sim.analysis.explore import OUTCOMES, ExploratoryModel, Levers, Runs, build_model, load_levers
from sim.analysis.optimise import (NOT_MEANS, Canonical, ModelBatch, best_for_budget, decision_space, intervals,
                          open_storage, outcome_interval, pareto_front, plot_front, search)

TINY = ("regime=baseline", "scenario.firms.n=200", "scenario.months=24")
ROOT = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- pareto_front
def _naive_front(f: np.ndarray, feasible: np.ndarray) -> np.ndarray:
    """The definition, one pair at a time (objectives minimised)."""
    n = len(f)
    on = np.zeros(n, dtype=bool)
    for i in range(n):
        if not feasible[i] or np.isnan(f[i]).any():
            continue
        on[i] = not any(feasible[j] and not np.isnan(f[j]).any() and (f[j] <= f[i]).all() and (f[j] < f[i]).any()
                        for j in range(n))
    return on


def test_front_closed_form_with_directions():
    t = pd.DataFrame({"conv": [1, 2, 3, 2, 0, 3], "cost": [1, 2, 5, 3, 0, 4]})
    # (2,3) is dominated by (2,2); (3,5) by (3,4); the rest trade conversions against cost
    on = pareto_front(t, {"conv": "max", "cost": "min"})
    assert on.tolist() == [True, True, False, False, True, True]
    # both maximised: only the most of both survives
    assert pareto_front(t, {"conv": "max", "cost": "max"}).tolist() == [False, False, True, False, False, False]


def test_front_ties_all_or_none_and_infeasible_points_excluded():
    t = pd.DataFrame({"conv": [2, 2, 1, 1, 5], "cost": [3, 3, 1, 1, 0]})
    feasible = np.array([True, True, True, True, False])
    # the infeasible (5, 0) would dominate every other point: it is not on the front and dominates nothing
    on = pareto_front(t, {"conv": "max", "cost": "min"}, feasible)
    assert on.tolist() == [True, True, True, True, False]
    # duplicates of a dominated point are off together
    t2 = pd.DataFrame({"conv": [2, 2, 3], "cost": [3, 3, 3]})
    assert pareto_front(t2, {"conv": "max", "cost": "min"}).tolist() == [False, False, True]


def test_front_nan_excluded_inf_compares():
    t = pd.DataFrame({"conv": [1.0, np.nan, 1.0, 2.0], "cost": [np.inf, 0.0, 5.0, np.inf]})
    on = pareto_front(t, {"conv": "max", "cost": "min"})
    # NaN row never on; (1, inf) dominated by (1, 5); (2, inf) has the most conversions
    assert on.tolist() == [False, False, True, True]


def test_front_equals_the_definition_on_random_tables_with_ties():
    rng = np.random.default_rng(3)
    for _ in range(30):
        n, k = rng.integers(1, 60), rng.integers(1, 4)
        f = rng.integers(0, 5, size=(n, k)).astype(float)       # few values: many ties
        feasible = rng.random(n) < 0.8
        t = pd.DataFrame(f, columns=[f"o{i}" for i in range(k)])
        dirs = {f"o{i}": ("max" if i % 2 else "min") for i in range(k)}
        mini = np.column_stack([-f[:, i] if i % 2 else f[:, i] for i in range(k)])
        assert (pareto_front(t, dirs, feasible) == _naive_front(mini, feasible)).all()


def test_front_refuses_unknown_objective_and_bad_direction():
    t = pd.DataFrame({"a": [1.0]})
    with pytest.raises(ConfigError, match="not a column"):
        pareto_front(t, {"b": "max"})
    with pytest.raises(ConfigError, match="max or min"):
        pareto_front(t, {"a": "up"})


# --------------------------------------------------------------------------- best_for_budget
def test_best_for_budget():
    t = pd.DataFrame({"extra_conversions": [1.0, 3.0, 3.0, 5.0, 6.0],
                      "gov_spend_per_year": [10.0, 40.0, 30.0, 60.0, 20.0],
                      "feasible": [True, True, True, True, False]})
    assert best_for_budget(t, 50).name == 2            # 3 conversions: the cheaper of the two
    assert best_for_budget(t, 60).name == 3            # the budget itself is affordable
    assert best_for_budget(t, 25).name == 0            # (6, 20) is within budget but infeasible
    assert best_for_budget(t, 5) is None
    assert best_for_budget(t.drop(columns="feasible"), 25).name == 4


# --------------------------------------------------------------------------- a known front
def _zdt1(points):
    """ZDT1 with two variables: front f2 = 1 - sqrt(f1) at x2 = 0, f1 in [0, 1]."""
    out = []
    for p in points:
        g = 1 + 9 * p["x2"]
        out.append({"f1": p["x1"], "f2": g * (1 - math.sqrt(p["x1"] / g))})
    return out


ZDT_SPACE = {"x1": FloatDistribution(0, 1), "x2": FloatDistribution(0, 1)}
ZDT_OBJ = {"f1": "min", "f2": "min"}


def _hypervolume(f: np.ndarray, ref=(1.1, 1.1)) -> float:
    f = f[np.argsort(f[:, 0])]
    hv, top = 0.0, ref[1]
    for a, b in f:
        if b < top:
            hv += (ref[0] - a) * (top - b)
            top = b
    return hv


@pytest.mark.parametrize("bound", [None, 0.5])
def test_search_finds_a_known_front(bound):
    """Unconstrained: the whole curve; with f2 <= 0.5 its part f1 in [0.25, 1]."""
    res = search(_zdt1, ZDT_SPACE, ZDT_OBJ, None if bound is None else {"f2": bound}, population=32,
                 generations=40, seed=0)
    front = res.front()
    f1, f2 = front["f1"].to_numpy(), front["f2"].to_numpy()
    assert (f2 - (1 - np.sqrt(f1)) >= -1e-12).all()          # nothing beyond the true front
    assert (f2 - (1 - np.sqrt(f1))).max() < 0.02               # every found point close to it
    lo = 0.0 if bound is None else 0.25
    true_hv = 0.1 * (1 - lo) + 2 / 3 * (1 - lo ** 1.5) + 0.11  # area the true front dominates up to (1.1, 1.1)
    assert _hypervolume(np.column_stack([f1, f2])) > 0.98 * true_hv
    assert f1.min() < lo + 0.02 and f1.max() > 0.98            # it spans the front
    if bound is not None:
        assert (f2 <= bound).all() and (~res.trials["feasible"]).any()
        assert (res.trials["feasible"] == (res.trials["f2"] <= bound)).all()


def test_search_without_repeats_evaluates_each_point_once():
    calls = []

    def ev(points):
        calls.extend(points)
        return _zdt1(points)

    res = search(ev, ZDT_SPACE, ZDT_OBJ, population=10, generations=5, seed=1)
    keys = [tuple(sorted(p.items())) for p in calls]
    assert len(keys) == len(set(keys)) == res.evaluations
    assert len(res.trials) == 50 and (res.trials.groupby("generation").size() == 10).all()


# --------------------------------------------------------------------------- resume
def _table(res):
    return res.trials.drop(columns="trial").reset_index(drop=True)


def _uninterrupted():
    """The search the interrupted ones must reproduce: whole, in memory."""
    return search(_zdt1, ZDT_SPACE, ZDT_OBJ, {"f2": 0.6}, population=10, generations=6, seed=5)


def _storage(tmp_path, kind):
    return f"sqlite:///{tmp_path / 'search.db'}" if kind == "sqlite" else str(tmp_path / "search.journal")


@pytest.mark.parametrize("kind", ["journal", "sqlite"])
def test_resume_after_stopping_gives_the_uninterrupted_trials(tmp_path, kind):
    whole = _uninterrupted()
    db = _storage(tmp_path, kind)
    part = search(_zdt1, ZDT_SPACE, ZDT_OBJ, {"f2": 0.6}, population=10, generations=3, seed=5, storage=db)
    assert part.trials["generation"].max() == 2
    if kind == "journal":  # a kill in the middle of writing a line: the line is dropped
        with open(db, "ab") as f:
            f.write(b'{"op_code":4,"worker_id":"x","trial_id":')
    seen = []
    rest = search(lambda p: (seen.extend(p), _zdt1(p))[1], ZDT_SPACE, ZDT_OBJ, {"f2": 0.6}, population=10,
                  generations=6, seed=5, storage=db)
    pd.testing.assert_frame_equal(_table(rest), _table(whole))
    assert len(seen) == rest.evaluations == (~rest.trials["reused"] & (rest.trials["generation"] >= 3)).sum()
    # and a different seed gives other trials (the comparison can fail)
    other = search(_zdt1, ZDT_SPACE, ZDT_OBJ, {"f2": 0.6}, population=10, generations=6, seed=6)
    assert not _table(other)[["x1", "x2"]].equals(_table(whole)[["x1", "x2"]])


class Killed(Exception):
    pass


@pytest.mark.parametrize("where", ["ask", "evaluate", "tell"])
def test_resume_after_a_kill_anywhere_in_a_generation(tmp_path, monkeypatch, where):
    """Killed while asking generation 3's trials, while evaluating them, or while telling them: the resumed
    search's completed trials are the uninterrupted search's."""
    whole = _uninterrupted()
    db = _storage(tmp_path, "journal")
    counts = {"ask": 0, "tell": 0, "evaluate": 0}
    real_ask, real_tell = optuna.study.Study.ask, optuna.study.Study.tell

    def ask(self, *a, **k):
        counts["ask"] += 1
        if where == "ask" and counts["ask"] == 35:        # generation 3, after a few of its trials
            raise Killed
        return real_ask(self, *a, **k)

    def tell(self, trial, values=None, *a, **k):
        if values is not None:
            counts["tell"] += 1
            if where == "tell" and counts["tell"] == 34:   # generation 3, its 4th trial
                raise Killed
        return real_tell(self, trial, values, *a, **k)

    def ev(points):
        counts["evaluate"] += 1
        if where == "evaluate" and counts["evaluate"] == 4:
            raise Killed
        return _zdt1(points)

    monkeypatch.setattr(optuna.study.Study, "ask", ask)
    monkeypatch.setattr(optuna.study.Study, "tell", tell)
    with pytest.raises(Killed):
        search(ev, ZDT_SPACE, ZDT_OBJ, {"f2": 0.6}, population=10, generations=6, seed=5, storage=db)
    monkeypatch.setattr(optuna.study.Study, "ask", real_ask)
    monkeypatch.setattr(optuna.study.Study, "tell", real_tell)
    study = optuna.load_study(study_name="search", storage=open_storage(db))
    states = [t.state for t in study.get_trials(deepcopy=False)]
    assert optuna.trial.TrialState.RUNNING in states                   # the kill left trials unfinished
    resumed = search(_zdt1, ZDT_SPACE, ZDT_OBJ, {"f2": 0.6}, population=10, generations=6, seed=5, storage=db)
    pd.testing.assert_frame_equal(_table(resumed), _table(whole))


def test_resume_refuses_another_search_in_the_same_study(tmp_path):
    db = _storage(tmp_path, "journal")
    search(_zdt1, ZDT_SPACE, ZDT_OBJ, population=4, generations=1, seed=0, storage=db)
    with pytest.raises(ConfigError, match="another population"):
        search(_zdt1, ZDT_SPACE, ZDT_OBJ, population=6, generations=2, seed=0, storage=db)


# --------------------------------------------------------------------------- the real model
OUTS = ["extra_conversions", "extra_public_cost_per_year", "gov_spend_per_year", "insurer_loss_p95"]


@pytest.fixture(scope="module")
def tiny():
    return api.compose(*TINY)


def test_parameters_of_a_switched_off_instrument_change_nothing(tiny):
    """Canonical's claim, on the levers file: with an instrument off, its section's parameters at either end of
    their ranges give the same runs (the others on, at their ranges' middles)."""
    lev = load_levers("instruments")
    model = ExploratoryModel(tiny, (), lev, tuple(OUTCOMES), replicates=1, seed=3)
    mid = {p.key: (p.low + p.high) / 2 for p in lev.params}
    canon = Canonical(lev)
    points, differs = [], []
    for s in lev.switches:
        base = {**{f"use.{x}": int(x != s) for x in lev.switches}, **mid}
        dropped = set(base) - set(canon(base))
        assert dropped, s                                       # every switch has parameters in the file
        for end in ("low", "high"):
            points.append({**base, **{p.key: getattr(p, end) for p in lev.params if p.key in dropped}})
    out = model.evaluate(points)[list(OUTCOMES)]
    for i, s in enumerate(lev.switches):
        pd.testing.assert_series_equal(out.iloc[2 * i], out.iloc[2 * i + 1], check_names=False, obj=s)
    # the same parameters do change the runs when their instrument is on (so the comparison can fail)
    on = {**{f"use.{x}": 1 for x in lev.switches}, **mid}
    lo_hi = [{**on, "broker_reward.rate": 0.001, "broker_reward.cap": 50000}, {**on, "broker_reward.rate": 0.015, "broker_reward.cap": 300000}]
    o2 = model.evaluate(lo_hi)
    assert o2["gov_spend_per_year"].iloc[0] != o2["gov_spend_per_year"].iloc[1]


def test_search_front_equals_the_brute_force_front(tiny):
    """2 switches x an integer lever of 4 values on a tiny region: the exact front of the whole grid (run here)
    and the search's front (run in 2 processes, cached) are the same points with the same outcomes."""
    lev = Levers("small", ("broker_reward", "expert_visits"),
                 parse_params({"expert_visits.visits_per_month": {"low": 3, "high": 6, "integer": True}}, "levers"))
    model = build_model(tiny, levers=lev, outcomes=OUTS, replicates=2, seed=0)
    # government's payments, not the public cost: expert visits and broker rewards bring public universities more
    # than they cost, so on the public cost the most conversions would also be the cheapest (a front of one point)
    obj = {"extra_conversions": "max", "gov_spend_per_year": "min"}
    budget = 500_000
    grid = [{"use.broker_reward": b, "use.expert_visits": e, "expert_visits.visits_per_month": v}
            for b in (0, 1) for e in (0, 1) for v in range(3, 7)]
    g = model.evaluate(grid)
    g["feasible"] = g["gov_spend_per_year"] <= budget
    assert g["feasible"].any() and not g["feasible"].all()    # the budget binds
    on = pareto_front(g, obj, g["feasible"].to_numpy())
    canon = Canonical(lev)

    def key(r):
        return tuple(sorted((k, float(v)) for k, v in canon({k: r[k] for k in lev.keys}).items()
                            if not pd.isna(v)))

    exact = {key(r): tuple(r[o] for o in OUTS) for _, r in g[on].iterrows()}
    ex = Executor("local", 2)
    try:
        res = search(ModelBatch(model, ex), decision_space(lev), obj, {"gov_spend_per_year": budget},
                     population=8, generations=5, seed=0, canonical=canon)
    finally:
        ex.close()
    found = {key(r): tuple(r[o] for o in OUTS) for _, r in res.front().iterrows()}
    assert found == exact
    assert len(exact) >= 2
    # every trial's outcomes are the grid's for its point (the same common random numbers, any process)
    grid_by_key = {key(r): tuple(r[o] for o in OUTS) for _, r in g.iterrows()}
    for _, r in res.trials.iterrows():
        assert tuple(r[o] for o in OUTS) == grid_by_key[key(r)]
    # each distinct point run once: 2 with visits off + 2 x 4 with them on
    assert res.evaluations == len({key(r) for _, r in res.trials.iterrows()}) <= 10
    best = best_for_budget(res.front(), budget)
    assert best["extra_conversions"] == g.loc[g["feasible"], "extra_conversions"].max()


def test_every_outcome_but_ratios_and_percentiles_is_a_mean_over_replicates():
    """intervals() takes a Student t over per-replicate values for these: they must average to the outcome."""
    rng = np.random.default_rng(0)
    metrics = {m for o in OUTCOMES.values() for m in o.metrics}
    runs = {m: rng.normal(10, 3, 5) for m in metrics}
    runs["net_insurers"] = rng.normal(-2, 5, 5)                 # insurers lose in some replicates, gain in others
    r = Runs(runs, {m: runs[m] - rng.uniform(1, 3, 5) for m in metrics}, 2.0)  # every replicate adds
    for name, o in OUTCOMES.items():
        per = [o.fn(Runs({m: a[[k]] for m, a in r.runs.items()}, {m: a[[k]] for m, a in r.base.items()}, 2.0))
               for k in range(5)]
        assert np.isfinite(per).all() and np.isfinite(o.fn(r)), name
        if name in NOT_MEANS:
            assert not np.isclose(np.mean(per), o.fn(r)), name
        else:
            assert np.isclose(np.mean(per), o.fn(r)), name


def test_intervals_are_the_t_intervals_of_replicates_on_fresh_seeds(tiny):
    lev = Levers("one", ("broker_reward", "expert_visits"), ())
    outs = ["extra_conversions", "gov_spend_per_year", "cost_per_extra_conversion"]
    model = build_model(tiny, levers=lev, outcomes=outs, replicates=2, seed=10)
    point = {"use.broker_reward": 1, "use.expert_visits": 1}
    iv = intervals(model, [point], replicates=4)
    assert iv["seed"].iloc[0] == 12 and iv["replicates"].iloc[0] == 4     # fresh seeds: 12..15
    # each replicate alone: a model of one replicate at each seed
    per = pd.DataFrame([build_model(tiny, levers=lev, outcomes=outs, replicates=1, seed=s)(**point)
                        for s in range(12, 16)])
    for o in ("extra_conversions", "gov_spend_per_year"):
        x = per[o].to_numpy()
        half = stats.t.ppf(0.975, 3) * x.std(ddof=1) / 2
        assert iv[o].iloc[0] == pytest.approx(x.mean())
        if half > 0:
            assert iv[o + "_lo"].iloc[0] == pytest.approx(x.mean() - half)
            assert iv[o + "_hi"].iloc[0] == pytest.approx(x.mean() + half)
    whole = build_model(tiny, levers=lev, outcomes=outs, replicates=4, seed=12)(**point)
    assert iv["cost_per_extra_conversion"].iloc[0] == pytest.approx(whole["cost_per_extra_conversion"])
    assert iv["gov_spend_per_year_hi"].iloc[0] > iv["gov_spend_per_year_lo"].iloc[0]
    with pytest.raises(ConfigError, match="replicates"):
        intervals(model, [point], replicates=1)


def test_outcome_interval_bootstrap_brackets_a_ratio():
    # the cost divides by expected conversions (no deal running at the horizon here: the realised ones)
    r = Runs({"successes_expected": np.array([3.0, 4, 5, 6]), "gov_spend": np.array([10.0, 14, 15, 20])},
             {"successes_expected": np.array([1.0, 2, 2, 3]), "gov_spend": np.zeros(4)}, 1.0)
    est, lo, hi = outcome_interval("cost_per_extra_conversion", r)
    assert est == pytest.approx(59 / 10)
    assert lo < est < hi


def test_plot_front_writes_a_png(tmp_path):
    res = search(_zdt1, ZDT_SPACE, {"f1": "max", "f2": "min"}, {"f2": 0.8}, population=6, generations=2, seed=0)
    t = res.trials.rename(columns={"f1": "extra_conversions", "f2": "extra_public_cost_per_year"})
    t["gov_spend_per_year"] = t["x1"]
    best = best_for_budget(t[t["feasible"]], 0.6)
    path = tmp_path / "front.png"
    plot_front(t, {"extra_conversions": "max", "extra_public_cost_per_year": "min"}, path, budget=0.6, best=best)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- the app
APP_TINY = ["engine=numba", "scenario.firms.n=200", "scenario.months=24"]
APP = [*APP_TINY, f"optimise.levers={Path(__file__).parents[1] / 'data' / 'small_levers.yaml'}",
       "optimise.population=6", "optimise.replicates=2", "optimise.interval_replicates=3", "optimise.budget=3e5",
       "workers=2", "progress=false"]


def _app(tmp_path, *args, folder="out"):
    return subprocess.run([sys.executable, "-m", "experiments.optimise", *args, f"hydra.run.dir={tmp_path / folder}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)


def _direct(generations: int):
    """The app's search and front, computed here (in memory, in this process)."""
    from experiments.optimise import REPORTED

    lev = load_levers(str(Path(__file__).parents[1] / "data" / "small_levers.yaml"))
    model = build_model(api.compose("regime=baseline", *APP_TINY), levers=lev,
                        outcomes=list(dict.fromkeys(["extra_conversions", "extra_public_cost_per_year", *REPORTED])),
                        replicates=2, seed=0)
    res = search(ModelBatch(model), decision_space(lev), {"extra_conversions": "max",
                                                          "extra_public_cost_per_year": "min"},
                 {"gov_spend_per_year": 3e5}, population=6, generations=generations, seed=0, canonical=Canonical(lev))
    return model, res


def test_the_app_writes_the_front_of_a_direct_search_and_resumes_after_kill_9(tmp_path):
    args = [*APP, "optimise.generations=8"]
    cmd = [sys.executable, "-m", "experiments.optimise", *args, f"hydra.run.dir={tmp_path / 'out'}"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    journal = tmp_path / "out" / "search.journal"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:  # killed once generation 2 is being asked
        if journal.exists() and '"generation":2' in journal.read_text(errors="replace"):
            break
        time.sleep(0.02)
    assert proc.poll() is None, proc.stderr.read()[-2000:]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with contextlib.suppress(ProcessLookupError):  # its worker processes too: orphaned, they waited forever
        os.killpg(proc.pid, signal.SIGKILL)
    assert not (tmp_path / "out" / "trials.parquet").exists()
    p = _app(tmp_path, *args)                              # the same command resumes in the same folder
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    out = tmp_path / "out"
    model, res = _direct(8)
    trials = pd.read_parquet(out / "trials.parquet")
    pd.testing.assert_frame_equal(trials.drop(columns="trial"), res.trials.drop(columns="trial"), check_dtype=False)
    front = pd.read_csv(out / "front.csv")
    direct_front = res.front()
    cols = ["generation", *res.names, *model.outcomes]
    pd.testing.assert_frame_equal(front[cols], direct_front[cols], check_dtype=False)
    best = best_for_budget(direct_front, 3e5)
    assert front["best"].tolist() == [i == best.name for i in range(len(direct_front))]
    iv = intervals(model, [{k: r[k] for k in res.names} for _, r in direct_front.iterrows()], replicates=3)
    for o in model.outcomes:
        np.testing.assert_allclose(front[o + "_mean"], iv[o], rtol=1e-12)
        np.testing.assert_allclose(front[o + "_lo"], iv[o + "_lo"], rtol=1e-12)
    assert (out / "front.png").read_bytes()[:4] == b"\x89PNG"
    assert "best mix for a budget of 300,000" in (out / "best.md").read_text()
    assert "## The Pareto front" in (out / "report.md").read_text()
    # run again: nothing is evaluated, the same files
    p2 = _app(tmp_path, *args)
    assert p2.returncode == 0 and "0 new points and 0 front points re-evaluated" in p2.stdout, p2.stdout[-2000:]
    pd.testing.assert_frame_equal(pd.read_parquet(out / "trials.parquet"), trials)
    # another search in the same folder is refused, not mixed
    p3 = _app(tmp_path, *args, "optimise.population=8")
    assert p3.returncode == 2 and p3.stderr.count("\n") == 1 and "holds an exploration" in p3.stderr


def test_stored_intervals_are_reused_only_if_they_are_these_intervals(tmp_path):
    """The front's re-evaluations (intervals/parts) carry their identity (the search model's, with the intervals'
    replicates, seeds and level) and are checked as intervals: a part at another level is refused, not read as this
    one; a part whose mean lies outside its bounds (its digest recomputed: no checksum catches it) is moved aside and
    recomputed to the same numbers."""
    from experiments.optimise import _IntervalDesign
    from sim.analysis.designs import _part, _read_part, run_design, values_digest, write_parquet

    model, res = _direct(1)
    points = [{k: res.trials.iloc[0][k] for k in res.names}]
    folder = tmp_path / "intervals"
    first, n = run_design(_IntervalDesign(model, 3, 0.95), points, folder)
    assert n == 1
    again, n = run_design(_IntervalDesign(model, 3, 0.95), points, folder)
    assert n == 0 and again.equals(first)
    with pytest.raises(ConfigError, match="holds a part of an exploration with other level"):
        run_design(_IntervalDesign(model, 3, 0.9), points, folder)
    with pytest.raises(ConfigError, match="holds a part of an exploration with other replicates;"):
        run_design(_IntervalDesign(model, 4, 0.95), points, folder)
    stored, meta = _read_part(_part(folder, 0))
    o = model.outcomes[0]
    stored[f"{o}_mean"] = stored[f"{o}_hi"] + 1.0
    write_parquet(stored, _part(folder, 0), {**meta, "digest": values_digest(stored)})
    fixed, n = run_design(_IntervalDesign(model, 3, 0.95), points, folder)
    assert n == 1 and fixed.equals(first)
    assert len(list((folder / "parts").glob("part-00000.parquet.damaged-*.reason"))) == 1


@pytest.mark.parametrize("arg, words", [
    ("optimise.cost=joy", "optimise.cost"),
    ("optimise.population=1", "optimise.population"),
    ("optimise.budget=-1", "optimise.budget"),
    ("optimise.levers=nowhere", "optimise.levers = nowhere"),
    ("optimise.bogus=1", "unknown key 'optimise.bogus'"),
])
def test_the_app_refuses_bad_values_in_one_line(tmp_path, arg, words):
    p = _app(tmp_path, *APP, "optimise.generations=2", arg)
    assert p.returncode == 2, p.stdout[-1000:] + p.stderr[-1000:]
    assert p.stderr.count("\n") == 1 and words in p.stderr and "Traceback" not in p.stderr, p.stderr
    assert not (tmp_path / "out").exists()  # nothing written
