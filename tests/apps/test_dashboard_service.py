"""The dashboard's service without a page or a browser: what keys its cache, what an answer computes, the files a
page reads, and the one hook the pages ask their questions through."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest

from experiments.dashboard import service as svc
from sim.core.config import ConfigError

from ..conftest import SMALL
from ..runs.test_posterior import write_posterior

RISK = "scenario.firms.risk_aversion_sme"
BASE = ["engine=numba", *SMALL, "regimes=[baseline,broker_reward]", "at_spend=broker_reward"]


# --------------------------------------------------------------------------- the cache's key
def test_a_posterior_rewritten_in_place_is_a_new_question(tmp_path):
    folder = write_posterior(tmp_path / "c1", [{"weight": 0.5, RISK: 1.0}, {"weight": 0.5, RISK: 5.0}])
    s = svc.Service(BASE, workers=1)
    question = svc.posterior_question(folder, "2", "1")
    cfg = s.config(question)
    before = svc._key(cfg)
    assert svc._key(cfg) == before  # the same files: the same key
    csv = folder / "posterior.csv"
    text = csv.read_text()
    assert "1.0" in text
    csv.write_text(text.replace("1.0", "2.0"))  # the same size: only what it holds changed
    assert len(csv.read_text()) == len(text)
    after = svc._key(cfg)
    assert after != before
    yaml = folder / "posterior.yaml"
    yaml.write_text(yaml.read_text() + "# re-run\n")
    assert svc._key(cfg) not in (before, after)
    # a config without a posterior is keyed as before: its repr
    plain = s.config([])
    assert svc._key(plain) == repr(svc.replace(plain, workers=1, progress=False))


def test_an_answer_on_a_rewritten_posterior_is_not_served_from_the_cache(tmp_path):
    folder = write_posterior(tmp_path / "c2", [{"weight": 1.0, RISK: 1.0}])
    s = svc.Service(BASE, workers=1)
    question = svc.posterior_question(folder, "2", "1")
    first = svc.compare_posterior(s, question)
    assert s.cached(question) is first
    write_posterior(folder, [{"weight": 1.0, RISK: 9.0}])  # the calibration re-run into the same folder
    assert s.cached(question) is None
    second = svc.compare_posterior(s, question)
    assert second is not first
    assert not second.comparison.table.equals(first.comparison.table)


# --------------------------------------------------------------------------- what an answer computes
def test_an_answer_draws_its_figure_only_when_shown_and_once():
    s = svc.Service(BASE, workers=1)
    a = s.compare(["seeds=2"])
    assert not hasattr(a, "tables") and not hasattr(a, "equal_tables")  # no page reads them: not computed
    assert a._figure is None  # not drawn with the answer
    png = a.figure_png()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert a.figure_png() is png  # kept: drawn once
    assert list(a.files()) == ["table.csv", "table.parquet", "summary.csv", "summary.parquet", "headline.csv",
                               "comparison.png", "command.sh", "table_equal_spend.csv", "table_equal_spend.parquet"]


def test_the_headline_download_holds_the_comparisons_numbers_not_text():
    import io

    s = svc.Service(BASE, workers=1)
    a = s.compare(["seeds=2"])
    got = pd.read_csv(io.BytesIO(a.files()["headline.csv"]()))
    assert list(got["regime"].drop_duplicates()) == list(a.headline["regime"])  # the headline's order
    for eq, t in ((False, a.comparison.table), (True, a.equal.table)):
        rows = got[got["at_equal_spend"] == eq]
        assert len(rows) == (5 if not eq else 2) * len(a.headline)
        indexed = t.set_index(["regime", "metric"])
        for r in rows.itertuples():
            lo, hi = ("ci_low", "ci_high") if r.statistic == "mean" else ("effect_low", "effect_high")
            want = indexed.loc[(r.regime, r.metric), [r.statistic, lo, hi]].to_numpy(dtype=float)
            np.testing.assert_array_equal([r.mean, r.low, r.high], want)  # exactly, as a spreadsheet reads them


# --------------------------------------------------------------------------- a table a page reads
def test_a_malformed_table_is_one_line_naming_it(tmp_path):
    good = pd.DataFrame({"parameter": ["a"], "low": [0.1], "high": [0.5], "shrinkage": [0.6]})
    good.to_csv(tmp_path / "posterior_summary.csv", index=False)
    pd.testing.assert_frame_equal(svc.read_table(tmp_path, "posterior_summary.csv", ("parameter",), ("shrinkage",)),
                                  good)
    cases = {"empty.csv": (b"", r"not a readable CSV table \(EmptyDataError"),
             "ragged.csv": (b"a,b\n1,2\n3,4,5,6\n", r"not a readable CSV table \(ParserError"),
             "binary.csv": (b"\xff\xfe\x00\x81a,b\n", r"not a readable CSV table \(UnicodeDecodeError"),
             "words.csv": (b"parameter,shrinkage\na,0.5\nb,lots\n", r"column 'shrinkage' holds 'lots', not a number"),
             "nocol.csv": (b"x,shrinkage\na,0.5\n", r"no column 'parameter' \(its columns: x, shrinkage\)")}
    for name, (data, message) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ConfigError, match=rf"^{name} in '{tmp_path}': {message}") as e:
            svc.read_table(tmp_path, name, ("parameter",), ("shrinkage",))
        assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match=r"^missing.csv in .*: not a readable CSV table \(FileNotFoundError"):
        svc.read_table(tmp_path, "missing.csv")


# --------------------------------------------------------------------------- how a page asks (state.use_question)
class Fake:
    """A question's run that reports progress, then waits to be let go, then ends (or stops if given up)."""

    def __init__(self):
        self.started, self.go = threading.Event(), threading.Event()

    def __call__(self, question, on_progress, cancel, on_wait):
        on_wait(7)
        on_progress(0, 4, "runs")
        self.started.set()
        assert self.go.wait(30)
        if cancel.is_set():
            raise svc.Cancelled("given up")
        on_progress(4, 4, "runs")
        return ("answer", tuple(question))


def _ask(asking, ident, run, question):
    seen = {"progress": [], "cancelled": []}
    out = {}

    def go():
        out["value"] = asking.ask(ident, run, question, seen["progress"].append, seen["cancelled"].append)
    t = threading.Thread(target=go)
    t.start()
    return t, seen, out


def test_a_question_runs_to_its_answer_and_its_own_cancel_says_cancelled():
    from experiments.dashboard.state import Asking

    asking, run = Asking(), Fake()
    asking.current = (("q=1",), 1)
    t, seen, out = _ask(asking, asking.current, run, ["q=1"])
    run.go.set()
    t.join(30)
    assert out["value"] == ("answer", ("q=1",))
    assert seen["progress"] == [(0, 0, "starting"), (0, 0, "queued behind 7 runs"), (0, 4, "runs"), (4, 4, "runs")]
    assert seen["cancelled"] == [False]
    assert asking.running is None
    # its own Cancel, the question still the newest: "cancelled"
    run = Fake()
    t, seen, out = _ask(asking, asking.current, run, ["q=1"])
    assert run.started.wait(30)
    asking.cancel()
    run.go.set()
    t.join(30)
    assert out["value"] is None and seen["cancelled"] == [False, True]


def test_a_page_shows_a_few_progress_steps_a_second_not_every_chunk(monkeypatch):
    """Each progress step shown redraws the page in the server's process: steps closer than PROGRESS_EVERY are not
    shown, but a new stage (its description) and the last step always are."""
    from experiments.dashboard import state

    monkeypatch.setattr(state, "PROGRESS_EVERY", 3600.0)  # no two steps of a stage that far apart here

    def run(question, on_progress, cancel, on_wait):
        for done in range(101):
            on_progress(done, 100, "runs")
        for done in range(51):
            on_progress(done, 50, "runs at equal spend")
        return "answer"

    asking, shown = state.Asking(), []
    asking.current = (("q=1",), None)
    assert asking.ask(asking.current, run, ["q=1"], shown.append, lambda c: None) == "answer"
    assert shown == [(0, 0, "starting"), (0, 100, "runs"), (100, 100, "runs"), (0, 50, "runs at equal spend"),
                     (50, 50, "runs at equal spend")]


def test_a_newer_question_gives_the_running_one_up_and_only_its_progress_is_shown():
    from experiments.dashboard.state import Asking

    asking, old, new = Asking(), Fake(), Fake()
    asking.current = (("draws=3",), 1)
    t1, seen1, out1 = _ask(asking, asking.current, old, ["draws=3"])
    assert old.started.wait(30)
    event1 = asking.running
    asking.current = (("draws=5",), 2)  # a newer click
    t2, seen2, out2 = _ask(asking, asking.current, new, ["draws=5"])
    assert new.started.wait(30)
    assert event1.is_set() and asking.running is not event1  # the older one is given up: its chunks dropped
    old.go.set()
    t1.join(30)
    assert out1["value"] is None
    assert seen1["cancelled"] == [False]  # not "cancelled": the newer question's progress is shown instead
    assert seen1["progress"] == [(0, 0, "starting"), (0, 0, "queued behind 7 runs"), (0, 4, "runs")]
    new.go.set()
    t2.join(30)
    assert out2["value"] == ("answer", ("draws=5",)) and seen2["cancelled"] == [False]


def test_a_run_superseded_between_reports_stops_at_its_next_report_and_a_closed_page_gives_up_its_run():
    from experiments.dashboard.state import Asking

    asking, run = Asking(), Fake()
    asking.current = (("q=1",), 1)
    t, seen, out = _ask(asking, asking.current, run, ["q=1"])
    assert run.started.wait(30)
    asking.current = (("q=2",), 1)  # the question changed (the Compare page asks as it is edited), no run asked yet
    run.go.set()
    t.join(30)
    assert out["value"] is None and seen["progress"][-1] == (0, 4, "runs") and seen["cancelled"] == [False]
    run = Fake()
    t, seen, out = _ask(asking, asking.current, run, ["q=2"])
    assert run.started.wait(30)
    asking.close()
    assert asking.current is None
    run.go.set()
    t.join(30)
    assert out["value"] is None and seen["cancelled"] == [False]
    # nothing to ask (a question with an error): nothing runs
    assert asking.ask(None, Fake(), None, seen["progress"].append, seen["cancelled"].append) is None


# --------------------------------------------------------------------------- the model's own constants, the benchmark
def test_the_firms_tables_project_states_are_the_models_codes():
    from sim.core import rules

    assert svc.PROJECT_STATES[rules.IDLE] == "idle"
    assert svc.PROJECT_STATES[rules.NEED] == "need"
    assert svc.PROJECT_STATES[rules.NEGOTIATING_FIRM] == "negotiating"
    assert svc.PROJECT_STATES[rules.IMPLEMENTING] == "implementing"
    assert len(svc.PROJECT_STATES) == 4


def test_the_benchmarks_browser_section_is_one_line_without_chromium(monkeypatch, capsys):
    from experiments import bench
    from experiments.dashboard import browser

    monkeypatch.setattr(browser, "chromium_path", lambda: None)
    monkeypatch.setattr(bench, "dashboard_browser_section",
                        lambda cores: pytest.fail("the browser section ran without Chromium"))
    bench.print_dashboard_browser(2)
    assert capsys.readouterr().out.strip().splitlines() == [
        "[8/8, browser] skipped: no Chromium (bash tests/install.sh installs Debian's package; or set CHROMIUM)"]


def test_psutil_is_declared():
    import tomllib
    from pathlib import Path

    project = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())["project"]
    assert any(d.split(">")[0].split("=")[0].strip() == "psutil" for d in project["dependencies"])
