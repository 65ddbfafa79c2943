"""The dashboard as an analyst uses it: served by ``python -m experiments.dashboard``, driven in Debian's Chromium.

The numbers shown are checked against :func:`sim.api.compare` for the same config, the error of a
bad value against the command line's, the downloads against the tables, and the command line shown
by running it. Screenshots go to ``outputs/test-artifacts/dashboard/``.

Needs Chromium (``/usr/bin/chromium``: ``bash tests/install.sh`` installs Debian's package);
without it the browser tests are skipped, unless ``REQUIRE_BROWSER=1`` (CI), where they fail.
"""

from __future__ import annotations

import io
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from experiments.dashboard import browser
from experiments.dashboard import service as svc
from experiments.dashboard.service import Service
from sim import api
from sim.core.results import SERIES_NAMES
from sim.analysis.stats import headline_table

from ..conftest import SMALL

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", ROOT / "outputs" / "test-artifacts")) / "dashboard"
# the server's command line: a small region, three regimes, three seeds
SERVER = [*SMALL, "seeds=3", "regimes=[baseline,free_trial,broker_reward]", "at_spend=broker_reward", "workers=2"]
# the month the One run page shows: the series' number of the last month run (0 first)
MONTH_JS = "parseInt((document.querySelector('.tt-month') || {innerText: 'month -1'}).innerText.split(' ')[1])"
# a question still running on any machine when the test acts on it (two tabs, a page gone): 3 regimes x 6,000 seeds,
# twice; a cancelled one stops within a chunk
LONG_SEEDS, LONG_RUNS = 6000, 36_000
PAGE_TIMEOUT = 2  # s the server keeps a page whose connection dropped (dashboard.page_timeout)
PAGE_SETTLES = 120_000  # ms: a comparison of 9 small runs (and the first one's imports) on a loaded 2-core machine

needs_browser = pytest.mark.skipif(
    browser.chromium_path() is None and os.environ.get("REQUIRE_BROWSER") != "1",
    reason="no Chromium (bash tests/install.sh installs Debian's package); REQUIRE_BROWSER=1 makes this a failure")


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "experiments.run", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)})


def _rows(page, name: str) -> list[list[str]]:
    """A table of the page, as the text of its cells (header row first)."""
    return page.locator(f".tt-{name} table").evaluate(
        "t => [...t.rows].map(r => [...r.cells].map(c => c.innerText.trim()))")


def _titles(page, name: str) -> list[list[str]]:
    """A table's cells' hover texts (the Compare page's headline: each metric's key and its numbers in full)."""
    return page.locator(f".tt-{name} table").evaluate(
        "t => [...t.rows].map(r => [...r.cells].map(c => c.title))")


def _headline_numbers(page, res, equal) -> None:
    """The headline's regimes in the command line's order (cheapest conversion first), each cell's numbers exactly
    those of the comparison's table (or the one at equal spend)."""
    expected = headline_table(res.table, equal.table)
    assert [r[0] for r in _rows(page, "headline")[1:]] == list(expected["regime"])
    cells = 0
    for row in _titles(page, "headline")[1:]:
        for tip in row[1:]:
            eq = tip.startswith("at equal spend: ")
            key, col, *numbers = re.fullmatch(r"(?:at equal spend: )?(\w+) (\w+): (\S+) \[(\S+), (\S+)\]", tip).groups()
            t = (equal if eq else res).table.set_index(["regime", "metric"]).loc[(row[0], key)]
            bounds = ("ci_low", "ci_high") if col == "mean" else ("effect_low", "effect_high")
            np.testing.assert_array_equal([float(x) for x in numbers], [t[col], t[bounds[0]], t[bounds[1]]])
            cells += 1
    assert cells == 7 * len(expected)


def _overrides(command: str) -> list[str]:
    words = shlex.split(command)
    assert words[:3] == ["python", "-m", "experiments.run"], command
    return words[3:]


# --------------------------------------------------------------------------- the service, without a browser
def test_service_answers_as_the_api_and_caches_answers():
    s = Service(["engine=numba", *SERVER[:-1]], workers=1)
    calls = []
    a = s.compare(["broker_reward.cap=100000"], on_progress=lambda done, total, desc: calls.append((done, total)))
    cfg = api.compose("engine=numba", *SERVER[:-1], "broker_reward.cap=100000")
    res = api.compare(cfg)
    equal = api.compare_at_spend(cfg, spend_of=res)
    pd.testing.assert_frame_equal(a.comparison.table, res.table)
    pd.testing.assert_frame_equal(a.equal.table, equal.table)
    assert a.equal.budget == equal.budget > 0
    pd.testing.assert_frame_equal(a.headline, headline_table(res.table, equal.table))
    assert calls and calls[-1][0] == calls[-1][1] == 9  # the equal-spend batch last: 3 regimes x 3 seeds
    calls.clear()
    assert s.compare(["broker_reward.cap=100000", "workers=1"], on_progress=lambda *a: calls.append(a)) is a  # cached
    assert calls == []
    assert s.cached(["broker_reward.cap=200000"]) is None
    # a bad value: the command line's message
    with pytest.raises(api.ConfigError, match=r"broker_reward.cap = -5.0: must be >= 0"):
        s.compare(["broker_reward.cap=-5"])
    # a comparison that would not fit in memory is refused as the main job refuses it, before any run (on a server
    # whose run limits would let it through: they are checked first)
    calls.clear()
    roomy = Service(["engine=numba", *SERVER[:-1]], workers=1, max_runs=10**9, max_work=float("inf"))
    with pytest.raises(api.ConfigError, match=r"needs about [\d.]+ GB of memory"):
        roomy.compare(["seeds=1000000"], on_progress=lambda *a: calls.append(a))
    assert calls == []
    with pytest.raises(api.ConfigError, match=r"^seeds = 1000000: 6,000,000 runs, above dashboard.max_runs = 5,000"):
        s.compare(["seeds=1000000"])


def test_a_mix_of_instruments_is_a_regime_of_the_comparison():
    """``a+b`` switches on exactly a and b: the same runs as a regime of one's own with those instruments."""
    from sim.core.config import ConfigError

    cfg = api.compose(*SMALL, "engine=numba", "seeds=2", "regimes=[baseline,vouchers+free_trial]")
    res = api.compare(cfg)
    own = api.compose(*SMALL, "engine=numba", "regime.name=own", "regime.instruments=[free_trial,vouchers]")
    runs = api.run_batch([(own, cfg.seed), (own, cfg.seed + 1)])
    mixed = res.summary[res.summary.regime == "vouchers+free_trial"]
    assert list(mixed["successes"]) == [r.summary["successes"] for r in runs]
    assert list(mixed["gov_spend"]) == [r.summary["gov_spend"] for r in runs]
    for bad in ("free_trial+free_trial", "free_trial+", "vouchers+combined"):
        with pytest.raises(ConfigError, match="allowed regimes are baseline, .* or a mix .* joined by \\+"):
            api.compose(f"regimes=[baseline,{bad}]")


# --------------------------------------------------------------------------- the guards, without a browser
@pytest.mark.parametrize("text", ["${oc.env:HOME}", "${scenario.firms.n}", "'${oc.env:HOME}'", "1,2", "[1]",
                                  "a=b", "{a: 1}", "int(5)", "choice(1,2)", "5 6", "\"x'"])
def test_a_pages_field_is_a_plain_value_never_an_interpolation(text):
    """Refused in one line naming the field, before anything is composed: nothing resolved is shown."""
    from sim.core.config import ConfigError

    with pytest.raises(ConfigError) as e:
        svc.plain_value("broker_reward.cap", text)
    message = str(e.value)
    assert message.startswith(f"broker_reward.cap = {text!r}: must be a plain value") and "\n" not in message
    assert os.environ["HOME"] not in message.replace(repr(text), "")
    with pytest.raises(ConfigError, match=r"^seeds = "):  # the Service refuses such a question whatever page asks
        Service(["engine=numba"]).config([f"seeds={text}"] if "${" in text else ["seeds=${oc.env:HOME}"])


def test_plain_values_go_on_to_the_schema():
    from sim.core.config import ConfigError

    for text in ("1e5", "500000", "-5", "null", "true", "'bargained'", " 0.01 "):
        assert svc.plain_value("broker_reward.cap", text) == text.strip()
    svc.check_values({"seeds": "3", "broker_reward.cap": "1e5"})
    with pytest.raises(ConfigError, match=r"^broker_reward.rate = '\$\{oc.env:HOME\}': must be a plain value"):
        svc.check_values({"seeds": "3", "broker_reward.rate": "${oc.env:HOME}"})
    s = Service(["engine=numba", *SMALL])
    assert s.config(["broker_reward.cap=" + svc.plain_value("broker_reward.cap", "1e5")]).broker_reward.cap == 100000
    with pytest.raises(ConfigError) as e:  # a word: the schema's own message, as today
        s.config(["broker_reward.cap=" + svc.plain_value("broker_reward.cap", "abc")])
    assert str(e.value).startswith("broker_reward.cap = 'abc'") and "\n" not in str(e.value)
    assert svc.plain_value("sweep", "multirun/a b/x-1", path=True) == "multirun/a b/x-1"
    with pytest.raises(ConfigError, match=r"^sweep = '\$\{oc.env:HOME\}': a folder's path, without"):
        svc.plain_value("sweep", "${oc.env:HOME}", path=True)


def test_pages_read_folders_only_under_their_roots(tmp_path):
    """A typed path is read only if it resolves (links followed) inside dashboard.sweeps / dashboard.calibrations."""
    from sim.core.config import ConfigError

    root, outside = tmp_path / "multirun", tmp_path / "elsewhere"
    (root / "a").mkdir(parents=True)
    (outside / "b").mkdir(parents=True)
    for folder in (root / "a", outside / "b"):
        (folder / "sweep.parquet").write_bytes(b"not parquet")
    (root / "out").symlink_to(outside / "b")              # a folder linked out of the root
    (root / "c").mkdir()
    (root / "c" / "sweep.parquet").symlink_to(outside / "b" / "sweep.parquet")  # a file linked out
    assert svc.under_root("sweep", str(root / "a"), root, "dashboard.sweeps") == root / "a"
    message = f"not under the dashboard's sweeps folder {root.resolve()} (dashboard.sweeps)"
    for typed in (str(outside / "b"), str(root / ".." / "elsewhere" / "b"), str(root / "out"), "/etc"):
        with pytest.raises(ConfigError) as e:
            svc.under_root("sweep", typed, root, "dashboard.sweeps")
        assert str(e.value) == f"sweep = {typed!r}: {message}"
    with pytest.raises(ConfigError, match="calibrations folder .* \\(dashboard.calibrations\\)$"):
        svc.under_root("calibration", str(outside), root, "dashboard.calibrations")
    with pytest.raises(ConfigError, match=r"^sweep = .*: a folder's path"):
        svc.under_root("sweep", "${oc.env:HOME}", root, "dashboard.sweeps")
    # the folder is inside, its sweep.parquet links out: not read
    with pytest.raises(ConfigError) as e:
        svc.load_sweep(svc.under_root("sweep", str(root / "c"), root, "dashboard.sweeps"), root)
    assert str(e.value) == f"sweep = {str(root / 'c')!r}: {message}"
    with pytest.raises(ConfigError, match="not a Parquet table"):  # inside: read (and judged)
        svc.load_sweep(root / "a", root)
    # the newest-first list follows no link out of the root
    assert svc.find_results(root, "sweep.parquet") == [root / "a"]


def test_a_question_above_the_limits_is_refused_with_the_reason():
    """dashboard.max_runs and dashboard.max_work: exactly the limit is asked, one run (or step) more is refused."""
    from sim.core.config import ConfigError
    from sim.core.population import run_work

    one = ["regimes=[baseline]", "at_spend=null"]
    s = Service(["engine=numba", *SMALL], max_runs=5)
    assert s.validate(["seeds=5", *one]).seeds == 5
    with pytest.raises(ConfigError) as e:
        s.validate(["seeds=6", *one])
    assert str(e.value) == ("seeds = 6: 6 runs, above dashboard.max_runs = 5 (lower the seeds or the regimes, or "
                            "start the dashboard with dashboard.max_runs=...)")
    # every regime, and again at equal spend: what the issue asked (the default's regimes x 3000 seeds x 2)
    d = Service(["engine=numba"])
    cfg = d.config([])
    with pytest.raises(ConfigError, match=f"^seeds = 3000: {len(cfg.regimes) * 3000 * 2:,} runs, above "
                                          "dashboard.max_runs = 5,000 \\(lower the seeds"):
        d.validate(["seeds=3000"])
    # the work: runs x sim.core.population.run_work, at the limit asked, above it refused (whatever page asks: compare)
    cfg = s.config(["seeds=2", *one])
    work = 2 * run_work(cfg)
    assert svc.question_size(cfg) == (2, work)
    assert Service(["engine=numba", *SMALL], max_work=work).validate(["seeds=2", *one]).seeds == 2
    calls = []
    with pytest.raises(ConfigError, match=re.escape(f"seeds = 2: about {work:.3g} model steps (2 runs of ")
                       + ".* above " + re.escape(f"dashboard.max_work = {work * 0.999:.3g} (lower the seeds")):
        Service(["engine=numba", *SMALL], max_work=work * 0.999).compare(["seeds=2", *one],
                                                                         on_progress=lambda *a: calls.append(a))
    assert calls == []
    # a question at equal spend: its runs twice, and the at_spend regime's own runs when it is not compared
    cfg = s.config(["seeds=3", "regimes=[baseline,vouchers]", "at_spend=broker_reward"])
    runs, _ = svc.question_size(cfg)
    assert runs == 3 * (2 * 2 + 1)


def test_a_cancelled_question_stops_within_a_chunk_and_frees_the_pool():
    """The page's Cancel (or its closing): compare raises when the chunk under way ends, the chunks not begun are
    dropped from the pool, nothing is cached, and the same pool answers the next question as the API does."""
    import multiprocessing
    import threading
    from concurrent.futures import ProcessPoolExecutor

    class Pool(ProcessPoolExecutor):  # the service's pool, its chunks counted
        futures: list = []

        def submit(self, *args, **kwargs):
            self.futures.append(super().submit(*args, **kwargs))
            return self.futures[-1]

    question = ["seeds=200", "regimes=[baseline,free_trial]", "at_spend=null"]  # 400 runs: 50 chunks
    s = Service(["engine=numba", *SMALL], workers=2)
    s._pool = Pool(2, mp_context=multiprocessing.get_context("spawn"))
    try:
        cancel, seen = threading.Event(), []

        def on_progress(done, total, desc):
            seen.append((done, total))
            cancel.set()  # Cancel clicked as the first chunk comes back: the one under way is the last

        with pytest.raises(svc.Cancelled, match="cancelled after 16 of 400 runs"):
            s.compare(question, on_progress=on_progress, cancel=cancel)
        assert seen == [(8, 400)]
        futures = s._pool.futures
        assert len(futures) == 50 and any(f.cancelled() for f in futures)  # the chunks not begun: never run
        assert s.cached(question) is None
        with pytest.raises(svc.Cancelled, match="before it began"):  # given up before it began: nothing submitted
            s.compare(["seeds=2", "regimes=[baseline]", "at_spend=null"], cancel=cancel)
        assert len(s._pool.futures) == 50
        answer = s.compare(["seeds=2", "regimes=[baseline,free_trial]", "at_spend=null"], cancel=threading.Event())
        res = api.compare(api.compose("engine=numba", *SMALL, "seeds=2", "regimes=[baseline,free_trial]"))
        pd.testing.assert_frame_equal(answer.comparison.table, res.table)
    finally:
        s.close()


def test_questions_of_several_pages_run_one_at_a_time_in_arrival_order():
    """A fair queue: a page's question waits for those that came first, and is told the runs ahead of it."""
    import threading

    s = Service(["engine=numba", *SMALL], workers=1)
    one = ["regimes=[baseline,free_trial]", "at_spend=null"]
    first_runs, release = threading.Event(), threading.Event()
    waits = {"b": [], "c": []}
    queued = {"b": threading.Event(), "c": threading.Event()}
    order, errors = [], []

    def ask(name, seeds, **kw):
        try:
            s.compare([f"seeds={seeds}", *one], **kw)
            order.append(name)
        except BaseException as e:  # noqa: BLE001 (reported by the test)
            errors.append(e)

    def a_progress(done, total, desc):
        first_runs.set()
        assert release.wait(120)  # the first question holds the pool until the others are queued

    def waiting(name):
        def on_wait(runs):
            waits[name].append(runs)
            queued[name].set()
        return on_wait

    def progress_of(name):
        def on_progress(done, total, desc):
            assert release.is_set(), f"{name} ran before the question ahead of it ended"
        return on_progress

    a = threading.Thread(target=ask, args=("a", 4), kwargs={"on_progress": a_progress})
    a.start()
    assert first_runs.wait(120)
    b = threading.Thread(target=ask, args=("b", 3), kwargs={"on_wait": waiting("b"), "on_progress": progress_of("b")})
    b.start()
    assert queued["b"].wait(120)
    c = threading.Thread(target=ask, args=("c", 2), kwargs={"on_wait": waiting("c"), "on_progress": progress_of("c")})
    c.start()
    assert queued["c"].wait(120)
    assert s.queued_runs() == 8 + 6 + 4
    # a fourth page gives its question up while it waits: it leaves the queue at once, the others keep their turn
    cancel, cancelled = threading.Event(), []
    d = threading.Thread(target=lambda: cancelled.append(pytest.raises(svc.Cancelled, s.compare, ["seeds=5", *one],
                                                                         cancel=cancel)))
    d.start()
    while s.queued_runs() != 8 + 6 + 4 + 10 and d.is_alive():
        d.join(0.05)
    cancel.set()
    d.join(120)
    assert len(cancelled) == 1 and "queued behind 18 runs" in str(cancelled[0].value)
    assert s.queued_runs() == 8 + 6 + 4 and not release.is_set()
    release.set()
    for t in (a, b, c):
        t.join(120)
    assert errors == [] and order == ["a", "b", "c"]
    assert waits["b"][0] == 8 and waits["c"][0] == 8 + 6  # the runs of the questions ahead: 2 regimes x seeds
    assert s.queued_runs() == 0


def test_the_cache_keeps_answers_within_its_bytes():
    """Answers kept: at most ``cache`` of them and ``cache_mb`` of frames (the newest always); no run's own arrays."""
    s = Service(["engine=numba", *SMALL, "regimes=[baseline]", "at_spend=null"], workers=1)
    a = s.compare(["seeds=2"])
    assert a.comparison.results == [] and 0 < a.nbytes
    s.cache_bytes = 2.7 * a.nbytes  # what Service(cache_mb=...) sets
    b = s.compare(["seeds=3"])  # 1.5 x a's frames: both fit
    assert s.cached(["seeds=2"]) is a and s.cached(["seeds=3"]) is b
    c = s.compare(["seeds=4"])  # the oldest is dropped, the newest kept
    assert s.cached(["seeds=2"]) is None and s.cached(["seeds=4"]) is c
    assert Service(["engine=numba"], cache_mb=1.5).cache_bytes == 1.5e6


def test_the_starting_question_is_answered_before_serving_when_asked():
    base = ["engine=numba", *SMALL, "seeds=2", "regimes=[baseline,broker_reward]", "at_spend=null"]
    s = Service(base, workers=1)
    s.start()
    assert s.cached([]) is None
    s.start(answer_start=True)
    answer = s.cached([])
    assert answer is not None and answer is s.compare([])  # the page's first question: from the cache
    assert set(answer.comparison.summary["regime"]) == {"baseline", "broker_reward"}


def test_serving_beyond_this_machine_warns_that_there_is_no_login():
    from experiments.dashboard.__main__ import host_warning

    for host in ("127.0.0.1", "localhost", "::1", "127.0.1.1"):
        assert host_warning(host) is None
    for host in ("0.0.0.0", "::", "192.168.1.5", "dash.example.org"):
        line = host_warning(host)
        assert line.startswith(f"dashboard: warning: dashboard.host = {host} is reachable from other machines and "
                               "the pages have no authentication") and "\n" not in line


# --------------------------------------------------------------------------- in a real browser
@pytest.fixture(scope="module")
def served(tmp_path_factory):
    if browser.chromium_path() is None:
        pytest.fail("no Chromium at /usr/bin/chromium (REQUIRE_BROWSER=1): run bash tests/install.sh")
    data = tmp_path_factory.mktemp("dashboard")
    sweeps, calibrations = _sweep(data), _calibration(data)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with browser.dashboard(*SERVER, f"dashboard.sweeps={sweeps}", f"dashboard.calibrations={calibrations}",
                           f"dashboard.page_timeout={PAGE_TIMEOUT}", f"dashboard.max_runs={LONG_RUNS}",
                           "dashboard.max_work=1e12", log=ARTIFACTS / "server.log") as url:
        with browser.chromium() as page:
            yield url, page, data


def _sweep(data: Path) -> Path:
    """A real sweep (2 x 2 points x 2 seeds), collected: what the Sweep page opens."""
    p = subprocess.run([sys.executable, "-m", "experiments.run", "-m", "regime=broker_reward",
                        "+grid.broker_reward.rate=[0.005,0.015]", "+grid.broker_reward.cap=[100000,300000]", "seeds=2",
                        "scenario.firms.n=300", "scenario.universities.n=3", "scenario.months=12", "progress=false"],
                       cwd=data, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    (folder,) = (data / "multirun").iterdir()
    c = subprocess.run([sys.executable, "-m", "experiments.collect", str(folder)], cwd=data, capture_output=True,
                       text=True, timeout=300)
    assert c.returncode == 0, c.stdout + c.stderr
    return data / "multirun"


def _calibration(data: Path) -> Path:
    """A calibration's folder with the files the Calibration page reads (the shape experiments.calibrate writes)."""
    folder = data / "calibration" / "reported-test"
    folder.mkdir(parents=True)
    pd.DataFrame({"scenario.firms.prior_success": [0.1, 0.2], "weight": [0.25, 0.75]}).to_csv(
        folder / "posterior.csv", index=False)
    (folder / "posterior.yaml").write_text("target_set: test\nscenarios:\n  default: [scenario.firms.prior_success]\n")
    pd.DataFrame({"parameter": ["scenario.firms.prior_success"], "low": [0.01], "high": [0.5], "median": [0.2],
                  "q05": [0.1], "q95": [0.2], "shrinkage": [0.61]}).to_csv(folder / "posterior_summary.csv", index=False)
    pd.DataFrame({"target": ["longquan_matched_per_need"], "reported": [0.43], "predicted": [0.39], "z": [-0.4]}).to_csv(
        folder / "fit.csv", index=False)
    return data / "calibration"


CURRENT_COMMAND = "xpath=//*[contains(concat(' ', normalize-space(@class), ' '), ' tt-command ')][not(ancestor::*[" \
                  "contains(concat(' ', normalize-space(@class), ' '), ' tt-previous ')])]"


def _settled(page, override: str) -> str:
    """Wait for the current answer whose command line holds ``override`` as a whole word (``seeds=3``, not
    ``seeds=30``); returns that command line."""
    current = page.locator(CURRENT_COMMAND).filter(has_text=_word(override))
    current.wait_for(timeout=PAGE_SETTLES)
    return current.inner_text()


def _word(override: str) -> re.Pattern:
    """``override`` as a whole word of a command line (between spaces or shell quotes)."""
    return re.compile(r"(?<![^\s'\"])" + re.escape(override) + r"(?![^\s'\"])")


def _set(page, key: str, value: str) -> None:
    field = page.locator(f".tt-param-{key.replace('.', '-')} input")
    field.fill(value)
    field.press("Enter")


@needs_browser
def test_compare_page_shows_the_numbers_of_api_compare_and_its_command_reproduces_them(served):
    url, page, data = served
    page.goto(url)
    _settled(page, "seeds=3")
    page.screenshot(path=ARTIFACTS / "compare_default.png")

    page.get_by_text("broker_reward.*").click()
    _set(page, "broker_reward.cap", "100000")
    command = _settled(page, "broker_reward.cap=100000")
    page.screenshot(path=ARTIFACTS / "compare_cap_100000.png", full_page=True)

    overrides = _overrides(command)
    assert "broker_reward.cap=100000" in overrides and "scenario.firms.n=400" in overrides
    cfg = api.compose(*overrides)
    assert cfg.broker_reward.cap == 100000 and cfg.seeds == 3 and cfg.engine == "numba"
    res = api.compare(cfg)
    equal = api.compare_at_spend(cfg, spend_of=res)
    _headline_numbers(page, res, equal)

    # the download: the same table, number for number
    with page.expect_download() as info:
        page.get_by_role("button", name="table.csv", exact=True).click()
    shown = pd.read_csv(info.value.path())
    pd.testing.assert_frame_equal(shown, pd.read_csv(io.StringIO(res.table.to_csv(index=False))))
    with page.expect_download() as info:
        page.get_by_role("button", name="comparison.png").click()
    assert Path(info.value.path()).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # the command line shown, run: the main job's table is the page's
    out = data / "cli"
    p = _cli(*overrides, f"hydra.run.dir={out}", cwd=data)
    assert p.returncode == 0, p.stderr
    cli = pd.read_csv(out / "table.csv")
    pd.testing.assert_frame_equal(cli, shown)
    assert np.isfinite(cli.loc[(cli.regime == "broker_reward") & (cli.metric == "successes"), "effect"]).all()


@needs_browser
def test_a_bad_value_shows_the_command_lines_error(served, tmp_path):
    url, page, _ = served
    page.goto(url)
    _settled(page, "seeds=3")
    page.get_by_text("broker_reward.*").click()
    _set(page, "broker_reward.cap", "-5")
    error = page.locator(".tt-error")
    error.wait_for(timeout=30_000)
    page.screenshot(path=ARTIFACTS / "compare_bad_value.png")
    p = _cli("broker_reward.cap=-5", cwd=tmp_path)
    assert p.returncode == 2
    assert error.inner_text().strip() == p.stderr.strip() == "config error: broker_reward.cap = -5.0: must be >= 0 and <= 1e+12"
    _set(page, "broker_reward.cap", "300000")  # back to the default: an answer again, no error
    _settled(page, "seeds=3")
    assert page.locator(".tt-error").count() == 0


@needs_browser
def test_the_compare_page_cancels_a_question(served):
    """Cancel while a question runs: the page says it is cancelled, and the pool answers the next question."""
    url, page, _ = served
    page.goto(url)
    _settled(page, "seeds=3")
    seeds = page.locator(".tt-seeds input")
    seeds.fill("400")  # 3 regimes x 400 seeds, twice: 2,400 small runs
    seeds.press("Enter")
    page.locator(".tt-cancel").click(timeout=PAGE_SETTLES)
    page.locator(".tt-cancelled").wait_for(timeout=PAGE_SETTLES)
    assert page.locator(".tt-command").count() == 0
    seeds.fill("2")
    seeds.press("Enter")
    _settled(page, "seeds=2")

    # a tab closed while its question runs (the browser's close beacon): the question is given up, so another
    # page's question is not queued behind its 2,400 runs
    other = page.context.new_page()
    other.goto(url)
    _settled(other, "seeds=3")  # a new page: the server's starting question
    field = other.locator(".tt-seeds input")
    field.fill("400")
    field.press("Enter")
    other.locator(".tt-progress", has_text="running").wait_for(timeout=PAGE_SETTLES)
    other.close(run_before_unload=True)
    page.wait_for_timeout(1000)  # the beacon reaches the server
    seeds.fill("5")
    seeds.press("Enter")
    shown = []
    while not page.locator(".tt-command", has_text="seeds=5").count() and len(shown) < PAGE_SETTLES / 100:
        shown.append(" ".join(page.locator(".tt-progress").all_inner_texts()))
        page.wait_for_timeout(100)
    assert page.locator(".tt-command", has_text="seeds=5").count() == 1
    assert not [t for t in shown if "queued" in t], shown


@needs_browser
def test_two_tabs_at_once_queue_in_arrival_order_and_both_are_answered(served):
    """Two tabs ask at once: the second shows the runs queued ahead of it (the first's, exactly), and is answered
    once the first is given up."""
    url, page, _ = served
    page.goto(url)
    _settled(page, "seeds=3")
    other = page.context.new_page()
    try:
        other.goto(url)
        _settled(other, "seeds=3")
        first, second = page.locator(".tt-seeds input"), other.locator(".tt-seeds input")
        first.fill(str(LONG_SEEDS))  # 36,000 runs: still running when the second asks
        first.press("Enter")
        page.locator(".tt-progress", has_text="running").wait_for(timeout=PAGE_SETTLES)
        second.fill("4")
        second.press("Enter")
        other.locator(".tt-progress", has_text=f"queued behind {LONG_RUNS:,} runs").wait_for(timeout=PAGE_SETTLES)
        assert other.locator(".tt-command", has_text=re.compile(r"seeds=4\b")).count() == 0  # not before its turn
        page.locator(".tt-cancel").click()  # the first gives up: the second's turn comes, and it is answered
        page.locator(".tt-cancelled").wait_for(timeout=PAGE_SETTLES)
        _settled(other, "seeds=4")
    finally:
        other.close()


@needs_browser
def test_a_page_gone_without_closing_gives_its_question_up(served):
    """A tab that disappears without the browser's closing message (crashed, offline, asleep: here closed without
    its unload handlers) has its question given up once dashboard.page_timeout has passed: it is not answered (asked
    again it runs, not cached) and another tab's question is not kept waiting behind its runs."""
    url, page, _ = served
    gone = page.context.new_page()
    gone.goto(url)
    _settled(gone, "seeds=3")
    field = gone.locator(".tt-seeds input")
    field.fill(str(LONG_SEEDS))  # 36,000 runs: still running when its page's timeout has passed
    field.press("Enter")
    gone.locator(".tt-progress", has_text="running").wait_for(timeout=PAGE_SETTLES)
    gone.close(run_before_unload=False)  # no closing message: the server sees only the connection drop
    page.goto(url)
    _settled(page, "seeds=3")
    seeds = page.locator(".tt-seeds input")
    seeds.fill(str(LONG_SEEDS))  # the same question: were it still running or answered, it would be waited for
    seeds.press("Enter")
    page.locator(".tt-progress", has_text="running").wait_for(timeout=PAGE_SETTLES)
    page.locator(".tt-cancel").click()
    page.locator(".tt-cancelled").wait_for(timeout=PAGE_SETTLES)


@needs_browser
def test_the_stylesheet_is_applied(served):
    """The page's own styles reach the browser (computed style): tables on one line a cell with rules between rows,
    the command line in monospace."""
    url, page, _ = served
    page.goto(url)
    _settled(page, "seeds=3")
    style = page.evaluate("""() => {
        const cell = getComputedStyle(document.querySelector('.tt-table td'));
        const command = getComputedStyle(document.querySelector('.tt-command'));
        return [cell.whiteSpace, cell.borderBottomStyle, command.fontFamily];
    }""")
    assert style[:2] == ["nowrap", "solid"] and "monospace" in style[2], style


@needs_browser
def test_one_run_page_steps_plays_and_pauses_the_mesa_model(served):
    from sim.engines.mesa.model import TransferModel

    url, page, _ = served
    page.goto(url + "one-run")
    step = page.locator(".tt-step")
    step.wait_for(timeout=60_000)
    page.get_by_text("month – of 0–35").wait_for(timeout=30_000)  # none run yet
    for month in (0, 1, 2):  # as the series numbers them (series.csv's month column)
        step.click()
        page.get_by_text(f"month {month} of 0–35").wait_for(timeout=30_000)
    cfg = api.compose(*SERVER, "engine=numba", "scenario=default", "regime=combined", "seed=0", "engine=mesa")
    model = TransferModel(cfg, 0)
    for _ in range(3):
        model.step()
    row = pd.DataFrame(model.series[:3], columns=list(SERIES_NAMES)).iloc[-1]
    series = api.series_frame([api.simulate(cfg, 0)])  # the page's month is the series' month of that row
    assert page.locator(".tt-month").inner_text() == f"month {series['month'].iloc[2]} of 0–35"
    assert (series.drop(columns=["regime", "seed", "month"]).iloc[2] == row).all()
    # its money flows: month 2's payer -> payee sums, written as fmt.money writes them
    flows = _rows(page, "flows")
    assert flows[0][:4] == ["payer", "payee", "in month 2", "months 0–2"]
    from sim.core import ledger
    from experiments.dashboard import fmt

    by_pair = {}
    for k in ledger.KINDS:
        pair = (ledger.ACCOUNT_CLASSES[k.payer].plural, ledger.ACCOUNT_CLASSES[k.payee].plural)
        now, total = by_pair.get(pair, (0.0, 0.0))
        by_pair[pair] = (now + model.series[2, k.column], total + model.series[:3, k.column].sum())
    assert {(r[0], r[1]): (r[2], r[3]) for r in flows[1:]} == {
        p: (fmt.money(now), fmt.money(total)) for p, (now, total) in by_pair.items() if total > 0}
    assert _rows(page, "agents")[1][:3] == ["firms", f"{cfg.scenario.firms.n:,}",
                                            f"{int(model.arrays.firm_sme.sum()):,}"]  # counts with separators
    assert len(_rows(page, "firms")) == 1 + 25  # a page of the firms, not all of them
    expected = (f"This month: {int(row['needs_raised'])} needs raised, {int(row['matches'])} matches, "
                f"{int(row['successes'])} conversions, {int(row['brokers_active'])} active brokers.")
    page.get_by_text(expected).wait_for(timeout=10_000)

    interval = page.locator(".tt-interval input")  # a month a second: time to pause before the run ends
    interval.fill("1")
    interval.press("Enter")
    play = page.locator(".tt-play")
    play.click()  # play: months go by on their own
    page.locator(".tt-play", has_text="Pause").wait_for(timeout=30_000)
    page.wait_for_function(f"() => {MONTH_JS} >= 5", timeout=PAGE_SETTLES)  # redraws may pass a month over
    play.click()  # pause: the month being drawn ends, then none more
    page.locator(".tt-play", has_text="Play").wait_for(timeout=30_000)
    shown = page.locator(".tt-month").inner_text()
    page.wait_for_timeout(2000)
    assert page.locator(".tt-month").inner_text() == shown
    assert 5 <= int(shown.split()[1]) < 35
    page.screenshot(path=ARTIFACTS / "one_run.png")


@needs_browser
def test_sweep_and_calibration_pages_open_results(served):
    url, page, data = served
    page.goto(url + "sweep")
    page.locator(".tt-sweep table").wait_for(timeout=60_000)
    (folder,) = (data / "multirun").iterdir()
    df = pd.read_parquet(folder / "sweep.parquet")
    rows = _rows(page, "sweep")
    axes = rows[0][:2]
    assert sorted(axes) == ["broker_reward.cap", "broker_reward.rate"] and rows[0][2:] == [
        "mean over seeds", "sd over seeds", "runs"]
    from experiments.dashboard import fmt

    means = df.groupby(axes)["successes"].mean()
    assert len(rows) == 1 + 4
    for r in rows[1:]:  # the page's mean of each point is the table's, written by fmt (swept values exactly, 100,000)
        assert r[2] == fmt.number(means[(float(r[0].replace(",", "")), float(r[1].replace(",", "")))])
    assert "e+" not in " ".join(" ".join(r) for r in rows)
    assert page.locator(".js-plotly-plot").count() == 2  # the lines and the heatmap
    # the metrics are searched by name and by what they measure
    from experiments.dashboard.charts.runs import filter_metrics

    metrics = svc.load_sweep(folder)[2]
    found = filter_metrics(metrics, "university income present value")
    assert "university_income_pv" in found and len(found) < 5
    page.locator(".tt-metric-search input").fill("university income present value")
    page.get_by_text(f"Metric ({len(found)} of {len(metrics)} shown)").wait_for(timeout=30_000)
    page.screenshot(path=ARTIFACTS / "sweep.png", full_page=True)

    page.goto(url + "calibration")
    page.locator(".tt-fit table").wait_for(timeout=60_000)
    fit = _rows(page, "fit")
    assert fit[1] == ["longquan_matched_per_need", "0.43", "0.39", "-0.4"]
    assert fit[0] == ["target (a reported figure)", "reported", "predicted", "z (misfit in SDs of the prediction)"]
    assert _rows(page, "posterior-summary")[1][0] == "scenario.firms.prior_success"
    assert page.locator(".tt-corner .js-plotly-plot").count() == 1
    page.screenshot(path=ARTIFACTS / "calibration.png", full_page=True)

    # regimes compared on the posterior from the page: the numbers of api.compare on the command it shows
    for name, value in (("draws", "2"), ("seeds", "1")):
        field = page.locator(f".tt-posterior-{name} input")
        field.fill(value)
        field.press("Enter")
    page.get_by_text("12 runs (draws x seeds x regimes").wait_for(timeout=30_000)  # 3 regimes x 2 x 1, twice
    page.locator(".tt-posterior-ask").click()
    command = page.locator(".tt-posterior-answer .tt-command").inner_text(timeout=PAGE_SETTLES)
    overrides = _overrides(command)
    assert "posterior_draws=2" in overrides and "seeds=1" in overrides
    cfg = api.compose(*overrides)
    assert cfg.posterior is not None and cfg.posterior_draws == 2
    res = api.compare(cfg)
    equal = api.compare_at_spend(cfg, spend_of=res)
    _headline_numbers(page, res, equal)  # read as the Compare page's answer: the same view
    page.screenshot(path=ARTIFACTS / "calibration_posterior.png", full_page=True)


def _handshake(port: int, host: str, origin: str | None = None, path: str | None = None) -> int:
    """The status of a raw WebSocket handshake on the kernel's path (Solara's), with these Host and Origin."""
    import socket
    import uuid

    path = path or f"/jupyter/api/kernels/{uuid.uuid4()}/channels?session_id={uuid.uuid4()}"
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}", "Upgrade: websocket", "Connection: Upgrade",
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13"]
    lines += [f"Origin: {origin}"] if origin is not None else []
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        status = sock.recv(4096).split(b"\r\n", 1)[0].decode()
    return int(status.split()[1])


def _get(port: int, host: str, path: str = "/") -> int:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.putrequest("GET", path, skip_host=True)
        conn.putheader("Host", host)
        conn.endheaders()
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


@needs_browser
def test_the_server_answers_only_its_own_host_and_origin(served):
    """DNS rebinding and another site's page: a foreign Host gets 400, a foreign Origin's WebSocket is refused."""
    url, _, _ = served
    port = int(url.rstrip("/").rsplit(":", 1)[1])
    ours = f"127.0.0.1:{port}"
    assert _get(port, ours) == 200
    assert _get(port, f"localhost:{port}") == 200   # served on loopback: its names too
    assert _get(port, f"evil.example:{port}") == 400
    assert _get(port, "evil.example") == 400
    assert _get(port, f"127.0.0.1:{port + 1}") == 400
    assert _handshake(port, f"evil.example:{port}", f"http://evil.example:{port}") == 400
    assert _handshake(port, ours, "http://evil.example") == 403
    assert _handshake(port, ours, "null") == 403
    assert _handshake(port, ours, f"http://{ours}") == 101
    assert _handshake(port, ours) == 101  # no Origin (not a browser's page): served



def test_the_pages_start_from_the_dashboards_seeds_unless_the_command_line_sets_them():
    from experiments.dashboard.__main__ import base_overrides

    cfg = api.compose(f"seeds={svc.starting_seeds()}")
    assert cfg.seeds != api.compose().seeds  # configs/dashboard.yaml sets the page's own default over the main job's
    task = ["scenario=lishui", "dashboard.port=9000", "broker_reward.cap=5", "workers=2"]
    assert base_overrides("numba", task) == [
        "engine=numba", "broker_reward.cap=5", "scenario=lishui", f"seeds={svc.starting_seeds()}"]
    # seeds typed on the command line are the pages' (the app's own model config has one seed: it is not read)
    assert base_overrides("mesa", ["seeds=7", "regimes=[baseline]", "engine=numba"]) == [
        "engine=mesa", "seeds=7", "regimes=[baseline]"]


def test_the_dashboards_own_seeds_must_be_a_whole_number(tmp_path, monkeypatch):
    from sim.core import locations

    (tmp_path / "dashboard.yaml").write_text("seeds: forty\n")
    monkeypatch.setattr(locations, "CONFIG_DIR", tmp_path)
    with pytest.raises(api.ConfigError, match=r"^seeds = 'forty' in .*dashboard.yaml: must be a whole number of seeds$"):
        svc.starting_seeds()
    (tmp_path / "dashboard.yaml").write_text("seeds: 12\n")
    assert svc.starting_seeds() == 12
