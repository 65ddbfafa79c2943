"""Nothing unbounded: no division by a tiny value, a money bound that covers every payment, YAML read within limits.

Each test here failed before (tracker issue 23): ``broker_speedup=5e-324`` divided by zero in the
negotiation rule, expert visits' costs passed the exact range of money after a run, not before it.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sim import api
from sim.core import rules
from sim.core.config import Config, ConfigError, replace
from sim.core.population import MONEY_EXACT, check_money, draw_population, money_bound, money_terms

from ..conftest import SMALL, small

ROOT = Path(__file__).resolve().parents[2]


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
    ("free_trial.negotiation_months", 0.01),
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
    visited = replace(cfg, **{"expert_visits.visits_per_month": cfg.expert_visits.visits_per_month + 10})
    assert money_bound(visited, pop) - base == pytest.approx(10 * months * cfg.expert_visits.visit_cost, rel=1e-9)
    no_events = replace(cfg, **{"expert_visits.events_per_year": 0})
    assert base - money_bound(no_events, pop) == pytest.approx(months * cfg.expert_visits.event_cost, rel=1e-9)


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
    p = _cli(tmp_path, "regimes=[expert_visits]", "expert_visits.visit_cost=1e12", "expert_visits.visits_per_month=10000")
    _one_line_config_error(p, "config error: scenario (seed 0): the money of this run could reach 3.6e+17 yuan, "
                              "beyond the 9.01e+15 yuan counted exactly; lower expert_visits.visit_cost, visits_per_month "
                              "or event_cost, or scenario.months")
    assert not (tmp_path / "run" / "summary.csv").exists()


# --------------------------------------------------------------------------- 3. YAML read within limits
# 342 bytes standing for 9^9 (~387 million) strings: "billion laughs"
BOMB = "".join(f"{k}: &{k} [" + ",".join([f"*{p}" if p else '"lol"'] * 9) + "]\n"
               for p, k in zip([""] + list("abcdefgh"), "abcdefghi"))


def _refused_fast(call, fragment):
    """Refused before the aliases are expanded: the message counts the nodes at the limit, not the billions."""
    with pytest.raises(ConfigError) as e:
        call()
    assert fragment in str(e.value) and "\n" not in str(e.value), str(e.value)
    return str(e.value)


def test_the_bomb_is_what_it_says():
    assert len(BOMB.encode()) < 400 and BOMB.count("*") == 8 * 9


def test_a_billion_laughs_target_set_is_refused_in_well_under_a_second(tmp_path):
    from sim.analysis.targets import load_targets

    (tmp_path / "bomb.yaml").write_text(BOMB)
    assert _refused_fast(lambda: load_targets(str(tmp_path / "bomb.yaml")), "not read: more than 100000 nodes") == (
        f"target_set = {tmp_path / 'bomb.yaml'}: cannot be read (not read: more than 100000 nodes once its aliases "
        "are expanded)")


def test_a_billion_laughs_posterior_is_refused_in_well_under_a_second(tmp_path):
    from sim.runs.posterior import load_posterior

    folder = tmp_path / "post"
    folder.mkdir()
    (folder / "posterior.csv").write_text("weight\n1.0\n")
    (folder / "posterior.yaml").write_text(BOMB)
    assert _refused_fast(lambda: load_posterior(str(folder)), "more than 100000 nodes").startswith(
        f"posterior = {folder}: posterior.yaml: not read: more than 100000 nodes")


def test_a_billion_laughs_regime_file_is_refused_in_well_under_a_second(tmp_path):
    from sim.core.config import _regime_files

    (tmp_path / "bomb.yaml").write_text(BOMB)
    _refused_fast(lambda: _regime_files(str(tmp_path)), f"{tmp_path / 'bomb.yaml'}: not read: more than 100000 nodes")


def _reads_safely(fn) -> bool:
    import inspect

    return "read_yaml(" in inspect.getsource(fn) or "parse_yaml(" in inspect.getsource(fn)


def test_a_billion_laughs_space_or_levers_file_is_refused_in_well_under_a_second(tmp_path):
    from sim.analysis import calibration

    assert _reads_safely(calibration.read_yaml_mapping)
    from sim.analysis.calibration import load_space
    from sim.analysis.explore import load_levers

    (tmp_path / "bomb.yaml").write_text(BOMB)
    _refused_fast(lambda: load_space(str(tmp_path / "bomb.yaml")), "more than 100000 nodes")
    _refused_fast(lambda: load_levers(str(tmp_path / "bomb.yaml")), "more than 100000 nodes")


def test_a_billion_laughs_multirun_yaml_is_refused_in_well_under_a_second(tmp_path):
    from sim.runs import sweep

    assert _reads_safely(sweep._multirun)
    (tmp_path / "multirun.yaml").write_text(BOMB)
    with pytest.raises(ValueError, match="more than 100000 nodes"):
        sweep._multirun(tmp_path)


@pytest.mark.parametrize("text, reason", [
    ("a: &a [*a]", "not read: an alias refers to a node that contains it (a recursive structure)"),
    ("[" * 101 + "]" * 101, "not read: nested more than 100 levels deep"),
    ("[" * 100 + "]" * 100, None),  # at the edge: read
    ("a: &a " + "[" * 60 + "1" + "]" * 60 + "\nb: " + "[" * 60 + "*a" + "]" * 60,  # each 61 deep, 121 expanded
     "not read: nested more than 100 levels deep once its aliases are expanded"),
    ("a: 1\na: 2", "not YAML (while constructing a mapping"),
])
def test_yaml_nesting_and_cycles_are_bounded(text, reason):
    from sim.core.yamlsafe import YamlError, parse_yaml

    if reason is None:
        parse_yaml(text, "f.yaml", omegaconf=True)
        return
    with pytest.raises(YamlError) as e:
        parse_yaml(text, "f.yaml", omegaconf=True)
    assert str(e.value).startswith(f"f.yaml: {reason}"), str(e.value)


def test_yaml_nodes_and_bytes_are_bounded_at_their_edge(tmp_path):
    from sim.core.yamlsafe import YAML_MAX_BYTES, YAML_MAX_NODES, YamlError, parse_yaml, read_yaml

    # a sequence of n scalars is n + 1 nodes; aliases count once per use
    edge = "a: &a [" + ", ".join(["1"] * 99) + "]\nb: [" + ", ".join(["*a"] * 999) + "]\n"
    # nodes: root 1 + key a 1 + a 100 + key b 1 + b (1 + 999 x 100) = 100,004 > 10^5; one alias fewer: 99,904
    with pytest.raises(YamlError, match="more than 100000 nodes"):
        parse_yaml(edge, "f.yaml")
    assert YAML_MAX_NODES == 100_000
    fewer = edge.replace("[*a, ", "[", 1)
    assert len(parse_yaml(fewer, "f.yaml")["b"]) == 998
    big = tmp_path / "big.yaml"
    big.write_text("#" * (YAML_MAX_BYTES - 5) + "\na: 1")  # exactly the limit: read
    assert read_yaml(big) == {"a": 1}
    big.write_text("#" * (YAML_MAX_BYTES - 4) + "\na: 1")
    with pytest.raises(YamlError, match=r"big.yaml: more than the 1048576 bytes a YAML file of ours can have$"):
        read_yaml(big)


def test_yaml_read_as_before_within_the_limits():
    from omegaconf import OmegaConf

    from sim.core.yamlsafe import read_yaml

    path = ROOT / "configs" / "targets" / "reported.yaml"
    assert read_yaml(path, omegaconf=True) == OmegaConf.to_container(OmegaConf.load(path))
    assert read_yaml(ROOT / "configs" / "levers" / "instruments.yaml", omegaconf=True) == OmegaConf.to_container(
        OmegaConf.load(ROOT / "configs" / "levers" / "instruments.yaml"))


# --------------------------------------------------------------------------- 4. a run's work bounded up front
def test_a_runs_work_counts_slots_searches_achievements_and_screenings():
    from sim.core.population import run_work

    cfg = api.under_regime(small("scenario.firms.sme_share=0.5", "scenario.firms.projects_sme=2",
                                 "scenario.firms.projects_large=6", "scenario.firms.list_screen=3",
                                 "scenario.universities.arrivals_per_month=1.5", "expert_visits.visits_per_month=10",
                                 "expert_visits.screen=4", "expert_visits.event_firms=7", "expert_visits.event_pitches=2"),
                           "expert_visits")
    sc = cfg.scenario
    slots = 400 * 4                                   # 0.5 x 2 + 0.5 x 6 slots a firm
    achievements = 4 * (40 + 2 * 36)                  # the stock and every arrival (ceil(1.5) a month)
    brokers = sc.brokers.max * sc.brokers.capacity * (sc.brokers.screen + 1)
    experts = 10 * (4 + 1) + 7 * (2 + 1)
    assert run_work(cfg) == 36 * (slots * (1 + 3) + achievements + brokers + experts)
    # the instrument's screenings count only when the regime has it
    assert run_work(api.under_regime(cfg, "baseline")) == 36 * (slots * (1 + 3) + achievements + brokers)


def test_a_run_of_more_work_than_the_limit_is_refused_at_its_edge(monkeypatch):
    import numpy as np

    from sim.core.population import check_memory, check_work, run_work

    cfg = small()
    work = run_work(cfg)
    monkeypatch.setattr("sim.core.population.RUN_WORK_MAX", work)
    check_work(cfg)          # exactly the limit: runs
    check_memory(cfg, "numba")
    monkeypatch.setattr("sim.core.population.RUN_WORK_MAX", float(np.nextafter(work, 0.0)))
    for check in (lambda: check_work(cfg), lambda: check_memory(cfg, "numba"), lambda: api.simulate(cfg, 0)):
        with pytest.raises(ConfigError) as e:
            check()
        assert str(e.value).startswith(f"scenario.months = 36: a run would take about {work:.3g} steps (36 months x ")


def test_a_run_that_would_take_hours_is_refused_on_the_command_line(tmp_path):
    """The dashboard's case (10^8 screenings a month: ~10 s a month) over a century of months."""
    p = _cli(tmp_path, "regimes=[expert_visits]", "expert_visits.visits_per_month=10000", "expert_visits.screen=10000",
             "scenario.months=1200")
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("config error: scenario.months = 1200: a run would take about "
                                                   "1.2e+11 steps (1200 months x 1e+08: "), p.stderr
    assert "more than the 1e+10 a run may take" in lines[0]


def test_a_design_is_bounded_in_points_and_runs_at_the_edge():
    from sim.core.schema import DESIGN_POINTS_MAX, DESIGN_RUNS_MAX, check_design

    check_design("discover.n", DESIGN_POINTS_MAX, DESIGN_POINTS_MAX, DESIGN_RUNS_MAX)  # at both edges: allowed
    with pytest.raises(ConfigError) as e:
        check_design("sensitivity.sobol.n", 2**24, 2**24 * 22, 2**24 * 22 * 4)
    assert str(e.value) == ("sensitivity.sobol.n = 16777216: a design of 3.69099e+08 points, more than the 1e+07 "
                            "that fit in memory here; make it smaller")
    with pytest.raises(ConfigError) as e:
        check_design("discover.replicates", 100000, 10**6, 10**11)
    assert str(e.value) == ("discover.replicates = 100000: 1e+06 points x replicates = 1e+11 runs, more than the "
                            "1e+07 a design may take (days on this machine); make it smaller")
    with pytest.raises(ConfigError, match="more than the 1e.07 a design may take"):
        check_design("discover.n", 10, 10, DESIGN_RUNS_MAX + 1)


@pytest.mark.parametrize("app, args, line", [
    ("sensitivity", ["sensitivity.sobol.n=16777216"],
     "config error: sensitivity.sobol.n = 16777216: a design of 2.01327e+08 points, more than the 1e+07 that fit in "
     "memory here; make it smaller"),
    ("discover", ["discover.n=10000000", "discover.replicates=100000"],
     "config error: discover.n = 10000000: 1e+07 points x replicates = 1e+12 runs, more than the 1e+07 a design may "
     "take (days on this machine); make it smaller"),
    ("optimise", ["optimise.population=100000", "optimise.generations=100000"],
     "config error: optimise.population = 100000: a design of 1e+10 points, more than the 1e+07 that fit in memory "
     "here; make it smaller"),
])
def test_a_design_too_large_is_refused_before_it_is_drawn_and_leaves_no_folder(tmp_path, app, args, line):
    # the tester's cases: sobol.n = 2^24 reached 15 GB before any run; discover 10^7 x 10^5 computed forever
    env = {**os.environ, "TQDM_DISABLE": "1"}
    out = subprocess.run([sys.executable, "-m", f"experiments.{app}", *args], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and out.stderr.strip() == line, out.stderr
    assert list(tmp_path.iterdir()) == []   # the refused app left no folder (exploration/ included)
