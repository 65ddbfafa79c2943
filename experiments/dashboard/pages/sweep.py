"""The Sweep page: a collected sweep's metric over its axes."""

from __future__ import annotations

from pathlib import Path

import solara

from experiments.dashboard import service as svc
from experiments.dashboard.state import SETTINGS
from experiments.dashboard.ui import MoneyUnit, SearchText, table_html
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
    MetricView(df, axes, metrics, metric)


@solara.component
def MetricView(df, axes, metrics, metric):
    """A metric of the sweep, picked from a searchable list (names and what they measure): its lines, its heatmap,
    and its mean at each point."""
    from experiments.dashboard.charts import runs as charts

    search = solara.use_reactive("")
    unit = solara.use_reactive("yuan")
    found = charts.filter_metrics(metrics, search.value)
    solara.Markdown(f"{len(df)} runs; swept: {', '.join(f'`{a}`' for a in axes) or 'nothing'}")
    with solara.Row():
        SearchText(f"Find a metric ({len(metrics)}: words of its name or of what it measures)", search.value,
                   search.set, classes=["tt-metric-search"])
        MoneyUnit(unit.value, unit.set)
    if not found:
        solara.Warning(f"No metric matches {search.value!r}: {len(metrics)} in all.")
        return
    choices = found if metric.value in found or metric.value not in metrics else [metric.value, *found]
    labels = {charts.metric_label(m): m for m in choices}
    if metric.value not in choices:
        metric.set(choices[0])
        return
    solara.Select(f"Metric ({len(found)} of {len(metrics)} shown)", values=list(labels),
                  value=charts.metric_label(metric.value), on_value=lambda label: metric.set(labels[label]),
                  classes=["tt-metric"])
    name = metric.value
    for fig in (charts.sweep_lines(df, axes, name, unit.value), charts.sweep_heatmap(df, axes, name, unit.value)):
        if fig is not None:
            solara.FigurePlotly(fig)
    means = charts.sweep_means(df, axes, name)
    solara.Markdown(f"#### {charts.metric_label(name)}: at each point of the sweep")
    table_html(charts.sweep_table(means, name, unit.value), "sweep", index=False)
    solara.FileDownload(lambda: means.to_csv(index=False).encode(), filename=f"sweep_{name}.csv",
                        label=f"sweep_{name}.csv")
