"""Calibrate the model to reported figures: ``python -m experiments.calibrate`` (a Hydra app).

    python -m experiments.calibrate                         # configs/targets/reported.yaml, budget 100,000 runs
    python -m experiments.calibrate target_set=my_region.yaml budget=50000 workers=2
    python -m experiments.calibrate method=screen           # the Morris screen alone
    python -m experiments.calibrate executor=slurm slurm.partition=compute workers=64
    python -m experiments.calibrate method=predict posterior=calibration/reported-e3b0c442 target_set=unseen.yaml
                                                            # figures never fitted, predicted from a posterior

Steps: a Morris screen of every free parameter of ``space`` against the fitted targets
(SALib), then ABC-SMC (pyabc) on the parameters that matter, then the posterior
predictive distribution of every target, fitted and held out. Writes into its folder
(``calibration/<target set>-<hash of the overrides>``: the same command resumes there after a
kill, continuing pyabc's history from its last complete generation):

    screen.csv, screen.png          the Morris screen
    abc.db                          pyabc's history (every generation)
    posterior.csv, posterior.yaml   the last generation's particles and weights; what they apply to
    posterior_summary.csv           per parameter: range, median, 90% interval, shrinkage
    posterior_pairs.png             marginals and pairs
    predictive.csv                  every target's statistic under each posterior draw
    fit.csv, fit.png                each target: reported, predicted (90% interval), z, misfit
    report.md                       the tables, the misfits, the provenance
    scenario/<name>_calibrated.yaml scenario configs with the posterior medians (also put in
                                    configs/scenario/ of a source checkout: scenario=<name>_calibrated)

A bad value is one line naming the key, the value and what is allowed, exit code 2.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import hydra
from omegaconf import DictConfig, OmegaConf

from experiments.cli import (APP_ERRORS, RunFailed, SlurmConfig, write_provenance, HeldStderr, hydra_error_line,
                             check_writable, exit_in_one_line, remove_created_folder, run_app)
from sim.core.config import _build, ConfigError, one_line, register_hydra_defaults
from sim.analysis.calibration import TRANSITIONS
from sim.core.locations import CONFIG_DIR
from sim.core.schema import COUNT_MAX, SEED_MAX, _c, _nested
from sim.runs.outputs import write_atomic


@dataclass
class ScreenConfig:
    trajectories: int = _c(100, ge=2, le=10000, doc="Morris trajectories (each: one point per parameter + 1)")
    keep: int = _c(8, ge=1, le=100, doc="parameters kept for the fit, by their Morris mu* (with check: those either "
                                       "screen ranks among its keep largest)")
    threshold: float = _c(0.5, ge=0.0, le=1.0e6, doc="least mu* kept, in sigmas of the most sensitive target")
    fit: Optional[list] = _c(None, doc="the keys to fit, skipping the screen (null: screen)")
    check: bool = _c(True, doc="screen again with seed + 1 (as many runs again), report whether it keeps the same "
                               "parameters, and fit those either keeps (the cut falls among parameters of similar "
                               "effect: neither screen's noise leaves an influential one at its default)")


@dataclass
class AbcConfig:
    population: int = _c(600, ge=10, le=100000, doc="particles a generation")
    generations: int = _c(8, ge=1, le=100, doc="most generations")
    min_epsilon: float = _c(1.0, ge=0.0, le=1.0e6, doc="stop when the tolerance (the median distance) is below this")
    transition: str = _c("local", choices=TRANSITIONS,
                         doc="how a generation's candidates are proposed from the last one's particles: local, a normal "
                             "with the covariance of each particle's nearest neighbours; normal, with the population's")


@dataclass
class CalibrateConfig:
    target_set: str = _c("reported", doc="target set: configs/targets/<name>.yaml, or a path")
    space: str = _c("judgement", doc="free parameters and ranges: configs/spaces/<name>.yaml, or a path")
    method: str = _c("abc_smc", choices=("abc_smc", "screen", "predict"),
                     doc="abc_smc: screen, fit, predict; screen: alone; predict: every target of target_set predicted "
                         "from the posterior of an earlier calibration (posterior=<its folder>), nothing fitted")
    posterior: Optional[str] = _c(None, doc="method=predict: the folder of a calibration (posterior.csv, "
                                            "posterior.yaml) whose posterior predicts the targets")
    seed: int = _c(0, ge=0, le=SEED_MAX, doc="seed of the calibration (design, candidates, runs)")
    budget: int = _c(400000, ge=10, le=10**9, doc="model runs in all (screen + ABC): a hard cap; a generation the "
                                                  "rest cannot pay for is not begun")
    screen: ScreenConfig = _nested(ScreenConfig)
    abc: AbcConfig = _nested(AbcConfig)
    predictive_draws: int = _c(60, ge=2, le=COUNT_MAX, doc="posterior draws for the predictions of every target")
    workers: int = _c(0, ge=0, le=100000, doc="processes (0: every core); with executor=slurm, jobs per map")
    executor: str = _c("local", choices=("local", "slurm"), doc="where runs go: this machine, or Slurm (submitit)")
    slurm: SlurmConfig = _nested(SlurmConfig)
    resume: bool = _c(True, doc="continue the history in the folder (false: start again)")
    scenario_dir: Optional[str] = _c(None, doc="where calibrated scenarios also go (null: configs/scenario of a "
                                               "source checkout; 'none': only the run folder)")
    progress: bool = _c(True, doc="print progress")


def load(node) -> CalibrateConfig:
    data = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
    data = {k: v for k, v in data.items() if k != "hydra"}
    return _build(CalibrateConfig, data, "")


# settings that leave the folder the same: they change no number (workers, ...) or only extend the calibration
# (budget, abc.generations, abc.min_epsilon: run again with more to continue its history) or its predictions
IGNORED = ("workers", "progress", "executor", "resume", "scenario_dir", "slurm", "budget", "abc.generations",
           "abc.min_epsilon", "predictive_draws")


def _calibration_id() -> str:
    """The run folder's name from the overrides that change numbers: the same command, the same folder."""
    def ignored(key):
        return key in IGNORED or key.split(".")[0] in IGNORED

    args = [a for a in sys.argv[1:] if "=" in a and not a.startswith("-") and not a.lstrip("+~").startswith("hydra")
            and not ignored(a.split("=", 1)[0].lstrip("+~"))]
    targets = next((a.split("=", 1)[1] for a in args if a.startswith("target_set=")), "reported")
    stem = Path(targets).stem if targets.endswith((".yaml", ".yml")) else targets
    return f"{stem}-" + hashlib.sha256("\n".join(sorted(args)).encode()).hexdigest()[:8]


if not OmegaConf.has_resolver("calibration_id"):
    OmegaConf.register_new_resolver("calibration_id", _calibration_id, use_cache=True)


def _say(cfg, text):
    if cfg.progress:
        print(text, flush=True)


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).resolve().parent,
                              capture_output=True, text=True, timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def calibrate(cfg: CalibrateConfig, out: Path) -> dict:
    """The whole calibration into ``out``; returns what it wrote and measured."""
    import matplotlib

    matplotlib.use("Agg")

    from sim.analysis import calibration as cal
    from sim.analysis.targets import load_targets

    ts = load_targets(cfg.target_set, fitting=cfg.method != "predict")
    space = cal.load_space(cfg.space)
    fit_targets = ts.by_use("fit")
    if cfg.screen.fit is not None:
        unknown = [k for k in cfg.screen.fit if k not in space.keys]
        if unknown or not cfg.screen.fit:
            raise ConfigError(f"screen.fit = {cfg.screen.fit!r}: must list keys of space {space.name} (null: screen "
                              "them): " + ", ".join(space.keys))
        twice = sorted({k for k in cfg.screen.fit if list(cfg.screen.fit).count(k) > 1})
        if twice:
            raise ConfigError(f"screen.fit = {cfg.screen.fit!r}: lists {', '.join(twice)} more than once; each key "
                              "once")
    config_dirs = _config_dirs()
    workers = cfg.workers or (os.cpu_count() or 1)
    executor = cal.Executor(cfg.executor, workers,
                            {**dataclasses.asdict(cfg.slurm), "folder": str(out / ".submitit")})
    check_writable(out, "hydra.run.dir")
    if cfg.method == "predict":
        try:
            return _predict(cfg, out, ts, space, executor, config_dirs)
        finally:
            executor.close()
    if cfg.posterior is not None:
        raise ConfigError(f"posterior = {cfg.posterior}: only method=predict reads a posterior (a calibration fits its own)")
    model = cal.TargetModel.build(ts, fit_targets, space, config_dirs)
    if cfg.method == "abc_smc":
        _check_budget(cfg, model)
    _check_defined(model, cfg.seed)  # also loads the compiled kernels here, before worker processes are forked
    from sim.runs.outputs import folder_lock

    with folder_lock(out, "hydra.run.dir", "calibration"):  # two at once would mix their state
        return _calibrate(cfg, out, ts, space, model, executor, config_dirs, workers)


def _check_budget(cfg, model) -> None:
    """Refuse, before any run, a budget that cannot pay for the screen(s) and one generation: pyabc's calibration
    sample of the prior (abc.population evaluations) and a first generation, which the sampler begins only with twice
    its particles left (acceptance about one half)."""
    rpe = model.runs_per_evaluation
    screen = 0 if cfg.screen.fit else (cfg.screen.trajectories * (len(model.space.params) + 1) * rpe
                                       * (2 if cfg.screen.check else 1))
    least = screen + 3 * cfg.abc.population * rpe
    if cfg.budget < least:
        raise ConfigError(f"budget = {cfg.budget}: too small for one generation of abc.population = "
                          f"{cfg.abc.population}; at least {least} runs ({f'{screen} for the screen, ' if screen else ''}"
                          f"3 x {cfg.abc.population} particles x {rpe} runs an evaluation)")


def _calibrate(cfg, out, ts, space, model, executor, config_dirs, workers) -> dict:
    from sim.analysis import calibration as cal
    from sim.analysis import calibration_plots as plots

    fit_targets, held_out = ts.by_use("fit"), ts.by_use("holdout")
    stamp = _check_stamp(cfg, out, ts, space, _screen_runs(cfg, model))
    info = {"targets": str(ts.path), "space": space.name, "runs": 0}
    t_start = time.perf_counter()
    _say(cfg, f"target set {ts.name}: {len(fit_targets)} fitted, {len(held_out)} held out; "
              f"{len(space.params)} free parameters; {model.runs_per_evaluation} runs an evaluation; "
              f"{workers} {'processes' if cfg.executor == 'local' else 'Slurm jobs a map'}")
    try:
        # 1. screen
        if cfg.screen.fit:
            keys = list(cfg.screen.fit)
        else:
            screen_file = out / "screen.csv"
            table = _stored_screen(cfg, screen_file, model)
            if table is not None:
                _say(cfg, f"screen: read {screen_file} (done before)")
            else:
                t0 = time.perf_counter()
                _charge_screen(out, stamp, cfg, model)
                table, runs = cal.morris_screen(model, cfg.screen.trajectories, cfg.seed, executor)
                info["screen_runs_per_s"] = runs / (time.perf_counter() - t0)
                write_atomic(screen_file, lambda p: table.to_csv(p, index=False))
                _say(cfg, f"screen: {runs} runs in {time.perf_counter() - t0:.1f} s")
            keys = cal.select_parameters(table, cfg.screen.keep, cfg.screen.threshold)
            if cfg.screen.check:
                info["screen_check"] = _screen_check(cfg, out, model, executor, stamp)
                info["screen_kept"] = list(keys)
                keys = cal.union_of_screens(keys, info["screen_check"])
            plots.save(plots.screen_figure(table, keys), out / "screen.png", write_atomic)
            if not keys:
                raise ConfigError(f"screen.threshold = {cfg.screen.threshold}: no parameter has an effect that large; "
                                  "lower it")
        info["runs"] = stamp["screen_runs"]  # every screen begun in this folder, a killed one's too
        _say(cfg, "fitting: " + ", ".join(keys))
        if cfg.method == "screen":
            return info
        # 2. ABC-SMC
        fit_space = space.subset(keys)
        model = cal.TargetModel.build(ts, fit_targets, fit_space, config_dirs)
        left = cfg.budget - info["runs"]
        if left < model.runs_per_evaluation * cfg.abc.population:
            raise ConfigError(f"budget = {cfg.budget}: after the screen's {info['runs']} runs it leaves less than one "
                              f"generation ({cfg.abc.population} particles x {model.runs_per_evaluation} runs)")
        observed = {t.name: t.observed for t in fit_targets}
        sigma = {t.name: t.sigma for t in fit_targets}
        if cfg.resume and (out / "abc.db").exists():
            _say(cfg, f"resuming the history in {out / 'abc.db'}")

        def spent(total):  # after every batch: a kill loses no count of what the budget paid for
            stamp["abc_evaluations"] = max(int(total), stamp["abc_evaluations"])
            _save_stamp(out, stamp)

        try:
            res = cal.run_abc(model, observed, sigma, out / "abc.db", population=cfg.abc.population,
                              generations=cfg.abc.generations, max_evaluations=left // model.runs_per_evaluation,
                              min_epsilon=cfg.abc.min_epsilon, seed=cfg.seed, executor=executor, resume=cfg.resume,
                              transition=cfg.abc.transition,
                              progress=cfg.progress, spent=stamp["abc_evaluations"], on_spent=spent)
        except cal.HistoryError as e:
            aside = _move_aside(out / "abc.db", str(e))
            raise RunFailed(f"{out / 'abc.db'}: {e}: moved aside to {aside.name}; run the same command again to "
                            f"start the fit over ({stamp['abc_evaluations']} evaluations spent stay counted in "
                            "the budget)") from None
        abc_runs = res.evaluations * model.runs_per_evaluation  # this session's, the discarded tail included
        spent(res.spent)  # every session's: the largest of what was recorded and what the history holds
        info["runs"] += stamp["abc_evaluations"] * model.runs_per_evaluation  # every session's, discarded included
        info["abc_evaluations"] = stamp["abc_evaluations"]
        if res.history.max_t < 0:
            raise ConfigError(f"budget = {cfg.budget}: spent ({info['runs']} runs) before one generation was "
                              "complete; raise it to continue this calibration")
        if not math.isfinite(float(res.history.get_all_populations()["epsilon"].iloc[-1])):
            raise RunFailed("every particle's distance is infinite: a fitted statistic is undefined wherever the "
                            "prior reaches (0/0); check the targets' settings switch on what they count")
        info["abc_runs"] = abc_runs
        info["abc_runs_per_s"] = abc_runs / res.seconds if res.seconds > 0 else float("nan")
        info["generations"] = int(res.history.max_t + 1)
        info["epsilon"] = float(res.history.get_all_populations()["epsilon"].iloc[-1])
        _say(cfg, f"ABC-SMC: {info['generations']} generations, tolerance {info['epsilon']:.3g}, {abc_runs} runs "
                  f"in {res.seconds:.1f} s ({info['abc_runs_per_s']:.0f} runs/s)")
        post = cal.posterior_frame(res.history, fit_space)
        info["ess"] = float(1.0 / (post["weight"] ** 2).sum())  # effective sample size of the weighted particles
        summary = cal.posterior_summary(post, fit_space)
        write_atomic(out / "posterior_summary.csv", lambda p: summary.to_csv(p, index=False))
        plots.save(plots.pairs_figure(post, keys, fit_space), out / "posterior_pairs.png", write_atomic)
        # 3. predictions of every target, fitted and held out; the model at its defaults beside them
        all_model = cal.TargetModel.build(ts, fit_targets + held_out, fit_space, config_dirs)
        particles = cal.draw_particles(post, cfg.predictive_draws, cfg.seed)
        pred = cal.predictive(all_model, particles, cfg.seed + 7919, executor)
        defaults = cal.predictive(all_model, [{"draw": -1}] * min(cfg.predictive_draws, 20), cfg.seed + 7919, executor)
        info["prediction_runs"] = (len(particles) + len(defaults)) * all_model.runs_per_evaluation
        fit = cal.fit_table(fit_targets + held_out, pred, defaults)
        write_atomic(out / "predictive.csv", lambda p: pred.to_csv(p, index=False))
        write_atomic(out / "fit.csv", lambda p: fit.to_csv(p, index=False))
        plots.save(plots.fit_figure(fit), out / "fit.png", write_atomic)
        # 4. the posterior for the main job, and calibrated scenarios
        meta = _provenance(cfg, ts, info, keys, res)
        scenarios = _scenario_keys(fit_space, ts, config_dirs)
        write_atomic(out / "posterior.csv", lambda p: post.to_csv(p, index=False))
        write_atomic(out / "posterior.yaml", lambda p: OmegaConf.save(OmegaConf.create(
            {"target_set": ts.name, "scenarios": scenarios, **meta}), p))
        written = _write_scenarios(cfg, out, summary, fit_space, {s.scenario for s in ts.settings.values()}, meta,
                                   config_dirs)
        info["seconds"] = time.perf_counter() - t_start
        informed = None if cfg.screen.fit else cal.informs(table, keys, cfg.screen.threshold)
        lines = _report(ts, summary, fit, info, written, meta, informed)
        if "screen_check" in info:
            lines.append(screen_stability(info["screen_kept"], info["screen_check"], cfg.seed, cfg.screen.trajectories))
        write_atomic(out / "report.md", lambda p: Path(p).write_text("\n".join(lines) + "\n"))
        print("\n".join(lines))
        print(f"\nwrote posterior.csv, posterior.yaml, posterior_summary.csv, posterior_pairs.png, predictive.csv, "
              f"fit.csv, fit.png, report.md{', screen.csv, screen.png' if not cfg.screen.fit else ''} to {out}")
        return info
    finally:
        executor.close()


def _stamp(cfg, ts, space_path: Path) -> dict:
    """What a folder's calibration is of: the files' contents, the model's sources and the settings that shape the
    posterior. A resumed calibration must match it."""
    from sim.core.engine_cache import source_hash

    def digest(path):
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]

    return {"target_file": digest(ts.path), "space_file": digest(space_path), "model_sources": source_hash()[:16],
            "seed": cfg.seed, "population": cfg.abc.population, "transition": cfg.abc.transition,
            "screen": dataclasses.asdict(cfg.screen)}


# keys added to the stamp after folders were first stamped: what such a folder's calibration was made with
STAMPED_BEFORE = {"transition": "normal"}   # the only proposal before abc.transition existed


def _check_stamp(cfg, out: Path, ts, space, screen_cost: int) -> dict:
    """Refuse to continue, in a folder, a calibration of other targets, parameters, model or settings; returns the
    folder's stamp (with the ABC evaluations and the screens' runs spent so far in every session, for the budget).

    ``calibration.json`` is read back and checked: written atomically by this app, a file that is not valid JSON or
    holds a count that is not a whole number >= 0 was edited or damaged outside it. Then the runs the folder spent
    cannot be known, and the budget's cap could be passed: refused in one line (exit 2), nothing moved; restore the
    file, or start again with resume=false.
    """
    import json

    from sim.analysis.calibration import space_path

    stamp = _stamp(cfg, ts, space_path(cfg.space))
    path = out / "calibration.json"
    if cfg.resume and path.exists():
        fix = "restore it, or start again with resume=false (the runs this folder spent cannot be counted)"
        from sim.core.yamlsafe import YamlError, read_bytes

        try:
            old = json.loads(read_bytes(path, kind="a calibration's state"))
        except YamlError as e:
            raise ConfigError(f"hydra.run.dir = {str(out)!r}: {path.name}: {e.reason}; " + fix) from None
        except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:  # (RecursionError: nested too deep)
            raise ConfigError(f"hydra.run.dir = {str(out)!r}: {path.name} is not valid JSON ({one_line(e, 80)}); "
                              + fix) from None
        if not isinstance(old, dict):
            raise ConfigError(f"hydra.run.dir = {str(out)!r}: {path.name} holds {type(old).__name__}, not a mapping; "
                              + fix)
        counts = {}
        for key in COUNTS:
            if key == "screen_runs" and key not in old:  # written before screens were counted as they began: the
                counts[key] = screen_cost * sum((out / f).exists() for f in ("screen.csv", "screen_check.csv"))
                continue                                  # screens stored are counted (screen_cost runs each)
            spent = old.get(key, 0)
            if isinstance(spent, bool) or not isinstance(spent, int) or not 0 <= spent <= 10**12:
                raise ConfigError(f"hydra.run.dir = {str(out)!r}: {path.name}: {key} = {spent!r}: must be a "
                                  "whole number >= 0; " + fix)
            counts[key] = spent
        changed = [k for k in stamp if old.get(k, STAMPED_BEFORE.get(k)) != stamp[k]]
        if changed:
            raise ConfigError(f"hydra.run.dir = {str(out)!r}: holds a calibration with other {', '.join(changed)}; "
                              "start it again with resume=false, or choose another folder")
        stamp.update(counts)
    else:
        for stale in ("abc.db", "screen.csv", "screen_check.csv"):  # a fresh start: nothing earlier is reused
            if (out / stale).exists():
                (out / stale).unlink()
        stamp.update(dict.fromkeys(COUNTS, 0))
    _save_stamp(out, stamp)
    return stamp


# what the folder has spent, across sessions and kills: ABC evaluations (each runs_per_evaluation runs) and the runs
# of every screen begun (counted before it begins)
COUNTS = ("abc_evaluations", "screen_runs")


def _move_aside(path: Path, reason: str) -> Path:
    """Rename ``path`` to ``<name>.damaged-<time>`` beside it, the reason in ``<that>.reason``; returns the new path."""
    stamp = datetime.datetime.now().strftime("%Y%m%dT%H%M%S")
    aside = path.with_name(f"{path.name}.damaged-{stamp}")
    os.replace(path, aside)
    write_atomic(aside.with_name(aside.name + ".reason"), lambda p: Path(p).write_text(reason + "\n"))
    return aside


def _save_stamp(out: Path, stamp: dict) -> None:
    import json

    write_atomic(out / "calibration.json", lambda p: Path(p).write_text(json.dumps(stamp, indent=1) + "\n"))


def _config_dirs() -> list:
    """The config folders a user added with --config-dir (a scenario of their own), for the settings' configs."""
    from hydra.core.hydra_config import HydraConfig

    try:
        sources = HydraConfig.get().runtime.config_sources
    except ValueError:
        return []
    return [src.path.split("://", 1)[-1] for src in sources
            if src.provider == "command-line" and src.schema == "file"]


def _check_defined(model, seed: int) -> None:
    """Refuse a fitted target whose statistic is undefined (0/0) at the defaults in every one of a few runs: its
    setting likely does not switch on what it counts, and no parameter would make it defined."""
    runs = [model({}, seed + k) for k in range(3)]
    for t in model.targets:
        if all(not math.isfinite(r[t.name]) for r in runs):
            raise ConfigError(f"targets.{t.name}.statistic = {t.statistic!r}: undefined (0/0) in setting "
                              f"'{t.setting}' in 3 runs at the defaults; does the setting switch on what it counts?")


def _provenance(cfg, ts, info, keys, res) -> dict:
    return {"created": datetime.datetime.now().isoformat(timespec="seconds"), "commit": _git_commit(),
            "command": "python -m experiments.calibrate " + " ".join(sys.argv[1:]),
            "target_file": str(ts.path), "space": cfg.space, "fitted": list(keys), "seed": cfg.seed,
            "runs": int(info["runs"]), "generations": int(res.history.max_t + 1),
            "epsilon": float(info["epsilon"]), "population": cfg.abc.population, "transition": cfg.abc.transition}


def _scenario_keys(space, ts, config_dirs) -> dict:
    """{scenario: [keys of the posterior that apply to it]}, for every scenario known here (the project's, those of
    --config-dir, the settings') and their calibrated names."""
    names = {s.scenario for s in ts.settings.values()}
    for folder in [CONFIG_DIR, *map(Path, config_dirs)]:
        names |= {p.stem for p in (folder / "scenario").glob("*.yaml") if not p.stem.endswith("_calibrated")}
    out = {}
    for name in sorted(names):
        keys = [p.key for p in space.params if p.applies_to(name)]
        if keys:
            out[name] = keys
            out[f"{name}_calibrated"] = keys
    return out


def _scenario_text(base: str, values: dict, meta: dict) -> str:
    """A scenario file (package _global_: it may set instruments' parameters too) with the calibrated values."""
    nested: dict = {"scenario": {"name": f"{base}_calibrated"}}
    for key, v in values.items():
        node = nested
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = v
    head = [
        "# @package _global_",
        f"# Scenario '{base}' calibrated: posterior medians of the fitted parameters (python -m experiments.calibrate).",
        f"# targets: {meta['target_file']}; fitted: {', '.join(meta['fitted'])}",
        f"# created {meta['created']} at commit {meta['commit']}; {meta['runs']} runs, {meta['generations']} generations "
        f"of {meta['population']} particles, final tolerance {meta['epsilon']:.3g}",
        f"# command: {meta['command']}",
        "# The whole posterior, for policy runs under parameter uncertainty: posterior=<the calibration's folder>.",
        "defaults:",
        f"  - {base}@scenario",
        "  - _self_",
    ]
    return "\n".join(head) + "\n" + OmegaConf.to_yaml(OmegaConf.create(nested))


def _write_scenarios(cfg, out: Path, summary, space, bases: set, meta: dict, config_dirs=()) -> list[str]:
    """``<base>_calibrated.yaml`` for each scenario the target set's settings use (no other is touched): in the run
    folder, and beside its base scenario (configs/scenario/ of a source checkout, or the --config-dir holding it),
    or in ``scenario_dir``."""
    import tempfile

    from sim import api

    medians = dict(zip(summary["parameter"], summary["median"]))
    by_key = {p.key: p for p in space.params}
    folder = out / "scenario"
    folder.mkdir(exist_ok=True)
    source_checkout = (CONFIG_DIR.parent / "pyproject.toml").exists()
    written = []
    for base in sorted(bases):
        keys = [p.key for p in space.params if p.applies_to(base)]
        if not keys:
            continue
        values = {k: (int(round(medians[k])) if by_key[k].integer else float(f"{medians[k]:.4g}")) for k in keys}
        text = _scenario_text(base, values, meta)
        places = [folder]
        if cfg.scenario_dir not in (None, "none"):
            places.append(Path(cfg.scenario_dir))
        elif cfg.scenario_dir is None:
            home = next((Path(d) / "scenario" for d in config_dirs if (Path(d) / "scenario" / f"{base}.yaml").exists()),
                        CONFIG_DIR / "scenario" if source_checkout else None)
            if home is not None:
                places.append(home)
        for place in places:
            check_writable(place, "scenario_dir")
            write_atomic(place / f"{base}_calibrated.yaml", lambda p, t=text: Path(p).write_text(t))
        written.append(f"{base}_calibrated")
    with tempfile.TemporaryDirectory() as tmp:  # each must compose and validate, under a name nothing shadows
        (Path(tmp) / "scenario").mkdir()
        for name in written:
            (Path(tmp) / "scenario" / f"zz_check_{name}.yaml").write_text((folder / f"{name}.yaml").read_text())
            api.compose(f"scenario=zz_check_{name}", config_dirs=[tmp, *config_dirs])
    return written


def _predict(cfg, out: Path, ts, space, executor, config_dirs) -> dict:
    """Every target of ``ts`` (fitted or held out alike) predicted from an earlier calibration's posterior: the figures
    a calibration never saw, in a target file of the same format. Writes predictive.csv, fit.csv, fit.png and
    report.md (reported, predicted with its 90% interval, predicted / reported, inside the interval, z)."""
    import pandas as pd

    from sim.analysis import calibration as cal
    from sim.analysis import calibration_plots as plots
    from sim.runs.posterior import load_posterior

    if cfg.posterior is None:
        raise ConfigError("posterior = null: method=predict needs the folder of a calibration (posterior=<dir>)")
    post = load_posterior(cfg.posterior)   # validated: files, weights, keys, values
    unknown = [k for k in post.keys if k not in space.keys]
    if unknown:
        raise ConfigError(f"posterior = {cfg.posterior}: {unknown[0]} is not a parameter of space {space.name}; "
                          f"name the space it was calibrated in (space=...)")
    frame = pd.DataFrame(list(post.values), columns=list(post.keys)).assign(weight=post.weights)
    targets = list(ts.targets.values())
    t0 = time.perf_counter()
    model = cal.TargetModel.build(ts, targets, space.subset(list(post.keys)), config_dirs)
    particles = cal.draw_particles(frame, cfg.predictive_draws, cfg.seed)
    pred = cal.predictive(model, particles, cfg.seed + 7919, executor)
    defaults = cal.predictive(model, [{"draw": -1}] * min(cfg.predictive_draws, 20), cfg.seed + 7919, executor)
    fit = cal.fit_table(targets, pred, defaults)
    write_atomic(out / "predictive.csv", lambda p: pred.to_csv(p, index=False))
    write_atomic(out / "fit.csv", lambda p: fit.to_csv(p, index=False))
    plots.save(plots.fit_figure(fit), out / "fit.png", write_atomic)
    runs = (len(particles) + len(defaults)) * model.runs_per_evaluation
    lines = [f"# {ts.name} predicted from the posterior of {post.path} (target set {post.target_set}; "
             f"{len(particles)} draws, {runs} runs in {time.perf_counter() - t0:.0f} s); nothing fitted", ""]
    lines += _fit_lines(fit)
    write_atomic(out / "report.md", lambda p: Path(p).write_text("\n".join(lines) + "\n"))
    print("\n".join(lines))
    print(f"\nwrote predictive.csv, fit.csv, fit.png, report.md to {out}")
    return {"runs": runs}


def _screen_runs(cfg, model) -> int:
    """The runs of one Morris screen: ``trajectories`` x (parameters + 1) points, each an evaluation."""
    return cfg.screen.trajectories * (len(model.space.params) + 1) * model.runs_per_evaluation


def _charge_screen(out: Path, stamp: dict, cfg, model) -> None:
    """Count a screen's runs in the folder's state before it begins: a screen killed half-way spent runs the
    budget paid for, and its runs are not in any history (the count may exceed what was run, never fall short)."""
    cost = _screen_runs(cfg, model)
    spent = stamp["screen_runs"] + stamp["abc_evaluations"] * model.runs_per_evaluation
    after = cost + (3 * cfg.abc.population * model.runs_per_evaluation if cfg.method == "abc_smc" else 0)
    if spent + after > cfg.budget:  # a hard cap across sessions: a screen (and a generation) it cannot pay is not begun
        raise ConfigError(f"budget = {cfg.budget}: this folder has spent {spent} runs (the screens begun and the ABC "
                          f"evaluations of every session); a screen of {cost} runs"
                          + (" and a first generation" if cfg.method == "abc_smc" else "")
                          + " would pass it; raise it, or start again with resume=false")
    stamp["screen_runs"] += cost
    _save_stamp(out, stamp)


def _screen_check(cfg, out: Path, model, executor, stamp: dict) -> list[str]:
    """The parameters a second screen, with seed + 1, keeps (``screen_check.csv``; read back when resuming)."""

    from sim.analysis import calibration as cal

    check_file = out / "screen_check.csv"
    table = _stored_screen(cfg, check_file, model)
    if table is None:
        _charge_screen(out, stamp, cfg, model)
        table, _ = cal.morris_screen(model, cfg.screen.trajectories, cfg.seed + 1, executor)
        write_atomic(check_file, lambda p: table.to_csv(p, index=False))
    keys = cal.select_parameters(table, cfg.screen.keep, cfg.screen.threshold)
    _say(cfg, f"screen with seed {cfg.seed + 1}: keeps " + ", ".join(keys))
    return keys


def _stored_screen(cfg, path: Path, model):
    """A screen this folder stored before (resuming), checked (:func:`sim.analysis.calibration.read_screen`); ``None`` when
    there is none to reuse. One that is not a screen of this model is moved aside, with why, and ``None`` returned:
    the caller screens again."""
    from sim.analysis import calibration as cal

    if not (cfg.resume and path.exists()):
        return None
    table, why = cal.read_screen(path, model.space.keys, [t.name for t in model.targets])
    if table is None:
        aside = _move_aside(path, why)
        print(f"{path.name}: {why}: moved aside to {aside.name}; screening again", flush=True)
    return table


def screen_stability(kept: list, again: list, seed: int, trajectories: int) -> str:
    """The report's line on whether two screens (seeds ``seed`` and ``seed + 1``) keep the same parameters; the fit
    takes those either keeps."""
    if set(kept) == set(again):
        return (f"Screen: the same {len(kept)} parameters are kept with seed {seed} and seed {seed + 1} "
                f"({trajectories} trajectories each).")
    return (f"Screen: NOT STABLE: with seed {seed + 1} the screen keeps {', '.join(sorted(set(again) - set(kept))) or '-'} "
            f"instead of {', '.join(sorted(set(kept) - set(again))) or '-'} ({trajectories} trajectories; "
            f"{len(set(kept) & set(again))} of {len(kept)} shared): the fit takes the {len(set(kept) | set(again))} "
            "either keeps; more trajectories narrow the difference.")


def _fmt(x: float) -> str:
    if x != x:
        return "-"
    return f"{x:,.3g}" if abs(x) < 1e4 else f"{x / 1e6:,.2f} M"


def _report(ts, summary, fit, info, written, meta, informed=None) -> list[str]:
    from tabulate import tabulate

    s = summary.copy()
    for c in ("low", "high", "mean", "median", "q05", "q95"):
        s[c] = s[c].map(_fmt)
    s["shrinkage"] = summary["shrinkage"].map(lambda v: f"{v:.0%}")
    lines = [f"# Calibration to {ts.name} ({meta['runs']} runs of the budget, {info.get('prediction_runs', 0)} more "
             f"for the predictions; {meta['generations']} generations, tolerance {meta['epsilon']:.3g}, effective "
             f"sample size {info.get('ess', float('nan')):.0f} of {meta['population']}; "
             f"{info.get('abc_runs_per_s', float('nan')):.0f} runs/s in ABC)", "",
             "## Posterior of the fitted parameters (weighted median, 90% interval; shrinkage = 1 - interval / 90% of "
             "the prior range)", tabulate(s, headers="keys", tablefmt="github", showindex=False), ""]
    lines += _fit_lines(fit)
    lines.append("Calibrated scenarios: " + ", ".join(f"scenario={w}" for w in written))
    if informed:
        lines += ["", "## Which target informs which fitted parameter (Morris mu*, in the target's sigmas, of those "
                      "at least screen.threshold)"]
        lines += [f"- {key}: " + (", ".join(f"{t} ({mu:.2g})" for t, mu in effects) if effects else
                                  "no target above the threshold (kept for its largest effect)")
                  for key, effects in informed.items()]
    return lines


def _fit_lines(fit) -> list[str]:
    """The fit and held-out table with its misfits and how many figures their 90% intervals hold (markdown)."""
    from tabulate import tabulate

    f = fit[["target", "use", "observed", "observed_low", "observed_high", "predicted_median", "predicted_q05",
             "predicted_q95", "prior_median", "z", "misfit"]].copy()
    f["reported [95%]"] = [f"{_fmt(a)} [{_fmt(b)}, {_fmt(c)}]" for a, b, c in
                           zip(fit["observed"], fit["observed_low"], fit["observed_high"])]
    f["calibrated model [90%]"] = [f"{_fmt(a)} [{_fmt(b)}, {_fmt(c)}]" for a, b, c in
                                   zip(fit["predicted_median"], fit["predicted_q05"], fit["predicted_q95"])]
    f["defaults"] = fit["prior_median"].map(_fmt)
    f["z"] = fit["z"].map(lambda v: f"{v:+.1f}")
    f["misfit"] = fit["misfit"].map(lambda v: "MISFIT" if v else "")
    f["predicted / reported"] = fit["ratio"].map(lambda v: "-" if v != v else f"{v:.2f}")
    f["inside 90%"] = fit["inside90"].map(lambda v: "yes" if v else "NO")
    f = f[["target", "use", "reported [95%]", "calibrated model [90%]", "defaults", "predicted / reported",
           "inside 90%", "z", "misfit"]]
    misfits = list(fit.loc[fit["misfit"], "target"])
    lines = ["## Fit and held-out predictions (posterior predictive; z = (reported - predicted) / sd of the prediction, "
             "the figure and its stated discrepancy; misfit: |z| > 3)",
             tabulate(f, headers="keys", tablefmt="github", showindex=False), ""]
    lines.append("Misfits (the model cannot meet these figures within their uncertainty): "
                 + (", ".join(misfits) if misfits else "none"))
    for use, what in (("fit", "Fitted"), ("holdout", "Held-out")):
        part = fit[fit["use"] == use]
        if len(part):
            outside = list(part.loc[~part["inside90"], "target"])
            lines.append(f"{what} figures inside their 90% predictive interval: {int(part['inside90'].sum())} of "
                         f"{len(part)}" + (f" (outside: {', '.join(outside)})" if outside else ""))
    return lines


# --------------------------------------------------------------------------- the app
_STARTED = False


def _error_line(held: str) -> str:
    """Hydra's composition error in one line, with the calibration's own keys where a key is unknown."""
    lines = [ln.strip() for ln in held.splitlines() if ln.strip()]
    first = lines[0] if lines else ""
    if first.startswith("Could not override") and "'" in first:
        key = first.split("'")[1]
        cls, parts = CalibrateConfig, key.split(".")
        for part in parts[:-1]:
            cls = {"screen": ScreenConfig, "abc": AbcConfig, "slurm": SlurmConfig}.get(part, cls)
        where = ".".join(parts[:-1])
        return (f"unknown key '{key}': allowed keys{' in ' + where if where else ''} are "
                + ", ".join(f.name for f in dataclasses.fields(cls)))
    return hydra_error_line(held)


def task(node: DictConfig) -> None:
    global _STARTED
    _STARTED = True
    _STDERR.release()
    from hydra.core.hydra_config import HydraConfig

    out = Path(HydraConfig.get().runtime.output_dir)
    try:
        cfg = load(node)
        calibrate(cfg, out)
        write_provenance(out, node)  # last, with the results (a failed command leaves an earlier one's alone)
    except APP_ERRORS as e:
        remove_created_folder()  # the folders Hydra made for this job, if still empty (never another job's)
        exit_in_one_line(e, "the runs and generations stored before it are kept: the same command resumes")


register_hydra_defaults()  # the instruments' sections and the default regimes, from the registry
_app = hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="calibrate")(task)
_STDERR = HeldStderr(sys.stderr)


def main() -> None:
    sys.stderr = _STDERR
    run_app(_app, _STDERR, lambda: _STARTED, _error_line)


if __name__ == "__main__":
    main()
