"""Mesa agents of the reference engine: firms, universities, brokers, insurers.

Agents hold their own state and make their own decisions, each decision through
a rule of :mod:`sim.rules` (the same functions the Numba engine calls). The
model (:mod:`sim.model`) orders the month and moves the money.

Achievements are plain data held by their university, not Mesa agents: they
make no decisions of their own, and there are many of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

import mesa

from . import rng, rules
from .rules import IDLE, NEED

if TYPE_CHECKING:  # pragma: no cover
    from .model import TransferModel


class Account:
    """Anything that holds money (yuan, int)."""

    cash: int = 0


@dataclass
class Achievement:
    """A patent or bundle of a university: what is sold, tried or shelved."""

    index: int
    owner: "University"
    sector: int
    quality: float
    maturity: float
    value: int           # value of success to an SME (yuan)
    cost: int            # implementation cost for an SME (yuan)
    ask: int             # asking price (yuan)
    status: int = rules.SHELVED
    failures: int = 0


@dataclass
class Contract:
    """A deal between a firm and a university, from negotiation to settlement."""

    firm: "Firm"
    achievement: Achievement
    broker: Optional["Broker"]
    form: int
    insured: bool
    insurer: Optional["Insurer"]
    price: int           # licence price, or what the trial pays on success
    value: int           # value of success to this firm
    cost: int            # implementation cost for this firm
    chance: float        # true success chance of this pair
    claim: int
    premium: int
    subsidy: int
    opened: int          # month negotiation began
    ends: int = -1       # month the outcome is known


class Firm(mesa.Agent, Account):
    """A firm with technology needs, beliefs about university technology, and cash."""

    def __init__(self, model: "TransferModel", index, sector, sme, absorptive, cash, risk_aversion, need_rate, scale):
        super().__init__(model)
        self.index = index
        self.sector = sector
        self.sme = sme
        self.absorptive = absorptive
        self.cash = cash
        self.risk_aversion = risk_aversion   # relative; absolute = relative / cash
        self.need_rate = need_rate
        self.scale = scale
        f = model.cfg.scenario.firms
        self.alpha = f.prior_success * f.prior_strength        # belief: Beta(alpha, beta)
        self.beta = (1.0 - f.prior_success) * f.prior_strength
        self.state = IDLE
        self.need_month = -1
        self.contract: Optional[Contract] = None

    @property
    def belief(self) -> float:
        return rules.belief_mean(self.alpha, self.beta)

    def raise_need(self, month: int) -> None:
        self.state = NEED
        self.need_month = month

    def consider(self, achievement: Achievement, signal: float, broker: Optional["Broker"]) -> Optional[Contract]:
        """Decide which contract, if any, to negotiate for ``achievement`` given a success signal."""
        m = self.model
        cfg = m.cfg
        univ = achievement.owner
        value = rules.project_amount(achievement.value, self.scale)
        cost = rules.project_amount(achievement.cost, self.scale)
        insurer = m.cheapest_insurer(cost)
        claim, prem, subsidy = insurer.quote(cost) if insurer is not None else (0, 0, 0)
        subsidy = rules.subsidy_offered(subsidy, m.government.committed, m.government.budget)
        p_hat = rules.firm_estimate(self.belief, signal, cfg.scenario.firms.belief_weight)
        form, insured, price, _ = rules.choose_contract(
            p_hat, value, cost, self.cash, rules.abs_risk_aversion(self.risk_aversion, self.cash),
            achievement.ask, cfg.scenario.universities.reservation_share, cfg.scenario.universities.bargaining_power,
            cfg.regime.free_trial and univ.accepts_trial, m.trial_pay(achievement),
            insurer is not None and claim > 0, claim, prem - subsidy,
            cfg.scenario.brokers.fee_rate if broker is not None else 0.0,
            cfg.scenario.brokers.fee_fixed if broker is not None else 0.0, cfg.scenario.brokers.fee_firm_share,
        )
        if form == rules.NO_DEAL:
            return None
        return Contract(
            firm=self, achievement=achievement, broker=broker, form=form, insured=insured,
            insurer=insurer if insured else None, price=price, value=value, cost=cost,
            chance=m.true_chance(self, achievement), claim=claim if insured else 0,
            premium=prem if insured else 0, subsidy=subsidy if insured else 0, opened=m.month,
        )

    def learn(self, successes: float, failures: float) -> None:
        """Update the belief about university technology with observed outcomes."""
        self.alpha += successes
        self.beta += failures


class University(mesa.Agent, Account):
    """A university or research institute: a portfolio of achievements and a transfer office."""

    def __init__(self, model: "TransferModel", index: int, accepts_trial: bool):
        super().__init__(model)
        self.index = index
        self.accepts_trial = accepts_trial
        self.achievements: list[Achievement] = []
        self.opened_this_month = 0

    def can_open_negotiation(self) -> bool:
        """The transfer office handles a limited number of new deals a month."""
        return self.opened_this_month < self.model.cfg.scenario.universities.tto_capacity


class Inventors(Account):
    """The inventors of all universities, paid their share of university income."""


class Broker(mesa.Agent, Account):
    """A technology broker: visits firms of its sector, surfaces needs, proposes achievements."""

    def __init__(self, model: "TransferModel", index: int, sector: int, skill: float):
        super().__init__(model)
        self.index = index
        self.sector = sector
        self.skill = skill
        self.active = False
        self.retired = False
        self.entered = -1
        self.avg_profit = 0.0
        self.income = 0          # this month's fees and rewards

    def propose(self, firm: Firm, visit: int) -> tuple[Optional[Achievement], float]:
        """Screen a few shelved achievements of the sector; return the best by the broker's judgement."""
        m = self.model
        b = m.cfg.scenario.brokers
        pool = m.achievements_by_sector[self.sector]
        best, best_seen = None, -1.0
        if not pool:
            return None, 0.0
        sd = rules.broker_noise(b.noise, self.skill)
        for j in range(b.screen):
            key = visit * b.screen + j
            a = pool[rng.randint(m.seed, rng.SCREEN, m.month, key, len(pool))]
            if a.status != rules.SHELVED:
                continue
            seen = m.perceived_chance(firm, a, sd, rng.normal(m.seed, rng.BROKER_NOISE, m.month, key))
            if seen > best_seen:
                best, best_seen = a, seen
        return best, best_seen

    def review(self) -> bool:
        """End of month: pay costs, update average profit; return True if the broker exits."""
        m = self.model
        b = m.cfg.scenario.brokers
        cost = rules.yuan(b.monthly_cost)
        m.pay(self, m.market, cost)
        self.avg_profit = rules.moving_average(self.avg_profit, float(self.income - cost), b.profit_memory)
        self.income = 0
        return rules.broker_exits(self.avg_profit, b.exit_loss, m.month - self.entered, b.grace_months)


class Insurer(mesa.Agent, Account):
    """Writes patent implementation failure insurance; learns the failure rate from claims."""

    def __init__(self, model: "TransferModel", index: int, reserves: int):
        super().__init__(model)
        self.index = index
        self.cash = reserves
        self.active = True
        self.failures = 0
        self.observed = 0

    @property
    def writes(self) -> bool:
        return rules.insurer_writes(self.active, self.cash, self.model.cfg.insurance.min_reserves)

    def quote(self, cost: int) -> tuple[int, int, int]:
        """(claim on failure, premium, government subsidy) for insuring an implementation cost."""
        ins = self.model.cfg.insurance
        claim = rules.claim_amount(cost, ins.coverage, ins.deductible)
        q = rules.failure_estimate(ins.prior_failure, ins.prior_strength, self.failures, self.observed)
        prem = rules.premium(q, claim, ins.loading)
        return claim, prem, rules.premium_subsidy(prem, ins.subsidy_share, ins.subsidy_cap)


class Government(Account):
    """Pays broker rewards and premium subsidies, optionally within a yearly budget.

    A premium subsidy is committed against the budget when the insured deal
    enters negotiation (the firm decides knowing it), and released if the
    negotiation breaks down in the same year; a reward is checked when due.
    """

    def __init__(self, annual_budget):
        self.cash = 0
        self.budget = -1.0 if annual_budget is None else float(annual_budget)
        self.committed = 0       # spent or committed this year

    def can_pay(self, amount: int) -> bool:
        return rules.within_budget(amount, self.committed, self.budget)


class Market(Account):
    """The outside economy: pays firms the value of success, receives costs."""
