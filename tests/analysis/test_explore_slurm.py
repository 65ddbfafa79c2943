"""A sensitivity analysis whose design runs as Slurm job arrays (submitit) on a real (local, single-node) cluster
gives the outcomes and indices it gives on this machine's processes.

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
ARGS = ["regime=vouchers", "engine=numba", "scenario.firms.n=300", "scenario.months=24", "sensitivity.sobol.n=4",
        "sensitivity.replicates=2", f"sensitivity.space={DATA / 'inert_space.yaml'}", "sensitivity.parameters=null",
        "sensitivity.outcomes=[conversions,extra_conversions]", "sensitivity.resamples=50",
        "sensitivity.run.part_size=10", "workers=2", "progress=false"]


def test_a_design_on_slurm_gives_the_local_outcomes(slurm_cluster: SlurmCluster, tmp_path):
    local = subprocess.run([sys.executable, "-m", "experiments.sensitivity", *ARGS,
                            f"hydra.run.dir={tmp_path / 'local'}"], cwd=ROOT, capture_output=True, text=True,
                           timeout=600)
    assert local.returncode == 0, local.stdout[-2000:] + local.stderr[-2000:]
    before = {j["job_id"] for j in slurm_cluster.sacct_jobs()}
    p = subprocess.run([sys.executable, "-m", "experiments.sensitivity", *ARGS, "sensitivity.run.executor=slurm",
                        f"sensitivity.run.slurm.partition={slurm_cluster.partition}",
                        "sensitivity.run.slurm.timeout_min=5", "sensitivity.run.slurm.mem_gb=1",
                        f"hydra.run.dir={tmp_path / 'slurm'}"],
                       cwd=ROOT, env=slurm_cluster.environ(), capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    for name in ("outcomes.parquet", "indices.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "slurm" / name),
                                      pd.read_parquet(tmp_path / "local" / name))
    # 20 points in parts of 10: two job arrays of two jobs, each accounted for by Slurm as completed
    new = slurm_cluster.jobs_since(before, at_least=4)
    assert len(new) >= 4, new
    states = slurm_cluster.wait_for_jobs(new, timeout=60)
    assert set(states.values()) == {"COMPLETED"}, states
