"""Sweeps: parameter grids, resumable exactly-once results, and their collection.

A sweep is a set of runs, one per (parameter point, seed). Each run's result is
a small JSON file named after a hash of the run's resolved model parameters and
seed, written through a temporary file and an atomic rename. So:

* a run whose file exists and passes its check is done, and is skipped when the
  sweep is run again; a file that fails the check (truncated, edited, another
  run's) is moved aside to ``corrupt/`` and its run computed again;
* a run killed half-way (``kill -9``) leaves at most a temporary file, which the
  next job or ``collect`` on the same host removes once its writer is dead;
* the same run reached twice (two jobs, two launches) lands in the same file.

Hydra's multirun spreads jobs over processes or a Slurm cluster; within a job,
``grid`` expands more points, and ``seeds`` replicates, all run in one process
(or ``workers`` processes) with the chosen engine.

Nothing in a sweep folder is trusted: ``collect`` re-derives the runs a sweep meant
to compute from ``multirun.yaml`` as data (model settings only, never ``hydra.*``
settings, with a bound on the number of runs), and reads result files as data with
a schema check (:meth:`ResultStore.load`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import os
import re
import socket
import stat
import time
import traceback
from pathlib import Path
from typing import Any, Iterable, Optional

from ..core.config import (ENGINES, SEED_MAX, Config, ConfigError, flat_grid, one_line, parameter_keys, replace,
                     section_keys)

RESULTS = "results"
FAILED = "failed"
CORRUPT = "corrupt"
FILE_MAX_BYTES = 1 << 20      # a result file or multirun.yaml larger than 1 MiB is not one of ours
METRIC_MAX = 2.0**63            # no metric of a run is larger (money stays below 2**53)
OVERRIDES_MAX = 1000          # overrides of a sweep's command line
OVERRIDE_CHARS = 10_000       # characters of one override
JOBS_MAX = 100_000            # jobs a multirun.yaml may ask collect to re-derive
RUNS_MAX = 200_000            # runs, likewise (~10 s to re-derive; collect --max-runs raises it)
SETTINGS_IGNORED = ("engine", "workers", "progress", "results_dir", "regimes", "at_spend",  # change no number of a run
                    "posterior_draws")  # (a sweep refuses a posterior: its draws are the main job's)
GROUPS = ("scenario", "regime")  # config groups that hold model settings
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,99}$")


def run_params(cfg: Config) -> dict:
    """The parameters that determine a run's numbers, as dotted keys (the engine is not one)."""
    from ..core.config import flat_params

    p = flat_params(cfg)
    p.pop("engine", None)
    return p


def run_id_of(params: dict, seed: int) -> str:
    """A stable name for a run: a hash of its parameters and seed."""
    text = json.dumps({"params": params, "seed": int(seed)}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def run_ids(params: dict, seeds: Iterable[int]) -> list[str]:
    """:func:`run_id_of` for many seeds of one point (its parameters serialised once: the same text)."""
    head = '{"params": ' + json.dumps(params, sort_keys=True, default=str) + ', "seed": '
    return [hashlib.sha256(f"{head}{int(seed)}}}".encode()).hexdigest()[:24] for seed in seeds]


def run_id(cfg: Config, seed: int) -> str:
    """A stable name for the run (cfg, seed): a hash of its parameters and seed."""
    return run_id_of(run_params(cfg), seed)


def expand_grid(cfg: Config, grid: dict) -> list[Config]:
    """Every point of the grid {dotted key: [values]} over ``cfg`` (keys in sorted order)."""
    grid = flat_grid(grid)
    if not grid:
        return [cfg]
    keys = sorted(grid)
    for k in keys:
        values = grid[k]
        if not isinstance(values, (list, tuple)) or not values:
            raise ConfigError(f"grid.{k} = {values!r}: must be a non-empty list of values")
    base = replace(cfg, grid={})  # a point is a plain config: its grid is expanded
    return [replace(base, **dict(zip(keys, combo))) for combo in itertools.product(*(grid[k] for k in keys))]


def job_runs(cfg: Config) -> list[tuple[Config, int, str, dict]]:
    """The runs of one sweep job, its grid points x its seeds: (point, seed, run id, parameters).

    A point's parameters are computed and serialised once, shared by its seeds.
    """
    seeds = [cfg.seed + k for k in range(cfg.seeds)]
    out = []
    for point in expand_grid(cfg, cfg.grid):
        params = run_params(point)
        out += [(point, seed, rid, params) for rid, seed in zip(run_ids(params, seeds), seeds)]
    return out


def sweep_tasks(cfg: Config) -> list[tuple[Config, int]]:
    """The (config, seed) runs of one sweep job: its grid points x its seeds."""
    return [(point, seed) for point, seed, _, _ in job_runs(cfg)]


def job_config(cfg: Config, explicit: set[str]) -> Config:
    """A sweep job's config: the engine defaults to numba, and a job given ``seed=`` runs that one seed.

    ``explicit`` holds the keys set on the command line (they are never changed).
    """
    changes = {}
    if "engine" not in explicit:
        changes["engine"] = "numba"
    if "seed" in explicit and "seeds" not in explicit:
        changes["seeds"] = 1
    return replace(cfg, **changes) if changes else cfg


def override_keys(overrides: Iterable[str]) -> set[str]:
    return {o.split("=", 1)[0].lstrip("+~") for o in overrides}


# --------------------------------------------------------------------------- a sweep folder, read as data
class SweepFolderError(ConfigError):
    """A sweep folder (or a file in it) that collect will not use, in one line."""


def read_small_file(path: Path, limit: int = FILE_MAX_BYTES) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes, or an OSError/ValueError saying why not.

    Never follows a symbolic link and never blocks on a FIFO or a device.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError("not a regular file")
        if st.st_size > limit:
            raise ValueError(f"{st.st_size} bytes, more than the {limit} a result file can have")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read(limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise ValueError(f"more than {limit} bytes")
    return data


def _multirun(sweep_dir: Path) -> dict:
    """``multirun.yaml`` as plain data (YAML's safe loader: no tags, no interpolations resolved)."""
    import yaml

    path = Path(sweep_dir) / "multirun.yaml"
    if not path.exists() and not path.is_symlink():
        raise SweepFolderError(f"{sweep_dir}: no multirun.yaml, so not the folder of a Hydra multirun")
    from ..core.yamlsafe import parse_yaml

    try:
        data = parse_yaml(read_small_file(path), str(path))   # within limits: no alias bomb
    except (OSError, ValueError, RecursionError, yaml.YAMLError) as e:
        raise SweepFolderError(f"{path}: cannot be read as a sweep's multirun.yaml ({one_line(e)})") from None
    if not isinstance(data, dict) or not isinstance(data.get("hydra"), dict):
        raise SweepFolderError(f"{path}: not a sweep's multirun.yaml (no hydra section)")
    return data


def _group_options(group: str, config_dirs: tuple = ()) -> list[str]:
    from ..core.locations import CONFIG_DIR

    names = set()
    for d in (CONFIG_DIR, *map(Path, config_dirs)):
        names |= {p.stem for p in (Path(d) / group).glob("*.yaml")}
    return sorted(names)


def sweep_length(o) -> Optional[int]:
    """How many values the parsed override ``o`` sweeps (None for a glob, a ConfigError if it cannot be counted)."""
    from hydra.core.override_parser.types import ChoiceSweep, Glob, RangeSweep

    v = o.value()
    if not o.is_sweep_override():
        return 1
    if isinstance(v, ChoiceSweep):
        return len(v.list)
    if isinstance(v, RangeSweep):
        try:
            count = (v.stop - v.start) / v.step
            if not math.isfinite(count):
                raise OverflowError
            return max(0, math.ceil(count))
        except (TypeError, OverflowError, ZeroDivisionError, ValueError):
            raise ConfigError(f"{one_line(o.input_line, 80)}: not a finite range") from None
    if isinstance(v, Glob):
        return None
    raise ConfigError(f"{one_line(o.input_line, 80)}: only choices (a,b), range(...) and glob(...) can be swept")


def check_sweep_length(o) -> None:
    """A ConfigError if the override sweeps more values than a sweep may have jobs."""
    n = sweep_length(o)
    if n is not None and n > JOBS_MAX:
        raise ConfigError(f"{one_line(o.input_line, 80)}: {n} values, more than the {JOBS_MAX} jobs a sweep may have")


def _sweep_values(o, path: Path, config_dirs: tuple) -> list:
    """The values one parsed override takes across the sweep (one value if it is no sweep), bounded."""
    from hydra.core.override_parser.types import Glob

    if not o.is_sweep_override():
        return [o.value()]
    try:
        check_sweep_length(o)
    except ConfigError as e:
        raise SweepFolderError(f"{path}: {e}") from None
    v = o.value()
    if isinstance(v, Glob):
        if o.key_or_group not in GROUPS:
            raise SweepFolderError(f"{path}: {one_line(o.input_line, 80)}: glob() sweeps config groups only")
        return v.filter(_group_options(o.key_or_group, config_dirs))
    return list(o.sweep_iterator())


def _model_overrides(lines: list, path: Path, config_dirs: tuple) -> list[tuple[str, list]]:
    """(key, values) of the overrides that set the model; launcher (``hydra``) settings are left out.

    Anything else (unknown keys, deletions, packages, paths as group names) is refused.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import OverrideType
    from hydra.errors import HydraException

    allowed = set(parameter_keys()) | {"seed", "seeds"}
    sections = section_keys()
    parser = OverridesParser.create()
    out = []
    for line in lines:
        try:
            o = parser.parse_override(line)
        except (HydraException, ValueError, RecursionError) as e:
            raise SweepFolderError(f"{path}: override {one_line(line, 80)}: {one_line(e)}") from None
        key = o.key_or_group
        if key == "hydra" or key.startswith("hydra.") or key.startswith("hydra/"):
            continue  # launcher settings: never passed on (they could load code), never needed
        if key in SETTINGS_IGNORED:
            continue
        if o.package is not None or o.type == OverrideType.DEL:
            raise SweepFolderError(f"{path}: override {one_line(line)}: not a model setting collect can use")
        values = _sweep_values(o, path, config_dirs)
        if key in GROUPS:
            options = _group_options(key, config_dirs)
            for v in values:
                if not isinstance(v, str) or not _NAME.match(v) or v not in options:
                    raise SweepFolderError(f"{path}: override {one_line(line)}: {key} must be one of "
                                           + ", ".join(options))
        elif key in sections:  # key={a: 1} sets key.a, as Hydra merges it (flattened in expected_runs)
            for v in values:
                keys = flat_grid(v, key + ".") if isinstance(v, dict) else {key: v}
                unknown = [k for k in keys if k not in allowed]
                if not isinstance(v, dict) or unknown:
                    raise SweepFolderError(f"{path}: override {one_line(line, 80)}: {key} must be a mapping of "
                                           "known keys")
        elif not (key in allowed or key == "grid" or key.startswith("grid.")):
            raise SweepFolderError(f"{path}: override {one_line(line)}: unknown key '{one_line(key, 80)}'")
        out.append((key, values))
    return out


def sweep_jobs(sweep_dir: Path | str, config_dirs: tuple = (),
               resolve_results_dir: bool = True) -> tuple[list[tuple[str, list]], dict]:
    """The model settings of a sweep's jobs, re-derived from its ``multirun.yaml``, and facts about the sweep.

    Returns ``(axes, info)``: ``axes`` is a list of (key, values), one per override of the
    command line (and of ``hydra.sweeper.params``), whose product is the sweep's jobs;
    ``info`` holds ``results_dir`` (absolute, or None) and ``jobs`` (their number).
    """
    path = Path(sweep_dir) / "multirun.yaml"
    data = _multirun(Path(sweep_dir))
    hydra_node = data["hydra"]
    task = (hydra_node.get("overrides") or {}).get("task") or []
    params = (hydra_node.get("sweeper") or {}).get("params") or {}
    if not isinstance(task, list) or not isinstance(params, dict) or len(task) + len(params) > OVERRIDES_MAX:
        raise SweepFolderError(f"{path}: hydra.overrides.task must be a list and hydra.sweeper.params a mapping, "
                               f"with at most {OVERRIDES_MAX} overrides")
    if not all(isinstance(t, str) and len(t) <= OVERRIDE_CHARS for t in task) or not all(
            isinstance(k, str) and isinstance(v, (str, int, float)) and len(str(v)) <= OVERRIDE_CHARS
            for k, v in params.items()):
        raise SweepFolderError(f"{path}: every override must be a line of text of at most {OVERRIDE_CHARS} characters")
    given = override_keys(t for t in task if isinstance(t, str))
    extra = [f"{k}={v}" for k, v in params.items() if str(k).lstrip("+~") not in given]
    axes = _model_overrides(extra + task, path, config_dirs)
    jobs = math.prod(len(v) for _, v in axes)
    if jobs > JOBS_MAX:
        raise SweepFolderError(f"{path}: {jobs} jobs, more than the {JOBS_MAX} collect re-derives")
    results_dir = data.get("results_dir") if resolve_results_dir else None
    if results_dir is not None:
        if not isinstance(results_dir, str) or not results_dir.isprintable():
            raise SweepFolderError(f"{path}: results_dir = {one_line(repr(results_dir), 80)}: must be a path")
        results_dir = _env_interpolations(results_dir, path)
        cwd = (hydra_node.get("runtime") or {}).get("cwd")
        base = Path(cwd) if isinstance(cwd, str) and cwd.isprintable() else Path.cwd()
        results_dir = str(base / results_dir)
    return axes, {"results_dir": results_dir, "jobs": jobs}


_ENV = re.compile(r"\$\{oc\.env:([A-Za-z_][A-Za-z0-9_]*)(?:,([^{}$]*))?\}")


def _env_interpolations(text: str, path: Path) -> str:
    """``${oc.env:NAME}`` (and ``${oc.env:NAME,default}``) in a path from a sweep folder, from this environment.

    The one interpolation a ``results_dir`` commonly holds (``${oc.env:SCRATCH}/...``);
    any other is refused rather than resolved (a file's text is never evaluated).
    """
    def env(m):
        value = os.environ.get(m.group(1), m.group(2))
        if value is None:
            raise SweepFolderError(f"{path}: results_dir = {text!r}: environment variable {m.group(1)} is not set "
                                   "(set it, or give collect --results-dir)")
        return value

    out = _ENV.sub(env, text)
    if "${" in out:
        raise SweepFolderError(f"{path}: results_dir = {one_line(repr(text), 80)}: collect resolves only "
                               "${oc.env:NAME} in it; give collect --results-dir")
    return out


def expected_runs(sweep_dir: Path | str, max_runs: int = RUNS_MAX,
                  config_dirs: tuple = ()) -> list[tuple[str, int, dict]]:
    """(run id, seed, parameters) of every run the sweep in ``sweep_dir`` meant to compute.

    Each job is composed from the packaged configs (plus ``config_dirs``, given by the
    caller) and its model overrides, validated like the command line; at most
    ``max_runs`` runs are re-derived (a SweepFolderError beyond).
    """
    from ..core.config import compose

    axes, _ = sweep_jobs(sweep_dir, config_dirs, resolve_results_dir=False)
    keys = [k for k, _ in axes]
    bases: dict[tuple, Config] = {}
    out = []
    seen: set[str] = set()
    for combo in itertools.product(*(v for _, v in axes)):
        job = dict(zip(keys, combo))
        groups = tuple((k, job.pop(k)) for k in GROUPS if k in job)
        if groups not in bases:  # Hydra composes the groups once; values are set through the schema
            bases[groups] = compose(*(f"{k}={v}" for k, v in groups), config_dirs=config_dirs)
        grid = flat_grid({k[len("grid."):]: v for k, v in job.items() if k.startswith("grid.")})
        grid.update(flat_grid(job.get("grid") or {}) if isinstance(job.get("grid"), dict) else {})
        values = {}
        for k, v in job.items():
            if k == "grid" or k.startswith("grid."):
                continue
            values.update(flat_grid(v, k + ".") if isinstance(v, dict) else {k: v})
        try:
            cfg = job_config(replace(bases[groups], **values, grid=grid), set(job))
        except RecursionError:
            raise SweepFolderError(f"{Path(sweep_dir) / 'multirun.yaml'}: a value nested too deep") from None
        runs = math.prod(len(v) for v in flat_grid(cfg.grid).values()) * cfg.seeds
        if len(out) + runs > max_runs:
            raise SweepFolderError(f"{Path(sweep_dir) / 'multirun.yaml'}: more than {max_runs} runs "
                                   "(collect --max-runs N to allow more)")
        for _, seed, rid, params in job_runs(cfg):
            if rid not in seen:  # jobs may overlap (seed=0,1 seeds=2): each run once
                seen.add(rid)
                out.append((rid, seed, params))
    return out


# --------------------------------------------------------------------------- storage
def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` (on this host) is running; a zombie counts as dead."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _digest(record: dict) -> str:
    """A checksum of a record's content (all but the checksum itself)."""
    body = {k: v for k, v in record.items() if k != "digest"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=_json_default).encode()).hexdigest()


def check_record(record: Any, rid: str) -> None:
    """Raise ValueError (one line) unless ``record`` is a whole, untouched result of run ``rid``.

    Its parameters and seed must hash to ``rid`` (the file's name), its checksum must
    match, and its metrics must be the model's, finite where counted and consistent
    with the funnel and the accounts.
    """
    from ..core.results import METRICS

    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    for key, typ in (("id", str), ("seed", int), ("params", dict), ("metrics", dict), ("engine", str),
                     ("digest", str)):
        if not isinstance(record.get(key), typ) or isinstance(record.get(key), bool):
            raise ValueError(f"'{key}' missing or not a {typ.__name__}")
    if record["id"] != rid:
        raise ValueError(f"its id {one_line(record['id'], 40)} is not its file name's")
    if not 0 <= record["seed"] <= SEED_MAX:
        raise ValueError("seed out of range")
    if run_id_of(record["params"], record["seed"]) != rid:
        raise ValueError("its parameters and seed do not hash to its file name (edited, or another run's)")
    if record["engine"] not in ENGINES:
        raise ValueError(f"engine {one_line(record['engine'], 40)} unknown")
    if record["digest"] != _digest(record):
        raise ValueError("its checksum does not match its content (edited or damaged)")
    for key in ("host", "slurm_job_id", "slurm_array_job_id", "slurm_array_task_id"):
        if record.get(key) is not None and not (isinstance(record[key], str) and len(record[key]) <= 200):
            raise ValueError(f"'{key}' is not a short text")
    m = record["metrics"]
    if set(m) != set(METRICS):
        raise ValueError("its metrics are not the model's: " + one_line(", ".join(sorted(set(m) ^ set(METRICS))), 80))
    for k, v in m.items():
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or abs(v) > METRIC_MAX):
            raise ValueError(f"metric {k} is not a number of at most {METRIC_MAX:g} in size")
    _check_domains(m)
    _check_seed_identity(record)
    counted = ("needs_raised", "matches", "contracts", "successes", "failures", "gov_spend")
    if not all(isinstance(m[k], (int, float)) and math.isfinite(m[k]) and m[k] >= 0 for k in counted):
        raise ValueError("a counted metric is missing, negative or not finite")
    if not (m["needs_raised"] >= m["matches"] >= m["contracts"] >= m["successes"] + m["failures"]
            and m["contracts"] == sum(m[C.COLUMNS[c].name] for c in FORM_COLUMNS)
            and m["gov_spend"] == sum(m[k.name] for k in gov_kinds())):
        raise ValueError("its metrics break the funnel or the accounts")


from ..core import columns as C  # noqa: E402  (the declared forms and payments)
from ..core.results import FORM_COLUMNS, gov_kinds  # noqa: E402


def _undefined_ok() -> frozenset:
    """The metrics a run may leave undefined (NaN, stored as null): those the summary of an empty run leaves NaN (a
    ratio of nothing, a time to an event that never came)."""
    import numpy as np

    from ..core.results import N_SERIES, summarize

    return frozenset(k for k, v in summarize(np.zeros((1, N_SERIES)), 1).items()
                     if isinstance(v, float) and math.isnan(v))


def _check_domains(m: dict) -> None:
    """Each metric within its domain, as the model computes it (a checksum says a file was not damaged, not that its
    numbers are a run's): defined unless it may be undefined; every flow and count of the run's columns a whole
    number >= 0 (payments are whole yuan); every value within the 2^53 yuan the run's own money bound keeps sums
    exact in."""
    from ..core.population import MONEY_EXACT

    undefined = _undefined_ok()
    for k, v in m.items():
        if v is None or (isinstance(v, float) and math.isnan(v)):
            if k not in undefined:
                raise ValueError(f"metric {k} is undefined, which a run never leaves it")
            continue
        if not math.isfinite(v) or abs(v) >= MONEY_EXACT:
            raise ValueError(f"metric {k} = {v:g}: outside what a run can reach (|x| < 2^53)")
    from ..core.ledger import KINDS

    payments = {k.name for k in KINDS}
    for col in C.COLUMNS:   # counts and payments of a kind summed over the run (not a difference such as a surplus)
        v = m.get(col.name)
        whole = not col.money or col.name in payments
        if col.summary and not col.stock and whole and v is not None and (v < 0 or v != math.floor(v)):
            raise ValueError(f"metric {col.name} = {v:g}: a run's total of whole yuan or counts is a whole number "
                             ">= 0")


def _check_seed_identity(record: dict) -> None:
    """What the seed alone determines, re-derived: the achievements that arrive during the run are drawn from the
    seed and the scenario before any month runs (:func:`sim.core.population.arrival_months`), so a record carrying another
    seed's metrics is caught (unless both seeds drew as many arrivals)."""
    from ..core.population import arrival_months

    p, m = record["params"], record["metrics"]
    try:
        universities = int(p["scenario.universities.n"])
        months = int(p["scenario.months"])
        rate = float(p["scenario.universities.arrivals_per_month"])
    except (KeyError, TypeError, ValueError):
        raise ValueError("its parameters lack the scenario's size and horizon") from None
    if not (1 <= universities <= 10**6 and 1 <= months <= 10**5 and 0 <= rate <= 10**4):
        raise ValueError("its scenario's size or horizon is out of range")
    arrivals = len(arrival_months(int(record["seed"]), universities, months, rate)[1])
    if m.get("arrivals") != arrivals:
        raise ValueError(f"its metrics are not its seed's: {m.get('arrivals')} arrivals, its seed draws {arrivals}")


class ResultStore:
    """The result files of a sweep: ``<root>/results/<id>.json`` and ``<root>/failed/<id>.json``.

    A result file that fails :func:`check_record` is *corrupt*: :meth:`quarantine` moves
    it to ``<root>/corrupt/`` (so the next run of the sweep computes it again).
    """

    def __init__(self, root: Path | str):
        self.root = Path(root)
        self.results = self.root / RESULTS
        self.failed = self.root / FAILED
        self.corrupt = self.root / CORRUPT

    def path(self, rid: str) -> Path:
        return self.results / f"{rid}.json"

    def load(self, rid: str) -> tuple[Optional[dict], Optional[str]]:
        """(record, None) for a good result, (None, reason) for a corrupt one, (None, None) for none."""
        path = self.path(rid)
        try:
            data = read_small_file(path)
        except FileNotFoundError:
            return None, None
        except (OSError, ValueError) as e:
            return None, one_line(e.strerror if isinstance(e, OSError) and e.strerror else e)
        try:
            record = json.loads(data)
            check_record(record, rid)
        except (ValueError, RecursionError) as e:
            return None, one_line(e)
        return record, None

    def done(self, rid: str) -> bool:
        """Whether run ``rid`` has a good result (a corrupt one is moved aside, so it is computed again)."""
        record, problem = self.load(rid)
        if problem:
            try:
                self.quarantine(rid, problem)
            except OSError as e:  # corrupt/ is a link or not a folder: stop, move nothing
                raise SweepFolderError(f"{self.path(rid)} is corrupt ({problem}) and cannot be moved aside: "
                                       f"{one_line(e)}") from None
        return record is not None

    def quarantine(self, rid: str, reason: str) -> Path:
        """Move a corrupt result file aside to ``corrupt/`` (with the reason next to it); return its new path.

        ``corrupt/`` must be a real folder of the store, never a link: an OSError otherwise.
        """
        self.corrupt.mkdir(parents=True, exist_ok=True)
        if self.corrupt.is_symlink() or not self.corrupt.is_dir() or self.corrupt.resolve().parent != \
                self.root.resolve():
            raise OSError(f"{self.corrupt} is not a folder of {self.root}: nothing moved there")
        stamp = time.strftime("%Y%m%d-%H%M%S")
        target = self.corrupt / f"{rid}.{stamp}.{os.getpid()}.json"
        os.replace(self.path(rid), target)
        fd = os.open(target.with_suffix(".why.txt"), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666)
        with os.fdopen(fd, "w") as fh:
            fh.write(reason + "\n")
        return target

    def _write(self, target: Path, record: dict) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        # the writer's host and pid are in the name, so a stale one can be told from a live one
        tmp = target.parent / f".{target.stem}.{socket.gethostname()}.{os.getpid()}.tmp"
        with open(tmp, "w") as fh:  # mode 0666 less the umask, as any file the user writes
            json.dump(record, fh, default=_json_default)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)

    def write(self, rid: str, record: dict) -> None:
        record = dict(record, digest="")
        record["digest"] = _digest(record)
        self._write(self.path(rid), record)
        stale = self.failed / f"{rid}.json"
        if stale.exists():  # it failed before and has now succeeded
            stale.unlink(missing_ok=True)

    def write_failure(self, rid: str, record: dict) -> None:
        self._write(self.failed / f"{rid}.json", record)

    def failure(self, rid: str) -> Optional[str]:
        """The recorded error of failed run ``rid`` (one line), or None."""
        try:
            record = json.loads(read_small_file(self.failed / f"{rid}.json"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, RecursionError) as e:
            return f"(unreadable failure record: {one_line(e)})"
        err = record.get("error") if isinstance(record, dict) else None
        return one_line(err) if isinstance(err, str) else "(failure record without an error)"

    def temporary_files(self) -> list[Path]:
        return [p for d in (self.results, self.failed) if d.is_dir() and not d.is_symlink() for p in d.glob(".*.tmp")]

    def clean_stale(self) -> list[Path]:
        """Remove temporary files left by dead writers on this host; return them."""
        host = socket.gethostname()
        removed = []
        for p in self.temporary_files():
            parts = p.name[1:-len(".tmp")].rsplit(".", 2)
            if len(parts) != 3:
                continue
            _, writer_host, pid = parts
            if writer_host == host and pid.isdigit() and not pid_alive(int(pid)) and p.is_file() and not p.is_symlink():
                p.unlink(missing_ok=True)
                removed.append(p)
        return removed

    def records(self) -> Iterable[dict]:
        """Every good result in the store (corrupt files are skipped)."""
        if self.results.is_dir():
            for p in sorted(self.results.glob("*.json")):
                record, _ = self.load(p.stem)
                if record is not None:
                    yield record


def _json_default(o):
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
    except ImportError:  # pragma: no cover
        pass
    return str(o)


def _where() -> dict:
    """Where a run was computed: host, process, and the Slurm job if any."""
    env = os.environ
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "slurm_job_id": env.get("SLURM_JOB_ID"),
        "slurm_array_job_id": env.get("SLURM_ARRAY_JOB_ID"),
        "slurm_array_task_id": env.get("SLURM_ARRAY_TASK_ID"),
    }


def record_of(cfg: Config, seed: int, rid: str, summary: dict) -> dict:
    return {"id": rid, "seed": int(seed), "engine": cfg.engine, "params": run_params(cfg), "metrics": summary,
            "finished": time.time(), **_where()}


# --------------------------------------------------------------------------- a sweep job
@dataclasses.dataclass
class JobReport:
    total: int
    skipped: int
    ran: int
    failed: int


def run_sweep_job(cfg: Config, store: ResultStore, workers: int = 1, progress: bool = False,
                  chunk: Optional[int] = None) -> JobReport:
    """Run the job's grid x seeds, skipping runs already stored; store each result as it comes.

    A run that raises, or breaks an invariant, is recorded in ``failed/`` with its reason
    (never as a result) and retried by the next run of the sweep.
    """
    from .parallel import progress_bar, run_batch

    store.clean_stale()
    runs = job_runs(cfg)
    tasks = [(point, seed) for point, seed, _, _ in runs]
    todo = [((point, seed), rid) for point, seed, rid, _ in runs if not store.done(rid)]
    failed = 0
    size = chunk or max(1, min(64, len(todo) // max(1, workers * 4) or 1))
    bar = progress_bar(len(todo), "sweep job", disable=not progress)  # no thread: the batches can fork
    for i in range(0, len(todo), size):
        part = todo[i:i + size]
        try:
            results = run_batch([t for t, _ in part], workers=workers)
        except Exception:  # a failing run must not cost the others: retry one by one
            results = []
            for t, rid in part:
                try:
                    results.extend(run_batch([t], workers=1))
                except Exception as e:
                    results.append(None)
                    failed += 1
                    store.write_failure(rid, {"id": rid, "seed": t[1], "params": run_params(t[0]),
                                              "error": f"{type(e).__name__}: {one_line(e, 1000)}",
                                              "traceback": traceback.format_exc(), **_where()})
        for ((c, seed), rid), res in zip(part, results):
            if res is not None:
                store.write(rid, record_of(c, seed, rid, res.summary))
        bar.update(len(part))
    bar.close()
    return JobReport(total=len(tasks), skipped=len(tasks) - len(todo), ran=len(todo) - failed, failed=failed)
