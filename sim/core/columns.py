"""The columns of a run's per-month series, each declared once, where it is computed.

A run's series is a ``(months, len(COLUMNS))`` float64 array filled by both engines.
Every column is declared here (the model's own) or by the module that fills it (an
instrument's counts, the ledger's flows, :mod:`sim.core.ledger`): :func:`column` returns its
index, a module-level integer that Numba compiles as a constant. Columns are numbered in
the order they are declared (the core's, then the ledger's, then each instrument's in the
order of :data:`sim.instruments.REGISTRY`). Results, invariants, tables and plots read the
declarations, not a hand-kept list.

Flows are this month's; stocks are levels at month end. Counts and yuan are whole
numbers (exact in float64 below 2**53, which :func:`sim.core.population.check_money` ensures).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class Column:
    """One column of the series."""

    name: str
    doc: str
    stock: bool = False            # a level at month end (else a flow of the month)
    money: bool = False            # yuan (else a count, or a mean for mean_belief)
    owner: str = "core"            # the instrument that declares it, or "core"
    summary: bool = False          # its total (a flow) or final value (a stock) is a run metric
    form: Optional[str] = None     # contracts signed in this contract form (their sum is "contracts")
    cover: Optional[str] = None    # contracts signed with this cover (insurance, ...)


COLUMNS: list[Column] = []
_INDEX: dict[str, int] = {}


def column(name: str, doc: str, **kw) -> int:
    """Declare a column; returns its index (declared once: a second declaration is a bug)."""
    if name in _INDEX:
        raise ValueError(f"series column {name!r} is declared twice")
    COLUMNS.append(Column(name, doc, **kw))
    _INDEX[name] = len(COLUMNS) - 1
    return _INDEX[name]


def index(name: str) -> int:
    """The index of a declared column."""
    return _INDEX[name]


def names() -> tuple[str, ...]:
    return tuple(c.name for c in COLUMNS)


# --------------------------------------------------------------------------- the model's own columns
# the funnel (flows)
NEEDS_RAISED = column("needs_raised", "technology needs raised by firms (own or surfaced by others)", summary=True)
NEEDS_SURFACED = column("needs_surfaced", "of which surfaced by a visit (a broker's, an expert's) or a matching event")
NEEDS_EXPIRED = column("needs_expired", "needs given up unmatched")
MATCHES = column("matches", "firm-achievement pairs entering negotiation", summary=True)
MATCHES_BROKERED = column("matches_brokered", "of which proposed by a broker", summary=True)
LIST_SEARCHES = column("list_searches", "searches of the published lists by firms with a need", summary=True)
LIST_FINDS = column("list_finds", "of which found a listed achievement to weigh", summary=True)
NEGOTIATIONS_FAILED = column("negotiations_failed", "negotiations that broke down")
ADOPTERS = column("adopters", "firms signing their first contract of the run (the firms that adopted)", summary=True)
SIGN_DELAY_SUM = column("sign_delay_sum", "months from need to signing, summed over this month's contracts")
SUCCESSES = column("successes", "implementations that succeeded (conversions)", summary=True)
FAILURES = column("failures", "implementations that failed", summary=True)
# the SMEs' part of counts (the rest is large firms')
MATCHES_SME = column("matches_sme", "of the matches, with SMEs")
CONTRACTS_SME = column("contracts_sme", "contracts signed by SMEs")
SUCCESSES_SME = column("successes_sme", "of the successes, SMEs'")
FAILURES_SME = column("failures_sme", "of the failures, SMEs'")
FIRMS_BELOW_START = column("firms_below_start", "share of firms holding less cash than at the start", stock=True,
                           summary=True)
ACCOUNTS_OVERDRAWN = column("accounts_overdrawn", "accounts below zero at the month's end among those that cannot be "
                            "overdrawn (firms, universities, insurers, lenders, ...): always 0, checked", stock=True)
CONTRACT_PAYMENTS = column("contract_payments", "payments firms made to universities under contracts (count)")
UNIVERSITY_INCOME = column("university_income", "universities' receipts net of their share of broker fees "
                           "(before inventors)", money=True, summary=True)
PUBLIC_UNIVERSITY_RETAINED = column("public_university_retained", "money public universities keep (public money): "
                                    "every payment into them (prices, penalties, government's rewards and grants) "
                                    "less every payment out (broker fees, inventors' shares, pilot tests)",
                                    money=True, summary=True)
FIRM_SURPLUS = column("firm_surplus", "change in firms' cash", money=True, summary=True)
BROKER_ENTRIES = column("broker_entries", "brokers entering the market")
BROKER_EXITS = column("broker_exits", "brokers leaving the market")
# stocks at month end
SHELVED = column("shelved", "achievements shelved", stock=True)
NEGOTIATING = column("negotiating", "achievements under negotiation", stock=True)
ON_TRIAL = column("on_trial", "achievements in a trial or other term paid on success", stock=True)
LICENSED = column("licensed", "achievements licensed, being implemented", stock=True)
IN_USE = column("in_use", "achievements in use after a successful implementation", stock=True)
ABANDONED = column("abandoned", "achievements abandoned after repeated failures", stock=True)
NOT_YET = column("not_yet_disclosed", "achievements that arrive later in the run", stock=True)
EXPIRED = column("expired", "achievements that left the portfolio unconverted after universities.expiry_months",
                 stock=True)
USE_ENDED = column("use_ended", "achievements whose use ended after achievements.use_months", stock=True)
MATURING = column("maturing", "achievements in a publicly funded pilot test (maturation grants), not on offer",
                  stock=True)
STATUS_COLUMNS = (SHELVED, NEGOTIATING, ON_TRIAL, LICENSED, IN_USE, ABANDONED, NOT_YET, EXPIRED,
                  USE_ENDED, MATURING)  # in the order of rules' statuses
ARRIVALS = column("arrivals", "achievements disclosed this month", summary=True)
BROKERS_ACTIVE = column("brokers_active", "active brokers", stock=True)
RUNNING_VALUE = column("running_expected_value", "value to firms of the implementations still running, at their "
                       "true chance of success (their costs are paid)", stock=True, money=True, summary=True)
RUNNING_PAYMENTS = column("running_expected_payments", "payments on success the running implementations owe, at "
                          "their true chance of success", stock=True, money=True, summary=True)
RUNNING_SUCCESSES = column("running_expected_successes", "conversions the implementations still running will "
                           "bring, at their true chance of success (expected conversions at the horizon)", stock=True,
                           summary=True)
MEAN_BELIEF = column("mean_belief", "firms' mean belief in the success of university technology", stock=True)
