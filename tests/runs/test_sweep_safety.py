"""A sweep folder is data, never code: doctored and corrupted folders, as an adversary or a full disk leaves them.

Sweep folders live on shared cluster file systems. ``collect`` must never run code from
one, never touch files outside it, bound the work a file can ask for, and trust no result
file that fails its check; a re-run of the sweep recomputes exactly what was bad.
"""

import json
import os
import re
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from sim import api
from sim.runs.sweep import ResultStore, check_record, expected_runs

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["scenario.firms.n=300", "scenario.universities.n=3", "scenario.months=24", "progress=false"]
SWEEP = ["regime=baseline,free_trial", "+grid.broker_reward.rate=[0.01,0.02]", "seeds=2", *SMALL]  # 2 jobs x 4 runs


def _sweep(cwd, *args):
    return subprocess.run([sys.executable, "-m", "experiments.run", "-m", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def _collect(cwd, sweep_dir, *args, timeout=120):
    return subprocess.run([sys.executable, "-m", "experiments.collect", str(sweep_dir), "--no-plots", *args],
                          cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """A finished 8-run sweep and its collected table (copied by each test before it is doctored)."""
    base = tmp_path_factory.mktemp("pristine")
    p = _sweep(base, *SWEEP)
    assert p.returncode == 0, p.stderr
    (d,) = list((base / "multirun").iterdir())
    c = _collect(base, d)
    assert c.returncode == 0 and "8 runs expected, 8 present" in c.stdout, c.stdout + c.stderr
    return d, pd.read_parquet(d / "sweep.parquet")


@pytest.fixture
def sweep(pristine, tmp_path):
    import shutil

    d = tmp_path / "multirun" / pristine[0].name
    shutil.copytree(pristine[0], d, symlinks=True)
    return d


def _edit_multirun(d: Path, edit) -> None:
    data = yaml.safe_load((d / "multirun.yaml").read_text())
    edit(data)
    (d / "multirun.yaml").write_text(yaml.safe_dump(data))


def _results(d: Path) -> list[Path]:
    return sorted((d / "results").glob("*.json"))


# --------------------------------------------------------------------------- collect runs no code
def test_collect_never_passes_hydra_settings_from_the_folder(sweep, tmp_path):
    """A doctored multirun.yaml adds a search path to a package planted in the sweep folder."""
    pkg = sweep / "evilpkg"
    pkg.mkdir()
    marker = tmp_path / "code-ran"
    (pkg / "__init__.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    (pkg / "config.yaml").write_text("seed: 0\n")
    _edit_multirun(sweep, lambda d: d["hydra"]["overrides"]["task"].append("hydra.searchpath=[pkg://evilpkg]"))
    c = _collect(sweep, sweep)  # run from the sweep folder, so the planted package is importable
    assert not marker.exists(), "collect imported a package named in the sweep folder"
    assert c.returncode == 0 and "8 runs expected, 8 present" in c.stdout, c.stdout + c.stderr


def test_collect_refuses_overrides_that_are_not_model_settings(sweep):
    _edit_multirun(sweep, lambda d: d["hydra"]["overrides"]["task"].append("scenario=../../../tmp/x"))
    c = _collect(sweep.parent, sweep)
    allowed = ", ".join(sorted(p.stem for p in (api.CONFIG_DIR / "scenario").glob("*.yaml")))
    assert c.returncode == 2 and f"scenario must be one of {allowed}" in c.stderr, c.stderr
    assert "Traceback" not in c.stderr


def test_collect_bounds_the_work_a_folder_can_ask_for(sweep):
    _edit_multirun(sweep, lambda d: d["hydra"]["overrides"]["task"].append("seed=range(0,3000000)"))
    c = _collect(sweep.parent, sweep, timeout=60)
    assert c.returncode == 2 and "3000000 values, more than the 100000 jobs" in c.stderr, c.stderr
    _edit_multirun(sweep, lambda d: d["hydra"]["overrides"]["task"].__setitem__(-1, "seeds=1000000"))
    c = _collect(sweep.parent, sweep, "--max-runs", "1000", timeout=60)
    assert c.returncode == 2 and "more than 1000 runs (collect --max-runs N" in c.stderr, c.stderr


def test_collect_never_deletes_or_moves_outside_the_sweep_folder(sweep, tmp_path):
    """results_dir pointed elsewhere: files there look stale and corrupt, and must stay exactly as they are."""
    victim = tmp_path / "someone-elses-folder"
    (victim / "results").mkdir(parents=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale_looking = victim / "results" / f".precious.{socket.gethostname()}.{dead.pid}.tmp"
    stale_looking.write_text("keep me")
    rid = expected_runs(sweep)[0][0]
    corrupt_looking = victim / "results" / f"{rid}.json"
    corrupt_looking.write_text("keep me too")
    before = {p: p.read_bytes() for p in victim.rglob("*") if p.is_file()}
    _edit_multirun(sweep, lambda d: d.__setitem__("results_dir", str(victim)))
    c = _collect(sweep.parent, sweep)
    assert c.returncode == 1 and "CORRUPT" in c.stdout and "left in place (outside the sweep's folder" in c.stdout
    after = {p: p.read_bytes() for p in victim.rglob("*") if p.is_file()}
    assert after == before


# --------------------------------------------------------------------------- corrupt result files
def _corrupt(files: list[Path]) -> dict[str, str]:
    """Damage five result files in five ways; return {run id: how}."""
    how = {}
    truncated, empty, garbage, foreign, edited = files[:5]
    truncated.write_bytes(truncated.read_bytes()[: len(truncated.read_bytes()) // 2])
    how[truncated.stem] = "truncated"
    empty.write_bytes(b"")
    how[empty.stem] = "empty"
    garbage.write_text("[1, 2")
    how[garbage.stem] = "invalid"
    foreign.write_bytes(files[5].read_bytes())  # another run's content under this run's name
    how[foreign.stem] = "foreign"
    rec = json.loads(edited.read_text())
    rec["params"]["broker_reward.rate"] = 0.5  # a parameter edited by hand
    edited.write_text(json.dumps(rec))
    how[edited.stem] = "edited params"
    return how


def test_corrupt_results_are_named_moved_aside_and_recomputed(sweep, pristine):
    files = _results(sweep)
    assert len(files) == 8
    how = _corrupt(files)
    metric = json.loads(files[6].read_text())
    metric["metrics"]["successes"] += 1  # a number edited by hand: the checksum no longer matches
    files[6].write_text(json.dumps(metric))
    how[files[6].stem] = "edited metric"
    fifo = sweep / "results" / f"{files[7].stem}.json"
    fifo.unlink()
    os.mkfifo(fifo)  # would block a reader that opens it
    how[files[7].stem] = "fifo"

    c = _collect(sweep.parent, sweep, timeout=60)
    assert c.returncode == 1, c.stdout + c.stderr
    assert "8 runs expected, 1 present, 0 missing, 0 failed, 7 corrupt" in c.stdout, c.stdout  # files[5] is intact
    for rid in how:
        line = next(ln for ln in c.stdout.splitlines() if rid in ln)
        assert line.lstrip().startswith("CORRUPT") and "moved to corrupt/" in line
    assert "not a regular file" in c.stdout and "do not hash to its file name" in c.stdout
    assert "checksum does not match" in c.stdout
    assert list(pd.read_parquet(sweep / "sweep.parquet").run_id) == [files[5].stem]  # the table of what is good
    assert _results(sweep) == [files[5]] and len(list((sweep / "corrupt").glob("*.json"))) == 7

    # the next run of the sweep recomputes exactly the seven, and they equal the originals
    p = _sweep(sweep.parent.parent, *SWEEP)
    ran = [int(ln.split(" ran,")[0].split()[-1]) for ln in p.stdout.splitlines() if " ran, " in ln]
    assert p.returncode == 0 and sum(ran) == 7, p.stdout + p.stderr
    c = _collect(sweep.parent, sweep)
    assert c.returncode == 0 and "8 runs expected, 8 present, 0 missing, 0 failed" in c.stdout, c.stdout
    cols = ["run_id", "seed", "successes", "gov_spend", "contracts"]
    pd.testing.assert_frame_equal(pd.read_parquet(sweep / "sweep.parquet")[cols], pristine[1][cols])


def test_collect_writes_the_good_rows_when_some_are_corrupt(sweep):
    files = _results(sweep)
    files[0].write_text("{")
    c = _collect(sweep.parent, sweep)
    assert c.returncode == 1 and "7 present, 0 missing, 0 failed, 1 corrupt" in c.stdout, c.stdout
    df = pd.read_parquet(sweep / "sweep.parquet")
    assert len(df) == 7 and files[0].stem not in set(df.run_id)


def test_a_sweep_job_recomputes_a_corrupt_result_it_finds(sweep):
    files = _results(sweep)
    files[2].write_text("")
    p = _sweep(sweep.parent.parent, *SWEEP)
    assert p.returncode == 0, p.stderr
    assert "4 runs, 3 already done, 1 ran" in p.stdout and "4 runs, 4 already done, 0 ran" in p.stdout, p.stdout
    assert len(list((sweep / "corrupt").glob("*.json"))) == 1


def test_check_record_accepts_its_own_records_and_nothing_else(sweep):
    path = _results(sweep)[0]
    rec = json.loads(path.read_text())
    check_record(rec, path.stem)
    for change in (lambda r: r.update(seed=r["seed"] + 1), lambda r: r.pop("digest"),
                   lambda r: r["metrics"].pop("successes"), lambda r: r.update(engine="gpu"),
                   lambda r: r["metrics"].update(contracts=-1.0), lambda r: r.update(id="x" * 24)):
        bad = json.loads(path.read_text())
        change(bad)
        with pytest.raises(ValueError):
            check_record(bad, path.stem)


# --------------------------------------------------------------------------- files readable by colleagues
@pytest.fixture
def umask_022():
    old = os.umask(0o022)  # inherited by the subprocesses
    yield
    os.umask(old)


def test_sweep_files_are_readable_by_the_group_and_others(tmp_path, umask_022):
    p = _sweep(tmp_path, "regime=baseline", "seed=0,1", *SMALL)
    assert p.returncode == 0, p.stderr
    (d,) = list((tmp_path / "multirun").iterdir())
    c = subprocess.run([sys.executable, "-m", "experiments.collect", str(d)], cwd=tmp_path, capture_output=True,
                       text=True, timeout=120)
    assert c.returncode == 0, c.stdout + c.stderr
    written = [*_results(d), d / "sweep.parquet", d / "sweep_lines.png"]
    for f in written:
        assert stat.S_IMODE(f.stat().st_mode) == 0o644, (f, oct(f.stat().st_mode))


# --------------------------------------------------------------------------- ResultStore directly
def test_store_load_tells_good_corrupt_and_missing_apart(sweep):
    store = ResultStore(sweep)
    rid = _results(sweep)[0].stem
    rec, problem = store.load(rid)
    assert rec is not None and problem is None
    assert store.load("0" * 24) == (None, None)
    big = sweep / "results" / f"{rid}.json"
    big.write_bytes(b" " * (2 << 20))
    rec, problem = store.load(rid)
    assert rec is None and "more than" in problem


def test_collect_never_moves_files_through_a_corrupt_folder_that_is_a_link(sweep, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (sweep / "corrupt").symlink_to(elsewhere)
    bad = _results(sweep)[0]
    bad.write_text("{")
    c = _collect(sweep.parent, sweep)
    assert c.returncode == 1 and "corrupt/ is not a plain folder" in c.stdout, c.stdout + c.stderr
    assert not list(elsewhere.iterdir()) and bad.read_text() == "{"


def test_overlapping_jobs_give_each_run_once(tmp_path):
    p = _sweep(tmp_path, "regime=baseline", "seed=0,1", "seeds=2", *SMALL)  # seeds 0,1 and 1,2
    assert p.returncode == 0, p.stderr
    (d,) = list((tmp_path / "multirun").iterdir())
    c = _collect(tmp_path, d)
    assert c.returncode == 0 and "3 runs expected, 3 present" in c.stdout, c.stdout
    df = pd.read_parquet(d / "sweep.parquet")
    assert sorted(df.seed) == [0, 1, 2] and df.run_id.is_unique


def test_collect_follows_what_the_app_accepts(tmp_path):
    p = _sweep(tmp_path, "regimes=[baseline]", "scenario.firms={n:200}", "regime=baseline,free_trial", "seed=0",
               *SMALL[1:])
    assert p.returncode == 0, p.stderr
    (d,) = list((tmp_path / "multirun").iterdir())
    c = _collect(tmp_path, d)
    assert c.returncode == 0 and "2 runs expected, 2 present" in c.stdout, c.stdout + c.stderr
    assert (pd.read_parquet(d / "sweep.parquet")["scenario.firms.n"] == 200).all()


def test_results_dir_from_the_environment(tmp_path):
    env = dict(os.environ, TT_TEST_SCRATCH=str(tmp_path / "scratch"))
    p = subprocess.run([sys.executable, "-m", "experiments.run", "-m", "regime=baseline", "seed=0,1",
                        "results_dir=${oc.env:TT_TEST_SCRATCH}/store", *SMALL], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert len(list((tmp_path / "scratch" / "store" / "results").glob("*.json"))) == 2
    (d,) = list((tmp_path / "multirun").iterdir())
    c = subprocess.run([sys.executable, "-m", "experiments.collect", str(d), "--no-plots"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=120)
    assert c.returncode == 0 and "2 runs expected, 2 present" in c.stdout, c.stdout + c.stderr
    c = _collect(tmp_path, d)  # the variable unset: said, not guessed
    assert c.returncode == 2 and "environment variable TT_TEST_SCRATCH is not set" in c.stderr, c.stderr
    c = _collect(tmp_path, d, "--results-dir", str(tmp_path / "scratch" / "store"))
    assert c.returncode == 0 and "2 present" in c.stdout, c.stdout + c.stderr


def test_collect_with_a_relative_path_names_and_moves_a_corrupt_file(sweep):
    _results(sweep)[0].write_text("bad")
    c = _collect(sweep.parent.parent, Path("multirun") / sweep.name)
    assert c.returncode == 1 and "moved to corrupt/" in c.stdout and "Traceback" not in c.stderr, c.stdout + c.stderr


@pytest.mark.parametrize("task", [
    "alias bomb",                                  # YAML aliases: cheap to load, huge to print
    "[" * 5000 + "]" * 5000,                       # nesting deeper than the recursion limit
    "seed=" + "9" * 5000,                          # an integer longer than Python converts
    "scenario.firms=" + "{n:" * 300 + "1" + "}" * 300,
    "seed=range(0,1" + "0" * 400 + ")",            # a range beyond any float
])
def test_collect_refuses_pathological_multirun_files_in_one_line(sweep, task):
    path = sweep / "multirun.yaml"
    text = path.read_text()
    if task == "alias bomb":
        levels = ["a: &a [x,x,x,x,x,x,x,x,x]"] + [f"{c}: &{c} [{', '.join(['*' + p] * 9)}]"
                                                  for p, c in zip("abcdefghi", "bcdefghij")]
        text = "\n".join(levels) + "\n" + text.replace("  overrides:\n", "  overrides_old:\n", 1)
        text += "\n" if not text.endswith("\n") else ""
        data = yaml.safe_load(text)
        assert data["hydra"]
        text = text.replace("hydra:\n", "hydra:\n  overrides:\n    task: *j\n", 1)
    elif task.startswith("["):
        text = text.replace("hydra:\n", f"hydra:\n  deep: {task}\n", 1)
    else:
        data = yaml.safe_load(text)
        data["hydra"]["overrides"]["task"].append(task)
        text = yaml.safe_dump(data)
    path.write_text(text)
    c = _collect(sweep.parent, sweep, timeout=60)
    assert c.returncode == 2 and len(c.stderr.strip().splitlines()) == 1 and "Traceback" not in c.stderr, c.stderr


def test_a_result_with_a_recomputed_checksum_but_foreign_fields_is_corrupt(sweep):
    from sim.runs.sweep import _digest

    path = _results(sweep)[0]
    rec = json.loads(path.read_text())
    rec["host"] = {"x": [1, 2]}
    rec["digest"] = _digest(rec)
    path.write_text(json.dumps(rec))
    c = _collect(sweep.parent, sweep)
    assert c.returncode == 1 and "'host' is not a short text" in c.stdout, c.stdout + c.stderr


def test_a_sweep_job_stops_in_one_line_before_moving_through_a_linked_corrupt_folder(sweep, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (sweep / "corrupt").symlink_to(elsewhere)
    _results(sweep)[0].write_text("")
    p = _sweep(sweep.parent.parent, *SWEEP)
    assert p.returncode == 2 and "cannot be moved aside" in p.stderr and "Traceback" not in p.stderr, p.stderr
    assert not list(elsewhere.iterdir())


def _forged(sweep, change):
    """One of the sweep's records edited by ``change`` and given a recomputed checksum, as a careful forger would."""
    from sim.runs.sweep import _digest

    path = _results(sweep)[0]
    rec = json.loads(path.read_text())
    change(rec)
    rec["digest"] = _digest(rec)
    return rec, path.stem


@pytest.mark.parametrize("change, reason", [
    (lambda r: r["metrics"].update(successes=float("nan")), "metric successes is undefined"),
    (lambda r: r["metrics"].update(firm_surplus=-1e18), "metric firm_surplus = -1e+18: outside what a run can reach"),
    (lambda r: r["metrics"].update(contracts=r["metrics"]["contracts"] + 0.5, signed_licence=r["metrics"][
        "signed_licence"] + 0.5), "a run's total of whole yuan or counts is a whole number"),
    (lambda r: r["metrics"].update(arrivals=r["metrics"]["arrivals"] + 1), "its metrics are not its seed's"),
])
def test_a_record_with_a_recomputed_checksum_is_still_checked_against_what_a_run_can_be(sweep, change, reason):
    # issue 23: "a checksum is not a consistency check": a NaN count, a surplus no run can reach, a fractional count,
    # another seed's metrics all passed once the forger recomputed the SHA-256
    rec, rid = _forged(sweep, change)
    with pytest.raises(ValueError, match=re.escape(reason)):
        check_record(rec, rid)

