"""The typed config: the YAML files match the schema, and bad values are refused clearly."""

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from sim import api
from sim.config import REGIME_FLAGS, Config, ConfigError, load_config, replace

ROOT = Path(__file__).resolve().parent.parent


def test_default_yaml_equals_schema_defaults():
    composed = api.compose()
    assert dataclasses.asdict(composed) == dataclasses.asdict(Config())


def test_regime_files_switch_the_right_instruments():
    flags = {n: api.regime(n) for n in api.regime_names()}
    assert set(flags) == {"baseline", "free_trial", "broker_reward", "failure_insurance", "combined"}
    on = {n: (r.free_trial, r.broker_reward, r.insurance) for n, r in flags.items()}
    assert on == {"baseline": (False, False, False), "free_trial": (True, False, False),
                  "broker_reward": (False, True, False), "failure_insurance": (False, False, True),
                  "combined": (True, True, True)}
    assert on == REGIME_FLAGS  # the schema's table says the same


def test_instrument_defaults_are_the_documented_ones():
    cfg = api.compose()
    assert cfg.broker.rate == 0.015 and cfg.broker.cap == 300_000
    assert cfg.trial.term_months == 24 and cfg.trial.success_fee == 20_000


def test_lishui_scenario_inherits_and_overrides():
    cfg = api.compose("scenario=lishui")
    assert cfg.scenario.name == "lishui"
    assert cfg.scenario.firms.sme_share > Config().scenario.firms.sme_share
    assert cfg.scenario.brokers.initial < Config().scenario.brokers.initial
    assert cfg.scenario.achievements == Config().scenario.achievements  # inherited


@pytest.mark.parametrize("key, value, fragment", [
    ("scenario.firms.n", 0, "scenario.firms.n = 0: must be >= 1"),
    ("scenario.achievements.value_median", -5.0, "scenario.achievements.value_median = -5.0: must be > 0"),
    ("broker.rate", 1.5, "broker.rate = 1.5: must be >= 0 and <= 1"),
    ("broker.cap", -1, "broker.cap = -1"),
    ("insurance.subsidy_share", -0.1, "insurance.subsidy_share = -0.1"),
    ("seeds", "many", "seeds = 'many': must be an integer"),
    ("engine", "gpu", "engine = 'gpu': must be one of"),
])
def test_bad_values_name_key_value_and_range(key, value, fragment):
    with pytest.raises(ConfigError) as e:
        replace(Config(), **{key: value})
    assert fragment in str(e.value)
    assert "\n" not in str(e.value)


def test_unknown_key_lists_allowed_keys():
    with pytest.raises(ConfigError, match=r"unknown key 'scenario.firms.nn': allowed keys in scenario.firms are n, "):
        load_config({"scenario": {"firms": {"nn": 3}}})


def test_zero_length_trial_refused_only_where_trials_run():
    load_config({"trial": {"term_months": 0}})  # fine under baseline
    with pytest.raises(ConfigError, match="trial.term_months = 0: must be >= 1 when free trials are on"):
        load_config({"trial": {"term_months": 0}, "regime": {"name": "free_trial", "free_trial": True}})


def _run_cli(*args):
    return subprocess.run([sys.executable, "-m", "experiments.run", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("args, fragment", [
    (["scenario.firms.n=0"], "scenario.firms.n = 0: must be >= 1"),
    (["broker.rate=2"], "broker.rate = 2"),
    (["broker.cap=-300000"], "broker.cap = -300000"),
    (["scenario.achievements.ask_share=-1"], "scenario.achievements.ask_share = -1"),
    (["trial.term_months=0"], "trial.term_months = 0"),
    (["scenario.firms.nn=3"], "unknown key 'scenario.firms.nn': allowed keys in scenario.firms are"),
    (["+scenario.colour=red"], "unknown key 'scenario.colour'"),
    (["scenario=atlantis"], "Could not find 'scenario/atlantis'; allowed: default, lishui"),
    (["regimes=[baseline,lottery]"], "regimes contains 'lottery'"),
])
def test_cli_config_errors_are_one_line_exit_2(args, fragment, tmp_path):
    p = _run_cli(*args, f"hydra.run.dir={tmp_path}/run")
    assert p.returncode == 2, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("config error: ") and fragment in lines[0], lines[0]
    assert "Traceback" not in p.stderr + p.stdout
    # nothing computed, nothing written
    assert not any((tmp_path / "run").glob("*.csv"))
