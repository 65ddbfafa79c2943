"""The scenario-discovery app as a user runs it: python -m experiments.discover, its files checked against a direct
computation (the design, the model's outcomes, the cases, the box's coverage and density)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
KEYS = ["scenario.firms.risk_aversion_sme", "scenario.firms.prior_success", "scenario.achievements.ask_share"]
MODEL = ("regime=vouchers", "scenario.firms.n=200", "scenario.months=24")
QUERY = "cost_per_extra_conversion < 3e6"
N, REPLICATES, SEED = 40, 2, 5
FILES = ("trajectory.csv", "box.csv", "tradeoff.png", "box.png", "report.md")


def _run(out: Path, *args, timeout=600):
    return subprocess.run([sys.executable, "-m", "experiments.discover", "progress=false", "workers=1",
                           f"hydra.run.dir={out}", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def design_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("discover") / "design"
    p = _run(out, *MODEL, f"seed={SEED}", f"discover.n={N}", f"discover.replicates={REPLICATES}",
             "discover.parameters=[" + ",".join(KEYS) + "]", f'discover.query="{QUERY}"', "discover.threshold=0.8")
    assert p.returncode == 0, p.stderr
    return out


def direct(table: pd.DataFrame, y: np.ndarray, box: pd.DataFrame):
    inside = np.ones(len(table), dtype=bool)
    for r in box.itertuples():
        inside &= (table[r.parameter].to_numpy() >= r.low) & (table[r.parameter].to_numpy() <= r.high)
    k = int((y & inside).sum())
    return k / int(y.sum()), k / int(inside.sum()), int(inside.sum()) / len(table)


def test_the_design_and_its_outcomes_are_the_models(design_run):
    from sim.analysis.discovery import latin_hypercube as design
    from sim import api
    from sim.analysis.calibration import load_space
    from sim.analysis.explore import build_model

    for name in ("outcomes.parquet", *FILES):
        assert (design_run / name).is_file(), name
    table = pd.read_parquet(design_run / "outcomes.parquet")
    assert list(table.columns) == KEYS + ["extra_conversions", "cost_per_extra_conversion", "university_income_change"]
    space = load_space("judgement")
    params = [next(p for p in space.params if p.key == k) for k in KEYS]
    points = design(params, N, SEED)
    assert np.array_equal(table[KEYS].to_numpy(), pd.DataFrame(points)[KEYS].to_numpy())
    # a Latin hypercube: each parameter's N points fall one in each of N equal strata of its range (prior coordinates)
    for p in params:
        lo, hi = p.bounds
        strata = np.floor((np.array([p.to_unit(v) for v in table[p.key]]) - lo) / (hi - lo) * N)
        assert sorted(strata.astype(int)) == list(range(N))
    # the outcomes are the model's at those points, on seeds SEED, SEED + 1 (a few points re-run here)
    cfg = api.compose(*MODEL, f"seed={SEED}", "progress=false")
    model = build_model(cfg, space, KEYS, outcomes=["extra_conversions", "cost_per_extra_conversion",
                                                    "university_income_change"], replicates=REPLICATES, seed=SEED)
    again = model.evaluate(points[:3])
    pd.testing.assert_frame_equal(again, table.iloc[:3].reset_index(drop=True), check_exact=True)


def test_the_box_is_what_a_direct_count_gives(design_run):
    table = pd.read_parquet(design_run / "outcomes.parquet")
    traj = pd.read_csv(design_run / "trajectory.csv")
    box = pd.read_csv(design_run / "box.csv")
    y = table["cost_per_extra_conversion"].to_numpy() < 3e6
    assert 0 < y.sum() < len(y)
    chosen = traj[traj["chosen"]]
    assert len(chosen) == 1
    row = chosen.iloc[0]
    coverage, density, mass = direct(table, y, box)
    assert (row["coverage"], row["density"], row["mass"]) == pytest.approx((coverage, density, mass), abs=1e-12)
    assert row["cases"] == round(coverage * y.sum()) and row["n"] == round(mass * len(table))
    assert set(box["parameter"]) == set(KEYS)
    # each parameter's whole range is the one configs/spaces/judgement.yaml states
    space = yaml.safe_load((Path(__file__).resolve().parents[2] / "configs/spaces/judgement.yaml").read_text())
    for r in box.itertuples():
        stated = space["parameters"][r.parameter]
        assert (r.full_low, r.full_high) == (stated["low"], stated["high"])
        assert r.full_low <= r.low <= r.high <= r.full_high
        assert r.restricted == (not np.isnan(r.qp_low) or not np.isnan(r.qp_high))
    report = (design_run / "report.md").read_text()
    assert f"**When is `{QUERY}`?** True for {int(y.sum())} of {N} points" in report
    assert re.search(rf"Chosen: box {int(row['box'])} of {len(traj)} ", report)
    assert f"coverage {coverage:.2f}" in report and f"density {density:.2f}" in report


def test_a_table_is_read_instead_of_a_design(design_run, tmp_path):
    """The design's own table, asked the same question: the same box, and nothing run."""
    out = tmp_path / "table"
    p = _run(out, f"discover.table={design_run / 'outcomes.parquet'}", f'discover.query="{QUERY}"',
             "discover.threshold=0.8")
    assert p.returncode == 0, p.stderr
    assert not (out / "outcomes.parquet").exists() and not (out / "parts").exists()
    for name in FILES:
        assert (out / name).is_file(), name
    pd.testing.assert_frame_equal(pd.read_csv(out / "box.csv"), pd.read_csv(design_run / "box.csv"))
    pd.testing.assert_frame_equal(pd.read_csv(out / "trajectory.csv"), pd.read_csv(design_run / "trajectory.csv"))


@pytest.mark.parametrize("args,message", [
    (('discover.query="cost_per_extra_conversion < 3e6 or os.system(1)"',),
     r"^config error: discover\.query = .*: a function call is not a condition; allowed: comparisons"),
    (('discover.query="conversion < 3"',), r"^config error: discover\.query = 'conversion < 3': unknown column"),
    (("discover.threshold=1.5",), r"^config error: discover\.threshold = 1\.5: must be > 0 and <= 1"),
    (("discover.table=nowhere.csv",), r"^config error: discover\.table = 'nowhere\.csv': no such file"),
])
def test_a_bad_value_is_one_line_and_exit_2_before_any_run(tmp_path, args, message):
    out = tmp_path / "bad"
    p = _run(out, *MODEL, "discover.n=20", *args, timeout=120)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and re.search(message, lines[0]), p.stderr
    assert not out.exists()  # refused before anything was written


def test_the_default_question_is_well_formed():
    from omegaconf import OmegaConf

    from experiments.discover import DiscoverConfig
    from sim.analysis import discovery
    from sim.analysis.explore import OUTCOMES

    node = OmegaConf.load(ROOT / "configs" / "discover.yaml")
    assert node.discover.query == DiscoverConfig().query
    assert discovery.query_columns(node.discover.query, list(OUTCOMES)) == ["extra_conversions",
                                                                           "cost_per_extra_conversion"]
