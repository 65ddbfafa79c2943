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
import logging
import os
import sys
from pathlib import Path
from typing import Optional

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import CompactHydraException
from hydra.types import RunMode
from omegaconf import DictConfig

from experiments.cli import (APP_ERRORS, HeldStderr, RunFailed, check_command_line, check_comparison_memory,
                             check_writable, exit_in_one_line, no_spend_note, remove_created_folder, report_tables,
                             run_app, write_provenance)
from sim.core.config import ConfigError, load_config, one_line, register_hydra_defaults
from sim.core.locations import CONFIG_DIR
from sim.runs.outputs import lock_folder, write_atomic

_STARTED = False  # set once Hydra has composed the config and handed it to the task


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
    api.check_regimes(cfg, [*regimes, *([at_spend] if at_spend else [])])  # each regime's own rules, before any run
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


_LOCK = None  # the main job's lock on its folder (sim.runs.outputs.FolderLock)


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


_STDERR = HeldStderr(sys.stderr)


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


