"""The Mesa engine: :class:`TransferModel`, the month of :mod:`sim.core.loop` over agents.

This engine is the readable reference. Each month runs the phases of
:data:`sim.core.loop.PHASES` in that order, and within a phase visits agents in a canonical
order (a rotation of the index order drawn from the keyed generator; the index order where
each agent's step depends on nothing but its own state, as a firm's needs), never with
Mesa's own shuffling, so the Numba engine (:mod:`sim.engines.numba.kernels`) reproduces it draw for draw.
Every decision and payment is a shared operation of :mod:`sim.core.contracts`, called through
the agents (:mod:`sim.engines.mesa.agents`); money moves only through :func:`sim.core.ledger.pay`.
"""

from __future__ import annotations

from typing import Optional

import mesa
import numpy as np

from ...core import contracts, rng, state, views
from .agents import Achievement, Broker, Firm, Project, University
from ...core.config import Config
from ...instruments import INSTRUMENTS
from ...core.loop import PHASES
from ...core.population import Population, draw_population
from ...core.results import new_series
from ...core.rules import IDLE, IMPLEMENTING, NEED, NEGOTIATING_FIRM
from ...core.state import make_params, new_state, to_struct


class TransferModel(mesa.Model):
    """Technology transfer between universities and firms under one policy regime.

    Args:
        cfg: validated configuration (scenario, regime, instrument parameters).
        seed: replicate seed; the population and every chance event derive from it.
        population: a pre-drawn population (default: drawn from ``cfg`` and ``seed``).
        audit_rows: keep the first ``audit_rows`` payments in ``self.arrays.audit`` (for tests).
    """

    def __init__(self, cfg: Config, seed: int, population: Optional[Population] = None, audit_rows: int = 0):
        super().__init__(rng=seed)
        self.cfg = cfg
        self.seed = int(seed)
        self.month = 0
        pop = population if population is not None else draw_population(cfg, seed)
        self.population = pop
        self.params = make_params(cfg, seed, pop.n_achievements)
        self.p = to_struct(self.params)   # the parameters, for the compiled operations
        self.arrays = new_state(cfg, pop, audit_rows)   # the state's arrays, for Python
        self.st = to_struct(self.arrays)                 # the same arrays, for the compiled operations
        self.series = new_series(cfg.scenario.months)
        self.initial_money = int(self.arrays.balance.sum())

        self.universities = [University(self, u) for u in range(pop.n_universities)]
        self.achievements = [Achievement(self, a, self.universities[pop.ach_owner[a]])
                             for a in range(pop.n_achievements)]
        for a in self.achievements:
            a.owner.achievements.append(a)
        sectors = range(cfg.scenario.sectors)
        self.achievements_by_sector = [self.achievements[pop.ach_offsets[s]:pop.ach_offsets[s + 1]] for s in sectors]
        self.firms = [Firm(self, f) for f in range(pop.n_firms)]
        self.firms_by_sector = [self.firms[pop.firm_offsets[s]:pop.firm_offsets[s + 1]] for s in sectors]
        self.projects = [Project(self, j, self.firms[pop.project_firm[j]]) for j in range(pop.n_projects)]
        for project in self.projects:
            project.firm.projects.append(project)
        self.brokers = [Broker(self, b) for b in range(pop.n_brokers)]
        for m in INSTRUMENTS:  # the agents instruments add (insurers, lenders): self.insurers, ...
            for kind, cls in getattr(m, "MESA_AGENTS", {}).items():
                agent = views.mesa_class(cls)
                setattr(self, f"{kind}s", [agent(self, i) for i in range(int(state.AGENTS[kind](cfg, pop)))])

    def in_order(self, agents: list, which: int) -> list:
        """This month's canonical visiting order: the index order rotated by a keyed draw (which: 0 firms'
        projects, 1 brokers)."""
        if not agents:
            return agents
        start = rng.randint(self.seed, rng.ORDER, self.month, which, len(agents))
        return agents[start:] + agents[:start]

    def projects_in(self, state: int, ending_now: bool = False) -> list:
        """This month's projects in ``state`` (and, if ``ending_now``, whose term ends this month), in the canonical
        order of all projects (:meth:`in_order`): read off the state's array, so the loop visits only them."""
        arrays = self.arrays
        chosen = arrays.project_state == state
        if ending_now:
            chosen &= arrays.c_ends == self.month
        index = np.flatnonzero(chosen)
        start = rng.randint(self.seed, rng.ORDER, self.month, 0, len(self.projects)) if self.projects else 0
        return [self.projects[j] for j in np.concatenate([index[index >= start], index[index < start]])]

    # ------------------------------------------------------------------ the month
    def step(self) -> None:
        """Advance the model by one month: every phase of :data:`sim.core.loop.PHASES`, in order."""
        for phase in PHASES:
            getattr(self, phase)()
        self.month += 1

    def run(self) -> np.ndarray:
        """Run all months; return the per-month series."""
        for _ in range(self.cfg.scenario.months):
            self.step()
        return self.series

    def open_month(self) -> None:
        contracts.open_month(self.p, self.st, self.series, self.month)

    def raise_needs(self) -> None:
        for firm in self.firms:   # each firm's needs depend on its own projects only: any order gives the same
            firm.raise_needs(rng.uniform(self.seed, rng.NEED, self.month, firm.index))

    def firms_search(self) -> None:
        t, p = self.month, self.params
        contracts.publish(self.st)   # the lists as they stand when the month's search begins (brokers and experts too)
        for project in self.projects_in(NEED):
            if rng.uniform(self.seed, rng.SELF_SEARCH, t, project.index) >= p.self_search_prob:
                continue
            a, signal = project.search_lists()
            if a is not None and a.owner.can_open_negotiation():
                project.consider(a, signal, None)

    def brokers_visit(self) -> None:
        t, p = self.month, self.params
        for broker in self.in_order(self.brokers, 1):
            if not broker.active:
                continue
            firms = self.firms_by_sector[broker.sector]
            if not firms:
                continue
            for k in range(p.capacity):
                visit = broker.index * p.capacity + k
                firm = firms[rng.randint(self.seed, rng.VISIT, t, visit, len(firms))]
                project = firm.visited_project()
                if project is None:   # every slot busy
                    continue
                if project.state == IDLE and rng.uniform(self.seed, rng.SURFACE, t, visit) < p.surface_prob:
                    project.raise_need(surfaced=True)
                if project.state == NEED:
                    a, seen = broker.propose(firm, visit)
                    if a is not None and a.owner.can_open_negotiation():
                        project.consider(a, seen, broker)

    def organised_search(self) -> None:
        contracts.organised_search(self.p, self.st, self.series, self.month)

    def negotiate(self) -> None:
        for project in self.projects_in(NEGOTIATING_FIRM):
            project.negotiate(rng.uniform(self.seed, rng.NEGOTIATION, self.month, project.index))

    def settle(self) -> None:
        for project in self.projects_in(IMPLEMENTING, ending_now=True):
            project.settle()

    def learn(self) -> None:
        contracts.learn(self.p, self.st)
        for broker in self.in_order(self.brokers, 1):
            if broker.active:
                broker.review()
        contracts.close_month(self.p, self.st, self.series, self.month)

    def record(self) -> None:
        contracts.record(self.p, self.st, self.series, self.month)


