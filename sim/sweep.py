"""Sweeps: parameter grids, resumable exactly-once results, and their collection.

A sweep is a set of runs, one per (parameter point, seed). Each run's result is
a small JSON file named after a hash of the run's resolved model parameters and
seed, written through a temporary file and an atomic rename. So:

* a run whose file exists is done, and is skipped when the sweep is run again;
* a run killed half-way (``kill -9``) leaves at most a temporary file, which the
  next job or ``collect`` on the same host removes once its writer is dead;
* the same run reached twice (two jobs, two launches) lands in the same file.

Hydra's multirun spreads jobs over processes or a Slurm cluster; within a job,
``grid`` expands more points, and ``seeds`` replicates, all run in one process
(or ``workers`` processes) with the chosen engine.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
import socket
import time
import traceback
from pathlib import Path
from typing import Iterable, Optional

from .config import Config, ConfigError, replace

# parameters that do not change a run's numbers: not part of its identity
NOT_PARAMETERS = ("engine",)
RESULTS = "results"
FAILED = "failed"


def run_params(cfg: Config) -> dict:
    """The parameters that determine a run's numbers, as dotted keys."""
    from .api import flat_params

    p = flat_params(cfg)
    for k in NOT_PARAMETERS:
        p.pop(k, None)
    return p


def run_id(cfg: Config, seed: int) -> str:
    """A stable name for the run (cfg, seed): a hash of its parameters and seed."""
    text = json.dumps({"params": run_params(cfg), "seed": int(seed)}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def flat_grid(grid: dict, prefix: str = "") -> dict:
    """{dotted key: [values]} from a grid given flat or nested (``+grid.broker.rate=[...]``)."""
    out = {}
    for k, v in grid.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flat_grid(v, key + "."))
        else:
            out[key] = v
    return out


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
    return [replace(cfg, **dict(zip(keys, combo))) for combo in itertools.product(*(grid[k] for k in keys))]


def sweep_tasks(cfg: Config) -> list[tuple[Config, int]]:
    """The (config, seed) runs of one sweep job: its grid points x its seeds."""
    points = expand_grid(cfg, cfg.grid)
    return [(p, cfg.seed + k) for p in points for k in range(cfg.seeds)]


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


def sweep_jobs(sweep_dir: Path | str) -> list[list[str]]:
    """The jobs of a sweep (each a list of overrides), re-derived from its ``multirun.yaml``.

    Hydra writes ``multirun.yaml`` when a multirun starts; expanding its sweep overrides
    (command line and ``hydra.sweeper.params``) the way Hydra's basic sweeper does gives
    every job the sweep meant to run, including those that never started.
    """
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    path = Path(sweep_dir) / "multirun.yaml"
    if not path.exists():
        raise ConfigError(f"{sweep_dir}: no multirun.yaml, so not the folder of a Hydra multirun")
    conf = OmegaConf.load(path)
    task = list(OmegaConf.select(conf, "hydra.overrides.task") or [])
    params = OmegaConf.select(conf, "hydra.sweeper.params") or {}
    given = override_keys(task)
    extra = [f"{k}={v}" for k, v in params.items() if k not in given]
    parsed = OverridesParser.create().parse_overrides(extra + task)
    batches = BasicSweeper.split_arguments(parsed, None)
    return [list(job) for batch in batches for job in batch]


def expected_runs(sweep_dir: Path | str) -> list[tuple[str, int, dict]]:
    """(run id, seed, parameters) of every run the sweep in ``sweep_dir`` meant to compute."""
    from .api import compose

    out = []
    for overrides in sweep_jobs(sweep_dir):
        cfg = job_config(compose(*overrides), override_keys(overrides))
        for c, seed in sweep_tasks(cfg):
            out.append((run_id(c, seed), seed, run_params(c)))
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


class ResultStore:
    """The result files of a sweep: ``<root>/results/<id>.json`` and ``<root>/failed/<id>.json``."""

    def __init__(self, root: Path | str):
        self.root = Path(root)
        self.results = self.root / RESULTS
        self.failed = self.root / FAILED

    def path(self, rid: str) -> Path:
        return self.results / f"{rid}.json"

    def done(self, rid: str) -> bool:
        return self.path(rid).exists()

    def _write(self, target: Path, record: dict) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        # the writer's host and pid are in the name, so a stale one can be told from a live one
        tmp = target.parent / f".{target.stem}.{socket.gethostname()}.{os.getpid()}.tmp"
        with open(tmp, "w") as fh:
            json.dump(record, fh, default=_json_default)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)

    def write(self, rid: str, record: dict) -> None:
        self._write(self.path(rid), record)
        stale = self.failed / f"{rid}.json"
        if stale.exists():  # it failed before and has now succeeded
            stale.unlink(missing_ok=True)

    def write_failure(self, rid: str, record: dict) -> None:
        self._write(self.failed / f"{rid}.json", record)

    def temporary_files(self) -> list[Path]:
        return [p for d in (self.results, self.failed) if d.exists() for p in d.glob(".*.tmp")]

    def clean_stale(self) -> list[Path]:
        """Remove temporary files left by dead writers on this host; return them."""
        host = socket.gethostname()
        removed = []
        for p in self.temporary_files():
            parts = p.name[1:-len(".tmp")].rsplit(".", 2)
            if len(parts) != 3:
                continue
            _, writer_host, pid = parts
            if writer_host == host and pid.isdigit() and not pid_alive(int(pid)):
                p.unlink(missing_ok=True)
                removed.append(p)
        return removed

    def records(self) -> Iterable[dict]:
        if self.results.exists():
            for p in sorted(self.results.glob("*.json")):
                with open(p) as fh:
                    yield json.load(fh)

    def failures(self) -> Iterable[dict]:
        if self.failed.exists():
            for p in sorted(self.failed.glob("*.json")):
                with open(p) as fh:
                    yield json.load(fh)


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
    """Run the job's grid x seeds, skipping runs already stored; store each result as it comes."""
    from .api import run_batch

    store.clean_stale()
    tasks = sweep_tasks(cfg)
    ids = [run_id(c, s) for c, s in tasks]
    todo = [(t, rid) for t, rid in zip(tasks, ids) if not store.done(rid)]
    failed = 0
    size = chunk or max(1, min(64, len(todo) // max(1, workers * 4) or 1))
    from tqdm import tqdm

    bar = tqdm(total=len(todo), desc="sweep job", unit="run", disable=not progress)
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
                                              "error": f"{type(e).__name__}: {e}",
                                              "traceback": traceback.format_exc(), **_where()})
        for ((c, seed), rid), res in zip(part, results):
            if res is not None:
                store.write(rid, record_of(c, seed, rid, res.summary))
        bar.update(len(part))
    bar.close()
    return JobReport(total=len(tasks), skipped=len(tasks) - len(todo), ran=len(todo) - failed, failed=failed)
