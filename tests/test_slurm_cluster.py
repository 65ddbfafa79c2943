"""The local Slurm test cluster really runs jobs and accounts for dead ones.

Needs Slurm installed (``bash tests/slurm/install.sh``) and root; skipped
otherwise, unless REQUIRE_SLURM=1 (then it fails).
"""

from __future__ import annotations

import subprocess
import time

from .slurm_cluster import SlurmCluster


def sbatch(cluster: SlurmCluster, tmp_path, *args: str) -> str:
    res = subprocess.run(
        ["sbatch", "--parsable", "-p", cluster.partition, "-o", str(tmp_path / "slurm-%j.out"), *args],
        capture_output=True, text=True, env=cluster.environ(), timeout=30,
    )
    assert res.returncode == 0, res.stderr
    return res.stdout.strip().split(";")[0]


def test_batch_job_runs_and_is_accounted(slurm_cluster: SlurmCluster, tmp_path):
    out = tmp_path / "hello.txt"
    job = sbatch(slurm_cluster, tmp_path, "-J", "hello", "--wrap", f"echo hello > {out}")
    states = slurm_cluster.wait_for_jobs([job], timeout=60)
    assert states == {job: "COMPLETED"}
    assert out.read_text() == "hello\n"
    record = {"job_id": job, "name": "hello", "state": "COMPLETED", "exit_code": "0:0", "partition": "debug"}
    assert record in slurm_cluster.sacct_jobs([job])
    assert record in slurm_cluster.sacct_jobs()


def test_dead_jobs_are_reported_by_sacct(slurm_cluster: SlurmCluster, tmp_path):
    # what submitit relies on to notice a job that died without writing its result
    killed = sbatch(slurm_cluster, tmp_path, "-J", "killed", "--wrap", "kill -9 $$")
    sleeper = sbatch(slurm_cluster, tmp_path, "-J", "sleeper", "--wrap", "sleep 300")
    deadline = time.monotonic() + 30
    while not any(j["job_id"] == sleeper and j["state"] == "RUNNING" for j in slurm_cluster.squeue()):
        assert time.monotonic() < deadline, f"sleeper never started: {slurm_cluster.squeue()}"
        time.sleep(0.2)
    subprocess.run(["scancel", sleeper], check=True, env=slurm_cluster.environ(), timeout=30)
    states = slurm_cluster.wait_for_jobs([killed, sleeper], timeout=60)
    assert states[killed] == "FAILED"
    assert states[sleeper] == "CANCELLED"
    assert slurm_cluster.job_state(killed) == "FAILED"



def test_one_cluster_serves_every_module():
    """The session's cluster is one fixture, tests/conftest.py's: a test module that imported ``slurm_cluster``
    itself would register a fixture of its own module, and start (and keep running) a cluster of its own."""
    import ast
    from pathlib import Path

    tests = Path(__file__).parent
    own = []
    for path in sorted(tests.rglob("*.py")):
        if path.name in ("conftest.py", "slurm_cluster.py") and path.parent == tests:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and any(a.name == "slurm_cluster" for a in node.names):
                own.append(f"{path.relative_to(tests)}:{node.lineno}")
    assert own == [], own
