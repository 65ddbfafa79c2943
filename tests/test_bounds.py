"""Nothing unbounded: no division by a tiny value, a money bound that covers every payment, YAML read within limits.

Each test here failed before (tracker issue 23): ``broker_speedup=5e-324`` divided by zero in the
negotiation rule, expert visits' costs passed the exact range of money after a run, not before it.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sim import api, rules
from sim.config import Config, ConfigError, replace
from sim.population import MONEY_EXACT, check_money, draw_population, money_bound, money_terms

from .conftest import SMALL, small

ROOT = Path(__file__).resolve().parent.parent


def _cli(tmp_path, *args):
    env = dict(os.environ, TQDM_DISABLE="1")  # no progress bar: stderr holds the error alone
    return subprocess.run([sys.executable, "-m", "experiments.run", *SMALL, "seeds=1", *args,
                           f"hydra.run.dir={tmp_path}/run"], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=env)


def _one_line_config_error(p, text):
    assert p.returncode == 2, (p.returncode, p.stdout[-2000:], p.stderr[-2000:])
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert lines == [text], p.stderr
    assert "Traceback" not in p.stdout + p.stderr


# --------------------------------------------------------------------------- 1. no division by a tiny value
@pytest.mark.parametrize("mean", [5e-324, 1e-300, 0.01, 0.5, 1.0])
def test_a_negotiation_of_a_month_or_less_concludes_in_its_first_month(mean):
    assert rules.negotiation_step(0.999999, mean, 0.1) == rules.CONCLUDED  # any draw past the hazard concludes
    assert rules.negotiation_step(0.05, mean, 0.1) == rules.BROKE_DOWN


def test_a_negotiation_longer_than_a_month_concludes_with_chance_one_over_its_mean():
    # mean 2 months, hazard 0.1: concludes when u < 0.1 + 0.9 x 0.5 = 0.55, continues above
    assert rules.negotiation_step(0.5499, 2.0, 0.1) == rules.CONCLUDED
    assert rules.negotiation_step(0.5501, 2.0, 0.1) == rules.CONTINUES
    assert rules.negotiation_step(1.0 - 1e-11, 1.0 + 1e-6, 0.1) == rules.CONTINUES  # just above a month: not certain


@pytest.mark.parametrize("key, lowest", [
    ("scenario.negotiation.broker_speedup", 0.01),
    ("scenario.negotiation.months_licence", 0.01),
    ("trial.negotiation_months", 0.01),
    ("royalty.negotiation_months", 0.01),
])
def test_negotiation_months_and_speedup_are_bounded_below(key, lowest):
    replace(Config(), **{key: lowest})  # the edge is allowed
    for value in (5e-324, lowest * (1 - 1e-12), 0.0):
        with pytest.raises(ConfigError) as e:
            replace(Config(), **{key: value})
        assert str(e.value) == f"{key} = {value!r}: must be >= 0.01 and <= {'1' if 'speedup' in key else '1200'}"


def test_subnormal_broker_speedup_is_refused_on_the_command_line(tmp_path):
    p = _cli(tmp_path, "regimes=[baseline]", "scenario.negotiation.broker_speedup=5e-324")
    _one_line_config_error(p, "config error: scenario.negotiation.broker_speedup = 5e-324: must be >= 0.01 and <= 1")


# --------------------------------------------------------------------------- 2. the money bound covers every payment
def test_the_money_bound_counts_every_search_and_every_visit_and_event():
    cfg = small()
    pop = draw_population(cfg, 0)
    base = money_bound(cfg, pop)
    months = cfg.scenario.months
    searched = replace(cfg, **{"scenario.firms.search_cost": cfg.scenario.firms.search_cost + 1000.0})
    assert money_bound(searched, pop) - base == pytest.approx(pop.n_projects * months * 1000.0, rel=1e-9)
    visited = replace(cfg, **{"experts.visits_per_month": cfg.experts.visits_per_month + 10})
    assert money_bound(visited, pop) - base == pytest.approx(10 * months * cfg.experts.visit_cost, rel=1e-9)
    no_events = replace(cfg, **{"experts.events_per_year": 0})
    assert base - money_bound(no_events, pop) == pytest.approx(months * cfg.experts.event_cost, rel=1e-9)


def test_money_is_refused_exactly_from_the_exact_range_on():
    """Search costs set so that the bound is just below 2^53 (accepted) and at it (refused, naming search_cost)."""
    cfg = small("scenario.firms.search_cost=0")
    pop = draw_population(cfg, 0)
    rest = money_bound(cfg, pop)
    per_yuan = pop.n_projects * cfg.scenario.months  # the bound's growth per yuan of search_cost
    edge = (MONEY_EXACT - rest) / per_yuan
    below = replace(cfg, **{"scenario.firms.search_cost": float(int(edge) - 1)})
    assert money_bound(below, pop) < MONEY_EXACT
    check_money(below, pop)
    at = replace(cfg, **{"scenario.firms.search_cost": float(int(edge) + 1)})
    assert money_bound(at, pop) >= MONEY_EXACT
    with pytest.raises(ConfigError) as e:
        check_money(at, pop)
    assert str(e.value).startswith("scenario (seed 0): the money of this run could reach ")
    assert str(e.value).endswith("counted exactly; lower scenario.firms.search_cost, projects_sme/large, firms.n or "
                                 "scenario.months")


def test_the_error_names_the_largest_part_of_the_bound():
    cfg = small()
    pop = draw_population(cfg, 0)
    terms = money_terms(cfg, pop)
    assert sum(t for t, _ in terms) == money_bound(cfg, pop)
    assert len({keys for _, keys in terms}) == len(terms)  # each part names its own keys


def test_expert_visits_beyond_the_exact_range_are_refused_before_the_run(tmp_path):
    """The tester's case: it ran, then failed its invariants ("money adds up to ...")."""
    p = _cli(tmp_path, "regimes=[expert_visits]", "experts.visit_cost=1e12", "experts.visits_per_month=10000")
    _one_line_config_error(p, "config error: scenario (seed 0): the money of this run could reach 3.6e+17 yuan, "
                              "beyond the 9.01e+15 yuan counted exactly; lower experts.visit_cost, visits_per_month "
                              "or event_cost, or scenario.months")
    assert not (tmp_path / "run" / "summary.csv").exists()
