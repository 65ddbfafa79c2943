"""Benchmark: the Mesa and Numba engines side by side, in one run.

    python -m experiments.bench            # full: ~4 minutes on 2 cores
    python -m experiments.bench --quick    # smaller sizes and batch, ~1 minute

Prints, for the default scenario under the ``combined`` regime (every instrument on,
the most work per month):

* firm-steps per second (firms x months / wall time of a whole run, population
  included) of both engines at 1,000, 10,000 and 100,000 firms, and their ratio;
* the Numba kernel alone (population drawn beforehand);
* the fitted exponent of cost vs. population (Numba, 10^4 .. 10^6 firms);
* compile time (an empty cache, in a fresh process) and cache-load time;
* peak memory of a 1,000,000-firm run (a fresh process);
* the cost of the checks every run passes (validation, memory and money guards, invariants);
* runs per second of a batch of default-scenario runs on all cores, and on one (the same
  runs), and the start-up of the pool of processes (``--only batch``: this section alone);
* runs per second inside a calibration (``--only calibration``) and inside a Sobol analysis of
  10 parameters with second order and 4 replicates (``--only sensitivity``; ``--sobol-n 1024``,
  the default, is the 90,112-run target), each beside a plain batch of the same session.

Times on shared machines are noisy: compare the ratios, not the absolute figures.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _cfg(n_firms: int, regime: str = "combined"):
    from sim import api

    return api.under_regime(api.compose(f"scenario.firms.n={n_firms}", "progress=false"), regime)


def _best_time(fn, reps: int) -> float:
    best = np.inf
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def engine_speed(sizes, mesa_sizes, reps_numba=3, reps_mesa=1):
    from sim.engines.numba import kernels
    from sim.engines.mesa.model import TransferModel
    from sim.core.population import draw_population

    rows = []
    kernels.simulate(_cfg(1000), 0)  # compile or load the kernels once, for both engines
    TransferModel(_cfg(100), 0).run()
    for n in sizes:
        cfg = _cfg(n)
        months = cfg.scenario.months
        t_numba = _best_time(lambda: kernels.simulate(cfg, 1), reps_numba)
        pop = draw_population(cfg, 1)
        t_kernel = _best_time(lambda: kernels.simulate(cfg, 1, pop), reps_numba)
        t_mesa = _best_time(lambda: TransferModel(cfg, 1).run(), reps_mesa) if n in mesa_sizes else np.nan
        rows.append({"firms": n, "mesa_s": t_mesa, "numba_s": t_numba, "numba_kernel_s": t_kernel,
                     "mesa_fsps": n * months / t_mesa, "numba_fsps": n * months / t_numba,
                     "numba_kernel_fsps": n * months / t_kernel, "ratio": t_mesa / t_numba})
    return rows


def scaling_exponent(sizes, reps=2):
    from sim.engines.numba import kernels
    from sim.core.population import draw_population

    times = []
    for n in sizes:
        cfg = _cfg(n)
        pop = draw_population(cfg, 2)
        times.append(_best_time(lambda: kernels.simulate(cfg, 2, pop), reps))
    slope = np.polyfit(np.log(sizes), np.log(times), 1)[0]
    return float(slope), times


_PROBE = """
import json, sys, time
t0 = time.perf_counter()
from sim import api
from sim.engines.numba import kernels
cfg = api.under_regime(api.compose("scenario.firms.n={n}", "progress=false"), "combined")
t1 = time.perf_counter(); kernels.simulate(cfg, 0); t2 = time.perf_counter(); kernels.simulate(cfg, 1); t3 = time.perf_counter()
# VmHWM: this process's peak resident memory (ru_maxrss would include the parent's, inherited at fork)
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(json.dumps({{"import_s": t1 - t0, "first_s": t2 - t1, "second_s": t3 - t2, "maxrss_mb": hwm / 1024}}))
"""


def _probe(n: int, cache_dir: str) -> dict:
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir, TECHTRANSFER_CACHE_DIR=cache_dir)  # an empty cache
    out = subprocess.run([sys.executable, "-c", _PROBE.format(n=n)], env=env, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def compile_and_memory(big: int):
    colds = []
    for _ in range(2):  # compiled twice from an empty cache, the shorter kept (the machine is shared)
        with tempfile.TemporaryDirectory() as cache:
            colds.append(_probe(1000, cache))
    with tempfile.TemporaryDirectory() as cache:
        _probe(1000, cache)             # fills the cache
        warm = _probe(1000, cache)      # cache on disk: loads
        mem = _probe(big, cache)
        small = _probe(1000, cache)
    return {
        "compile_s": min(c["first_s"] - c["second_s"] for c in colds),
        "cache_load_s": warm["first_s"] - warm["second_s"],
        "peak_rss_big_mb": mem["maxrss_mb"],
        "peak_rss_small_mb": small["maxrss_mb"],
    }


_PROVINCE = """
import json, time
from sim import api
t0 = time.perf_counter()
cfg = api.under_regime(api.compose("scenario=province", "engine=numba", "progress=false"), "{regime}")
api.simulate(cfg, 0)                       # the kernels loaded, the first run
t1 = time.perf_counter()
runs = [api.simulate(cfg, seed) for seed in range(1, {seeds} + 1)]
t2 = time.perf_counter()
pop_t0 = time.perf_counter()
from sim.core.population import draw_population
pop = draw_population(cfg, 99)
pop_s = time.perf_counter() - pop_t0
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(json.dumps({{"first_s": t1 - t0, "run_s": (t2 - t1) / {seeds}, "population_s": pop_s, "maxrss_mb": hwm / 1024,
                  "firms": pop.n_firms, "achievements": pop.n_achievements, "months": cfg.scenario.months,
                  "contracts": sum(r.summary["contracts"] for r in runs) / len(runs)}}))
"""


def province_section(seeds: int = 3) -> list:
    """[province]: the province-scale scenario (configs/scenario/province.yaml: 120,000 firms, 22,000+ achievements,
    24 months), seconds a run (every check included, as api.simulate does it) and the peak memory of a fresh process
    running it, baseline and combined (issue 24 asks under 10 s a run)."""
    from tabulate import tabulate

    print(f"\n[province] the province-scale scenario, {seeds} runs a regime after a first, a fresh process each ...",
          flush=True)
    rows = []
    for regime in ("baseline", "combined"):
        out = subprocess.run([sys.executable, "-c", _PROVINCE.format(regime=regime, seeds=seeds)],
                             capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(r | {"regime": regime})
    print(tabulate([[r["regime"], f"{r['firms']:,}", f"{r['achievements']:,}", r["months"], f"{r['run_s']:.2f}",
                     f"{r['population_s']:.2f}", f"{r['firms'] * r['months'] / r['run_s'] / 1e6:.1f} M",
                     f"{r['contracts']:,.0f}", f"{r['maxrss_mb']:,.0f}"] for r in rows],
                   headers=["regime", "firms", "achievements", "months", "s/run", "of which population s",
                            "firm-steps/s", "contracts a run", "peak MB (process)"], tablefmt="github"))
    return rows


def check_costs(sizes, reps=20):
    """Seconds per run of the checks every run passes (validation, memory, money, invariants) vs the run itself."""
    from sim.engines.numba import kernels
    from sim.core.config import load_config
    from sim.core.population import check_memory, check_money, draw_population
    from sim.core.results import check_invariants

    rows = []
    for n in sizes:
        cfg = _cfg(n)
        pop = draw_population(cfg, 1)
        series, n_ach, money = kernels.simulate(cfg, 1, pop)
        t_run = _best_time(lambda: kernels.simulate(cfg, 1), 3)
        t_valid = _best_time(lambda: [load_config(cfg) for _ in range(reps)], 3) / reps
        t_guard = _best_time(lambda: [(check_memory(cfg, "numba"), check_money(cfg, pop)) for _ in range(reps)], 3) / reps
        t_inv = _best_time(lambda: [check_invariants(series, n_ach, money, cfg) for _ in range(reps)], 3) / reps
        rows.append({"firms": n, "run_s": t_run, "validate_s": t_valid, "guards_s": t_guard, "invariants_s": t_inv})
    return rows


def run_parts(regime: str, n_runs: int = 100) -> dict:
    """Milliseconds per run of each part of a default-scenario run, one by one (the path before batches) and as a
    batch does it: drawing the population, building the state, the months (the kernel), the invariants and the
    summary (run by run, or for the whole batch at once and divided by its runs); and a run against its kernel
    (issue 24: at most 1.3x)."""
    from sim import api
    from sim.runs import batch
    from sim.engines.numba import kernels
    from sim.core.config import load_config
    from sim.core.population import draw_population
    from sim.core.results import new_series, summarize
    from sim.core.state import make_params, new_state

    cfg = load_config(api.compose("engine=numba", f"regime={regime}", "progress=false"))
    api.simulate(cfg, seed=0)  # the kernels loaded
    plan = batch.RunPlan(cfg)
    out = {}
    for path in ("one by one", "batch"):
        parts = dict.fromkeys(("population", "state", "kernel", "checks", "summary"), 0.0)
        raws = []
        for seed in range(n_runs):
            t0 = time.perf_counter()
            pop = draw_population(cfg, seed)
            t1 = time.perf_counter()
            arrays = new_state(cfg, pop)
            p = make_params(cfg, seed, pop.n_achievements) if path == "one by one" or seed == 0 else \
                p._replace(seed=np.int64(seed), n_achievements=np.int64(pop.n_achievements))
            ps, st = kernels.to_struct(p), kernels.to_struct(arrays)
            series = new_series(cfg.scenario.months)
            t2 = time.perf_counter()
            kernels.run_months(ps, st, series)
            t3 = time.perf_counter()
            n = int(arrays.deal_n[0])
            deals = (arrays.deal_value[:n].copy(), arrays.deal_form[:n].copy())
            raw = batch.RawRun(seed, series, pop.n_achievements, float(arrays.balance.sum()), arrays.sector_series,
                               deals)
            for name, dt in zip(parts, (t1 - t0, t2 - t1, t3 - t2)):
                parts[name] += dt
            if path == "one by one":
                t4 = time.perf_counter()
                api.RunResult(regime, seed, series, {}, raw.n_achievements, raw.initial_money, cfg, raw.by_sector,
                              deals).check()
                t5 = time.perf_counter()
                summarize(series, pop.n_achievements, cfg.scenario.discount_rate, deals)
                parts["checks"] += t5 - t4
                parts["summary"] += time.perf_counter() - t5
            else:
                raws.append(raw)
        if raws:   # checked and summarised as a batch does: 64 runs at a time
            t4 = time.perf_counter()
            for i in range(0, len(raws), batch.FINISH_RUNS):
                batch.finish(plan, raws[i:i + batch.FINISH_RUNS])
            parts["checks"] += time.perf_counter() - t4   # the checks and the summary together
        row = {name: 1e3 * v / n_runs for name, v in parts.items()}
        row["run"] = sum(row.values())
        row["run / kernel"] = row["run"] / row["kernel"]
        out[path] = row
    return out


def print_run_parts(n_runs: int = 100) -> None:
    from tabulate import tabulate

    print(f"\n[parts] a default-scenario run's parts, ms a run ({n_runs} runs a regime, one process; issue 24 aims at "
          "run / kernel <= 1.3) ...", flush=True)
    rows = []
    for regime in ("baseline", "combined"):
        for path, r in run_parts(regime, n_runs).items():
            summary = f"{r['summary']:.2f}" if path == "one by one" else "(with checks)"
            rows.append([regime, path] + [f"{r[k]:.2f}" for k in ("population", "state", "kernel", "checks")]
                        + [summary, f"{r['run']:.2f}", f"{r['run / kernel']:.2f}x"])
    print(tabulate(rows, headers=["regime", "path", "population", "state", "kernel", "checks", "summary", "run",
                                  "run / kernel"], tablefmt="github"))


def _timed_with_load(fn):
    """Run ``fn``; return its wall time and the cores the rest of the machine kept busy meanwhile, on
    average (from /proc/stat, less this process and its children; nan where there is no /proc/stat)."""
    import resource

    def busy():
        try:
            with open("/proc/stat") as f:
                v = [int(x) for x in f.readline().split()[1:8]]
        except (OSError, ValueError):
            return np.nan
        return (v[0] + v[1] + v[2] + v[5] + v[6]) / os.sysconf("SC_CLK_TCK")  # user nice system irq softirq

    def own():
        r = resource.getrusage(resource.RUSAGE_CHILDREN)  # the pool's processes, reaped when it shuts down
        return time.process_time() + r.ru_utime + r.ru_stime

    b0, o0, t0 = busy(), own(), time.perf_counter()
    fn()
    wall = time.perf_counter() - t0
    return wall, max(0.0, (busy() - b0) - (own() - o0)) / wall


PATHS = {"one by one": True, "batch": False}   # sim.runs.batch.run_one_by_one (the path before batches), sim.runs.batch.run_chunk


def batch_rate(n_runs: int, workers: int, reps: int = 1, regime: str = "combined", one_by_one: bool = False):
    """Runs per second of a batch of ``n_runs`` default-scenario runs (one shared config, as
    ``api.compare`` builds them) on ``workers`` processes, the best of ``reps`` batches, in this
    process with the compiled kernels loaded first (so that one core and all cores start alike);
    and the cores the rest of the machine kept busy during that batch. ``one_by_one``: through the reference path
    (each run drawn, run, checked and summarised alone, as before batches; the forked workers inherit the switch).
    Every batch starts with no population kept (a batch of distinct seeds would not reuse one anyway)."""
    from sim import api
    from sim.runs import batch, parallel

    cfg = api.under_regime(api.compose("engine=numba", "progress=false"), regime)
    tasks = [(cfg, seed) for seed in range(n_runs)]
    api.run_batch(tasks[:1])  # load the compiled kernels into this process, if no run did yet

    def one_batch():
        batch.populations.clear()
        parallel.ONE_BY_ONE = one_by_one
        try:
            api.run_batch(tasks, workers=workers)
        finally:
            parallel.ONE_BY_ONE = False

    wall, others = min(_timed_with_load(one_batch) for _ in range(reps))
    if one_by_one and workers > 1 and parallel.last_batch.start_method != "fork":   # a spawned worker reads the switch anew
        raise RuntimeError("the one-by-one path on several cores needs forked workers (they inherit the switch); "
                           f"this batch's were started by {parallel.last_batch.start_method}")
    return n_runs / wall, others


def batch_section(n_batch: int, cores: int, reps: int = 3) -> dict:
    """Section [5/8]: the same batch through the path before batches (one by one) and the batch path, on one core
    and on all cores, baseline and combined, taken in turns (the best of ``reps`` each, so that a slow spell of a
    shared machine does not fall on one of them only), and the start-up of the pool."""
    from tabulate import tabulate

    from sim.runs import parallel

    print(f"\n[5/8] batch of {n_batch} default-scenario runs, one by one (the path before batches) and as batches, "
          f"on 1 core and on {cores}, in turns (best of {reps}) ...", flush=True)
    rates, others, info = {}, [], None
    for regime in ("baseline", "combined"):
        got = {key: [] for key in ((p, w) for p in PATHS for w in (1, cores))}
        for _ in range(reps):
            for path, one_by_one in PATHS.items():
                for workers in (1, cores):
                    rate, busy = batch_rate(n_batch, workers, regime=regime, one_by_one=one_by_one)
                    got[(path, workers)].append(rate)
                    others.append(busy)
                    if workers > 1 and not one_by_one:
                        info = parallel.last_batch
        rates[regime] = {key: max(v) for key, v in got.items()}
    rows = []
    for regime, r in rates.items():
        old_one, old_all = r[("one by one", 1)], r[("one by one", cores)]
        for path in PATHS:
            one, every = r[(path, 1)], r[(path, cores)]
            rows.append([regime, path, f"{one:,.1f}", f"{every:,.1f}", f"{every / one / cores:.0%}",
                         f"{one / old_one:.2f}x", f"{every / old_all:.2f}x", f"{every / old_one:.2f}x"])
    print(tabulate(rows, headers=["regime", "path", "runs/s 1 core", f"runs/s {cores} cores", "parallel efficiency",
                                  "vs one by one, 1 core", f"vs one by one, {cores} cores",
                                  f"{cores} cores vs one by one on 1"], tablefmt="github"))
    if info is not None:
        print(f"pool start-up: {info.processes} processes by {info.start_method}, the first chunk begun "
              f"{info.startup_s * 1e3:,.0f} ms after the pool was made; kernels loaded by the workers: "
              f"{info.worker_kernel_loads} ({info.in_parent} run by the parent first, then {info.chunks} chunks)")
    print(f"other processes kept {np.nanmedian(others):.2f} cores busy on average during a batch (median; above "
          "~0.05, the efficiency suffers; a busy host under this virtual machine is not seen)")
    return rates


def _monotonic_clock():
    """libc's ``clock_gettime(CLOCK_MONOTONIC)`` as a function compiled code can call (seconds), through ctypes."""
    import ctypes

    from numba import njit

    gettime = ctypes.CDLL(None).clock_gettime
    gettime.argtypes = [ctypes.c_int, ctypes.c_void_p]
    gettime.restype = ctypes.c_int
    monotonic = 1  # CLOCK_MONOTONIC on Linux

    @njit
    def now(buf):
        gettime(monotonic, buf.ctypes)
        return buf[0] + 1e-9 * buf[1]

    return now


def phase_times(n_firms: int, seed: int = 3, reps: int = 3, regime: str = "combined") -> dict:
    """Seconds per phase of :data:`sim.core.loop.PHASES` over a whole Numba run, timed inside one compiled month loop (a
    monotonic clock read between phases, no call from Python per phase); the best of ``reps`` runs by their total."""
    from numba import njit

    from sim.engines.numba import kernels
    from sim.core import loop
    from sim.core.population import draw_population
    from sim.core.results import new_series
    from sim.core.state import make_params, new_state, to_struct

    names = loop.PHASES
    namespace = {f"_{name}": getattr(kernels, name) for name in names}
    namespace["now"] = _monotonic_clock()
    body = ["def timed(p, st, series, out, buf):", "    for month in range(p.months):"]
    for i, name in enumerate(names):
        body += ["        t = now(buf)", f"        _{name}(p, st, series, month)", f"        out[{i}] += now(buf) - t"]
    exec("\n".join(body), namespace)  # noqa: S102 - built from loop.PHASES only
    timed = njit(namespace["timed"])

    cfg = _cfg(n_firms, regime)
    pop = draw_population(cfg, seed)
    best = None
    warm = 2  # the first compiles; a process's first states are fresh pages from the kernel (faults, not the model)
    for attempt in range(warm + reps):
        p = to_struct(make_params(cfg, seed, pop.n_achievements))
        st = to_struct(new_state(cfg, pop))
        out = np.zeros(len(names))
        timed(p, st, new_series(cfg.scenario.months), out, np.zeros(2, dtype=np.int64))
        if attempt >= warm and (best is None or out.sum() < best.sum()):
            best = out
    return dict(zip(names, best.tolist()))


def print_phase_times(columns=((2_000, "baseline"), (2_000, "combined"), (100_000, "combined"))) -> None:
    """Milliseconds per phase of a whole run, side by side for each (firms, regime), and the kernel's firm-steps/s."""
    from tabulate import tabulate

    from sim.core import loop

    times = [phase_times(n, regime=regime) for n, regime in columns]
    rows = [[name] + [f"{t[name] * 1e3:.2f} ({t[name] / sum(t.values()):.0%})" for t in times] for name in loop.PHASES]
    rows.append(["whole month loop"] + [f"{sum(t.values()) * 1e3:.2f}" for t in times])
    months = _cfg(2_000).scenario.months
    rows.append(["firm-steps/s"] + [f"{n * months / sum(t.values()) / 1e6:.1f} M" for (n, _), t in zip(columns, times)])
    print(tabulate(rows, headers=["phase"] + [f"{regime}, {n:,} firms (ms)" for n, regime in columns],
                   tablefmt="github"))


def calibration_section(n_runs: int, cores: int) -> dict:
    """Runs per second inside an ABC-SMC calibration (pyabc, the ordered sampler, every core) on the default
    scenario (the region setting of configs/targets/reported.yaml: CNIPA's rate, new-product failure), beside a plain
    batch of as many default-scenario runs (api.run_batch), in one session."""
    from sim import api
    from sim.analysis import calibration as cal
    from sim.analysis.targets import load_targets

    ts = load_targets("reported")
    fit = [t for t in ts.by_use("fit") if t.setting == "region"]
    space = cal.load_space("judgement")
    space = space.subset([p.key for p in space.params if p.applies_to("default")][:8])
    model = cal.TargetModel.build(ts, fit, space)
    model({}, 0)  # kernels loaded before the workers fork
    ex = cal.Executor("local", cores)
    population = 500
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        res = cal.run_abc(model, {t.name: t.observed for t in fit}, {t.name: t.sigma for t in fit},
                          Path(tmp) / "abc.db", population=population, generations=1000,
                          max_evaluations=n_runs // model.runs_per_evaluation, min_epsilon=0.0, seed=1,
                          executor=ex, resume=False, progress=False)
        abc_s = time.perf_counter() - t0
        generations = int(res.history.max_t + 1)
    ex.close()
    runs = res.evaluations * model.runs_per_evaluation
    cfg = model.base["region"]
    t0 = time.perf_counter()
    api.run_batch([(cfg, s) for s in range(runs)], workers=cores)
    plain_s = time.perf_counter() - t0
    return {"runs": runs, "abc_s": abc_s, "abc_rate": runs / abc_s, "plain_rate": runs / plain_s,
            "generations": generations, "population": population}


def print_calibration(n_runs: int, cores: int) -> None:
    from tabulate import tabulate

    print(f"\n[6/8] runs per second inside a calibration (ABC-SMC, default scenario, {cores} cores) ...", flush=True)
    c = calibration_section(n_runs, cores)
    print(tabulate([[f"{c['runs']:,}", f"{c['abc_s']:.0f}", f"{c['abc_rate']:.0f}", f"{c['plain_rate']:.0f}",
                     f"{c['abc_rate'] / c['plain_rate']:.0%}", f"{100_000 / c['abc_rate'] / 60:.1f}"]],
                   headers=["runs", "ABC s", "ABC runs/s", "plain batch runs/s", "ABC / plain",
                            "minutes for 100,000 runs"], tablefmt="github"))
    print(f"({c['generations']} generations of {c['population']} particles; target: 100,000 runs within 15 minutes)")


def sensitivity_section(n: int, cores: int, replicates: int = 4) -> dict:
    """A Sobol analysis as ``python -m experiments.sensitivity`` runs it (the app's 10 parameters, second order,
    ``replicates`` runs a point on common random numbers, the combined regime on the default scenario, every core,
    Parquet parts), beside a plain batch of default-scenario runs in the same session."""
    from omegaconf import OmegaConf

    from sim import api
    from sim.analysis import sensitivity as sa
    from sim.analysis.calibration import load_space
    from sim.analysis.designs import run_design
    from sim.runs.executor import Executor
    from sim.analysis.explore import build_model
    from sim.core.locations import CONFIG_DIR

    keys = list(OmegaConf.load(CONFIG_DIR / "sensitivity.yaml").sensitivity.parameters)
    cfg = api.under_regime(api.compose("engine=numba", "progress=false"), "combined")
    model = build_model(cfg, load_space("judgement"), keys, outcomes=["conversions", "gov_spend_per_year",
                                                                       "public_cost_per_year"], replicates=replicates)
    design = sa.design(model.uncertainties, "sobol", n, 0, second_order=True)
    points = design.points
    model(**points[0])  # kernels loaded before the workers fork
    ex = Executor("local", cores)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        table, _ = run_design(model, points, Path(tmp), ex, part_size=2048)
        run_s = time.perf_counter() - t0
    ex.close()
    t0 = time.perf_counter()
    indices, _ = sa.analyse(design, {o: table[o].to_numpy() for o in model.outcomes}, 1000)
    analyse_s = time.perf_counter() - t0
    runs = len(points) * model.runs_per_point
    n_plain = min(runs, 4000)
    t0 = time.perf_counter()
    api.run_batch([(cfg, s) for s in range(n_plain)], workers=cores)
    plain_rate = n_plain / (time.perf_counter() - t0)
    return {"points": len(points), "runs": runs, "run_s": run_s, "analyse_s": analyse_s, "rate": runs / run_s,
            "plain_rate": plain_rate, "params": len(keys), "n": n}


def optimise_section(cores: int, generations: int = 6) -> dict:
    """The policy search as ``python -m experiments.optimise`` runs it (its default levers, objectives and budget;
    NSGA-II, 20 trials a generation, 4 replicates a point, every core), beside a plain batch of exactly the runs
    its evaluated points made (each point's configs on its seeds, through ``api.run_batch``), in one session."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from experiments import optimise as app
    from experiments.cli import split
    from sim import api
    from sim.analysis import optimise as opt
    from sim.runs.executor import Executor
    from sim.core.config import register_hydra_defaults
    from sim.core.locations import CONFIG_DIR

    GlobalHydra.instance().clear()
    register_hydra_defaults()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        node = compose(config_name="optimise", overrides=["engine=numba", "progress=false", "workers=1",
                                                          f"optimise.generations={generations}"])
    GlobalHydra.instance().clear()
    cfg, own = split(node, "optimise", app.OptimiseConfig)
    model, levers, objectives, constraints = app.build(cfg, own)
    space = opt.decision_space(levers)
    evaluated = []

    class Recorded(opt.ModelBatch):
        def __call__(self, points):
            evaluated.extend(points)
            return super().__call__(points)

    first = {k: (d.choices[0] if hasattr(d, "choices") else d.low) for k, d in space.items()}
    model(**first)  # kernels loaded (and the baseline run) before the workers fork
    ex = Executor("local", cores)
    t0 = time.perf_counter()
    res = opt.search(Recorded(model, ex), space, objectives, constraints, own.population, own.generations, cfg.seed,
                     canonical=opt.Canonical(levers), crossover=own.crossover, mutation=own.mutation)
    search_s = time.perf_counter() - t0
    ex.close()
    tasks = [t for p in evaluated for t in model.tasks(model.normalise(p))]
    t0 = time.perf_counter()
    api.run_batch(tasks, workers=cores)
    plain_s = time.perf_counter() - t0
    return {"points": len(evaluated), "evaluations": res.evaluations, "runs": len(tasks), "search_s": search_s,
            "rate": len(tasks) / search_s, "plain_rate": len(tasks) / plain_s, "generations": own.generations,
            "population": own.population}


def print_optimise(cores: int) -> None:
    from tabulate import tabulate

    print(f"\n[optimise] the policy search (NSGA-II, the app's defaults, {cores} cores) ...", flush=True)
    r = optimise_section(cores)
    print(tabulate([[f"{r['points']:,}", f"{r['runs']:,}", f"{r['search_s']:.1f}", f"{r['rate']:.0f}",
                     f"{r['plain_rate']:.0f}", f"{r['rate'] / r['plain_rate']:.0%}"]],
                   headers=["points evaluated", "runs", "search s", "search runs/s", "plain batch of its runs, runs/s",
                            "search / plain"], tablefmt="github"))
    print(f"({r['generations']} generations of {r['population']} trials; a point proposed again is not run again)")


def print_sensitivity(n: int, cores: int) -> None:
    from tabulate import tabulate

    print(f"\n[7/8] a Sobol analysis (10 parameters, n = {n}, second order, 4 replicates, combined regime, default "
          f"scenario, {cores} cores) ...", flush=True)
    r = sensitivity_section(n, cores)
    print(tabulate([[f"{r['points']:,}", f"{r['runs']:,}", f"{r['run_s'] / 60:.1f}", f"{r['analyse_s']:.1f}",
                     f"{r['rate']:.0f}", f"{r['plain_rate']:.0f}", f"{r['rate'] / r['plain_rate']:.0%}",
                     f"{90_112 / r['rate'] / 60:.1f}"]],
                   headers=["points", "runs", "minutes", "analysis s", "runs/s", "plain batch runs/s",
                            "Sobol / plain", "minutes for 90,112 runs"], tablefmt="github"))
    print("(target: n = 1,024 -> 22,528 points x 4 replicates = 90,112 runs within 15 minutes on 2 cores)")


def dashboard_section(cores: int) -> dict:
    """The Compare page's default question (every regime, configs/dashboard.yaml's seeds, at equal spend, default scenario) as the
    dashboard answers it: its service with a warm pool of ``cores`` processes; then a question with one parameter
    changed (the analyst's next one), the first question again (cached), and the main job's own functions
    (api.compare and compare_at_spend, a pool started for each batch) on the same config, in the same session."""
    from experiments.dashboard.service import Service, starting_seeds
    from sim import api

    seeds = starting_seeds()
    t0 = time.perf_counter()
    service = Service(["engine=numba", f"seeds={seeds}"], workers=cores)
    service.start()
    start_s = time.perf_counter() - t0
    try:
        t0 = time.perf_counter()
        answer = service.compare([])
        first_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        service.compare(["broker_reward.cap=500000"])
        changed_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        service.compare([])
        cached_s = time.perf_counter() - t0
    finally:
        service.close()
    cfg = api.compose("engine=numba", "progress=false", f"workers={cores}", f"seeds={seeds}")
    t0 = time.perf_counter()
    res = api.compare(cfg)
    api.compare_at_spend(cfg, spend_of=res)
    api_s = time.perf_counter() - t0
    runs = len(answer.comparison.summary) + len(answer.equal.summary)
    return {"start_s": start_s, "first_s": first_s, "changed_s": changed_s, "cached_s": cached_s, "api_s": api_s,
            "runs": runs, "seeds": seeds}


def print_dashboard(cores: int) -> None:
    from tabulate import tabulate

    from experiments.dashboard.service import starting_seeds

    print(f"\n[8/8] the dashboard's default comparison (every regime x {starting_seeds()} seeds, and at equal spend; "
          f"{cores} cores) ...", flush=True)
    r = dashboard_section(cores)
    print(tabulate([[f"{r['start_s']:.1f}", r["runs"], f"{r['first_s']:.1f}", f"{r['changed_s']:.1f}",
                     f"{r['cached_s'] * 1e3:.0f}", f"{r['api_s']:.1f}", f"{r['first_s'] / r['api_s']:.0%}"]],
                   headers=["server start s", "runs", "first answer s", "a parameter changed s", "asked again ms",
                            "api.compare (no warm pool) s", "dashboard / api"], tablefmt="github"))
    print("(target: the default comparison within 10 s on 2 cores after the first compile; answers with their "
          "tables and figure)")


def dashboard_browser_section(cores: int, questions: int = 5) -> dict:
    """The Compare page as an analyst sees it, in Chromium: the dashboard served on the default scenario with
    ``cores`` workers; the time from opening the page to its headline table (the starting question, answered at
    start: ``dashboard.answer_start``), then ``questions`` new questions (the seeds lowered one at a time, each a
    comparison not asked before) from pressing Enter to their answer on the page, and the server's memory (its
    process and its workers', resident) after each: bounded by the answers' cache (``dashboard.cache_mb``)."""
    import psutil

    from experiments.dashboard import browser
    from experiments.dashboard.service import starting_seeds

    seeds = starting_seeds()
    t0 = time.perf_counter()
    with browser.dashboard(f"workers={cores}", process=True, timeout=1800) as (url, proc), \
            browser.chromium() as page:
        start_s = time.perf_counter() - t0
        server = psutil.Process(proc.pid)

        def rss_mb() -> float:
            tree = [server, *server.children(recursive=True)]
            return sum(p.memory_info().rss for p in tree) / 1e6

        rss = [rss_mb()]
        t0 = time.perf_counter()
        page.goto(url)
        page.locator(".tt-headline").first.wait_for(timeout=600_000)
        default_s = time.perf_counter() - t0
        field = page.locator(".tt-seeds input")
        times = []
        for k in range(1, questions + 1):
            field.fill(str(seeds - k))
            t0 = time.perf_counter()
            field.press("Enter")
            page.locator(".tt-command", has_text=re.compile(rf"seeds={seeds - k}\b")).first.wait_for(timeout=600_000)
            times.append(time.perf_counter() - t0)
            rss.append(rss_mb())
    return {"start_s": start_s, "default_s": default_s, "times": times, "rss": rss, "seeds": seeds}


def print_dashboard_browser(cores: int) -> None:
    from tabulate import tabulate

    from experiments.dashboard.browser import chromium_path

    if chromium_path() is None:  # the rest of the benchmark stands without it
        print("\n[8/8, browser] skipped: no Chromium (bash tests/install.sh installs Debian's package; or set CHROMIUM)",
              flush=True)
        return
    print(f"\n[8/8, browser] the Compare page in Chromium (default scenario, {cores} cores) ...", flush=True)
    r = dashboard_browser_section(cores)
    print(tabulate([[f"{r['start_s']:.0f}", f"{r['default_s']:.1f}", " / ".join(f"{t:.1f}" for t in r["times"]),
                     f"{r['rss'][0]:,.0f}", " / ".join(f"{m:,.0f}" for m in r["rss"][1:])]],
                   headers=["server start s", "default comparison in the browser s",
                            f"new questions (seeds {r['seeds'] - 1}, {r['seeds'] - 2}, ...) s",
                            "server MB at start", "server MB after each question"], tablefmt="github"))
    print("(target: the default comparison within 5 s of opening the page on 2 cores; memory flat once the cache "
          "is full)")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller sizes and batch")
    ap.add_argument("--mesa-max", type=int, default=100_000, help="largest population run with Mesa")
    ap.add_argument("--batch", type=int, default=None, help="runs in the batch (default 1000, quick 200)")
    ap.add_argument("--only", choices=["batch", "calibration", "sensitivity", "dashboard", "parts", "province", "phases",
                             "optimise"],
                    default=None,
                    help="run only this section ([5/8] batch, [6/8] calibration, [7/8] sensitivity, [8/8] dashboard, "
                         "[parts] a run's parts against its kernel, also printed after [4/8], [province] the "
                         "province-scale scenario, also printed after [3/8], [phases] time per phase of the month, "
                         "also printed at the end, [optimise] the policy search's runs/s against a plain "
                         "batch of the same runs)")
    ap.add_argument("--sobol-n", type=int, default=None,
                    help="Sobol base sample of the sensitivity section (default 1,024: the target; quick 64)")
    ap.add_argument("--calibration-runs", type=int, default=None,
                    help="runs in the calibration section (default 20,000, quick 4,000; 100000 for the target)")
    args = ap.parse_args(argv)
    from tabulate import tabulate

    cores = os.cpu_count() or 1
    sizes = [1_000, 10_000, 100_000]
    mesa_sizes = [n for n in sizes if n <= (min(args.mesa_max, 10_000) if args.quick else args.mesa_max)]
    scale_sizes = [10_000, 30_000, 100_000, 300_000] + ([] if args.quick else [1_000_000])
    big = 300_000 if args.quick else 1_000_000
    n_batch = args.batch or (200 if args.quick else 1000)
    n_calib = args.calibration_runs or (4_000 if args.quick else 20_000)
    n_sobol = args.sobol_n or (64 if args.quick else 1024)
    if args.only == "calibration":
        print_calibration(n_calib, cores)
        return
    if args.only == "sensitivity":
        print_sensitivity(n_sobol, cores)
        return
    if args.only == "dashboard":
        print_dashboard(cores)
        print_dashboard_browser(cores)
        return
    if args.only == "parts":
        print_run_parts()
        return
    if args.only == "province":
        province_section()
        return
    if args.only == "phases":
        print_phase_times()
        return
    if args.only == "optimise":
        print_optimise(cores)
        return
    if args.only == "batch":
        print(f"machine: {cores} cores; default scenario, regime 'combined', 60 months")
        batch_section(n_batch, cores, reps=2 if args.quick else 3)
        return

    print(f"machine: {cores} cores; default scenario, regime 'combined', 60 months\n")
    print("[1/8] engines side by side ...", flush=True)
    rows = engine_speed(sizes, mesa_sizes)
    table = [[f"{r['firms']:,}", f"{r['mesa_fsps']:,.0f}" if np.isfinite(r["mesa_fsps"]) else "-",
              f"{r['numba_fsps']:,.0f}", f"{r['numba_kernel_fsps']:,.0f}",
              f"{r['ratio']:.0f}x" if np.isfinite(r["ratio"]) else "-",
              f"{r['mesa_s']:.3f}" if np.isfinite(r["mesa_s"]) else "-", f"{r['numba_s']:.4f}"]
             for r in rows]
    print(tabulate(table, headers=["firms", "mesa firm-steps/s", "numba firm-steps/s", "numba kernel only",
                                   "numba / mesa", "mesa s/run", "numba s/run"], tablefmt="github"))

    print("\n[2/8] cost vs population (numba) ...", flush=True)
    slope, times = scaling_exponent(scale_sizes)
    print(tabulate([[f"{n:,}", f"{t:.4f}", f"{n * 60 / t:,.0f}"] for n, t in zip(scale_sizes, times)],
                   headers=["firms", "s/run", "firm-steps/s"], tablefmt="github"))
    print(f"fitted exponent of cost vs population: {slope:.3f}")

    print("\n[3/8] compile time and memory (fresh processes) ...", flush=True)
    cm = compile_and_memory(big)
    print(f"compile (empty cache, shorter of two): {cm['compile_s']:.1f} s; load from cache: {cm['cache_load_s']:.2f} s")
    print(f"peak memory (whole process): {cm['peak_rss_big_mb']:,.0f} MB at {big:,} firms; "
          f"{cm['peak_rss_small_mb']:,.0f} MB at 1,000 firms")
    province_section(2 if args.quick else 3)

    print("\n[4/8] checks every run passes, against the run itself (numba) ...", flush=True)
    crow = check_costs([1_000, 10_000, 100_000])
    print(tabulate([[f"{r['firms']:,}", f"{r['run_s'] * 1e3:.2f}", f"{r['validate_s'] * 1e3:.3f}",
                     f"{r['guards_s'] * 1e3:.3f}", f"{r['invariants_s'] * 1e3:.3f}",
                     f"{(r['validate_s'] + r['guards_s'] + r['invariants_s']) / r['run_s']:.1%}"] for r in crow],
                   headers=["firms", "run ms", "validate ms", "memory+money ms", "invariants ms", "checks / run"],
                   tablefmt="github"))
    print("(a batch validates each distinct config once per chunk; every run checks memory, money and invariants)")
    print_run_parts()

    batch_section(n_batch, cores, reps=2 if args.quick else 3)
    print_calibration(n_calib, cores)
    print_sensitivity(n_sobol, cores)
    print_dashboard(cores)
    print_dashboard_browser(cores)

    print("\ntime per phase of the month (numba, a whole run of each, timed inside the compiled month loop; "
          "sim/core/loop.py) ...", flush=True)
    print_phase_times()

    r10 = next(r for r in rows if r["firms"] == 10_000)
    r100 = next(r for r in rows if r["firms"] == 100_000)
    print("\ntargets:")
    print(f"  numba >= 100x mesa at 10,000 firms:       {r10['ratio']:.0f}x")
    print(f"  >= 1e7 firm-steps/s per core at 100,000:   {r100['numba_fsps']:.2e} (kernel only {r100['numba_kernel_fsps']:.2e})")
    print(f"  cost exponent <= 1.1:                      {slope:.3f}")
    print(f"  1,000,000 firms in under 2 GB:             {cm['peak_rss_big_mb']:,.0f} MB at {big:,} firms")


if __name__ == "__main__":
    main()
