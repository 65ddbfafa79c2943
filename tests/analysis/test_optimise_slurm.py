"""A policy search whose generations run as Slurm job arrays (submitit) on a real (local, single-node) cluster gives
the trials, the front and the intervals it gives on this machine's processes.

Needs Slurm (``bash tests/slurm/install.sh``, part of the README's test command) and root; skipped with the
reason otherwise, unless REQUIRE_SLURM=1 (CI), then it fails.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd

from ..slurm_cluster import SlurmCluster

DATA = Path(__file__).parents[1] / "data"
ROOT = Path(__file__).resolve().parents[2]
ARGS = ["engine=numba", "scenario.firms.n=200", "scenario.months=24", f"optimise.levers={DATA / 'small_levers.yaml'}",
        "optimise.population=4", "optimise.generations=2", "optimise.replicates=2", "optimise.interval_replicates=3",
        "optimise.intervals_max=2", "optimise.budget=3e5", "workers=2", "progress=false"]


def test_a_search_on_slurm_gives_the_local_trials_and_front(slurm_cluster: SlurmCluster, tmp_path):
    local = subprocess.run([sys.executable, "-m", "experiments.optimise", *ARGS, f"hydra.run.dir={tmp_path / 'local'}"],
                           cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert local.returncode == 0, local.stdout[-2000:] + local.stderr[-2000:]
    before = {j["job_id"] for j in slurm_cluster.sacct_jobs()}
    p = subprocess.run([sys.executable, "-m", "experiments.optimise", *ARGS, "optimise.run.executor=slurm",
                        f"optimise.run.slurm.partition={slurm_cluster.partition}", "optimise.run.slurm.timeout_min=5",
                        "optimise.run.slurm.mem_gb=1", f"hydra.run.dir={tmp_path / 'slurm'}"],
                       cwd=ROOT, env=slurm_cluster.environ(), capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "slurm" / "trials.parquet"),
                                  pd.read_parquet(tmp_path / "local" / "trials.parquet"))
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "slurm" / "front.csv"),
                                  pd.read_csv(tmp_path / "local" / "front.csv"))
    # each generation with new points, and the re-evaluation, a job array; every job completed
    new = slurm_cluster.jobs_since(before, at_least=2)
    assert len(new) >= 2, new
    states = slurm_cluster.wait_for_jobs(new, timeout=60)
    assert set(states.values()) == {"COMPLETED"}, states
