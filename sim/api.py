"""The Python API: what the Hydra apps do, callable from a notebook.

>>> from sim import api
>>> cfg = api.compose("scenario=lishui", "seeds=5", "broker_reward.cap=500000")
>>> res = api.compare(cfg)            # every regime of cfg.regimes, cfg.seeds replicates
>>> res.table                         # mean and 95% interval per regime, paired effects
>>> res.summary, res.series           # tidy tables: one row per regime x seed (x month)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Optional, Sequence

import numpy as np

from .core.config import (ENGINES, SEED_MAX, Config, ConfigError, RegimeConfig, allowed_regimes_text,  # noqa: F401
                          compose, flat_params, load_config, parameter_keys, regime_instruments, renamed, replace,
                          with_regime)
from .core.locations import CONFIG_DIR
from .core.results import (SERIES_NAMES, check_by_sector, check_deals, check_invariants,  # noqa: F401
                           summarize)
from .runs.parallel import (BatchInfo, RunResult, _given, check_seed, run_batch, run_table, run_validated,  # noqa: F401
                            simulate)
from .runs.posterior import Posterior, load_posterior

if TYPE_CHECKING:  # pandas is imported where tables are built: worker processes start faster without it
    import pandas as pd

# the facade: what a notebook or a script uses (documented in docs/reference/api.md)
__all__ = ["compose", "regime_names", "regime", "under_regime", "RunResult", "check_seed", "simulate",
           "run_validated", "BatchInfo", "run_batch", "run_table", "flat_params", "summary_frame", "series_frame",
           "sector_frame", "Comparison", "compare", "compare_at_spend", "check_at_spend", "spends", "check_regimes",
           "replicates_text", "yearly_spend", "NoSpend", "default_workers"]


# --------------------------------------------------------------------------- configs
def regime_names() -> list[str]:
    """The named regimes: ``baseline`` first, ``combined`` last, the others alphabetically."""
    return sorted((p.stem for p in (CONFIG_DIR / "regime").glob("*.yaml")),
                  key=lambda n: (n != "baseline", n == "combined", n))


def regime(name: str) -> RegimeConfig:
    """The regime ``configs/regime/<name>.yaml`` (a name, never a path), or a mix of instruments joined by ``+``
    (``free_trial+vouchers``: a regime of that name switching those instruments on)."""
    instruments = regime_instruments(name)
    if instruments is None:
        raise ConfigError(f"regime {name!r}{renamed(name)}: allowed are {allowed_regimes_text()}")
    return load_config({"regime": {"name": name, "instruments": instruments}}).regime


def under_regime(cfg: Config, name: str) -> Config:
    """``cfg`` with its regime replaced by the named one (instrument parameters kept)."""
    return with_regime(cfg, regime(name))


# --------------------------------------------------------------------------- comparisons
def summary_frame(results: Iterable[RunResult], configs: Optional[dict[str, Config]] = None) -> pd.DataFrame:
    """One row per run: regime, seed, parameters, metrics.

    The parameters are those of the run's own config (runs of one regime on a posterior's draws differ), or,
    for a result without one, of ``configs[regime]``.
    """
    import pandas as pd

    rows = []
    for r in results:
        cfg = r.config if r.config is not None else configs[r.regime]
        rows.append({"regime": r.regime, "seed": r.seed, **flat_params(cfg), **r.summary})
    return pd.DataFrame(rows)


def series_frame(results: Iterable[RunResult]) -> pd.DataFrame:
    """One row per run and month: regime, seed, month, every series column."""
    import pandas as pd

    frames = []
    for r in results:
        df = pd.DataFrame(r.series, columns=list(SERIES_NAMES))
        df.insert(0, "month", np.arange(len(df)))
        df.insert(0, "seed", r.seed)
        df.insert(0, "regime", r.regime)
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def sector_frame(results: Iterable[RunResult]) -> pd.DataFrame:
    """One row per run, month and sector: regime, seed, month, sector, the funnel of that sector's firms."""
    import pandas as pd

    from .core.state import SECTOR_SERIES_NAMES

    frames = []
    for r in results:
        months, sectors, _ = r.by_sector.shape
        df = pd.DataFrame(r.by_sector.reshape(months * sectors, -1), columns=list(SECTOR_SERIES_NAMES))
        df.insert(0, "sector", np.tile(np.arange(sectors), months))
        df.insert(0, "month", np.repeat(np.arange(months), sectors))
        df.insert(0, "seed", r.seed)
        df.insert(0, "regime", r.regime)
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


@dataclass
class Comparison:
    """The result of :func:`compare`."""

    config: Config
    summary: pd.DataFrame     # one row per regime x seed
    series: pd.DataFrame      # one row per regime x seed x month
    table: pd.DataFrame       # one row per regime: means, intervals, paired effects vs baseline
    results: list[RunResult]
    budget: Optional[float] = None  # at equal spend (compare_at_spend): the yearly budget every regime ran under


def compare(cfg: Config, regimes: Optional[Sequence[str]] = None, seeds: Optional[int] = None,
            workers: Optional[int] = None, progress: Optional[bool] = None, **batch) -> Comparison:
    """Run every regime on the same seeds (common random numbers) and tabulate the effects (under the config's
    ``government.annual_budget``; :func:`compare_at_spend` for a comparison at equal spend).

    With ``cfg.posterior`` (a calibration's posterior directory), replicate k runs on posterior draw k // seeds
    with seed ``cfg.seed + k``: ``posterior_draws x seeds`` replicates per regime, the same draw and seed under
    every regime, and the summary gets a column ``draw`` (the particle drawn).

    ``batch``: ``pool`` and ``on_progress``, passed to :func:`run_batch` (they change no number).
    """
    return _compare(cfg, regimes, seeds, workers, progress, None, **batch)


def compare_at_spend(cfg: Config, at_spend: Optional[str] = None, regimes: Optional[Sequence[str]] = None,
                     seeds: Optional[int] = None, workers: Optional[int] = None, progress: Optional[bool] = None,
                     spend_of: Optional[Comparison] = None, **batch) -> Comparison:
    """Every regime under one yearly budget: what regime ``at_spend`` (default ``cfg.at_spend``) spends a year,
    measured from ``spend_of`` (the :func:`compare` of the same config and seeds, if it ran that regime) or else by
    running it first. A cost per extra conversion is not a property of an instrument alone: at equal spend,
    instruments are compared on what the same money buys."""
    at_spend = cfg.at_spend if at_spend is None else at_spend
    if at_spend is None:
        raise ConfigError("at_spend = null: name the regime whose yearly spend every regime is held to")
    cfg = replace(cfg, at_spend=at_spend)  # validated: a known regime
    check_at_spend(at_spend)
    checked = _checked(cfg, regimes, seeds, workers)
    if (spend_of is not None and spend_of.budget is None and at_spend in set(spend_of.summary["regime"])
            and _same_runs(spend_of.config, checked)):
        spends = spend_of.summary.loc[spend_of.summary["regime"] == at_spend, "gov_spend"]
        budget = _per_year(spends, cfg.scenario.months, at_spend)
    else:
        budget = yearly_spend(under_regime(checked, at_spend), checked.seeds, checked.workers,
                              cfg.progress if progress is None else progress, **batch)
    capped = replace(cfg, **{"government.annual_budget": budget})
    return _compare(capped, regimes, seeds, workers, progress, budget, **batch)


def spends(name: str) -> bool:
    """Whether the regime ``name`` (a registered one or a mix ``a+b``) may pay public money: an instrument it switches
    on owns a kind of payment whose payer is the government (the ledger's; what ``gov_spend`` sums)."""
    from .core import ledger

    instruments = set(regime(name).instruments)
    return any(k.payer == ledger.GOVERNMENT and k.owner in instruments for k in ledger.KINDS)


def check_at_spend(name: str) -> None:
    """Refuse, before anything runs, an ``at_spend`` regime none of whose instruments pays public money."""
    if not spends(name):
        raise ConfigError(f"at_spend = {name}: that regime spends no public money; name one that does")


def check_regimes(cfg: Config, names) -> dict:
    """{name: ``cfg`` under that regime} for the regimes a comparison runs, each validated as its run will be (an
    instrument's own rules, e.g. ``income_share.extra_share`` with the scenario's inventor share, hold only under a
    regime that switches it on: ``cfg``'s own regime may not): the first bad one raises its one-line ConfigError,
    before any run."""
    return {name: under_regime(cfg, name) for name in dict.fromkeys(names)}


def _checked(cfg: Config, regimes, seeds, workers) -> Config:
    """``cfg`` with the comparison's regimes, seeds and workers, validated like the command line (known regimes,
    each once, seeds >= 1, ...)."""
    if isinstance(regimes, str):
        raise ConfigError(f"regimes = {regimes!r}: must be a list of regime names")
    if not isinstance(cfg, Config):
        _given(cfg)  # None or another non-config: its own message
        raise ConfigError(f"cfg: a {type(cfg).__name__}, must be a Config (sim.api.load_config(mapping) or "
                          "sim.api.compose(...) gives one)")
    return replace(cfg, **{"regimes": cfg.regimes if regimes is None else list(regimes),
                           "seeds": cfg.seeds if seeds is None else seeds,
                           "workers": cfg.workers if workers is None else workers})


def _same_runs(a: Config, b: Config) -> bool:
    """Whether two configs give the same runs of a regime (they differ at most in settings that change no number)."""
    keep = {k: getattr(b, k) for k in ("regimes", "workers", "progress", "at_spend")}
    return replace(a, **keep) == b


def _compare(cfg, regimes, seeds, workers, progress, budget, **batch) -> Comparison:
    from .analysis.stats import comparison_table

    cfg = _checked(cfg, regimes, seeds, workers)
    regimes, seeds, workers = cfg.regimes, cfg.seeds, cfg.workers
    progress = cfg.progress if progress is None else progress
    posterior = load_posterior(cfg.posterior) if cfg.posterior is not None else None
    replicates = [rep for name in regimes for rep in _replicates(under_regime(cfg, name), seeds, posterior)]
    desc = f"{len(regimes)} regimes x {replicates_text(cfg, seeds)}" + (" at equal spend" if budget is not None else "")
    results = run_batch([(c, seed) for c, seed, _ in replicates], workers=workers, progress=progress, desc=desc,
                        **batch)
    summary = summary_frame(results)
    if posterior is not None:
        summary.insert(2, "draw", [particle for _, _, particle in replicates])
        summary.insert(3, "draw_block", [(seed - cfg.seed) // seeds for _, seed, _ in replicates])
    return Comparison(cfg, summary, series_frame(results), comparison_table(summary), results, budget)


def _replicates(cfg: Config, seeds: int, posterior: Optional[Posterior] = None) -> list[tuple[Config, int, int]]:
    """(config, seed, particle) of each replicate of ``cfg``: seeds ``cfg.seed, cfg.seed + 1, ...``, and, with a
    posterior, replicate k on draw k // seeds (particle -1 without one). Every replicate has a seed of its own, so
    effects paired by seed pair the same draw and seed under every regime."""
    if cfg.posterior is None:
        return [(cfg, cfg.seed + k, -1) for k in range(seeds)]
    posterior = posterior if posterior is not None else load_posterior(cfg.posterior)
    particles = posterior.sample(cfg.seed, cfg.posterior_draws)
    configs = posterior.configs(cfg, particles)
    return [(configs[k // seeds], cfg.seed + k, int(particles[k // seeds]))
            for k in range(cfg.posterior_draws * seeds)]


def replicates_text(cfg: Config, seeds: Optional[int] = None) -> str:
    """What a comparison's replicates are, for titles: ``10 seeds`` or ``20 posterior draws x 2 seeds``."""
    seeds = cfg.seeds if seeds is None else seeds
    return f"{seeds} seeds" if cfg.posterior is None else f"{cfg.posterior_draws} posterior draws x {seeds} seeds"


def yearly_spend(cfg: Config, seeds: int, workers: int = 1, progress: bool = False, **batch) -> float:
    """Government's mean spend a year under ``cfg``'s regime (over seeds ``cfg.seed`` ..., and, with
    ``cfg.posterior``, over its draws as :func:`compare` runs them), whole yuan: the budget of a comparison at equal
    spend (``at_spend``)."""
    tasks = [(c, seed) for c, seed, _ in _replicates(cfg, seeds)]
    runs = run_batch(tasks, workers=workers, progress=progress, desc=f"spend of {cfg.regime.name}", **batch)
    return _per_year([r.summary["gov_spend"] for r in runs], cfg.scenario.months, cfg.regime.name)


class NoSpend(ConfigError):
    """The regime named for an equal-spend comparison spent no public money in these runs."""


def _per_year(spends, months: int, regime: str) -> float:
    """The mean of runs' government spend, per year, whole yuan (> 0: a budget)."""
    spend = float(np.mean(np.asarray(spends, dtype=float))) / (months / 12.0)
    if spend <= 0:
        raise NoSpend(f"at_spend = {regime}: that regime spends no public money; name one that does")
    return float(np.floor(spend))


def default_workers() -> int:
    return max(1, (os.cpu_count() or 1))
