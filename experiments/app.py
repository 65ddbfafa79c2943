"""The project's Hydra app: the main job (compare regimes) and, in a multirun, sweep jobs.

It lives in an importable module (``python -m experiments.run`` calls :func:`main`) so
that launchers that pickle the task function (joblib, submitit) pickle it by name.

The main job: compare the policy regimes on one scenario.

    python -m experiments.run                                   # every regime, default scenario
    python -m experiments.run scenario=lishui regimes=[baseline,free_trial] seeds=5
    python -m experiments.run broker_reward.cap=500000 free_trial.term_months=12
    python -m experiments.run regime=free_trial                 # that regime alone

Writes into the Hydra run directory (printed at the end):
    summary.csv      one row per regime x seed: parameters and metrics
    series.csv       one row per regime x seed x month: the monthly series
    sectors.csv      one row per regime x seed x month x sector: matches, contracts, successes, failures
    table.csv        one row per regime x metric: mean, 95% interval, paired effect vs baseline
    table.md         the printed tables
    comparison.png   the regimes side by side

A configuration error is reported in one line with exit code 2.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import logging
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn, Optional

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.errors import CompactHydraException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from sim.core.config import ConfigError, hydra_renamed, load_config, one_line, register_hydra_defaults, renamed
from sim.runs.outputs import _file_mode, lock_folder, write_atomic  # noqa: F401  (the apps import write_atomic from here)
from sim.core.schema import _c

_STARTED = False  # set once Hydra has composed the config and handed it to the task


@dataclass
class SlurmConfig:
    """Where a Slurm job array runs (submitit), for the apps that send work to Slurm themselves."""

    partition: Optional[str] = _c(None, doc="Slurm partition (null: the cluster's default)")
    timeout_min: int = _c(60, ge=1, le=100000, doc="wall time of one job")
    cpus_per_task: int = _c(1, ge=1, le=1024, doc="cores of one job")
    mem_gb: float = _c(2.0, ge=0.1, le=10000.0, doc="memory of one job")
    array_parallelism: int = _c(64, ge=1, le=100000, doc="jobs of an array running at once")


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


if not OmegaConf.has_resolver("sweep_id"):
    OmegaConf.register_new_resolver("sweep_id", _sweep_id, use_cache=True)


def _run_tag() -> str:
    """What makes the main job's default folder its own: the process id and a short random suffix (two jobs
    started in the same second, on one host or on two sharing the file system, get different folders)."""
    import secrets

    return f"{os.getpid()}-{secrets.token_hex(2)}"


if not OmegaConf.has_resolver("run_tag"):
    OmegaConf.register_new_resolver("run_tag", _run_tag, use_cache=True)


_RUN_DIR: dict = {}  # the main job's folder as Hydra is about to create it: {"path": ..., "created": ...}


class RunFolder(Callback):
    """Notes, before Hydra creates the main job's folder, which part of its path does not exist yet, so that a
    refused or failed job removes the empty folders it created (and nothing else)."""

    def on_run_start(self, config, **kwargs) -> None:
        try:
            folder = Path(str(OmegaConf.select(config, "hydra.run.dir"))).absolute()
        except Exception:  # an unresolvable folder is Hydra's to report
            return
        created, p = None, folder
        while not os.path.lexists(p) and p.parent != p:
            created, p = p, p.parent
        _RUN_DIR.update(path=folder, created=created)


# what the main job writes into its folder (each replaced only there, as a regular file)
RUN_FILES = tuple(f"{name}{suffix}.{ext}" for suffix in ("", "_equal_spend")
                  for name, ext in (("summary", "csv"), ("series", "csv"), ("sectors", "csv"), ("table", "csv"),
                                    ("comparison", "png"))) + (
    "robustness.csv", "robustness_parameters.csv", "table.md", ".hydra/config.yaml", ".hydra/overrides.yaml",
    ".hydra/choices.yaml")


def check_run_folder(out: Path, key: str = "hydra.run.dir") -> None:
    """Refuse, before any run, a folder the main job would write through a link, device or FIFO, or whose files of
    the job's names are not a main job's (no ``.lock`` nor ``.hydra/config.yaml``: a folder of your own)."""
    from sim.runs.outputs import LOCK_NAME, check_target

    hydra_dir = out / ".hydra"
    if hydra_dir.is_symlink() or (os.path.lexists(hydra_dir) and not hydra_dir.is_dir()):
        raise ConfigError(f"{key} = {str(out)!r}: its .hydra is not a plain folder; the job writes only files it "
                          "creates: choose another folder")
    for name in RUN_FILES:
        check_target(out / name, f"{key} file {name}")
    ours = os.path.lexists(out / LOCK_NAME) or (out / ".hydra" / "config.yaml").is_file()
    theirs = [n for n in RUN_FILES if (out / n).is_file()]
    if theirs and not ours:
        raise ConfigError(f"{key} = {str(out)!r}: holds {theirs[0]}, not a main job's (no {LOCK_NAME} nor "
                          ".hydra/config.yaml); the job writes only files it creates: choose another folder")


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


def _set_aside_previous(out: Path) -> Optional[Path]:
    """Move an earlier job's results in ``out`` (the files of :data:`RUN_FILES` there) into ``out/previous-<UTC time>/``,
    so that a job run again into its folder never leaves a file of the earlier one beside its own (an earlier
    ``*_equal_spend.csv``, say). Called once the new job's runs are done: a failed job leaves them where they were.
    Returns the folder they went to, or None when there were none."""
    old = [name for name in RUN_FILES if (out / name).is_file()]
    if not old:
        return None
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    aside = out / f"previous-{stamp}"
    for name in old:
        (aside / name).parent.mkdir(parents=True, exist_ok=True)
        os.replace(out / name, aside / name)
    return aside


def main_job(node: DictConfig) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # files only, no window
    logging.getLogger("MESA").setLevel(logging.WARNING)  # Mesa logs every step at INFO
    from sim import api
    from sim.core.results import InvariantError

    out = Path(HydraConfig.get().runtime.output_dir)
    check_writable(out, "hydra.run.dir")
    check_run_folder(out)
    global _LOCK
    _LOCK = lock_folder(out, "hydra.run.dir")  # held for the job's life: a second job into the folder is refused
    cfg = load_config(node)
    # a regime chosen on the command line (regime=NAME or any regime.* key) runs alone
    if _explicit("regime") and _explicit("regimes"):
        api.regime(cfg.regime.name)  # a regime that does not exist is named first
        raise ConfigError(f"regimes = {cfg.regimes}: given with regime={cfg.regime.name}, which runs that regime "
                          "alone; give one of them (regimes=[...] compares several)")
    regimes = [cfg.regime.name] if _explicit("regime") else list(cfg.regimes)
    if cfg.grid:
        raise ConfigError("grid = {...}: a grid is for sweeps; run with -m (multirun)")
    for name in regimes:  # fail on a bad name before any run
        api.regime(name)
    # at equal spend too, unless one regime was chosen alone on the command line
    at_spend = cfg.at_spend if len(regimes) > 1 or _explicit("at_spend") else None
    if at_spend is not None:
        api.check_at_spend(at_spend)
    draws = _posterior_draws(cfg)  # a bad posterior fails here, before any run
    from sim.analysis import robustness

    robust_params = robustness.check_parameters(cfg) if draws else []  # a bad key fails before any run too
    check_comparison_memory(cfg, regimes, at_spend, draws)
    replicates = cfg.seeds * (cfg.posterior_draws if draws else 1)
    print(f"scenario {cfg.scenario.name}: {cfg.scenario.firms.n} firms, "
          f"{cfg.scenario.universities.n * cfg.scenario.universities.achievements_each} achievements, "
          f"{cfg.scenario.months} months; regimes {', '.join(regimes)}; seeds {cfg.seed}..{cfg.seed + replicates - 1}; "
          f"engine {cfg.engine}")
    title = f"{cfg.scenario.name}: regimes compared over {api.replicates_text(cfg)}"
    try:
        res = api.compare(cfg, regimes=regimes)
    except InvariantError as e:
        raise RunFailed(f"a run broke an invariant of the model, so no table was written: {e}") from None
    _set_aside_previous(out)   # a job run again into its folder: the earlier results kept apart, never mixed
    written = _write_comparison(out, "", res, title)
    text = _report(res, cfg, regimes)
    if "baseline" in regimes and len(regimes) > 1:
        try:
            lines, files = _robust_report(res, cfg, regimes, robust_params)
        except InvariantError as e:
            raise RunFailed(f"a run at a robust_parameters value broke an invariant of the model, so its tables were "
                            f"not written (those of the comparison were): {e}") from None
        for name, frame in files.items():
            write_atomic(out / name, lambda p, frame=frame: frame.to_csv(p, index=False))
        written += list(files)
        text += [""] + lines
    _write_report(out, node, headline(res, None, None) + [""] + text)  # kept should the equal-spend runs fail
    equal = None
    if at_spend is not None:
        try:
            equal = api.compare_at_spend(cfg, at_spend, regimes=regimes, spend_of=res)
        except api.NoSpend:  # the runs decided it (no contract to reward, say): said, and the tables above kept
            text += ["", no_spend_note(at_spend)]
            _write_report(out, node, headline(res, None, None) + [""] + text)
            at_spend = None
        except InvariantError as e:
            raise RunFailed(f"a run at equal spend broke an invariant of the model, so its tables were not written "
                            f"(those of the comparison without a budget were): {e}") from None
    if equal is not None:
        written += _write_comparison(out, "_equal_spend", equal, f"{title}, at equal spend")
        text += ["", f"# At equal spend: every regime under government.annual_budget = {equal.budget:,.0f} yuan a "
                     f"year, the mean yearly spend of {at_spend} above", ""] + _report(equal, cfg, regimes)
        _write_report(out, node, headline(res, equal, at_spend) + [""] + text)
    print("\n".join(headline(res, equal, at_spend) + [""] + text))
    print(f"\nwrote {', '.join(written)}, table.md and .hydra/ to {out}")
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
        check_memory(run_cfg, cfg.engine, processes=cfg.workers, extra=results_bytes)


def _posterior_draws(cfg) -> list:
    """The configs of the posterior's draws (validated), after one line that says what they are; [] without one."""
    from sim.runs.posterior import load_posterior

    if cfg.posterior is None:
        return []
    posterior = load_posterior(cfg.posterior)
    keys = posterior.applied(cfg.scenario.name)
    both = [k for k in keys if _explicit(k)]
    if both:  # the posterior's draw would silently replace the value asked for
        value = cfg
        for part in both[0].split("."):
            value = getattr(value, part)
        raise ConfigError(f"{both[0]} = {value}: set on the command line and by the posterior {posterior.path} (its draws set "
                          f"{', '.join(keys)}); drop one of them")
    draws = posterior.draws(cfg, cfg.posterior_draws)
    print(f"posterior {posterior.path} (target set {posterior.target_set}, {len(posterior.weights)} particles): "
          f"{cfg.posterior_draws} draws x {cfg.seeds} seeds each; keys applied to scenario {cfg.scenario.name}: "
          + ", ".join(keys))
    return draws


def _write_report(out: Path, node: DictConfig, lines: list[str]) -> None:
    write_atomic(out / "table.md", lambda p: Path(p).write_text("\n".join(lines) + "\n"))
    write_provenance(out, node)  # last: the provenance is that of the tables now in the folder


def _write_comparison(out: Path, suffix: str, res, title: str) -> list[str]:
    """A comparison's files: summary, series, sectors, table (CSV) and its figure; returns their names."""
    from sim import api
    from sim.analysis.plots import save_comparison

    files = {f"summary{suffix}.csv": lambda p: res.summary.to_csv(p, index=False),
             f"series{suffix}.csv": lambda p: res.series.to_csv(p, index=False),
             f"sectors{suffix}.csv": lambda p: api.sector_frame(res.results).to_csv(p, index=False),
             f"table{suffix}.csv": lambda p: res.table.to_csv(p, index=False),
             f"comparison{suffix}.png": lambda p: save_comparison(res.series, res.summary, Path(p), title)}
    for name, write in files.items():
        write_atomic(out / name, write)
    return list(files)


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


def _report(res, cfg, regimes) -> list[str]:
    """The tables of one comparison (markdown lines)."""
    from tabulate import tabulate

    text: list[str] = []
    for title, df in report_tables(res, cfg, regimes):  # a title's second line, if any, is its note
        text += ([""] if text else []) + ["## " + title, tabulate(df, headers="keys", tablefmt="github")]
    return text


def _robust_report(res, cfg, regimes, params) -> tuple[list[str], dict]:
    """The report's section on robust conclusions (markdown lines) and its files: in how many replicates each
    conclusion holds (:mod:`sim.analysis.robustness`) and, on a posterior, how the ranking moves over ``params``."""
    from tabulate import tabulate

    from sim import api
    from sim.analysis import robustness
    from sim.runs.posterior import load_posterior

    rob = robustness.table(res.summary, regimes, cfg.robust_share)
    what = "posterior draws" if cfg.posterior is not None else "seeds"
    shown = rob[["regime", "extra_conversions", "share_positive", "effect_share", "share_cheapest", "share_dearest",
                 "rank"]].copy()
    lines = [f"## Robust conclusions: the share of the {api.replicates_text(cfg)} in which each holds "
             f"(holds: at least {cfg.robust_share:.0%} agree; FLIPS otherwise)",
             "(share_cheapest, share_dearest, rank: among the spending instruments, by extra government spend per "
             "extra conversion)",
             tabulate(shown, headers="keys", tablefmt="github", showindex=False, floatfmt=".2f"), ""]
    lines += robustness.conclusions(rob, cfg.robust_share, what)
    files = {"robustness.csv": rob}
    if cfg.posterior is None:
        lines += ["", "(How the ranking moves over robust_parameters is shown on a posterior: posterior=<dir>.)"]
        return lines, files
    fitted = load_posterior(cfg.posterior).applied(cfg.scenario.name)
    over = robustness.over_parameters(cfg, regimes, res.summary, params, fitted, compare=api.compare)
    files["robustness_parameters.csv"] = over
    lines += ["", f"## How the ranking moves over the judgement parameters (space {cfg.robust_space}): each at its "
                  "range's ends (re-run on the same draws), or, where the posterior fits it, its draws split at the median",
              f"(as run: {robustness.order_text(rob)})",
              tabulate(over, headers="keys", tablefmt="github", showindex=False)]
    return lines, files


def headline(res, equal, at_spend) -> list[str]:
    """One row per regime: what it adds and what each extra conversion costs, unconstrained and at equal spend."""
    from tabulate import tabulate

    from sim.analysis.stats import headline_table

    df = headline_table(res.table, None if equal is None else equal.table)
    note = (f"; at equal spend: every regime capped at {at_spend}'s yearly spend, {equal.budget:,.0f} yuan"
            if equal is not None else "")
    return [f"# Headline: each regime against baseline, mean [95% interval]{note}",
            tabulate(df, headers="keys", tablefmt="github", showindex=False)]


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


_LOCK = None  # the main job's lock on its folder (sim.runs.outputs.FolderLock)


class RunFailed(Exception):
    """A run raised or broke an invariant: reported in one line, exit code 1."""


def _explicit(key: str) -> bool:
    """Whether the command line set ``key`` or a key below it (so a mode-dependent default must not override it)."""
    try:
        overrides = HydraConfig.get().overrides.task
    except ValueError:
        return False
    keys = (o.split("=", 1)[0].lstrip("+~") for o in overrides)
    return any(k == key or k.startswith(key + ".") for k in keys)


def _sweep_dir(hc) -> Path:
    """The sweep's folder, as the launcher resolved it (a job re-resolving hydra.sweep.dir would not)."""
    out, sub = Path(hc.runtime.output_dir), Path(str(hc.sweep.subdir))
    return Path(*out.parts[: len(out.parts) - len(sub.parts)]) if out.parts[-len(sub.parts):] == sub.parts else out


def sweep_job(node: DictConfig) -> None:
    """One job of a multirun: its point(s) x seeds, stored one file per run, skipping what is done.

    In a sweep the engine defaults to numba, and a job given ``seed=`` (without
    ``seeds=``) runs that one seed.
    """
    from sim.runs.sweep import ResultStore, expand_grid, job_config, override_keys, run_sweep_job

    from sim.core.population import check_memory

    logging.getLogger("MESA").setLevel(logging.WARNING)
    hc = HydraConfig.get()
    cfg = job_config(load_config(node), override_keys(hc.overrides.task))
    if _explicit("at_spend") and cfg.at_spend is not None:
        raise ConfigError(f"at_spend = {cfg.at_spend}: compares the main job's regimes; in a sweep set "
                          "government.annual_budget (or sweep over it)")
    if cfg.posterior is not None:
        raise ConfigError(f"posterior = {one_line(cfg.posterior, 100)}: the main job's (a comparison over a "
                          "posterior's draws); a sweep runs the points of its grid")
    points = expand_grid(cfg, cfg.grid)  # fail on a bad grid before any run
    root = Path(cfg.results_dir) if cfg.results_dir else _sweep_dir(hc)
    store = ResultStore(root)
    check_writable(store.results, "results_dir" if cfg.results_dir else "hydra.sweep.dir")
    for point in points:
        check_memory(point, cfg.engine, processes=cfg.workers)
    rep = run_sweep_job(cfg, store, workers=cfg.workers, progress=cfg.progress)
    write_provenance(Path(hc.runtime.output_dir), node)
    print(f"job {hc.job.num} ({' '.join(hc.overrides.task) or 'defaults'}): {rep.total} runs, "
          f"{rep.skipped} already done, {rep.ran} ran, {rep.failed} failed -> {store.results}", flush=True)
    if rep.failed:
        raise RunsFailed(f"{rep.failed} of {rep.total} runs failed (their errors are in {store.failed}); "
                         f"python -m experiments.collect {_sweep_dir(hc)} lists them; running the sweep "
                         "again retries them")


class RunsFailed(CompactHydraException):
    """Some runs of a sweep job failed: Hydra reports it in one line and the sweep exits 1."""


from sim.core.locations import CONFIG_DIR  # noqa: E402

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


def task(node: DictConfig) -> None:
    """Hydra's task function (left undecorated, so launchers pickle it by its name)."""
    global _STARTED
    _STARTED = True
    _STDERR.release()
    if HydraConfig.get().mode == RunMode.MULTIRUN:
        try:
            sweep_job(node)
        except APP_ERRORS as e:
            exit_in_one_line(e)
        return
    global _LOCK
    ok = False
    try:
        main_job(node)
        ok = True
    except APP_ERRORS as e:
        exit_in_one_line(e)
    finally:
        if _LOCK is not None:  # still held: a refused or failed job removes the lock file it created
            _LOCK.release(remove=not ok and _LOCK.created)
            _LOCK = None
        if not ok:
            remove_created_folder()


register_hydra_defaults()  # the instruments' sections and the default regimes, from the registry
_app = hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="config")(task)


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


_STDERR = HeldStderr(sys.stderr)


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


def _allowed_keys(dotted: str) -> str:
    import dataclasses
    import typing

    from sim.core.config import Config

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
    import dataclasses
    import typing

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


def check_command_line(argv: list[str], sections: dict | None = None) -> None:
    """Refuse, in one line, an override Hydra would fail on with a traceback, drop, or merge unasked.

    Checked before Hydra composes anything: the syntax of each override, that its key is
    a setting of the model or a run (or Hydra's own, or of an app's own ``sections``:
    ``{name: dataclass}``), and that a config group gets one name.
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
        if key == "grid" or key.startswith("grid."):
            continue  # checked with the config (sim.core.config._check_grid)
        if _check_section_key(key, sections):
            continue  # checked with the app's section
        if key not in known:
            raise ConfigError(f"unknown key '{one_line(key, 60)}'" + renamed(key) + _allowed_keys(key))


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


def main() -> None:
    sys.stderr = _STDERR
    try:
        check_command_line(sys.argv[1:])
    except ConfigError as e:
        sys.stderr = _STDERR.real
        print(f"config error: {e}", file=sys.stderr)
        sys.exit(2)
    except BaseException:
        _STDERR.release()  # whatever else happened is shown, not swallowed
        raise
    run_app(_app, _STDERR, lambda: _STARTED)


