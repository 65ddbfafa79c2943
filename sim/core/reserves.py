"""Agents that hold reserves and withdraw below a floor (insurers, lenders): declared once, the rules written once.

An insurer writes policies and a bank lends against patents from reserves of their own; each
starts with ``initial_reserves``, prices from a prior and its own experience, and stops for good
once its worth falls below ``min_reserves`` (it still settles what is running). The pattern is
the same for any agent that carries a risk from its own money (a guarantee company, ...), so it is
declared here, once, by :class:`Holders`:

* at import: the agent kind (:func:`sim.core.state.agent`), its account class, whose balances are
  its reserves (:func:`sim.core.ledger.account_class`), and its state: ``<prefix>_active``
  (in business), ``<prefix>_<events>`` and ``<prefix>_observed`` (its experience);
  :meth:`Holders.active_column` its stock column ``<plural>_active``;
* the rules, compiled (both engines call them): :func:`in_business` (the floor),
  :func:`withdraw` (the month-end step: below the floor, out for good), :func:`experience_rate`
  (a prior of weight ``prior_strength`` updated by what it has seen), :func:`reserves_of`;
* the month-0 reserves (:meth:`Holders.initial_balances`), the invariant that a withdrawn one
  never returns (:meth:`Holders.check_series`) and the run metrics ``<kind>_reserves_final`` and
  ``<plural>_withdrawn`` (:meth:`Holders.summarize`);
* its Mesa agent's base, :class:`ReserveHolder` (``reserves``, ``worth``, ``active``, ...).

The instrument's ``Params`` holds ``initial_reserves`` and ``min_reserves`` (and ``prior_strength``
if it learns); what it does while in business (write, lend) and how it prices stay in its module.
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from . import columns, ledger, rules, state, views
from .jit import entry, kernel


# --------------------------------------------------------------------------- the rules
@entry
def in_business(active, worth, min_reserves):
    """Whether it writes (lends) now: still active and its worth at least its minimum reserves. Once out, out for
    good: a holder that withdrew does not come back when its reserves recover (its book is run off)."""
    return active and worth >= min_reserves


@entry
def experience_rate(prior_rate, prior_strength, events, observed):
    """Its estimate of how often the risk it carries falls due (an insured event, a default): its prior rate with
    the weight of ``prior_strength`` observations, updated by ``events`` among the ``observed`` it has settled,
    ``(prior_rate x prior_strength + events) / (prior_strength + observed)``."""
    return (prior_rate * prior_strength + events) / (prior_strength + observed)


@kernel
def reserves_of(st, account_class, i):
    """The reserves of member ``i``: the cash in its account of ``account_class``."""
    return st.balance[ledger.account(st, account_class, i)]


@kernel
def withdraw(st, account_class, active, min_reserves, held=None):
    """The month-end step: each member still active whose worth (its reserves, plus ``held[i]`` if given: money it is
    owed counted at face value, a lender's loans) is below ``min_reserves`` withdraws for good."""
    for i in range(active.shape[0]):
        if held is None:
            active[i] = in_business(active[i], reserves_of(st, account_class, i), min_reserves)
        else:
            active[i] = in_business(active[i], reserves_of(st, account_class, i) + held[i], min_reserves)


# --------------------------------------------------------------------------- the declaration
HOLDERS: list["Holders"] = []   # every kind declared, in the order of the registry (for tests and docs)


class Holders:
    """A kind of agent that holds reserves and withdraws below a floor, declared at import by its instrument.

    ``kind``, ``plural``, ``doc`` and ``count(cfg, population)`` name it, as an agent kind and an account class;
    ``section`` is its instrument's config section (``initial_reserves``, ``min_reserves``, ``prior_strength``);
    its state fields are ``<prefix>_active``, ``<prefix>_<events>`` (what it learns from: an insurer's insured
    events, a lender's defaults) and ``<prefix>_observed`` (what it has settled); ``held``, the state field of
    money it is owed that counts in its worth (a lender's principal outstanding), if any; ``does``, what it does
    while in business ("writes policies"), for messages.
    """

    def __init__(self, kind: str, plural: str, doc: str, count: Callable, *, section: str, prefix: str,
                 does: str, active_doc: str, events: str, events_doc: str, observed_doc: str,
                 held: Optional[str] = None):
        self.kind, self.plural, self.section, self.does, self.held = kind, plural, section, does, held
        self.active, self.events, self.observed = f"{prefix}_active", f"{prefix}_{events}", f"{prefix}_observed"
        self.docs = {"active": active_doc, events: events_doc, "observed": observed_doc}
        self.column = -1
        state.agent(kind, count)
        self.account = ledger.account_class(kind, plural, doc, count, owner=section)
        state.field(self.active, kind, np.bool_, True, active_doc, owner=section)
        state.field(self.events, kind, np.int64, 0, events_doc, owner=section)
        state.field(self.observed, kind, np.int64, 0, observed_doc, owner=section)
        HOLDERS.append(self)

    def active_column(self, doc: str) -> int:
        """Declare its stock column ``<plural>_active`` (how many are in business at month end; the instrument fills
        it in its ``record`` hook) where the instrument declares its other columns; returns its index."""
        self.column = columns.column(f"{self.plural}_active", doc, stock=True, owner=self.section)
        return self.column

    def params(self, cfg):
        """Its instrument's section of ``cfg``."""
        return getattr(cfg, self.section)

    def initial_balances(self, cfg, balance, acct_base) -> None:
        """Month 0: each starts with ``initial_reserves`` (the instrument's ``initial_balances`` hook)."""
        balance[acct_base[self.account]:acct_base[self.account + 1]] = rules.yuan(self.params(cfg).initial_reserves)

    def summarize(self, s) -> dict:
        """``<kind>_reserves_final`` (their reserves at the end) and ``<plural>_withdrawn`` (in business at the end of
        month 0 less at the end of the run), one array over the runs each (``s``: ``(runs, months, columns)``)."""
        return {f"{self.kind}_reserves_final": s[:, -1, ledger.ACCOUNT_CLASSES[self.account].column],
                f"{self.plural}_withdrawn": s[:, 0, self.column] - s[:, -1, self.column]}

    def check_series(self, s) -> None:
        """A withdrawn one never returns: the count in business never rises."""
        from .results import InvariantError, failed, first_month, runs_of

        bad = np.diff(runs_of(s)[:, :, self.column]) > 0
        if failed(bad):
            raise InvariantError(f"month {first_month(bad) + 1}: a withdrawn {self.kind} {self.does} again")


# --------------------------------------------------------------------------- its agent in the Mesa engine
class ReserveHolder(views.InstrumentAgent):
    """The base of a reserve holder's Mesa agent: set ``holders`` (its :class:`Holders`) in the subclass, which then
    has the views ``active``, ``observed`` and one named after its events (``failures``, ``defaults``), besides the
    properties below. Its decisions stay the instrument's hooks, shared with the Numba engine."""

    holders: Holders

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        h = cls.__dict__.get("holders")
        if h is not None:
            for name, field in zip(h.docs, (h.active, h.events, h.observed)):
                if name not in cls.__dict__:
                    setattr(cls, name, views.column(field, h.docs[name]))

    @property
    def reserves(self) -> int:
        """Its reserves: the cash in its account."""
        return self.cash(self.holders.account)

    @property
    def worth(self) -> int:
        """What its floor is compared with: its reserves, plus the money it is owed if that counts (``held``)."""
        held = self.holders.held
        return self.reserves + (0 if held is None else int(getattr(self.model.arrays, held)[self.index]))

    @property
    def in_business(self) -> bool:
        """Whether it writes (lends) now (:func:`in_business`)."""
        return bool(in_business(bool(self.active), self.worth, self.holders.params(self.model.cfg).min_reserves))

    def experience(self, prior_rate: float) -> float:
        """Its estimate from ``prior_rate`` and its experience (:func:`experience_rate`)."""
        h = self.holders
        return float(experience_rate(prior_rate, h.params(self.model.cfg).prior_strength,
                                     getattr(self.model.arrays, h.events)[self.index],
                                     getattr(self.model.arrays, h.observed)[self.index]))
