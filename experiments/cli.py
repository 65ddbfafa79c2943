"""What the apps of ``experiments/`` share: their command line, their one-line errors, their folders and files.

Every app (the main job ``experiments.app``, run by ``python -m experiments.run``; ``experiments.calibrate``, the
exploration apps ``experiments.sensitivity``, ``.discover`` and ``.optimise``, ``experiments.collect``, the dashboard
``experiments.dashboard``) imports what it shares from here and from ``sim``, never from another app
(``tests/test_layout.py`` checks it). What is here:

* the command line, checked before Hydra composes anything (:func:`check_command_line`, :func:`section_fields`);
  Hydra's own errors before the task starts held back and put in one line (:class:`HeldStderr`,
  :func:`hydra_error_line`, :func:`run_app`); an app's end on an error in one line (:data:`APP_ERRORS`,
  :class:`RunFailed`, :func:`exit_in_one_line`);
* the resolvers the configs use (``${sweep_id:}``, ``${run_tag:}``, ``${explore_id:APP}``, ``${cores:}``),
  registered when this module is imported;
* a job's folder: the empty folders Hydra created removed after a refused job (:class:`RunFolder`, the configs'
  Hydra callback, and :func:`remove_created_folder`), :func:`check_writable`, :func:`write_provenance`;
* where work runs: :class:`SlurmConfig`, :class:`RunOptions`, :func:`make_executor`;
* the exploration apps' parts (:func:`app_main`, :func:`split`, :func:`check_seeds`, :func:`check_stamp`,
  :func:`digest`, :func:`model_digest`, :func:`say`, :func:`stamp_line`, :func:`save_figure`, :func:`write_table`).
  Each such app is a Hydra app whose config is the model's (``configs/config.yaml``: scenario, regime, every
  instrument's parameters, ``seed``, ``engine``, ``workers``, ``posterior``) plus a section of its own
  (``sensitivity:``, ``discover:``, ``optimise:``) validated by a dataclass. It writes into
  ``exploration/<app>-<hash of the overrides that change numbers>``: the same command resumes in the same folder
  (its design's Parquet parts, :mod:`sim.analysis.designs`), and a folder holding another design is refused in one
  line (its stamp, ``exploration.json``, and the identity each part carries: :mod:`sim.analysis.designs`); two runs
  into one folder at once are refused (a lock held for the run). A bad value is one line naming the key, the value
  and what is allowed, exit code 2, before any run;
* what the main job and the dashboard's Compare page both show or check (:func:`report_tables`,
  :func:`no_spend_note`, :func:`check_comparison_memory`), and what ``experiments.collect`` and the dashboard's Sweep
  page both read of a sweep (:func:`swept_columns`).
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import io
import json
import os
import re
import sys
import tempfile
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, NoReturn, Optional

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from sim.core.config import (Config, ConfigError, _build, hydra_renamed, load_config, one_line, register_hydra_defaults,
                             renamed)
from sim.core.locations import CONFIG_DIR
from sim.core.schema import _c, _nested
from sim.runs.outputs import write_atomic

__all__ = [
    # the command line and one-line errors
    "APP_ERRORS", "RunFailed", "exit_in_one_line", "check_command_line", "section_fields", "HeldStderr",
    "hydra_error_line", "run_app",
    # a job's folder
    "RunFolder", "remove_created_folder", "check_writable", "write_provenance",
    # where work runs
    "SlurmConfig", "RunOptions", "make_executor",
    # the exploration apps
    "app_main", "split", "check_seeds", "check_stamp", "digest", "model_digest", "say", "stamp_line", "save_figure",
    "write_table",
    # shared by the main job, collect and the dashboard
    "report_tables", "no_spend_note", "check_comparison_memory", "swept_columns",
]


# ---------------------------------------------------------------------------------------------------------------
# one-line errors


class RunFailed(Exception):
    """A run raised or broke an invariant: reported in one line, exit code 1."""


APP_ERRORS = (ConfigError, RunFailed, OSError)  # what an app ends on in one line (exit_in_one_line); else a traceback


def exit_in_one_line(e: BaseException, kept: str = "the files written before it are kept, each whole") -> NoReturn:
    """End an app on ``e`` with one line on stderr: the user's error (:class:`ConfigError`) with exit code 2; a run
    that failed, or a fault that is not the user's (an ``OSError``: a full disk, a folder removed under the job),
    with exit code 1 and what was kept. Every app ends this way (the main job, sweeps, calibration, explorations)."""
    if isinstance(e, ConfigError):
        print(f"config error: {one_line(e, 2000)}", file=sys.stderr)
        sys.exit(2)
    if isinstance(e, OSError):
        print(f"run failed: cannot write {e.filename or 'the output folder'} ({e.strerror or e}); {kept}",
              file=sys.stderr)
    else:
        print(f"run failed: {one_line(e, 2000)}", file=sys.stderr)
    sys.exit(1)


# ---------------------------------------------------------------------------------------------------------------
# the command line, checked before Hydra composes anything


def _parser():
    """Hydra's own command-line parser, whose errors are one-line config errors."""
    from hydra._internal.utils import get_args_parser

    parser = get_args_parser()

    def error(message):
        raise ConfigError(f"command line: {message}")

    parser.error = error
    return parser


def _override_args(argv: list[str]) -> list[str]:
    """The overrides (key=value) of a command line, without Hydra's flags and their values."""
    try:
        return list(_parser().parse_args(argv).overrides or [])
    except ConfigError:
        return [a for a in argv if not a.startswith("-")]


def _allowed_keys(dotted: str) -> str:
    """The keys of the model's config allowed beside the last part of ``dotted`` (": allowed keys in ... are ..."),
    or "" when its parent is not a section of the config."""
    cls = Config
    parts = dotted.split(".")
    for p in parts[:-1]:
        hints = typing.get_type_hints(cls)
        if p not in hints or not dataclasses.is_dataclass(hints[p]):
            return ""
        cls = hints[p]
    names = [f.name for f in dataclasses.fields(cls)]
    where = ".".join(parts[:-1])
    return f": allowed keys{' in ' + where if where else ''} are " + ", ".join(names)


def section_fields(cls, dotted: str):
    """The fields allowed under ``dotted`` in an app's section dataclass ``cls`` (None: ``dotted`` is a leaf or not
    a section)."""
    for p in [q for q in dotted.split(".") if q]:
        hints = typing.get_type_hints(cls)
        if p not in hints or not dataclasses.is_dataclass(hints[p]):
            return None
        cls = hints[p]
    return [f.name for f in dataclasses.fields(cls)]


def _check_section_key(key: str, sections: dict) -> bool:
    """True if ``key`` belongs to an app's own section (``sensitivity.method``); a ConfigError if it names none of its
    keys."""
    head, _, rest = key.partition(".")
    if head not in sections:
        return False
    parent, _, leaf = rest.rpartition(".")
    allowed = section_fields(sections[head], parent)
    if not rest or allowed is None or leaf not in allowed:
        where = f"{head}.{parent}" if parent else head
        raise ConfigError(f"unknown key '{one_line(key, 60)}': allowed keys in {where} are "
                          + ", ".join(allowed or section_fields(sections[head], "")))
    return True


# the resolvers that read the environment or decode text: never in the model's values (an app's own settings, e.g.
# dashboard.port=${oc.env:PORT}, and Hydra's may use them)
_ENV_RESOLVER = re.compile(r"\$\{\s*oc\.(?:env|decode)\s*:")
# settings that say where and how runs are done, not what they compute (no number depends on them): a cluster's
# scratch folder or core count may come from the environment
HOW_NOT_WHAT = ("results_dir", "workers", "progress")
_REFERENCE = re.compile(r"\$\{\s*([A-Za-z_][\w.]*)\s*\}")  # ${section.key}: a reference to another key


def check_command_line(argv: list[str], sections: dict | None = None) -> None:
    """Refuse, in one line, an override Hydra would fail on with a traceback, drop, or merge unasked.

    Checked before Hydra composes anything: the syntax of each override, that its key is
    a setting of the model or a run (or Hydra's own, or of an app's own ``sections``:
    ``{name: dataclass}``), that a config group gets one name, and that no model value reads the environment
    (``${oc.env:...}``: what a run ran with must be in its config; a reference to another key is kept).
    """
    sections = sections or {}
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import ChoiceSweep, Glob
    from hydra.errors import HydraException

    from sim.core.config import RUN_SETTINGS, parameter_keys, section_keys
    from sim.runs.sweep import check_sweep_length

    known = set(parameter_keys()) | set(RUN_SETTINGS)
    known |= section_keys()
    parser = OverridesParser.create()
    for line in _parser().parse_args(argv).overrides or []:
        try:
            o = parser.parse_override(line)
        except (HydraException, ValueError, RecursionError) as e:
            why = one_line(str(e).splitlines()[0] if str(e) else type(e).__name__, 120)
            raise ConfigError(f"{one_line(line, 60)}: cannot be parsed ({why}); write key=value, and quote text with "
                              "spaces or characters other than ASCII letters, e.g. scenario.name='丽水'") from None
        key = o.key_or_group
        if key == "hydra" or key.startswith(("hydra.", "hydra/")):
            continue  # Hydra's own settings (launcher, output folders)
        if o.is_sweep_override():
            check_sweep_length(o)  # Hydra would expand range(0,1e18) before any job starts
        if o.is_delete():
            raise ConfigError(f"{one_line(line, 60)}: a setting cannot be deleted; set it to the value you want")
        if key in ("scenario", "regime"):
            value = o.value()
            if o.is_sweep_override():  # -m regime=a,b or scenario=glob(*): each value must be a name
                if isinstance(value, ChoiceSweep) and all(isinstance(v, str) for v in value.list):
                    continue
                if isinstance(value, Glob):
                    continue
                raise ConfigError(f"{one_line(line, 60)}: sweep {key}s by name ({key}=a,b or {key}=glob(*))")
            if not isinstance(value, (str, list, dict)) or isinstance(value, bool):
                raise ConfigError(f"{key} = {one_line(str(value), 60)}: must name a {key} ({key}=NAME)")
            if key == "regime" and renamed(value):
                raise ConfigError(f"regime = {one_line(value, 60)}: no such regime{renamed(value)}")
            if isinstance(value, (list, dict)):
                raise ConfigError(f"{key} = {one_line(str(value), 60)}: pick one {key} by name ({key}=NAME)"
                                  + ("; compare several with regimes=[a,b], or sweep them with -m regime=a,b"
                                     if key == "regime" else "; sweep several with -m scenario=a,b"))
            continue
        model_key = (key in known or key == "grid" or key.startswith("grid.")) and key not in HOW_NOT_WHAT
        refers = {m.split(".", 1)[0] for m in _REFERENCE.findall(line.partition("=")[2])}
        if model_key and refers & (set(sections) | {"hydra"}):  # an app's setting may read the environment
            raise ConfigError(f"{one_line(line, 60)}: a model value may refer only to the model's own keys, not to "
                              f"{', '.join(sorted(refers & (set(sections) | {'hydra'})))}'s")
        if _ENV_RESOLVER.search(line.partition("=")[2]) and model_key:
            raise ConfigError(f"{one_line(line, 60)}: the model's values are written on the command line, not read "
                              "from the environment (${oc.env:...}, ${oc.decode:...}): a run is reproduced from its "
                              "config, which would not hold the value; write it (a reference to another key, "
                              "${section.key}, is allowed)")
        if key == "grid" or key.startswith("grid."):
            continue  # checked with the config (sim.core.config._check_grid)
        if _check_section_key(key, sections):
            continue  # checked with the app's section
        if key not in known:
            raise ConfigError(f"unknown key '{one_line(key, 60)}'" + renamed(key) + _allowed_keys(key))


# ---------------------------------------------------------------------------------------------------------------
# Hydra's errors before the task starts, in one line


class HeldStderr(io.TextIOBase):
    """Holds what Hydra writes to stderr until the job starts, so its errors can be put in one line."""

    def __init__(self, real):
        self.real = real
        self.held = io.StringIO()
        self.holding = True

    def write(self, s):
        return (self.held if self.holding else self.real).write(s)

    def flush(self):
        if not self.holding:
            self.real.flush()

    def release(self):
        if self.holding:
            self.holding = False
            self.real.write(self.held.getvalue())
            sys.stderr = self.real


def _is_config_error(message: str) -> bool:
    """A Hydra composition error (the command line or a config file), as opposed to a failing job.

    Hydra reports its own errors (composition, overrides) without a traceback.
    """
    return "Traceback" not in message and bool(message.strip())


_FOLDER_ERRORS = ("OSError", "PermissionError", "NotADirectoryError", "FileExistsError", "IsADirectoryError",
                  "FileNotFoundError")


def _folder_error(message: str):
    """Hydra could not create the run's folder (before the job started): that folder's error, in one line."""
    lines = [ln.strip() for ln in message.splitlines() if ln.strip() and "HYDRA_FULL_ERROR" not in ln]
    if lines and lines[0].startswith("Traceback") and lines[-1].split(":", 1)[0] in _FOLDER_ERRORS:
        return f"cannot create the output folder (hydra.run.dir / hydra.sweep.dir): {one_line(lines[-1], 200)}"
    return None


def hydra_error_line(message: str) -> str:
    """Hydra's composition error, reduced to its first useful line (+ the allowed options)."""
    lines = [ln.strip() for ln in message.splitlines() if ln.strip()]
    lines = [ln for ln in lines if not ln.startswith("Set the environment variable HYDRA_FULL_ERROR")]
    if not lines:
        return "invalid command line"
    first = lines[0]
    if "Could not find" in first or "Could not load" in first:
        opts = []
        for ln in lines[1:]:
            if ln.startswith("Available options") or ln.startswith("Config search path"):
                continue
            if " " in ln or ":" in ln:
                break
            opts.append(ln)
        if opts:
            first += "; allowed: " + ", ".join(opts)
    elif first.startswith("Could not override"):
        key = first.split("'")[1] if "'" in first else ""
        first = f"unknown key '{key}'" + _allowed_keys(key)
    return first + hydra_renamed(lines[0])


def run_app(app, held: HeldStderr, started, error_line=hydra_error_line) -> None:
    """Run a Hydra app whose errors before its task starts (composition, the output folder) become one line,
    exit code 2; ``held`` has kept Hydra's stderr until then, ``started()`` says whether the task began."""
    try:
        app()
    except SystemExit as e:
        text = held.held.getvalue()
        if not started() and e.code not in (0, None):
            line = error_line(text) if _is_config_error(text) else _folder_error(text)
            if line:
                sys.stderr = held.real
                print(f"config error: {line}", file=sys.stderr)
                sys.exit(2)
        raise
    finally:
        if sys.stderr is held:
            held.release()


# ---------------------------------------------------------------------------------------------------------------
# the configs' resolvers, registered on import


def _sweep_id() -> str:
    """A short name for a sweep, from the command line that started it: the same sweep, the same folder.

    Launcher settings (``hydra.*``, ``hydra/launcher=...``), the flags and the settings
    that change no number (``workers``, ``progress``, ``engine``) are left out, so resuming
    with another launcher, more workers or without a progress bar lands in the same
    folder. Resolved once in the driver; jobs get the value through Hydra's resolver cache.
    """
    from sim.runs.sweep import SETTINGS_IGNORED

    ignored = {k for k in SETTINGS_IGNORED if k != "results_dir"}
    args = [a for a in _override_args(sys.argv[1:])
            if not a.lstrip("+~").startswith("hydra") and a.split("=", 1)[0].lstrip("+~") not in ignored]
    text = "\n".join(sorted(args))
    return "sweep-" + hashlib.sha256(text.encode()).hexdigest()[:10]


if not OmegaConf.has_resolver("sweep_id"):
    OmegaConf.register_new_resolver("sweep_id", _sweep_id, use_cache=True)


def _run_tag() -> str:
    """What makes the main job's default folder its own: the process id and a short random suffix (two jobs
    started in the same second, on one host or on two sharing the file system, get different folders)."""
    import secrets

    return f"{os.getpid()}-{secrets.token_hex(2)}"


if not OmegaConf.has_resolver("run_tag"):
    OmegaConf.register_new_resolver("run_tag", _run_tag, use_cache=True)


# keys that change no number: an exploration's folder stays the same when they change
_EXPLORE_IGNORED = ("workers", "progress", "run")


def _explore_id(app: str) -> str:
    """``<app>-<hash>`` of the overrides that change numbers: the same command, the same folder."""
    def ignored(key: str) -> bool:
        parts = key.split(".")
        return parts[0] in _EXPLORE_IGNORED or (len(parts) > 1 and parts[0] == app and parts[1] in _EXPLORE_IGNORED)

    args = [a for a in sys.argv[1:] if "=" in a and not a.startswith("-") and not a.lstrip("+~").startswith("hydra")
            and not ignored(a.split("=", 1)[0].lstrip("+~"))]
    return f"{app}-" + hashlib.sha256("\n".join(sorted(args)).encode()).hexdigest()[:8]


if not OmegaConf.has_resolver("explore_id"):
    OmegaConf.register_new_resolver("explore_id", _explore_id, use_cache=True)
if not OmegaConf.has_resolver("cores"):  # the apps' default number of processes: every core
    OmegaConf.register_new_resolver("cores", lambda: max(1, min(os.cpu_count() or 1, 1024)))


# ---------------------------------------------------------------------------------------------------------------
# a job's folder

_RUN_DIR: dict = {}  # the job's folder as Hydra is about to create it: {"path": ..., "created": ...}


class RunFolder(Callback):
    """Notes, before Hydra creates a job's folder, which part of its path does not exist yet, so that a refused or
    failed job removes the empty folders it created (and nothing else): :func:`remove_created_folder`. Hydra's
    callback of every app (``hydra.callbacks`` of ``configs/config.yaml``, which the other apps' configs extend, and of
    ``configs/calibrate.yaml``)."""

    def on_run_start(self, config, **kwargs) -> None:
        try:
            folder = Path(str(OmegaConf.select(config, "hydra.run.dir"))).absolute()
        except Exception:  # an unresolvable folder is Hydra's to report
            return
        created, p = None, folder
        while not os.path.lexists(p) and p.parent != p:
            created, p = p, p.parent
        _RUN_DIR.update(path=folder, created=created)


def remove_created_folder() -> None:
    """After a refused or failed job (the main job, an exploration app): the folders Hydra created for it, if they
    are empty, are removed."""
    folder, created = _RUN_DIR.get("path"), _RUN_DIR.get("created")
    if folder is None or created is None:
        return
    p = folder
    while True:
        try:
            if os.path.lexists(p):  # (an app may have removed its own folder already)
                p.rmdir()  # only an empty folder
        except OSError:
            return
        if p == created or p.parent == p:
            return
        p = p.parent


def check_writable(folder: Path, key: str) -> None:
    """Refuse, before anything is computed, a folder this process cannot write its results into."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-test.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ConfigError(f"{key} = {str(folder)!r}: cannot write there ({e.strerror or e})") from None


def write_provenance(out: Path, node: DictConfig) -> None:
    """The run's config and overrides in ``.hydra/``, written with its tables (Hydra's own copy is off).

    Hydra would write them when a run starts, so a second run into the same folder that
    failed would leave the first run's tables under the second run's provenance.
    """
    hc = HydraConfig.get()
    folder = out / ".hydra"
    folder.mkdir(exist_ok=True)
    job = OmegaConf.to_container(node, resolve=False)
    write_atomic(folder / "config.yaml", lambda p: OmegaConf.save(OmegaConf.create(job), p))
    write_atomic(folder / "overrides.yaml", lambda p: OmegaConf.save(OmegaConf.create(list(hc.overrides.task)), p))
    choices = dict(hc.runtime.choices)
    write_atomic(folder / "choices.yaml", lambda p: OmegaConf.save(OmegaConf.create(choices), p))


# ---------------------------------------------------------------------------------------------------------------
# where work runs


@dataclass
class SlurmConfig:
    """Where a Slurm job array runs (submitit), for the apps that send work to Slurm themselves."""

    partition: Optional[str] = _c(None, doc="Slurm partition (null: the cluster's default)")
    timeout_min: int = _c(60, ge=1, le=100000, doc="wall time of one job")
    cpus_per_task: int = _c(1, ge=1, le=1024, doc="cores of one job")
    mem_gb: float = _c(2.0, ge=0.1, le=10000.0, doc="memory of one job")
    array_parallelism: int = _c(64, ge=1, le=100000, doc="jobs of an array running at once")


@dataclass
class RunOptions:
    """Where and how a design's points run (no number depends on these)."""

    executor: str = _c("local", choices=("local", "slurm"), doc="local: `workers` processes here; slurm: a job array "
                                                                 "of `workers` jobs per part (submitit)")
    slurm: SlurmConfig = _nested(SlurmConfig)
    part_size: int = _c(1024, ge=1, le=10**7, doc="points per Parquet part: the unit of resumption")
    resume: bool = _c(True, doc="reuse the parts already in the folder (false: start again)")


def make_executor(run: RunOptions, workers: int, out: Path):
    """The executor ``run`` asks for (:class:`sim.runs.executor.Executor`): ``workers`` local processes, or Slurm job
    arrays of ``workers`` jobs whose files go to ``out/.submitit``."""
    from sim.runs.executor import Executor

    return Executor(run.executor, workers, {**dataclasses.asdict(run.slurm), "folder": str(out / ".submitit")})


# ---------------------------------------------------------------------------------------------------------------
# the exploration apps


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
    """A short hash of ``obj`` as JSON (keys sorted; what JSON cannot say, as its text): part of a design's stamp."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def model_digest(cfg: Config) -> str:
    """The model's config as numbers: settings that change none (``progress``, ``workers``) leave it the same, so a
    run resumed with other ones continues in its folder."""
    from sim.core.config import replace

    return digest(repr(replace(cfg, progress=False, workers=1)))


def say(cfg: Config, text: str) -> None:
    """Print ``text`` (flushed) unless the run was asked to be quiet (``progress=false``)."""
    if cfg.progress:
        print(text, flush=True)


def stamp_line(app: str) -> str:
    """The line that says how a report was made: the app's command line and the time it ran."""
    return (f"{app}: python -m experiments.{app} {' '.join(sys.argv[1:])} "
            f"({datetime.datetime.now().isoformat(timespec='seconds')})")


def save_figure(fig, path: Path) -> None:
    """Write a Matplotlib figure to ``path`` as PNG (atomically, never half-written), then close it."""
    import matplotlib.pyplot as plt

    write_atomic(path, lambda p: fig.savefig(p, dpi=110, format="png"))
    plt.close(fig)


def write_table(frame, path: Path) -> None:
    """Write a DataFrame to ``path``, atomically: Parquet (:func:`sim.analysis.designs.write_parquet`) for a
    ``.parquet`` path, CSV without the index otherwise."""
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


# ---------------------------------------------------------------------------------------------------------------
# shared by the main job (experiments.app), experiments.collect and the dashboard


def report_tables(res, cfg, regimes) -> list[tuple]:
    """The tables of one comparison, (title, table) in the order the report gives them: the main job's table.md
    and the dashboard's Compare page show these."""
    from sim import api
    from sim.analysis.stats import SIZE_METRICS, by_year, format_table, tails, who_pays

    out = [(f"Outcomes per run, mean [95% interval] over {api.replicates_text(cfg)} ({cfg.scenario.name})",
            format_table(res.table))]
    if "baseline" in regimes and len(regimes) > 1:
        out += [("Effect against baseline, paired by seed: mean difference [95% interval]\n"
                 "(cost_per_extra_conversion: extra government spend / extra expected conversions, those realised "
                 "and the deals running at the horizon at their chance, bootstrap interval; _public: less what "
                 "public universities keep; _pv: spend and conversions both in present values at "
                 f"{cfg.scenario.discount_rate:.0%} a year)", format_table(res.table, effects=True)),
                ("Who pays and who gains: change in each party's net position against baseline "
                 "(present value, yuan; mean [95% interval])", who_pays(res.table)),
                ("By firm size: effect against baseline on SMEs and on large firms",
                 format_table(res.table, effects=True, metrics=SIZE_METRICS))]
    out += [(f"Spread across the {api.replicates_text(cfg)}: 5th / 50th / 95th percentile", tails(res.table)),
            ("Conversions by year of the run (mean over seeds)", by_year(res.series))]
    return out


def no_spend_note(at_spend: str) -> str:
    """What the report says when the regime named for equal spend spent nothing in the runs."""
    return f"No comparison at equal spend: {at_spend} spent no public money in these runs."


def check_comparison_memory(cfg, regimes, at_spend, draws=()) -> None:
    """Refuse, before any run, a comparison whose runs or results would not fit in memory (the runs of each
    process, and every run's series kept for the tables, the frames and the CSV files)."""
    from sim.core.population import check_memory
    from sim.core.results import N_SERIES

    replicates = cfg.seeds * (cfg.posterior_draws if draws else 1)
    results_bytes = 4.0 * (2 if at_spend else 1) * len(regimes) * replicates * cfg.scenario.months * N_SERIES * 8
    for run_cfg in {id(c): c for c in draws or [cfg]}.values():  # a draw may set the population's size
        check_memory(run_cfg, cfg.engine, processes=cfg.workers, extra=results_bytes, extra_key=("seeds", cfg.seeds))


def swept_columns(params: list[dict]) -> list[str]:
    """Parameters that take more than one value across the sweep (the sweep's axes)."""
    if not params:
        return []
    keys = list(params[0])
    return [k for k in keys if len({str(p.get(k)) for p in params}) > 1]

