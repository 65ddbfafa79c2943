"""Which tests share a pytest-xdist worker (``-n logical --dist loadgroup``, pyproject.toml).

Tests that share expensive state run on one worker, one after the other:

* every test that uses the real Slurm cluster (the session fixture ``slurm_cluster``), group ``slurm``: one
  cluster, started once, and never two tests submitting to it at the same time;
* the tests of a module that use one of its module- (or class-) scoped fixtures, e.g. the fresh environment with
  the wheel installed (tests/test_install.py), 60 seeds of four regimes (tests/core/test_directions.py), a finished
  sweep (tests/runs/test_sweep_safety.py), group ``<module's path>``: the fixture is computed once, not on each worker;
* a test marked ``@pytest.mark.xdist_group(name)``: group ``name``, as pytest-xdist documents it.

Every other test is a unit of its own, sent to whichever worker is free.

Which unit starts first: those of ``LONG_FIRST`` (the longest, in that order), then pytest-xdist's own order
(groups by their number of tests, then the rest as collected). A long group started last would end the run on one
worker while the other waits; started first, the short units fill in around it. An order only: what shares a
worker does not change.

Why not pytest-xdist's loadgroup alone: a worker tells the controller a test's group by appending ``@group`` to
the test's node id, which pytest 9.2 no longer lets a plugin change (pytest-xdist issue #1386): the groups are
then silently ignored and a group's tests spread over the workers. So here each worker writes, before it reports
its collection, the groups of its tests (node id -> group) to a file in a folder the controller made, and the
controller's scheduler (pytest-xdist's ``LoadScopeScheduling``, a scope being a group) reads them. Where the
``@group`` suffix does work (earlier pytest), the scheduler reads it as pytest-xdist does: the same groups.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections import OrderedDict
from pathlib import Path

import pytest

# units (a group's name, or a prefix of test ids) that start first, longest first: the Slurm cluster's tests
# (~4 minutes on 2 loaded cores), the fresh environment's install and two cold Numba compiles (~3), the fuzzed
# command lines, the calibrations, the fuzzed files, the notebooks' kernels, the cold compile on two cores, the sweeps
LONG_FIRST = ("slurm", "tests/test_install.py", "tests/apps/test_dashboard.py", "tests/core/test_fuzz.py", "tests/analysis/test_calibration.py",
              "tests/core/test_fuzz_files.py", "tests/runs/test_sweep_safety.py", "tests/test_notebooks.py", "tests/core/test_jit.py",
              "tests/runs/test_sweeps.py", "tests/analysis/test_optimise.py", "tests/apps/test_main_job.py")

ENV = "TECHTRANSFER_XDIST_GROUPS"  # the folder of the workers' group files, made by the controller
_FOLDER = pytest.StashKey[str]()


def group_of(item: pytest.Item) -> str | None:
    """The group of a test (see the module's docstring), or None if it is a unit of its own."""
    marked = {str(m.args[0] if m.args else m.kwargs.get("name", "default")) for m in item.iter_markers("xdist_group")}
    if marked:
        return "_".join(sorted(marked))
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return None
    scopes = {name: defs[-1].scope for name, defs in info.name2fixturedefs.items() if defs}
    if "slurm_cluster" in scopes:
        return "slurm"
    if any(scope in ("package", "module", "class") for scope in scopes.values()):
        return item.nodeid.split("::")[0]
    return None


# --------------------------------------------------------------------------- on the controller
@pytest.hookimpl(optionalhook=True)
def pytest_xdist_setupnodes(config, specs):
    """Before the workers start (they inherit the environment): the folder for their group files."""
    folder = tempfile.mkdtemp(prefix="xdist-groups-")
    config.stash[_FOLDER] = folder
    os.environ[ENV] = folder


def pytest_unconfigure(config):
    folder = config.stash.get(_FOLDER, None)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)
        os.environ.pop(ENV, None)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    if config.getoption("dist") != "loadgroup":
        return None  # pytest-xdist's own choice
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        """LoadScopeScheduling whose scope of a test is its group, or the test itself."""

        def __init__(self, config, log=None):
            super().__init__(config, log.loadgroupsched if log is not None else None)
            self.groups: dict[str, str] | None = None
            self.workqueue = _LongFirst(self.workqueue)

        def _split_scope(self, nodeid: str) -> str:
            if nodeid.rfind("@") > nodeid.rfind("]"):  # pytest-xdist's own suffix, where it still works
                return nodeid.split("@")[-1]
            if self.groups is None:  # first asked once every worker reported its collection: the files are there
                files = sorted(Path(config.stash[_FOLDER]).glob("*.json"))
                if len(files) != len(self.nodes):
                    raise RuntimeError(f"xdist groups: {len(files)} group files for {len(self.nodes)} workers")
                self.groups = {}
                for f in files:
                    self.groups.update(json.loads(f.read_text()))
            return self.groups.get(nodeid, nodeid)

    return GroupScheduling(config, log)


def rank(scope: str) -> int:
    """A unit's place in ``LONG_FIRST`` (len(LONG_FIRST) if it is not there)."""
    return next((i for i, p in enumerate(LONG_FIRST) if scope == p or scope.startswith(p.rstrip("/") + "::")
                 or scope == p.rstrip("/")), len(LONG_FIRST))


class _LongFirst(OrderedDict):
    """The scheduler's queue of units (scope -> its tests): the first unit taken is the first of the lowest rank."""

    def popitem(self, last: bool = True):
        if last or not self:
            return super().popitem(last)
        scope = min(self, key=rank)  # min keeps the queue's order among equals
        return scope, self.pop(scope)


# --------------------------------------------------------------------------- on a worker
@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reports the collection to the controller
def pytest_collection_finish(session):
    folder, worker = os.environ.get(ENV), os.environ.get("PYTEST_XDIST_WORKER")
    if not folder or not worker:
        return
    groups = {item.nodeid: group for item in session.items if (group := group_of(item)) is not None}
    tmp = Path(folder) / f".{worker}.json.tmp"
    tmp.write_text(json.dumps(groups))
    tmp.replace(Path(folder) / f"{worker}.json")
