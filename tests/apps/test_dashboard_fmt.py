"""How the pages write numbers (experiments/dashboard/fmt.py): exact strings, near each rule's boundaries."""

import math

import pytest

from experiments.dashboard import fmt


@pytest.mark.parametrize("v, unit, text", [
    (0.0, "yuan", "0"), (-0.0, "wan", "0"), (1_752_784.4, "yuan", "1,752,784 yuan"), (-12_500.0, "yuan", "-12,500 yuan"),
    (1.0, "yuan", "1 yuan"), (0.5, "yuan", "0.5 yuan"), (1_752_784.0, "wan", "175.3 万"), (99_999.0, "wan", "10 万"),
    (90_000.0, "wan", "9 万"), (10_000_000.0, "wan", "1,000 万"), (9_990_000.0, "wan", "999.0 万"),
    (175_278_400.0, "yi", "1.75 亿"), (3e9, "yi", "30.0 亿"), (math.nan, "yuan", "-"),
])
def test_money_is_written_with_separators_and_zero_as_zero(v, unit, text):
    assert fmt.money(v, unit) == text


def test_an_unknown_money_unit_is_refused():
    with pytest.raises(ValueError, match="unit = 'usd'"):
        fmt.money(1.0, "usd")


@pytest.mark.parametrize("v, text", [(0, "0"), (12, "12"), (1234.4, "1,234"), (99.95, "100.0"), (10.04, "10.0"),
                                     (3.5, "3.5"), (0.125, "0.125"), (9.9999, "10"), (math.inf, "∞"), (math.nan, "-")])
def test_numbers(v, text):
    assert fmt.number(v) == text


def test_an_interval_stays_in_its_domain():
    assert fmt.interval(1_000.0, -300.0, 2_300.0, "money", low=0) == "1,000 [0, 2,300] yuan"
    assert fmt.interval(0.9, 0.7, 1.1, "share", low=0, high=1) == "90% [70%, 100%]"
    assert fmt.interval(5.0, -1.0, 11.0, "number") == "5 [-1, 11]"  # an effect may be negative: no domain given
    assert fmt.interval(math.nan, 0, 1) == "-"
    assert fmt.clip(-1e-9, 0) == 0 and fmt.clip(0.5, 0, 1) == 0.5 and fmt.clip(2.0, None, 1) == 1
