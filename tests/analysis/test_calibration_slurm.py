"""A calibration whose runs go to a real (local, single-node) Slurm cluster through submitit gives the same
posterior as on this machine's processes.

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
ARGS = [f"target_set={DATA / 'recovery_targets.yaml'}", f"space={DATA / 'recovery_space.yaml'}",
        "screen.fit=[expert_visits.surface_chance,scenario.negotiation.breakdown_hazard]", "abc.population=10",
        "abc.generations=1", "predictive_draws=2", "budget=100000", "workers=2", "scenario_dir=none", "progress=false"]


def test_calibration_on_slurm_gives_the_local_posterior(slurm_cluster: SlurmCluster, tmp_path):
    # the local calibration runs meanwhile (the Slurm one mostly waits for its jobs)
    log = tmp_path / "local.log"
    with open(log, "w") as f:
        local = subprocess.Popen([sys.executable, "-m", "experiments.calibrate", *ARGS,
                                  f"hydra.run.dir={tmp_path / 'local'}"], cwd=tmp_path, stdout=f, stderr=f)
    try:
        before = {j["job_id"] for j in slurm_cluster.sacct_jobs()}
        p = subprocess.run([sys.executable, "-m", "experiments.calibrate", *ARGS, "executor=slurm",
                            f"slurm.partition={slurm_cluster.partition}", "slurm.timeout_min=5", "slurm.mem_gb=1",
                            f"hydra.run.dir={tmp_path / 'slurm'}"],
                           cwd=tmp_path, env=slurm_cluster.environ(), capture_output=True, text=True, timeout=900)
        local.wait(timeout=600)
    finally:
        local.kill()
        local.wait()
    assert local.returncode == 0, log.read_text()[-4000:]
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "slurm" / "posterior.csv"),
                                  pd.read_csv(tmp_path / "local" / "posterior.csv"))
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "slurm" / "fit.csv"), pd.read_csv(tmp_path / "local" / "fit.csv"))
    # the runs were Slurm jobs, and Slurm accounted for every one as completed
    new = slurm_cluster.jobs_since(before, at_least=4)
    assert len(new) >= 4, new  # at least two job arrays of two: a generation's candidates, the predictions
    states = slurm_cluster.wait_for_jobs(new, timeout=60)
    assert set(states.values()) == {"COMPLETED"}, states
