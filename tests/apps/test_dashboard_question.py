"""The Compare page's question: validated in place, in a link, saved by name, compared with another answer.

Service-level tests need no browser; the Chromium tests share one server (module scope).
"""

from __future__ import annotations

import json
import os
from urllib.parse import quote

import pytest

from experiments.dashboard import browser, diff, saved
from experiments.dashboard import service as svc
from experiments.dashboard.question import QUERY_MAX, Question, parse
from experiments.dashboard.service import Service
from sim import api
from sim.core.config import INSTRUMENT_NAMES, ConfigError

from ..conftest import SMALL
from .test_dashboard import ARTIFACTS, PAGE_SETTLES, _overrides, _settled, _word, needs_browser

# ip_pledge pays public money only when a guaranteed loan defaults: SMEs short of cash for a deal
# (tests/instruments/test_ip_pledge.py's CASH_POOR), where loans are made and some default
CASH_POOR = ("scenario.firms.n=1500", "scenario.firms.sme_share=1.0", "scenario.months=48",
             "scenario.firms.risk_aversion_sme=0.3", "scenario.firms.cash_median_sme=1e6", "ip_pledge.loan_to_value=1",
             "scenario.brokers.initial=15", "scenario.brokers.monthly_cost=3000", "progress=false")


# --------------------------------------------------------------------------- equal spend: who may be offered
def test_equal_spend_offers_exactly_the_regimes_that_spend_public_money():
    """The rule (an instrument switched on owns a payment the government makes) against the runs: every regime not
    offered spends 0 in every run; every regime offered spends > 0 (in a small run, or, for a guarantee fund that pays
    only on defaults, among SMEs short of cash)."""
    from experiments.dashboard.pages.compare import equal_spend_choices

    names = api.regime_names()
    offered = equal_spend_choices(names, [])
    assert "baseline" not in offered and "open_licence" not in offered and "broker_reward" in offered
    cfg = api.compose(*SMALL, "engine=numba", "seeds=2", "regimes=[" + ",".join(names) + "]", "at_spend=null")
    spend = api.compare(cfg).summary.groupby("regime")["gov_spend"]
    for name in names:
        if name not in offered:
            assert spend.max()[name] == 0, name
    small_zero = [n for n in offered if spend.min()[n] <= 0]
    if small_zero:
        poor = api.compose(*CASH_POOR, "engine=numba", "seeds=2", "regimes=[" + ",".join(small_zero) + "]",
                           "at_spend=null")
        again = api.compare(poor).summary.groupby("regime")["gov_spend"].min()
        assert (again > 0).all(), again
    # a mix spends if one of its instruments does
    assert equal_spend_choices(["baseline"], ["open_licence", "royalty"]) == []
    mix = "+".join(i for i in INSTRUMENT_NAMES if i in ("open_licence", "vouchers"))
    assert equal_spend_choices(["baseline"], ["open_licence", "vouchers"]) == [mix]


def test_a_regime_that_spends_nothing_is_refused_at_equal_spend_before_any_run():
    s = Service(["engine=numba", *SMALL, "seeds=2"])
    calls = []
    with pytest.raises(ConfigError) as e:
        s.compare(["regimes=[baseline,free_trial]", "at_spend=free_trial"], on_progress=lambda *a: calls.append(a))
    assert str(e.value) == "at_spend = free_trial: that regime spends no public money; name one that does"
    assert calls == [] and svc.error_key(str(e.value)) == "at_spend"


# --------------------------------------------------------------------------- the right key, in one line
def test_too_many_seeds_for_memory_names_seeds(monkeypatch):
    """The results of the runs grow with the seeds: the memory check names seeds, not scenario.firms.n."""
    from sim.core import population

    monkeypatch.setattr(population, "available_memory", lambda: 2e9)
    s = Service(["engine=numba", *SMALL], max_runs=10**9, max_work=float("inf"))
    with pytest.raises(ConfigError) as e:
        s.validate(["seeds=100000"])
    assert str(e.value).startswith("seeds = 100000: needs about ") and "\n" not in str(e.value)
    assert svc.error_key(str(e.value)) == "seeds"
    # a population too large for memory still names its size
    with pytest.raises(ConfigError, match=r"^scenario.firms.n = 2000000: needs about"):
        s.validate(["seeds=1", "scenario.firms.n=2000000", "regimes=[baseline]"])


def test_an_instruments_own_rule_is_checked_for_every_regime_compared():
    """income_share.extra_share beyond 1 - inventor_share: the schema takes it alone, and the rule of the instrument
    refuses it in one line whenever a regime compared switches it on, before any run (whatever ``regime`` is)."""
    message = ("income_share.extra_share = 0.5: with scenario.universities.inventor_share = 0.7 the inventors' share "
               "would exceed 1 (allowed: <= 0.3)")
    cfg = api.compose(*SMALL, "regime=baseline", "regimes=[baseline,income_share]", "income_share.extra_share=0.5")
    with pytest.raises(ConfigError) as e:
        api.check_regimes(cfg, cfg.regimes)
    assert str(e.value) == message
    assert list(api.check_regimes(cfg, ["baseline", "vouchers"])) == ["baseline", "vouchers"]  # not switched on: ran
    s = Service(["engine=numba", *SMALL, "seeds=2", "regime=baseline"])
    with pytest.raises(ConfigError) as e:
        s.validate(["regimes=[baseline,vouchers+income_share]", "at_spend=null", "income_share.extra_share=0.5"])
    assert str(e.value) == message and svc.error_key(message) == "income_share.extra_share"
    # the limit itself runs
    a = s.compare(["regimes=[baseline,income_share]", "at_spend=null", "income_share.extra_share=0.3", "seeds=1"])
    assert set(a.comparison.summary.regime) == {"baseline", "income_share"}


def test_numbers_accept_thousands_separators_and_nothing_else_changes():
    for typed, meant in (("500,000", "500000"), ("1,250,000.5", "1250000.5"), ("-1,000", "-1000"), (" 2,000 ", "2000"),
                         ("1e5", "1e5"), ("0.01", "0.01"), ("null", "null")):
        assert svc.field_value("broker_reward.cap", typed) == meant
    for bad in ("1,2", "12,34", "1,2345", ",500", "500,", "5,00,000"):  # not groups of three: refused as before
        with pytest.raises(ConfigError, match=r"^broker_reward.cap = .*: must be a plain value"):
            svc.field_value("broker_reward.cap", bad)
    from experiments.dashboard.pages.compare import question_of

    q = question_of("default", ["baseline", "broker_reward"], [], "1,000", "none", {"broker_reward.cap": "500,000"})
    assert "seeds=1000" in q and "broker_reward.cap=500000" in q
    cfg = Service(["engine=numba", *SMALL]).config(q)
    assert cfg.seeds == 1000 and cfg.broker_reward.cap == 500000


@pytest.mark.parametrize("message, key", [
    ("config error: broker_reward.cap = -5.0: must be >= 0", "broker_reward.cap"),
    ("seeds = 6: 6 runs, above dashboard.max_runs = 5", "seeds"),
    ("regimes contains 'x': allowed regimes are ...", "regimes"),
    ("Could not override 'inventors.extra_share'. (renamed in 0.2.0, ...)", "inventors.extra_share"),
    ("scenario.firms.n = 9: needs about", "scenario.firms.n"),
    ("something else entirely", None)])
def test_an_error_is_placed_by_the_key_it_names(message, key):
    from experiments.dashboard.pages.compare import field_of

    assert svc.error_key(message) == key
    where = {"broker_reward.cap": "broker_reward.cap", "seeds": "seeds", "regimes": "regimes",
             "inventors.extra_share": "question", "scenario.firms.n": "scenario", None: "question"}[key]
    assert field_of(key, {"broker_reward.cap"}) == where


def test_a_value_of_an_instrument_not_switched_on_never_reaches_the_question():
    """The page shows the fields of the instruments switched on: a value typed for one since switched off (or stored in
    a link) is in neither the question nor its link, so no error can name a field that is not shown."""
    from experiments.dashboard.pages.compare import BUDGET, question_of, shown_values

    typed = {"vouchers.rate": "0.4", "free_trial.term_months": "12", BUDGET: "1,000,000"}
    q = question_of("default", ["baseline", "free_trial"], [], "2", "none", typed)
    assert q == ["scenario=default", "seeds=2", "regimes=[baseline,free_trial]", "at_spend=null",
                 "free_trial.term_months=12", "government.annual_budget=1000000"]
    assert shown_values(typed, ["baseline", "free_trial"], []) == {"free_trial.term_months": "12", BUDGET: "1,000,000"}
    cfg = Service(["engine=numba", *SMALL]).config(q)
    assert cfg.vouchers.rate == api.compose().vouchers.rate != 0.4 and cfg.free_trial.term_months == 12
    # switched on (a named regime, or the mix): its value is asked
    assert "vouchers.rate=0.4" in question_of("default", ["baseline", "vouchers"], [], "2", "none", typed)
    assert "vouchers.rate=0.4" in question_of("default", ["baseline"], ["free_trial", "vouchers"], "2", "none", typed)
    # a bad hidden value is not judged either: it is not asked
    assert "vouchers.rate=${oc.env:HOME}" not in question_of("default", ["baseline", "free_trial"], [], "2", "none",
                                                             {"vouchers.rate": "${oc.env:HOME}"})


def test_the_budget_field_shows_the_servers_budget_and_null_clears_it():
    """The budget field's value is the config's (a budget set on the server's command line shows), its doc the
    schema's; typing null asks for no budget, over the server's."""
    import dataclasses

    from experiments.dashboard.pages.compare import BUDGET, budget_field, question_of
    from sim.core.config import GovernmentConfig

    (meta,) = [f.metadata for f in dataclasses.fields(GovernmentConfig) if f.name == "annual_budget"]
    s = Service(["engine=numba", *SMALL, "government.annual_budget=2000000"])
    key, text, doc = budget_field(s.config(["scenario=default"]))
    assert key == BUDGET and float(svc.number_text(text)) == 2_000_000.0
    assert doc.startswith(meta["doc"]) and doc.endswith(">= 0 and <= 1e+12")
    assert budget_field(Service(["engine=numba", *SMALL]).config([]))[1] == "null"
    q = question_of("default", ["baseline", "vouchers"], [], "2", "none", {BUDGET: "null"})
    assert "government.annual_budget=null" in q
    assert s.config(q).government.annual_budget is None
    assert s.config(["scenario=default"]).government.annual_budget == 2_000_000.0


def test_the_page_keeps_questions_not_answers_and_says_when_the_previous_one_is_gone(monkeypatch):
    """"previous" is a question; its answer is fetched from the service's cache, so the page's memory is the cache's
    bound: an answer the cache dropped is said to be no longer kept."""
    from experiments.dashboard import state
    from experiments.dashboard.pages import compare

    s = Service(["engine=numba", *SMALL, "seeds=1", "at_spend=null"], cache=1)
    monkeypatch.setattr(state, "SERVICE", s)
    a = s.compare(["regimes=[baseline,free_trial]"])
    kept = tuple(a.overrides)
    assert all(isinstance(o, str) for o in kept)
    assert compare.kept_answer(kept) is a
    b = s.compare(["regimes=[baseline,vouchers]"])  # the cache holds one answer: a is dropped
    assert compare.kept_answer(kept) is None and compare.kept_answer(tuple(b.overrides)) is b
    assert compare.kept_answer(None) is None
    assert compare.PREVIOUS_GONE.startswith("the previous answer is no longer kept")


def test_saved_questions_offered_to_compare_with_carry_their_errors(monkeypatch):
    """A saved question's link error or bad value is shown in one line (not dropped); a good one is its question,
    answered once this server has it cached."""
    from experiments.dashboard import state
    from experiments.dashboard.pages import compare

    s = Service(["engine=numba", *SMALL, "at_spend=null"])
    monkeypatch.setattr(state, "SERVICE", s)
    good = Question("default", ["baseline", "free_trial"], [], "1", "none", {"vouchers.share": "0.5"})
    kept = {"good": good.query(), "bad link": "regimes=baseline,nope", "bad value": "seeds=" + quote("${oc.env:HOME}")}
    questions = compare.saved_questions(kept, lambda text: parse(text, START, **NAMES))
    assert questions["good"] == ["scenario=default", "seeds=1", "regimes=[baseline,free_trial]", "at_spend=null"]
    assert questions["bad link"].startswith("saved question 'bad link': link: regimes = 'baseline,nope': 'nope' is not")
    assert questions["bad value"].startswith("saved question 'bad value': seeds = '${oc.env:HOME}': must be a plain")
    assert all("\n" not in v for v in questions.values() if isinstance(v, str))
    assert os.environ["HOME"] not in questions["bad value"]
    answers = compare.saved_answers(questions)
    assert answers["saved: bad link"] == questions["bad link"] and answers["saved: bad value"] == questions["bad value"]
    assert answers["saved: good"].startswith("saved question 'good' has no answer on this server yet")
    a = s.compare(questions["good"])
    assert compare.saved_answers(questions)["saved: good"] is a


# --------------------------------------------------------------------------- a link
START = Question("default", ["baseline", "free_trial"], [], "3", "broker_reward", {})
NAMES = dict(scenarios=["default", "lishui"], regimes=["baseline", "free_trial", "broker_reward", "vouchers"],
             instruments=list(INSTRUMENT_NAMES), parameters={"broker_reward.cap", "vouchers.share"})


def test_a_link_opens_the_question_it_was_made_from():
    q = Question("lishui", ["baseline", "vouchers"], ["free_trial", "vouchers"], "40", "vouchers",
                 {"broker_reward.cap": "500,000", "vouchers.share": "0.5"})
    back, errors = parse("?" + q.query(), START, **NAMES)
    assert errors == [] and back == q
    assert parse("", START, **NAMES) == (START, [])


@pytest.mark.parametrize("query, line", [
    ("scenario=../../etc", "link: scenario = '../../etc': allowed scenarios are default, lishui"),
    ("regimes=baseline,nope", "link: regimes = 'baseline,nope': 'nope' is not one of"),
    ("regimes=baseline,baseline", "link: regimes = 'baseline,baseline': each name may appear once"),
    ("mix=vouchers,${oc.env:HOME}", "link: mix = 'vouchers,${oc.env:HOME}': '${oc.env:HOME}' is not one of"),
    ("hydra.run.dir=/tmp", "link: 'hydra.run.dir' is not a key the Compare page sets"),
    ("seeds=3&seeds=4", "link: 'seeds' given twice; the first is kept")])
def test_a_bad_link_is_refused_in_one_line_and_the_start_stands_for_it(query, line):
    q, errors = parse(query, START, **NAMES)
    assert len(errors) == 1 and errors[0].startswith(line) and "\n" not in errors[0]
    assert os.environ["HOME"] not in errors[0]
    assert (q.scenario, q.regimes, q.mix) == (START.scenario, START.regimes, START.mix)


def test_a_links_values_are_judged_as_typed_ones():
    """A value in a link goes to its field as typed text: the same guard refuses an interpolation, by its key."""
    q, errors = parse("seeds=${oc.env:HOME}&broker_reward.cap=" + quote("${oc.env:HOME}"), START, **NAMES)
    assert errors == [] and q.seeds == "${oc.env:HOME}" and q.values == {"broker_reward.cap": "${oc.env:HOME}"}
    for key, text in (("seeds", q.seeds), ("broker_reward.cap", q.values["broker_reward.cap"])):
        with pytest.raises(ConfigError) as e:
            svc.check_values({key: text})
        assert str(e.value).startswith(f"{key} = '${{oc.env:HOME}}': must be a plain value")
        assert os.environ["HOME"] not in str(e.value)
    assert parse("x" * (QUERY_MAX + 1), START, **NAMES)[1][0].startswith("link: its question is 4,001 characters")
    assert parse("&".join(f"k{i}=1" for i in range(100)), START, **NAMES)[1] == [
        "link: more than 64 keys; the page's starting question is shown"]


# --------------------------------------------------------------------------- saved questions
def test_saved_questions_are_written_atomically_read_back_checked_and_bounded(tmp_path, monkeypatch):
    store = saved.SavedQuestions(tmp_path / "saved")
    assert store.load() == {}
    assert store.save("Lishui, vouchers (40 seeds)", "scenario=lishui&seeds=40") == {
        "Lishui, vouchers (40 seeds)": "scenario=lishui&seeds=40"}
    store.save("b", "seeds=3")
    store.save("Lishui, vouchers (40 seeds)", "seeds=41")  # replaced, and now the newest
    assert list(store.load().items()) == [("b", "seeds=3"), ("Lishui, vouchers (40 seeds)", "seeds=41")]
    assert sorted(p.name for p in (tmp_path / "saved").iterdir()) == [saved.FILE_NAME]  # no temporary file left
    assert store.delete("b") == {"Lishui, vouchers (40 seeds)": "seeds=41"}
    for bad in ("", " ", "../x", "${oc.env:HOME}", "a" * 61, "<b>x</b>"):
        with pytest.raises(ConfigError, match=r"^name = .*: a saved question's name is 1 to 60"):
            store.save(bad, "seeds=3")
    with pytest.raises(ConfigError, match=r"^question: 4,001 characters, more than the 4,000"):
        store.save("long", "x" * 4001)
    monkeypatch.setattr(saved, "MAX_SAVED", 2)
    store.save("c", "seeds=4")
    with pytest.raises(ConfigError, match=r"^name = 'd': 2 questions are saved already"):
        store.save("d", "seeds=5")
    assert store.save("c", "seeds=6")["c"] == "seeds=6"  # replacing one is not one more
    # read back checked: not the dashboard's file -> one line, never trusted
    for text in ("[1, 2]", "{not json", json.dumps({"a": 5}), json.dumps({"${x}": "seeds=1"}),
                 json.dumps({"a": "b", "c": "d", "e": "f"})):
        store.path.write_text(text)
        with pytest.raises(ConfigError, match=r"^dashboard.saved: .*saved_questions.json "):
            store.load()
    store.path.unlink()
    store.path.symlink_to(tmp_path / "elsewhere.json")
    with pytest.raises(ConfigError, match="is a link; the dashboard reads only the file it writes"):
        store.load()
    # a FIFO (or any file not regular) in its place is refused, never opened: reading one would block the page
    store.path.unlink()
    os.mkfifo(store.path)
    with pytest.raises(ConfigError) as e:
        store.load()
    assert str(e.value) == (f"dashboard.saved: {store.path} is not a regular file; the dashboard reads only the file it "
                            "writes; move it away")


def test_two_answers_side_by_side_are_the_answer_views_headlines_with_what_differs_marked():
    """The diff is built from the answer view's own headline (its labels, units, money unit), not the command line's
    strings (sim.analysis.stats.headline_table); a regime only one answer has, and each cell that differs, is marked."""
    from experiments.dashboard.pages.answer import headline

    s = Service(["engine=numba", *SMALL, "seeds=2", "at_spend=null"])
    a = s.compare(["regimes=[baseline,free_trial,broker_reward]", "broker_reward.cap=100000"])
    b = s.compare(["regimes=[baseline,free_trial,vouchers]"])
    for answer, unit in ((a, "yuan"), (a, "wan"), (b, "yi")):
        order = list(answer.headline["regime"])
        header, rows, _, _ = headline(answer.comparison.table, None, order, answer.config.scenario.months, unit)
        assert diff.answer_headline(answer, unit) == (header, rows)
    ha, ra = diff.answer_headline(a)
    hb, rb = diff.answer_headline(b)
    assert ha == hb and ha[0] == "regime" and "public spend (yuan, total over the run's 36 months, nominal)" in ha
    columns, rows = diff.headline_diff((ha, ra), (hb, rb))
    assert columns == ha[1:]
    cells = {r[0]: r[1:] for r in ra}, {r[0]: r[1:] for r in rb}
    assert [r[0][0] for r in rows] == [*cells[0], *(k for k in cells[1] if k not in cells[0])]
    for row in rows:
        regime = row[0][0]
        assert row[0][2] == (regime not in cells[0] or regime not in cells[1])
        this = cells[0].get(regime, ["-"] * len(columns))
        that = cells[1].get(regime, ["-"] * len(columns))
        assert [(x, y) for x, y, _ in row[1:]] == list(zip(this, that))
        assert [c for _, _, c in row[1:]] == [x != y for x, y in zip(this, that)]
    # free_trial: the same runs in both (the same seeds, broker_reward.cap is not its parameter): nothing marked
    assert [c for _, _, c in next(r for r in rows if r[0][0] == "free_trial")] == [False] * (1 + len(columns))
    html = diff.diff_html((ha, ra), (hb, rb))
    changed = sum(1 + 2 * sum(c for _, _, c in r[1:]) if r[0][2] else 2 * sum(c for _, _, c in r[1:]) for r in rows)
    assert html.count("class='tt-changed'") == changed > 0
    from experiments.dashboard.ui import CSS

    assert "td.tt-changed { background: #fff3c4; }" in CSS  # shaded (in Chromium: test_a_shared_link_opens_its_question)
    assert diff.question_changes(["seeds=3", "scenario=default"], ["seeds=5", "scenario=default", "x.y=1"]) == [
        ("seeds", "3", "5"), ("x.y", "", "1")]


# --------------------------------------------------------------------------- in a real browser
# the answer on the page now: its command line, not the dimmed previous answer's (inside .tt-previous)
def test_settled_matches_a_whole_override():
    word = _word
    assert word("seeds=3").search("python -m experiments.run seeds=3 regimes=x")
    assert word("seeds=3").search("python -m experiments.run 'seeds=3'")
    assert not word("seeds=3").search("python -m experiments.run seeds=30 regimes=x")
    assert not word("seeds=3").search("python -m experiments.run xseeds=3")
    assert not word("seeds=3").search("python -m experiments.run seeds=3.5")


SERVER = [*SMALL, "seeds=2", "regimes=[baseline,free_trial,broker_reward]", "at_spend=broker_reward", "workers=1"]


@pytest.fixture(scope="module")
def page_and_url(tmp_path_factory):
    if browser.chromium_path() is None:
        pytest.fail("no Chromium at /usr/bin/chromium (REQUIRE_BROWSER=1): run bash tests/install.sh")
    folder = tmp_path_factory.mktemp("saved")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with browser.dashboard(*SERVER, f"dashboard.saved={folder}", log=ARTIFACTS / "server_question.log") as url:
        with browser.chromium() as page:
            yield url, page, folder


@needs_browser
def test_a_shared_link_opens_its_question(page_and_url):
    url, page, _ = page_and_url
    link = ("?scenario=default&regimes=baseline,vouchers&mix=free_trial,vouchers&seeds=2&at_spend=vouchers"
            "&vouchers.cap=120,000&vouchers.rate=0.4&broker_reward.cap=90000")
    page.goto(url + link)
    command = _settled(page, "vouchers.cap=120000")
    overrides = _overrides(command)
    for o in ("seeds=2", "regimes=[baseline,vouchers,free_trial+vouchers]", "at_spend=vouchers",
              "vouchers.cap=120000", "vouchers.rate=0.4"):
        assert o in overrides, (o, overrides)
    # broker_reward is not switched on: its value (no field shown) is in neither the question nor the address bar
    assert [o for o in overrides if o.startswith("broker_reward.")] == []
    assert "broker_reward" not in page.evaluate("() => window.location.search")
    page.screenshot(path=ARTIFACTS / "compare_shared_link.png")
    # the question in the address bar is the link: opened again (a reload), the same command
    page.reload()
    assert _overrides(_settled(page, "vouchers.cap=120000")) == overrides
    # a question changed on the page goes into the address bar
    seeds = page.locator(".tt-seeds input")
    seeds.fill("3")
    seeds.press("Enter")
    _settled(page, "seeds=3")
    page.wait_for_function("() => window.location.search.includes('seeds=3')", timeout=30_000)
    # beside the previous answer (seeds=2): the cells that differ shaded by the page's stylesheet, the others not
    page.locator(".tt-compare-with").click()
    page.locator(".v-menu__content.menuable__content__active .v-list-item", has_text="previous answer").click()
    page.locator(".tt-diff table").wait_for(timeout=30_000)
    backgrounds = page.locator(".tt-diff table").evaluate(
        "t => [...t.tBodies[0].rows].flatMap(r => [...r.cells].map(c => [c.className, getComputedStyle(c)"
        ".backgroundColor]))")
    assert any(cls == "tt-changed" for cls, _ in backgrounds), backgrounds
    assert {bg for cls, bg in backgrounds if cls == "tt-changed"} == {"rgb(255, 243, 196)"}
    assert {bg for cls, bg in backgrounds if cls != "tt-changed"} == {"rgb(255, 255, 255)"}
    assert page.locator(".tt-diff th").first.inner_text() == "regime"
    headers = page.locator(".tt-diff table").evaluate("t => [...t.rows[0].cells].map(c => c.innerText)")
    assert any(h.startswith("public spend (yuan") for h in headers), headers  # the answer view's labels and unit
    again = page.url
    page.goto(url)
    page.goto(again)
    assert "seeds=3" in _overrides(_settled(page, "seeds=3"))


@needs_browser
def test_a_hostile_link_or_value_is_refused_next_to_its_field_never_resolved(page_and_url):
    url, page, _ = page_and_url
    home = os.environ["HOME"]
    page.goto(url + "?seeds=2&broker_reward.cap=" + quote("${oc.env:HOME}") + "&hydra.run.dir=/tmp")
    error = page.locator(".tt-error")
    error.wait_for(timeout=PAGE_SETTLES)
    # below its own field (its section opened), in the command line's words
    text = error.inner_text()
    assert text.startswith("config error: broker_reward.cap = '${oc.env:HOME}': must be a plain value")
    assert home not in page.content()
    assert page.locator(".tt-link-error").inner_text().startswith("link: 'hydra.run.dir' is not a key")
    box, field = error.bounding_box(), page.locator(".tt-param-broker_reward-cap").bounding_box()
    assert 0 <= box["y"] - (field["y"] + field["height"]) < 40 and abs(box["x"] - field["x"]) < 40  # just below it
    page.screenshot(path=ARTIFACTS / "compare_hostile_link.png")
    # typed: the same
    seeds = page.locator(".tt-seeds input")
    seeds.fill("${oc.env:HOME}")
    seeds.press("Enter")
    page.locator(".tt-error", has_text="seeds = ").wait_for(timeout=30_000)
    assert home not in page.content()
    box, field = page.locator(".tt-error").bounding_box(), page.locator(".tt-seeds").bounding_box()
    assert 0 <= box["y"] - (field["y"] + field["height"]) < 40


@needs_browser
def test_thousands_separators_and_the_equal_spend_choices(page_and_url):
    url, page, _ = page_and_url
    page.goto(url + "?regimes=baseline,free_trial,broker_reward&seeds=2&at_spend=broker_reward")
    _settled(page, "seeds=2")
    page.get_by_text("broker_reward.*").click()
    field = page.locator(".tt-param-broker_reward-cap input")
    field.fill("250,000")
    field.press("Enter")
    assert "broker_reward.cap=250000" in _overrides(_settled(page, "broker_reward.cap=250000"))
    page.locator(".tt-at-spend").click()
    options = page.locator(".v-menu__content.menuable__content__active .v-list-item")
    options.first.wait_for(timeout=30_000)
    assert options.all_inner_texts() == ["none", "broker_reward"]  # free_trial pays no public money
    page.keyboard.press("Escape")
