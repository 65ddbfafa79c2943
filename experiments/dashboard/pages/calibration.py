"""The Calibration page: a calibration's posterior and fit, and the regimes compared on its posterior."""

from __future__ import annotations

import threading
from pathlib import Path

import solara
import solara.lab

from experiments.dashboard import service as svc
from experiments.dashboard.state import SETTINGS, service
from experiments.dashboard.pages.answer import AnswerView
from experiments.dashboard.ui import table_html
from sim.core.config import ConfigError

TITLES = {"posterior_summary.csv": "Posterior: each parameter's prior range, posterior median and 90% interval",
          "fit.csv": "Fit and held-out predictions: each reported figure against the model's prediction "
                     "(z: how far the figure lies from the prediction, in standard deviations of the prediction)"}


@solara.component
def CalibrationPage():
    import pandas as pd

    from experiments.dashboard.charts import runs as charts

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
    summary = pd.read_csv(folder / "posterior_summary.csv") if readable("posterior_summary.csv") else None
    for name, names in (("posterior_summary.csv", charts.SUMMARY_COLUMNS), ("fit.csv", charts.FIT_COLUMNS)):
        if readable(name):
            solara.Markdown(f"#### {TITLES[name]}")
            table_html(charts.readable(pd.read_csv(folder / name), names), name.split(".")[0].replace("_", "-"),
                       index=False)
    try:
        post = pd.read_csv(folder / "posterior.csv")
        if len(post) and "weight" in post and len(post.columns) > 1:
            with solara.Div(classes=["tt-corner", "tt-scroll"]):
                solara.FigurePlotly(charts.corner_figure(post, summary))
    except (ValueError, pd.errors.ParserError) as e:
        solara.Error(f"calibration = {path.value!r}: posterior.csv not readable ({type(e).__name__})",
                     classes=["tt-error"])
    for name in ("fit.png", "screen.png"):
        if readable(name):
            solara.Image((folder / name).read_bytes(), format="png", width="65%")
    PosteriorComparison(folder, readable("posterior.yaml"))


@solara.component
def PosteriorComparison(folder: Path, has_yaml: bool):
    """The main job's comparison of regimes on this posterior (``python -m experiments.run posterior=<folder>``),
    asked from the page: through the service's one queue, with its limits and a Cancel."""
    base = service().config([])
    draws = solara.use_reactive("20")
    seeds = solara.use_reactive("2")
    clicks, set_clicks = solara.use_state(0)
    progress = solara.use_reactive((0, 0, ""))
    cancelled, set_cancelled = solara.use_state(False)
    running = solara.use_ref(None)
    asked = solara.use_ref(None)

    solara.Markdown("#### Compare regimes on this posterior\n"
                    f"Every regime of the dashboard's question ({', '.join(base.regimes)}) on `draws` particles drawn "
                    "by weight, `seeds` runs each: the intervals carry the calibrated parameters' uncertainty as well "
                    "as chance (docs/how-to/run-on-posterior.md).")
    if not has_yaml:
        solara.Warning("No posterior.yaml in this folder (it says which scenario each key applies to): the command "
                       "line refuses it too.")
    question, error = None, None
    try:
        question = svc.posterior_question(folder, draws.value, seeds.value)
        service().config(question)
    except ConfigError as e:
        error = f"config error: {e}"
    asked.current = (tuple(question or ()), clicks)

    def cancel():
        if running.current is not None:
            running.current.set()

    solara.use_effect(lambda: (lambda: (setattr(asked, "current", None), cancel())), [])  # the page closed

    def ask():
        if clicks == 0 or question is None:
            return None
        mine = asked.current
        cancel()
        event = threading.Event()
        running.current = event
        set_cancelled(False)
        progress.set((0, 0, "starting"))

        def on_progress(done, total, desc):
            if asked.current != mine:
                event.set()
            progress.set((done, total, desc))

        try:
            return svc.compare_posterior(service(), question, on_progress=on_progress, cancel=event,
                                         on_wait=lambda runs: on_progress(0, 0, f"queued behind {runs:,} runs"))
        except svc.Cancelled:
            if asked.current == mine:
                set_cancelled(True)
            return None
        finally:
            if running.current is event:
                running.current = None

    result = solara.lab.use_task(ask, dependencies=[clicks], raise_error=False)

    with solara.Row():
        solara.InputText("Posterior draws", value=draws, continuous_update=False, classes=["tt-posterior-draws"])
        solara.InputText("Seeds per draw", value=seeds, continuous_update=False, classes=["tt-posterior-seeds"])
        solara.Button("Compare on the posterior", on_click=lambda: set_clicks(clicks + 1),
                      disabled=question is None or result.pending, classes=["tt-posterior-ask"])
    if error:
        solara.Error(error, classes=["tt-error", "tt-posterior-error"])
    elif question is not None:
        runs, _ = service().size(question)
        solara.Text(f"{runs:,} runs (draws x seeds x regimes, twice at equal spend); the dashboard allows "
                    f"{service().max_runs:,}.", classes=["tt-posterior-size"])
    if result.pending:
        done, total, desc = progress.value
        solara.ProgressLinear(100 * done / total if total else True)
        solara.Text(f"running {desc}: {done} of {total} runs" if total else desc or "starting",
                    classes=["tt-progress"])
        solara.Button("Cancel", on_click=cancel, classes=["tt-cancel"])
    elif cancelled:
        solara.Info("Cancelled.", classes=["tt-cancelled"])
    elif result.error:
        solara.Error(f"{type(result.exception).__name__}: {result.exception}", classes=["tt-error"])
    elif result.value is not None:  # read as the Compare page's answers are (the intervals: over draws x seeds)
        with solara.Column(classes=["tt-posterior-answer"]):
            AnswerView(result.value)
