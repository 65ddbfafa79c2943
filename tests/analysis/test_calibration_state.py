"""A calibration's state across sessions: the budget counts every run the folder ever spent (kills included), its
calibration.json and abc.db are checked before reuse, two calibrations never write one folder at once, and plausible
bad settings are refused in one line before any run."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from sim.core.config import ConfigError

from ..conftest import kill_after_generations

DATA = Path(__file__).parents[1] / "data"
RPE = 2  # runs an evaluation of recovery_targets.yaml (one setting of 2 seeds)


def _args(out, *extra):
    return [sys.executable, "-m", "experiments.calibrate", f"target_set={DATA / 'recovery_targets.yaml'}",
            f"space={DATA / 'recovery_space.yaml'}", "screen.fit=[expert_visits.surface_chance]", "abc.population=10",
            "predictive_draws=2", "workers=1", "scenario_dir=none", f"hydra.run.dir={out}", *extra]


def _run(out, *extra, cwd):
    return subprocess.run(_args(out, *extra), capture_output=True, text=True, timeout=600, cwd=cwd)


def _spent(out) -> int:
    return json.loads((out / "calibration.json").read_text())["abc_evaluations"]


def _session_runs(stdout: str) -> int:
    """The ABC runs this session made, from its progress line."""
    return int(re.search(r"ABC-SMC: \d+ generations, tolerance \S+, (\d+) runs", stdout).group(1))


def _history_total(out) -> int:
    with sqlite3.connect(f"file:{out / 'abc.db'}?mode=ro", uri=True) as db:
        return int(db.execute("select sum(nr_samples) from populations").fetchone()[0])


def _one_line(p, code):
    lines = p.stderr.strip().splitlines()
    assert p.returncode == code and len(lines) == 1 and "Traceback" not in p.stderr, p.stderr[-2000:]
    return lines[0]


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    """A finished one-generation calibration (copied by the tests that tamper with it)."""
    base = tmp_path_factory.mktemp("done")
    out = base / "out"
    first = _run(out, "abc.generations=1", cwd=base)
    assert first.returncode == 0, first.stderr[-2000:]
    return out, _session_runs(first.stdout)


def _copy(done, tmp_path) -> Path:
    out = tmp_path / "out"
    shutil.copytree(done[0], out)
    return out


def test_the_budget_counts_every_session_and_a_killed_ones_runs(tmp_path):
    """kill -9 mid-ABC: the count persisted after every batch survives (at least what the history holds, the
    discarded tails included); the resumed session adds exactly its own runs, and the report counts them all."""
    out = tmp_path / "out"
    proc = subprocess.Popen(_args(out, "abc.generations=6", "abc.min_epsilon=0"), cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    kill_after_generations(proc, out / "abc.db", 2)
    killed = _spent(out)
    assert killed >= _history_total(out) > 0
    again = _run(out, "abc.generations=6", "abc.min_epsilon=0", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "resuming the history" in again.stdout
    session = _session_runs(again.stdout)
    assert _spent(out) * RPE == killed * RPE + session
    assert f"({_spent(out) * RPE} runs of the budget" in (out / "report.md").read_text()


def test_a_generations_cap_then_a_resume_counts_both_sessions_and_the_budget_caps_their_sum(done, tmp_path):
    out = _copy(done, tmp_path)
    one = _spent(out)
    assert one * RPE == done[1] > 0
    second = _run(out, "abc.generations=3", cwd=tmp_path)
    assert second.returncode == 0, second.stderr[-2000:]
    two = _spent(out)
    assert two * RPE == one * RPE + _session_runs(second.stdout) and two > one
    # a budget the folder has already spent: nothing more is run, nothing counted twice
    third = _run(out, "abc.generations=5", f"budget={two * RPE}", cwd=tmp_path)
    assert third.returncode == 0, third.stderr[-2000:]
    assert _session_runs(third.stdout) == 0 and _spent(out) == two


def test_an_edited_or_truncated_calibration_json_is_refused_in_one_line(done, tmp_path):
    out = _copy(done, tmp_path)
    state = json.loads((out / "calibration.json").read_text())
    db = (out / "abc.db").read_bytes()
    for content, fragment in [
        ('{"abc_evaluations": -1e9', "calibration.json is not valid JSON"),  # truncated
        (json.dumps({**state, "abc_evaluations": -1e9}),
         "calibration.json: abc_evaluations = -1000000000.0: must be a whole number >= 0"),
        (json.dumps({**state, "abc_evaluations": "12"}), "calibration.json: abc_evaluations = '12': must be a whole"),
        ("[1, 2]", "calibration.json holds list, not a mapping"),
    ]:
        (out / "calibration.json").write_text(content)
        p = _run(out, "abc.generations=2", "progress=false", cwd=tmp_path)
        line = _one_line(p, 2)
        assert fragment in line and "resume=false" in line, line
        assert (out / "calibration.json").read_text() == content and (out / "abc.db").read_bytes() == db  # untouched


def test_a_damaged_abc_db_is_moved_aside_in_one_line_and_the_count_kept(done, tmp_path):
    out = _copy(done, tmp_path)
    spent = _spent(out)
    data = (out / "abc.db").read_bytes()
    (out / "abc.db").write_bytes(data[: len(data) // 3])  # truncated
    p = _run(out, "abc.generations=2", "progress=false", cwd=tmp_path)
    line = _one_line(p, 1)
    assert "abc.db" in line and "moved aside" in line, line
    aside = [f for f in out.iterdir() if f.name.startswith("abc.db.damaged-") and not f.name.endswith(".reason")]
    assert len(aside) == 1 and aside[0].read_bytes() == data[: len(data) // 3]
    assert aside[0].with_name(aside[0].name + ".reason").read_text().strip()
    assert _spent(out) == spent
    again = _run(out, "abc.generations=1", cwd=tmp_path)  # the fit starts over; the runs spent stay counted
    assert again.returncode == 0, again.stderr[-2000:]
    assert _spent(out) * RPE == spent * RPE + _session_runs(again.stdout)


def test_a_history_with_a_generation_stored_twice_is_not_continued(done, tmp_path):
    from sim.analysis import calibration as cal

    out = _copy(done, tmp_path)
    assert cal.check_history(out / "abc.db") is None
    with sqlite3.connect(out / "abc.db") as db:
        cols = [r[1] for r in db.execute("pragma table_info(populations)") if r[1] != "id"]
        db.execute(f"insert into populations ({','.join(cols)}) select {','.join(cols)} from populations "
                   "where t = 0")
    assert cal.check_history(out / "abc.db") == "generation 0 is stored twice"
    p = _run(out, "abc.generations=2", "progress=false", cwd=tmp_path)
    line = _one_line(p, 1)
    assert "abc.db: generation 0 is stored twice: moved aside to abc.db.damaged-" in line, line
    assert not (out / "abc.db").exists()


def test_a_stored_screen_edited_is_moved_aside_and_screened_again_to_the_same_table(tmp_path):
    """screen.csv is reused on resume only if it is a screen of these parameters and targets whose mu_star is each
    parameter's largest effect: a target's column x100 is caught, moved aside with why, and the screen run again
    gives back the table the first session wrote (the same seed)."""
    import pandas as pd

    out = tmp_path / "out"
    args = ("method=screen", "screen.fit=null", "screen.trajectories=3", "screen.check=false", "progress=false")
    first = subprocess.run([*_args(out), *args], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    original = (out / "screen.csv").read_text()
    table = pd.read_csv(out / "screen.csv")
    target = [c for c in table.columns if c not in ("parameter", "mu_star", "mu_star_conf", "sigma")][0]
    table[target] *= 100
    table.to_csv(out / "screen.csv", index=False)
    edited = (out / "screen.csv").read_text()
    again = subprocess.run([*_args(out), *args], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert ("screen.csv: a mu_star that is not its parameter's largest effect on a target: moved aside to "
            "screen.csv.damaged-") in again.stdout, again.stdout
    (aside,) = [f for f in out.iterdir() if f.name.startswith("screen.csv.damaged-") and not f.name.endswith("reason")]
    assert aside.read_text() == edited
    assert (out / "screen.csv").read_text() == original


def test_a_screen_killed_half_way_stays_counted_in_the_budget(tmp_path):
    """A screen's runs are counted in calibration.json before it begins: killed half-way (no screen.csv yet), the
    resumed calibration counts that screen and the one it runs again, so the budget's cap holds across kills."""
    out = tmp_path / "out"
    args = [*_args(out), "method=screen", "screen.fit=null", "screen.trajectories=150", "screen.check=false",
            "progress=false"]
    cost = 150 * (2 + 1) * RPE  # trajectories x (parameters + 1) x runs an evaluation
    first = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not ((out / "calibration.json").exists() and json.loads((out / "calibration.json").read_text() or "{}")
               .get("screen_runs")):
        assert first.poll() is None and time.monotonic() < deadline, first.stderr.read()[-2000:]
        time.sleep(0.01)
    first.kill()
    first.wait()
    assert not (out / "screen.csv").exists(), "the screen ended before the kill: nothing tested"
    assert json.loads((out / "calibration.json").read_text())["screen_runs"] == cost
    again = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads((out / "calibration.json").read_text())["screen_runs"] == 2 * cost
    third = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=tmp_path)  # screen.csv read back
    assert third.returncode == 0 and json.loads((out / "calibration.json").read_text())["screen_runs"] == 2 * cost


def test_screens_stay_within_the_budget_across_sessions_and_old_folders_count_theirs(tmp_path):
    """The budget is a hard cap across sessions: a screen the folder's spent runs leave no room for is refused before
    it begins (the count untouched). A calibration.json of the earlier version (no screen_runs) counts the screen it
    stores, and writes that count (never a null a later resume would refuse). A screen.csv that is a FIFO is moved
    aside and screened again, never read (it would block for ever)."""
    out = tmp_path / "out"
    args = [*_args(out), "method=screen", "screen.fit=null", "screen.trajectories=3", "screen.check=false",
            "progress=false"]
    cost = 3 * (2 + 1) * RPE
    first = subprocess.run([*args, "budget=78"], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    state = json.loads((out / "calibration.json").read_text())
    assert state["screen_runs"] == cost
    # an old folder: no screen_runs; the stored screen is counted, and the count written
    del state["screen_runs"]
    (out / "calibration.json").write_text(json.dumps(state))
    again = subprocess.run([*args, "budget=78"], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads((out / "calibration.json").read_text())["screen_runs"] == cost
    # spent runs that leave no room for another screen: refused before it begins
    (out / "screen.csv").unlink()
    state = json.loads((out / "calibration.json").read_text())
    (out / "calibration.json").write_text(json.dumps({**state, "screen_runs": 78 - cost + 1}))
    refused = subprocess.run([*args, "budget=78"], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert _one_line(refused, 2) == (f"config error: budget = 78: this folder has spent {78 - cost + 1} runs (the "
                                     f"screens begun and the ABC evaluations of every session); a screen of {cost} "
                                     "runs would pass it; raise it, or start again with resume=false")
    assert json.loads((out / "calibration.json").read_text())["screen_runs"] == 78 - cost + 1
    assert not (out / "screen.csv").exists()
    # one run less spent: the screen fits the budget exactly, and runs
    (out / "calibration.json").write_text(json.dumps({**state, "screen_runs": 78 - cost}))
    fits = subprocess.run([*args, "budget=78"], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert fits.returncode == 0, fits.stderr[-2000:]
    assert json.loads((out / "calibration.json").read_text())["screen_runs"] == 78
    # a FIFO where the screen was: moved aside, screened again
    (out / "screen.csv").unlink()
    os.mkfifo(out / "screen.csv")
    fifo = subprocess.run([*args, "budget=1000"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert fifo.returncode == 0, fifo.stderr[-2000:]
    assert "screen.csv: not a regular file: moved aside to screen.csv.damaged-" in fifo.stdout, fifo.stdout
    assert (out / "screen.csv").is_file()


@pytest.mark.parametrize("edit, why", [
    (lambda t: t.assign(mu_star=t["mu_star"] * 1.1), "a mu_star that is not its parameter's largest effect"),
    (lambda t: t.assign(sigma=float("nan")), "an effect that is not a finite number >= 0"),
    (lambda t: t.assign(mu_star_conf=-1.0), "an effect that is not a finite number >= 0"),
    (lambda t: t.iloc[::-1], "rows not in decreasing mu_star"),
    (lambda t: t.iloc[:1], "not a screen of this space's parameters"),
    (lambda t: t.assign(parameter=["a", "a"]), "not a screen of this space's parameters"),
    (lambda t: t.drop(columns=["t2"]), "its columns are not"),
    (lambda t: t.assign(t1=t["t1"].astype(str) + "x"), "a value that is not a number"),
])
def test_read_screen_refuses_a_table_no_screen_could_give(tmp_path, edit, why):
    import pandas as pd

    from sim.analysis.calibration import read_screen

    good = pd.DataFrame({"parameter": ["a", "b"], "mu_star": [0.3, 0.1], "mu_star_conf": [0.05, 0.02],
                         "sigma": [0.2, 0.1], "t1": [0.3, 0.05], "t2": [0.1, 0.1]})
    path = tmp_path / "screen.csv"
    good.to_csv(path, index=False)
    table, reason = read_screen(path, ["b", "a"], ["t1", "t2"])
    assert reason is None and table.equals(good)
    edit(good).to_csv(path, index=False)
    table, reason = read_screen(path, ["b", "a"], ["t1", "t2"])
    assert table is None and reason.startswith(why), reason


def test_two_calibrations_into_one_folder_the_second_is_refused_in_one_line(tmp_path):
    out = tmp_path / "out"
    first = subprocess.Popen(_args(out, "abc.generations=4", "abc.min_epsilon=0", "progress=false"), cwd=tmp_path,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not (out / "calibration.json").exists():
        assert first.poll() is None and time.monotonic() < deadline, first.stderr.read() if first.poll() else ""
        time.sleep(0.02)
    second = _run(out, "abc.generations=4", "abc.min_epsilon=0", "progress=false", cwd=tmp_path)
    assert first.poll() is None, "the first ended before the second was tried: no overlap tested"
    line = _one_line(second, 2)
    assert line == (f"config error: hydra.run.dir = {str(out)!r}: another calibration (pid {first.pid}) is writing "
                    "in this folder (it holds .lock); wait for it to end, or choose another folder"), line
    _, err = first.communicate(timeout=600)
    assert first.returncode == 0, err[-2000:]
    from sim.analysis import calibration as cal

    assert cal.check_history(out / "abc.db") is None  # one run, no generation twice


def test_the_lock_is_exclusive_and_released(tmp_path):
    from sim.runs.outputs import folder_lock

    with folder_lock(tmp_path, "k", "job"):
        code = ("import sys; from sim.runs.outputs import folder_lock; from sim.core.config import ConfigError\n"
                "try:\n    folder_lock(sys.argv[1], 'k', 'job').__enter__()\nexcept ConfigError as e:\n"
                "    print(e); sys.exit(2)\n")
        p = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60)
        assert p.returncode == 2 and f"another job (pid {os.getpid()})" in p.stdout
    p = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr


@pytest.mark.parametrize("extra, fragment", [
    (["budget=10", "abc.population=10"], "config error: budget = 10: too small for one generation of "
                                         "abc.population = 10; at least 60 runs (3 x 10 particles x 2 runs"),
    (["budget=90", "abc.population=10", "screen.fit=null", "screen.trajectories=3"],  # 2 screens of 3 x 3 x 2 runs
     "config error: budget = 90: too small for one generation of abc.population = 10; at least 96 runs "
     "(36 for the screen, 3 x 10 particles x 2 runs"),
    (["screen.fit=[expert_visits.surface_chance,expert_visits.surface_chance]"],
     "config error: screen.fit = ['expert_visits.surface_chance', 'expert_visits.surface_chance']: lists "
     "expert_visits.surface_chance more than once"),
])
def test_settings_that_cannot_run_are_refused_before_any_run(tmp_path, extra, fragment):
    out = tmp_path / "out"
    args = [a for a in _args(out) if not any(a.startswith(e.split("=")[0] + "=") for e in extra)] + extra
    p = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    line = _one_line(p, 2)
    assert line.startswith(fragment), line
    assert not out.exists()  # the folder Hydra made for the refused job is removed, empty
    out.mkdir()
    p = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert _one_line(p, 2) == line and out.is_dir()  # a folder that was there before the job stays


@pytest.mark.parametrize("sd", [1e-200, 1e-13, 0.0])
def test_a_target_sd_too_small_for_the_distance_is_refused_with_its_key(tmp_path, sd):
    from sim.analysis.targets import load_targets

    data = yaml.safe_load((DATA / "recovery_targets.yaml").read_text())
    data["targets"]["needs_per_visit"]["sd"] = sd
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"^targets\.needs_per_visit\.sd = "):
        load_targets(str(path))
    data["targets"]["needs_per_visit"]["sd"] = 1e-12  # the least allowed for a value of 0.5
    path.write_text(yaml.safe_dump(data))
    load_targets(str(path))


def test_the_lock_file_is_never_a_link_to_a_file_elsewhere(tmp_path):
    # the holder's pid is written into the lock file: through a link it would overwrite a file of someone else's
    from sim.runs.outputs import folder_lock

    theirs = tmp_path / "theirs.txt"
    theirs.write_text("their data\n")
    folder = tmp_path / "cal"
    folder.mkdir()
    (folder / ".lock").symlink_to(theirs)
    with pytest.raises(ConfigError, match="lock file"):
        with folder_lock(folder, "hydra.run.dir", "calibration"):
            pass
    assert theirs.read_text() == "their data\n"


def test_a_calibration_json_beyond_its_size_is_refused_unread(done, tmp_path):
    """The state file is read within a size bound, like every file of the user's (a 1 MiB calibration.json is no
    state this app wrote): one line, exit 2, the file left as it is."""
    out = _copy(done, tmp_path)
    big = '{"abc_evaluations": 1, "pad": "' + "x" * (1 << 20) + '"}'
    (out / "calibration.json").write_text(big)
    p = _run(out, "abc.generations=2", "progress=false", cwd=tmp_path)
    line = _one_line(p, 2)
    assert line == (f"config error: hydra.run.dir = {str(out)!r}: calibration.json: more than the 1048576 bytes a "
                    "calibration's state of ours can have; restore it, or start again with resume=false (the runs "
                    "this folder spent cannot be counted)"), line
    assert (out / "calibration.json").read_text() == big
