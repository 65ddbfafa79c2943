"""The Calibration page: a calibration's posterior and fit."""

from __future__ import annotations

from pathlib import Path

import solara

from experiments.dashboard import service as svc
from experiments.dashboard.state import SETTINGS
from experiments.dashboard.ui import table_html
from sim.core.config import ConfigError


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
