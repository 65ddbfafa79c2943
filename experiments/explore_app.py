"""What the exploration apps share (``experiments.sensitivity``, ``.discover``, ``.optimise``).

Each app is a Hydra app whose config is the model's (``configs/config.yaml``: scenario, regime,
every instrument's parameters, ``seed``, ``engine``, ``workers``, ``posterior``) plus a section
of its own (``sensitivity:``, ``discover:``, ``optimise:``) validated by a dataclass. It writes
into ``exploration/<app>-<hash of the overrides that change numbers>``: the same command
resumes in the same folder (its design's Parquet parts, :mod:`sim.analysis.designs`), and a folder
holding another design is refused in one line (its stamp, ``exploration.json``, and the identity each part
carries: :mod:`sim.analysis.designs`); two runs into one folder at once are refused (a lock held for the run). A bad value
is one line naming the key, the value and what is allowed, exit code 2, before any run.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import hydra
from omegaconf import DictConfig, OmegaConf

from experiments.app import (APP_ERRORS, SlurmConfig, HeldStderr, hydra_error_line, write_provenance,
                             check_command_line, check_writable, exit_in_one_line, run_app, section_fields, write_atomic)
from sim.core.config import Config, ConfigError, _build, load_config, register_hydra_defaults
from sim.core.locations import CONFIG_DIR
from sim.core.schema import _c, _nested


@dataclass
class RunOptions:
    """Where and how a design's points run (no number depends on these)."""

    executor: str = _c("local", choices=("local", "slurm"), doc="local: `workers` processes here; slurm: a job array "
                                                                 "of `workers` jobs per part (submitit)")
    slurm: SlurmConfig = _nested(SlurmConfig)
    part_size: int = _c(1024, ge=1, le=10**7, doc="points per Parquet part: the unit of resumption")
    resume: bool = _c(True, doc="reuse the parts already in the folder (false: start again)")


# keys that change no number: the folder stays the same when they change
IGNORED = ("workers", "progress", "run")


def _explore_id(app: str) -> str:
    """``<app>-<hash>`` of the overrides that change numbers: the same command, the same folder."""
    def ignored(key: str) -> bool:
        parts = key.split(".")
        return parts[0] in IGNORED or (len(parts) > 1 and parts[0] == app and parts[1] in IGNORED)

    args = [a for a in sys.argv[1:] if "=" in a and not a.startswith("-") and not a.lstrip("+~").startswith("hydra")
            and not ignored(a.split("=", 1)[0].lstrip("+~"))]
    return f"{app}-" + hashlib.sha256("\n".join(sorted(args)).encode()).hexdigest()[:8]


if not OmegaConf.has_resolver("explore_id"):
    OmegaConf.register_new_resolver("explore_id", _explore_id, use_cache=True)
if not OmegaConf.has_resolver("cores"):  # the apps' default number of processes: every core
    OmegaConf.register_new_resolver("cores", lambda: max(1, min(os.cpu_count() or 1, 1024)))


def split(node, section: str, cls):
    """The model's validated Config and the app's section (a ``cls``) from a composed node."""
    data = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
    data = {k: v for k, v in data.items() if k != "hydra"}
    own = data.pop(section, None)
    data["seeds"] = 1  # the main job's replicates: an app runs its own (checked below), never these
    cfg, own = load_config(data), _build(cls, own, section)
    check_seeds(cfg.seed, own, section)
    return cfg, own


def check_seeds(seed: int, own, section: str) -> None:
    """Refuse, before anything runs, a ``seed`` whose last replicate (``seed + replicates - 1``, and the fresh
    replicates of the intervals after them) is past the largest seed."""
    from sim.core.schema import SEED_MAX

    extra = getattr(own, "interval_replicates", 0) or 0
    last = seed + getattr(own, "replicates", 1) + extra - 1
    if last > SEED_MAX:
        what = f"seed + {section}.replicates" + (f" + {section}.interval_replicates" if extra else "") + " - 1"
        raise ConfigError(f"seed = {seed}: the last seed, {what} = {last}, must be <= {SEED_MAX}")


def make_executor(run: RunOptions, workers: int, out: Path):
    from sim.runs.executor import Executor

    return Executor(run.executor, workers, {**dataclasses.asdict(run.slurm), "folder": str(out / ".submitit")})


def check_stamp(out: Path, identity: dict, resume: bool) -> None:
    """Refuse to continue in ``out`` an exploration of another design (``identity``: what its numbers depend on)."""
    from sim.core.engine_cache import source_hash

    identity = {**identity, "model_sources": source_hash()[:16]}
    path = out / "exploration.json"
    if resume and path.exists():
        from sim.core.yamlsafe import YamlError, read_bytes

        try:
            old = json.loads(read_bytes(path, kind="an exploration's stamp"))
        except (YamlError, OSError, ValueError, RecursionError):  # unreadable, too big, not JSON, nested too deep:
            old = {}                                                # another design's
        if not isinstance(old, dict):  # (a list or a number has no keys: not this design's either)
            old = {}
        changed = [k for k in identity if old.get(k) != identity[k]]
        if changed:
            raise ConfigError(f"hydra.run.dir = {str(out)!r}: holds an exploration with other {', '.join(changed)}; "
                              f"start again with {identity.get('app', '<app>')}.run.resume=false, or choose another "
                              "folder")
    write_atomic(path, lambda p: Path(p).write_text(json.dumps(identity, indent=1, default=str) + "\n"))


def digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def model_digest(cfg: Config) -> str:
    """The model's config as numbers: settings that change none (``progress``, ``workers``) leave it the same, so a
    run resumed with other ones continues in its folder."""
    from sim.core.config import replace

    return digest(repr(replace(cfg, progress=False, workers=1)))


def say(cfg: Config, text: str) -> None:
    if cfg.progress:
        print(text, flush=True)


def stamp_line(app: str) -> str:
    return (f"{app}: python -m experiments.{app} {' '.join(sys.argv[1:])} "
            f"({datetime.datetime.now().isoformat(timespec='seconds')})")


def save_figure(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    write_atomic(path, lambda p: fig.savefig(p, dpi=110, format="png"))
    plt.close(fig)


def write_table(frame, path: Path) -> None:
    if path.suffix == ".parquet":
        from sim.analysis.designs import write_parquet

        write_parquet(frame, path)
    else:
        write_atomic(path, lambda p: frame.to_csv(p, index=False))


def app_main(config_name: str, section: str, cls, body: Callable, provenance: bool = True,
             lock: bool = True) -> Callable[[], None]:
    """The ``main()`` of an exploration app: ``body(model_cfg, section_cfg, out)`` does the work (``provenance``:
    the config written into ``out/.hydra`` after it, with the results; ``lock``: the folder locked for the job's
    life, a second job into it refused in one line; an app that writes nothing there, the dashboard, holds none)."""
    state = {"started": False}
    held = HeldStderr(sys.stderr)

    def task(node: DictConfig) -> None:
        state["started"] = True
        held.release()
        from hydra.core.hydra_config import HydraConfig

        out = Path(HydraConfig.get().runtime.output_dir)
        try:
            cfg, own = split(node, section, cls)
            check_writable(out, "hydra.run.dir")
            if not lock:
                body(cfg, own, out)
                return
            from sim.runs.outputs import lock_folder, only_lock_left

            held_lock = lock_folder(out, "hydra.run.dir", "exploration")  # one writer a folder
            ok = False
            try:
                body(cfg, own, out)
                if provenance:
                    write_provenance(out, node)  # last, with the results
                ok = True
            finally:  # refused or failed before writing anything: the lock file it created goes (still held)
                held_lock.release(remove=not ok and held_lock.created and only_lock_left(out))
        except APP_ERRORS as e:
            from .app import remove_created_folder

            remove_created_folder()  # the folders Hydra made for this job, if empty (never another job's)
            exit_in_one_line(e, "the parts stored before it are kept: the same command resumes")

    register_hydra_defaults()  # the instruments' sections and the default regimes, from the registry
    app = hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name=config_name)(task)

    def error_line(text: str) -> str:
        first = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
        if first.startswith("Could not override") and f"'{section}." in first:
            key = first.split("'")[1]
            parent = key.split(".", 1)[1].rpartition(".")[0]
            return f"unknown key '{key}': allowed keys are " + ", ".join(section_fields(cls, parent) or [])
        return hydra_error_line(text)

    def main() -> None:
        sys.stderr = held
        try:
            check_command_line(sys.argv[1:], {section: cls})
        except ConfigError as e:
            sys.stderr = held.real
            print(f"config error: {e}", file=sys.stderr)
            sys.exit(2)
        except BaseException:
            held.release()
            raise
        run_app(app, held, lambda: state["started"], error_line)

    return main
