"""The comparison figure stays readable with many regimes."""

import itertools

import matplotlib
import numpy as np
import pandas as pd

matplotlib.use("Agg")

from sim.analysis.plots import LOG_SPAN, _cost_per_conversion, regime_colors  # noqa: E402


def test_twenty_regimes_get_twenty_distinct_colours_and_no_other_is_grey_or_black():
    regimes = ["baseline", *(f"r{k}" for k in range(18)), "combined"]
    colors = regime_colors(regimes)
    assert colors["baseline"] == (0.0, 0.0, 0.0)
    values = [np.array(colors[r]) for r in regimes]
    assert min(np.abs(a - b).max() for a, b in itertools.combinations(values, 2)) > 0.05
    for r in regimes[1:-1]:   # an instrument's colour is not a grey (grey is every instrument together)
        c = np.array(colors[r])
        assert c.max() - c.min() > 0.1, r


def _summary(costs):
    """A summary where regime k spends costs[k] more than the baseline per extra (expected) conversion (one more each
    seed)."""
    rows = []
    for seed in range(5):
        rows.append({"regime": "baseline", "seed": seed, "gov_spend": 0.0, "successes_expected": 10.0})
        for k, c in enumerate(costs):
            rows.append({"regime": f"r{k}", "seed": seed, "gov_spend": c, "successes_expected": 11.0})
    return pd.DataFrame(rows)


def test_costs_spanning_orders_of_magnitude_are_shown_on_a_log_axis_and_close_ones_on_a_linear_one():
    for costs, log in (([1e5, 2e5, 3e5], False), ([1e5, 1e5 * LOG_SPAN * 2], True)):
        fig = matplotlib.figure.Figure()
        ax = fig.add_subplot()
        regimes = ["baseline", *(f"r{k}" for k in range(len(costs)))]
        _cost_per_conversion(ax, _summary(costs), regimes, regime_colors(regimes))
        assert (ax.get_xscale() == "log") == log
        lo, hi = ax.get_xlim()
        assert lo <= min(costs) / 1e3 and hi >= max(costs) / 1e3   # every cost (k yuan) is on the axis
