"""The Sweep page: a collected sweep's metric over its axes."""

from __future__ import annotations

from pathlib import Path

import solara

from experiments.dashboard import service as svc
from experiments.dashboard.state import SETTINGS
from experiments.dashboard.ui import table_html
from sim.core.config import ConfigError


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
