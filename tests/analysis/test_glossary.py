"""The glossary of metrics (sim/analysis/glossary.py): an entry for every metric, one label each, units and bases."""

import pytest

from sim.analysis import glossary
from sim.analysis.stats import COST_ROWS, SIZE_METRICS, TABLE_METRICS, TAIL_METRICS
from sim.core import columns as C
from sim.core import ledger
from sim.core.results import METRICS


def test_every_metric_and_every_row_of_the_tables_has_an_entry():
    entries = glossary.entries()
    missing = [m for m in (*METRICS, *COST_ROWS, *TABLE_METRICS, *SIZE_METRICS, *TAIL_METRICS) if m not in entries]
    assert missing == []  # a new metric needs an entry (sim/analysis/glossary.py) before a page can show it
    assert all(entries[k].key == k for k in entries)
    with pytest.raises(KeyError, match="no_such_metric"):
        glossary.entry("no_such_metric")


def test_labels_are_unique_and_say_conversions_for_successes():
    labels = [e.label for e in glossary.entries().values()]
    assert len(set(labels)) == len(labels)
    assert glossary.label("successes") == "conversions"
    assert glossary.label("successes_sme") == "conversions, SMEs"
    assert glossary.label("successes_pv") == "conversions (present value)"


def test_units_and_bases_follow_the_declarations():
    entries = glossary.entries()
    assert {e.unit for e in entries.values()} <= {"yuan", "count", "share", "months", "ratio"}
    for col in C.COLUMNS:
        if col.summary:
            e = entries[col.name]
            assert e.money == col.money, col.name
            if col.money:
                assert e.basis == (glossary.AT_END if col.stock else glossary.TOTAL), col.name
                assert entries[f"{col.name}_pv"].basis == (glossary.PV_AT_END if col.stock else glossary.PV)
    for k in ledger.KINDS:   # a payment's meaning is its declared doc, and its payer and payee
        assert entries[k.name].meaning.startswith(k.doc)
    # every money figure says its period and basis
    for e in entries.values():
        if e.money:
            assert e.basis is not None and e.period(60, 0.08), e.key
    assert entries["gov_spend"].period(60, 0.08) == "total over the run's 60 months, nominal"
    assert entries["gov_spend_pv"].period(60, 0.08).startswith("present value at month 0, discounted at 8% a year")
    assert entries["net_market"].meaning.startswith("the outside economy")


def test_domains_bound_levels_that_cannot_leave_them():
    e = glossary.entries()
    assert (e["gov_spend"].low, e["gov_spend"].high) == (0.0, None)
    assert (e["conversion_rate"].low, e["conversion_rate"].high) == (0.0, 1.0)
    assert (e["firms_below_start"].low, e["firms_below_start"].high) == (0.0, 1.0)
    for signed in ("net_firms", "net_government_pv", "firm_surplus", "public_cost", "public_university_retained_pv"):
        assert e[signed].low is None, signed   # a net position or a cost net of receipts may be below zero
