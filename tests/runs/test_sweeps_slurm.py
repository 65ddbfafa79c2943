"""A sweep submitted through Hydra's submitit launcher to a real (local, single-node) Slurm cluster.

Needs Slurm installed (``bash tests/slurm/install.sh``, part of the README's test command)
and root; skipped with the reason otherwise, unless REQUIRE_SLURM=1 (CI), then it fails.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from sim.runs.sweep import ResultStore

from ..slurm_cluster import SlurmCluster

SMALL = ["scenario.firms.n=300", "scenario.universities.n=3", "scenario.months=24", "progress=false"]


def _sweep(cluster: SlurmCluster, cwd: Path, *args: str):
    return subprocess.run(
        [sys.executable, "-m", "experiments.run", "-m", "hydra/launcher=slurm",
         f"hydra.launcher.partition={cluster.partition}", "hydra.launcher.timeout_min=5",
         "hydra.launcher.mem_gb=1", "hydra.launcher.cpus_per_task=1", *args, *SMALL],
        cwd=cwd, env=cluster.environ(), capture_output=True, text=True, timeout=300,
    )


def test_sweep_runs_every_point_through_slurm(slurm_cluster: SlurmCluster, tmp_path):
    p = _sweep(slurm_cluster, tmp_path, "regime=baseline,free_trial", "seed=0,1",
               "+grid.broker_reward.rate=[0.005,0.015]")
    assert p.returncode == 0, p.stdout + p.stderr
    (sweep_dir,) = (tmp_path / "multirun").iterdir()
    records = list(ResultStore(sweep_dir).records())
    assert len(records) == 2 * 2 * 2
    # every run was computed inside a Slurm job of one array, and Slurm accounted for each job
    jobs = {r["slurm_job_id"] for r in records}
    assert None not in jobs and len(jobs) == 4
    arrays = {r["slurm_array_job_id"] for r in records}
    assert len(arrays) == 1 and None not in arrays
    array_id = arrays.pop()
    states = slurm_cluster.wait_for_jobs([f"{array_id}_{i}" for i in range(4)], timeout=60)
    assert set(states.values()) == {"COMPLETED"}, states

    c = subprocess.run([sys.executable, "-m", "experiments.collect", str(sweep_dir)], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert c.returncode == 0, c.stdout + c.stderr
    assert "8 runs expected, 8 present, 0 missing, 0 failed" in c.stdout
    df = pd.read_parquet(sweep_dir / "sweep.parquet")
    assert len(df) == 8 and df.run_id.is_unique and df.slurm_job_id.notna().all()

    # the same sweep again is answered from the stored results
    p2 = _sweep(slurm_cluster, tmp_path, "regime=baseline,free_trial", "seed=0,1",
                "+grid.broker_reward.rate=[0.005,0.015]")
    assert p2.returncode == 0, p2.stdout + p2.stderr
    assert len(list(ResultStore(sweep_dir).records())) == 8


def test_sweep_with_a_cancelled_slurm_job_fails_loudly_and_resumes(slurm_cluster: SlurmCluster, tmp_path):
    """A job killed on the cluster: submitit learns it from accounting, the sweep exits non-zero, a re-run completes it."""
    # jobs of several seconds each (the Mesa engine, a larger region, 10 runs of ~0.5 s a job after its ~3 s start),
    # so one can be cancelled mid-way (it is cancelled as soon as squeue shows it running)
    args = ["engine=mesa", "regime=baseline,free_trial", "seeds=10", "scenario.firms.n=1500", "scenario.months=48"]
    cmd = [sys.executable, "-m", "experiments.run", "-m", "hydra/launcher=slurm",
           f"hydra.launcher.partition={slurm_cluster.partition}", "hydra.launcher.timeout_min=5",
           "hydra.launcher.mem_gb=1", "hydra.launcher.cpus_per_task=1", *SMALL, *args]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=slurm_cluster.environ(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 90
    victim = None
    while victim is None:
        assert time.monotonic() < deadline and proc.poll() is None, "no array task started"
        running = [j for j in slurm_cluster.squeue() if j["state"] == "RUNNING" and j["job_id"].endswith("_1")]
        victim = running[0]["job_id"] if running else None
        time.sleep(0.2)
    slurm_cluster.run("scancel", victim)
    out, _ = proc.communicate(timeout=180)
    assert slurm_cluster.wait_for_jobs([victim], timeout=60)[victim] == "CANCELLED"
    assert proc.returncode != 0, out  # the sweep did not hang, and did not pretend to be complete
    (sweep_dir,) = (tmp_path / "multirun").iterdir()
    assert len(list(ResultStore(sweep_dir).records())) < 20

    p = subprocess.run(cmd, cwd=tmp_path, env=slurm_cluster.environ(), capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    c = subprocess.run([sys.executable, "-m", "experiments.collect", str(sweep_dir), "--no-plots"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert c.returncode == 0 and "20 runs expected, 20 present, 0 missing, 0 failed" in c.stdout, c.stdout
    df = pd.read_parquet(sweep_dir / "sweep.parquet")
    assert len(df) == 20 and not df.duplicated(["regime.name", "seed"]).any()
