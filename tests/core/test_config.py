"""The typed config: the YAML files match the schema, and bad values are refused clearly."""

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from sim import api
from sim.core.config import INSTRUMENT_NAMES, Config, ConfigError, check_value, load_config, regime_files, replace
from sim.instruments import INSTRUMENTS, REGISTRY

ROOT = Path(__file__).resolve().parents[2]


def test_default_yaml_equals_schema_defaults():
    composed = api.compose()
    assert dataclasses.asdict(composed) == dataclasses.asdict(Config())


def test_regime_files_switch_the_right_instruments():
    regimes = {n: api.regime(n) for n in api.regime_names()}
    singles = set(regimes) - {"baseline", "combined"}
    assert singles == set(INSTRUMENT_NAMES)   # a regime of one instrument has the instrument's name
    assert all(r.name == n for n, r in regimes.items())
    on = {n: sorted(r.instruments) for n, r in regimes.items()}
    assert on == {"baseline": [], "combined": sorted(INSTRUMENT_NAMES), **{n: [n] for n in singles}}
    assert on == {n: sorted(i) for n, i in regime_files().items()}  # what the cross-check holds a name to


def test_an_instrument_has_one_name_for_its_regime_section_and_kernels():
    from sim.core import state

    cfg = api.compose()
    assert INSTRUMENT_NAMES == tuple(m.NAME for m in INSTRUMENTS) == REGISTRY
    for m in INSTRUMENTS:
        assert not hasattr(m, "SECTION")
        assert dataclasses.asdict(getattr(cfg, m.NAME)) == dataclasses.asdict(m.Params())  # its section: its name
    p = state.make_params(api.compose("regime=combined"), 0, 1)
    assert all(getattr(p, name).on for name in REGISTRY)   # the kernels' view of its parameters: its name
    assert tuple(p._fields[-len(REGISTRY):]) == REGISTRY
    # the main job's regimes and the combined regime are derived from the registry, not listed by hand
    assert Config().regimes == cfg.regimes == ["baseline", *REGISTRY, "combined"]
    assert api.compose("regime=combined").regime.instruments == list(REGISTRY)


@pytest.mark.parametrize("old, new", [("trial.term_months", "free_trial.term_months"),
                                      ("broker.rate", "broker_reward.rate"), ("voucher.cap", "vouchers.cap"),
                                      ("pledge.fund_size", "ip_pledge.fund_size"),
                                      ("experts.visit_cost", "expert_visits.visit_cost"),
                                      ("inventors.extra_share", "income_share.extra_share")])
def test_an_old_section_name_is_refused_naming_the_new_one(old, new):
    hint = f"(renamed in 0.2.0, an instrument has one name: write {new})"
    for call in (lambda: api.compose(f"{old}=1"), lambda: api.compose(f"+{old}=1"),
                 lambda: check_value(old, 1), lambda: replace(Config(), **{old: 1}),
                 lambda: load_config({old.split(".")[0]: {old.split(".")[1]: 1}}),
                 lambda: api.compose(f"+grid.{old}=[1]")):
        with pytest.raises(ConfigError) as e:
            call()
        assert hint.split(": write ")[0] in str(e.value) and new.split(".")[0] in str(e.value), str(e.value)
    with pytest.raises(ConfigError, match=re.escape(hint)):
        api.compose(f"{old}=1")
    assert check_value(new, 1) == 1   # the new key is the parameter


def test_the_old_regime_name_is_refused_naming_the_new_one():
    hint = "(renamed in 0.2.0, an instrument has one name: write insurance)"
    for call in (lambda: api.compose("regime=failure_insurance"), lambda: api.compose("regimes=[failure_insurance]"),
                 lambda: api.compose("at_spend=failure_insurance"),
                 lambda: load_config({"regime": {"name": "x", "instruments": ["failure_insurance"]}})):
        with pytest.raises(ConfigError, match=re.escape(hint)):
            call()


def test_regime_files_list_only_registered_instruments_each_once():
    assert set(INSTRUMENT_NAMES) == {m.NAME for m in INSTRUMENTS}
    files = sorted((ROOT / "configs" / "regime").glob("*.yaml"))
    assert {f.stem for f in files} == set(regime_files())
    for path in files:
        data = OmegaConf.to_container(OmegaConf.load(path))
        assert set(data) == {"name", "instruments"}, path
        assert data["name"] == path.stem, path
        if data["instruments"] == "all":   # every registered instrument: combined, and no other
            assert path.stem == "combined"
            continue
        assert isinstance(data["instruments"], list), path
        assert set(data["instruments"]) <= set(INSTRUMENT_NAMES), path
        assert len(set(data["instruments"])) == len(data["instruments"]), path
    # every instrument is switched on by some named regime
    assert set().union(*(set(i) for i in regime_files().values())) == set(INSTRUMENT_NAMES)


def test_a_custom_combination_of_instruments_needs_its_own_name():
    cfg = api.compose("regime.name=mix", "regime.instruments=[free_trial,insurance]")
    assert cfg.regime.name == "mix" and cfg.regime.instruments == ["free_trial", "insurance"]
    cfg = api.compose("regime=free_trial", "regime.name=trial_only")  # a named regime relabelled
    assert cfg.regime.name == "trial_only" and cfg.regime.instruments == ["free_trial"]
    assert api.compose("regime=combined").regime.instruments == list(INSTRUMENT_NAMES)  # everything


@pytest.mark.parametrize("overrides, fragment", [
    (["regime.name=mix", "regime.instruments=[free_trial,free_trial]"],
     "regime.instruments = ['free_trial', 'free_trial']: each instrument may appear once"),
    (["regime.name=mix", "regime.instruments=[nosuch]"],
     "regime.instruments contains 'nosuch': instruments are free_trial, broker_reward, insurance"),
    (["regime.instruments=[nosuch]"], "regime.instruments contains 'nosuch'"),
    (["regime=baseline", "regime.instruments=[insurance]"],
     "regime.instruments = ['insurance']: regime 'baseline' (configs/regime/baseline.yaml) has []"),
    (["regime.instruments=[free_trial]"], "regime.instruments = ['free_trial']: regime 'baseline'"),
    (["regime=combined", "regime.instruments=[free_trial,insurance]"],
     "regime.instruments = ['free_trial', 'insurance']: regime 'combined'"),
    (["regime.name=mix", "regime.instruments=free_trial"], "regime.instruments = 'free_trial': must be a list"),
])
def test_bad_instrument_lists_are_refused_in_one_line(overrides, fragment):
    with pytest.raises(ConfigError) as e:
        api.compose(*overrides)
    assert fragment in str(e.value)
    assert "\n" not in str(e.value)
    # the same from a plain mapping (a notebook's dict, a sweep's saved config)
    regime = {}
    for o in overrides:
        key, value = o.split("=", 1)
        if key == "regime":
            regime = {"name": value, "instruments": regime_files()[value]}
        elif key == "regime.name":
            regime["name"] = value
        else:
            regime["instruments"] = value.strip("[]").split(",") if value.startswith("[") else value
    regime.setdefault("name", "baseline")
    with pytest.raises(ConfigError) as e:
        load_config({"regime": regime})
    assert fragment in str(e.value) and "\n" not in str(e.value)


def test_a_named_regime_has_exactly_its_files_instruments_in_any_order():
    assert load_config({"regime": {"name": "combined", "instruments": list(reversed(INSTRUMENT_NAMES))}})
    with pytest.raises(ConfigError, match=r"^regime\.instruments = \[\]: regime 'free_trial'"):
        load_config({"regime": {"name": "free_trial"}})  # the name alone switches nothing on
    with pytest.raises(ConfigError, match=r"^unknown key 'regime.free_trial': allowed keys in regime are name, "
                                          r"instruments$"):
        load_config({"regime": {"name": "free_trial", "free_trial": True}})  # the old flags are gone


def test_instrument_defaults_are_the_documented_ones():
    cfg = api.compose()
    assert cfg.broker_reward.rate == 0.015 and cfg.broker_reward.cap == 300_000
    assert cfg.free_trial.term_months == 24 and cfg.free_trial.success_fee == 20_000


def test_config_yaml_lists_no_instrument():
    # what is per instrument comes from the registry (sim.core.config.register_hydra_defaults), not this file
    data = OmegaConf.to_container(OmegaConf.load(ROOT / "configs" / "config.yaml"))
    assert not set(data) & ({m.NAME for m in INSTRUMENTS} | {"regimes"})
    assert "registry" in data["defaults"]


def _leaves(d, prefix=""):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _leaves(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


@pytest.mark.parametrize("name", [p.stem for p in (api.CONFIG_DIR / "scenario").glob("*.yaml")
                                  if p.stem != "default" and not p.stem.endswith("_calibrated")])  # written by a calibration
def test_a_scenario_is_the_default_but_for_the_keys_its_file_sets(name):
    path = api.CONFIG_DIR / "scenario" / f"{name}.yaml"
    text = path.read_text()
    assert text.startswith("#") and "seed" in text.split("defaults:")[0], "a scenario says what it is built from"
    data = OmegaConf.to_container(OmegaConf.load(path))
    data.pop("defaults")
    own = dict(_leaves(data))
    composed = dict(_leaves(dataclasses.asdict(api.compose(f"scenario={name}").scenario)))
    default = dict(_leaves(dataclasses.asdict(Config().scenario)))
    for key, value in composed.items():
        expected = own.get(key, default[key])
        assert value == expected, f"scenario={name}: {key} = {value}, its file or the default says {expected}"


def test_lishui_scenario_inherits_and_overrides():
    cfg = api.compose("scenario=lishui")
    assert cfg.scenario.name == "lishui"
    assert cfg.scenario.firms.sme_share > Config().scenario.firms.sme_share
    assert cfg.scenario.brokers.initial < Config().scenario.brokers.initial
    assert cfg.scenario.achievements == Config().scenario.achievements  # inherited


@pytest.mark.parametrize("key, value, fragment", [
    ("scenario.firms.n", 0, "scenario.firms.n = 0: must be >= 1"),
    ("scenario.achievements.value_median", -5.0, "scenario.achievements.value_median = -5.0: must be > 0"),
    ("broker_reward.rate", 1.5, "broker_reward.rate = 1.5: must be >= 0 and <= 1"),
    ("broker_reward.cap", -1, "broker_reward.cap = -1"),
    ("insurance.subsidy_share", -0.1, "insurance.subsidy_share = -0.1"),
    ("seeds", "many", "seeds = 'many': must be an integer"),
    ("engine", "gpu", "engine = 'gpu': must be one of"),
    ("horizon", 7, "horizon = 7: must be one of 5, 10"),
    ("horizon", 60, "horizon = 60: must be one of 5, 10"),
])
def test_bad_values_name_key_value_and_range(key, value, fragment):
    with pytest.raises(ConfigError) as e:
        replace(Config(), **{key: value})
    assert fragment in str(e.value)
    assert "\n" not in str(e.value)


def test_a_horizon_of_5_or_10_years_sets_the_months_run():
    assert api.compose("horizon=10").scenario.months == 120
    assert api.compose("horizon=5", "scenario.months=36").scenario.months == 60   # the horizon decides
    assert api.compose("scenario.months=36").scenario.months == 36 and Config().horizon is None
    assert replace(api.compose("horizon=10"), seeds=3).scenario.months == 120


def test_unknown_key_lists_allowed_keys():
    with pytest.raises(ConfigError, match=r"unknown key 'scenario.firms.nn': allowed keys in scenario.firms are n, "):
        load_config({"scenario": {"firms": {"nn": 3}}})


def test_zero_length_trial_refused_only_where_trials_run():
    load_config({"free_trial": {"term_months": 0}})  # fine under baseline
    with pytest.raises(ConfigError, match="free_trial.term_months = 0: must be >= 1 when free trials are on"):
        load_config({"free_trial": {"term_months": 0}, "regime": {"name": "free_trial", "instruments": ["free_trial"]}})
    with pytest.raises(ConfigError, match="free_trial.term_months = 0: must be >= 1 when free trials are on .regime 'mix'"):
        load_config({"free_trial": {"term_months": 0}, "regime": {"name": "mix", "instruments": ["insurance", "free_trial"]}})
    load_config({"free_trial": {"term_months": 0}, "regime": {"name": "mix", "instruments": ["insurance", "broker_reward"]}})


def _run_cli(*args):
    return subprocess.run([sys.executable, "-m", "experiments.run", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("args, fragment", [
    (["scenario.firms.n=0"], "scenario.firms.n = 0: must be >= 1"),
    (["broker_reward.rate=2"], "broker_reward.rate = 2"),
    (["broker_reward.cap=-300000"], "broker_reward.cap = -300000"),
    (["scenario.achievements.ask_share=-1"], "scenario.achievements.ask_share = -1"),
    (["free_trial.term_months=0"], "free_trial.term_months = 0"),
    (["scenario.firms.nn=3"], "unknown key 'scenario.firms.nn': allowed keys in scenario.firms are"),
    (["+scenario.colour=red"], "unknown key 'scenario.colour'"),
    (["scenario=atlantis"], "Could not find 'scenario/atlantis'; allowed: " +  # and any calibrated scenario written here
     ", ".join(sorted(p.stem for p in (api.CONFIG_DIR / "scenario").glob("*.yaml")))),
    (["regimes=[baseline,lottery]"], "regimes contains 'lottery'"),
    (["regime.instruments=[free_trial]"], "regime.instruments = ['free_trial']: regime 'baseline'"),
    (["regime.name=mix", "regime.instruments=[nosuch]"], "regime.instruments contains 'nosuch'"),
    (["regime.free_trial=true"], "regime.free_trial"),
    (["horizon=7"], "horizon = 7: must be one of 5, 10"),
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


# Every instrument parameter with its default in the docs: tests/test_docs.py, on the parameter tables generated
# from each instrument's Params (docs/reference/instruments.md; the README's hand-kept tables are gone).


def test_compose_from_several_threads_at_once_gives_the_serial_result():
    """Hydra's GlobalHydra is one per process: compose holds a lock around its initialise/compose/clear, so threads
    composing at once (the dashboard's pages) all succeed, each with the config a lone compose gives."""
    import threading

    questions = [(f"seeds={n}", f"scenario.firms.n={100 + n}") for n in range(1, 6)]
    serial = [dataclasses.asdict(api.compose(*q)) for q in questions]
    assert [c["seeds"] for c in serial] == [1, 2, 3, 4, 5]
    results, errors = {}, []

    def work(t):
        for i, q in enumerate(questions):
            try:
                results[(t, i)] = api.compose(*q)
            except Exception as e:  # noqa: BLE001 - every failure is reported below
                errors.append(f"{type(e).__name__}: {e}")

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch as often as they can: the interleavings a busy server sees
    try:
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    finally:
        sys.setswitchinterval(interval)
    assert errors == []
    assert len(results) == 4 * len(questions)
    for (t, i), cfg in results.items():
        assert dataclasses.asdict(cfg) == serial[i], (t, i)
