"""The Compare page: a question (scenario, regimes, seeds, instruments' parameters), and its answer."""

from __future__ import annotations

import threading

import solara
import solara.lab

from experiments.dashboard import service as svc
from experiments.dashboard.pages.answer import AnswerView
from experiments.dashboard.state import service
from sim import api
from sim.core.config import INSTRUMENT_NAMES, ConfigError
from sim.core.locations import CONFIG_DIR
from sim.core.schema import _describe


class Superseded(Exception):
    """A comparison given up because the page asks another question."""


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
            if isinstance(value, str) else f"{value:g}" if isinstance(value, float) else str(value)
        allowed = _describe(f.metadata)  # the schema's own words, as in the command line's messages
        out.append((f"{section}.{f.name}", text, f.metadata.get("doc", "") + (f"; {allowed}" if allowed else "")))
    return out


@solara.component
def ParameterInputs(defaults, instruments, values, set_values):
    """Text fields for the parameters of the instruments switched on (anything may be typed: the schema judges)."""
    if not instruments:
        solara.Text("Switch an instrument on to set its parameters.")
    for name in [i for i in INSTRUMENT_NAMES if i in instruments]:
        with solara.Details(summary=f"{name}.*", expand=False):
            for key, default, doc in instrument_fields(defaults, name):
                def on_value(v, key=key, default=default):
                    new = dict(values)
                    if v.strip() == default or not v.strip():
                        new.pop(key, None)
                    else:
                        new[key] = v.strip()
                    set_values(new)
                solara.InputText(key, value=values.get(key, default), on_value=on_value, continuous_update=False,
                                 message=doc, classes=[f"tt-param-{key.replace('.', '-')}"])
    key, default = "government.annual_budget", "null"

    def on_budget(v):
        new = dict(values)
        if v.strip() in ("", default):
            new.pop(key, None)
        else:
            new[key] = v.strip()
        set_values(new)
    solara.InputText(key, value=values.get(key, default), on_value=on_budget, continuous_update=False,
                     message="cap on government's payments to all instruments in each budget year (null: none)",
                     classes=["tt-param-government-annual_budget"])


def question_regimes(regimes, mix) -> list[str]:
    """The regimes compared: those picked, then the mix of instruments (``a+b``, in the registry's order)."""
    return list(regimes) + (["+".join(i for i in INSTRUMENT_NAMES if i in mix)] if len(mix) >= 2 else [])


def question_of(scenario, regimes, mix, seeds, at_spend, values) -> list[str]:
    """The overrides the page's inputs stand for (what the command line would be given)."""
    chosen = question_regimes(regimes, mix)
    q = [f"scenario={scenario}", f"seeds={seeds}", "regimes=[" + ",".join(chosen) + "]",
         f"at_spend={at_spend if at_spend != 'none' else 'null'}"]
    return q + [f"{k}={v}" for k, v in sorted(values.items())]


@solara.component
def ComparePage():
    defaults_cfg = service().config([])
    scenario = solara.use_reactive(defaults_cfg.scenario.name if defaults_cfg.scenario.name in scenario_names()
                                   else "default")
    regimes = solara.use_reactive(list(defaults_cfg.regimes))
    mix = solara.use_reactive([])
    seeds = solara.use_reactive(str(defaults_cfg.seeds))
    at_spend = solara.use_reactive(defaults_cfg.at_spend or "none")
    values, set_values = solara.use_state({})
    progress = solara.use_reactive((0, 0, ""))

    question = question_of(scenario.value, regimes.value, mix.value, seeds.value, at_spend.value, values)
    error = None
    try:
        svc.check_values({"seeds": seeds.value, **values})  # values typed, never interpolations: before composing
        cfg = service().validate(question)
    except ConfigError as e:
        cfg, error = None, f"config error: {e}"

    asked = solara.use_ref(None)  # the question now on the page: a run for an older one stops
    asked.current = tuple(question)
    running = solara.use_ref(None)  # the cancel event of the question running (svc.Service.compare's)
    cancelled, set_cancelled = solara.use_state(False)

    def cancel():  # the Cancel button, and the page closing: the chunks not begun are dropped from the pool
        if running.current is not None:
            running.current.set()

    def on_close():
        def cleanup():
            asked.current = None  # a closed page asks nothing more
            cancel()
        return cleanup

    solara.use_effect(on_close, [])  # its cleanup runs when the page (its virtual kernel) closes

    def ask():
        if cfg is None:
            return None
        mine = tuple(question)
        cancel()  # the question this one replaces (running, or waiting for the pool) is given up
        event = threading.Event()
        running.current = event
        set_cancelled(False)
        progress.set((0, 0, ""))

        def on_progress(done, total, desc):
            if asked.current != mine:
                raise Superseded()  # run_batch cancels the chunks not begun: the pool is free for the new one
            progress.set((done, total, desc))

        def on_wait(runs):  # other pages' questions ahead of this one
            on_progress(0, 0, f"queued behind {runs:,} runs")
        try:
            return service().compare(question, on_progress=on_progress, cancel=event, on_wait=on_wait)
        except Superseded:
            return None  # the page shows the newer question's answer
        except svc.Cancelled:
            if asked.current == mine:
                set_cancelled(True)
            return None
        finally:
            if running.current is event:
                running.current = None

    result = solara.lab.use_task(ask, dependencies=[tuple(question), error], raise_error=False)

    scenario_cfg = service().config([f"scenario={scenario.value}"]) if scenario.value in scenario_names() else defaults_cfg
    named = api.regime_names()
    on = sorted({i for r in regimes.value if r in named for i in api.regime(r).instruments} | set(mix.value))

    with solara.Columns([1, 3]):
        with solara.Column():
            with solara.Card("Question"):
                solara.Select("Scenario", values=scenario_names(), value=scenario)
                solara.SelectMultiple("Regimes", all_values=named, values=regimes, classes=["tt-regimes"])
                solara.SelectMultiple("Your mix of instruments (two or more: one more regime)",
                                      all_values=list(INSTRUMENT_NAMES), values=mix)
                solara.InputText("Seeds (replicates per regime)", value=seeds, continuous_update=False,
                                 classes=["tt-seeds"])
                if len(mix.value) == 1:
                    solara.Text("A mix needs two or more instruments (one alone is its named regime).",
                                classes=["tt-mix-note"])
                spenders = [r for r in question_regimes(regimes.value, mix.value) if r != "baseline"]
                solara.Select("At equal spend to (every regime under its yearly public spend)",
                              values=["none"] + spenders + ([at_spend.value] if at_spend.value not in
                                                             ["none"] + spenders else []), value=at_spend)
            with solara.Card("Instruments' parameters"):
                ParameterInputs(scenario_cfg, on, values, set_values)
        with solara.Column():
            if error:
                solara.Error(error, classes=["tt-error"])
            elif result.pending:
                done, total, desc = progress.value
                solara.ProgressLinear(100 * done / total if total else True)
                solara.Text(f"running {desc}: {done} of {total} runs" if total else desc or "starting",
                            classes=["tt-progress"])
                solara.Button("Cancel", on_click=cancel, classes=["tt-cancel"])
            elif cancelled:
                solara.Info("Cancelled: change a value to ask again, or ask this question again.",
                            classes=["tt-cancelled"])
                solara.Button("Ask again", on_click=lambda: result(), classes=["tt-ask-again"])
            elif result.error and not isinstance(result.exception, Superseded):
                solara.Error(f"run failed: {result.exception}", classes=["tt-error"])
            elif result.value is not None:
                AnswerView(result.value)
