"""Mesa agents of the reference engine: firms, universities, brokers, and the achievements they trade.

An agent is a view of its row of the shared state (:mod:`sim.core.state`): ``project.state`` reads
and writes ``state.project_state[project.index]``. Its decisions are the shared operations of
:mod:`sim.core.contracts` (the same compiled functions the Numba kernels call), so the two
engines cannot disagree on a decision, a price or a payment; the model (:mod:`sim.engines.mesa.model`)
decides who acts when, in the canonical order.

Achievements are plain views held by their university, not Mesa agents: they make no
decisions of their own, and there are many of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import mesa

from ...core import columns as C
from ...core import contracts, ledger, rules
from ...core.rules import IDLE
from ...core.views import InstrumentAgent, column  # noqa: F401  (InstrumentAgent: re-exported for instruments' agents)

if TYPE_CHECKING:  # pragma: no cover
    from .model import TransferModel


class Achievement:
    """A patent or bundle of a university: what is sold, tried or shelved."""

    status = column("ach_status", "SHELVED, NEGOTIATING, ON_TRIAL, LICENSED, IN_USE or ABANDONED")
    failures = column("ach_failures", "failed implementations")

    def __init__(self, model: "TransferModel", index: int, owner: "University"):
        self.model = model
        self.index = index
        self.owner = owner

    @property
    def shelved(self) -> bool:
        return self.status == rules.SHELVED


class Firm(mesa.Agent):
    """A firm with technology needs, beliefs about university technology, cash, and a few project slots: each
    :class:`Project` carries one need from its rise through negotiation to the implementation's outcome."""

    need_rate = column("firm_need_rate", "monthly chance a need arises in the firm while it has a project slot free")
    sector = column("firm_sector")

    def __init__(self, model: "TransferModel", index: int):
        super().__init__(model)
        self.index = index
        self.projects: list[Project] = []

    @property
    def cash(self) -> int:
        arrays = self.model.arrays
        return int(arrays.balance[arrays.acct_base[ledger.FIRM] + self.index])

    @property
    def belief(self) -> float:
        arrays = self.model.arrays
        return rules.belief_mean(arrays.firm_alpha[self.index], arrays.firm_beta[self.index])

    def raise_needs(self, u: float) -> None:
        """The month's needs (``u``: the firm's uniform draw): open needs past their patience are given up, and a new
        need arises, with chance ``need_rate``, in a slot that was idle when the month began (if any)."""
        m = self.model
        free = contracts.firm_project(m.st, self.index, IDLE)   # before any of its needs expires below
        offsets = m.arrays.project_offsets
        m.series[m.month, C.NEEDS_EXPIRED] += contracts.expire_needs(m.p, m.st, m.month, offsets[self.index],
                                                                      offsets[self.index + 1])
        if free >= 0 and u < self.need_rate:
            self.projects[free - self.projects[0].index].raise_need()

    def visited_project(self) -> Optional["Project"]:
        """The slot a visitor deals with: its first with an open need, else its first idle one, else None."""
        j = contracts.visited_project(self.model.st, self.index)
        return self.projects[j - self.projects[0].index] if j >= 0 else None


class Project(mesa.Agent):
    """One of a firm's technology projects: a need, the search for an achievement to meet it, the negotiation, and
    the implementation until its outcome is known. A firm runs as many at once as it has slots."""

    state = column("project_state", "IDLE, NEED, NEGOTIATING_FIRM or IMPLEMENTING")
    need_month = column("project_need_month")
    ends = column("c_ends", "month the current implementation's outcome is known")

    def __init__(self, model: "TransferModel", index: int, firm: Firm):
        super().__init__(model)
        self.index = index
        self.firm = firm

    def raise_need(self, surfaced: bool = False) -> None:
        m = self.model
        contracts.raise_need(m.st, m.series, m.month, self.index, surfaced)

    def search_lists(self) -> tuple[Optional[Achievement], float]:
        """Search the published lists of its sector at a cost (:func:`sim.core.contracts.search_lists`): the best
        listed achievement by its own judgement, or None, and that judgement."""
        m = self.model
        a, seen = contracts.search_lists(m.p, m.st, m.series, m.month, self.index)
        return (m.achievements[a] if a >= 0 else None), seen

    def consider(self, achievement: Achievement, signal: float, broker: Optional["Broker"]) -> bool:
        """Weigh the contracts on offer for ``achievement``; open a negotiation if one suits. Returns whether it did."""
        m = self.model
        return contracts.consider(m.p, m.st, m.series, m.month, self.index, achievement.index, signal,
                                  -1 if broker is None else broker.index)

    def negotiate(self, u: float) -> None:
        m = self.model
        contracts.negotiate(m.p, m.st, m.series, m.month, self.index, u)

    def settle(self) -> bool:
        m = self.model
        return contracts.settle(m.p, m.st, m.series, m.month, self.index)


class University(mesa.Agent):
    """A university or research institute: a portfolio of achievements and a transfer office."""

    opened_this_month = column("univ_opened", "negotiations its transfer office opened this month")
    capacity = column("univ_capacity", "negotiations its transfer office can open per month")
    reservation = column("univ_reservation", "its lowest acceptable price, as a share of the asking price")
    in_pilot = column("univ_in_pilot", "a 'use first' pilot obliges it to offer every achievement for free trial")

    def __init__(self, model: "TransferModel", index: int):
        super().__init__(model)
        self.index = index
        self.achievements: list[Achievement] = []

    def can_open_negotiation(self) -> bool:
        """The transfer office handles a limited number of new deals a month."""
        return self.opened_this_month < self.capacity


class Broker(mesa.Agent):
    """A technology broker: visits firms of its sector, surfaces needs, proposes achievements."""

    active = column("broker_active")
    sector = column("broker_sector")

    def __init__(self, model: "TransferModel", index: int):
        super().__init__(model)
        self.index = index

    def propose(self, firm: "Firm", visit: int) -> tuple[Optional[Achievement], float]:
        """Screen a few achievements of the sector; return the best shelved one by the broker's judgement."""
        m = self.model
        a, seen = contracts.propose(m.p, m.st, m.month, firm.index, self.index, visit)
        return (m.achievements[a] if a >= 0 else None), seen

    def review(self) -> bool:
        """End of month: pay costs, update average profit; return True if the broker exits."""
        m = self.model
        return contracts.review_broker(m.p, m.st, m.series, m.month, self.index)


