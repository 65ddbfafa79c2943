"""Property-based fuzzing of every file format the project reads (issue 23, point 8).

Each reader, given ANY bytes or structure, either returns a valid object or raises the
project's one-line error (``ConfigError`` and its subclasses ``YamlError``,
``SweepFolderError``): never another exception, never a hang, never something
inconsistent. The strategies mutate the project's real files (``configs/targets/``,
``configs/spaces/``, ``configs/levers/``, a posterior as the calibration writes it): keys
dropped, retyped, renamed or duplicated, values replaced by nasty ones (0, negatives,
1e-200, nan, inf, 300-digit numbers, huge strings, lists, mappings, unknown statistics),
text truncated or given bytes that are not UTF-8.

Failures found become the named regression tests below each strategy.

Runs: ``pytest tests/core/test_fuzz_files.py``. As in ``tests/core/test_fuzz.py``, ``FUZZ_SCALE=10``
runs ten times the examples and ``FUZZ_RANDOM=1`` draws new examples on each run (the
default is derandomized).
"""

from __future__ import annotations

import copy
import math
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, event, example, given
from hypothesis import strategies as st

from sim.core.config import ConfigError

from .test_fuzz import _settings

ROOT = Path(__file__).resolve().parents[2]
TARGETS = ROOT / "configs" / "targets" / "reported.yaml"
SPACE = ROOT / "configs" / "spaces" / "judgement.yaml"
LEVERS = ROOT / "configs" / "levers" / "instruments.yaml"
# the whole file must stay within about a minute here: pure-Python readers, tens of examples each
_FILE_SETTINGS = dict(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                             HealthCheck.function_scoped_fixture])


def _one_line(e: BaseException, *names: str) -> str:
    """The error's message, asserted to be one non-empty line naming one of ``names`` (if given)."""
    msg = str(e)
    assert msg.strip(), f"{type(e).__name__} with an empty message"
    assert "\n" not in msg and "\r" not in msg, f"more than one line: {msg[:500]!r}"
    if names:
        assert any(n in msg for n in names), f"names none of {names}: {msg[:300]!r}"
    return msg


@pytest.fixture(scope="module")
def scratch():
    d = Path(tempfile.mkdtemp(prefix="fuzz_files_"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


# ----------------------------------------------------------------------------- strategies
NASTY_NUMBERS = [0, -1, 1e-200, -1e-200, 1e308, -1e308, math.nan, math.inf, -math.inf, 10 ** 300, -(10 ** 300),
                 10 ** 400, 0.5, 2, -0.0, 2 ** 63, 2 ** 64]
NASTY_OTHERS = [None, True, False, "", "x" * 100_000, "1e3", "nan", "successes / contracts",
                "no_such_metric / contracts", "__import__('os')", "丽水", "\x00", [], [1, 2], {}, {"a": 1},
                {"low": 1, "high": 2}, "${a}", "${oc.env:HOME}", "${oc.decode:'[1, 2]'}"]


def nasty_values():
    return st.one_of(st.sampled_from(NASTY_NUMBERS + NASTY_OTHERS), st.integers(), st.floats(),
                     st.text(max_size=20), st.lists(st.integers(), max_size=3))


def _paths(obj, prefix=()):
    """Every path (tuple of keys/indices) into nested dicts and lists, the root excluded."""
    out = []
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for k, v in items:
        out.append(prefix + (k,))
        out += _paths(v, prefix + (k,))
    return out


def _parent(data, path):
    for k in path[:-1]:
        data = data[k]
    return data


@st.composite
def mutated_data(draw, original):
    """A deep copy of ``original`` with one to four structural mutations."""
    data = copy.deepcopy(original)
    for _ in range(draw(st.integers(1, 4))):
        paths = _paths(data)
        if not paths:
            break
        leaves = [p for p in paths if not isinstance(_parent(data, p)[p[-1]], (dict, list))]
        op = draw(st.sampled_from(["drop", "set", "set", "leaf", "leaf", "leaf", "rename", "wrap", "add"]))
        path = draw(st.sampled_from(leaves if op == "leaf" and leaves else paths))
        parent, key = _parent(data, path), path[-1]
        op = "set" if op == "leaf" else op
        if op == "drop":
            del parent[key]
        elif op == "set":   # (a copy: a later mutation must not change the list of nasty values)
            parent[key] = copy.deepcopy(draw(nasty_values()))
        elif op == "rename" and isinstance(parent, dict):
            parent[draw(st.sampled_from(["x", "unknown_key", 1, "name", "use", "sd", "value", "low"]))] = \
                parent.pop(key)
        elif op == "wrap":
            parent[key] = draw(st.sampled_from([[parent[key]], {"value": parent[key]}, str(parent[key])]))
        elif op == "add" and isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=8))] = copy.deepcopy(draw(nasty_values()))
    return data


def _dump(data) -> str:
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=10 ** 9)


@st.composite
def mutated_text(draw, original_text: str, original_data):
    """Text of a YAML file: the original mutated as data, or as text (truncated, a line duplicated (duplicate
    keys), bytes that are not UTF-8 inserted)."""
    kind = draw(st.sampled_from(["data", "data", "data", "truncate", "duplicate", "bytes"]))
    if kind == "data":
        return _dump(draw(mutated_data(original_data))).encode("utf-8")
    raw = original_text.encode("utf-8")
    if kind == "truncate":
        return raw[:draw(st.integers(0, len(raw)))]
    if kind == "duplicate":
        lines = original_text.splitlines(keepends=True)
        i = draw(st.integers(0, len(lines) - 1))
        return "".join(lines[:i + 1] + [lines[i]] + lines[i + 1:]).encode("utf-8")
    i = draw(st.integers(0, len(raw)))
    return raw[:i] + draw(st.binary(min_size=1, max_size=8)) + raw[i:]


# ----------------------------------------------------------------------------- a. sim/core/yamlsafe.py
_SCALARS = ["1", "-1", "1e3", "1" * 400, "-" + "9" * 400, ".nan", ".inf", "0x1F", "0o17", "~", "null", "true", "yes",
            "'quoted'", '"\\u00e9"', "丽水", "2026-12-06", "!!python/object:os.system x", "!!python/name:os.system ''",
            "!!binary aGVsbG8=", "!!set {a, b}", "!!omap [a: 1]", "!custom x", "${a}", "${a}${a}", "${oc.env:HOME}",
            "${oc.decode:'[1]'}", "${", "}", "&", "*", "*undefined", "[", "{", ":", "- -", "? a"]


@st.composite
def yaml_texts(draw):
    """YAML-ish text: mappings and lists of scalars, anchors and aliases (some to undefined or enclosing nodes),
    tags, deep nesting, huge numbers, interpolations (self-referring, doubling), stray syntax, non-UTF-8 bytes."""
    kind = draw(st.sampled_from(["mapping", "mapping", "deep", "bomb", "doubling", "self", "bytes", "free"]))
    if kind == "deep":
        n = draw(st.integers(90, 400))
        opener = draw(st.sampled_from(["[", "{a: ", "- "]))
        if opener == "- ":
            return "".join("  " * i + "-\n" for i in range(n)) + "  " * n + "x\n"
        closer = "]" if opener == "[" else "}"
        return opener * n + "x" + closer * n
    if kind == "bomb":
        n, width = draw(st.integers(3, 25)), draw(st.integers(2, 9))
        lines = ["a0: &a0 [" + ", ".join(["lol"] * width) + "]"]
        lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]" for i in range(1, n)]
        return "\n".join(lines) + "\n"
    if kind == "doubling":
        n = draw(st.integers(2, 60))
        lines = ["a0: xx"] + [f"a{i}: ${{a{i - 1}}}${{a{i - 1}}}" for i in range(1, n)]
        if draw(st.booleans()):
            lines.reverse()
        return "\n".join(lines) + "\n"
    if kind == "self":
        return draw(st.sampled_from(["a: ${a}\n", "a: ${b}\nb: ${a}\n", "a: &x [*x]\n", "a: &x {b: *x}\n",
                                     "a: ${.a}\n", "a: {b: ${..a}}\n", "a: ${oc.decode:'${a}'}\n"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "free":
        tokens = st.sampled_from(list("ab:-[]{}&*!,\"'#%|> \n\t$") + ["\n  ", "${", "丽", "&a ", "*a", "!!str "])
        return "".join(draw(st.lists(tokens, max_size=60)))
    lines = []
    anchors = []
    for i in range(draw(st.integers(1, 12))):
        key = draw(st.sampled_from(["a", "b", "name", "x" * 50, "1", "1.5", "null", "[1]", "? k", "${a}"]))
        value = draw(st.sampled_from(_SCALARS + ["[1, 2]", "{k: v}", "[*a0, *a0]"]))
        prefix = ""
        if draw(st.booleans()):
            anchors.append(f"a{i}")
            prefix = f"&a{i} "
        if anchors and draw(st.integers(0, 4)) == 0:
            value = "*" + draw(st.sampled_from(anchors))
        indent = "  " * draw(st.integers(0, 2))
        lines.append(f"{indent}{key}: {prefix}{value}")
    return "\n".join(lines) + "\n"


@_settings(300, **_FILE_SETTINGS)
@given(text=yaml_texts(), omegaconf=st.booleans())
@example(text="a: &x [*x]\n", omegaconf=True)
@example(text=b"a: \xff\xfe\n", omegaconf=False)
def test_yamlsafe_reads_any_text_or_refuses_it_in_one_line(text, omegaconf, scratch):
    from sim.core.yamlsafe import YamlError, parse_yaml

    try:
        data = parse_yaml(text, "fuzz.yaml", omegaconf=omegaconf)
    except YamlError as e:
        assert _one_line(e, "fuzz.yaml").startswith("fuzz.yaml: ")
        event("refused")
        return
    # what it returns is plain data: no Python object built from a tag
    def plain(o, depth=0):
        assert depth <= 101
        if isinstance(o, dict):
            for k, v in o.items():
                plain(k, depth + 1)
                plain(v, depth + 1)
        elif isinstance(o, (list, tuple, set)):
            for v in o:
                plain(v, depth + 1)
        else:
            assert o is None or isinstance(o, (str, int, float, bool, bytes)) or type(o).__module__ == "datetime", \
                type(o)

    plain(data)


@_settings(150, **_FILE_SETTINGS)
@given(text=yaml_texts())
def test_a_yaml_mapping_file_is_read_or_refused_in_one_line(text, scratch):
    """sim.analysis.calibration.read_yaml_mapping (spaces, levers): through OmegaConf, interpolations never resolved."""
    from sim.analysis.calibration import read_yaml_mapping

    path = scratch / "mapping.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    try:
        data = read_yaml_mapping(path, "space")
    except ConfigError as e:
        _one_line(e, "space = ")
        event("refused")
        return
    assert isinstance(data, dict)


def test_an_interpolation_chain_doubling_at_each_line_is_read_as_text_not_resolved(scratch):
    """Found by the fuzzer: `a1: ${a0}${a0}`, `a2: ${a1}${a1}`, ... was resolved by OmegaConf anew at each
    reference, so 20 lines took minutes and 60 lines forever. Spaces, levers, target sets and named regimes now
    read an interpolation as its text."""
    from sim.analysis.calibration import read_yaml_mapping
    from sim.analysis.targets import load_targets

    lines = ["a0: xx"] + [f"a{i}: ${{a{i - 1}}}${{a{i - 1}}}" for i in range(1, 60)]
    path = scratch / "doubling.yaml"
    path.write_text("\n".join(lines) + "\n")
    data = read_yaml_mapping(path, "space")
    assert data["a59"] == "${a58}${a58}"
    target_text = TARGETS.read_text().replace("name: reported", "name: reported\n" + "\n".join(
        f"x{i}: ${{x{i - 1}}}${{x{i - 1}}}" for i in range(1, 60)), 1)
    path.write_text(target_text)
    with pytest.raises(ConfigError, match="unknown key 'x1'"):  # read, then refused for its keys, at once
        load_targets(str(path))
    path.write_text(TARGETS.read_text().replace("description: ", "description: ${description}${description} ", 1))
    assert load_targets(str(path)).description.startswith("${description}${description} ")


# ----------------------------------------------------------------------------- b. target sets
_TARGETS_TEXT = TARGETS.read_text()
_TARGETS_DATA = yaml.safe_load(_TARGETS_TEXT)


def _check_target_set(ts):
    from sim.analysis.targets import USES

    assert ts.settings and ts.targets
    for name, t in ts.targets.items():
        assert t.setting in ts.settings, name
        assert t.use in USES, name
        assert math.isfinite(t.observed), name
        assert math.isfinite(t.sigma) and t.sigma > 0, (name, t.sigma)
        assert math.isfinite(t.discrepancy) and t.discrepancy >= 0, name
    for s in ts.settings.values():
        assert isinstance(s.scenario, str) and s.scenario
        assert isinstance(s.seeds, int) and 1 <= s.seeds <= 100


def _read_or_refused(load, raw: bytes, path):
    """``load`` of a file holding ``raw``: what it read, or None when it refused the file in one line."""
    path.write_bytes(raw)
    try:
        return load(str(path))
    except ConfigError as e:
        _one_line(e)
        event("refused")
        return None


@_settings(150, **_FILE_SETTINGS)
@given(raw=mutated_text(_TARGETS_TEXT, _TARGETS_DATA))
def test_a_mutated_target_set_is_read_consistent_or_refused_in_one_line(raw, scratch):
    from sim.analysis.targets import load_targets

    ts = _read_or_refused(load_targets, raw, scratch / "targets.yaml")
    if ts is not None:
        _check_target_set(ts)


# ----------------------------------------------------------------------------- c. spaces and levers
_SPACE_TEXT, _LEVERS_TEXT = SPACE.read_text(), LEVERS.read_text()
_SPACE_DATA, _LEVERS_DATA = yaml.safe_load(_SPACE_TEXT), yaml.safe_load(_LEVERS_TEXT)


def _check_params(params):
    from sim.core.config import parameter_keys

    keys = set(parameter_keys())
    for p in params:
        assert p.key in keys
        assert math.isfinite(p.low) and math.isfinite(p.high) and p.low < p.high, p
        assert p.scale in ("linear", "log") and (p.scale == "linear" or p.low > 0), p


@_settings(100, **_FILE_SETTINGS)
@given(raw=mutated_text(_SPACE_TEXT, _SPACE_DATA))
def test_a_mutated_parameter_space_is_read_consistent_or_refused_in_one_line(raw, scratch):
    from sim.analysis.calibration import load_space

    space = _read_or_refused(load_space, raw, scratch / "space.yaml")
    if space is None:
        return
    assert space.params
    _check_params(space.params)


@_settings(100, **_FILE_SETTINGS)
@given(raw=mutated_text(_LEVERS_TEXT, _LEVERS_DATA))
def test_mutated_levers_are_read_consistent_or_refused_in_one_line(raw, scratch):
    from sim.analysis.explore import load_levers
    from sim.instruments import REGISTRY

    levers = _read_or_refused(load_levers, raw, scratch / "levers.yaml")
    if levers is None:
        return
    assert levers.switches or levers.params
    assert all(isinstance(s, str) and s in REGISTRY for s in levers.switches)
    assert len(set(levers.switches)) == len(levers.switches)
    _check_params(levers.params)


_HUGE = "1" + "0" * 400   # an integer beyond any float, as YAML reads it


@pytest.mark.parametrize("reader, text, key", [
    ("space", "parameters:\n  broker_reward.rate: {low: 0, high: %s}\n" % _HUGE, "space.parameters.broker_reward.rate.high"),
    ("levers", "parameters:\n  broker_reward.rate: {low: -%s, high: 0.01}\n" % _HUGE, "levers.parameters.broker_reward.rate.low"),
    ("targets", _TARGETS_TEXT.replace("sd: ", "sd: " + _HUGE + "  # ", 1), ".sd = 1000"),
])
def test_an_integer_beyond_any_float_is_refused_in_one_line(reader, text, key, scratch):
    """Found by the fuzzer: `high: 1` and 400 zeros (a YAML integer no float can hold) raised OverflowError from
    math.isfinite in parse_params (spaces, levers) and in a target's numbers, a traceback instead of one line."""
    from sim.analysis.calibration import load_space
    from sim.analysis.explore import load_levers
    from sim.analysis.targets import load_targets

    assert ("sd: " in _TARGETS_TEXT) or reader != "targets"
    path = scratch / f"huge_{reader}.yaml"
    path.write_text(text)
    load = {"space": load_space, "levers": load_levers, "targets": load_targets}[reader]
    with pytest.raises(ConfigError, match="must be a finite number") as e:
        load(str(path))
    assert key in _one_line(e.value)


def test_an_optimise_constraint_beyond_any_float_is_refused_in_one_line():
    from sim.analysis.optimise import check_constraints

    with pytest.raises(ConfigError, match="must be a finite number") as e:
        check_constraints({"public_cost": 10 ** 400})
    _one_line(e.value, "constraints.public_cost")


# ----------------------------------------------------------------------------- d. a posterior
_RISK, _SURFACE, _NOISE = "scenario.firms.risk_aversion_sme", "expert_visits.surface_chance", "scenario.firms.self_noise"
_PARTICLES = pd.DataFrame({"weight": [0.5, 0.3, 0.2], _RISK: [1.0, 3.0, 6.0], _SURFACE: [0.2, 0.6, 0.9],
                           _NOISE: [0.5, 0.5, 0.5]})
_POSTERIOR_META = {"target_set": "reported", "scenarios": {"default": [_RISK, _SURFACE], "lishui": [_NOISE]},
                   "created": "by a test"}
_NASTY_WEIGHTS = [math.nan, math.inf, -math.inf, -1.0, 1e308, 0.0, 1e-320, "x", "", True, 10 ** 400]


@st.composite
def posterior_files(draw):
    """(posterior.csv bytes, posterior.yaml bytes): the table's weights or values made nasty, columns dropped,
    added (structural, uncalibrated or unknown keys) or duplicated; the YAML mutated as data; either truncated or
    given bytes that are not UTF-8."""
    df = _PARTICLES.astype(object).copy()
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(["weights", "weight", "value", "drop", "add", "duplicate", "rows"]))
        if op == "weights":  # every weight the same nasty value (all zero, all 1e308, ...)
            df["weight"] = [draw(st.sampled_from(_NASTY_WEIGHTS))] * len(df)
        elif op == "weight" and len(df.columns) and df.columns[0] == "weight" and len(df):
            df.iloc[draw(st.integers(0, len(df) - 1)), 0] = draw(st.sampled_from(_NASTY_WEIGHTS))
        elif op == "value" and len(df.columns) and len(df):
            value = draw(nasty_values())   # a list or a mapping is written as its text
            df.iloc[draw(st.integers(0, len(df) - 1)), draw(st.integers(0, len(df.columns) - 1))] = \
                str(value) if isinstance(value, (list, dict)) else value
        elif op == "drop" and len(df.columns):
            df = df.drop(columns=[draw(st.sampled_from(list(df.columns)))])
        elif op == "add":
            col = draw(st.sampled_from(["scenario.firms.n", "scenario.months", "regime.name", "government.budget",
                                        "scenario.name", "no.such.key", "seed", "broker_reward.rate", "Unnamed: 0"]))
            df[col] = draw(st.sampled_from([0.01, 100, "x", math.nan]))
        elif op == "duplicate" and len(df.columns):
            col = draw(st.sampled_from(list(df.columns)))
            df = pd.concat([df, df[[col]]], axis=1)
        elif op == "rows":
            df = df.iloc[:draw(st.integers(0, len(df)))]
        df = df.astype(object)   # any value may go in any column next
    csv = df.to_csv(index=False).encode("utf-8")
    meta = draw(st.one_of(st.just(_POSTERIOR_META), mutated_data(_POSTERIOR_META)))
    text = _dump(meta).encode("utf-8")
    for _ in range(draw(st.integers(0, 1))):
        which = draw(st.sampled_from(["csv", "yaml"]))
        raw = csv if which == "csv" else text
        i = draw(st.integers(0, len(raw)))
        raw = raw[:i] if draw(st.booleans()) else raw[:i] + draw(st.binary(min_size=1, max_size=6)) + raw[i:]
        csv, text = (raw, text) if which == "csv" else (csv, raw)
    return csv, text


@_settings(150, **_FILE_SETTINGS)
@given(files=posterior_files())
@example(files=(b"weight,scenario.firms.risk_aversion_sme\n1e308,1.0\n1e308,2.0\n",
                _dump({"target_set": "t", "scenarios": {"default": [_RISK]}}).encode()))
def test_a_mutated_posterior_is_read_consistent_or_refused_in_one_line(files, scratch):
    from sim.core.config import parameter_keys
    from sim.runs.posterior import STRUCTURAL, load_posterior

    folder = scratch / "posterior"
    folder.mkdir(exist_ok=True)
    (folder / "posterior.csv").write_bytes(files[0])
    (folder / "posterior.yaml").write_bytes(files[1])
    try:
        post = load_posterior(folder)
    except ConfigError as e:
        assert _one_line(e).startswith(f"posterior = {folder}: ")
        event("refused")
        return
    w = post.weights
    assert len(w) == len(post.values) >= 1
    assert np.isfinite(w).all() and (w >= 0).all() and abs(w.sum() - 1) < 1e-9 and w.max() > 0
    known = set(parameter_keys())
    assert len(set(post.keys)) == len(post.keys) and set(post.keys) <= known and not set(post.keys) & set(STRUCTURAL)
    assert all(len(v) == len(post.keys) for v in post.values)
    for name, keys in post.scenarios.items():
        assert isinstance(name, str) and set(keys) <= set(post.keys)
    assert isinstance(post.target_set, str) and post.target_set
    assert 0 <= int(post.sample(0, 5).max()) < len(w)


# ----------------------------------------------------------------------------- e. a sweep's folder
_TINY = ["scenario.firms.n=200", "scenario.months=6", "progress=false"]
_NASTY_OVERRIDES = ["seeds=100000000", "seeds=0", "seeds=-1", "seed=0,1,2", "seed=9223372036854775807", "seeds=2",
                    "regime=free_trial", "regime=nosuch", "regime=../../etc", "regime=baseline,free_trial",
                    "+grid.broker_reward.rate=[0.01,0.02]", "+grid.broker_reward.rate=[]", "+grid.nosuch=[1]",
                    "grid={broker: {rate: [0.01]}}", "scenario.firms.n=1" + "0" * 300, "scenario.firms.n=nan",
                    "scenario.firms.n=range(1,100000)", "scenario.months=range(1,5)", "~seed", "seed@pkg=1",
                    "hydra.run.dir=/", "hydra/launcher=submitit_slurm", "nosuch.key=1", "scenario={firms: {n: 250}}",
                    "scenario.firms.n=${oc.env:HOME}", "scenario.firms.n=${a}${a}", "broker_reward.rate=interval(0,1)",
                    "scenario.firms.n=choice(200,201)", "scenario.firms.n=", "=1", "'", "scenario.firms.n=[[[[[[1]]]]]]",
                    "results_dir=/tmp", "engine=gpu", "x" * 5000]


@st.composite
def multirun_files(draw, original_text: str, original):
    kind = draw(st.sampled_from(["task", "task", "task", "params", "text"]))
    if kind == "text":
        return draw(mutated_text(original_text, original))
    data = copy.deepcopy(original)
    if kind == "task":
        task = list(data["hydra"]["overrides"]["task"])
        for _ in range(draw(st.integers(1, 3))):
            op = draw(st.sampled_from(["add", "replace", "drop"]))
            if op == "drop" and task:
                task.pop(draw(st.integers(0, len(task) - 1)))
            elif op == "replace" and task:
                task[draw(st.integers(0, len(task) - 1))] = draw(st.sampled_from(_NASTY_OVERRIDES))
            else:
                task.append(draw(st.sampled_from(_NASTY_OVERRIDES)))
        data["hydra"]["overrides"]["task"] = task
    else:
        params = data["hydra"].setdefault("sweeper", {}).get("params") or {}
        key, _, value = draw(st.sampled_from(_NASTY_OVERRIDES)).partition("=")
        params[key] = draw(st.sampled_from([value, 1, 1.5, [1, 2], {"a": 1}, None, 10 ** 300]))
        data["hydra"]["sweeper"]["params"] = params
    return _dump(data).encode("utf-8")


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory):
    """A finished sweep of 2 runs (200 firms, 6 months, 2 seeds): its multirun.yaml and its result files."""
    import subprocess
    import sys

    base = tmp_path_factory.mktemp("tiny_sweep")
    p = subprocess.run([sys.executable, "-m", "experiments.run", "-m", "regime=baseline", "seeds=2", *_TINY],
                       cwd=base, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    (d,) = list((base / "multirun").iterdir())
    assert len(list((d / "results").glob("*.json"))) == 2
    return d


_SWEEP_SETTINGS = dict(_FILE_SETTINGS)


def test_multirun_yaml_fuzzed(tiny_sweep, scratch):
    """multirun.yaml mutated (its overrides above all): sim.runs.sweep.expected_runs gives each run once, its id the
    hash of its parameters and seed, or refuses in one line."""
    from sim.runs.sweep import RUNS_MAX, expected_runs, run_id_of

    text = (tiny_sweep / "multirun.yaml").read_text()
    original = yaml.safe_load(text)
    runs = expected_runs(tiny_sweep)
    assert sorted(r for r, _, _ in runs) == sorted(p.stem for p in (tiny_sweep / "results").glob("*.json"))

    @_settings(40, **_SWEEP_SETTINGS)
    @given(raw=multirun_files(text, original))
    def check(raw):
        d = scratch / "sweep"
        d.mkdir(exist_ok=True)
        (d / "multirun.yaml").write_bytes(raw)
        try:
            runs = expected_runs(d, max_runs=1000)
        except ConfigError as e:
            _one_line(e)
            event("refused")
            return
        rids = [r for r, _, _ in runs]
        assert len(set(rids)) == len(rids) <= min(1000, RUNS_MAX)
        for rid, seed, params in runs:
            assert rid == run_id_of(params, seed) and isinstance(seed, int) and seed >= 0

    check()


@st.composite
def record_files(draw, original: dict):
    """A result file: the record mutated as data (its checksum then recomputed or not), or its text truncated or
    given bytes that are not UTF-8."""
    import json

    from sim.runs.sweep import _digest

    kind = draw(st.sampled_from(["data", "data", "redigest", "text"]))
    if kind == "text":
        raw = json.dumps(original).encode()
        i = draw(st.integers(0, len(raw)))
        return raw[:i] if draw(st.booleans()) else raw[:i] + draw(st.binary(min_size=1, max_size=6)) + raw[i:]
    data = draw(mutated_data(original))
    if kind == "redigest" and isinstance(data, dict):
        try:
            data["digest"] = _digest(data)
        except (TypeError, ValueError):
            pass
    return json.dumps(data, default=str).encode()


def test_sweep_result_files_fuzzed(tiny_sweep, scratch):
    """A result file mutated: ResultStore.load takes it only if it is the run's own record (without a recomputed
    checksum: the very record; with one: metrics a run can have), and done() moves any other aside."""
    import json

    from sim.core.results import METRICS
    from sim.runs.sweep import ResultStore

    good = sorted((tiny_sweep / "results").glob("*.json"))[0]
    rid, original = good.stem, json.loads(good.read_text())

    @_settings(60, **_SWEEP_SETTINGS)
    @given(raw=record_files(original))
    def check(raw):
        root = scratch / "store"
        shutil.rmtree(root, ignore_errors=True)
        (root / "results").mkdir(parents=True)
        (root / "results" / f"{rid}.json").write_bytes(raw)
        store = ResultStore(root)
        record, problem = store.load(rid)
        if record is None:
            assert problem and "\n" not in problem
            assert store.done(rid) is False
            assert not (root / "results" / f"{rid}.json").exists()
            assert list((root / "corrupt").glob(f"{rid}*"))
            event("refused")
            return
        assert problem is None and store.done(rid) is True
        if record.get("digest") == original["digest"]:
            assert record == original
        assert record["id"] == rid and set(record["metrics"]) == set(METRICS)
        for k in ("needs_raised", "matches", "contracts", "successes", "failures", "gov_spend"):
            v = record["metrics"][k]
            assert isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0

    check()


# ----------------------------------------------------------------------------- f. a calibration's state
def _json_texts(original: dict):
    """calibration.json: the stamp mutated as data (counts negative, huge, text, nan; keys dropped or added), its
    text truncated or given bytes that are not UTF-8, or nested deep."""
    import json

    counts = st.sampled_from([-1, 0, 1, 10 ** 12, 10 ** 12 + 1, 10 ** 400, 1.5, math.nan, math.inf, "12", None, True,
                              [], {}])

    @st.composite
    def texts(draw):
        kind = draw(st.sampled_from(["count", "data", "data", "text", "deep", "other"]))
        if kind == "count":
            data = dict(original, abc_evaluations=draw(counts))
            return json.dumps(data).encode()
        if kind == "data":
            return json.dumps(draw(mutated_data(original))).encode()
        if kind == "deep":
            n = draw(st.integers(500, 200_000))
            return ('{"abc_evaluations": ' + "[" * n + "]" * n + "}").encode()
        if kind == "other":
            return draw(st.sampled_from([b"", b"null", b"[]", b"1", b'"x"', b"NaN", b"\xff\xfe", b"{" * 10,
                                         b'{"abc_evaluations": 1e999}']))
        raw = json.dumps(original).encode()
        i = draw(st.integers(0, len(raw)))
        return raw[:i] if draw(st.booleans()) else raw[:i] + draw(st.binary(min_size=1, max_size=6)) + raw[i:]
    return texts()


@pytest.fixture(scope="module")
def calibrate_setup():
    from hydra import compose, initialize_config_dir

    from experiments.calibrate import load
    from sim.analysis.calibration import load_space
    from sim.analysis.targets import load_targets

    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base=None):
        cfg = load(compose(config_name="calibrate"))
    return cfg, load_targets(cfg.target_set), load_space(cfg.space)


def test_calibration_json_fuzzed(calibrate_setup, scratch):
    """A resumed calibration's calibration.json mutated: experiments.calibrate._check_stamp continues with the count
    of runs it holds (a whole number >= 0) or refuses in one line naming the folder; never another exception."""
    import json

    from experiments.calibrate import _check_stamp, _stamp
    from sim.analysis.calibration import space_path

    cfg, ts, space = calibrate_setup
    original = dict(_stamp(cfg, ts, space_path(cfg.space)), abc_evaluations=1234)
    out = scratch / "calibration"
    out.mkdir(exist_ok=True)
    (out / "calibration.json").write_text(json.dumps(original))
    assert _check_stamp(cfg, out, ts, space, 18)["abc_evaluations"] == 1234   # the unmutated file is continued

    @_settings(80, **_FILE_SETTINGS)
    @given(raw=_json_texts(original))
    @example(raw=b'{"abc_evaluations": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    def check(raw):
        (out / "calibration.json").write_bytes(raw)
        try:
            stamp = _check_stamp(cfg, out, ts, space, 18)
        except ConfigError as e:
            assert _one_line(e).startswith(f"hydra.run.dir = {str(out)!r}: ")
            assert (out / "calibration.json").read_bytes() == raw   # refused: nothing changed
            event("refused")
            return
        old = json.loads(raw)
        assert stamp["abc_evaluations"] == old.get("abc_evaluations", 0)
        assert isinstance(stamp["abc_evaluations"], int) and 0 <= stamp["abc_evaluations"] <= 10 ** 12
        # no screen stored here: an earlier version's file (no screen_runs) counts none
        assert stamp["screen_runs"] == old.get("screen_runs", 0)
        assert all(old.get(k) == v for k, v in stamp.items() if k not in ("abc_evaluations", "screen_runs"))

    check()


@st.composite
def sqlite_files(draw, original: bytes):
    kind = draw(st.sampled_from(["truncate", "flip", "bytes", "empty"]))
    if kind == "truncate":
        return original[:draw(st.integers(0, len(original)))]
    if kind == "flip":
        raw = bytearray(original)
        for _ in range(draw(st.integers(1, 20))):
            raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
        return bytes(raw)
    if kind == "bytes":
        return draw(st.binary(max_size=4096))
    return b""


def _small_history(db: Path) -> Path:
    """An SQLite file with pyabc's tables, one run and 50 generations (what check_history looks at)."""
    import sqlite3

    db.unlink(missing_ok=True)
    with sqlite3.connect(db) as con:
        for table in ("abc_smc", "samples", "particles"):
            con.execute(f"create table {table} (id integer primary key)")
        con.execute("create table populations (id integer primary key, abc_smc_id integer, t integer)")
        con.execute("insert into abc_smc (id) values (1)")
        con.executemany("insert into populations (abc_smc_id, t) values (1, ?)", [(t,) for t in range(50)])
    con.close()
    return db


def test_abc_db_fuzzed(scratch):
    """A history (abc.db) damaged: sim.analysis.calibration.check_history says why (a line) or None (continue), never
    raises."""
    from sim.analysis.calibration import check_history

    db = _small_history(scratch / "abc_original.db")
    assert check_history(db) is None
    original = db.read_bytes()

    @_settings(60, **_FILE_SETTINGS)
    @given(raw=sqlite_files(original))
    def check(raw):
        path = scratch / "abc.db"
        path.write_bytes(raw)
        reason = check_history(path)
        assert reason is None or (isinstance(reason, str) and reason and "\n" not in reason)
        if raw == original:
            assert reason is None
        if len(raw) < 100 and raw:   # no SQLite header: never taken for a history
            assert reason is not None

    check()


def test_exploration_json_fuzzed(scratch):
    """An exploration's exploration.json mutated (experiments.cli.check_stamp): continued only when it is
    this design's, else refused in one line; never another exception."""
    import json

    from experiments.cli import check_stamp

    out = scratch / "exploration"
    out.mkdir(exist_ok=True)
    identity = {"design": "fuzz", "n": 3, "outcomes": ["conversions"]}
    check_stamp(out, identity, resume=False)
    original = json.loads((out / "exploration.json").read_text())
    check_stamp(out, identity, resume=True)   # its own file: continued

    @_settings(60, **_FILE_SETTINGS)
    @given(raw=_json_texts(original))
    @example(raw=b"[]")
    @example(raw=b"[" * 100_000 + b"]" * 100_000)
    def check(raw):
        (out / "exploration.json").write_bytes(raw)
        try:
            check_stamp(out, identity, resume=True)
        except ConfigError as e:
            assert _one_line(e).startswith(f"hydra.run.dir = {str(out)!r}: ")
            event("refused")
            return
        old = json.loads(raw)   # continued: the file named this very design
        assert all(old.get(k) == v for k, v in original.items())

    check()


# ----------------------------------------------------------------------------- g. exploration parts
class _PartsModel:
    """A design's model as sim.analysis.designs.run_design sees it, its outcomes a pure function of the points."""

    names = ["x"]
    outcomes = ["conversions", "extra_conversions"]

    def __init__(self):
        self.evaluated = 0

    def identity(self):
        return {"design": "fuzz", "seed": 0}

    def evaluate(self, chunk, executor=None):
        self.evaluated += len(chunk)
        x = np.array([p[0] for p in chunk], dtype=float)
        return pd.DataFrame({"x": x, "conversions": x * 3 + 1, "extra_conversions": x - 2.5})


_POINTS = [[float(i)] for i in range(6)]


@st.composite
def part_mutations(draw):
    """[(part index, mutation, salt)]: one or two parts changed, each once."""
    kinds = ["scale", "nan", "impossible", "identity", "no_meta", "truncate", "bytes", "points", "drop_outcome",
             "no_digest", "meta_text"]
    return draw(st.lists(st.tuples(st.integers(0, 2), st.sampled_from(kinds), st.integers(0, 10 ** 6)),
                         min_size=1, max_size=2, unique_by=lambda m: m[0]))


def _mutate_part(path: Path, kind: str, salt: int) -> str:
    """Change the part at ``path``; returns what the next run must do: "recompute" or "refuse"."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from sim.analysis.designs import META, values_digest, write_parquet

    table = pq.read_table(path)
    frame = table.to_pandas()
    meta = dict(__import__("json").loads(table.schema.metadata[META]))
    row = salt % len(frame)
    if kind in ("truncate", "bytes"):
        raw = path.read_bytes()
        i = salt % len(raw)
        path.write_bytes(raw[:i] if kind == "truncate" else raw[:i] + bytes([salt % 256]) * 8 + raw[i + 8:])
        return "recompute-or-same"
    if kind == "meta_text":
        frame_table = pa.Table.from_pandas(frame, preserve_index=False)
        pq.write_table(frame_table.replace_schema_metadata({META: b"{not json" * (salt % 3)}), path)
        return "recompute"
    if kind == "scale":            # values x 100, the digest left as it was
        frame.loc[row, "conversions"] *= 100
    elif kind == "nan":
        frame.loc[row, "extra_conversions"] = np.nan
    elif kind == "impossible":     # a count below 0, the digest recomputed: the domain check must catch it
        frame.loc[row, "conversions"] = -1.0 - salt
        meta["digest"] = values_digest(frame)
    elif kind == "identity":
        meta["identity"] = {"design": "other", "seed": salt}
        write_parquet(frame, path, meta)
        return "refuse"
    elif kind == "points":
        frame.loc[row, "x"] += 0.5
        meta["digest"] = values_digest(frame)
        write_parquet(frame, path, meta)
        return "refuse"
    elif kind == "drop_outcome":
        frame = frame.drop(columns=["extra_conversions"])
        meta["digest"] = values_digest(frame)
        write_parquet(frame, path, meta)
        return "refuse"
    elif kind == "no_meta":
        write_parquet(frame, path, None)
        return "recompute"
    elif kind == "no_digest":
        meta.pop("digest")
    write_parquet(frame, path, meta)
    return "recompute"


def test_exploration_parts_fuzzed(scratch, capsys):
    """Parts of a design mutated (values x 100, nan, an impossible value with its digest recomputed, another
    design's identity, other points, a missing outcome, no or broken metadata, truncated or overwritten bytes):
    sim.analysis.designs.run_design refuses in one line, or returns exactly the model's numbers, recomputing every changed
    part (moved aside) and no other; never reuses a changed value."""
    from sim.analysis.designs import PARTS, run_design

    folder = scratch / "design"
    shutil.rmtree(folder, ignore_errors=True)
    truth, evaluated = run_design(_PartsModel(), _POINTS, folder, part_size=2)
    assert evaluated == 6
    parts = sorted((folder / PARTS).glob("part-*.parquet"))
    assert len(parts) == 3
    originals = {p.name: p.read_bytes() for p in parts}

    @_settings(50, **_FILE_SETTINGS)
    @given(mutations=part_mutations())
    def check(mutations):
        for f in (folder / PARTS).iterdir():
            if f.name not in originals:
                f.unlink()
        for name, raw in originals.items():
            (folder / PARTS / name).write_bytes(raw)
        expect = {k: _mutate_part(parts[k], kind, salt) for k, kind, salt in mutations}
        changed = {k for k in expect if parts[k].read_bytes() != originals[parts[k].name]}
        model = _PartsModel()
        try:
            out, evaluated = run_design(model, _POINTS, folder, part_size=2)
        except ConfigError as e:
            _one_line(e)
            assert any("refuse" in v for v in expect.values()), (mutations, str(e))
            event("refused")
            return
        assert "refuse" not in expect.values(), mutations
        pd.testing.assert_frame_equal(out, truth)   # never a changed value
        assert evaluated <= 2 * len(changed) and model.evaluated == evaluated
        moved = [f for f in (folder / PARTS).iterdir() if ".damaged-" in f.name and not f.name.endswith(".reason")]
        assert len(moved) * 2 == evaluated
        again = _PartsModel()
        assert run_design(again, _POINTS, folder, part_size=2)[1] == 0   # what was recomputed is kept, and good

    check()
    capsys.readouterr()


def test_a_calibration_json_nested_too_deep_is_refused_in_one_line(calibrate_setup, scratch):
    """Found by the fuzzer: calibration.json of `[` x 100,000 raised RecursionError from json.loads, a traceback."""
    from experiments.calibrate import _check_stamp

    cfg, ts, space = calibrate_setup
    out = scratch / "deep_calibration"
    out.mkdir(exist_ok=True)
    (out / "calibration.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ConfigError, match="calibration.json is not valid JSON") as e:
        _check_stamp(cfg, out, ts, space, 18)
    _one_line(e.value)


@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000, "[]", "3"])
def test_an_exploration_json_nested_too_deep_or_not_a_mapping_is_refused_in_one_line(text, scratch):
    """Found by the fuzzer: exploration.json of `[` x 100,000 raised RecursionError, and `[]` AttributeError ('list'
    has no 'get'), tracebacks; both are another design's file now: refused in one line."""
    from experiments.cli import check_stamp

    out = scratch / "odd_exploration"
    out.mkdir(exist_ok=True)
    (out / "exploration.json").write_text(text)
    with pytest.raises(ConfigError, match="holds an exploration with other") as e:
        check_stamp(out, {"design": "fuzz"}, resume=True)
    _one_line(e.value)


def test_a_damaged_history_is_said_in_one_line(scratch):
    """Found by the fuzzer: SQLite's quick_check reports a damaged abc.db on several lines ('*** in database main
    ***\nPage 5: free space corruption'); check_history's reason (printed when the file is moved aside) is now one
    line."""
    from sim.analysis.calibration import check_history

    db = _small_history(scratch / "damaged.db")
    raw = bytearray(db.read_bytes())
    assert len(raw) == 5 * 4096
    raw[4 * 4096 + 1] = 0xFF   # the first free block of page 5 (the populations' table) out of the page
    db.write_bytes(bytes(raw))
    reason = check_history(db)
    assert reason.startswith("damaged (") and "Page 5: free space corruption" in reason and "\n" not in reason


# ----------------------------------------------------------------------------- h. the apps' own keys
_NASTY_OVERRIDE_VALUES = ["0", "1", "2", "-1", "3", "1e400", "1" + "0" * 30, "nan", "inf", "''", "[]", "{}", "null",
                          "true", "x", "[a,b]", "[1,1]", "0.5", "-0.0", "1e-300", "9223372036854775807",
                          "sobol", "morris", "predict", "abc_smc", "judgement", "reported", "instruments",
                          "[conversions]", "[conversions,conversions]", "[nosuch]", "tests/data/small_levers.yaml",
                          "'conversions > 1'", "'__import__(\"os\")'", "local", "slurm", "/nonexistent.yaml"]


def _app_keys(cls, prefix: str) -> list[str]:
    """Every dotted key of an app's section dataclass."""
    import dataclasses
    import typing

    keys = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            keys += _app_keys(hints[f.name], f"{prefix}{f.name}.")
        else:
            keys.append(prefix + f.name)
    return keys


def _validate_app(app: str, overrides: list[str]):
    """Compose the app's config with ``overrides`` and run its own validation, as its main() does before any run
    (the model's config and the section, then what build() checks: files read, design bounded); no analysis."""
    from hydra import compose, initialize_config_dir

    import experiments.cli  # noqa: F401  (the resolvers the apps' configs use)

    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base=None):
        node = compose(config_name=app, overrides=overrides)
    if app == "calibrate":
        from experiments.calibrate import load
        from sim.analysis.calibration import load_space
        from sim.analysis.targets import load_targets

        cfg = load(node)
        load_targets(cfg.target_set, fitting=cfg.method != "predict")
        load_space(cfg.space)
        return cfg
    from experiments.cli import split

    module = __import__(f"experiments.{app}", fromlist=["build"])
    cls = {"sensitivity": module.SensitivityConfig if app == "sensitivity" else None,
           "discover": getattr(module, "DiscoverConfig", None), "optimise": getattr(module, "OptimiseConfig", None)}[app]
    cfg, own = split(node, app, cls)
    module.build(cfg, own)
    return own


def _app_classes():
    from experiments.calibrate import CalibrateConfig
    from experiments.discover import DiscoverConfig
    from experiments.optimise import OptimiseConfig
    from experiments.sensitivity import SensitivityConfig

    return {"calibrate": (CalibrateConfig, ""), "sensitivity": (SensitivityConfig, "sensitivity."),
            "discover": (DiscoverConfig, "discover."), "optimise": (OptimiseConfig, "optimise.")}


@pytest.mark.parametrize("app", ["calibrate", "sensitivity", "discover", "optimise"])
def test_app_keys_fuzzed(app, monkeypatch):
    """A few overrides of an app's own keys (and of the model's seed): composed, then validated as the app does
    before any run: accepted, or a one-line ConfigError (exit 2 on the command line); a value Hydra itself cannot
    compose is its error (the apps turn it into one line: tests/core/test_validation.py)."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    monkeypatch.chdir(ROOT)   # relative paths in the overrides (tests/data/...) as from the checkout
    cls, prefix = _app_classes()[app]
    keys = [k for k in _app_keys(cls, prefix) if not k.startswith(prefix + "slurm.")] + ["seed"]
    override = st.builds(lambda k, v: f"{k}={v}", st.sampled_from(keys), st.sampled_from(_NASTY_OVERRIDE_VALUES))

    from experiments.cli import hydra_error_line

    _validate_app(app, [])   # the app's defaults pass its own validation

    @_settings(12, **_FILE_SETTINGS)
    @given(overrides=st.lists(override, min_size=1, max_size=3, unique_by=lambda o: o.split("=")[0]))
    def check(overrides):
        try:
            _validate_app(app, overrides)
        except ConfigError as e:
            _one_line(e)
        except (HydraException, OmegaConfBaseException) as e:
            line = hydra_error_line(str(e))   # what the app prints of it
            assert line and "\n" not in line

    check()


def test_collect_arguments_fuzzed(tiny_sweep, tmp_path_factory, capsys):
    """collect's own arguments (--metric, --max-runs, --out, --results-dir) drawn: exit 0 with the table written, or
    exit 2 with one line 'error: ...' on stderr; never a traceback."""
    from experiments.collect import main

    base = tmp_path_factory.mktemp("collect")
    d = base / "sweep"
    shutil.copytree(tiny_sweep, d, symlinks=True)
    metric = st.sampled_from(["successes", "contracts", "nosuch", "", "__class__", "x" * 300])
    max_runs = st.sampled_from(["0", "1", "2", "-1", "10", "1" + "0" * 30, "x", "nan"])
    out = st.sampled_from([None, "t.parquet", "/dev/null", "/", "nosuchdir/t.parquet", "sweep", "t.csv", ""])
    results = st.sampled_from([None, "results", "nosuch", "/dev/null", "multirun.yaml"])

    @_settings(10, **_FILE_SETTINGS)
    @given(metric=metric, max_runs=max_runs, out=out, results=results)
    def check(metric, max_runs, out, results):
        argv = [str(d), "--no-plots", "--metric", metric, "--max-runs", max_runs]
        argv += ["--out", str(base / out)] if out is not None else []
        argv += ["--results-dir", str(d / results)] if results is not None else []
        capsys.readouterr()
        with pytest.raises(SystemExit) as e:
            main(argv)
        printed = capsys.readouterr()
        err = printed.err
        assert "Traceback" not in err
        if e.value.code in (0, 1):   # collected; 1: some runs missing, failed or corrupt (named in the report)
            assert "error" not in err, err[-500:]
            assert e.value.code == 0 or "missing" in printed.out or "corrupt" in printed.out or "failed" in printed.out
            return
        assert e.value.code == 2, (argv, e.value.code, err[-500:])
        lines = [ln for ln in err.splitlines() if ln.strip()]
        if lines[-1].startswith("error: "):   # collect's own refusal: one line
            assert len(lines) == 1, err[-500:]
        else:                                 # argparse's: its usage, then one line
            assert lines[0].startswith("usage: ") and ": error: " in lines[-1], err[-500:]

    check()


def test_a_posterior_weight_beyond_any_float_is_refused_in_one_line(scratch):
    """Found by the fuzzer: a weight of 1 and 400 zeros in posterior.csv raised OverflowError from pd.to_numeric
    (errors="coerce" does not catch it), a traceback; it is a weight that is not finite now."""
    from sim.runs.posterior import load_posterior

    folder = scratch / "huge_weight"
    folder.mkdir(exist_ok=True)
    (folder / "posterior.csv").write_text(f"weight,{_RISK}\n1{'0' * 400},1.0\n1,2.0\n")
    (folder / "posterior.yaml").write_text(_dump({"target_set": "t", "scenarios": {"default": [_RISK]}}))
    with pytest.raises(ConfigError, match=r"particle 0: weight = .*: must be a finite number >= 0") as e:
        load_posterior(folder)
    _one_line(e.value, "posterior = ")


@pytest.mark.parametrize("reader, text", [
    ("space", "parameters:\n  broker_reward.rate: {low: 0, high: 0.01, ? \"a\\nb\" : 1}\n"),
    ("space", "parameters:\n  \"broker_reward.rate\\nx\": {low: 0, high: 0.01}\n"),
    ("space", "parameters:\n  broker_reward.rate: {low: 0, high: 0.01, 1: x, b: y}\n"),
    ("levers", "? \"a\\nb\"\n: 1\n1: 2\nparameters: {broker_reward.rate: {low: 0, high: 0.01}}\n"),
    ("targets", _TARGETS_TEXT.replace("settings:\n", "settings:\n  \"x\\ny\": {scenario: county}\n", 1)),
    ("targets", _TARGETS_TEXT.replace("name: reported\n", "name: reported\n1: 2\n\"a\\nb\": 3\n", 1)),
])
def test_a_key_with_a_line_break_or_of_another_type_is_refused_in_one_line(reader, text, scratch):
    """Found by the fuzzer: a key holding a line break (`"a\\nb": 1`) was shown as it is, an error of two lines; and
    unknown keys of two types (1 and 'b') were sorted, a TypeError traceback. Keys are shown through one_line and
    sorted as text."""
    from sim.analysis.calibration import load_space
    from sim.analysis.explore import load_levers
    from sim.analysis.targets import load_targets

    path = scratch / f"key_{reader}.yaml"
    path.write_text(text)
    load = {"space": load_space, "levers": load_levers, "targets": load_targets}[reader]
    with pytest.raises(ConfigError) as e:
        load(str(path))
    _one_line(e.value)


@pytest.mark.parametrize("count, denominator", [(39, 4e162), (1e17, 1e17), (0, 1e30)])
def test_a_share_whose_sampling_sd_vanishes_is_refused_in_one_line(count, denominator, scratch):
    """Found by the fuzzer: a count of a denominator of 4e162 gave a binomial sampling sd (and a sigma) of 0, so
    every distance of the calibration would divide by zero; refused now, as a value's sd below 1e-12 already was."""
    from sim.analysis.targets import load_targets

    data = copy.deepcopy(_TARGETS_DATA)
    name, target = next((n, t) for n, t in data["targets"].items() if "denominator" in t)
    target.update(count=count, denominator=denominator)
    path = scratch / "vanishing_sd.yaml"
    path.write_text(_dump(data))
    with pytest.raises(ConfigError, match=f"targets.{name}.denominator = .*: too large") as e:
        load_targets(str(path))
    _one_line(e.value)
    target.update(count=39, denominator=4e6)   # a large survey is fine
    path.write_text(_dump(data))
    assert load_targets(str(path)).targets[name].sigma > 0


@pytest.mark.parametrize("edit", [lambda t: t.update(setting=["longquan"]), lambda t: t.update(setting={"a": 1})])
def test_a_target_whose_setting_is_a_list_is_refused_in_one_line(edit, scratch):
    """Found by the fuzzer (FUZZ_RANDOM=1): `setting: [longquan]` raised TypeError (a list looked up in a dict)."""
    from sim.analysis.targets import load_targets

    data = copy.deepcopy(_TARGETS_DATA)
    data["settings"][1] = data["settings"].pop(next(iter(data["settings"])))   # a setting named by a number, too
    edit(next(iter(data["targets"].values())))
    path = scratch / "setting_list.yaml"
    path.write_text(_dump(data))
    with pytest.raises(ConfigError, match=r"\.setting = .*: must be one of the settings: ") as e:
        load_targets(str(path))
    _one_line(e.value)
