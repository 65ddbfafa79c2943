"""The ledger: every yuan that moves goes through :func:`pay`, from one account to another.

Accounts are one int64 array, ``state.balance``: the firms, universities, inventors,
brokers, government and market of the model, and the accounts instruments add (an
insurer's reserves, ...). Each *class* of accounts (:func:`account_class`) is a slice of
that array; ``state.acct_base[cls] + i`` is the account of the ``i``-th member.

Every payment has a *kind* (:func:`kind`): who pays whom for what, declared once by the
module that makes it. A kind is also a column of the series (this month's total), so
government spend (kinds paid by government), who pays and who gains (kinds by payer and
payee class), the invariant "every balance changes by exactly its flows" and the money
plots are sums over declared kinds, not code per instrument.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .jit import kernel

from . import columns


@dataclass(frozen=True)
class AccountClass:
    """A class of accounts: ``count(cfg, population)`` of them in a run."""

    name: str
    plural: str
    doc: str
    count: Callable
    overdraft: bool      # may go below zero (government and the market are sources of money; brokers pay on credit)
    owner: str
    column: int          # its month-end total, a stock column of the series


@dataclass(frozen=True)
class Kind:
    """A kind of payment: from a ``payer`` class to a ``payee`` class."""

    name: str
    payer: int
    payee: int
    doc: str
    owner: str
    column: int
    metrics: tuple[str, ...]   # run metrics it adds to besides its own total (e.g. "broker_fees")
    sme_column: int = -1       # a payment to or from a firm: its SMEs' part (the rest is large firms')


ACCOUNT_CLASSES: list[AccountClass] = []
KINDS: list[Kind] = []


def account_class(name: str, plural: str, doc: str, count: Callable, overdraft: bool = False,
                  owner: str = "core") -> int:
    """Declare a class of accounts; returns its number (a constant in compiled code)."""
    col = columns.column(f"cash_{plural}", f"cash of the {plural} (yuan)", stock=True, money=True, owner=owner)
    ACCOUNT_CLASSES.append(AccountClass(name, plural, doc, count, overdraft, owner, col))
    return len(ACCOUNT_CLASSES) - 1


def kind(name: str, payer: int, payee: int, doc: str, owner: str = "core", metrics: tuple[str, ...] = ()) -> int:
    """Declare a kind of payment; returns the series column of its monthly total (its number in :func:`pay`)."""
    col = columns.column(name, f"{doc} ({ACCOUNT_CLASSES[payer].name} -> {ACCOUNT_CLASSES[payee].name}, yuan)",
                         money=True, owner=owner, summary=True)
    sme = (columns.column(f"{name}_sme", "of which to or from SMEs (yuan)", money=True, owner=owner)
           if FIRM in (payer, payee) else -1)
    KINDS.append(Kind(name, payer, payee, doc, owner, col, tuple(metrics), sme))
    return col


def class_of(kind_column: int) -> Kind:
    return next(k for k in KINDS if k.column == kind_column)


# --------------------------------------------------------------------------- the model's accounts and payments
FIRM = account_class("firm", "firms", "firms", lambda cfg, pop: pop.n_firms)
UNIVERSITY = account_class("university", "universities", "universities and research institutes",
                           lambda cfg, pop: pop.n_universities)
INVENTORS = account_class("inventors", "inventors", "the inventors of all universities (one account)",
                          lambda cfg, pop: 1)
BROKER = account_class("broker", "brokers", "technology brokers (the whole pool)", lambda cfg, pop: pop.n_brokers,
                       overdraft=True)
GOVERNMENT = account_class("government", "government", "government (one account; a source of money)",
                           lambda cfg, pop: 1, overdraft=True)
MARKET = account_class("market", "market", "the outside economy: pays value, receives costs (one account)",
                       lambda cfg, pop: 1, overdraft=True)

LICENCE_PAYMENTS = kind("licence_payments", FIRM, UNIVERSITY, "licence prices paid at signing")
IMPLEMENTATION_COST = kind("implementation_cost", FIRM, MARKET, "front-end costs of implementations, at signing")
FIRM_VALUE = kind("firm_value", MARKET, FIRM, "value of successful implementations")
SERVICE_FEES = kind("service_fees", FIRM, BROKER, "brokers' service fees at signing", metrics=("broker_fees",))
BROKER_FEES_FIRM = kind("broker_fees_firm", FIRM, BROKER, "firms' part of brokers' fees on contract payments",
                        metrics=("broker_fees",))
BROKER_FEES_UNIVERSITY = kind("broker_fees_university", UNIVERSITY, BROKER,
                              "universities' part of brokers' fees on contract payments", metrics=("broker_fees",))
INVENTOR_INCOME = kind("inventor_income", UNIVERSITY, INVENTORS, "inventors' share of university income")
BROKER_COSTS = kind("broker_costs", BROKER, MARKET, "brokers' operating costs")
SEARCH_COSTS = kind("search_costs", FIRM, MARKET, "firms' costs of searching the published lists")


# each kind's column -> the column of its SMEs' part, or -1 (filled by sim.core.hooks.build once all kinds are declared)
SME_COLUMN = np.zeros(0, dtype=np.int64)


# --------------------------------------------------------------------------- moving money
@kernel
def account(st, cls, i):
    """The account number of member ``i`` of class ``cls``."""
    return st.acct_base[cls] + i


@kernel
def public_body(st, acct):
    """Whether account ``acct`` is a public body's, whose money is public money: a public university's
    (``universities.public_share``). The one rule of the public accounts: every payment into such an account adds
    to ``public_university_retained`` and every payment out of it takes from it, whoever pays (a firm's price or
    penalty, government's reward or grant), so ``public_cost`` nets all of them alike."""
    lo = st.acct_base[UNIVERSITY]
    if lo <= acct < st.acct_base[UNIVERSITY + 1]:
        return np.int64(1) if st.univ_public[acct - lo] else np.int64(0)
    return np.int64(0)


@kernel
def pay(st, series, month, payer, payee, amount, kind):
    """Move ``amount`` yuan from account ``payer`` to account ``payee`` as a payment of ``kind``.

    The only way money moves, in both engines. A payment into or out of a public body's
    account (:func:`public_body`) also moves ``public_university_retained``. With an audit log (``state.audit`` has
    rows), the payment is also written there: month, kind, payer, payee, amount.
    """
    if amount < 0:
        raise ValueError("a payment cannot be negative")
    st.balance[payer] -= amount
    st.balance[payee] += amount
    series[month, kind] += amount
    kept = public_body(st, payee) - public_body(st, payer)   # into a public university: +1; out of one: -1
    if kept != 0:
        series[month, columns.PUBLIC_UNIVERSITY_RETAINED] += kept * amount
    sme = SME_COLUMN[kind]
    if sme >= 0:  # a payment to or from a firm: its size class's part
        lo = st.acct_base[FIRM]
        f = payer - lo if lo <= payer < st.acct_base[FIRM + 1] else payee - lo
        if st.firm_sme[f]:
            series[month, sme] += amount
    n = st.audit_n[0]
    if n < st.audit.shape[0]:
        st.audit[n, 0] = month
        st.audit[n, 1] = kind
        st.audit[n, 2] = payer
        st.audit[n, 3] = payee
        st.audit[n, 4] = amount
        st.audit_n[0] = n + 1


@kernel
def class_total(st, cls):
    """The money held by all accounts of a class."""
    total = np.int64(0)
    balance = st.balance[st.acct_base[cls]:st.acct_base[cls + 1]]   # a view from 0: the loop is vectorised
    for i in range(balance.shape[0]):
        total += balance[i]
    return total
