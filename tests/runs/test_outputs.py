"""Outputs are files the project creates: never written over a device, FIFO, link or a file of someone else's; two
main jobs never share a folder; a refused job leaves no folder behind; regimes are never silently ignored."""

import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from sim import api
from sim.core.config import ConfigError
from sim.runs.outputs import lock_folder
from experiments.cli import RunFailed

ROOT = Path(__file__).resolve().parents[2]
UNBUFFERED = {**os.environ, "PYTHONUNBUFFERED": "1"}  # a job's first line is seen when it is printed
SMALL = ["scenario.firms.n=200", "scenario.months=6", "seeds=1", "engine=numba", "regimes=[baseline]",
         "progress=false"]


def _run(cwd, *args, timeout=300):
    return subprocess.run([sys.executable, "-m", "experiments.run", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def _collect(cwd, sweep_dir, *args):
    return subprocess.run([sys.executable, "-m", "experiments.collect", str(sweep_dir), "--no-plots", *args],
                          cwd=cwd, capture_output=True, text=True, timeout=120)


def _one_line(p, code=2):
    assert p.returncode == code, p.stdout + p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    return lines[0]


# --------------------------------------------------------------------------- collect --out
@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    base = tmp_path_factory.mktemp("sweep")
    p = _run(base, "-m", "regime=baseline", "scenario.firms.n=200", "scenario.months=6", "seeds=1", "progress=false")
    assert p.returncode == 0, p.stderr
    (d,) = list((base / "multirun").iterdir())
    return d


def test_collect_refuses_a_fifo_as_out(sweep, tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    line = _one_line(_collect(tmp_path, sweep, "--out", str(fifo)))
    assert line == (f"error: --out = '{fifo}': is a FIFO; results are written only as regular files the project "
                    "creates (give a new file name)")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


@pytest.mark.skipif(os.geteuid() != 0, reason="mknod needs root")
def test_collect_never_replaces_a_device(sweep, tmp_path):
    """As root, --out /dev/null once replaced the device with a Parquet file (a device node of our own here)."""
    dev = tmp_path / "null"
    os.mknod(dev, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    line = _one_line(_collect(tmp_path, sweep, "--out", str(dev)))
    assert line.startswith(f"error: --out = '{dev}': is a device;")
    assert stat.S_ISCHR(os.lstat(dev).st_mode) and os.lstat(dev).st_rdev == os.makedev(1, 3)
    assert not (sweep / "corrupt").exists()


def test_collect_refuses_a_link_and_a_file_not_its_own(sweep, tmp_path):
    outside = tmp_path / "notes.txt"
    outside.write_text("mine\n")
    link = tmp_path / "table.parquet"
    link.symlink_to(outside)
    line = _one_line(_collect(tmp_path, sweep, "--out", str(link)))
    assert line.startswith(f"error: --out = '{link}': is a symbolic link;")
    assert link.is_symlink() and outside.read_text() == "mine\n"
    line = _one_line(_collect(tmp_path, sweep, "--out", str(outside)))
    assert line == (f"error: --out = '{outside}': exists and is not a table collect wrote; collect replaces only "
                    "its own tables (give a new file name, or remove that file)")
    assert outside.read_text() == "mine\n"


def test_collect_replaces_its_own_table(sweep, tmp_path):
    out = tmp_path / "t.parquet"
    for _ in range(2):  # the second run replaces the table the first wrote
        c = _collect(tmp_path, sweep, "--out", str(out))
        assert c.returncode == 0, c.stderr
    assert len(pd.read_parquet(out)) == 1
    pd.DataFrame({"a": [1]}).to_parquet(out)  # a Parquet file, but not collect's
    assert _collect(tmp_path, sweep, "--out", str(out)).returncode == 2
    assert list(pd.read_parquet(out).columns) == ["a"]


# --------------------------------------------------------------------------- the main job's folder
def test_a_second_job_into_a_locked_folder_is_refused(tmp_path):
    """The lock is held (here by the test, as a running job holds it): the job is refused before any run."""
    out = tmp_path / "run"
    out.mkdir()
    lock = lock_folder(out, "hydra.run.dir")
    try:
        p = _run(tmp_path, *SMALL, f"hydra.run.dir={out}")
    finally:
        lock.release()
    assert _one_line(p) == (f"config error: hydra.run.dir = '{out}': another job (pid {os.getpid()}) is writing in this "
                            "folder (it holds .lock); wait for it to end, or choose another folder")
    assert sorted(os.listdir(out)) == [".lock"]


def _started_job(out, log, stderr):
    """A main job into ``out`` (stdout to ``log``), returned once it holds its folder's lock (it then prints its
    "scenario default:" line); a job that ends or takes 240 s first fails the test."""
    with open(log, "w") as f:
        job = subprocess.Popen([sys.executable, "-m", "experiments.run", *SMALL, f"hydra.run.dir={out}"],
                               cwd=out.parent, stdout=f, stderr=stderr, text=True, env=UNBUFFERED)
    deadline = time.time() + 240
    while "scenario default:" not in log.read_text():
        if job.poll() is not None or time.time() >= deadline:
            job.kill()
            pytest.fail(log.read_text()[-2000:])
        time.sleep(0.05)
    return job


def test_two_jobs_into_one_folder_one_is_refused_the_other_intact(tmp_path):
    out = tmp_path / "run"
    log = tmp_path / "first.txt"
    first = _started_job(out, log, stderr=subprocess.STDOUT)
    try:
        first.send_signal(signal.SIGSTOP)  # the first job is mid-run while the second starts
        try:
            second = _run(tmp_path, *SMALL, f"hydra.run.dir={out}")
        finally:
            first.send_signal(signal.SIGCONT)
        assert first.wait(timeout=240) == 0, log.read_text()
    finally:
        if first.poll() is None:
            first.kill()
    assert f"another job (pid {first.pid}) is writing in this folder" in _one_line(second)
    table = pd.read_csv(out / "table.csv")
    assert set(table["regime"]) == {"baseline"}
    assert (out / "summary.csv").is_file() and (out / ".hydra" / "config.yaml").is_file()


def test_a_folder_removed_under_the_job_is_one_line_exit_1(tmp_path):
    """Not the user's fault: the job says what failed and that what it wrote is kept, without a traceback."""
    out = tmp_path / "run"
    log = tmp_path / "job.txt"
    job = _started_job(out, log, stderr=subprocess.PIPE)
    try:
        job.send_signal(signal.SIGSTOP)
        out.rename(tmp_path / "moved")  # the folder goes while the job runs
        job.send_signal(signal.SIGCONT)
        err = job.communicate(timeout=240)[1]
    finally:
        if job.poll() is None:
            job.kill()
    assert job.returncode == 1 and "Traceback" not in err, err
    (line,) = err.strip().splitlines()
    assert line.startswith("run failed: cannot write ") and line.endswith(
        "(No such file or directory); the files written before it are kept, each whole")
    kept = os.listdir(tmp_path / "moved")
    assert not out.exists() and ".lock" in kept and not [n for n in kept if n.endswith(".tmp")], kept


def test_default_folders_of_jobs_started_at_once_differ(tmp_path):
    jobs = [subprocess.Popen([sys.executable, "-m", "experiments.run", *SMALL], cwd=tmp_path,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for j in jobs:
        assert j.wait(timeout=300) == 0, j.stderr.read()
    folders = sorted(p for p in (tmp_path / "outputs").glob("*/*"))
    assert len(folders) == 2
    for f in folders:
        assert re.fullmatch(r"\d\d-\d\d-\d\d-\d+-[0-9a-f]{4}", f.name), f.name
        assert (f / "summary.csv").is_file() and (f / "table.csv").is_file() and (f / ".hydra/config.yaml").is_file()


def test_a_refused_job_leaves_no_folder_it_created(tmp_path):
    out = tmp_path / "new" / "run"
    p = _run(tmp_path, *SMALL, "regime=free_trial", f"hydra.run.dir={out}")
    assert _one_line(p) == ("config error: regimes = ['baseline']: given with regime=free_trial, which runs that "
                            "regime alone; give one of them (regimes=[...] compares several)")
    assert not (tmp_path / "new").exists()
    p = _run(tmp_path, *SMALL, "regime=free_trial")  # the default folder
    assert p.returncode == 2 and not (tmp_path / "outputs").exists()
    existing = tmp_path / "mine"
    existing.mkdir()
    p = _run(tmp_path, *SMALL, "regime=free_trial", f"hydra.run.dir={existing}")
    assert p.returncode == 2 and existing.is_dir() and os.listdir(existing) == []  # not ours to remove


def test_the_job_never_writes_over_a_file_of_someone_else(tmp_path):
    own = tmp_path / "mine"
    own.mkdir()
    (own / "table.csv").write_text("my table\n")
    line = _one_line(_run(tmp_path, *SMALL, f"hydra.run.dir={own}"))
    assert line == (f"config error: hydra.run.dir = '{own}': holds table.csv, not a main job's (no .lock nor "
                    ".hydra/config.yaml); the job writes only files it creates: choose another folder")
    assert (own / "table.csv").read_text() == "my table\n" and sorted(os.listdir(own)) == ["table.csv"]


def test_the_job_never_writes_through_a_link(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / ".lock").touch()  # a main job's folder
    outside = tmp_path / "outside.csv"
    outside.write_text("keep\n")
    (run / "summary.csv").symlink_to(outside)
    line = _one_line(_run(tmp_path, *SMALL, f"hydra.run.dir={run}"))
    assert line.startswith(f"config error: hydra.run.dir file summary.csv = '{run / 'summary.csv'}': is a symbolic "
                           "link;")
    assert outside.read_text() == "keep\n" and (run / "summary.csv").is_symlink()


# --------------------------------------------------------------------------- regimes never silently ignored
def test_a_mix_whose_instruments_disagree_is_refused(tmp_path):
    p = _run(tmp_path, *SMALL[:-2], "regime.name=free_trial+vouchers", "regime.instruments=[free_trial]")
    assert _one_line(p) == (
        "config error: regime.instruments = ['free_trial']: regime.name 'free_trial+vouchers' is the mix of "
        "['free_trial', 'vouchers']; give the mix's instruments with its name, or name a combination of your own "
        "with regime.name=<label> (no +); the main job runs a mix as regimes=[a+b]")
    assert not (tmp_path / "outputs").exists()
    cfg = api.compose("regime.name=free_trial+vouchers", "regime.instruments=[vouchers,free_trial]")
    assert sorted(cfg.regime.instruments) == ["free_trial", "vouchers"]
    with pytest.raises(ConfigError, match="is the mix of"):
        api.compose("regime.name=free_trial+vouchers")  # baseline's [] would run under the mix's name


def test_simulate_and_compare_refuse_no_config():
    for call in (lambda: api.simulate(None), lambda: api.compare(None)):
        with pytest.raises(ConfigError) as e:
            call()
        assert str(e.value) == ("cfg = None: must be a Config (sim.api.compose(...) gives one; compose() the "
                                "defaults) or a mapping of its settings")


def test_a_job_run_again_into_its_folder_sets_the_earlier_results_aside_never_mixed(tmp_path):
    # the first job compares two regimes and writes the equal-spend files; the second runs one regime alone, which
    # writes none: its folder must not keep the first job's equal-spend table beside its own results
    folder = tmp_path / "run"
    small = [a for a in SMALL if not a.startswith("regimes=")]
    first = _run(tmp_path, *small, "regimes=[baseline,broker_reward]", f"hydra.run.dir={folder}")
    assert first.returncode == 0, first.stderr
    before = {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file() and p.name != ".lock"}
    assert Path("table_equal_spend.csv") in before
    second = _run(tmp_path, *small, "regime=baseline", f"hydra.run.dir={folder}")
    assert second.returncode == 0, second.stderr
    assert not (folder / "table_equal_spend.csv").exists() and (folder / "table.csv").is_file()
    (aside,) = [p for p in folder.iterdir() if p.name.startswith("previous-")]
    # every file of the first job, byte for byte, set aside under its own name
    assert {p.relative_to(aside): p.read_bytes() for p in aside.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("error, code, line", [
    (ConfigError("seeds = 0: must be >= 1"), 2, "config error: seeds = 0: must be >= 1"),
    (RunFailed("a payment leaked\n 3 yuan"), 1, "run failed: a payment leaked 3 yuan"),
    (OSError(28, "No space left on device", "/x/table.csv"), 1,
     "run failed: cannot write /x/table.csv (No space left on device); kept: A"),
])
def test_every_app_ends_on_its_error_in_one_line_with_its_code(capsys, error, code, line):
    """The one ending of every app (main job, sweeps, calibration, explorations): the user's error exit 2, a failed
    run or a fault exit 1 saying what was kept; the line is the whole of stderr."""
    from experiments.cli import APP_ERRORS, exit_in_one_line

    assert isinstance(error, APP_ERRORS)
    with pytest.raises(SystemExit) as exit_:
        exit_in_one_line(error, "kept: A")
    assert exit_.value.code == code
    assert capsys.readouterr().err == line + "\n"


def test_every_app_takes_the_same_lock_and_the_refusal_names_the_holders_kind(tmp_path):
    """A calibration, an exploration and a main job lock one file (.lock): a folder held by a calibration refuses an
    exploration, naming the calibration and its pid."""
    from sim.runs.outputs import lock_folder

    held = lock_folder(tmp_path, "hydra.run.dir", "calibration")
    try:
        code = ("import sys; from sim.runs.outputs import lock_folder; from sim.core.config import ConfigError\n"
                "try:\n    lock_folder(sys.argv[1], 'hydra.run.dir', 'exploration')\n"
                "except ConfigError as e:\n    print(e); sys.exit(2)\n")
        p = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60)
    finally:
        held.release()
    assert p.returncode == 2, p.stdout + p.stderr
    assert p.stdout.strip() == (f"hydra.run.dir = '{tmp_path}': another calibration (pid {os.getpid()}) is writing "
                                "in this folder (it holds .lock); wait for it to end, or choose another folder")


def test_a_lock_file_removed_between_open_and_lock_is_never_held_by_two(tmp_path, monkeypatch):
    """Job A removes the lock file it made (a refused job does) just after job B opened it; job C makes a new one and
    holds it. B's lock on the removed file holds nothing: B locks again, on C's file, and is refused."""
    import sim.runs.outputs as outputs

    a = outputs.lock_folder(tmp_path, "k", "job")
    real_open, state = os.open, {}

    def racing_open(path, flags, mode=0o777):
        fd = real_open(path, flags, mode)
        if not state and str(path).endswith(".lock"):  # B has opened A's file: A goes, C comes
            state["a"] = a.release(remove=True)
            state["c"] = outputs.lock_folder(tmp_path, "k", "calibration")
        return fd

    monkeypatch.setattr(os, "open", racing_open)
    try:
        with pytest.raises(ConfigError, match=rf"another calibration \(pid {os.getpid()}\) is writing"):
            outputs.lock_folder(tmp_path, "k", "job")  # B
    finally:
        monkeypatch.undo()
        state["c"].release()
