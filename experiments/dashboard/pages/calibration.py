"""The Calibration page: a calibration's posterior and fit, and the regimes compared on its posterior."""

from __future__ import annotations

from pathlib import Path

import solara
import solara.lab

from experiments.dashboard import service as svc
from experiments.dashboard.state import SETTINGS, service, use_question
from experiments.dashboard.pages.answer import AnswerView
from experiments.dashboard.ui import table_html
from sim.core.config import ConfigError

# columns a table's numbers are read from: a value there that is not a number is refused (svc.read_table)
NUMERIC = {"posterior_summary.csv": ("low", "high", "median", "mean", "q05", "q95", "shrinkage"), "fit.csv": ()}
NUMERIC_POSTERIOR = ("weight",)
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
    tables = {}
    for name, names in (("posterior_summary.csv", charts.SUMMARY_COLUMNS), ("fit.csv", charts.FIT_COLUMNS)):
        if readable(name):
            try:  # a malformed file: one line on the page, not a traceback
                tables[name] = svc.read_table(folder, name, numeric=NUMERIC[name])
            except ConfigError as e:
                solara.Error(f"{e}", classes=["tt-error"])
                continue
            solara.Markdown(f"#### {TITLES[name]}")
            table_html(charts.readable(tables[name], names), name.split(".")[0].replace("_", "-"), index=False)
    try:
        post = svc.read_table(folder, "posterior.csv", numeric=tuple(NUMERIC_POSTERIOR))
    except ConfigError as e:
        solara.Error(f"{e}", classes=["tt-error"])
        post = None
    if post is not None and len(post) and "weight" in post and len(post.columns) > 1:
        if all(pd.api.types.is_numeric_dtype(post[c]) for c in post.columns):
            with solara.Div(classes=["tt-corner", "tt-scroll"]):
                solara.FigurePlotly(charts.corner_figure(post, tables.get("posterior_summary.csv")))
        else:
            solara.Error(f"posterior.csv in {str(folder)!r}: a column that is not numbers", classes=["tt-error"])
    for name in ("fit.png", "screen.png"):
        if readable(name):
            solara.Image((folder / name).read_bytes(), format="png", width="65%")
    PosteriorComparison(folder, readable("posterior.yaml"))


# seeds per posterior draw the page starts from: the draws carry most of the spread (the parameters' uncertainty), and
# the dashboard's own seeds (configs/dashboard.yaml) times the draws would pass its run limit
POSTERIOR_SEEDS = 2


def posterior_run(question, **kw):
    """:func:`svc.compare_posterior` on the dashboard's service (:func:`use_question`'s ``run``)."""
    return svc.compare_posterior(service(), list(question), **kw)


@solara.component
def PosteriorComparison(folder: Path, has_yaml: bool):
    """The main job's comparison of regimes on this posterior (``python -m experiments.run posterior=<folder>``),
    asked from the page on a click: through the service's one queue (:func:`use_question`), with its limits and a
    Cancel; editing the fields while it runs does not give it up, a newer click does."""
    base = service().config([])
    draws = solara.use_reactive(str(base.posterior_draws))  # the config's (configs/config.yaml: posterior_draws)
    seeds = solara.use_reactive(str(POSTERIOR_SEEDS))
    asked, set_asked = solara.use_state((None, 0))  # (the question as it was clicked, clicks)

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
        question, error = None, f"config error: {e}"

    result, (done, total, desc), cancel, cancelled = use_question(
        posterior_run, None if asked[0] is None else list(asked[0]), enabled=asked[0] is not None, nonce=asked[1])

    with solara.Row():
        solara.InputText("Posterior draws", value=draws, continuous_update=False, classes=["tt-posterior-draws"])
        solara.InputText("Seeds per draw", value=seeds, continuous_update=False, classes=["tt-posterior-seeds"])
        solara.Button("Compare on the posterior", on_click=lambda: set_asked((tuple(question), asked[1] + 1)),
                      disabled=question is None or result.pending, classes=["tt-posterior-ask"])
    if error:
        solara.Error(error, classes=["tt-error", "tt-posterior-error"])
    elif question is not None:
        runs, _ = service().size(question)
        solara.Text(f"{runs:,} runs (draws x seeds x regimes, twice at equal spend); the dashboard allows "
                    f"{service().max_runs:,}.", classes=["tt-posterior-size"])
    if result.pending:
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
