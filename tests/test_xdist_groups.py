"""The suite's split over pytest-xdist workers (tests/xdist_groups.py) keeps together what must stay together.

A small suite of its own, in a temporary folder, run on two workers with the plugin: the tests of a Slurm-like
session fixture (in two modules) on one worker, a module fixture's tests on one worker with the fixture made
once, an ``xdist_group`` mark honoured, and the other tests spread over both workers.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CONFTEST = '''
import os, pytest

def record(name):
    with open(os.path.join(os.environ["OUT"], name), "a") as f:
        f.write(os.environ.get("PYTEST_XDIST_WORKER", "none") + "\\n")

@pytest.fixture(scope="session")
def slurm_cluster():
    record("cluster_started")
    return object()

@pytest.fixture
def ran(request):
    yield
    record(request.node.name)
'''

SLURM_A = '''
def test_slurm_a1(slurm_cluster, ran): pass
def test_slurm_a2(slurm_cluster, ran): pass
'''

SLURM_B = '''
def test_slurm_b1(slurm_cluster, ran): pass
'''

SHARED = '''
import pytest
from conftest import record

@pytest.fixture(scope="module")
def expensive():
    record("expensive_made")

def test_shared_1(expensive, ran): pass
def test_shared_2(expensive, ran): pass
def test_shared_3(expensive, ran): pass
'''

OTHERS = '''
import pytest, time

@pytest.mark.xdist_group("marked")
def test_marked_1(ran): pass

@pytest.mark.xdist_group("marked")
def test_marked_2(ran): pass

@pytest.mark.parametrize("i", range(8))
def test_alone(i, ran):
    time.sleep(0.5)  # long enough that one worker cannot take them all
'''


def test_groups_stay_on_one_worker_and_the_rest_is_spread(tmp_path):
    suite = tmp_path / "suite"
    out = tmp_path / "out"
    suite.mkdir()
    out.mkdir()
    for name, text in {"conftest.py": CONFTEST, "test_a_slurm.py": SLURM_A, "test_b_slurm.py": SLURM_B,
                       "test_shared.py": SHARED, "test_others.py": OTHERS}.items():
        (suite / name).write_text(text)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "TECHTRANSFER_XDIST"))}
    env.update(OUT=str(out), PYTHONPATH=str(ROOT))
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.xdist_groups",
                        "-n", "2", "--dist", "loadgroup", "-c", os.devnull, "--rootdir", str(suite), str(suite)],
                       cwd=suite, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and "16 passed" in p.stdout, p.stdout[-3000:] + p.stderr[-3000:]

    def workers(*names):
        return {w for n in names for w in (out / n).read_text().split()}

    assert (out / "cluster_started").read_text().count("\n") == 1  # one cluster, started once
    assert len(workers("test_slurm_a1", "test_slurm_a2", "test_slurm_b1")) == 1
    assert (out / "expensive_made").read_text().count("\n") == 1  # the module fixture made once
    assert len(workers("test_shared_1", "test_shared_2", "test_shared_3")) == 1
    assert len(workers("test_marked_1", "test_marked_2")) == 1
    assert workers(*(f"test_alone[{i}]" for i in range(8))) == {"gw0", "gw1"}
