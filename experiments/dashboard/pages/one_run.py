"""The One run page: the Mesa model a month at a time."""

from __future__ import annotations

import asyncio
from typing import Optional

import solara
import solara.lab

from experiments.dashboard import service as svc
from experiments.dashboard.pages.compare import scenario_names
from experiments.dashboard.state import service
from experiments.dashboard.ui import MoneyUnit, table_html
from sim import api
from sim.core.config import ConfigError

PLAY_INTERVAL = 0.2  # seconds between months when the One run page plays (its default)


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
                                "(tests/engines/test_engines.py). Months are numbered as in the downloadable series "
                                "(`series.csv`'s `month`): 0 is the first.")
        with solara.Column():
            if error:
                solara.Error(error, classes=["tt-error"])
            elif stepper is not None:
                RunView(stepper, cfg, tick)  # tick: redrawn after each month
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


def month_text(stepper) -> str:
    """The month shown: the series' number of the last month run (0 first), of the run's 0 .. months - 1."""
    last = "–" if stepper.last_month < 0 else str(stepper.last_month)
    return f"month {last} of 0–{stepper.months - 1}"


@solara.component
def RunView(stepper, cfg, tick: int = 0):
    """The run so far: the funnel, the money flows, the agents and the firms (redrawn after each month)."""
    from experiments.dashboard.charts import runs as charts

    unit = solara.use_reactive("yuan")
    by = solara.use_reactive("kind")
    solara.Text(month_text(stepper), classes=["tt-month"])
    solara.Text(f" ({stepper.month} of {stepper.months} months run; {cfg.scenario.name}, {cfg.regime.name}, "
                f"seed {cfg.seed})")
    series = stepper.series()
    if len(series):
        last = series.iloc[-1]
        solara.Markdown(f"This month: {int(last['needs_raised'])} needs raised, {int(last['matches'])} "
                        f"matches, {int(last['successes'])} conversions, "
                        f"{int(last['brokers_active'])} active brokers.")
    solara.FigurePlotly(charts.funnel_figure(series, stepper.months))
    with solara.Row():
        MoneyUnit(unit.value, unit.set)
        solara.ToggleButtonsSingle(value=by, values=["kind", "route"], classes=["tt-flows-by"])
    flows = stepper.flows()
    solara.FigurePlotly(charts.flows_figure(flows, stepper.months, unit.value, by.value))
    if stepper.last_month >= 0:
        solara.Markdown(f"#### Who paid whom: in month {stepper.last_month}, and in months 0–{stepper.last_month}")
        table_html(charts.flow_table(flows, stepper.last_month, unit.value), "flows", index=False)
    solara.Markdown("#### Agents in the model now")
    table_html(stepper.agents(), "agents", index=False)
    FirmsTable(stepper.firms(), unit.value)


FIRMS_PAGE = 25  # firms a page of the table shows


@solara.component
def FirmsTable(firms, unit: str):
    """The firms with their state: filtered (size, sector, a project under way), sorted, a page at a time."""
    from experiments.dashboard import fmt

    size = solara.use_reactive("all")
    sector = solara.use_reactive("")
    busy = solara.use_reactive(False)
    sort = solara.use_reactive("cash")
    descending = solara.use_reactive(True)
    page = solara.use_reactive(0)
    solara.Markdown(f"#### Firms ({len(firms):,}): their state now")
    with solara.Row():
        solara.Select("Size", values=["all", "SME", "large"], value=size)
        solara.InputText("Sector (a number; empty: all)", value=sector, continuous_update=False,
                         classes=["tt-firms-sector"])
        solara.Checkbox(label="with a project under way", value=busy)
        solara.Select("Sort by", values=[c for c in firms.columns if c not in ("size",)], value=sort)
        solara.Checkbox(label="largest first", value=descending)
    shown, note = filter_firms(firms, size.value, sector.value, busy.value, sort.value, descending.value)
    pages = max(1, -(-len(shown) // FIRMS_PAGE))
    at = min(page.value, pages - 1)
    rows = shown.iloc[at * FIRMS_PAGE:(at + 1) * FIRMS_PAGE].copy()
    for c in ("cash", "cash at start"):
        rows[c] = rows[c].map(lambda v: fmt.money(float(v), unit))
    rows["belief in success"] = rows["belief in success"].map(fmt.share)
    if note:
        solara.Warning(note)
    with solara.Row():
        solara.Button("previous", on_click=lambda: page.set(max(0, at - 1)), disabled=at == 0,
                      classes=["tt-firms-prev"])
        solara.Text(f"firms {at * FIRMS_PAGE + 1 if len(shown) else 0}–{at * FIRMS_PAGE + len(rows)} of {len(shown):,}"
                    f" (page {at + 1} of {pages})", classes=["tt-firms-page"])
        solara.Button("next", on_click=lambda: page.set(min(pages - 1, at + 1)), disabled=at >= pages - 1,
                      classes=["tt-firms-next"])
    table_html(rows, "firms", index=False)


def filter_firms(firms, size: str = "all", sector: str = "", busy: bool = False, sort: str = "cash",
                 descending: bool = True):
    """The firms' table filtered and sorted as the page asks: (table, a note on a filter not understood or "")."""
    out, note = firms, ""
    if size in ("SME", "large"):
        out = out[out["size"] == size]
    text = str(sector).strip()
    if text:
        try:
            out = out[out["sector"] == int(text)]
        except ValueError:
            note = f"sector = {text[:40]!r}: a whole number (the sectors are {int(firms['sector'].min())} to " \
                   f"{int(firms['sector'].max())}); all sectors shown"
    if busy:
        out = out[(out[[c for c in out.columns if c.startswith("projects ") and c != "projects idle"]] > 0).any(axis=1)]
    if sort in out.columns:
        out = out.sort_values([sort, "firm"], ascending=[not descending, True], kind="stable")
    return out, note
