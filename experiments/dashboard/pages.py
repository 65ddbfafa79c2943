"""The dashboard's pages (Solara): Compare, One run, Sweep, Calibration.

Served by ``python -m experiments.dashboard`` (which sets :data:`SERVICE` before the server
starts); ``solara run experiments/dashboard/pages.py`` serves them too, on the default config
with one process. Every number comes from :mod:`experiments.dashboard.service`, which asks the
same functions as the command line; this module only lays them out.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Optional

import matplotlib

matplotlib.use("Agg")  # figures are drawn to PNG for the page, never in a window

import solara  # noqa: E402
import solara.lab  # noqa: E402

from experiments.dashboard import service as svc  # noqa: E402
from sim import api  # noqa: E402
from sim.core.config import INSTRUMENT_NAMES, ConfigError  # noqa: E402
from sim.instruments import BY_NAME  # noqa: E402
from sim.core.locations import CONFIG_DIR  # noqa: E402
from sim.core.schema import _describe  # noqa: E402

SERVICE: Optional[svc.Service] = None  # set by experiments.dashboard before the server starts
SETTINGS: dict = {}                    # its paths: sweeps, calibrations (experiments.dashboard)
PLAY_INTERVAL = 0.2                    # seconds between months when the One run page plays (its default)
_SERVICE_LOCK = threading.Lock()


def service() -> svc.Service:
    global SERVICE
    with _SERVICE_LOCK:
        if SERVICE is None:  # served by `solara run`: the default config, runs in the server's process
            SERVICE = svc.Service(["engine=numba", f"seeds={svc.starting_seeds()}"], workers=1)
        return SERVICE


def table_html(df, name: str, index: bool = True):
    """A table as HTML (its cells are the formatted strings of sim.analysis.stats), marked for tests and styling."""
    html = df.to_html(index=index, border=0, classes=["tt-table"], na_rep="-", escape=True,
                      float_format=lambda v: f"{v:.6g}")
    return solara.HTML(tag="div", unsafe_innerHTML=html, classes=[f"tt-{name}", "tt-scroll"])


CSS = """
.tt-table { border-collapse: collapse; font-size: 13px; margin-bottom: 8px; }
.tt-table th, .tt-table td { padding: 2px 8px; border-bottom: 1px solid #ddd; text-align: right; white-space: nowrap; }
.tt-table th { background: #f4f4f4; }
.tt-scroll { overflow-x: auto; }
.tt-command { font-family: monospace; background: #f4f4f4; padding: 6px; word-break: break-all; }
"""


# --------------------------------------------------------------------------- Compare
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


@solara.component
def AnswerView(answer: svc.Answer):
    solara.Text(f"{answer.config.scenario.name}: {len(answer.config.regimes)} regimes x "
                f"{api.replicates_text(answer.config)}, engine {answer.config.engine}; seeds from "
                f"{answer.config.seed}", classes=["tt-answer"])
    note = (f"; at equal spend: every regime capped at {answer.at_spend}'s yearly spend, "
            f"{answer.equal.budget:,.0f} yuan" if answer.equal is not None else "")
    solara.Markdown(f"#### Each regime against baseline, mean [95% interval]{note}")
    if len(answer.headline):
        table_html(answer.headline, "headline", index=False)
    else:
        solara.Text("(no regime besides baseline)")
    if answer.note:
        solara.Info(answer.note)
    solara.Image(answer.figure, format="png", width="100%")
    with solara.lab.Tabs():
        for label, tables in (("Comparison", answer.tables), ("At equal spend", answer.equal_tables)):
            if not tables:
                continue
            with solara.lab.Tab(label):
                for k, (title, df) in enumerate(tables):
                    solara.Markdown("#### " + title.replace("\n", "  \n"))
                    table_html(df, f"{'equal-' if label != 'Comparison' else ''}table-{k}")
    solara.Markdown("#### Reproduce on the command line")
    solara.HTML(tag="div", unsafe_innerHTML=_escape(answer.command), classes=["tt-command"])
    with solara.Row(classes=["tt-downloads"], style={"flex-wrap": "wrap"}):
        for name, make in answer.files().items():
            solara.FileDownload(make, filename=name, label=name,
                                mime_type="text/csv" if name.endswith(".csv") else "application/octet-stream")


def _escape(text: str) -> str:
    import html

    return html.escape(text)


# --------------------------------------------------------------------------- One run
@solara.component
def OneRunPage():
    base = service().config([])
    scenario = solara.use_reactive(base.scenario.name if base.scenario.name in scenario_names() else "default")
    regime = solara.use_reactive("combined")
    seed = solara.use_reactive(str(base.seed))
    interval = solara.use_reactive(str(PLAY_INTERVAL))
    playing = solara.use_reactive(False)
    tick, set_tick = solara.use_state(0)  # bumped after each month, so the page redraws

    error = None
    stepper = None
    try:
        svc.check_values({"seed": seed.value})
        cfg = service().config([f"scenario={scenario.value}", f"regime={regime.value}", f"seed={seed.value}",
                                "engine=mesa"])
    except ConfigError as e:
        cfg, error = None, f"config error: {e}"

    stepper = solara.use_memo(lambda: svc.Stepper(cfg, cfg.seed) if cfg is not None else None,
                              dependencies=[repr(cfg)])

    def step():
        if stepper is not None and not stepper.done:
            stepper.step()
            set_tick(lambda t: t + 1)

    current = solara.use_ref(None)  # the run on the page: a loop playing another one stops
    current.current = stepper
    solara.use_effect(lambda: playing.set(False), [id(stepper), cfg is None])  # a new run (or none) starts paused

    async def play():  # on the server's event loop: between months it hears a click on Pause
        while playing.value and stepper is not None and not stepper.done and current.current is stepper:
            step()  # the page redraws now: a month at most as fast as its figure is drawn
            await asyncio.sleep(_seconds(interval.value))
        if stepper is not None and stepper.done and current.current is stepper:
            playing.set(False)

    solara.lab.use_task(play, dependencies=[playing.value, id(stepper)], prefer_threaded=False)

    with solara.Columns([1, 3]):
        with solara.Column():
            with solara.Card("One run"):
                solara.Select("Scenario", values=scenario_names(), value=scenario)
                solara.Select("Regime", values=api.regime_names(), value=regime)
                solara.InputText("Seed", value=seed, continuous_update=False)
                solara.InputText("Seconds between months when playing", value=interval, continuous_update=False,
                                 error=_seconds(interval.value, None) is None, classes=["tt-interval"])
                with solara.Row():
                    solara.Button("Pause" if playing.value else "Play", on_click=lambda: playing.set(not playing.value),
                                  disabled=stepper is None or stepper.done, classes=["tt-play"])
                    solara.Button("Step", on_click=step, disabled=stepper is None or stepper.done or playing.value,
                                  classes=["tt-step"])
                    solara.Button("Reset", on_click=lambda: (playing.set(False), _reset(stepper), set_tick(0)),
                                  disabled=stepper is None, classes=["tt-reset"])
                solara.Markdown("The Mesa engine, a month per step: the same numbers as the fast engine "
                                "(tests/engines/test_engines.py).")
        with solara.Column():
            if error:
                solara.Error(error, classes=["tt-error"])
            elif stepper is not None:
                from sim.analysis.plots import one_run_figure

                solara.Text(f"month {stepper.month} of {stepper.months}", classes=["tt-month"])
                series = stepper.series()
                with svc._FIGURE_LOCK:
                    fig = one_run_figure(series, stepper.months, f"{cfg.scenario.name}, {cfg.regime.name}, seed {cfg.seed}")
                    png = svc.figure_png(fig, dpi=72)
                solara.Image(png, format="png", width="100%")
                if len(series):
                    last = series.iloc[-1]
                    solara.Markdown(f"This month: {int(last['needs_raised'])} needs raised, {int(last['matches'])} "
                                    f"matches, {int(last['successes'])} conversions, "
                                    f"{int(last['brokers_active'])} active brokers.")
    _ = tick


def _seconds(text: str, default: Optional[float] = PLAY_INTERVAL) -> Optional[float]:
    """A pause between months typed in the page: a number of seconds from 0 to 60 (else ``default``)."""
    try:
        value = float(text)
    except ValueError:
        return default
    return value if 0 <= value <= 60 else default


def _reset(stepper) -> None:
    if stepper is not None:
        stepper.__init__(stepper.cfg, stepper.seed)


# --------------------------------------------------------------------------- Sweep
@solara.component
def SweepPage():
    root = Path(SETTINGS.get("sweeps", "multirun"))
    found = [str(p) for p in svc.find_results(root, "sweep.parquet")]
    path = solara.use_reactive(found[0] if found else "")
    metric = solara.use_reactive("successes")
    solara.Markdown(f"A collected sweep (`python -m experiments.collect <sweep dir>` writes `sweep.parquet`); "
                    f"found under `{root}`: {len(found)}.")
    solara.InputText("Sweep folder or sweep.parquet", value=path, continuous_update=False, classes=["tt-sweep-path"])
    if not path.value:
        return
    try:
        df, axes, metrics = svc.load_sweep(svc.under_root("sweep", path.value, root, "dashboard.sweeps"), root)
    except (ConfigError, OSError, ValueError) as e:
        solara.Error(f"{e}", classes=["tt-error"])
        return
    solara.Select("Metric", values=metrics, value=metric)
    solara.Markdown(f"{len(df)} runs; swept: {', '.join(axes) or 'nothing'}")
    from sim.analysis.plots import _numeric_axes, sweep_heatmap_figure, sweep_lines_figure

    numeric = _numeric_axes(df, axes)
    if metric.value not in metrics:
        return
    with svc._FIGURE_LOCK:
        figs = []
        if numeric:
            figs.append(svc.figure_png(sweep_lines_figure(df, axes, metric.value)))
        if len(numeric) >= 2:
            figs.append(svc.figure_png(sweep_heatmap_figure(df, axes, metric.value)))
    for png in figs:
        solara.Image(png, format="png", width="65%")
    means = df.groupby(axes or ["seed"], dropna=False)[metric.value].agg(["mean", "std", "count"]).reset_index() \
        if axes else df[[metric.value]].describe()
    table_html(means, "sweep", index=not axes)
    solara.FileDownload(lambda: means.to_csv(index=False).encode(), filename=f"sweep_{metric.value}.csv",
                        label=f"sweep_{metric.value}.csv")


# --------------------------------------------------------------------------- Calibration
@solara.component
def CalibrationPage():
    import pandas as pd

    root = Path(SETTINGS.get("calibrations", "calibration"))
    found = [str(p) for p in svc.find_results(root, "posterior.csv")]
    path = solara.use_reactive(found[0] if found else "")
    solara.Markdown(f"A calibration's folder (`python -m experiments.calibrate` writes it); found under `{root}`: "
                    f"{len(found)}.")
    solara.InputText("Calibration folder", value=path, continuous_update=False, classes=["tt-calibration-path"])
    if not path.value:
        return
    try:  # a folder under the calibrations' root only, and its files too (a link out of it is not read)
        folder = svc.under_root("calibration", path.value, root, "dashboard.calibrations")
    except ConfigError as e:
        solara.Error(f"{e}", classes=["tt-error"])
        return

    def readable(name: str) -> bool:
        return (folder / name).is_file() and svc.inside(root, folder / name)

    if not readable("posterior.csv"):
        solara.Error(f"calibration = {path.value!r}: no posterior.csv there", classes=["tt-error"])
        return
    for name, title in (("posterior_summary.csv", "Posterior: each parameter's range, median, 90% interval"),
                        ("fit.csv", "Fit and held-out predictions: reported against predicted")):
        if readable(name):
            solara.Markdown(f"#### {title}")
            table_html(pd.read_csv(folder / name), name.split(".")[0].replace("_", "-"), index=False)
    for name in ("posterior_pairs.png", "fit.png", "screen.png"):
        if readable(name):
            solara.Image((folder / name).read_bytes(), format="png", width="65%")
    solara.Markdown(f"Compare regimes on this posterior: `python -m experiments.run posterior={folder}`")


# --------------------------------------------------------------------------- the app
TITLE = "Technology-transfer policy"


@solara.component
def Layout(children=[]):
    """The app bar with a tab per page (the routes' labels), then the page."""
    route, routes = solara.use_route()
    solara.Style(CSS)
    solara.Title(TITLE)
    with solara.AppLayout(title=TITLE, navigation=False) as main:
        with solara.AppBar():
            for r in routes:
                with solara.Link(solara.resolve_path(r)):
                    solara.Button(r.label, text=True, dark=True, classes=[f"tt-nav-{r.path.strip('/') or 'compare'}"],
                                  style={"font-weight": "bold" if r is route else "normal"})
        solara.Column(children=children)
    return main


routes = [
    solara.Route(path="/", component=ComparePage, label="Compare", layout=Layout),
    solara.Route(path="one-run", component=OneRunPage, label="One run"),
    solara.Route(path="sweep", component=SweepPage, label="Sweep"),
    solara.Route(path="calibration", component=CalibrationPage, label="Calibration"),
]
