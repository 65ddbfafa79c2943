"""A real ``pip install`` of the wheel, used from outside the repository.

The wheel is built from a copy of the project's files, installed into a fresh virtual
environment (its dependencies from the package index or pip's cache), and run from an
unrelated directory: the main job, ``api.compose``, a user's own scenario through
``--config-dir``, and the Numba engine after an edit of the installed ``sim/core/rules.py``
(it must recompile, not load the old kernels).

Skipped, with the reason, if the package index cannot be reached, unless
``REQUIRE_NETWORK=1`` (CI): then it fails. Takes ~2.5 minutes on 2 cores: ~35 s to build and
install, two cold Numba compiles of ~30 s each, a few short runs.

pip installs without byte-compiling (``--no-compile``): compiling every module of every
dependency (~10,000 files: scipy, pandas, matplotlib, numba, ...) took more than half of
the install's time, and only the few hundred modules the runs import are ever used. They
are compiled when first imported: the environment's processes may write bytecode (into
the fresh environment only), whatever ``PYTHONDONTWRITEBYTECODE`` says here. Nothing the
test checks depends on it: the files installed are the same.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sim.core.config import Config

ROOT = Path(__file__).resolve().parent.parent
# what the wheel is built from (tests/, notebooks/, .venv and build leftovers are left out)
PROJECT_FILES = ("sim", "configs", "experiments", "pyproject.toml", "setup.py", "MANIFEST.in", "README.md")
SMALL = ("scenario.firms.n=300", "scenario.universities.n=3", "scenario.months=24", "progress=false")


def _unavailable(reason: str):
    if os.environ.get("REQUIRE_NETWORK") == "1":
        pytest.fail(f"REQUIRE_NETWORK=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def _run(argv, *, cwd, env, timeout=900, check=True) -> subprocess.CompletedProcess:
    p = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        pytest.fail(f"{' '.join(map(str, argv))} exited {p.returncode}\n--- stdout\n{p.stdout[-4000:]}"
                    f"\n--- stderr\n{p.stderr[-4000:]}", pytrace=False)
    return p


class Installed:
    """The fresh environment with the wheel installed, and a directory outside the repository."""

    def __init__(self, venv: Path, work: Path, cache: Path):
        self.venv, self.work, self.cache = venv, work, cache
        self.python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
        env = {k: v for k, v in os.environ.items()
               if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "NUMBA_CACHE_DIR", "PYTHONSTARTUP",
                            "PYTHONDONTWRITEBYTECODE")}  # installed --no-compile: the first import compiles, once
        env["TECHTRANSFER_CACHE_DIR"] = str(cache)  # not the user's cache
        self.env = env

    def run(self, *args, check=True, **kw) -> subprocess.CompletedProcess:
        return _run([self.python, *args], cwd=self.work, env=self.env, check=check, **kw)

    def cache_dirs(self) -> set:
        return {p.name for p in self.cache.glob("numba-*")}

    def successes(self, *engines: str) -> dict[str, float]:
        """A small run's successes under each engine, in that order, in one fresh process."""
        code = ("from sim import api; cfg = api.compose('scenario.firms.n=300', 'scenario.months=24'); "
                f"print(*(api.simulate(cfg, 0, engine=e).summary['successes'] for e in {engines!r}))")
        return dict(zip(engines, map(float, self.run("-c", code).stdout.strip().splitlines()[-1].split()), strict=True))


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Installed:
    tmp = tmp_path_factory.mktemp("install")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    # can pip reach the package index (with this machine's pip configuration)?
    probe = subprocess.run([*pip, "download", "--no-deps", "--timeout", "20", "--retries", "1",
                            "--dest", tmp / "probe", "setuptools>=68"], capture_output=True, text=True)
    if probe.returncode != 0:
        _unavailable("the package index is not reachable (pip download setuptools failed: "
                     + (probe.stderr.strip().splitlines() or ["?"])[-1] + ")")

    src = tmp / "src"
    for name in PROJECT_FILES:
        path = ROOT / name
        if not path.exists():
            continue
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            src.mkdir(exist_ok=True)
            shutil.copy2(path, src / name)
    shutil.rmtree(src / "sim" / "configs", ignore_errors=True)  # only configs/ is a source
    _run([*pip, "wheel", "--no-deps", "--wheel-dir", tmp / "dist", src], cwd=tmp, env=dict(os.environ))
    (wheel,) = (tmp / "dist").glob("techtransfer_sim-*.whl")

    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", venv], cwd=tmp, env=dict(os.environ))
    inst = Installed(venv, tmp / "elsewhere", tmp / "cache")
    inst.work.mkdir()
    inst.run("-m", "pip", "install", "--disable-pip-version-check", "--no-compile", wheel)
    return inst


def test_imports_the_installed_package_and_its_configs(installed):
    code = ("import sysconfig, sim, experiments; from sim.core.locations import CONFIG_DIR; "
            "print(sim.__file__); print(experiments.__file__); print(CONFIG_DIR); "
            "print(sysconfig.get_paths()['purelib'])")
    sim_file, exp_file, config_dir, purelib = installed.run("-c", code).stdout.strip().splitlines()[-4:]
    site = Path(purelib).resolve()
    assert site.is_relative_to(installed.venv.resolve())
    assert Path(sim_file).resolve() == site / "sim" / "__init__.py"
    assert Path(exp_file).resolve() == site / "experiments" / "__init__.py"
    assert Path(config_dir) == site / "sim" / "configs"
    assert (Path(config_dir) / "scenario" / "lishui.yaml").read_bytes() == \
        (ROOT / "configs" / "scenario" / "lishui.yaml").read_bytes()
    for path in (sim_file, exp_file, config_dir):
        assert not Path(path).resolve().is_relative_to(ROOT)


def test_compose_from_the_installed_package(installed):
    p = installed.run("-c", "from sim import api; c = api.compose('scenario=lishui'); print(c.scenario.name)")
    assert p.stdout.strip().splitlines()[-1] == "lishui"


def test_main_job_from_the_installed_package(installed, tmp_path):
    out = tmp_path / "run"
    installed.run("-m", "experiments.run", *SMALL, "seeds=2", "regimes=[baseline,free_trial]", f"hydra.run.dir={out}")
    with open(out / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["regime"], r["seed"]) for r in rows] == [
        ("baseline", "0"), ("baseline", "1"), ("free_trial", "0"), ("free_trial", "1")]
    assert {r["scenario.firms.n"] for r in rows} == {"300"}
    for name in ("series.csv", "table.csv", "table.md", "comparison.png"):
        assert (out / name).stat().st_size > 0


def test_own_scenario_through_config_dir(installed, tmp_path):
    """A user's scenario in their own folder, on top of the shipped default (as lishui.yaml is)."""
    mine = tmp_path / "my_configs" / "scenario"
    mine.mkdir(parents=True)
    (mine / "mine.yaml").write_text("defaults:\n  - default\n  - _self_\n\nname: mine\nfirms:\n  n: 250\n")
    out = tmp_path / "run"
    installed.run("-m", "experiments.run", "--config-dir", tmp_path / "my_configs", "scenario=mine",
                  "scenario.universities.n=3", "scenario.months=12", "seeds=1", "regimes=[baseline]",
                  "progress=false", f"hydra.run.dir={out}")
    with open(out / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["regime"], r["scenario.name"], r["scenario.firms.n"]) for r in rows] == [("baseline", "mine", "250")]
    # everything mine.yaml does not set comes from the shipped default scenario
    assert rows[0]["scenario.universities.achievements_each"] == str(Config().scenario.universities.achievements_each)


def test_numba_recompiles_after_a_rule_changes(installed):
    """Editing a rule (not the kernels' file) must reach the Numba engine in the next process."""
    rules = Path(installed.run("-c", "import sim.core.rules; print(sim.core.rules.__file__)").stdout.strip().splitlines()[-1])
    original = rules.read_text()
    before = installed.successes("numba", "mesa")   # Numba from the cache the main job filled, or compiles it
    assert before["numba"] > 0 and before["mesa"] == before["numba"]
    dirs_before = installed.cache_dirs()

    head = re.search(r"def success_chance\(.*?\):\n    \"\"\".*?\"\"\"\n", original, re.S)
    assert head, "success_chance not found in the installed sim/core/rules.py"
    rules.write_text(original[: head.end()] + "    return 0.0\n" + original[head.end():])
    try:
        # in a new process: the edit reaches Mesa, and Numba (not the old kernels from the cache)
        assert installed.successes("mesa", "numba") == {"mesa": 0, "numba": 0}
        assert len(installed.cache_dirs() - dirs_before) == 1  # one new directory for the new source
    finally:
        rules.write_text(original)
