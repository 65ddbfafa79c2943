"""The One run page: the Mesa model a month at a time."""

from __future__ import annotations

import asyncio
from typing import Optional

import solara
import solara.lab

from experiments.dashboard import service as svc
from experiments.dashboard.pages.compare import scenario_names
from experiments.dashboard.state import service
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
