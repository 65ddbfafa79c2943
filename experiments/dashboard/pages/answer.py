"""A comparison's answer as the Compare page shows it: the headline with how to read it, charts, an instrument card
per regime, the long tables folded behind tabs and filters, a glossary, the command line and the downloads.

Every number is written by :mod:`experiments.dashboard.fmt` in the page's money unit, every metric by its
:mod:`sim.analysis.glossary` label (its key in the cell's hover text and a small column: the command line's CSV
column), every money figure with its period and basis. Tables are built from the comparison's long table (numbers,
not the command line's formatted strings) by the pure functions here, and rendered only when their tab is opened.
"""

from __future__ import annotations

import dataclasses

import pandas as pd
import solara
import solara.lab

from experiments.dashboard import fmt
from experiments.dashboard import service as svc
from experiments.dashboard.state import AnswerFigure
from experiments.dashboard.ui import MoneyUnit, SearchText, escape, grid_html
from sim import api
from sim.analysis import glossary
from sim.analysis.stats import BASELINE, COST_ROWS, SIZE_METRICS, TABLE_METRICS, TAIL_METRICS, by_year


# --------------------------------------------------------------------------- how a metric's figure is written
def period_short(e: glossary.Entry, months: int, rate: float) -> str:
    """A table row's unit and period: money's period and basis (the column's title says the money unit):
    ``total over 60 months``, ``present value at 8%``; else the glossary unit: ``count``, ``share``."""
    return e.unit if not e.money else {
        glossary.TOTAL: f"total over {months} months", glossary.AT_END: f"at month {months}",
        glossary.PV: f"present value at {rate:.0%}", glossary.PV_AT_END: f"present value at {rate:.0%}, at the end",
        glossary.PER_CONTRACT: "per contract"}[e.basis]


def cell(e: glossary.Entry, m: float, lo: float, hi: float, unit: str, effect: bool) -> str:
    """``mean [low, high]`` of a metric: a level within its domain, an effect (a difference) on the whole line;
    money in ``unit`` without its sign (the row says it)."""
    low, high = (None, None) if effect else (e.low, e.high)
    return fmt.interval(m, lo, hi, fmt.kind_of(e.unit), unit, low, high, suffix=False)


def raw(key: str, col: str, m: float, lo: float, hi: float) -> str:
    """A cell's hover text: the metric's key and its numbers in full (as table.csv holds them)."""
    return f"{key} {col}: {m!r} [{lo!r}, {hi!r}]"


# --------------------------------------------------------------------------- the headline
def headline_columns(months: int, unit: str, at_spend) -> list[tuple[str, str, str, bool]]:
    """(label, metric, column of the long table, of the table at equal spend) of the headline's columns."""
    u = fmt.unit_name(unit)
    cols = [(f"extra {glossary.label('contracts')}", "contracts", "effect", False),
            (f"extra {glossary.label('successes')}", "successes", "effect", False),
            (f"extra {glossary.label('successes_expected')}", "successes_expected", "effect", False),
            (f"{glossary.label('gov_spend')} ({u}, total over the run's {months} months, nominal)", "gov_spend",
             "mean", False),
            (f"{glossary.label('cost_per_extra_conversion')} ({u})", "cost_per_extra_conversion", "mean", False)]
    if at_spend is not None:
        cols += [(f"extra {glossary.label('successes')} at equal spend", "successes", "effect", True),
                 (f"{glossary.label('cost_per_extra_conversion')} at equal spend ({u})", "cost_per_extra_conversion",
                  "mean", True)]
    return cols


def headline(table: pd.DataFrame, equal: pd.DataFrame | None, regimes, months: int, unit: str = "yuan"):
    """The headline: a row per regime but baseline (in ``regimes``' order), its extra contracts and conversions
    against baseline, its public spend and cost per extra conversion (and both at equal spend, with ``equal``).
    Returns (columns, rows, titles, column titles)."""
    cols = headline_columns(months, unit, equal)
    tables = {False: table.set_index(["regime", "metric"]), True: None if equal is None else
              equal.set_index(["regime", "metric"])}
    rows, titles = [], []
    for regime in regimes:
        if regime == BASELINE:
            continue
        row, tip = [regime], [regime]
        for _, metric, col, eq in cols:
            t = tables[eq]
            if t is None or (regime, metric) not in t.index:
                row.append("-")
                tip.append("")
                continue
            r = t.loc[(regime, metric)]
            lo, hi = ("ci_low", "ci_high") if col == "mean" else ("effect_low", "effect_high")
            m, a, b = float(r[col]), float(r[lo]), float(r[hi])
            row.append(cell(glossary.entry(metric), m, a, b, unit, col == "effect"))
            tip.append(("at equal spend: " if eq else "") + raw(metric, col, m, a, b))
        rows.append(row)
        titles.append(tip)
    header = ["regime"] + [c[0] for c in cols]
    column_titles = ["regime"] + [f"{glossary.entry(m).key}: {glossary.entry(m).meaning}" for _, m, _, _ in cols]
    return header, rows, titles, column_titles


def how_to_read(months: int, rate: float, at_spend, budget, unit: str) -> str:
    """The headline's short guide (Markdown)."""
    text = (f"**How to read this.** Every regime runs on the same seeds as baseline (each seed draws the same firms "
            f"and chance events), so **extra conversions** is the mean of the paired differences against baseline, "
            f"with its 95% interval in brackets; **extra expected conversions** adds the deals still running at the end, each "
            f"at its chance of success (a regime that delays conversions, as a free trial does, may realise fewer "
            f"by the end and still add expected ones). **Public spend** is government's payments to the instruments, the "
            f"total over the run's {months} months in nominal yuan (not discounted). **Cost per extra conversion** = "
            f"the extra public spend / the extra expected conversions (those realised, and the deals running at the "
            f"end at their chance of success), bootstrap 95% interval; `-` where a regime adds no conversions, `∞` "
            f"where the interval is unbounded. Rows: cheapest conversion first. Hover a cell for its metric's key "
            f"and the full numbers; present values use {rate:.0%} a year.")
    if at_spend is not None and budget is not None:
        text += (f" **At equal spend**: every regime under one yearly budget, {at_spend}'s spend per year "
                 f"({fmt.money(budget, unit)} per year), so regimes are compared for the same money.")
    return text


# --------------------------------------------------------------------------- the long tables
def metric_table(table: pd.DataFrame, metrics, regimes, months: int, rate: float, unit: str = "yuan",
                 effects: bool = False, query: str = "", picked=()):
    """A metric per row (its label, unit and period, a cell per regime: mean [95% interval] of the level, or with
    ``effects`` of the paired effect against baseline, the costs per extra conversion as their level), its key last.
    ``query`` keeps the rows whose label or key holds it (case-insensitive); ``picked`` (keys), only those.
    Returns (columns, rows, titles)."""
    shown = [r for r in regimes if not (effects and r == BASELINE)]
    t = table.set_index(["regime", "metric"])
    q = query.strip().lower()
    rows, titles = [], []
    for key in metrics:
        e = glossary.entry(key)
        if picked and key not in picked or q and q not in e.label.lower() and q not in key.lower():
            continue
        row, tip = [e.label, period_short(e, months, rate)], [f"{key}: {e.meaning}", e.period(months, rate)]
        level = not effects or key in COST_ROWS
        cols = ("mean", "ci_low", "ci_high") if level else ("effect", "effect_low", "effect_high")
        for regime in shown:
            if (regime, key) not in t.index:
                row.append("-")
                tip.append("")
                continue
            m, lo, hi = (float(t.at[(regime, key), c]) for c in cols)
            row.append(cell(e, m, lo, hi, unit, not level))
            tip.append(raw(key, cols[0], m, lo, hi))
        rows.append(row + [key])
        titles.append(tip + [""])
    return ["metric", f"unit ({fmt.unit_name(unit)} for money)", *shown, "key"], rows, titles


def who_pays(table: pd.DataFrame, regimes, unit: str = "yuan"):
    """Who pays and who gains: each party (every class of accounts, and the income public universities keep) with what
    it is, and a cell per regime: its change in net position against baseline, present value, mean [95% interval].
    Returns (columns, rows, titles)."""
    from experiments.dashboard.charts.compare import parties

    shown = [r for r in regimes if r != BASELINE]
    t = table.set_index(["regime", "metric"])
    rows, titles = [], []
    for key, name, doc in parties():
        row, tip = [name, doc], [key, doc]
        for regime in shown:
            if (regime, key) not in t.index:
                row.append("-")
                tip.append("")
                continue
            m, lo, hi = (float(t.at[(regime, key), c]) for c in ("effect", "effect_low", "effect_high"))
            row.append(fmt.interval(m, lo, hi, "money", unit, suffix=False))
            tip.append(raw(key, "effect", m, lo, hi))
        rows.append(row)
        titles.append(tip)
    return ["party", "who it is", *shown], rows, titles


def spread(table: pd.DataFrame, regimes, months: int, rate: float, unit: str = "yuan"):
    """The spread across replicates of :data:`TAIL_METRICS`: '5th / 50th / 95th percentile' per regime."""
    t = table.set_index(["regime", "metric"])
    rows = []
    for key in TAIL_METRICS:
        e = glossary.entry(key)
        kind = fmt.kind_of(e)

        def write(x, kind=kind):
            return fmt.value(x, kind, unit, suffix=False)
        row = [e.label, period_short(e, months, rate)]
        for regime in regimes:
            row.append(" / ".join(write(float(t.at[(regime, key), c])) for c in ("p5", "p50", "p95"))
                       if (regime, key) in t.index else "-")
        rows.append(row + [key])
    return ["metric", f"unit ({fmt.unit_name(unit)} for money)", *regimes, "key"], rows


def conversions_by_year(series: pd.DataFrame):
    """Conversions in each year of the run (months 0-11: year 1), mean over the replicates, a column per regime."""
    df = by_year(series)
    return ["year", *df.columns], [[int(y), *(fmt.number(float(v)) for v in row)] for y, row in zip(df.index,
                                                                                                   df.to_numpy())]


# --------------------------------------------------------------------------- the instruments
def _value(f: dataclasses.Field, v) -> str:
    """A parameter's value: money (a field bounded by the schema's MONEY_MAX) in yuan, a share as a percentage."""
    from sim.core.schema import MONEY_MAX

    if isinstance(v, bool) or v is None or isinstance(v, str):
        return "null" if v is None else str(v)
    meta = f.metadata
    if isinstance(v, (int, float)):
        if meta.get("le") == MONEY_MAX:
            return fmt.money(float(v))
        if meta.get("ge") == 0.0 and meta.get("le") == 1.0:
            return fmt.share(float(v))
        return fmt.number(float(v))
    return str(v)


def _md(text: str) -> str:
    return " ".join(text.replace("``", "`").split())


def instrument_card(module, cfg) -> dict:
    """What an instrument is, from its module: its rule (the docstring's first paragraph, and the next one), its
    parameters (``<NAME>.<field>``, the value in ``cfg``, the field's doc with its source) and what it pays whom (the
    ledger's kinds it owns: payer -> payee, doc)."""
    from sim.core import ledger

    paragraphs = [p for p in (module.__doc__ or "").strip().split("\n\n") if p.strip()]
    section = getattr(cfg, module.NAME)
    params = [(f"{module.NAME}.{f.name}", _value(f, getattr(section, f.name)), f.metadata.get("doc", ""))
              for f in dataclasses.fields(module.Params)]
    if hasattr(module, "SPEND"):
        budget = cfg.government.annual_budget
        params.append(("government.annual_budget", "none" if budget is None else f"{fmt.money(budget)} per year",
                       "cap on government's payments to all instruments in each budget year"))
    payments = [(ledger.ACCOUNT_CLASSES[k.payer].plural, ledger.ACCOUNT_CLASSES[k.payee].plural, k.doc, k.name)
                for k in ledger.KINDS if k.owner == module.NAME]
    return {"name": module.NAME, "rule": _md(paragraphs[0]) if paragraphs else "",
            "more": _md(paragraphs[1]) if len(paragraphs) > 1 else "", "params": params, "payments": payments}


def regime_cards(cfg, regimes) -> list[tuple[str, list[dict]]]:
    """(regime, its instruments' cards) of each regime compared but baseline, from the registry."""
    from sim.instruments import BY_NAME

    return [(name, [instrument_card(BY_NAME[i], cfg) for i in api.regime(name).instruments])
            for name in regimes if name != BASELINE]


# --------------------------------------------------------------------------- the page
@solara.component
def Filtered(name: str, build, metrics):
    """A long table behind a search box and a metric picker: ``build(query, picked)`` -> (columns, rows, titles)."""
    query, set_query = solara.use_state("")
    picked, set_picked = solara.use_state([])
    labels = {glossary.label(k): k for k in metrics}
    with solara.Row(style={"align-items": "center", "flex-wrap": "wrap"}):
        SearchText("search metrics (label or key)", query, set_query, classes=[f"tt-search-{name}"])
        solara.SelectMultiple("show only these metrics", values=[glossary.label(k) for k in picked],
                              all_values=list(labels), on_value=lambda v: set_picked([labels[x] for x in v]),
                              classes=[f"tt-pick-{name}"])
    columns, rows, titles = build(query, tuple(picked))
    solara.Text(f"{len(rows)} of {len(metrics)} metrics", style={"font-size": "12px", "color": "#666"})
    grid_html(name, columns, rows, titles)


@solara.component
def Card(regime: str, cards: list[dict]):
    with solara.Column(classes=["tt-card", f"tt-card-{regime}"]):
        names = ", ".join(c["name"] for c in cards) or "no instrument"
        solara.Markdown(f"#### {regime}: switches on {names}")
        for c in cards:
            solara.Markdown(f"**{c['name']}**: {c['rule']}" + (f"  \n{c['more']}" if c["more"] else ""))
            grid_html(f"params-{c['name']}", ["parameter", "value", "meaning (source)"],
                      [list(p) for p in c["params"]])
            if c["payments"]:
                grid_html(f"payments-{c['name']}", ["payer", "payee", "what", "key"], [list(p) for p in c["payments"]])
            else:
                solara.Text("makes no payment of its own")


@solara.component
def Tables(comparison: api.Comparison, regimes, months: int, rate: float, unit: str, prefix: str):
    """The comparison's tables, each in a tab rendered only when opened; classes ``tt-<prefix>table-<k>`` in the
    order of the command line's report (:func:`experiments.cli.report_tables`)."""
    table, paired = comparison.table, BASELINE in regimes and len(regimes) > 1
    tabs = [("Outcomes per run", lambda k: Filtered(f"{prefix}table-{k}", lambda q, p: metric_table(
        table, TABLE_METRICS, regimes, months, rate, unit, False, q, p), TABLE_METRICS))]
    if paired:
        tabs += [("Effect against baseline", lambda k: Filtered(f"{prefix}table-{k}", lambda q, p: metric_table(
                     table, TABLE_METRICS + COST_ROWS, regimes, months, rate, unit, True, q, p),
                     TABLE_METRICS + COST_ROWS)),
                 ("Who pays and who gains", lambda k: grid_html(f"{prefix}table-{k}", *who_pays(table, regimes, unit))),
                 ("By firm size", lambda k: Filtered(f"{prefix}table-{k}", lambda q, p: metric_table(
                     table, SIZE_METRICS, regimes, months, rate, unit, True, q, p), SIZE_METRICS))]
    tabs += [("Spread across seeds", lambda k: grid_html(f"{prefix}table-{k}", *spread(table, regimes, months, rate,
                                                                                        unit))),
             ("Conversions by year", lambda k: grid_html(f"{prefix}table-{k}", *conversions_by_year(
                 comparison.series)))]
    notes = {"Outcomes per run": f"Mean [95% interval] over {api.replicates_text(comparison.config)}; money in "
                                 f"{fmt.unit_name(unit)}, each row says its period.",
             "Effect against baseline": "Paired by seed: mean difference against baseline [95% interval] (costs per "
                                        "extra conversion: their level, bootstrap interval).",
             "Who pays and who gains": f"Change in each party's net position (payments in less out) against "
                                       f"baseline, present value at month 0 at {rate:.0%} a year, "
                                       f"{fmt.unit_name(unit)}; they add up to zero. The market is the outside "
                                       "economy: it pays firms the value of successful implementations and receives "
                                       "their costs.",
             "By firm size": "Effect against baseline on SMEs and on large firms.",
             "Spread across seeds": "5th / 50th / 95th percentile across the replicates.",
             "Conversions by year": "Mean conversions in each year of the run (months 0-11 of the series: year 1)."}
    with solara.lab.Tabs(lazy=True):
        for k, (label, make) in enumerate(tabs):
            with solara.lab.Tab(label):
                solara.Text(notes[label], style={"font-size": "13px"})
                make(k)


@solara.component
def Glossary():
    query, set_query = solara.use_state("")
    df = glossary.frame()
    q = query.strip().lower()
    if q:
        df = df[df["metric"].str.lower().str.contains(q, regex=False) | df["key"].str.contains(q, regex=False)
                | df["meaning"].str.lower().str.contains(q, regex=False)]
    SearchText("search the glossary", query, set_query, classes=["tt-search-glossary"])
    solara.Text("Money: 'total' sums the run's months in nominal yuan; 'present value' discounts each payment to "
                "month 0 at the scenario's rate; 'at the end' is a stock at the last month.",
                style={"font-size": "13px"})
    grid_html("glossary", list(df.columns), df.to_numpy().tolist())


@solara.component
def Charts(table: pd.DataFrame, order, unit: str, rate: float, paired: bool):
    """The headline and who-pays charts (Plotly: hover values, zoom), made once per answer and unit."""
    from experiments.dashboard.charts.compare import headline_figure, who_pays_figure

    fig = solara.use_memo(lambda: headline_figure(table, order, unit), dependencies=[id(table), unit])
    who = solara.use_memo(lambda: who_pays_figure(
        table, order, unit, rate, title="Who pays and who gains: change in net position against baseline "
        "(present value)") if paired else None, dependencies=[id(table), unit, paired])
    solara.FigurePlotly(fig)
    if who is not None:
        solara.FigurePlotly(who)


@solara.component
def AnswerView(answer: svc.Answer):
    unit, set_unit = solara.use_state("yuan")
    cfg = answer.config
    months, rate = cfg.scenario.months, cfg.scenario.discount_rate
    regimes = list(dict.fromkeys(answer.comparison.table["regime"]))
    order = list(answer.headline["regime"]) if len(answer.headline) else []   # cheapest conversion first
    budget = answer.equal.budget if answer.equal is not None else None
    solara.Text(f"{cfg.scenario.name}: {len(cfg.regimes)} regimes x {api.replicates_text(cfg)}, engine {cfg.engine}; "
                f"seeds from {cfg.seed}; {months} months", classes=["tt-answer"])
    MoneyUnit(unit, set_unit)
    note = (f"; at equal spend: every regime capped at {answer.at_spend}'s spend per year, "
            f"{fmt.money(budget, unit)} per year" if budget is not None else "")
    solara.Markdown(f"#### Each regime against baseline, mean [95% interval]{note}")
    if order:
        grid_html("headline", *headline(answer.comparison.table, None if answer.equal is None else answer.equal.table,
                                        order, months, unit))
        solara.HTML(tag="div", unsafe_innerHTML=_html(how_to_read(months, rate, answer.at_spend, budget, unit)),
                    classes=["tt-howto"])
    else:
        solara.Text("(no regime besides baseline)")
    if answer.note:
        solara.Info(answer.note)
    with solara.lab.Tabs(lazy=True):
        if order:
            with solara.lab.Tab("Charts"):
                Charts(answer.comparison.table, order, unit, rate, BASELINE in regimes)
            with solara.lab.Tab("Instruments"):
                for regime, cards in regime_cards(cfg, order):
                    Card(regime, cards)
        with solara.lab.Tab("Tables"):
            Tables(answer.comparison, regimes, months, rate, unit, "")
        if answer.equal is not None:
            with solara.lab.Tab("Tables at equal spend"):
                solara.Text(f"Every regime under one yearly budget: {answer.at_spend}'s spend per year, "
                            f"{fmt.money(budget, unit)} per year.")
                Tables(answer.equal, regimes, months, rate, unit, "equal-")
        with solara.lab.Tab("Glossary"):
            Glossary()
        with solara.lab.Tab("Figure (PNG)"):
            AnswerFigure(answer)  # drawn when the tab is opened
    solara.Markdown("#### Reproduce on the command line")
    solara.HTML(tag="div", unsafe_innerHTML=escape(answer.command), classes=["tt-command"])
    with solara.Row(classes=["tt-downloads"], style={"flex-wrap": "wrap"}):
        for name, make in answer.files().items():
            solara.FileDownload(make, filename=name, label=name,
                                mime_type="text/csv" if name.endswith(".csv") else "application/octet-stream")


def _html(markdown: str) -> str:
    """The few Markdown marks of :func:`how_to_read` as HTML (escaped first)."""
    import re

    text = escape(markdown)
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)
