"""Nothing silently wrong: every value the schema accepts runs correctly, every other one is refused in one line.

Each test here failed before the schema had bounds for every value, before the
command line was checked ahead of Hydra, and before the API validated what it is given.
"""

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sim import api
from sim.core.config import Config, ConfigError, load_config, regime_files, replace
from sim.core.population import MONEY_EXACT, check_memory, draw_population, money_bound, run_memory
from sim.core.columns import COLUMNS
from sim.core.results import BALANCE_COLUMNS, InvariantError, Series, _check_instruments

from ..conftest import SMALL, small

ROOT = Path(__file__).resolve().parents[2]


def _cli(tmp_path, *args, cwd=ROOT):
    p = subprocess.run([sys.executable, "-m", "experiments.run", *SMALL, "seeds=1", "regimes=[baseline]",
                        *args, f"hydra.run.dir={tmp_path}/run"], cwd=cwd, capture_output=True, text=True, timeout=300)
    return p


def _assert_one_line_config_error(p, *fragments):
    assert p.returncode == 2, (p.returncode, p.stdout[-2000:], p.stderr[-2000:])
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("config error: "), p.stderr
    assert "Traceback" not in p.stdout + p.stderr
    for f in fragments:
        assert f in lines[0], lines[0]


# --------------------------------------------------------------------------- bounds of the schema
@pytest.mark.parametrize("key, value", [
    ("broker_reward.cap", 1e19),                       # was cast to int64: government spend of -1e20 on numba
    ("insurance.subsidy_cap", 1e19),            # made insurance equal to baseline
    ("insurance.initial_reserves", 9.3e18),     # negative reserves
    ("scenario.firms.cash_median_sme", 1e300),  # the engines disagreed
    ("scenario.brokers.fee_rate", 1.0),         # with fee_firm_share=0: ZeroDivisionError on every brokered match
    ("scenario.months", 10**9),                 # MemoryError
    ("scenario.firms.n", 10**12),               # MemoryError
    ("seed", 2**63),                            # numba TypingError (mesa accepted it)
    ("scenario.achievements.value_sigma", 50.0),
    ("scenario.achievements.quality_a", 1e-300),  # 0/0 in the Beta sampler
])
def test_values_that_gave_wrong_numbers_or_crashed_are_refused(key, value):
    with pytest.raises(ConfigError) as e:
        replace(Config(), **{key: value})
    assert str(e.value).startswith(f"{key} = ") and "must be" in str(e.value) and "\n" not in str(e.value)


def test_every_number_of_the_schema_has_an_upper_bound():
    """No accepted config can overflow: every int and float field is bounded above (or is a share)."""
    import typing

    def walk(cls, prefix=""):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            t = hints[f.name]
            if dataclasses.is_dataclass(t):
                yield from walk(t, f"{prefix}{f.name}.")
            elif t in (int, float) or typing.get_args(t)[:1] == (float,):
                yield f"{prefix}{f.name}", f.metadata

    unbounded = [k for k, m in walk(Config) if m.get("le") is None and m.get("lt") is None]
    assert not unbounded, unbounded


def test_largest_money_values_run_exactly_on_both_engines():
    """Money at the schema's bound: the books still balance to the yuan and the engines agree."""
    cfg = api.under_regime(small("broker_reward.cap=1e12", "insurance.subsidy_cap=1e12", "insurance.initial_reserves=1e12",
                                 "insurance.min_reserves=1e12", "free_trial.success_fee=1e12",
                                 "scenario.firms.cash_median_large=1e12"), "combined")
    a = api.simulate(cfg, 0, engine="mesa")
    b = api.simulate(cfg, 0, engine="numba")
    assert np.array_equal(a.series, b.series)  # and simulate checked the invariants of both
    assert a.series[:, Series.CASH_FIRMS].max() > 1e12  # the large firms' cash really is that large


def test_broker_fees_at_their_bound_run_without_division_by_zero():
    """fee_rate at its largest with the university paying all of it: brokered deals still run, books balance."""
    cfg = api.under_regime(small("scenario.brokers.fee_rate=0.5", "scenario.brokers.fee_firm_share=0"), "combined")
    runs = [api.simulate(cfg, s, engine=e) for s in range(3) for e in ("mesa", "numba")]
    assert all(np.array_equal(runs[i].series, runs[i + 1].series) for i in range(0, 6, 2))
    assert sum(r.summary["matches_brokered"] for r in runs) > 0


def test_money_beyond_exact_counting_is_refused_before_the_run():
    cfg = small("scenario.achievements.value_median=1e12", "scenario.achievements.value_sigma=3")
    pop = draw_population(cfg, 0)
    assert money_bound(cfg, pop) >= MONEY_EXACT
    for engine in ("mesa", "numba"):
        with pytest.raises(ConfigError, match=r"^scenario \(seed 0\): the money of this run could reach .* "
                                              r"lower scenario.achievements.value_median"):
            api.simulate(cfg, 0, engine=engine)


# every flow of yuan (payments of each kind, incomes, surplus, unpaid claims and refused rewards)
MONEY_FLOWS = [i for i, c in enumerate(COLUMNS) if c.money and not c.stock]


def test_money_bound_covers_the_money_of_real_runs():
    """The bound is an upper bound: every balance and flow of real runs stays below it."""
    for regime in ("baseline", "combined"):
        cfg = api.under_regime(small(), regime)
        for seed in range(3):
            r = api.simulate(cfg, seed, engine="numba")
            bound = money_bound(cfg, draw_population(cfg, seed))
            assert np.abs(r.series[:, MONEY_FLOWS]).sum() < bound   # all of them together, even
            assert np.abs(r.series[:, list(BALANCE_COLUMNS)]).max() < bound


def test_memory_is_estimated_before_anything_is_drawn(monkeypatch):
    cfg = small("scenario.firms.n=100000000")
    need = sum(run_memory(cfg, "mesa").values())
    assert need > 1e11  # 10^8 Mesa firms: ~150 GB
    monkeypatch.setattr("sim.core.population.available_memory", lambda: 8e9)
    with pytest.raises(ConfigError, match=r"^scenario.firms.n = 100000000: needs about \d+\.\d GB of memory "
                                          r"\(engine mesa\) and 8.0 GB is available"):
        api.simulate(cfg, 0)
    check_memory(small(), "mesa")  # a small run fits
    # a firm's project slots at the expected SME share: 0.5 x 2 + 0.5 x 6 = 4 slots a firm
    from sim.core.population import _BYTES

    four = small("scenario.firms.n=1000", "scenario.firms.sme_share=0.5", "scenario.firms.projects_sme=2",
                 "scenario.firms.projects_large=6")
    for engine in ("mesa", "numba"):
        b = _BYTES[engine]
        assert run_memory(four, engine)["scenario.firms.n"] == 1000 * (b["firm"] + 4 * b["project"])


def test_huge_population_is_refused_on_the_command_line_without_a_memory_error(tmp_path):
    p = _cli(tmp_path, "scenario.firms.n=100000000")  # 10^8 firms: more memory than this kind of machine has
    _assert_one_line_config_error(p, "scenario.firms.n = 100000000: needs about")


# --------------------------------------------------------------------------- the command line
@pytest.mark.parametrize("args, fragment", [
    (["seed=${nosuchkey}"], "seed = '${nosuchkey}': cannot be resolved"),
    (["seed=${oc.env:TECHTRANSFER_NO_SUCH_VARIABLE}"], "not read from the environment"),
    (["+" + "k" * 300 + "=1"], "unknown key 'kkkk"),
    (["scenario.name=丽水"], "cannot be parsed"),
    (["丽水=1"], "cannot be parsed"),
    (["regime=[baseline,combined]"], "regime = ['baseline', 'combined']: pick one regime by name"),
    (["regime.free_trial=true"], "unknown key 'regime.free_trial': allowed keys in regime are name, instruments"),
    (["regime.instruments=[free_trial]"],
     "regime.instruments = ['free_trial']: regime 'baseline' (configs/regime/baseline.yaml) has []"),
    (["regime=baseline", "regime.instruments=[insurance]"], "regime.instruments = ['insurance']: regime 'baseline'"),
    (["regime.name=mix", "regime.instruments=[free_trial,free_trial]"], "each instrument may appear once"),
    (["regime.name=mix", "regime.instruments=[nosuch]"], "regime.instruments contains 'nosuch': instruments are"),
    (["regime.name=mix", "regime.instruments=insurance"], "regime.instruments = 'insurance': must be a list"),
    (["regime.name=atlantis"], "regime 'atlantis': allowed are baseline"),  # the main job runs named regimes
    (["seed=9223372036854775808", "engine=numba"], "seed = 9223372036854775808: must be >= 0"),
    (["seed=9223372036854775807", "seeds=2"], "the last seed, seed + seeds - 1, must be <="),
    (["broker_reward.cap=1e19"], "broker_reward.cap = 1e+19: must be >= 0 and <= 1e+12"),
    (["scenario.brokers.fee_rate=1", "scenario.brokers.fee_firm_share=0"], "scenario.brokers.fee_rate = 1.0"),
    (["scenario.months=1e9"], "scenario.months = 1000000000: must be >= 1 and <= 1200"),
    (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    (["scenario=null"], "scenario = None: must name a scenario"),
    (["scenario=3"], "scenario = 3: must name a scenario"),
    (["broker_reward.cap=1" + "0" * 400], "broker_reward.cap = 1000"),  # an int beyond any float
    (["broker_reward.rate=${nosuchkey}"], "broker_reward.rate = '${nosuchkey}': cannot be resolved"),
    (["~seed"], "~seed: a setting cannot be deleted"),
    (["scenario.name="], "scenario.name = '': must be printable text of 1 to 200 characters"),
    (["scenario.brokers.max=1000000", "scenario.brokers.capacity=10000"], "a run would take days"),
])
def test_bad_command_lines_are_one_line_errors(tmp_path, args, fragment):
    _assert_one_line_config_error(_cli(tmp_path, *args), fragment)
    assert not (tmp_path / "run" / "summary.csv").exists()


@pytest.mark.parametrize("line, refused", [
    ("scenario.firms.n=${oc.env:HOME}", True), ("seeds=${ oc.env:N,3}", True), ("grid.vouchers.rate=[${oc.env:R}]", True),
    ("scenario.name=a${oc.decode:x}", True), ("broker_reward.cap=${vouchers.cap}", False),  # a reference: kept
    ("dashboard.port=${oc.env:PORT,8765}", False),  # an app's own setting may read its deployment's environment
    ("hydra.run.dir=${oc.env:HOME}/runs", False), ("scenario.name=oc.env", False),
    ("seeds=${dashboard.cache}", "refer only"), ("scenario.name=${hydra.job.name}", "refer only"),  # indirection
    ("dashboard.cache=${seeds}", False),
    ("results_dir=${oc.env:SCRATCH}/store", False), ("workers=${oc.env:CORES}", False),  # where and how, not what
])
def test_model_values_never_read_the_environment(line, refused):
    from experiments.cli import check_command_line
    from experiments.dashboard.__main__ import DashboardConfig

    if refused:
        with pytest.raises(ConfigError, match="refer only" if refused == "refer only" else "not read from the env"):
            check_command_line([line], {"dashboard": DashboardConfig})
    else:
        check_command_line([line], {"dashboard": DashboardConfig})


def test_quoted_non_ascii_text_is_accepted():
    assert api.compose("scenario.name='丽水'").scenario.name == "丽水"


def test_output_folder_that_cannot_be_created_is_a_config_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    p = subprocess.run([sys.executable, "-m", "experiments.run", *SMALL, "seeds=1", "regimes=[baseline]",
                        f"hydra.run.dir={blocker}/run"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    _assert_one_line_config_error(p, "cannot create the output folder", "Not a directory")


@pytest.fixture
def read_only_folder(tmp_path):
    """A read-only file system (a tmpfs mounted read-only): even root cannot write there."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a read-only tmpfs here (needs root)")
    yield folder
    subprocess.run(["umount", str(folder)], check=False)


def test_read_only_output_folder_is_refused_before_any_run(read_only_folder):
    p = subprocess.run([sys.executable, "-m", "experiments.run", *SMALL, "seeds=1", "regimes=[baseline]",
                        f"hydra.run.dir={read_only_folder}"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    _assert_one_line_config_error(p, f"hydra.run.dir = '{read_only_folder}': cannot write there")
    assert "scenario " not in p.stdout  # refused before the comparison started


def test_read_only_results_folder_of_a_sweep_is_refused_before_any_run(tmp_path, read_only_folder):
    p = subprocess.run([sys.executable, "-m", "experiments.run", "-m", *SMALL, "seed=0,1",
                        f"results_dir={read_only_folder}"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=300)
    assert p.returncode != 0 and "results_dir" in p.stderr and "cannot write there" in p.stderr
    assert "Traceback" not in p.stderr


# --------------------------------------------------------------------------- the API
def test_simulate_validates_a_config_built_or_changed_by_hand():
    cfg = small()
    bad_months = dataclasses.replace(cfg, scenario=dataclasses.replace(cfg.scenario, months=0))
    with pytest.raises(ConfigError, match="scenario.months = 0: must be >= 1"):
        api.simulate(bad_months, 0)
    bad_rate = dataclasses.replace(cfg, broker_reward=dataclasses.replace(cfg.broker_reward, rate=float("nan")))
    with pytest.raises(ConfigError, match="broker_reward.rate = nan: must be a finite number"):
        api.simulate(bad_rate, 0, engine="numba")
    cfg.scenario.firms.n = -5  # changed after validation
    with pytest.raises(ConfigError, match="scenario.firms.n = -5"):
        api.run_batch([(cfg, 0)])


@pytest.mark.parametrize("engine", ["mesa", "numba"])
@pytest.mark.parametrize("seed", [-1, 2**63, 1.5, "3", True])
def test_a_bad_seed_is_refused_by_both_engines(engine, seed):
    with pytest.raises(ConfigError, match="seed = .*: must be an integer >= 0"):
        api.simulate(small(), seed, engine=engine)


def test_run_batch_and_compare_refuse_bad_arguments():
    cfg = small()
    with pytest.raises(ConfigError, match="chunksize = -1: must be an integer >= 1"):
        api.run_batch([(cfg, 0)], chunksize=-1)
    with pytest.raises(ConfigError, match="workers = 0"):
        api.run_batch([(cfg, 0)], workers=0)
    with pytest.raises(ConfigError, match="each regime may appear once"):
        api.compare(cfg, regimes=["baseline", "baseline"])
    with pytest.raises(ConfigError, match="regimes contains 'lottery'"):
        api.compare(cfg, regimes=["baseline", "lottery"])
    with pytest.raises(ConfigError, match="seeds = 0"):
        api.compare(cfg, seeds=0)


@pytest.mark.parametrize("name", ["../../configs/regime/combined", "/etc/passwd", "combined.yaml", ""])
def test_a_regime_is_a_name_never_a_path(name):
    with pytest.raises(ConfigError, match="allowed are baseline"):
        api.regime(name)


def test_grid_over_settings_that_are_not_model_parameters_is_refused():
    for grid, fragment in ((({"seed": [1, 2]}), "grid.seed: a grid sweeps model parameters"),
                           ({"seeds": [1, 2]}, "grid.seeds"),
                           ({"regime": {"name": ["free_trial"]}}, "grid.regime.name"),
                           ({"regime": {"instruments": [["insurance"], []]}}, "grid.regime.instruments"),
                           ({"broker_reward": {"rate": [0.01, 2.0]}}, "grid.broker_reward.rate: broker_reward.rate = 2.0"),
                           ({"broker_reward": {"rate": [0.01, 0.01]}}, "each value may appear once")):
        with pytest.raises(ConfigError, match=fragment.replace(".", r"\.").replace("(", r"\(")):
            load_config({"grid": grid})


# --------------------------------------------------------------------------- invariants on every run
def test_a_run_that_breaks_the_books_is_an_error_not_a_result(monkeypatch):
    from sim.core import ledger
    from sim.engines.mesa.agents import Project

    settle = Project.settle

    def leaky_settle(self):  # a researcher's bug: a yuan lost from the firm's account at each settlement
        out = settle(self)
        arrays = self.model.arrays
        arrays.balance[arrays.acct_base[ledger.FIRM] + self.firm.index] -= 1
        return out

    monkeypatch.setattr(Project, "settle", leaky_settle)
    with pytest.raises(InvariantError, match="money adds up to"):
        api.simulate(small(), 0, engine="mesa")
    r = api.simulate(small(), 0, engine="mesa", check=False)  # asked not to check: the broken numbers come back
    with pytest.raises(InvariantError):
        r.check()


def test_rounded_claims_and_rewards_pass_their_invariants():
    """Claims are rounded half up and rewards down, per payment: the checks allow exactly that, over many runs."""
    cfg = api.under_regime(small("engine=numba", "insurance.deductible=0", "insurance.coverage=0.9", "broker_reward.rate=0.7",
                                 "scenario.firms.need_rate_sme=0.5", "scenario.firms.need_rate_large=0.5"), "combined")
    runs = api.run_batch([(cfg, seed) for seed in range(40)])  # each run's invariants are checked
    assert sum(r.summary["claims"] for r in runs) > 0 and sum(r.summary["broker_rewards"] for r in runs) > 0


def test_invariants_include_the_instruments_rules():
    r = api.simulate(api.under_regime(small(), "combined"), 1, engine="numba")
    r.check()
    for column, value, fragment, busy in ((Series.BROKER_REWARDS, 1e9, "broker rewards", Series.CONTRACT_PAYMENTS),
                                          (Series.PREMIUM_SUBSIDIES, 1e9, "premium subsidies", Series.SIGNED_INSURED),
                                          (Series.CLAIMS, 1e12, "claims exceed", Series.FAILURES)):
        s = r.series.copy()
        month = int(np.argmax(s[:, busy]))  # a month where the payment may be made, but not that much of it
        assert s[month, busy] > 0
        s[month, column] += value
        with pytest.raises(InvariantError, match=fragment):
            _check_instruments(s, r.config)
    for column, fragment in ((Series.TRIAL_PAYMENTS, "trial payments without a converted trial"),
                             (Series.CLAIMS, "claims paid in a month without failures")):
        s = r.series.copy()
        month = int(np.argmin(s[:, Series.TRIALS_CONVERTED] + s[:, Series.FAILURES]))
        assert s[month, Series.TRIALS_CONVERTED] + s[month, Series.FAILURES] == 0
        s[month, column] += 100
        with pytest.raises(InvariantError, match=fragment):
            _check_instruments(s, r.config)
    # an instrument the regime does not list moves nothing
    base = api.simulate(small(), 1, engine="numba")
    _check_instruments(base.series, base.config)
    for column, fragment in ((Series.PREMIUMS_FIRM, "premiums_firm is not zero though insurance is off"),
                             (Series.PREMIUM_SUBSIDIES, "premium_subsidies is not zero though insurance is off"),
                             (Series.BROKER_REWARDS, "broker_rewards is not zero though broker_reward is off"),
                             (Series.SIGNED_TRIAL, "signed_trial is not zero though free_trial is off")):
        s = base.series.copy()
        s[3, column] = 100
        with pytest.raises(InvariantError, match=fragment):
            _check_instruments(s, base.config)
    # what is on is what the regime lists, whatever its name: the combined run's trials are fine under a custom
    # regime listing every instrument, and an error under one that leaves free trials out
    assert r.summary["signed_trial"] > 0
    every = list(regime_files()["combined"])
    _check_instruments(r.series, small("regime.name=all", f"regime.instruments=[{','.join(reversed(every))}]"))
    without = [i for i in every if i != "free_trial"]
    with pytest.raises(InvariantError, match="is not zero though free_trial is off"):
        _check_instruments(r.series, small("regime.name=mix", f"regime.instruments=[{','.join(without)}]"))
