"""The Mesa engine: :class:`TransferModel`, the monthly process over agents.

This engine is the readable reference. Each month runs the phases of the
model in a fixed order, and within a phase visits agents in a canonical order
(a rotation of the index order drawn from the keyed generator), never with
Mesa's own shuffling, so the Numba engine can reproduce it draw for draw:

1. needs arise in firms (or expire);
2. discovery: firms search on their own, then brokers visit firms;
3. negotiation: running negotiations conclude (signing), continue or break down;
4. implementation starts at signing; 5. settlement when its term ends;
6. learning: beliefs, insurers' estimates, broker costs, exit and entry.

All money moves through :meth:`TransferModel.pay`, from one account to another.
"""

from __future__ import annotations

from typing import Optional

import mesa
import numpy as np

from . import rng, rules
from .agents import Achievement, Broker, Contract, Firm, Government, Insurer, Inventors, Market, University
from .config import Config
from .population import Population, draw_population
from .results import Series, new_series
from .rules import IDLE, IMPLEMENTING, NEED, NEGOTIATING_FIRM


class TransferModel(mesa.Model):
    """Technology transfer between universities and firms under one policy regime.

    Args:
        cfg: validated configuration (scenario, regime, instrument parameters).
        seed: replicate seed; the population and every chance event derive from it.
        population: a pre-drawn population (default: drawn from ``cfg`` and ``seed``).
        audit: keep a log of every payment in ``self.events`` (for tests).
    """

    def __init__(self, cfg: Config, seed: int, population: Optional[Population] = None, audit: bool = False):
        super().__init__(rng=seed)
        self.cfg = cfg
        self.seed = int(seed)
        self.month = 0
        pop = population if population is not None else draw_population(cfg, seed)
        self.population = pop
        sc = cfg.scenario

        self.market = Market()
        self.inventors = Inventors()
        self.government = Government(cfg.government.annual_budget)
        self.universities = [University(self, u, bool(pop.univ_accepts_trial[u])) for u in range(pop.n_universities)]
        self.achievements = [
            Achievement(
                index=a, owner=self.universities[pop.ach_owner[a]], sector=int(pop.ach_sector[a]),
                quality=float(pop.ach_quality[a]), maturity=float(pop.ach_maturity[a]),
                value=int(pop.ach_value[a]), cost=int(pop.ach_cost[a]), ask=int(pop.ach_ask[a]),
            )
            for a in range(pop.n_achievements)
        ]
        for a in self.achievements:
            a.owner.achievements.append(a)
        self.achievements_by_sector = [
            self.achievements[pop.ach_offsets[s]:pop.ach_offsets[s + 1]] for s in range(sc.sectors)
        ]
        self.firms = [
            Firm(self, f, int(pop.firm_sector[f]), bool(pop.firm_sme[f]), float(pop.firm_absorptive[f]),
                 int(pop.firm_cash[f]), float(pop.firm_risk_aversion[f]), float(pop.firm_need_rate[f]),
                 float(pop.firm_scale[f]))
            for f in range(pop.n_firms)
        ]
        self.firms_by_sector = [self.firms[pop.firm_offsets[s]:pop.firm_offsets[s + 1]] for s in range(sc.sectors)]
        self.brokers = [Broker(self, b, int(pop.broker_sector[b]), float(pop.broker_skill[b]))
                        for b in range(pop.n_brokers)]
        for b in self.brokers[: sc.brokers.initial]:
            b.active, b.entered = True, 0
        self.next_entrant = sc.brokers.initial
        self.insurers = [Insurer(self, i, rules.yuan(cfg.insurance.initial_reserves))
                         for i in range(cfg.insurance.insurers)]

        self.series = new_series(sc.months)
        self.events: Optional[list] = [] if audit else None
        self.initial_money = self.total_money()

    # ------------------------------------------------------------------ money
    def accounts(self):
        return [*self.firms, *self.universities, self.inventors, *self.brokers, *self.insurers,
                self.government, self.market]

    def total_money(self) -> int:
        return sum(acc.cash for acc in self.accounts())

    def pay(self, payer, payee, amount: int, kind: str = "", contract: Optional[Contract] = None) -> None:
        """Move ``amount`` yuan from ``payer`` to ``payee`` (the only way money moves)."""
        amount = int(amount)
        if amount < 0:
            raise ValueError(f"negative payment {amount} ({kind})")
        payer.cash -= amount
        payee.cash += amount
        if self.events is not None and kind:
            self.events.append((self.month, kind, amount, contract))

    def flow(self, column: Series, amount: float = 1) -> None:
        self.series[self.month, column] += amount

    # ------------------------------------------------------------------ shared helpers
    def true_chance(self, firm: Firm, a: Achievement) -> float:
        """The real success chance of implementing ``a`` in ``firm``."""
        s = self.cfg.scenario.success
        fit = rng.uniform(self.seed, rng.FIT, 0, rules.pair_key(firm.index, a.index, len(self.achievements)))
        return rules.success_chance(a.quality, a.maturity, firm.absorptive, fit,
                                    s.maturity_floor, s.absorptive_floor, s.fit_floor)

    def perceived_chance(self, firm: Firm, a: Achievement, noise_sd: float, z: float) -> float:
        return rules.perceived_chance(self.true_chance(firm, a), noise_sd, z)

    def trial_pay(self, a: Achievement) -> int:
        t = self.cfg.trial
        return rules.trial_payment(t.success_fee, t.price_share, a.ask)

    def cheapest_insurer(self, cost: int) -> Optional[Insurer]:
        """The insurer quoting the lowest premium for ``cost`` (None if insurance is off or none writes)."""
        if not self.cfg.regime.insurance or not self.insurers:
            return None
        writes = np.array([ins.writes for ins in self.insurers])
        premiums = np.array([ins.quote(cost)[1] if w else 0 for ins, w in zip(self.insurers, writes)], dtype=np.int64)
        best = rules.cheapest_quote(premiums, writes)
        return self.insurers[best] if best >= 0 else None

    def _rotation(self, items: list, which: int) -> list:
        """Canonical visiting order this month: the index order rotated by a keyed draw."""
        if not items:
            return items
        start = rng.randint(self.seed, rng.ORDER, self.month, which, len(items))
        return items[start:] + items[:start]

    # ------------------------------------------------------------------ the month
    def step(self) -> None:
        """Advance the model by one month."""
        if rules.budget_year_starts(self.month):
            self.government.committed = 0
        for u in self.universities:
            u.opened_this_month = 0
        firms = self._rotation(self.firms, 0)
        brokers = self._rotation(self.brokers, 1)
        self.raise_needs(firms)
        self.firms_search(firms)
        self.brokers_visit(brokers)
        self.negotiate(firms)
        outcomes = self.settle(firms)
        self.learn(outcomes, brokers)
        self.record()
        self.month += 1

    def run(self) -> np.ndarray:
        """Run all months; return the per-month series."""
        for _ in range(self.cfg.scenario.months):
            self.step()
        return self.series

    # 1. needs
    def raise_needs(self, firms: list[Firm]) -> None:
        patience = self.cfg.scenario.firms.need_patience
        for f in firms:
            if f.state == NEED and self.month - f.need_month >= patience:
                f.state = IDLE
                self.flow(Series.NEEDS_EXPIRED)
            elif f.state == IDLE and rng.uniform(self.seed, rng.NEED, self.month, f.index) < f.need_rate:
                f.raise_need(self.month)
                self.flow(Series.NEEDS_RAISED)

    # 2. discovery
    def firms_search(self, firms: list[Firm]) -> None:
        fc = self.cfg.scenario.firms
        t = self.month
        for f in firms:
            if f.state != NEED or rng.uniform(self.seed, rng.SELF_SEARCH, t, f.index) >= fc.self_search_prob:
                continue
            pool = self.achievements_by_sector[f.sector]
            if not pool:
                continue
            a = pool[rng.randint(self.seed, rng.SELF_PICK, t, f.index, len(pool))]
            if a.status == rules.SHELVED and a.owner.can_open_negotiation():
                signal = self.perceived_chance(f, a, fc.self_noise, rng.normal(self.seed, rng.SELF_NOISE, t, f.index))
                self.open_negotiation(f, a, signal, None)

    def brokers_visit(self, brokers: list[Broker]) -> None:
        bc = self.cfg.scenario.brokers
        t = self.month
        for b in brokers:
            if not b.active:
                continue
            firms = self.firms_by_sector[b.sector]
            if not firms:
                continue
            for k in range(bc.capacity):
                visit = b.index * bc.capacity + k
                f = firms[rng.randint(self.seed, rng.VISIT, t, visit, len(firms))]
                if f.state == IDLE and rng.uniform(self.seed, rng.SURFACE, t, visit) < bc.surface_prob:
                    f.raise_need(t)
                    self.flow(Series.NEEDS_RAISED)
                    self.flow(Series.NEEDS_SURFACED)
                if f.state == NEED:
                    a, seen = b.propose(f, visit)
                    if a is not None and a.owner.can_open_negotiation():
                        self.open_negotiation(f, a, seen, b)

    def open_negotiation(self, f: Firm, a: Achievement, signal: float, broker: Optional[Broker]) -> None:
        contract = f.consider(a, signal, broker)
        if contract is None:
            return  # the firm keeps its need and may find something better
        a.status = rules.NEGOTIATING
        a.owner.opened_this_month += 1
        f.state = NEGOTIATING_FIRM
        f.contract = contract
        self.government.committed += contract.subsidy
        self.flow(Series.MATCHES)
        if broker is not None:
            self.flow(Series.MATCHES_BROKERED)

    # 3. negotiation (and 4. implementation starts at signing)
    def negotiate(self, firms: list[Firm]) -> None:
        sc = self.cfg.scenario
        for f in firms:
            if f.state != NEGOTIATING_FIRM:
                continue
            c = f.contract
            mean = rules.negotiation_months(c.form, sc.negotiation.months_licence, self.cfg.trial.negotiation_months,
                                            c.broker is not None, sc.negotiation.broker_speedup)
            u = rng.uniform(self.seed, rng.NEGOTIATION, self.month, f.index)
            step = rules.negotiation_step(u, mean, sc.negotiation.breakdown_hazard)
            if step == rules.CONCLUDED:
                self.sign(c)
            elif step == rules.BROKE_DOWN:
                c.achievement.status = rules.SHELVED
                if rules.same_budget_year(c.opened, self.month):
                    self.government.committed -= c.subsidy
                f.state, f.contract = IDLE, None
                self.flow(Series.NEGOTIATIONS_FAILED)

    def sign(self, c: Contract) -> None:
        f, a = c.firm, c.achievement
        if c.broker is not None:  # the service fee, paid by the firm that was served
            fee = rules.yuan(self.cfg.scenario.brokers.fee_fixed)
            self.pay(f, c.broker, fee, "broker_fee", c)
            c.broker.income += fee
            self.flow(Series.BROKER_FEES, fee)
        if c.form == rules.LICENCE:
            self.collect(c, c.price, Series.LICENCE_PAYMENTS)
        if c.insured:
            self.pay(f, c.insurer, c.premium - c.subsidy, "premium", c)
            self.pay(self.government, c.insurer, c.subsidy, "subsidy", c)
            self.flow(Series.PREMIUMS, c.premium)
            self.flow(Series.PREMIUM_SUBSIDIES, c.subsidy)
            self.flow(Series.SIGNED_INSURED)
        self.pay(f, self.market, c.cost, "implementation", c)
        self.flow(Series.IMPLEMENTATION_COST, c.cost)
        a.status = rules.LICENSED if c.form == rules.LICENCE else rules.ON_TRIAL
        c.ends = self.month + rules.implementation_months(
            c.form, self.cfg.scenario.negotiation.implementation_months, self.cfg.trial.term_months)
        f.state = IMPLEMENTING
        self.flow(Series.SIGNED_LICENCE if c.form == rules.LICENCE else Series.SIGNED_TRIAL)
        self.flow(Series.SIGN_DELAY_SUM, self.month - f.need_month)

    def collect(self, c: Contract, amount: int, column: Series) -> None:
        """The firm pays the university ``amount`` under the contract; the broker's fee and reward follow."""
        m_cfg = self.cfg
        f, univ, broker = c.firm, c.achievement.owner, c.broker
        self.pay(f, univ, amount, "payment", c)
        self.flow(column, amount)
        univ_fee = 0
        if broker is not None:
            univ_fee = self.pay_broker_fee(c, rules.broker_fee(amount, m_cfg.scenario.brokers.fee_rate))
            if m_cfg.regime.broker_reward:
                reward = rules.broker_reward(amount, m_cfg.broker.rate, m_cfg.broker.cap)
                if self.government.can_pay(reward):
                    self.pay(self.government, broker, reward, "reward", c)
                    self.government.committed += reward
                    broker.income += reward
                    self.flow(Series.BROKER_REWARDS, reward)
                else:
                    self.flow(Series.REWARDS_DENIED, reward)
        net = amount - univ_fee
        self.flow(Series.UNIVERSITY_INCOME, net)
        to_inventors = rules.inventor_payment(net, m_cfg.scenario.universities.inventor_share)
        self.pay(univ, self.inventors, to_inventors, "inventors", c)
        self.flow(Series.INVENTOR_INCOME, to_inventors)

    def pay_broker_fee(self, c: Contract, fee: int) -> int:
        """The parties pay the broker ``fee``; returns the university's part."""
        firm_fee, univ_fee = rules.fee_split(fee, self.cfg.scenario.brokers.fee_firm_share)
        self.pay(c.firm, c.broker, firm_fee, "broker_fee", c)
        self.pay(c.achievement.owner, c.broker, univ_fee, "broker_fee", c)
        c.broker.income += fee
        self.flow(Series.BROKER_FEES, fee)
        return univ_fee

    # 5. settlement
    def settle(self, firms: list[Firm]) -> dict:
        """Outcomes of implementations whose term ends this month; returns {firm index: success}."""
        outcomes = {}
        max_failures = self.cfg.scenario.universities.max_failures
        for f in firms:
            if f.state != IMPLEMENTING or f.contract.ends != self.month:
                continue
            c, a = f.contract, f.contract.achievement
            key = rules.pair_key(f.index, a.index, len(self.achievements))
            success = rng.uniform(self.seed, rng.OUTCOME, 0, key) < c.chance
            if success:
                self.pay(self.market, f, c.value, "value", c)
                self.flow(Series.FIRM_VALUE, c.value)
                a.status = rules.IN_USE
                self.flow(Series.SUCCESSES)
                if c.form == rules.TRIAL:
                    self.collect(c, c.price, Series.TRIAL_PAYMENTS)
                    self.flow(Series.TRIALS_CONVERTED)
            else:
                self.flow(Series.FAILURES)
                if c.insured:
                    paid = rules.claim_paid(c.claim, c.insurer.cash)
                    self.pay(c.insurer, f, paid, "claim", c)
                    self.flow(Series.CLAIMS, paid)
                    self.flow(Series.CLAIMS_UNPAID, c.claim - paid)
                a.failures += 1
                a.status = rules.ABANDONED if rules.settles_as_abandoned(a.failures, max_failures) else rules.SHELVED
            if c.insured:
                c.insurer.observed += 1
                c.insurer.failures += 0 if success else 1
            if self.events is not None:
                self.events.append((self.month, "outcome", int(success), c))
            outcomes[f.index] = success
            f.state, f.contract = IDLE, None
        return outcomes

    # 6. learning, costs, entry and exit
    def learn(self, outcomes: dict, brokers: list[Broker]) -> None:
        sc = self.cfg.scenario
        n_sectors = sc.sectors
        succ = np.zeros(n_sectors)
        fail = np.zeros(n_sectors)
        for index, success in outcomes.items():
            f = self.firms[index]
            f.learn(1.0 if success else 0.0, 0.0 if success else 1.0)
            (succ if success else fail)[f.sector] += 1
        w = sc.firms.peer_weight
        if w > 0 and outcomes:
            for f in self.firms:
                own = outcomes.get(f.index)
                s_peer, f_peer = rules.peer_outcomes(succ[f.sector], fail[f.sector],
                                                     -1 if own is None else int(own))
                if s_peer or f_peer:
                    f.learn(w * s_peer, w * f_peer)

        for b in brokers:
            if b.active:
                self.flow(Series.BROKER_COSTS, rules.yuan(sc.brokers.monthly_cost))
                if b.review():
                    b.active, b.retired = False, True
                    self.flow(Series.BROKER_EXITS)
        active = [b for b in self.brokers if b.active]
        mean_profit = sum(b.avg_profit for b in active) / len(active) if active else 0.0
        chance = rules.broker_entry_chance(mean_profit, sc.brokers.monthly_cost,
                                           sc.brokers.entry_max, sc.brokers.entry_sensitivity)
        for k in range(sc.brokers.entry_candidates):
            if self.next_entrant < len(self.brokers) and rng.uniform(self.seed, rng.ENTRY, self.month, k) < chance:
                b = self.brokers[self.next_entrant]
                b.active, b.entered = True, self.month
                self.next_entrant += 1
                self.flow(Series.BROKER_ENTRIES)

        for ins in self.insurers:
            ins.active = ins.writes  # below minimum reserves: withdraws for good

    def record(self) -> None:
        s = self.series[self.month]
        counts = np.zeros(rules.N_STATUS)
        for a in self.achievements:
            counts[a.status] += 1
        for status, col in enumerate((Series.SHELVED, Series.NEGOTIATING, Series.ON_TRIAL, Series.LICENSED,
                                      Series.IN_USE, Series.ABANDONED)):
            s[col] = counts[status]
        s[Series.BROKERS_ACTIVE] = sum(1 for b in self.brokers if b.active)
        s[Series.INSURERS_ACTIVE] = sum(1 for i in self.insurers if i.active)
        s[Series.INSURER_RESERVES] = sum(i.cash for i in self.insurers)
        s[Series.MEAN_BELIEF] = sum(f.belief for f in self.firms) / len(self.firms)
        s[Series.CASH_FIRMS] = sum(f.cash for f in self.firms)
        s[Series.CASH_UNIVERSITIES] = sum(u.cash for u in self.universities)
        s[Series.CASH_INVENTORS] = self.inventors.cash
        s[Series.CASH_BROKERS] = sum(b.cash for b in self.brokers)
        s[Series.CASH_INSURERS] = sum(i.cash for i in self.insurers)
        s[Series.CASH_GOVERNMENT] = self.government.cash
        s[Series.CASH_MARKET] = self.market.cash
        previous = self.series[self.month - 1, Series.CASH_FIRMS] if self.month else self._initial_firm_cash
        s[Series.FIRM_SURPLUS] = s[Series.CASH_FIRMS] - previous

    @property
    def _initial_firm_cash(self) -> int:
        return int(self.population.firm_cash.sum())
