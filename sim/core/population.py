"""Draw a scenario's population as arrays (struct of arrays).

The population depends on the scenario and the seed only, never on the regime
or the engine: every regime and both engines start from the very same firms,
universities, achievements, brokers and insurers (common random numbers).

Firms and achievements are sorted by sector and indexed by ``*_offsets``
(``firms of sector s = firm_offsets[s]:firm_offsets[s+1]``), so discovery picks
from a sector in O(1) and a month costs O(project slots + achievements + brokers).

A firm runs up to ``projects_sme`` or ``projects_large`` technology projects at once
(its project slots): firm ``f``'s are ``project_offsets[f]:project_offsets[f+1]``, and
``project_firm`` names each slot's firm. Projects are laid out firm by firm, so they are
in sector order too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from . import rng
from .jit import entry
from .config import Config, ConfigError
from .rules import yuan_array
from .schema import RUN_WORK_MAX

# sub-indices of population draws (the "step" of the key); Beta draws use their own
# range (a Beta draw takes steps 6*k .. 6*k+5 of its purpose, see rng.beta)
_SECTOR, _A, _B, _C, _D, _E = range(6)
_BETA = 100


@dataclass
class Population:
    """All agents of one scenario and seed, as arrays indexed by agent id."""

    seed: int
    # universities
    univ_in_pilot: np.ndarray           # bool: a 'use first' pilot obliges it to offer trials
    univ_public: np.ndarray             # bool: a public body (its income is public money)
    # achievements (sorted by sector)
    ach_owner: np.ndarray               # university id
    ach_sector: np.ndarray
    ach_quality: np.ndarray             # latent success chance in a capable, well-fitting firm
    ach_maturity: np.ndarray            # 0 = embryonic, 1 = ready to use
    ach_value: np.ndarray               # int64 yuan, value of success to an SME
    ach_cost: np.ndarray                # int64 yuan, implementation cost for an SME
    ach_ask: np.ndarray                 # int64 yuan, asking price
    ach_born: np.ndarray                # int64 month of disclosure (<= 0: in the initial stock, of age -born)
    ach_key: np.ndarray                 # int64 what its draws are keyed by: its place among the disclosures (the
                                        # initial stock, then month by month), the same in a longer run of the seed
    ach_of_key: np.ndarray              # int64 the achievement of each key (ach_key's inverse)
    ach_offsets: np.ndarray             # sector index into achievements
    # firms (sorted by sector)
    firm_sector: np.ndarray
    firm_sme: np.ndarray                # bool
    firm_absorptive: np.ndarray
    firm_cash: np.ndarray               # int64 yuan
    firm_assets: np.ndarray             # int64 yuan, net assets beyond cash (what it can pledge)
    firm_risk_aversion: np.ndarray      # relative (CARA coefficient x net worth: cash + assets)
    firm_need_rate: np.ndarray
    firm_scale: np.ndarray              # project value/cost multiplier
    firm_offsets: np.ndarray
    # project slots (firm by firm)
    project_firm: np.ndarray            # the firm running it
    project_offsets: np.ndarray         # firm index into projects
    # brokers (the whole pool; the first `initial` are active at month 0)
    broker_sector: np.ndarray
    broker_skill: np.ndarray

    @property
    def n_firms(self) -> int:
        return len(self.firm_sector)

    @property
    def n_projects(self) -> int:
        return len(self.project_firm)

    @property
    def n_achievements(self) -> int:
        return len(self.ach_sector)

    @property
    def n_universities(self) -> int:
        return len(self.univ_in_pilot)

    @property
    def n_brokers(self) -> int:
        return len(self.broker_sector)


def _beta(seed, purpose, which, a, b):
    return rng.beta_array(seed, purpose, _BETA + which, np.asarray(a, dtype=np.float64),
                          np.asarray(b, dtype=np.float64))


def _lognormal(seed, purpose, sub, n, median, sigma):
    return median * np.exp(sigma * rng.normal_array(seed, purpose, sub, n))


def _sector(seed, purpose, n, sectors):
    return np.minimum((rng.uniform_array(seed, purpose, _SECTOR, n) * sectors).astype(np.int64), sectors - 1)


def arrival_months(seed: int, universities: int, months: int, rate: float) -> tuple[np.ndarray, np.ndarray]:
    """The achievements disclosed during the run: (owner, month) of each, in month then university order. Each
    university discloses floor(rate) a month and one more with chance rate - floor(rate)."""
    whole = np.floor(rate)
    return _arrivals(int(seed), int(universities), int(months), int(whole), float(rate - whole))


@entry
def _arrivals(seed, universities, months, whole, frac):
    """:func:`arrival_months`, compiled (a loop of NumPy calls a month was the largest part of drawing a
    population): the chance of month ``m``'s extra disclosure at university ``u`` is uniform ``u`` of stream
    (seed, POP_ARRIVAL, m), as ``rng.uniform_array`` draws it."""
    counts = np.empty((max(months - 1, 0), universities), dtype=np.int64)
    total = 0
    for m in range(1, months):  # month 0's stock is the initial one
        h = rng.stream(seed, rng.POP_ARRIVAL, m)
        for u in range(universities):
            n = whole + (1 if rng.uniform_in(h, u) < frac else 0)
            counts[m - 1, u] = n
            total += n
    owners = np.empty(total, dtype=np.int64)
    born = np.empty(total, dtype=np.int64)
    k = 0
    for m in range(1, months):
        for u in range(universities):
            for _ in range(counts[m - 1, u]):
                owners[k] = u
                born[k] = m
                k += 1
    return owners, born


def _initial_ages(seed: int, n: int, span: int) -> np.ndarray:
    """Disclosure months (<= 0) of the initial stock: ages spread evenly over [0, span)."""
    return -np.floor(rng.uniform_array(seed, rng.POP_ACHIEVEMENT, _B, n) * span).astype(np.int64)


def _offsets(sector, sectors):
    return np.searchsorted(sector, np.arange(sectors + 1)).astype(np.int64)


def draw_population(cfg: Config, seed: int) -> Population:
    """Draw the population of ``cfg.scenario`` for ``seed``.

    Every draw about an achievement is keyed by its place among the disclosures (the initial stock, then month by
    month, university by university: ``ach_key``), not by its place in the arrays (sorted by sector, which later
    arrivals shift): a shorter run of a seed is the start of a longer one."""
    sc = cfg.scenario
    S = sc.sectors
    U = sc.universities.n
    A0 = U * sc.universities.achievements_each
    arrived_at, arrived_month = arrival_months(seed, U, sc.months, sc.universities.arrivals_per_month)
    born = np.concatenate([_initial_ages(seed, A0, sc.universities.expiry_months), arrived_month])
    A = len(born)
    F = sc.firms.n
    B = sc.brokers.max

    # universities
    in_pilot = rng.uniform_array(seed, rng.POP_UNIVERSITY, _A, U) < sc.universities.pilot_share
    public = rng.uniform_array(seed, rng.POP_UNIVERSITY, _B, U) < sc.universities.public_share

    # achievements: owner in blocks, then sorted (stably) by sector
    ac = sc.achievements
    owner = np.concatenate([np.repeat(np.arange(U, dtype=np.int64), sc.universities.achievements_each), arrived_at])
    sector = _sector(seed, rng.POP_ACHIEVEMENT, A, S)
    quality = _beta(seed, rng.POP_ACHIEVEMENT, 0, np.full(A, ac.quality_a), np.full(A, ac.quality_b))
    maturity = _beta(seed, rng.POP_ACHIEVEMENT, 1, np.full(A, ac.maturity_a), np.full(A, ac.maturity_b))
    value = _lognormal(seed, rng.POP_ACHIEVEMENT, _C, A, ac.value_median, ac.value_sigma)
    cost = ac.cost_share * value * (1.0 + ac.immaturity_cost * (1.0 - maturity))
    ask = _lognormal(seed, rng.POP_ACHIEVEMENT, _D, A, 1.0, ac.ask_sigma) * ac.ask_share * value
    order = np.argsort(sector, kind="stable")

    # firms
    fc = sc.firms
    f_sector = _sector(seed, rng.POP_FIRM, F, S)
    sme = rng.uniform_array(seed, rng.POP_FIRM, _A, F) < fc.sme_share
    absorptive = _beta(seed, rng.POP_FIRM, 0, np.where(sme, fc.absorptive_sme_a, fc.absorptive_large_a),
                       np.where(sme, fc.absorptive_sme_b, fc.absorptive_large_b))
    cash = _lognormal(seed, rng.POP_FIRM, _C, F, np.where(sme, fc.cash_median_sme, fc.cash_median_large),
                      fc.cash_sigma)
    risk = _lognormal(seed, rng.POP_FIRM, _D, F, np.where(sme, fc.risk_aversion_sme, fc.risk_aversion_large),
                      fc.risk_aversion_sigma)
    # liquidity varies across firms: an asset-rich firm may be short of cash (the one a pledge loan is for)
    assets = cash * _lognormal(seed, rng.POP_FIRM, _E, F, np.where(sme, fc.assets_to_cash_sme, fc.assets_to_cash_large),
                               fc.assets_sigma)
    need_rate = np.where(sme, fc.need_rate_sme, fc.need_rate_large)
    scale = np.where(sme, 1.0, fc.scale_large)
    f_order = np.argsort(f_sector, kind="stable")
    slots = np.where(sme, fc.projects_sme, fc.projects_large).astype(np.int64)[f_order]

    # brokers
    bc = sc.brokers
    b_sector = _sector(seed, rng.POP_BROKER, B, S)
    skill = _beta(seed, rng.POP_BROKER, 0, np.full(B, bc.skill_a), np.full(B, bc.skill_b))

    a_sec = sector[order]
    f_sec = f_sector[f_order]
    return Population(
        seed=seed,
        univ_in_pilot=in_pilot,
        univ_public=public,
        ach_owner=owner[order],
        ach_sector=a_sec,
        ach_quality=quality[order],
        ach_maturity=maturity[order],
        ach_value=yuan_array(value[order]),
        ach_cost=yuan_array(cost[order]),
        ach_ask=yuan_array(ask[order]),
        ach_born=born[order],
        ach_key=order.astype(np.int64),
        ach_of_key=np.argsort(order, kind="stable").astype(np.int64),
        ach_offsets=_offsets(a_sec, S),
        firm_sector=f_sec,
        firm_sme=sme[f_order],
        firm_absorptive=absorptive[f_order],
        firm_cash=yuan_array(cash[f_order]),
        firm_assets=yuan_array(assets[f_order]),
        firm_risk_aversion=risk[f_order],
        firm_need_rate=need_rate[f_order],
        firm_scale=scale[f_order],
        firm_offsets=_offsets(f_sec, S),
        project_firm=np.repeat(np.arange(F, dtype=np.int64), slots),
        project_offsets=np.concatenate([[0], np.cumsum(slots)]).astype(np.int64),
        broker_sector=b_sector,
        broker_skill=skill,
    )


# --------------------------------------------------------------------------- limits of a run
MONEY_EXACT = 2.0**53  # yuan: every balance and flow below this is exact in the float64 series


# what to lower for each part of the money bound (the one-line error names the largest part's keys)
_LOWER_POPULATION = ("scenario.achievements.value_median or value_sigma, scenario.firms.cash_median_sme/large, "
                     "cash_sigma, assets_to_cash_sme/large or assets_sigma, or the numbers of firms and achievements")


def money_terms(cfg: Config, pop: Population) -> list:
    """The parts of :func:`money_bound`, each ``(yuan, the keys to lower)``.

    Each achievement is signed at most ``max_failures + 1`` times (it is abandoned after
    ``max_failures`` failures and stays in use after a success). A contract moves at most
    its value, cost and asking price (scaled by the firm's size) through a bounded number
    of payments: the price (never above the value) with its broker fee, reward and
    inventors' share, the premium (at most ``1 + loading`` claims) and its subsidy, the
    claim, the trial fee and the service fee. Every month, each active broker pays its
    operating cost and each project slot at most one search of the lists; each instrument
    adds its own flows (its ``money_bound``: the expert visits' and events' costs, grants...).
    """
    sc, ins = cfg.scenario, cfg.insurance
    scale = max(1.0, sc.firms.scale_large)
    per_amount = 6.0 + 2.0 * ins.loading
    amounts = (pop.ach_value.astype(np.float64) + pop.ach_cost + pop.ach_ask) * scale
    fixed = 4.0 * cfg.free_trial.success_fee + sc.brokers.fee_fixed
    contracts = float(sc.universities.max_failures + 1)
    flows = contracts * (per_amount * float(amounts.sum()) + fixed * pop.n_achievements)
    broker_costs = float(sc.brokers.max) * sc.months * sc.brokers.monthly_cost
    search_costs = float(pop.n_projects) * sc.months * sc.firms.search_cost
    initial = float(pop.firm_cash.astype(np.float64).sum()) + ins.insurers * ins.initial_reserves
    from ..instruments import INSTRUMENTS

    terms = [(initial + flows, _LOWER_POPULATION),
             (broker_costs, "scenario.brokers.monthly_cost, brokers.max or scenario.months"),
             (search_costs, "scenario.firms.search_cost, projects_sme/large, firms.n or scenario.months")]
    for m in INSTRUMENTS:  # their own flows
        if hasattr(m, "money_bound"):
            terms.append((float(m.money_bound(cfg, pop)), getattr(m, "MONEY_KEYS", f"the amounts of {m.NAME}")))
    return terms


def money_bound(cfg: Config, pop: Population) -> float:
    """An upper bound on the yuan any account or flow can reach in a run of ``pop`` (the sum of
    :func:`money_terms`)."""
    return sum(t for t, _ in money_terms(cfg, pop))


def check_money(cfg: Config, pop: Population) -> None:
    """Refuse a population whose money could leave the range counted exactly (a one-line ConfigError naming the keys
    of the largest part of the bound)."""
    terms = money_terms(cfg, pop)
    bound = sum(t for t, _ in terms)
    if bound >= MONEY_EXACT:
        largest = max(terms, key=lambda t: t[0])
        raise ConfigError(
            f"scenario (seed {pop.seed}): the money of this run could reach {bound:.3g} yuan, beyond the "
            f"{MONEY_EXACT:.3g} yuan counted exactly; lower {largest[1]}")


# bytes per agent of a run, measured on Python 3.11 (peak RSS over 1e3..2e5 agents) with a
# margin of ~1.5x; the base is the process with its libraries and compiled kernels
_BYTES = {
    "mesa": {"base": 4.0e8, "firm": 1500, "project": 800, "achievement": 1000, "broker": 1000},
    "numba": {"base": 3.0e8, "firm": 400, "project": 300, "achievement": 300, "broker": 200},
}


def run_memory(cfg: Config, engine: str) -> dict:
    """Estimated bytes of one run of ``cfg`` with ``engine``, by what takes them (before anything is drawn)."""
    from .results import N_SERIES

    sc = cfg.scenario
    b = _BYTES[engine]
    return {
        # a firm's project slots by its size, at the expected SME share (the bytes per agent carry a ~1.5x margin)
        "scenario.firms.n": sc.firms.n * (b["firm"] + b["project"] * (sc.firms.sme_share * sc.firms.projects_sme
                                                                     + (1.0 - sc.firms.sme_share) * sc.firms.projects_large)),
        "scenario.universities.achievements_each": sc.universities.n * sc.universities.achievements_each
        * b["achievement"],
        "scenario.universities.arrivals_per_month": sc.universities.n * np.ceil(sc.universities.arrivals_per_month)
        * sc.months * b["achievement"],
        "scenario.brokers.max": sc.brokers.max * b["broker"],
        "scenario.sectors": sc.sectors * (64.0 + sc.months * 4 * 8.0 * 3),  # the funnel by sector, copied in outputs
        "scenario.months": sc.months * N_SERIES * 8.0 * 4,
        "base": b["base"],
    }


def available_memory() -> float | None:
    """Bytes of memory available to new processes (Linux ``MemAvailable``); None where unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def run_work(cfg: Config) -> float:
    """An estimate of a run's steps (~1.5e7 a second on the Numba engine, measured here): every month, each project
    slot (the expected number) and the listed achievements it screens when it searches, each achievement, each
    broker's screenings and those of the regime's instruments (their ``work_per_month(cfg)``)."""
    from ..instruments import INSTRUMENTS

    sc = cfg.scenario
    f, u, b = sc.firms, sc.universities, sc.brokers
    slots = f.n * (f.sme_share * f.projects_sme + (1.0 - f.sme_share) * f.projects_large)
    achievements = u.n * (u.achievements_each + math.ceil(u.arrivals_per_month) * sc.months)
    per_month = (slots * (1.0 + f.list_screen) + achievements + b.max * b.capacity * (b.screen + 1)
                 + sum(m.work_per_month(cfg) for m in INSTRUMENTS
                       if m.NAME in cfg.regime.instruments and hasattr(m, "work_per_month")))
    return float(sc.months) * per_month


def check_work(cfg: Config) -> None:
    """Refuse, in one line with the estimate, a run of more than :data:`sim.core.schema.RUN_WORK_MAX` steps."""
    work = run_work(cfg)
    if work > RUN_WORK_MAX:
        months = cfg.scenario.months
        raise ConfigError(f"scenario.months = {months}: a run would take about {work:.3g} steps ({months} months x "
                          f"{work / months:.3g}: project slots and their list screenings, achievements, brokers' and "
                          f"the instruments' screenings a month), more than the {RUN_WORK_MAX:g} a run may take "
                          "(~15 minutes on the Numba engine, hours on Mesa); lower scenario.months, the numbers of "
                          "firms and achievements or the screenings")


def check_memory(cfg: Config, engine: str, processes: int = 1, extra: float = 0.0,
                 extra_key: tuple[str, object] | None = None) -> None:
    """Refuse, with a one-line ConfigError naming the key that weighs most, a run that would not fit in memory.

    ``processes`` runs at once (``workers``), plus ``extra`` bytes the caller keeps (the results of a job), which
    ``extra_key`` (key, value) sizes: it is the key named when those bytes outweigh the runs' own (a job's results
    grow with its seeds, not with the population: ``seeds=100000`` names seeds, not ``scenario.firms.n``).
    """
    parts = run_memory(cfg, engine)
    runs = processes * sum(parts.values())
    need = runs + extra
    have = available_memory()
    if have is None or need <= have:
        check_work(cfg)  # and the time it would take (after memory: a size too large for memory is named by it)
        return
    if extra_key is not None and extra > runs:
        key, value = extra_key
        raise ConfigError(f"{key} = {value}: needs about {need / 1e9:.1f} GB of memory (the results kept, "
                          f"{extra / 1e9:.1f} GB, grow with it) and {have / 1e9:.1f} GB is available; lower it")
    key = max((k for k in parts if k != "base"), key=parts.get)
    value = {"scenario.firms.n": cfg.scenario.firms.n, "scenario.brokers.max": cfg.scenario.brokers.max,
             "scenario.universities.achievements_each": cfg.scenario.universities.achievements_each,
             "scenario.universities.arrivals_per_month": cfg.scenario.universities.arrivals_per_month,
             "scenario.sectors": cfg.scenario.sectors, "scenario.months": cfg.scenario.months}[key]
    raise ConfigError(f"{key} = {value}: needs about {need / 1e9:.1f} GB of memory (engine {engine}"
                      + (f", {processes} processes" if processes > 1 else "")
                      + f") and {have / 1e9:.1f} GB is available; make it smaller"
                      + (" or use fewer workers" if processes > 1 else ""))
