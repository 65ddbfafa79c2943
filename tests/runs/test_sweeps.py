"""Sweeps as a researcher runs them: multirun, grid inside jobs, kill -9, resume, collect."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from sim import api
from sim.runs.sweep import ResultStore, expected_runs, run_id

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["scenario.firms.n=300", "scenario.universities.n=3", "scenario.months=24", "progress=false"]


def _sweep(tmp_path, *args, timeout=300, **kw):
    return subprocess.run([sys.executable, "-m", "experiments.run", "-m", *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=timeout, **kw)


def _collect(tmp_path, sweep_dir, *args):
    return subprocess.run([sys.executable, "-m", "experiments.collect", str(sweep_dir), *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)


def _sweep_dir(tmp_path) -> Path:
    dirs = list((tmp_path / "multirun").iterdir())
    assert len(dirs) == 1, dirs
    return dirs[0]


def test_sweep_with_grid_collects_every_run_once_and_resumes(tmp_path):
    args = ["regime=free_trial,combined", "+grid.broker_reward.rate=[0.005,0.015]", "+grid.broker_reward.cap=[100000,300000]",
            "seeds=3", *SMALL]
    p = _sweep(tmp_path, *args)
    assert p.returncode == 0, p.stderr
    d = _sweep_dir(tmp_path)
    assert p.stdout.count("12 runs, 0 already done, 12 ran, 0 failed") == 2  # 2 jobs x (2 x 2 points x 3 seeds)

    c = _collect(tmp_path, d)
    assert c.returncode == 0, c.stdout + c.stderr
    assert "24 runs expected, 24 present, 0 missing, 0 failed" in c.stdout
    df = pd.read_parquet(d / "sweep.parquet")
    assert len(df) == 24 and df.run_id.is_unique
    assert not df.duplicated(["regime.name", "broker_reward.rate", "broker_reward.cap", "seed"]).any()
    assert set(df["broker_reward.rate"]) == {0.005, 0.015} and set(df["broker_reward.cap"]) == {100000, 300000}
    assert {"successes", "gov_spend", "scenario.firms.n", "engine"} <= set(df.columns)
    assert (df.engine == "numba").all()  # sweeps default to the fast engine
    assert (d / "sweep_lines.png").stat().st_size > 10_000 and (d / "sweep_heatmap.png").stat().st_size > 10_000

    # the same sweep again: same folder, nothing recomputed
    p2 = _sweep(tmp_path, *args)
    assert p2.returncode == 0, p2.stderr
    assert _sweep_dir(tmp_path) == d
    assert p2.stdout.count("12 runs, 12 already done, 0 ran, 0 failed") == 2


def test_sweep_results_equal_single_runs(tmp_path):
    p = _sweep(tmp_path, "regime=broker_reward", "seed=4,5", *SMALL)
    assert p.returncode == 0, p.stderr
    store = ResultStore(_sweep_dir(tmp_path))
    recs = {r["seed"]: r for r in store.records()}
    assert set(recs) == {4, 5}
    cfg = api.under_regime(api.compose(*SMALL), "broker_reward")
    for seed, rec in recs.items():
        assert rec["id"] == run_id(cfg, seed)
        ref = api.simulate(cfg, seed, engine="mesa").summary  # the reference engine, in this process
        assert rec["metrics"]["successes"] == ref["successes"] and rec["metrics"]["gov_spend"] == ref["gov_spend"]


def test_sweep_over_combinations_of_instruments_under_a_name_of_ones_own(tmp_path):
    """regime.instruments swept under one label: each combination is its own run, axis and plotted regime."""
    p = _sweep(tmp_path, "regime.name=mix", "regime.instruments=[free_trial],[free_trial,insurance]", "seeds=2",
               *SMALL)
    assert p.returncode == 0, p.stderr
    d = _sweep_dir(tmp_path)
    c = _collect(tmp_path, d)
    assert c.returncode == 0, c.stdout + c.stderr
    assert "4 runs expected, 4 present, 0 missing, 0 failed" in c.stdout and "swept: regime.instruments" in c.stdout
    df = pd.read_parquet(d / "sweep.parquet")
    assert (df["regime.name"] == "mix").all()
    combos = df["regime.instruments"].map(tuple)
    assert sorted(set(combos)) == [("free_trial",), ("free_trial", "insurance")]
    assert (df[combos == ("free_trial",)].signed_insured == 0).all()
    assert (df[combos == ("free_trial", "insurance")].signed_insured > 0).all()
    assert (df.signed_trial > 0).all()
    for combo, runs in df.groupby(combos.map(",".join)):  # the same numbers as the config composed in-process
        cfg = api.compose(*SMALL, "regime.name=mix", f"regime.instruments=[{combo}]")
        for _, row in runs.iterrows():
            assert row.run_id == run_id(cfg, row.seed)
            ref = api.simulate(cfg, row.seed, engine="numba").summary
            assert row.successes == ref["successes"] and row.premiums == ref["premiums"]
    # the plot draws the two combinations apart, not one average under their common name
    from sim.analysis.plots import sweep_lines_figure

    fig = sweep_lines_figure(df, ["regime.instruments"], "successes")
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert len(labels) == 2 and len(set(labels)) == 2 and all(lb.startswith("mix") for lb in labels), labels
    assert any("insurance" in lb for lb in labels)


def _count_results(d: Path) -> int:
    r = d / "results"
    return len(list(r.glob("*.json"))) if r.exists() else 0


def test_sweep_killed_with_sigkill_and_rerun_has_every_point_once(tmp_path):
    # slow enough to be caught half-way: the Mesa engine, 4 jobs x 30 runs, 2 worker processes (killed at 20 runs,
    # before any job is done)
    args = ["hydra/launcher=local", "hydra.launcher.n_jobs=2", "engine=mesa",
            "regime=baseline,free_trial,broker_reward,combined", "seeds=30", *SMALL]
    proc = subprocess.Popen([sys.executable, "-m", "experiments.run", "-m", *args], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    d = None
    while time.time() < deadline:
        if (tmp_path / "multirun").exists() and any((tmp_path / "multirun").iterdir()):
            d = _sweep_dir(tmp_path)
            if _count_results(d) >= 20:
                break
        time.sleep(0.05)
    assert d is not None and proc.poll() is None, "the sweep ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and its workers, mid-sweep
    proc.wait()
    done_at_kill = _count_results(d)
    assert 20 <= done_at_kill < 120
    # a writer killed between writing and renaming leaves a temporary file: make sure there is one
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = d / "results" / f".{'0' * 24}.{os.uname().nodename}.{dead.pid}.tmp"
    stale.write_text('{"half": ')

    c = _collect(tmp_path, d)
    assert c.returncode == 1 and "120 runs expected" in c.stdout and "MISSING" in c.stdout
    assert not stale.exists()  # the dead writer's file is gone

    p = _sweep(tmp_path, *args)  # the same command resumes in the same folder
    assert p.returncode == 0, p.stderr
    c = _collect(tmp_path, d)
    assert c.returncode == 0, c.stdout
    assert "120 runs expected, 120 present, 0 missing, 0 failed" in c.stdout
    df = pd.read_parquet(d / "sweep.parquet")
    assert len(df) == 120 and df.run_id.is_unique
    assert not df.duplicated(["regime.name", "seed"]).any()
    assert not list(d.rglob("*.tmp"))
    # every result file is whole JSON
    for f in (d / "results").glob("*.json"):
        json.loads(f.read_text())
    # and the re-run did not redo what was done before the kill
    recomputed = sum(int(line.split(" already done")[0].split()[-1]) for line in p.stdout.splitlines()
                     if "already done" in line)
    assert recomputed >= done_at_kill


def test_collect_names_missing_and_failed_runs(tmp_path):
    p = _sweep(tmp_path, "regime=baseline", "+grid.broker_reward.rate=[0.01,0.02]", "seeds=2", *SMALL)
    assert p.returncode == 0, p.stderr
    d = _sweep_dir(tmp_path)
    store = ResultStore(d)
    runs = expected_runs(d)
    assert len(runs) == 4
    (gone_id, gone_seed, gone_params), (bad_id, bad_seed, bad_params) = runs[0], runs[3]
    store.path(gone_id).unlink()
    store.path(bad_id).unlink()
    store.write_failure(bad_id, {"id": bad_id, "seed": bad_seed, "params": bad_params, "error": "RuntimeError: boom"})
    c = _collect(tmp_path, d)
    assert c.returncode == 1
    assert f"MISSING broker_reward.rate={gone_params['broker_reward.rate']}, seed={gone_seed}" in c.stdout
    assert f"FAILED  broker_reward.rate={bad_params['broker_reward.rate']}, seed={bad_seed}: RuntimeError: boom" in c.stdout
    assert len(pd.read_parquet(d / "sweep.parquet")) == 2


def test_results_dir_elsewhere_is_found_by_collect(tmp_path):
    elsewhere = tmp_path / "shared" / "results-store"
    p = _sweep(tmp_path, "regime=baseline", "seed=0,1", f"results_dir={elsewhere}", *SMALL)
    assert p.returncode == 0, p.stderr
    d = _sweep_dir(tmp_path)
    assert not (d / "results").exists() and len(list((elsewhere / "results").glob("*.json"))) == 2
    c = _collect(tmp_path, d, "--no-plots")
    assert c.returncode == 0 and "2 runs expected, 2 present" in c.stdout, c.stdout


def test_collect_rejects_a_folder_that_is_not_a_sweep(tmp_path):
    c = _collect(tmp_path, tmp_path)
    assert c.returncode == 2 and "no multirun.yaml" in c.stderr and "Traceback" not in c.stderr


@pytest.mark.parametrize("args, fragment", [
    (["+grid.broker_reward.rate=0.01"], "grid.broker_reward.rate = 0.01: must be a non-empty list"),
    (["+grid.broker_reward.nope=[1,2]"], "unknown key 'broker_reward.nope'"),
])
def test_bad_grid_is_a_config_error(tmp_path, args, fragment):
    p = _sweep(tmp_path, "regime=baseline", "seed=0", *args, *SMALL)
    assert p.returncode == 2, p.stdout + p.stderr
    assert fragment in p.stderr and "Traceback" not in p.stderr


@pytest.mark.parametrize("args, fragment", [
    (["+grid.seed=[1,2]"], "grid.seed: a grid sweeps model parameters"),
    (["+grid.seeds=[1,2]"], "grid.seeds: a grid sweeps model parameters"),
    (["+grid.regime.name=[free_trial,combined]"], "grid.regime.name: a grid sweeps model parameters"),
    (["+grid.regime.instruments=[[insurance],[]]"], "grid.regime.instruments: a grid sweeps model parameters"),
    (["regime.free_trial=true"], "unknown key 'regime.free_trial': allowed keys in regime are name, instruments"),
    (["regime.instruments=[free_trial]"], "regime.instruments = ['free_trial']: regime 'baseline'"),
    (["regime=baseline,free_trial", "regime.instruments=[insurance]"], "regime.instruments = ['insurance']: regime"),
    (["regime.name=mix", "regime.instruments=[insurance,insurance]"], "each instrument may appear once"),
    (["regime=[baseline,combined]"], "pick one regime by name"),
])
def test_sweep_settings_that_would_be_dropped_or_mislabelled_are_refused(tmp_path, args, fragment):
    p = _sweep(tmp_path, "seed=0", *args, *SMALL)
    assert p.returncode == 2, p.stdout + p.stderr
    assert fragment in p.stderr and "Traceback" not in p.stderr
    assert not list(tmp_path.rglob("*.json"))  # nothing ran


def test_resume_with_other_workers_or_progress_lands_in_the_same_folder(tmp_path):
    args = ["regime=baseline", "seeds=3", *SMALL]
    p = _sweep(tmp_path, *args)
    assert p.returncode == 0, p.stderr
    d = _sweep_dir(tmp_path)
    p2 = _sweep(tmp_path, *[a for a in args if a != "progress=false"], "workers=2", "progress=true")
    assert p2.returncode == 0, p2.stderr
    assert _sweep_dir(tmp_path) == d and "3 runs, 3 already done, 0 ran, 0 failed" in p2.stdout


def test_a_sweep_whose_runs_fail_exits_non_zero_and_collect_lists_them(tmp_path):
    # accepted by the schema, refused run by run: the money of these populations is beyond exact counting
    p = _sweep(tmp_path, "regime=baseline", "seed=0,1", "scenario.achievements.value_median=1e12",
               "scenario.achievements.value_sigma=3", *SMALL)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "1 of 1 runs failed" in p.stderr and "Traceback" not in p.stderr
    d = _sweep_dir(tmp_path)
    assert not (d / "results").exists() or not list((d / "results").glob("*.json"))
    c = _collect(tmp_path, d, "--no-plots")
    assert c.returncode == 1 and c.stdout.count("FAILED") == 2 and "the money of this run could reach" in c.stdout
