"""The One run, Sweep and Calibration pages' numbers, without a browser: the Mesa run a month at a time against the
series a run writes, its money flows against the ledger, a posterior question against the command line."""

from __future__ import annotations

import io
import os
import shlex
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from experiments.dashboard import fmt
from experiments.dashboard import service as svc
from experiments.dashboard.charts import runs as charts
from experiments.dashboard.pages.one_run import filter_firms, month_text
from sim import api
from sim.core import ledger
from sim.core.config import ConfigError

from ..conftest import SMALL
from ..runs.test_posterior import write_posterior

ROOT = Path(__file__).resolve().parents[2]
RUN = [*SMALL, "scenario.months=12", "regime=combined", "engine=mesa"]


@pytest.fixture(scope="module")
def stepped():
    """A Mesa run stepped 4 months by the page's Stepper, and the whole run as the command line's series."""
    cfg = api.compose(*RUN)
    s = svc.Stepper(cfg, 3)
    for _ in range(4):
        s.step()
    whole = api.series_frame([api.simulate(cfg, 3)])
    return s, whole


def test_the_pages_months_are_the_series_months(stepped):
    s, whole = stepped
    shown = s.series()
    expected = whole.drop(columns=["regime", "seed"]).iloc[:4].reset_index(drop=True)
    pd.testing.assert_frame_equal(shown, expected, check_exact=True)
    assert s.last_month == shown["month"].iloc[-1] == 3
    assert month_text(s) == "month 3 of 0–11"
    fresh = svc.Stepper(api.compose(*RUN), 3)
    assert month_text(fresh) == "month – of 0–11" and len(fresh.series()) == 0


def test_money_flows_are_the_ledgers_kinds_and_move_each_classs_cash(stepped):
    s, _ = stepped
    flows, series = s.flows(), s.series()
    assert len(flows) == 4 * len(ledger.KINDS)
    for k in ledger.KINDS:  # each kind's amounts are its series column, month by month
        mine = flows[flows["kind"] == k.name]
        assert list(mine["month"]) == [0, 1, 2, 3]
        assert (mine["amount"].to_numpy() == series[k.name].to_numpy()).all()
        assert set(mine["payer"]) == {ledger.ACCOUNT_CLASSES[k.payer].plural}
    # a class's cash at the end of month 3 less month 0's: what flowed in less what flowed out in months 1..3
    later = flows[flows["month"] >= 1]
    for c in ledger.ACCOUNT_CLASSES:
        net = (later.loc[later["payee"] == c.plural, "amount"].sum()
               - later.loc[later["payer"] == c.plural, "amount"].sum())
        cash = series[f"cash_{c.plural}"]
        assert cash.iloc[3] - cash.iloc[0] == net, c.plural
    # the page's payer -> payee table: month 3's and months 0..3's sums, written by fmt.money
    table = charts.flow_table(flows, 3, "wan")
    for row in table.itertuples(index=False):
        pair = flows[(flows["payer"] == row.payer) & (flows["payee"] == row.payee)]
        assert row[3] == fmt.money(pair["amount"].sum(), "wan")
        assert row[2] == fmt.money(pair.loc[pair["month"] == 3, "amount"].sum(), "wan")
    assert len(table) == (flows.groupby(["payer", "payee"])["amount"].sum() > 0).sum()
    fig = charts.flows_figure(flows, 12, "yuan")  # the bars are the amounts: each kind's trace sums to its total
    from sim.analysis import glossary

    assert len({t.marker.color for t in fig.data}) == len(fig.data)  # no two kinds alike
    for trace in fig.data:
        assert trace.name == glossary.label(trace.meta)  # named as every page names it
        assert sum(trace.y) == flows.loc[flows["kind"] == trace.meta, "amount"].sum()
        assert trace.customdata[0][0] == fmt.money(trace.y[0])
    wan = charts.flows_figure(flows, 12, "wan")  # plotted in the unit its hover text and axis title say
    assert wan.layout.yaxis.title.text == "money moved that month (万 yuan)"
    assert list(wan.data[0].y) == pytest.approx([y / 1e4 for y in fig.data[0].y])


def test_agents_and_firms_are_the_models(stepped):
    s, _ = stepped
    cfg, m, series = s.cfg, s.model, s.series()
    agents = s.agents().set_index("agents")
    assert agents.loc["firms", "count"] == cfg.scenario.firms.n == len(m.firms)
    assert agents.loc["universities", "count"] == cfg.scenario.universities.n
    assert agents.loc["brokers", "count"] == cfg.scenario.brokers.max
    assert agents.loc["brokers", "of which"] == series["brokers_active"].iloc[-1]
    assert agents.loc["achievements", "of which"] == series["shelved"].iloc[-1]
    assert agents.loc["insurers", "count"] == len(m.insurers) and agents.loc["lenders", "count"] == len(m.lenders)
    firms = s.firms()
    assert len(firms) == cfg.scenario.firms.n
    assert firms["cash"].sum() == series["cash_firms"].iloc[-1]
    assert list(firms["cash"].head(5)) == [m.firms[i].cash for i in range(5)]
    assert firms["belief in success"].iloc[7] == m.firms[7].belief
    slots = firms[[c for c in firms.columns if c.startswith("projects ")]].sum(axis=1)
    assert (slots == [len(f.projects) for f in m.firms]).all()
    # the page's filters
    sme, _ = filter_firms(firms, "SME")
    assert len(sme) == agents.loc["firms", "of which"]
    one, note = filter_firms(firms, sector="1", sort="cash", descending=True)
    assert note == "" and set(one["sector"]) == {1} and one["cash"].is_monotonic_decreasing
    busy, _ = filter_firms(firms, busy=True)
    assert len(busy) == (firms["projects idle"] < slots).sum() > 0
    _, note = filter_firms(firms, sector="x")
    assert note.startswith("sector = 'x': a whole number")


def test_metrics_are_found_by_name_or_by_what_they_measure():
    from sim.core.results import METRICS

    metrics = list(METRICS)
    assert charts.filter_metrics(metrics, "") == metrics
    found = charts.filter_metrics(metrics, "conversions")
    assert "successes" in found and "needs_raised" not in found  # successes: "... succeeded (conversions)"
    assert charts.filter_metrics(metrics, "GOV_SPEND") == [m for m in metrics if "gov_spend" in m]
    from sim.analysis import glossary

    assert charts.metric_label("successes") == glossary.label("successes") == "conversions"  # one name everywhere
    assert charts.metric_label("licence_payments_pv").endswith("(present value)")
    assert charts.is_money("gov_spend") and not charts.is_money("successes") and charts.is_money("cost_per_extra_conversion")


def test_the_sweep_charts_show_the_tables_means():
    df = pd.DataFrame({"run_id": range(8), "seed": [0, 1] * 4, "regime.name": "broker_reward",
                       "broker_reward.rate": [0.005] * 4 + [0.015] * 4,
                       "broker_reward.cap": [1e5, 1e5, 3e5, 3e5] * 2, "gov_spend": np.arange(8) * 1e6 + 0.5})
    axes = ["broker_reward.rate", "broker_reward.cap"]
    means = charts.sweep_means(df, axes, "gov_spend")
    heat = charts.sweep_heatmap(df, axes, "gov_spend").data[0]
    assert heat.z[0][1] == means.set_index(axes).loc[(0.015, 1e5), "mean"] == 4.5e6 + 0.5  # y: cap, x: rate
    assert heat.text[0][1] == fmt.money(4.5e6 + 0.5) == "4,500,000 yuan"
    assert list(heat.x) == ["0.005", "0.015"] and list(heat.y) == ["100,000", "300,000"]  # swept values exactly
    layout = charts.sweep_heatmap(df, axes, "gov_spend").layout
    assert layout.xaxis.title.text == "broker_reward.rate" and layout.yaxis.title.text == "broker_reward.cap"
    # in 万: the colours on the scale the cells' text says, the scale titled by the glossary's label and the unit
    heat_wan = charts.sweep_heatmap(df, axes, "gov_spend", "wan").data[0]
    assert heat_wan.z[0][1] == (4.5e6 + 0.5) / 1e4 and heat_wan.text[0][1] == "450 万"
    assert heat_wan.colorbar.title.text == "public spend (万 yuan), mean over seeds"
    assert "public spend: %{text}" in heat_wan.hovertemplate
    table = charts.sweep_table(means, "gov_spend")
    assert list(table.columns) == [*axes, "mean over seeds", "sd over seeds", "runs"]
    assert table["mean over seeds"].iloc[0] == fmt.money(0.5e6 + 0.5) and table["runs"].iloc[0] == "2"
    assert list(table["broker_reward.cap"]) == ["100,000", "300,000", "100,000", "300,000"]
    assert list(table["broker_reward.rate"]) == ["0.005", "0.005", "0.015", "0.015"]
    lines = charts.sweep_lines(df, axes, "gov_spend")
    assert [list(t.y) for t in lines.data] == [[0.5e6 + 0.5, 4.5e6 + 0.5], [2.5e6 + 0.5, 6.5e6 + 0.5]]
    assert lines.layout.yaxis.title.text == "public spend (yuan)"
    lines = charts.sweep_lines(df, axes, "gov_spend", "yi")
    assert [list(t.y) for t in lines.data] == [[(0.5e6 + 0.5) / 1e8, (4.5e6 + 0.5) / 1e8],
                                               [(2.5e6 + 0.5) / 1e8, (6.5e6 + 0.5) / 1e8]]
    assert lines.layout.yaxis.title.text == "public spend (亿 yuan)"
    assert lines.data[0].text[0].endswith(" 亿") and "public spend: %{text}" in lines.data[0].hovertemplate
    assert lines.data[0].text[0] == "0.01 [<0.01, 0.01] 亿"  # 500,000.5 [0.5, 1,000,000.5]


def test_a_sweep_lines_interval_stays_in_the_metrics_domain(monkeypatch):
    """The bootstrap interval stays within the replicates' range; an interval that reaches below the glossary's
    domain (a Student-t one, say) is clipped there, in the hover text and in the error bars."""
    from sim.analysis import stats

    monkeypatch.setattr(stats, "mean_interval", lambda x, level=0.95: (float(np.mean(x)), -2e6, 3e6))
    df = pd.DataFrame({"run_id": range(4), "seed": [0, 1] * 2, "regime.name": "broker_reward",
                       "broker_reward.cap": [1e5, 1e5, 3e5, 3e5], "gov_spend": [0.0, 2e6, 1e6, 1e6],
                       "firm_surplus": [0.0, 2e6, 1e6, 1e6]})
    spend = charts.sweep_lines(df, ["broker_reward.cap"], "gov_spend", "wan").data[0]
    assert list(spend.text) == ["100 [0, 300] 万", "100 [0, 300] 万"]
    assert list(spend.error_y.arrayminus) == [100.0, 100.0] and list(spend.error_y.array) == [200.0, 200.0]
    surplus = charts.sweep_lines(df, ["broker_reward.cap"], "firm_surplus", "wan").data[0]  # signed: not clipped
    assert list(surplus.text) == ["100 [-200, 300] 万", "100 [-200, 300] 万"]


def test_the_sweep_writes_a_share_as_a_percentage_and_plots_it_in_percent():
    df = pd.DataFrame({"run_id": range(4), "seed": [0, 1] * 2, "regime.name": "broker_reward",
                       "broker_reward.cap": [3e6, 3e6, 3e7, 3e7], "conversion_rate": [0.106, 0.108, 0.2, 0.2]})
    axes = ["broker_reward.cap"]
    table = charts.sweep_table(charts.sweep_means(df, axes, "conversion_rate"), "conversion_rate", "wan")
    assert list(table["mean over seeds"]) == ["10.7%", "20%"]   # as on Compare, whatever the money unit
    assert list(table["broker_reward.cap"]) == ["3,000,000", "30,000,000"]  # no 3e+06
    lines = charts.sweep_lines(df, axes, "conversion_rate", "wan")
    assert list(lines.data[0].y) == pytest.approx([10.7, 20.0])
    assert lines.layout.yaxis.title.text == "conversion rate (stock) (%)"


def test_the_funnels_hover_text_is_written_by_fmt():
    series = pd.DataFrame({"month": range(3), "needs_raised": [600, 700, 800], "matches": [5, 6, 7],
                           "successes": [1, 0, 2], "failures": [0, 1, 0], "brokers_active": [3, 4, 5]})
    from sim.core import columns as C
    from sim.core.results import FORM_COLUMNS

    for c in FORM_COLUMNS:
        series[C.COLUMNS[c].name] = 1
    fig = charts.funnel_figure(series, 12)
    needs = fig.data[0]
    assert list(needs.text) == ["600", "1,300", "2,100"] and "%{text}" in needs.hovertemplate
    assert all("%{y" not in t.hovertemplate for t in fig.data)


def test_a_table_writes_its_float_cells_without_exponents():
    from experiments.dashboard import ui

    html = ui.table_html(pd.DataFrame({"x": [3e6, 4.78714e7, 1e-5]}), "t", index=False).kwargs["unsafe_innerHTML"]
    assert "3,000,000" in html and "47,871,400" in html and "&lt;0.001" in html and "e+" not in html


def test_search_text_is_cut_at_200_characters():
    from experiments.dashboard import ui

    assert ui.SEARCH_MAX == 200
    assert ui.search_text("x" * 200) == "x" * 200 and ui.search_text("x" * 201) == "x" * 200
    assert ui.search_text(None) == "" and ui.search_note("x" * 200) == ""
    assert ui.search_note("x" * 5000) == "searched by the first 200 of 5,000 characters"


def test_one_money_unit_picker_on_every_page():
    import inspect

    from experiments.dashboard import ui
    from experiments.dashboard.pages import answer, one_run, sweep

    assert list(ui.UNIT_LABELS) == list(fmt.MONEY_UNITS)
    for page in (answer, one_run, sweep):
        source = inspect.getsource(page)
        assert "MoneyUnit(" in source and "MONEY_UNITS" not in source and "ToggleButtonsSingle(value=sign" not in source


def test_the_compare_pages_parameter_fields_read_back_exactly():
    """Every registered instrument's every float default is shown without an exponent and parses back, through the
    schema, to the same value."""
    import dataclasses

    from experiments.dashboard.pages.compare import instrument_fields
    from sim.core.config import INSTRUMENT_NAMES

    cfg = api.compose()
    checked = []
    for name in INSTRUMENT_NAMES:
        for (key, text, _), f in zip(instrument_fields(cfg, name), dataclasses.fields(getattr(cfg, name))):
            value = getattr(getattr(cfg, name), f.name)
            if isinstance(value, float):
                assert "e" not in text and float(text) == value, (key, text, value)
                checked.append((key, text, value))
    assert any(v >= 1e6 for _, _, v in checked)  # money caps, once written 3e+07
    back = api.compose(*(f"{k}={t}" for k, t, _ in checked))
    assert [getattr(getattr(back, k.split(".")[0]), k.split(".")[1]) for k, _, _ in checked] == [v for *_, v in checked]


def test_the_corner_plot_weighs_the_posterior_and_keeps_its_ticks_apart():
    post = pd.DataFrame({"scenario.a": [0.1, 0.2, 0.4], "scenario.b": [1e-3, 1e-2, 0.5], "weight": [0.5, 0.3, 0.2]})
    summary = pd.DataFrame({"parameter": ["scenario.a", "scenario.b"], "low": [0.0, 1e-4], "high": [1.0, 1.0],
                            "scale": ["linear", "log"]})
    fig = charts.corner_figure(post, summary)
    hist_a, scatter, hist_b = fig.data
    assert sum(hist_a.y) == pytest.approx(1.0) and max(hist_a.y) == pytest.approx(0.5)  # the weights, not counts
    assert list(scatter.x) == [0.1, 0.2, 0.4]
    # hover text written by fmt (no Plotly number formats): the draws to 3 significant digits, the weights in percent
    assert [list(c) for c in scatter.customdata] == [["0.1", "0.001", "50%"], ["0.2", "0.01", "30%"],
                                                     ["0.4", "0.5", "20%"]]
    assert "%{customdata[0]}" in scatter.hovertemplate and ":.3g" not in scatter.hovertemplate
    assert list(hist_b.customdata[0]) == ["0.0001", "0.000158", "0%"]  # b's first log bin: 1e-4 .. 10^-3.8
    lay = fig.layout
    # panels: (1,1) a's marginal; (2,1) b against a; (2,2) b's marginal. b's prior is log: 1e-4 .. 1, ticked at
    # every other power of ten (3 labels, not 5 crowding a 160-pixel panel), on its x axis and its pair's y axis
    assert lay.xaxis4.type == lay.yaxis3.type == "log" and lay.xaxis3.type == "linear"
    assert list(lay.xaxis4.tickvals) == list(lay.yaxis3.tickvals) == [1e-4, 1e-2, 1.0]
    assert list(lay.xaxis4.ticktext) == ["10⁻⁴", "0.01", "1"]  # far from 1 as a power of ten, no 1e-4
    assert list(lay.xaxis3.ticktext) == ["0", "0.5", "1"]
    assert lay.xaxis3.title.text == "a" and lay.yaxis3.title.text == "b" and lay.xaxis.title.text is None
    assert min(lay.xaxis4.tickfont.size, lay.font.size, lay.xaxis3.title.font.size) >= 11


def test_calibration_tables_say_what_their_columns_are():
    fit = pd.DataFrame({"target": ["t"], "observed": [0.43], "z": [-0.4], "misfit": [False], "undefined_draws": [2]})
    shown = charts.readable(fit, charts.FIT_COLUMNS)
    assert list(shown.columns) == ["target (a reported figure)", "reported", "z (misfit in SDs of the prediction)",
                                   "misfit (|z| > 3)", "posterior draws where the figure is undefined"]
    assert list(shown.iloc[0]) == ["t", "0.43", "-0.4", "no", "2"]


# --------------------------------------------------------------------------- the posterior from the page
RISK = "scenario.firms.risk_aversion_sme"
BASE = ["engine=numba", *SMALL, "regimes=[baseline,broker_reward]", "at_spend=broker_reward"]


def test_a_posterior_question_is_the_command_lines(tmp_path):
    folder = write_posterior(tmp_path / "calibration" / "c1", [{"weight": 0.6, RISK: 1.0}, {"weight": 0.4, RISK: 5.0}])
    s = svc.Service(BASE, workers=1)
    question = svc.posterior_question(folder, "3", " 1 ")
    assert question == [f"posterior={folder}", "posterior_draws=3", "seeds=1"]
    answer = svc.compare_posterior(s, question)
    assert api.replicates_text(answer.config) == "3 posterior draws x 1 seeds"
    out = tmp_path / "cli"
    words = shlex.split(answer.command)  # as a shell reads it
    assert words[:3] == ["python", "-m", "experiments.run"] and f"posterior={folder}" in words
    p = subprocess.run([sys.executable, "-m", "experiments.run", *words[3:], f"hydra.run.dir={out}"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=900, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert p.returncode == 0, p.stderr
    for name, table in (("table.csv", answer.comparison.table), ("table_equal_spend.csv", answer.equal.table)):
        pd.testing.assert_frame_equal(pd.read_csv(out / name), pd.read_csv(io.StringIO(table.to_csv(index=False))))
    from experiments.app import headline

    assert "\n".join(headline(answer.comparison, answer.equal, answer.at_spend)) in p.stdout
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["draw"]) == list(answer.comparison.summary["draw"])


def test_a_posterior_question_keeps_the_services_limits_and_cancel(tmp_path):
    folder = write_posterior(tmp_path / "c2", [{"weight": 1.0, RISK: 2.0}])
    s = svc.Service(BASE, workers=1, max_runs=12)
    # 2 regimes x 3 draws x 2 seeds, twice at equal spend: 24 runs
    with pytest.raises(ConfigError, match=r"^seeds = 2: 24 runs, above dashboard.max_runs = 12"):
        svc.compare_posterior(s, svc.posterior_question(folder, "3", "2"))
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(svc.Cancelled, match="before it began"):
        svc.compare_posterior(s, svc.posterior_question(folder, "3", "1"), cancel=cancel)
    with pytest.raises(ConfigError, match=rf"^{RISK}: set on the command line and by the posterior"):
        svc.compare_posterior(svc.Service([*BASE, f"{RISK}=3"]), svc.posterior_question(folder, "2", "1"))
    with pytest.raises(ConfigError, match=r"^posterior_draws = '\$\{oc.env:HOME\}': must be a plain value"):
        svc.posterior_question(folder, "${oc.env:HOME}", "1")
    with pytest.raises(ConfigError, match=r"^posterior = .*: a folder whose path has only letters"):
        svc.posterior_question(tmp_path / "a b", "2", "1")


def test_the_search_box_and_the_unit_picker_as_rendered():
    """The search box passes at most 200 characters and says so in one line; the unit picker gives fmt's units."""
    import ipyvuetify as v
    import solara

    from experiments.dashboard import ui

    searched = []
    _, rc = solara.render(ui.SearchText("find", "", searched.append), handle_error=False)
    rc.find(v.TextField).widget.v_model = "y" * 250
    assert searched[-1] == "y" * 200
    assert rc.find(v.TextField).widget.messages == ["searched by the first 200 of 250 characters"]
    units = []
    _, rc = solara.render(ui.MoneyUnit("wan", units.append), handle_error=False)
    assert [b.children for b in rc.find(v.Btn).widgets] == [["yuan"], ["万 (wan, 10^4 yuan)"], ["亿 (yi, 10^8 yuan)"]]
    assert rc.find(v.BtnToggle).widget.v_model == 1
    rc.find(v.BtnToggle).widget.v_model = 2
    assert units == ["yi"]
