"""Scenario discovery (sim.analysis.discovery): PRIM finds a known box, its statistics are what a direct count gives, the
condition language accepts the analysts' questions and nothing else, and it runs on the model's own table."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from sim.analysis import discovery as D
from sim.analysis.calibration import Param
from sim.core.config import ConfigError

TRUE_X1_LOW, TRUE_X2_HIGH = 0.6, 0.3   # the known box: x1 > 0.6 and x2 < 0.3; x3..x5 inert
TOL = 0.05


def known_box(seed: int, n: int = 1000, flip: float = 0.0):
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(rng.uniform(size=(n, 5)), columns=["x1", "x2", "x3", "x4", "x5"])
    y = ((x["x1"] > TRUE_X1_LOW) & (x["x2"] < TRUE_X2_HIGH)).to_numpy()
    if flip:
        y = y ^ (rng.uniform(size=n) < flip)  # label noise: a share of the points' answers flipped
    return x, y


def direct(x: pd.DataFrame, y: np.ndarray, limits) -> tuple[float, float, float]:
    """Coverage, density and mass of the points inside ``limits`` (rows: parameter, low, high; inclusive), counted."""
    inside = direct_inside(x, limits)
    k = int((y & inside).sum())
    return k / int(y.sum()), k / int(inside.sum()), int(inside.sum()) / len(x)


def direct_inside(x: pd.DataFrame, limits) -> np.ndarray:
    inside = np.ones(len(x), dtype=bool)
    for p, low, high in limits:
        inside &= (x[p].to_numpy() >= low) & (x[p].to_numpy() <= high)
    return inside


def box_rows(d: D.Discovery):
    return list(d.box[["parameter", "low", "high"]].itertuples(index=False, name=None))


# --------------------------------------------------------------------------- a known box
@pytest.mark.parametrize("seed,flip,threshold", [(0, 0.0, 0.95), (1, 0.0, 0.95), (0, 0.05, 0.9), (1, 0.05, 0.9)])
def test_prim_finds_the_known_box(seed, flip, threshold):
    x, y = known_box(seed, flip=flip)
    d = D.discover(x, y, threshold=threshold)
    b = d.box.set_index("parameter")

    assert sorted(d.restricted) == ["x1", "x2"]
    assert abs(b.at["x1", "low"] - TRUE_X1_LOW) <= TOL
    assert abs(b.at["x2", "high"] - TRUE_X2_HIGH) <= TOL
    # the box's other sides are not restricted: the full (here: the data's) range, no quasi-p-value
    assert b.at["x1", "high"] == x["x1"].max() and math.isnan(b.at["x1", "qp_high"])
    assert b.at["x2", "low"] == x["x2"].min() and math.isnan(b.at["x2", "qp_low"])
    for inert in ("x3", "x4", "x5"):
        assert not b.at[inert, "restricted"]
        assert (b.at[inert, "low"], b.at[inert, "high"]) == (x[inert].min(), x[inert].max())
    # a strong restriction is significant (Bryant & Lempert's quasi-p-value)
    assert b.at["x1", "qp_low"] < 1e-6 and b.at["x2", "qp_high"] < 1e-6

    # the reported statistics are the direct count inside the reported box
    coverage, density, mass = direct(x, y, box_rows(d))
    assert (d.coverage, d.density, d.mass) == pytest.approx((coverage, density, mass), abs=1e-12)
    assert (d.n_points, d.n_cases) == (len(y), int(y.sum()))
    assert np.array_equal(d.inside(x), direct_inside(x, box_rows(d)))

    # the stated rule: dense enough, and no box of peeling and pasting as dense has more coverage
    t = d.trajectory
    peeled = t[t["origin"] == "peeling and pasting"]
    assert d.threshold_met and d.density >= threshold
    assert t.at[d.picked, "coverage"] == peeled.loc[peeled["density"] >= threshold, "coverage"].max()
    # what was dropped was an inert input's chance restriction, and the box given is the picked one without it
    assert set(d.dropped) <= {"x3", "x4", "x5"} and (d.chosen == d.picked) == (not d.dropped)
    # the first box is the whole space: coverage 1, density the share of cases, mass 1
    assert (t.at[0, "coverage"], t.at[0, "mass"], t.at[0, "res_dim"]) == (1.0, 1.0, 0)
    assert t.at[0, "density"] == pytest.approx(y.mean())


@pytest.mark.parametrize("seed", [0, 2, 3])
def test_without_dropping_inert_restrictions_are_insignificant(seed):
    """Greedy peeling on noisy cases may trim an inert input by chance (these seeds do): its quasi-p-value says so."""
    x, y = known_box(seed, flip=0.05)
    d = D.discover(x, y, threshold=0.9, significance=None)
    b = d.box.set_index("parameter")
    inert = [p for p in d.restricted if p not in ("x1", "x2")]
    assert inert and d.chosen == d.picked and d.dropped == []
    for p in inert:
        assert np.nanmin(b.loc[p, ["qp_low", "qp_high"]].to_numpy(dtype=float)) > 0.05
    for p in ("x1", "x2"):
        assert np.nanmin(b.loc[p, ["qp_low", "qp_high"]].to_numpy(dtype=float)) < 1e-6
    dropped = D.discover(x, y, threshold=0.9)
    assert sorted(dropped.dropped) == sorted(inert) and sorted(dropped.restricted) == ["x1", "x2"]
    assert dropped.coverage >= d.coverage  # a box without a restriction holds at least the cases it held


def test_every_box_on_the_trajectory_is_counted_right():
    x, y = known_box(2, n=600, flip=0.05)
    d = D.discover(x, y, threshold=0.9)
    assert len(d.trajectory) > 10 and len(d.limits) == len(d.trajectory)
    for i, lim in enumerate(d.limits):
        rows = [(p, lim.at[0, p], lim.at[1, p]) for p in x.columns]
        coverage, density, mass = direct(x, y, rows)
        t = d.trajectory.loc[i]
        assert (t["coverage"], t["density"], t["mass"]) == pytest.approx((coverage, density, mass), abs=1e-12)
        named = set(filter(None, t["restricted"].split("; ")))
        assert named == {p for p in x.columns if (lim.at[0, p], lim.at[1, p]) != (x[p].min(), x[p].max())}
        assert t["res_dim"] == len(named)


def test_full_ranges_come_from_the_space_and_a_table_outside_them_is_refused():
    x, y = known_box(0, n=300)
    params = [Param(c, 0.0, 1.0) for c in x.columns]
    d = D.discover(x, y, threshold=0.9, params=params)
    b = d.box.set_index("parameter")
    assert (b["full_low"] == 0.0).all() and (b["full_high"] == 1.0).all()
    assert b.at["x3", "low"] == 0.0 and b.at["x3", "high"] == 1.0  # unrestricted: the space's whole range
    assert b.at["x1", "high"] == 1.0
    assert d.mass == pytest.approx(direct(x, y, box_rows(d))[2])
    with pytest.raises(ConfigError, match=r"outside its space's range \[0, 0.5\]"):
        D.discover(x, y, params=[Param("x1", 0.0, 0.5)])


def test_a_chosen_box_and_a_threshold_no_box_meets():
    x, y = known_box(0, n=400)
    d = D.discover(x, y, threshold=0.9, box=0)
    assert d.chosen == 0 and d.restricted == [] and d.coverage == 1.0 and "as asked" in d.how
    rng = np.random.default_rng(5)
    noise = rng.uniform(size=400) < 0.1          # cases unrelated to x: no box gets near density 0.9
    d = D.discover(x, noise, threshold=0.9)
    assert not d.threshold_met and d.density < 0.9 and "densest" in d.how
    peeled = d.trajectory[d.trajectory["origin"] == "peeling and pasting"]
    assert d.trajectory.at[d.picked, "density"] == peeled["density"].max()
    # chance restrictions on noise are not significant: they are dropped, none is left that is not significant
    assert d.dropped and all(np.nanmin(r[["qp_low", "qp_high"]].to_numpy(dtype=float)) <= 0.05
                             for _, r in d.box[d.box["restricted"]].iterrows())
    assert "below the threshold" in D.summary(d, "q")


def test_refusals_are_one_line():
    x, y = known_box(0, n=200)
    cases = [
        (lambda: D.discover(x, np.zeros(200, bool), query="extra_conversions > 0"),
         r"discover.query = 'extra_conversions > 0': true for none of the 200 points"),
        (lambda: D.discover(x, np.ones(200, bool)), r"true for all of the 200 points"),
        (lambda: D.discover(x.iloc[:10], y[:10]), r"10 points are too few for PRIM; at least 20"),
        (lambda: D.discover(x, y, threshold=0), r"discover.threshold = 0: must be a number in \(0.0, 1.0\]"),
        (lambda: D.discover(x, y, peel_alpha=0.7), r"discover.peel_alpha = 0.7"),
        (lambda: D.discover(x, y, box=10_000), r"discover.box = 10000: must be a box of the trajectory"),
        (lambda: D.discover(x.assign(x1=np.nan), y), r"input column 'x1' has undefined"),
        (lambda: D.discover(x, y[:-1]), r"one boolean per point"),
    ]
    for call, message in cases:
        with pytest.raises(ConfigError, match=message) as e:
            call()
        assert "\n" not in str(e.value)


def test_plots_are_written(tmp_path):
    import matplotlib.image

    x, y = known_box(0, n=300)
    d = D.discover(x, y, threshold=0.9)
    for name, fig in (("tradeoff.png", D.plot_tradeoff(d)), ("box.png", D.plot_box(d))):
        D.save_figure(fig, tmp_path / name)
        img = matplotlib.image.imread(tmp_path / name)
        assert img.shape[0] > 100 and img.shape[1] > 100
    axes = D.plot_tradeoff(d).axes[0]
    xs = np.concatenate([c.get_offsets()[:, 0] for c in axes.collections])
    assert d.coverage in xs  # the chosen box is drawn (ringed) at its coverage


# --------------------------------------------------------------------------- the condition language
TABLE = pd.DataFrame({
    "cost_per_extra_conversion": [5e5, 2e6, math.inf, -math.inf, 0.0],
    "university_income_change": [-1.0, 0.0, 3e6, -2e6, 5.0],
    "extra_conversions": [1.0, 0.5, 0.0, -0.5, 2.0],
    "x1": [0.1, 0.2, 0.3, 0.4, 0.5],          # an input, not an outcome
})
cost, income, extra = (TABLE[c].to_numpy() for c in ("cost_per_extra_conversion", "university_income_change",
                                                      "extra_conversions"))


@pytest.mark.parametrize("query,expected", [
    ("cost_per_extra_conversion < 1e6", cost < 1e6),                     # inf is not below: it spends, adds none
    ("university_income_change < 0", income < 0),
    ("cost_per_extra_conversion < 1e6 and extra_conversions > 0", (cost < 1e6) & (extra > 0)),
    ("(cost_per_extra_conversion < 1e6) & (extra_conversions > 0)", (cost < 1e6) & (extra > 0)),
    ("university_income_change < -1e6 or not extra_conversions >= 0", (income < -1e6) | ~(extra >= 0)),
    ("~(university_income_change >= 0) | (extra_conversions == 2)", ~(income >= 0) | (extra == 2)),
    ("0 <= cost_per_extra_conversion < inf", (0 <= cost) & (cost < math.inf)),
    ("cost_per_extra_conversion != extra_conversions", cost != extra),
])
def test_condition_accepts_the_analysts_questions(query, expected):
    got = D.condition(TABLE, query)
    assert got.dtype == bool and np.array_equal(got, expected)


def test_condition_on_infinite_costs():
    assert D.condition(TABLE, "cost_per_extra_conversion < 1e6").tolist() == [True, False, False, True, True]
    assert D.condition(TABLE, "cost_per_extra_conversion >= 1e6").tolist() == [False, True, True, False, False]
    assert D.condition(TABLE, "cost_per_extra_conversion < inf").tolist() == [True, True, False, True, True]


@pytest.mark.parametrize("query,why", [
    ("foo < 1", "unknown column 'foo'"),
    ("x1 > 0.2", "unknown column 'x1'"),                          # an input: only outcomes are asked about
    ("__import__('os').system('true') == 0", "a function call"),
    ("abs(university_income_change) > 0", "a function call"),
    ("university_income_change.real > 0", "attribute access"),
    ("TABLE.shape > 0", "attribute access"),
    ("(university_income_change := 1) > 0", "an assignment"),
    ("university_income_change = 1", "not a valid expression"),
    ("university_income_change + 1 < 2", "arithmetic"),
    ("university_income_change", "is not a condition"),
    ("1 < 2", "compares no outcome column"),
    ("university_income_change < 'a'", "a constant that is not a number"),
    ("university_income_change < True", "a constant that is not a number"),
    ("university_income_change in [1, 2]", "operator In is not a comparison"),
    ("", "must be a non-empty condition"),
])
def test_condition_refuses_anything_else(query, why):
    with pytest.raises(ConfigError) as e:
        D.condition(TABLE, query)
    msg = str(e.value)
    assert msg.startswith(f"discover.query = {query!r}: ") and why in msg and "\n" not in msg
    assert "allowed: comparisons" in msg and "cost_per_extra_conversion" in msg and "x1," not in msg


def test_condition_is_three_valued_where_an_outcome_is_undefined():
    """A NaN outcome (a cost per extra conversion of a point that adds none and spends nothing more) makes its
    comparisons unknown; Kleene's logic decides what it can (False and unknown = False, True or unknown = True) and
    a condition still unknown somewhere is refused, with the count."""
    t = TABLE.assign(cost_per_extra_conversion=[5e5, 2e6, math.inf, math.nan, math.nan],
                     extra_conversions=[1.0, 0.5, 0.0, 0.0, 0.0])
    with pytest.raises(ConfigError, match="undecided at 2 points"):
        D.condition(t, "cost_per_extra_conversion < 1e6")
    with pytest.raises(ConfigError, match="undecided at 2 points"):
        D.condition(t, "not cost_per_extra_conversion < 1e6")
    guarded = D.condition(t, "extra_conversions > 0 and cost_per_extra_conversion < 1e6")
    np.testing.assert_array_equal(guarded, [True, False, False, False, False])
    either = D.condition(t, "extra_conversions <= 0 or cost_per_extra_conversion < 1e6")
    np.testing.assert_array_equal(either, [True, False, True, True, True])
    assert D.condition(t, "university_income_change < 0").sum() == 2  # a NaN elsewhere does not matter


# --------------------------------------------------------------------------- on the model
def test_discovery_on_a_small_sweep_of_the_model():
    """Vouchers on a small region, 3 judgement parameters, 80 Latin-hypercube points: 'when is the cost per extra
    conversion below 3 million yuan?'. The box's statistics are the direct count; a point that spends and adds no
    conversion (cost inf) is never a case."""
    from scipy.stats import qmc

    from sim import api
    from sim.analysis.calibration import load_space
    from sim.analysis.explore import build_model

    cfg = api.compose("regime=vouchers", "scenario.firms.n=200", "scenario.months=24", "progress=false")
    space = load_space("judgement")
    keys = ["scenario.firms.risk_aversion_sme", "scenario.firms.prior_success", "scenario.achievements.ask_share"]
    model = build_model(cfg, space, keys, outcomes=["extra_conversions", "cost_per_extra_conversion"],
                        replicates=2, seed=11)
    params = {p.key: p for p in space.params}
    unit = qmc.LatinHypercube(d=len(keys), seed=3).random(80)
    points = []
    for row in unit:
        point = {}
        for k, u in zip(keys, row):
            lo, hi = params[k].bounds       # the prior's coordinates: the log for a log-scale parameter
            point[k] = params[k].from_unit(lo + u * (hi - lo))
        points.append(point)
    table = model.evaluate(points)

    query = "cost_per_extra_conversion < 3e6"
    y = D.condition(table, query)
    c = table["cost_per_extra_conversion"].to_numpy()
    assert np.array_equal(y, c < 3e6) and not y[np.isinf(c)].any()
    assert 0 < y.sum() < len(y)  # the question has an answer to find in this design

    x = table[keys]
    d = D.discover(x, y, threshold=0.8, params=[params[k] for k in keys], query=query)
    coverage, density, mass = direct(x, y, box_rows(d))
    assert (d.coverage, d.density, d.mass) == pytest.approx((coverage, density, mass), abs=1e-12)
    assert d.n_cases == int((c < 3e6).sum())
    b = d.box.set_index("parameter")
    for k in keys:  # the full ranges are the space's, and the box lies within them
        assert (b.at[k, "full_low"], b.at[k, "full_high"]) == (params[k].low, params[k].high)
        assert params[k].low <= b.at[k, "low"] <= b.at[k, "high"] <= params[k].high
    assert len(d.trajectory) > 1 and d.threshold_met == (d.density >= 0.8)
