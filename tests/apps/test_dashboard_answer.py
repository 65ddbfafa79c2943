"""The Compare page's answer without a browser (experiments/dashboard/pages/answer.py, charts/compare.py): the charts
show the table's numbers, the tables write them by fmt with the glossary's labels, the cards come from the registry."""

import dataclasses
import math
import re

import numpy as np
import pandas as pd
import pytest

from experiments.dashboard import fmt, ui
from experiments.dashboard.charts.compare import headline_figure, parties, who_pays_figure
from experiments.dashboard.pages import answer as A
from sim import api
from sim.core import ledger
from sim.instruments import INSTRUMENTS, REGISTRY

REGIMES = ["baseline", "cheap", "dear"]   # a hand-made comparison: every number known


def _row(regime, metric, mean, lo, hi, effect=np.nan, elo=np.nan, ehi=np.nan):
    return {"regime": regime, "metric": metric, "mean": mean, "ci_low": lo, "ci_high": hi, "effect": effect,
            "effect_low": elo, "effect_high": ehi, "seeds": 5, "p5": lo, "p50": mean, "p95": hi}


@pytest.fixture
def table():
    rows = [_row("baseline", "successes", 10.0, 8.0, 12.0), _row("baseline", "gov_spend", 0.0, 0.0, 0.0),
            _row("cheap", "successes", 14.0, 11.0, 17.0, 4.0, 1.5, 6.5),
            _row("dear", "successes", 11.0, 9.0, 13.0, 1.0, -0.5, 2.5),
            _row("cheap", "gov_spend", 2_000_000.0, -100_000.0, 4_100_000.0, 2_000_000.0, -100_000.0, 4_100_000.0),
            _row("dear", "gov_spend", 9_000_000.0, 7_000_000.0, 11_000_000.0, 9e6, 7e6, 11e6),
            _row("cheap", "successes_expected", 15.0, 12.0, 18.0, 5.0, 2.0, 8.0),
            _row("dear", "successes_expected", 12.0, 10.0, 14.0, 2.0, 0.5, 3.5),
            _row("cheap", "contracts", 30.0, 25.0, 35.0, 3.0, -1.0, 7.0),
            _row("dear", "contracts", 28.0, 25.0, 31.0, 1.0, 0.0, 2.0),
            _row("cheap", "cost_per_extra_conversion", 500_000.0, 300_000.0, 900_000.0),
            _row("dear", "cost_per_extra_conversion", 9_000_000.0, 4_000_000.0, math.inf),
            _row("cheap", "conversion_rate", 0.5, 0.2, 1.3, 0.1, -0.05, 0.25)]
    for k, (key, _, _) in enumerate(parties()):
        rows += [_row("baseline", key, 0.0, 0.0, 0.0), _row("cheap", key, 0.0, 0.0, 0.0, -1e6 * k, -1e6 * k - 5e5, 0.0),
                 _row("dear", key, 0.0, 0.0, 0.0, 2e5 * k, 1e5 * k, 3e5 * k)]
    return pd.DataFrame(rows)


def _at(table, regime, metric, cols):
    r = table[(table.regime == regime) & (table.metric == metric)].iloc[0]
    return [float(r[c]) for c in cols]


EFFECT, LEVEL = ("effect", "effect_low", "effect_high"), ("mean", "ci_low", "ci_high")


def test_the_headline_chart_shows_each_regimes_effect_and_cost_with_their_intervals(table):
    fig = headline_figure(table, REGIMES, unit="wan")
    conv, cost = fig.data
    assert list(conv.y) == list(cost.y) == ["cheap", "dear"]   # baseline is what the others are measured against
    assert list(conv.x) == [4.0, 1.0]
    assert list(conv.error_x.array) == [2.5, 1.5] and list(conv.error_x.arrayminus) == [2.5, 1.5]
    assert list(cost.x) == [50.0, 900.0]                       # 万 yuan: yuan / 10^4
    assert cost.error_x.array[0] == 40.0 and math.isnan(cost.error_x.array[1])  # unbounded: no bar, said in hover
    assert list(cost.error_x.arrayminus) == [20.0, 500.0]
    assert list(cost.customdata) == ["50 [30, 90] 万", "900 [400, ∞] 万"]
    assert list(conv.customdata) == ["4 [1.5, 6.5]", "1 [-0.5, 2.5]"]   # an effect may be negative


def test_the_who_pays_chart_shows_each_partys_change_explained(table):
    fig = who_pays_figure(table, REGIMES, unit="yuan", discount_rate=0.08)
    rows = parties()
    assert [t.name for t in fig.data] == ["cheap", "dear"]
    assert list(fig.data[0].y) == [label for _, label, _ in rows]
    assert len(rows) == len(ledger.ACCOUNT_CLASSES) + 1
    assert list(fig.data[0].x) == [-1e6 * k for k in range(len(rows))]
    assert list(fig.data[1].x) == [2e5 * k for k in range(len(rows))]
    assert list(fig.data[1].error_x.arrayminus) == [1e5 * k for k in range(len(rows))]
    market = [label for _, label, _ in rows].index("market")
    assert "the outside economy" in fig.data[0].customdata[market]
    assert "present value" in fig.layout.xaxis.title.text and "8% a year" in fig.layout.xaxis.title.text
    assert list(who_pays_figure(table, REGIMES, unit="yi").data[1].x) == [2e5 * k / 1e8 for k in range(len(rows))]


def test_the_headline_writes_the_tables_numbers_by_fmt_with_period_and_domain(table):
    columns, rows, titles, _ = A.headline(table, None, ["cheap", "dear"], 60, "wan")
    assert columns == ["regime", "extra contracts signed", "extra conversions", "extra expected conversions",
                       "public spend (万 yuan, total over the run's 60 months, nominal)",
                       "cost per extra conversion (万 yuan)"]
    assert rows[0] == ["cheap", "3 [-1, 7]", "4 [1.5, 6.5]", "5 [2, 8]", "200 [0, 410]", "50 [30, 90]"]  # spend >= 0
    assert rows[1][5] == "900 [400, ∞]"
    # the hover text holds the numbers in full: exactly the table's
    for regime, tips in zip(["cheap", "dear"], titles):
        for (_, metric, col, _), tip in zip(A.headline_columns(60, "wan", None), tips[1:]):
            key, which, m, lo, hi = re.fullmatch(r"(\w+) (\w+): (\S+) \[(\S+), (\S+)\]", tip).groups()
            assert (key, which) == (metric, col)
            assert [float(x) for x in (m, lo, hi)] == _at(table, regime, metric, LEVEL if col == "mean" else EFFECT)


def test_a_long_table_is_filtered_by_search_and_by_picked_metrics(table):
    metrics = ("successes", "gov_spend", "conversion_rate", "contracts")
    columns, rows, _ = A.metric_table(table, metrics, REGIMES, 60, 0.08, "yuan", effects=False)
    assert columns == ["metric", "unit (yuan for money)", "baseline", "cheap", "dear", "key"]
    assert [r[-1] for r in rows] == list(metrics)
    assert rows[1][:4] == ["public spend", "total over 60 months", "0", "2,000,000 [0, 4,100,000]"]  # 0: not 0 [0, 0]
    assert rows[2][3] == "50% [20%, 100%]"   # a share within [0, 1]
    effects = A.metric_table(table, metrics, REGIMES, 60, 0.08, "yuan", effects=True)
    assert effects[0][2:5] == ["cheap", "dear", "key"] and effects[1][2][2] == "10% [-5%, 25%]"
    assert [r[-1] for r in A.metric_table(table, metrics, REGIMES, 60, 0.08, query="CONVER")[1]] == [
        "successes", "conversion_rate"]   # label "conversions" or key
    assert [r[-1] for r in A.metric_table(table, metrics, REGIMES, 60, 0.08, picked=("contracts",))[1]] == [
        "contracts"]


def test_who_pays_table_and_spread_in_the_pages_unit(table):
    columns, rows, _ = A.who_pays(table, REGIMES, "wan")
    assert columns == ["party", "who it is", "cheap", "dear"]
    assert rows[1][2:] == ["-100 [-150, 0]", "20 [10, 30]"]  # 10 万 and 100 万 alike: no trailing zeros
    columns, rows = A.spread(table, REGIMES, 60, 0.08, "yuan")
    spend = next(r for r in rows if r[-1] == "gov_spend")
    assert spend[3] == "-100,000 / 2,000,000 / 4,100,000"
    spend = next(r for r in A.spread(table, REGIMES, 60, 0.08, "wan")[1] if r[-1] == "gov_spend")
    assert spend[3] == "-10 / 200 / 410"  # fmt.value in the page's unit, without its sign (the column says it)


def test_the_years_note_counts_months_as_the_series_does():
    import inspect

    from sim.analysis.stats import by_year

    series = pd.DataFrame({"regime": "baseline", "seed": 0, "month": [0, 11, 12], "successes": [1, 2, 4]})
    assert by_year(series)["baseline"].to_dict() == {1: 3.0, 2: 4.0}  # months 0-11: year 1
    assert "(months 0-11 of the series: year 1)" in inspect.getsource(A.Tables)


def test_an_instrument_card_is_built_from_its_module_for_every_registered_instrument():
    cfg = api.compose()
    for module in INSTRUMENTS:
        card = A.instrument_card(module, cfg)
        fields = dataclasses.fields(module.Params)
        assert [p[0] for p in card["params"]][:len(fields)] == [f"{module.NAME}.{f.name}" for f in fields]
        assert [p[2] for p in card["params"]][:len(fields)] == [f.metadata["doc"] for f in fields]
        assert ("government.annual_budget" in [p[0] for p in card["params"]]) == hasattr(module, "SPEND")
        assert card["payments"] == [(ledger.ACCOUNT_CLASSES[k.payer].plural, ledger.ACCOUNT_CLASSES[k.payee].plural,
                                     k.doc, k.name) for k in ledger.KINDS if k.owner == module.NAME]
        assert card["rule"] == " ".join(module.__doc__.strip().split("\n\n")[0].replace("``", "`").split())
    card = A.instrument_card(next(m for m in INSTRUMENTS if m.NAME == "broker_reward"), cfg)
    assert card["params"][:2] == [("broker_reward.rate", "1.5%", cfg.broker_reward.__dataclass_fields__["rate"]
                                   .metadata["doc"]),
                                  ("broker_reward.cap", "300,000 yuan", "reward cap per project, yuan (Zhenhai: 300,000)")]
    cards = A.regime_cards(cfg, ["baseline", "broker_reward", "free_trial+vouchers", "combined"])
    assert [(r, [c["name"] for c in cs]) for r, cs in cards] == [
        ("broker_reward", ["broker_reward"]), ("free_trial+vouchers", ["free_trial", "vouchers"]),
        ("combined", list(REGISTRY))]


def test_intervals_without_their_sign_and_unit_names():
    assert fmt.interval(12_500.0, -1.0, 30_000.0, "money", "wan", low=0, suffix=False) == "1.25 [0, 3]"
    assert fmt.interval(12_500.0, 0.0, 30_000.0, "money", "wan") == "1.25 [0, 3] 万"
    assert fmt.interval(0.0, 0.0, 0.0, "money") == "0" and fmt.interval(0.0, -2.0, 0.0, "number", low=0) == "0"
    assert [fmt.unit_name(u) for u in ("yuan", "wan", "yi")] == ["yuan", "万 yuan", "亿 yuan"]
    assert [fmt.kind_of(u) for u in ("yuan", "share", "count", "months")] == ["money", "share", "number", "number"]


def test_a_grid_escapes_its_cells_and_keeps_their_hover_text():
    html = ui.grid(["a", "b"], [["x", "1 [0, 2]"]], titles=[["k", "<raw>"]])
    assert '<td title="&lt;raw&gt;">1 [0, 2]</td>' in html and "<thead><tr><th>a</th>" in html
