"""Numba's cache directory follows the source of the sim package (sim/core/engine_cache.py).

Fast checks, nothing compiled: the directory changes with any source file, is the same in
spawned worker processes, honours the environment, falls back when it cannot be written,
and old directories are pruned. ``tests/test_install.py`` shows the end-to-end effect: an
edit of ``sim/core/rules.py`` reaches the Numba engine in the next process.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sim.core import engine_cache

ROOT = Path(__file__).resolve().parents[2]


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("NUMBA_CACHE_DIR", "TECHTRANSFER_CACHE_DIR", "XDG_CACHE_HOME")}
    env["PYTHONPATH"] = str(ROOT)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def _python(code: str, env: dict) -> list:
    p = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_hash_changes_with_any_source_file(tmp_path):
    pkg = tmp_path / "sim"
    shutil.copytree(engine_cache.PACKAGE_DIR, pkg, ignore=shutil.ignore_patterns("__pycache__", "configs"))
    h = engine_cache.source_hash(pkg)
    assert h == engine_cache.source_hash(engine_cache.PACKAGE_DIR) and len(h) == 16
    rules = pkg / "core" / "rules.py"
    rules.write_text(rules.read_text() + "# edited\n")
    h_rules = engine_cache.source_hash(pkg)
    assert h_rules != h
    (pkg / "core" / "results.py").write_text((pkg / "core" / "results.py").read_text() + "\n")
    assert engine_cache.source_hash(pkg) not in (h, h_rules)
    (pkg / "core" / "results.py").unlink()
    (pkg / "notes.txt").write_text("not source")
    (pkg / "__pycache__").mkdir()
    (pkg / "__pycache__" / "x.pyc").write_bytes(b"\0")
    h_gone = engine_cache.source_hash(pkg)
    assert h_gone not in (h, h_rules)
    (pkg / "helpers.py").write_text("")
    assert engine_cache.source_hash(pkg) != h_gone


def test_kernels_use_the_directory_also_in_spawned_workers(tmp_path):
    """Numba reads it at decoration; a spawned process computes the same directory (no nesting)."""
    code = """if True:
        import json, multiprocessing, os

        def probe(_=None):
            import sim, sim.engines.numba.kernels, sim.core.rules
            from numba.core import config
            return [str(sim.ENGINE_CACHE_DIR), os.environ["NUMBA_CACHE_DIR"], config.CACHE_DIR,
                    sim.core.rules.success_chance._cache._cache_path, sim.engines.numba.kernels.raise_needs._cache._cache_path]

        if __name__ == "__main__":
            import numba  # before sim: the config is reloaded
            here = probe()
            with multiprocessing.get_context("spawn").Pool(1) as pool:
                child = pool.map(probe, [0])[0]
            print(json.dumps([here, child]))
    """
    script = tmp_path / "probe.py"
    script.write_text(code)
    p = subprocess.run([sys.executable, str(script)], env=_env(TECHTRANSFER_CACHE_DIR=tmp_path / "c"),
                       cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    here, child = json.loads(p.stdout.strip().splitlines()[-1])
    expected = str(tmp_path / "c" / f"numba-{engine_cache.source_hash()}")
    assert here[:3] == [expected] * 3
    assert all(Path(path).is_relative_to(expected) for path in here[3:])
    assert child == here
    assert [d.name for d in (tmp_path / "c").iterdir()] == [Path(expected).name]


@pytest.mark.parametrize("variable", ["TECHTRANSFER_CACHE_DIR", "NUMBA_CACHE_DIR", "XDG_CACHE_HOME"])
def test_base_from_the_environment(tmp_path, variable):
    code = "import json, os, sim; print(json.dumps([str(sim.ENGINE_CACHE_DIR), os.environ['NUMBA_CACHE_DIR']]))"
    got, numba_dir = _python(code, _env(**{variable: tmp_path}))
    base = tmp_path / "techtransfer-sim" if variable == "XDG_CACHE_HOME" else tmp_path
    assert got == numba_dir == str(base / f"numba-{engine_cache.source_hash()}")


def test_techtransfer_variable_wins_over_numba_cache_dir(tmp_path):
    code = "import json, sim; print(json.dumps(str(sim.ENGINE_CACHE_DIR)))"
    got = _python(code, _env(TECHTRANSFER_CACHE_DIR=tmp_path / "a", NUMBA_CACHE_DIR=tmp_path / "b"))
    assert Path(got).parent == tmp_path / "a"


def test_falls_back_to_a_temporary_directory_when_not_writable(tmp_path):
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    code = ("import json, tempfile, warnings; warnings.simplefilter('always')\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    import sim\n"
            "print(json.dumps([str(sim.ENGINE_CACHE_DIR), tempfile.gettempdir(), [str(x.message) for x in w]]))")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    got, gettempdir, warned = _python(code, _env(TECHTRANSFER_CACHE_DIR=blocked / "cache", TMPDIR=tmp))
    assert gettempdir == str(tmp) and Path(got).parent.parent == tmp and Path(got).name == f"numba-{engine_cache.source_hash()}"
    assert any("cannot be written" in m for m in warned)


def test_prune_keeps_the_most_recently_used(tmp_path):
    now = time.time()
    dirs = []
    for i in range(12):
        d = tmp_path / f"numba-{i:016x}"
        d.mkdir()
        os.utime(d, (now - 1000 + i, now - 1000 + i))  # numba-...0b is the most recent
        dirs.append(d)
    (tmp_path / "other").mkdir()  # not ours: never touched
    current = tmp_path / f"numba-{'f' * 16}"
    current.mkdir()
    os.utime(current, (now - 5000, now - 5000))
    removed = engine_cache.prune(tmp_path, keep=8, current=current)
    assert sorted(removed) == dirs[:5]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([current.name, "other", *(d.name for d in dirs[5:])])


def test_a_new_version_prunes_old_directories(tmp_path):
    for i in range(10):
        (tmp_path / f"numba-{i:016x}").mkdir()
        os.utime(tmp_path / f"numba-{i:016x}", (1000 + i, 1000 + i))
    path = engine_cache.cache_dir(tmp_path)
    assert path.name == f"numba-{engine_cache.source_hash()}"
    assert len([p for p in tmp_path.iterdir()]) == engine_cache.KEEP
    assert path.exists() and (tmp_path / f"numba-{9:016x}").exists() and not (tmp_path / f"numba-{2:016x}").exists()
