"""How the pages write numbers (experiments/dashboard/fmt.py): exact strings, near each rule's boundaries.

Each rule's steps are tested on both sides (a step moved by 10% fails one of them), and around the values that round
across a step: the decimals are those of the ROUNDED value."""

import math

import numpy as np
import pytest

from experiments.dashboard import fmt
from sim.analysis import glossary


@pytest.mark.parametrize("v, unit, text", [
    (0.0, "yuan", "0"), (-0.0, "wan", "0"), (math.nan, "yuan", "-"), (math.inf, "wan", "∞"),
    # yuan: whole from 1 yuan (after rounding), 2 decimals below, <0.01 for what rounds to nothing
    (1_752_784.4, "yuan", "1,752,784 yuan"), (-12_500.0, "yuan", "-12,500 yuan"), (47_871_400.0, "yuan",
                                                                                    "47,871,400 yuan"),
    (1.0, "yuan", "1 yuan"), (1.5, "yuan", "2 yuan"), (0.996, "yuan", "1 yuan"), (0.994, "yuan", "0.99 yuan"),
    (0.5, "yuan", "0.5 yuan"), (0.006, "yuan", "0.01 yuan"), (0.004, "yuan", "<0.01 yuan"),
    (-0.004, "yuan", ">-0.01 yuan"),
    # 万: 2 decimals below 10, 1 from 10, whole from 1,000 — of the rounded value (99,999 and 100,000 alike)
    (99_999.0, "wan", "10 万"), (100_000.0, "wan", "10 万"), (99_940.0, "wan", "9.99 万"), (90_000.0, "wan", "9 万"),
    (104_900.0, "wan", "10.5 万"), (1_752_784.0, "wan", "175.3 万"), (9_994_999.0, "wan", "999.5 万"),
    (9_999_999.0, "wan", "1,000 万"), (10_000_000.0, "wan", "1,000 万"), (9_990_000.0, "wan", "999 万"),
    (12_345_678.0, "wan", "1,235 万"), (51.0, "wan", "0.01 万"), (49.0, "wan", "<0.01 万"),
    (-49.0, "wan", ">-0.01 万"),
    # 亿
    (175_278_400.0, "yi", "1.75 亿"), (1_752_784.0, "yi", "0.02 亿"), (3e9, "yi", "30 亿"), (1e11, "yi", "1,000 亿"),
    (5000.0, "yi", "<0.01 亿"), (-5000.0, "yi", ">-0.01 亿"),
])
def test_money_is_written_with_separators_and_zero_as_zero(v, unit, text):
    assert fmt.money(v, unit) == text


def test_money_without_its_sign():
    assert fmt.money(1_752_784.0, "wan", suffix=False) == "175.3" and fmt.money(0.0, "yi", suffix=False) == "0"


def test_an_unknown_money_unit_is_refused():
    with pytest.raises(ValueError, match="unit = 'usd'"):
        fmt.money(1.0, "usd")


@pytest.mark.parametrize("v, text", [
    (0, "0"), (12, "12"), (-3.5, "-3.5"), (math.inf, "∞"), (math.nan, "-"),
    # whole from 100, 1 decimal from 10, 2 from 1, 3 below: of the rounded value
    (1234.4, "1,234"), (47_871_400.0, "47,871,400"), (100.4, "100"), (99.96, "100"), (99.95, "100"),
    (99.94, "99.9"), (12.5, "12.5"), (10.04, "10"), (9.996, "10"), (9.9999, "10"), (9.994, "9.99"), (3.25, "3.25"),
    (1.0, "1"), (0.9996, "1"), (0.9994, "0.999"), (0.125, "0.125"), (0.0125, "0.013"), (0.0006, "0.001"),
    (0.0004, "<0.001"), (1e-5, "<0.001"), (-1e-5, ">-0.001"),
])
def test_numbers(v, text):
    assert fmt.number(v) == text


@pytest.mark.parametrize("v, text", [
    (0.0, "0%"), (math.nan, "-"), (1.0, "100%"), (0.99996, "100%"), (0.9994, "99.9%"), (0.107, "10.7%"),
    (0.1, "10%"), (0.09996, "10%"), (0.09994, "9.99%"), (0.025, "2.5%"), (0.0001, "0.01%"), (1e-7, "<0.01%"),
    (-1e-7, ">-0.01%"), (-0.125, "-12.5%"),
])
def test_shares_are_percentages(v, text):
    assert fmt.share(v) == text


def test_no_number_a_person_reads_has_an_exponent():
    values = [s * m * 10.0 ** k for k in range(-12, 16) for m in (1.0, 4.78714, 9.99999) for s in (1, -1)]
    for v in values:
        for text in (fmt.number(v), fmt.share(v), fmt.significant(v), fmt.exact(v), fmt.exact(v, separators=True),
                     *(fmt.money(v, u) for u in fmt.MONEY_UNITS)):
            assert "e" not in text.replace("yuan", ""), (v, text)


@pytest.mark.parametrize("v, text, readable", [
    (3e7, "30000000", "30,000,000"), (1e-5, "0.00001", "0.00001"), (0.123456789, "0.123456789", "0.123456789"),
    (0.1 + 0.2, "0.30000000000000004", "0.30000000000000004"), (123456.5, "123456.5", "123,456.5"),
    (2.0, "2", "2"), (-0.0, "0", "0"), (5, "5", "5"), (100000, "100000", "100,000"),
])
def test_a_parameter_is_written_exactly_and_reads_back(v, text, readable):
    assert fmt.exact(v) == text and fmt.exact(v, separators=True) == readable
    assert float(text) == v
    assert fmt.exact(np.float64(v)) == text and fmt.exact(np.int64(100_000), separators=True) == "100,000"


def test_a_draw_of_a_parameter_to_three_significant_digits():
    assert fmt.significant(1.23456e-5) == "0.0000123" and fmt.significant(31_415_926.7) == "31,415,927"
    assert fmt.significant(12.345) == "12.3" and fmt.significant(99.96) == "100" and fmt.significant(123.4) == "123"
    assert fmt.significant(0.43) == "0.43" and fmt.significant(-0.4) == "-0.4" and fmt.significant(0.0) == "0"


def test_a_value_is_written_by_its_glossary_kind():
    rate, spend, conversions = (glossary.entry(k) for k in ("conversion_rate", "gov_spend", "successes"))
    assert [fmt.kind_of(e) for e in (rate, spend, conversions)] == ["share", "money", "number"]
    assert fmt.kind_of("yuan") == "money"  # a glossary unit as well as an entry
    assert fmt.value(0.107, fmt.kind_of(rate)) == "10.7%"
    assert fmt.value(1_752_784.0, fmt.kind_of(spend), "wan") == "175.3 万"
    assert fmt.value(1_752_784.0, "money", "wan", suffix=False) == "175.3"
    assert fmt.value(1234.4, fmt.kind_of(conversions), "wan") == "1,234"
    with pytest.raises(ValueError, match="kind = 'yuan'"):
        fmt.value(1.0, "yuan")


def test_an_interval_stays_in_its_domain():
    assert fmt.interval(1_000.0, -300.0, 2_300.0, "money", low=0) == "1,000 [0, 2,300] yuan"
    assert fmt.interval(0.9, 0.7, 1.1, "share", low=0, high=1) == "90% [70%, 100%]"
    assert fmt.interval(5.0, -1.0, 11.0, "number") == "5 [-1, 11]"  # an effect may be negative: no domain given
    assert fmt.interval(math.nan, 0, 1) == "-"
    assert fmt.interval(1e-5, -1e-5, 3e-5, "number") == "<0.001 [>-0.001, <0.001]"
    assert fmt.clip(-1e-9, 0) == 0 and fmt.clip(0.5, 0, 1) == 0.5 and fmt.clip(2.0, None, 1) == 1
    # the domain from the glossary entry: public spend not below zero, a share not above one; firms' surplus signed
    spend, rate, surplus = (glossary.entry(k) for k in ("gov_spend", "conversion_rate", "firm_surplus"))
    assert fmt.metric_interval(spend, 1_000.0, -300.0, 2_300.0) == "1,000 [0, 2,300] yuan"
    assert fmt.metric_interval(rate, 0.95, 0.9, 1.05) == "95% [90%, 100%]"
    assert fmt.metric_interval(surplus, 100_000.0, -50_000.0, 250_000.0, "wan", suffix=False) == "10 [-5, 25]"
