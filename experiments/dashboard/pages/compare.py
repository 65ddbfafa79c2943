"""The Compare page: a question (scenario, regimes, seeds, instruments' parameters), and its answer."""

from __future__ import annotations

import solara
import solara.lab

from experiments.dashboard import diff, fmt, saved
from experiments.dashboard import service as svc
from experiments.dashboard.pages.answer import AnswerView
from experiments.dashboard.question import Question, parse
from experiments.dashboard.state import service, use_question
from sim import api
from sim.core.config import INSTRUMENT_NAMES, ConfigError
from sim.core.locations import CONFIG_DIR
from sim.core.schema import _describe


def scenario_names() -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / "scenario").glob("*.yaml"))


def instrument_fields(cfg, instrument: str) -> list[tuple[str, str, str]]:
    """(dotted key, current value as the command line writes it, its doc) of an instrument's parameters."""
    import dataclasses

    section = instrument  # an instrument's parameters are the config's section of its name
    obj = getattr(cfg, section)
    out = []
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        text = "null" if value is None else str(value).lower() if isinstance(value, bool) else repr(value) \
            if isinstance(value, str) else fmt.exact(value) if isinstance(value, float) else str(value)
        allowed = _describe(f.metadata)  # the schema's own words, as in the command line's messages
        out.append((f"{section}.{f.name}", text, f.metadata.get("doc", "") + (f"; {allowed}" if allowed else "")))
    return out


def budget_field(cfg) -> tuple[str, str, str]:
    """(key, current value, doc) of the government's budget field: its value in ``cfg`` (a budget set on the server's
    command line shows), its doc and bounds from the schema's field (:class:`sim.core.config.GovernmentConfig`)."""
    (field,) = [f for f in instrument_fields(cfg, "government") if f[0] == BUDGET]
    return field


def parameter_keys(cfg, instruments) -> list[str]:
    """The keys of the parameter fields the page has (every instrument's, and the government's budget)."""
    return [k for name in instruments for k, _, _ in instrument_fields(cfg, name)] + [BUDGET]


BUDGET = "government.annual_budget"
DIM = {"opacity": "0.45", "pointer-events": "none"}  # the previous answer while the next runs


@solara.component
def FieldError(message):
    """A field's error, below it (the command line's one line)."""
    solara.Error(message, classes=["tt-error"], style={"margin": "0 0 8px 0"})


@solara.component
def ParameterInputs(defaults, instruments, values, set_values, error_at=None, error=None, opened=()):
    """Text fields for the parameters of the instruments switched on (anything may be typed: the schema judges);
    the question's error, if it names one of them, below that field (its section opened)."""
    if not instruments:
        solara.Text("Switch an instrument on to set its parameters.")

    def field(key, default, doc):
        def on_value(v, key=key, default=default):
            new = dict(values)
            if v.strip() == default or not v.strip():
                new.pop(key, None)
            else:
                new[key] = v.strip()
            set_values(new)
        solara.InputText(key, value=values.get(key, default), on_value=on_value, continuous_update=False,
                         message=doc, error=key == error_at, classes=[f"tt-param-{key.replace('.', '-')}"])
        if key == error_at:
            FieldError(error)

    for name in [i for i in INSTRUMENT_NAMES if i in instruments]:
        with solara.Details(summary=f"{name}.*", expand=name in opened):
            for key, default, doc in instrument_fields(defaults, name):
                field(key, default, doc)
    field(*budget_field(defaults))  # typing null clears a budget the server's command line sets


def question_regimes(regimes, mix) -> list[str]:
    """The regimes compared: those picked, then the mix of instruments (``a+b``, in the registry's order)."""
    return list(regimes) + (["+".join(i for i in INSTRUMENT_NAMES if i in mix)] if len(mix) >= 2 else [])


def instruments_on(regimes, mix) -> list[str]:
    """The instruments whose parameters the page shows: those the named regimes picked switch on, and the mix's."""
    named = set(api.regime_names())
    return sorted({i for r in regimes if r in named for i in api.regime(r).instruments} | set(mix))


def shown_values(values, regimes, mix) -> dict:
    """The typed values of the fields the page shows (the instruments switched on, and the budget): a value typed for
    an instrument since switched off stays in the page's state but reaches neither the question nor its link."""
    on = set(instruments_on(regimes, mix))
    return {k: v for k, v in values.items() if k == BUDGET or k.split(".", 1)[0] in on}


def question_of(scenario, regimes, mix, seeds, at_spend, values) -> list[str]:
    """The overrides the page's inputs stand for (what the command line would be given); of the typed values, those of
    the fields shown (:func:`shown_values`)."""
    chosen = question_regimes(regimes, mix)
    q = [f"scenario={scenario}", f"seeds={svc.number_text(seeds)}", "regimes=[" + ",".join(chosen) + "]",
         f"at_spend={at_spend if at_spend != 'none' else 'null'}"]
    return q + [f"{k}={svc.number_text(v)}" for k, v in sorted(shown_values(values, regimes, mix).items())]


def equal_spend_choices(regimes, mix) -> list[str]:
    """The regimes "at equal spend to" offers: those compared that may pay public money (:func:`sim.api.spends`: an
    instrument they switch on owns a payment the government makes); baseline, an open licence, a royalty rule or
    the income-share reform spend none, so no budget can be read from them."""
    return [r for r in question_regimes(regimes, mix) if api.spends(r)]


def field_of(key, params) -> str:
    """Which of the page's fields an error naming ``key`` belongs below: ``seeds``, ``regimes``, ``at_spend``,
    ``scenario``, a parameter's key, or ``question`` (the top of the form)."""
    if key is None:
        return "question"
    if key in ("seeds", "at_spend", "scenario") or key in params:
        return key
    if key in ("regimes", "regime") or key.startswith("regime."):
        return "regimes"
    if key.startswith("scenario."):
        return "scenario"
    return "question"




@solara.component
def RegimesPicker(named, committed, on_apply):
    """The regimes to compare: ticked in the list, then applied with Apply (a question per click would start a
    comparison per click)."""
    draft, set_draft = solara.use_state_or_update(tuple(committed))  # a link opened: its regimes
    pending = list(draft) != list(committed)
    solara.SelectMultiple("Regimes (then Apply)", all_values=named, values=list(draft), on_value=lambda v: set_draft(tuple(v)),
                          classes=["tt-regimes"])
    with solara.Row():
        solara.Button("Apply", on_click=lambda: on_apply([r for r in named if r in draft]), disabled=not pending,
                      color="primary" if pending else None, classes=["tt-regimes-apply"])
        solara.Button("Undo", on_click=lambda: set_draft(tuple(committed)), disabled=not pending, text=True,
                      classes=["tt-regimes-undo"])
    if pending:
        solara.Text("Not applied yet: the answer is for " + (", ".join(committed) or "no regime") + ".",
                    classes=["tt-regimes-pending"])


@solara.component
def SavedQuestionsCard(query, open_query):
    """Save the question under a name; open a saved one (as its link opens)."""
    from experiments.dashboard.state import SETTINGS

    store = saved.SavedQuestions(SETTINGS.get("saved", saved.DEFAULT_FOLDER))
    version, set_version = solara.use_state(0)
    name, set_name = solara.use_state("")
    pick, set_pick = solara.use_state(None)
    message, set_message = solara.use_state(None)
    try:
        kept = store.load()
    except ConfigError as e:
        kept, message = {}, str(e)

    def save():
        try:
            store.save(name, query)
            set_message(None)
            set_pick(saved.check_name(name))
            set_version(version + 1)
        except ConfigError as e:
            set_message(str(e))

    def delete():
        if pick in kept:
            store.delete(pick)
            set_pick(None)
            set_version(version + 1)

    with solara.Card("Saved questions"):
        solara.InputText("Name", value=name, on_value=set_name, continuous_update=True, classes=["tt-save-name"])
        solara.Button("Save this question", on_click=save, disabled=not name.strip(), classes=["tt-save"])
        if message:
            solara.Error(message, classes=["tt-save-error"])
        if kept:
            solara.Select("Saved", values=list(kept), value=pick if pick in kept else None, on_value=set_pick,
                          classes=["tt-saved"])
            with solara.Row():
                solara.Button("Open", on_click=lambda: open_query(kept[pick]), disabled=pick not in kept,
                              classes=["tt-open"])
                solara.Button("Delete", on_click=delete, disabled=pick not in kept, text=True, classes=["tt-delete"])


PREVIOUS_GONE = ("the previous answer is no longer kept (the server keeps its latest answers only): ask its question "
                 "again to compare with it")


def kept_answer(question):
    """The answer to ``question`` (a tuple of overrides) if the service's cache still holds it, else None: the page
    keeps questions, never answers, so its memory is the cache's bound."""
    if not question:
        return None
    try:
        return service().cached(list(question))
    except ConfigError:
        return None


def saved_questions(kept: dict, parse_link) -> dict:
    """{name: the question of a saved question (its overrides), or a one-line error: its link's first error, or its
    values' one}: what "compare with" offers of the saved questions (memoised on the saved list by the page)."""
    out = {}
    for name, text in kept.items():
        q, errors = parse_link(text)
        if errors:
            out[name] = f"saved question {name!r}: {errors[0]}"
            continue
        try:
            svc.check_values({"seeds": q.seeds, "at_spend": q.at_spend, **shown_values(q.values, q.regimes, q.mix)})
            out[name] = question_of(q.scenario, q.regimes, q.mix, q.seeds, q.at_spend, q.values)
        except ConfigError as e:
            out[name] = f"saved question {name!r}: {e}"
    return out


def saved_answers(questions: dict) -> dict:
    """{"saved: <name>": its answer if this server has it cached, else a one-line message} of :func:`saved_questions`."""
    out = {}
    for name, q in questions.items():
        if isinstance(q, str):
            out[f"saved: {name}"] = q
            continue
        try:
            got = service().cached(q)
        except ConfigError as e:
            got = f"saved question {name!r}: {e}"
        out[f"saved: {name}"] = got if got is not None else (
            f"saved question {name!r} has no answer on this server yet: open it (Saved questions, Open), "
            "then pick it here")
    return out


@solara.component
def CompareWith(answer, previous, saved_answers):
    """The answer beside another (the previous one, or a saved question's if it has been answered on this server):
    what the questions differ in, then the headline numbers of both as the answer view writes them, the cells that
    differ marked. ``previous``: an answer, a message (it is no longer kept) or None."""
    from experiments.dashboard.ui import MoneyUnit

    choices = {"previous answer": previous} if previous is not None else {}
    choices.update(saved_answers)
    other_name, set_other = solara.use_state("none")
    unit, set_unit = solara.use_state("yuan")
    solara.Select("Compare with", values=["none", *choices], value=other_name if other_name in choices else "none",
                  on_value=set_other, classes=["tt-compare-with"])
    other = choices.get(other_name)
    if other is None:
        return
    if isinstance(other, str):  # a saved question not answered yet, or with an error; the previous answer dropped
        solara.Info(other, classes=["tt-compare-missing"])
        return
    changes = diff.question_changes(answer.overrides, other.overrides)
    solara.Markdown("#### Now against " + other_name + ": " + ("; ".join(
        f"{k} {b or '(unset)'} -> {a or '(unset)'}" for k, a, b in changes) or "the same question"))
    MoneyUnit(unit, set_unit)
    solara.HTML(tag="div", unsafe_innerHTML=diff.diff_html(diff.answer_headline(answer, unit),
                                                           diff.answer_headline(other, unit)),
                classes=["tt-diff", "tt-scroll"])


@solara.component
def Dimmed(answer, note: str):
    """An answer no longer the page's (the previous one, while the next runs or while the question has a mistake),
    dimmed: its headline and its command line (not its charts and tables: drawing a second whole answer would slow
    the page while the next one runs); nothing when the cache no longer keeps it."""
    from experiments.dashboard.ui import escape, grid_html

    if answer is not None:
        with solara.Column(classes=["tt-previous"], style=DIM):
            solara.Text(note)
            grid_html("previous-headline", *diff.answer_headline(answer))
            solara.HTML(tag="div", unsafe_innerHTML=escape(answer.command), classes=["tt-previous-command"])


@solara.component
def ComparePage():
    defaults_cfg = service().config([])
    named = api.regime_names()
    scenarios = scenario_names()
    router = solara.use_router()
    start = Question(defaults_cfg.scenario.name if defaults_cfg.scenario.name in scenarios else "default",
                     list(defaults_cfg.regimes), [], str(defaults_cfg.seeds), defaults_cfg.at_spend or "none", {})
    all_params = solara.use_memo(lambda: set(parameter_keys(defaults_cfg, INSTRUMENT_NAMES)), [])

    def parse_link(search):
        return parse(search, start, scenarios, named, list(INSTRUMENT_NAMES), all_params)

    first, first_errors = solara.use_memo(lambda: parse_link(router.search), [])
    scenario = solara.use_reactive(first.scenario)
    regimes = solara.use_reactive(first.regimes)
    mix = solara.use_reactive(first.mix)
    seeds = solara.use_reactive(first.seeds)
    at_spend = solara.use_reactive(first.at_spend)
    values, set_values = solara.use_state(first.values)
    link_errors, set_link_errors = solara.use_state(first_errors)

    asked_q = Question(scenario.value, list(regimes.value), list(mix.value), seeds.value, at_spend.value,
                       shown_values(values, regimes.value, mix.value))  # the link: the values shown, as the question
    query = asked_q.query()

    def follow_link():  # a link opened on this page (back, forward, a saved question): its question
        search = router.search or ""
        if search and search != query:
            q, errors = parse_link(search)
            canonical = Question(q.scenario, q.regimes, q.mix, q.seeds, q.at_spend,
                                 shown_values(q.values, q.regimes, q.mix)).query()
            if canonical != search.lstrip("?"):  # a value of an instrument not switched on: not in the address bar
                router.push(f"{router.path or '/'}?{canonical}")
            scenario.set(q.scenario)
            regimes.set(q.regimes)
            mix.set(q.mix)
            seeds.set(q.seeds)
            at_spend.set(q.at_spend)
            set_values(q.values)
            set_link_errors(errors)

    solara.use_effect(follow_link, [router.search])

    def show_in_url():  # the question, in the address bar: a reload or the link shared opens it
        if (router.search or "") != query:
            router.push(f"{router.path or '/'}?{query}")

    solara.use_effect(show_in_url, [query])

    question = question_of(scenario.value, regimes.value, mix.value, seeds.value, at_spend.value, values)
    error = None
    try:
        svc.check_values({"seeds": seeds.value, "at_spend": at_spend.value,  # values, never interpolations
                          **shown_values(values, regimes.value, mix.value)})
        cfg = service().validate(question)
    except ConfigError as e:
        cfg, error = None, f"config error: {e}"
    error_at = field_of(svc.error_key(error), all_params) if error else None

    shown = solara.use_ref(None)      # the question of the answer on the page: dimmed while the next one runs
    previous = solara.use_ref(None)   # the one before it: "compare with" (questions: the answers stay the cache's)
    opened = solara.use_ref(set())    # parameter sections opened to show an error: they stay open
    # asked as it is edited, through the service's one queue; a newer question, Cancel, or the page closing gives the
    # running one up (state.use_question: the rule the Calibration page's question follows too)
    result, (done, total, desc), cancel, cancelled = use_question(service().compare, question, enabled=cfg is not None)
    if result.finished and result.value is not None and tuple(result.value.overrides) != shown.current:
        if shown.current is not None:
            previous.current = shown.current
        shown.current = tuple(result.value.overrides)

    scenario_cfg = service().config([f"scenario={scenario.value}"]) if scenario.value in scenarios else defaults_cfg
    on = instruments_on(regimes.value, mix.value)
    if error_at in all_params and error_at != BUDGET:
        opened.current = opened.current | {error_at.split(".", 1)[0]}

    def open_query(text):
        router.push(f"{router.path or '/'}?{text}")

    from experiments.dashboard.state import SETTINGS

    try:  # the saved list (its own errors are shown by the Saved questions card)
        kept = saved.SavedQuestions(SETTINGS.get("saved", saved.DEFAULT_FOLDER)).load()
    except ConfigError:
        kept = {}
    saved_qs = solara.use_memo(lambda: saved_questions(kept, parse_link), [tuple(kept.items())])

    def here(field):
        if error_at == field:
            FieldError(error)

    with solara.Columns([1, 3]):
        with solara.Column():
            with solara.Card("Question"):
                for line in link_errors:
                    solara.Warning(line, classes=["tt-link-error"])
                here("question")
                solara.Select("Scenario", values=scenarios, value=scenario)
                here("scenario")
                RegimesPicker(named, list(regimes.value), regimes.set)
                here("regimes")
                solara.SelectMultiple("Your mix of instruments (two or more: one more regime)",
                                      all_values=list(INSTRUMENT_NAMES), values=mix, classes=["tt-mix"])
                if len(mix.value) == 1:
                    solara.Text("A mix needs two or more instruments (one alone is its named regime).",
                                classes=["tt-mix-note"])
                solara.InputText("Seeds (replicates per regime)", value=seeds, continuous_update=False,
                                 error=error_at == "seeds", classes=["tt-seeds"])
                here("seeds")
                spenders = equal_spend_choices(regimes.value, mix.value)
                solara.Select("At equal spend to (a regime that pays public money: every regime under its yearly "
                              "public spend)", values=["none"] + spenders + ([at_spend.value] if at_spend.value not in
                                                                             ["none"] + spenders else []),
                              value=at_spend, classes=["tt-at-spend"])
                here("at_spend")
                solara.HTML(tag="a", unsafe_innerHTML="Link to this question",
                            attributes={"href": f"?{query}"}, classes=["tt-link"])
            with solara.Card("Instruments' parameters"):
                ParameterInputs(scenario_cfg, on, values, set_values, error_at, error, opened.current)
            SavedQuestionsCard(query, open_query)
        with solara.Column():
            if error:
                solara.Info("The question has a mistake: see the field marked in red.", classes=["tt-see-field"])
                Dimmed(kept_answer(shown.current), "The last answer, to the question before this change:")
            elif result.pending:
                solara.ProgressLinear(100 * done / total if total else True)
                solara.Text(f"running {desc}: {done} of {total} runs" if total else desc or "starting",
                            classes=["tt-progress"])
                solara.Button("Cancel", on_click=cancel, classes=["tt-cancel"])
                Dimmed(kept_answer(shown.current), "The previous answer, until this one is ready:")
            elif cancelled:
                solara.Info("Cancelled: change a value to ask again, or ask this question again.",
                            classes=["tt-cancelled"])
                solara.Button("Ask again", on_click=lambda: result(), classes=["tt-ask-again"])
            elif result.error:
                solara.Error(f"run failed: {result.exception}", classes=["tt-error"])
            elif result.value is not None:
                before = previous.current if previous.current not in (None, tuple(result.value.overrides)) else None
                CompareWith(result.value, None if before is None else kept_answer(before) or PREVIOUS_GONE,
                            saved_answers(saved_qs))
                AnswerView(result.value)
