"""The state of a run, declared once: every agent array (name, dtype, start value, meaning).

Both engines hold the same state, a struct of arrays: in Python a named tuple
(:data:`State`), and for compiled code the same arrays in one Numba struct
(:func:`to_struct`), passed as a single pointer (a named tuple of ~100 arrays would be
~700 machine arguments to every compiled function, and most of the compile time). The
Numba kernels loop over its arrays, and the Mesa agents of :mod:`sim.engines.mesa.agents` are views of
one row of it. The model's own arrays are declared here;
an instrument declares the arrays it adds (an insurer's claims record, a contract's
insured amount, ...) in its own module with :func:`field` and, for a new kind of agent,
:func:`agent`. :func:`freeze` builds the named tuples once every instrument is imported
(:mod:`sim.instruments` does it).

Kernel parameters (:data:`Params`) are the scenario's numbers the month needs, plus one
named tuple per instrument (``p.insurance.coverage``), with ``on`` telling whether the
run's regime lists it.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from collections import namedtuple
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from numba import typeof, types
from numba.core import cgutils
from numba.experimental import structref
from numba.extending import intrinsic

from . import rules
from .jit import entry


@dataclass(frozen=True)
class Field:
    name: str
    agent: str          # whose array: one value per member of this agent kind
    dtype: Any
    init: Any           # start value, or a function (cfg, population) -> array
    doc: str
    owner: str


AGENTS: dict[str, Callable] = {}     # agent kind -> count(cfg, population)
FIELDS: list[Field] = []
State = None     # the named tuple of every field (built by freeze)
Params = None    # the named tuple of the kernel parameters (built by freeze)
_INSTRUMENTS: tuple = ()


def agent(name: str, count: Callable) -> None:
    """Declare a kind of agent, ``count(cfg, population)`` of them in a run."""
    if name in AGENTS:
        raise ValueError(f"agent kind {name!r} is declared twice")
    AGENTS[name] = count


def field(name: str, agent: str, dtype, init, doc: str, owner: str = "core") -> None:
    """Declare an array of the state: one ``dtype`` value per ``agent``, starting at ``init``."""
    if any(f.name == name for f in FIELDS):
        raise ValueError(f"state field {name!r} is declared twice")
    if State is not None:
        raise RuntimeError(f"state field {name!r} declared after the state was built")
    FIELDS.append(Field(name, agent, dtype, init, doc, owner))


# --------------------------------------------------------------------------- the model's agents
agent("firm", lambda cfg, pop: pop.n_firms)
agent("project", lambda cfg, pop: pop.n_projects)   # a firm's project slots (sim.core.population)
agent("achievement", lambda cfg, pop: pop.n_achievements)
agent("university", lambda cfg, pop: pop.n_universities)
agent("broker", lambda cfg, pop: pop.n_brokers)
agent("sector", lambda cfg, pop: cfg.scenario.sectors)
agent("one", lambda cfg, pop: 1)
agent("sector_edge", lambda cfg, pop: cfg.scenario.sectors + 1)

# scratch rows of the contract decision: the forms and the covers on offer to one pair
MAX_OFFERS = 8
OFFER_FORM, OFFER_AT_SIGN, OFFER_ON_SUCCESS, OFFER_BARGAINED, OFFER_NEGOTIATION, OFFER_TERM, OFFER_STATUS = range(7)
# OFFER_BARGAINED: 0 fixed payments; the price at signing is bargained (a licence); the payment on success is
# bargained (a use-first trial: OFFER_ON_SUCCESS holds the university's reservation payment on success)
BARGAIN_AT_SIGN, BARGAIN_ON_SUCCESS = 1.0, 2.0
MAX_COVERS = 10
COVER_OWNER, COVER_PREMIUM, COVER_REFUND, COVER_AUX = range(4)   # COVER_AUX.. : the instrument's own terms
N_COVER_AUX = 4
# scratch row of the support offered to one decision (sim.core.hooks.offer_support): credit (yuan, interest over the
# term, and the collateral beyond the firm's cash a lender may seize on a default: the firm's liability beyond its
# cash), then a (share, cap in yuan over the contract) pair per public co-payment of the firm's technology-service
# payments, one slot per instrument that declares one (copayment): several co-pay one decision side by side
SUPPORT_CREDIT, SUPPORT_CREDIT_RATE, SUPPORT_COLLATERAL = range(3)
SUPPORT_COPAYS = 3
COPAYMENTS: list = []   # (owner, dotted key of its rate), by slot


def copayment(owner: str, rate_key: str) -> int:
    """Declare a public co-payment of the firm's technology-service payments (an innovation voucher's kind of support)
    by instrument ``owner``, its share set by the config key ``rate_key``; returns its slot in ``st.support``
    (:func:`sim.core.public.offer_copayment`). The shares of the co-payments of a regime must sum below 1 (checked
    with the config), so that together they never pay more than the payments."""
    if State is not None:
        raise RuntimeError(f"{owner}: declare a co-payment at import, before the state is built")
    COPAYMENTS.append((owner, rate_key))
    return len(COPAYMENTS) - 1


def support_size() -> int:
    """The length of ``st.support``: credit, then a pair per declared co-payment."""
    return SUPPORT_COPAYS + 2 * len(COPAYMENTS)


def _pop(name):
    return lambda cfg, pop: getattr(pop, name)


def _prior(cfg, pop, success):
    f = cfg.scenario.firms
    return np.full(pop.n_firms, (f.prior_success if success else 1.0 - f.prior_success) * f.prior_strength)


# the population (read only)
for _name in ("univ_in_pilot", "univ_public", "ach_owner", "ach_sector", "ach_quality", "ach_value", "ach_ask", "ach_born",
              "ach_key", "ach_of_key", "ach_offsets", "firm_sector", "firm_absorptive", "firm_risk_aversion", "firm_need_rate", "firm_scale", "firm_sme", "firm_offsets", "project_firm", "project_offsets", "broker_sector",
              "broker_skill"):
    field(_name, "population", None, _pop(_name), "drawn by sim.core.population")
# firms
# a firm's projects: each slot holds one need, negotiation or implementation at a time
field("project_state", "project", np.int64, rules.IDLE, "IDLE, NEED, NEGOTIATING_FIRM or IMPLEMENTING")
field("project_need_month", "project", np.int64, -1, "month the project's open need arose")
field("firm_month_successes", "firm", np.float64, 0.0, "the firm's implementations that succeeded this month (all its "
      "projects'): what it learns from itself")
field("firm_month_failures", "firm", np.float64, 0.0, "same, that failed")
field("firm_assets", "firm", np.int64, lambda cfg, pop: pop.firm_assets.copy(),
      "net assets beyond cash (yuan): wealth besides cash, pledgeable; less what a lender seized")
field("firm_alpha", "firm", np.float64, lambda cfg, pop: _prior(cfg, pop, True), "belief Beta(alpha, beta)")
field("firm_beta", "firm", np.float64, lambda cfg, pop: _prior(cfg, pop, False), "")
field("firm_signed", "firm", np.int64, 0, "contracts the firm has signed so far (its first makes it an adopter)")
# each project's contract, from negotiation to settlement
field("c_ach", "project", np.int64, -1, "achievement")
field("c_broker", "project", np.int64, -1, "broker who proposed it, or -1")
field("c_form", "project", np.int64, 0, "contract form (sim.core.contracts.FORMS)")
field("c_at_sign", "project", np.int64, 0, "paid to the university at signing (a licence's price)")
field("c_on_success", "project", np.int64, 0, "paid to the university if the implementation succeeds")
field("c_negotiation", "project", np.float64, 0.0, "mean months to conclude the negotiation (before a broker's speed-up)")
field("c_term", "project", np.int64, 0, "months from signing to the outcome")
field("c_status", "project", np.int64, 0, "the achievement's status once signed")
field("c_value", "project", np.int64, 0, "value of success to this firm")
field("c_cost", "project", np.int64, 0, "implementation cost for this firm")
field("c_chance", "project", np.float64, 0.0, "true success chance of the pair")
field("c_opened", "project", np.int64, 0, "month negotiation began")
field("c_borrowed", "project", np.int64, 0, "borrowed to afford the payments at signing (credit on offer, st.support)")
field("c_own_cash", "project", np.int64, 0, "the firm's own cash its payments at signing need (they less its loan)")
field("c_ends", "project", np.int64, -1, "month the outcome is known")
field("c_reported", "project", np.bool_, False, "the outcome as the university learns it: the success, unless a "
      "trial's false failure report went undetected (set at settlement, before the instruments' on_settle)")
# achievements, universities, brokers
field("ach_status", "achievement", np.int64, lambda cfg, pop: np.where(pop.ach_born > 0, rules.NOT_YET, rules.SHELVED),
      "SHELVED ... USE_ENDED (sim.core.rules)")
# maturity and cost as the run goes (a maturation grant changes them; a copy of the population's per run)
field("ach_maturity", "achievement", np.float64, lambda cfg, pop: pop.ach_maturity.copy(),
      "0 = embryonic, 1 = ready to use (drawn by sim.core.population; a maturation grant raises it)")
field("ach_cost", "achievement", np.int64, lambda cfg, pop: pop.ach_cost.copy(),
      "implementation cost in an SME, yuan (drawn by sim.core.population; falls as the achievement matures)")
field("listed", "achievement", np.int64, -1, "the published lists: the shelved achievements by sector, ascending "
      "within a sector, as they stood when the month's search began (sim.core.contracts.publish)")
field("listed_offsets", "sector_edge", np.int64, 0, "sector s's listed achievements are listed[listed_offsets[s]:"
      "listed_offsets[s + 1]]")
field("ach_declined", "achievement", np.int64, 0, "times a firm weighed it and found no contract worth signing")
field("ach_in_use_since", "achievement", np.int64, -1, "month its implementation succeeded, or -1")
field("ach_failures", "achievement", np.int64, 0, "failed implementations")
field("ach_attempts", "achievement", np.int64, 0, "implementations settled (keys each attempt's outcome draw)")
field("univ_opened", "university", np.int64, 0, "negotiations the transfer office opened this month")
field("univ_reservation", "university", np.float64,
      lambda cfg, pop: np.full(pop.n_universities, cfg.scenario.universities.reservation_share),
      "its lowest acceptable price as a share of the asking price (an instrument may change it)")
field("univ_capacity", "university", np.int64,
      lambda cfg, pop: np.full(pop.n_universities, cfg.scenario.universities.tto_capacity, dtype=np.int64),
      "negotiations its transfer office can open per month (an instrument may change it)")
field("univ_success_bonus", "university", np.float64, 0.0,
      "what a conversion of its achievement is worth to it besides the payments (an appraisal reward), yuan")
field("broker_active", "broker", np.bool_, lambda cfg, pop: np.arange(pop.n_brokers) < cfg.scenario.brokers.initial,
      "in the market")
field("broker_entered", "broker", np.int64, 0, "month of entry")
field("broker_avg_profit", "broker", np.float64, 0.0, "moving average of monthly profit")
field("broker_income", "broker", np.int64, 0, "this month's fees and rewards")
field("next_entrant", "one", np.int64, lambda cfg, pop: np.array([cfg.scenario.brokers.initial]),
      "the next broker of the pool to enter")
field("firm_cash_start", "firm", np.int64, lambda cfg, pop: pop.firm_cash.copy(), "each firm's cash at the start")
field("firm_cash0", "one", np.int64, lambda cfg, pop: np.array([pop.firm_cash.sum()]), "firms' cash at the start")
# government
field("gov_committed", "one", np.int64, 0, "paid this budget year or reserved for a later payment (yuan)")
field("public_offered", "one", np.int64, 0, "scratch: the most public money offered to the decision being weighed "
      "(each instrument offering some adds its largest offer, so that later offers leave room for it in the budget)")
field("gov_reserved", "one", np.int64, 0, "promised and not yet paid (yuan): counted in the year of its payment too")
# learning: this month's outcomes by sector
field("sector_successes", "sector", np.float64, 0.0, "")
field("sector_failures", "sector", np.float64, 0.0, "")
# the ledger
field("balance", "account", np.int64, None, "every account's money (sim.core.ledger)")
field("acct_base", "account_class", np.int64, None, "first account of each class, and the total")
field("audit", "audit", np.int64, None, "the audit log of payments: month, kind, payer, payee, amount")
field("audit_n", "one", np.int64, 0, "rows of the audit log used")
# the contract decision's scratch rows
# the funnel by sector, month by month (a per-run output beside the series: sectors are a scenario size)
SECTOR_MATCHES, SECTOR_CONTRACTS, SECTOR_SUCCESSES, SECTOR_FAILURES = range(4)
SECTOR_SERIES_NAMES = ("matches", "contracts", "successes", "failures")
field("sector_series", "scratch", np.float64,
      lambda cfg, pop: np.zeros((cfg.scenario.months, cfg.scenario.sectors, len(SECTOR_SERIES_NAMES))),
      "matches, contracts, successes and failures by month and the firm's sector")


# every contract signed, one by one (a per-run output beside the series): bounded before the run, as each achievement
# is signed at most max_failures + 1 times (sim.core.population.money_bound); sim.core.contracts.sign refuses to pass the bound
def deal_bound(cfg, n_achievements: int) -> int:
    """The most contracts a run can sign: ``max_failures + 1`` per achievement."""
    return int(n_achievements) * (cfg.scenario.universities.max_failures + 1)


field("deal_value", "scratch", np.int64, lambda cfg, pop: np.zeros(deal_bound(cfg, pop.n_achievements), np.int64),
      "each contract's value, in the order signed: the payments to the university agreed at signing (at signing and "
      "on success: a licence's price, a trial's payment on success, a royalty's upfront share and total), yuan")
field("deal_form", "scratch", np.int64, lambda cfg, pop: np.zeros(deal_bound(cfg, pop.n_achievements), np.int64),
      "each contract's form (sim.core.forms.FORMS), in the order signed")
field("deal_n", "one", np.int64, 0, "contracts signed so far (rows of deal_value used)")
field("offers", "scratch", np.float64, lambda cfg, pop: np.zeros((MAX_OFFERS, 7)), "forms on offer to a pair")
field("covers", "scratch", np.float64, lambda cfg, pop: np.zeros((MAX_COVERS, 3 + N_COVER_AUX)),
      "covers on offer to a pair")
field("support", "scratch", np.float64, lambda cfg, pop: np.zeros(support_size()),
      "support offered to a pair's decision")


# --------------------------------------------------------------------------- kernel parameters
_CORE_PARAMS = (
    # firms
    ("need_patience", "firms.need_patience"), ("self_search_prob", "firms.self_search_prob"),
    ("list_match", "firms.list_match"), ("list_screen", "firms.list_screen"), ("search_cost", "firms.search_cost"),
    ("self_noise", "firms.self_noise"), ("belief_weight", "firms.belief_weight"), ("peer_weight", "firms.peer_weight"),
    # universities
    ("bargaining_power", "universities.bargaining_power"), ("inventor_share", "universities.inventor_share"),
    ("max_failures", "universities.max_failures"), ("univ_risk_aversion", "universities.risk_aversion"),
    ("expiry_months", "universities.expiry_months"), ("use_months", "achievements.use_months"),
    ("immaturity_cost", "achievements.immaturity_cost"),
    ("discount_rate", "discount_rate"),
    # success and negotiation
    ("maturity_floor", "success.maturity_floor"), ("absorptive_floor", "success.absorptive_floor"),
    ("fit_floor", "success.fit_floor"), ("months_licence", "negotiation.months_licence"),
    ("breakdown_hazard", "negotiation.breakdown_hazard"), ("broker_speedup", "negotiation.broker_speedup"),
    ("implementation_months", "negotiation.implementation_months"),
    # brokers
    ("capacity", "brokers.capacity"), ("noise", "brokers.noise"), ("screen", "brokers.screen"),
    ("surface_prob", "brokers.surface_prob"), ("fee_rate", "brokers.fee_rate"), ("fee_fixed", "brokers.fee_fixed"),
    ("fee_firm_share", "brokers.fee_firm_share"), ("monthly_cost", "brokers.monthly_cost"),
    ("profit_memory", "brokers.profit_memory"), ("exit_loss", "brokers.exit_loss"),
    ("grace_months", "brokers.grace_months"), ("entry_candidates", "brokers.entry_candidates"),
    ("entry_max", "brokers.entry_max"), ("entry_sensitivity", "brokers.entry_sensitivity"),
)


def _typed(value, typ):
    """A config value as the kernels see it: int64, float64 or bool."""
    if typ is bool:
        return bool(value)
    if typ is int:
        return np.int64(value)
    return float(value)


def _get(obj, dotted):
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


@functools.lru_cache(maxsize=None)
def _hints(cls) -> dict:
    """A config class's type hints (typing.get_type_hints evaluates every annotation: ~0.2 ms a class, per run)."""
    return typing.get_type_hints(cls)


def instrument_params(module, cfg):
    """The kernel parameters of one instrument: ``on`` and its config section, typed."""
    section = getattr(cfg, module.NAME)
    hints = _hints(type(section))
    values = [np.int64(f.metadata["choices"].index(getattr(section, f.name))) if hints[f.name] is str  # its index
              else _typed(getattr(section, f.name), hints[f.name]) for f in dataclasses.fields(section)]
    return module.KernelParams(module.NAME in cfg.regime.instruments, *values)


def make_params(cfg, seed: int, n_achievements: int):
    """The scalars of ``cfg`` the kernels need, as :data:`Params`."""
    sc = cfg.scenario
    hints = {}
    core = []
    for name, dotted in _CORE_PARAMS:
        section, _, key = dotted.rpartition(".")
        obj = _get(sc, section) if section else sc
        if type(obj) not in hints:
            hints[type(obj)] = _hints(type(obj))
        core.append(_typed(getattr(obj, key), hints[type(obj)][key]))
    budget = -1.0 if cfg.government.annual_budget is None else float(cfg.government.annual_budget)
    return Params(np.int64(seed), np.int64(sc.months), np.int64(n_achievements), *core, budget,
                  *(instrument_params(m, cfg) for m in _INSTRUMENTS))


# --------------------------------------------------------------------------- building the state
def freeze(instruments) -> None:
    """Build :data:`State` and :data:`Params` once every instrument has declared its fields."""
    global State, Params, _INSTRUMENTS
    if State is not None:
        return
    _INSTRUMENTS = tuple(instruments)
    for m in _INSTRUMENTS:
        names = ["on"] + [f.name for f in dataclasses.fields(m.Params)]
        m.KernelParams = namedtuple(f"{m.NAME}_params", names, module=m.__name__)
        setattr(m, f"{m.NAME}_params", m.KernelParams)  # picklable by name (Numba's cache index)
    State = namedtuple("State", [f.name for f in FIELDS], module=__name__)
    Params = namedtuple("Params", ["seed", "months", "n_achievements", *(n for n, _ in _CORE_PARAMS), "budget",
                                   *(m.NAME for m in _INSTRUMENTS)], module=__name__)
    globals()["State"], globals()["Params"] = State, Params


def counts(cfg, pop) -> dict[str, int]:
    """How many of each agent kind a run of ``pop`` has."""
    return {name: int(count(cfg, pop)) for name, count in AGENTS.items()}


_POOLED = ("firm", "project")   # the agents whose arrays (with a constant start) share one allocation: _one_block


def _one_block(specs):
    """Arrays of ``(length, dtype, start value)``, as views of one allocation (each 64-byte aligned), filled.

    A run's arrays per firm and per project slot are most of its state (~65 MB at 100,000
    firms); allocated one by one, every page of each is a fault of its own when first filled,
    while one large block gets huge pages (NumPy advises them for blocks of 4 MB or more):
    ~3x faster to allocate and fill. The arrays are the same to everything else (contiguous,
    same dtypes, so the same compiled code); they live as long as any one of them does.
    """
    sizes = [(length * np.dtype(dtype).itemsize + 63) // 64 * 64 for length, dtype, _ in specs]
    block = np.empty(sum(sizes) + 64, dtype=np.uint8)
    start = -block.ctypes.data % 64
    arrays = []
    for (length, dtype, init), size in zip(specs, sizes):
        arr = block[start:start + length * np.dtype(dtype).itemsize].view(dtype)
        arr.fill(init)
        arrays.append(arr)
        start += size
    return arrays


def new_state(cfg, pop, audit_rows: int = 0):
    """The month-0 state of population ``pop`` under ``cfg`` (the same for both engines)."""
    from . import ledger

    n = counts(cfg, pop)
    sizes = [int(c.count(cfg, pop)) for c in ledger.ACCOUNT_CLASSES]
    base = np.zeros(len(sizes) + 1, dtype=np.int64)
    base[1:] = np.cumsum(sizes)
    balance = np.zeros(base[-1], dtype=np.int64)
    balance[base[ledger.FIRM]:base[ledger.FIRM + 1]] = pop.firm_cash
    for m in _INSTRUMENTS:
        if hasattr(m, "initial_balances"):
            m.initial_balances(cfg, balance, base)
    special = {"balance": balance, "acct_base": base, "audit": np.zeros((audit_rows, 5), dtype=np.int64)}
    pooled = [f for f in FIELDS if f.agent in _POOLED and f.name not in special and not callable(f.init)]
    special.update(zip((f.name for f in pooled), _one_block([(n[f.agent], f.dtype, f.init) for f in pooled])))
    values = []
    for f in FIELDS:
        if f.name in special:
            values.append(special[f.name])
        elif callable(f.init):
            arr = f.init(cfg, pop)
            values.append(arr.copy() if f.agent != "population" else arr)
        else:
            values.append(np.full(n[f.agent], f.init, dtype=f.dtype))
    arrays = State(*values)
    for m in _INSTRUMENTS:  # an instrument on in this run may change the start (universities' reservation prices)
        if hasattr(m, "initial_state") and m.NAME in cfg.regime.instruments:
            m.initial_state(cfg, arrays)
    return arrays


# --------------------------------------------------------------------------- the struct compiled code sees
@structref.register
class StructType(types.StructRef):
    """Numba type of the state struct: a field per array of :data:`State`."""

    def preprocess_fields(self, fields):
        return tuple((name, types.unliteral(typ)) for name, typ in fields)


class Struct(structref.StructRefProxy):
    """The state as compiled code sees it (Python code reads the arrays of :data:`State`)."""


structref.define_boxing(StructType, Struct)


@intrinsic
def _struct_of(typingctx, values):
    """A new struct holding the arrays of the named tuple ``values`` (one field each, same names)."""
    from numba.experimental.jitclass.base import imp_dtor

    inst_type = StructType(list(zip(values.fields, values.types)))

    def codegen(context, builder, signature, args):
        model = context.data_model_manager[inst_type.get_data_type()]
        alloc_type = model.get_value_type()
        meminfo = context.nrt.meminfo_alloc_dtor(
            builder, context.get_constant(types.uintp, context.get_abi_sizeof(alloc_type)),
            imp_dtor(context, builder.module, inst_type))
        data_pointer = builder.bitcast(context.nrt.meminfo_data(builder, meminfo), alloc_type.as_pointer())
        builder.store(cgutils.get_null_value(alloc_type), data_pointer)
        utils = structref._Utils(context, builder, inst_type)
        inst = utils.new_struct_ref(meminfo)
        data = utils.get_data_struct(inst._getvalue())
        for i, (name, typ) in enumerate(zip(values.fields, values.types)):
            value = builder.extract_value(args[0], i)
            context.nrt.incref(builder, typ, value)
            setattr(data, name, value)
        return inst._getvalue()

    return inst_type(values), codegen


@entry
def _to_struct(values):
    return _struct_of(values)


def struct_type(arrays) -> StructType:
    """The Numba type of ``to_struct(arrays)``, known without compiling anything."""
    nt = typeof(arrays)
    return StructType(list(zip(nt.fields, nt.types)))


def to_struct(arrays) -> Struct:
    """The struct compiled code works on, holding the very arrays of ``arrays`` (a :data:`State`; or the values of
    a :data:`Params`)."""
    return _to_struct(arrays)
