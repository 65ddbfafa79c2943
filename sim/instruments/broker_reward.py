"""Rewards to technology brokers (Zhenhai, Ningbo): a share of each contract payment, capped per project.

Government pays the broker who brought a deal ``min(rate x payment, cap)`` on each
payment the firm makes to the university, within ``cap`` over the whole project (Zhenhai:
at most 1.5% of the contract value, at most 300,000 yuan per project), and within the
yearly budget (``government.annual_budget``) if there is one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.jit import entry, kernel

from ..core import columns, ledger, public, rules, state
from ..core.schema import money, share

NAME = "broker_reward"


@dataclass
class Params:
    rate: float = share(0.015, "reward as a share of the contract value (Zhenhai: at most 1.5%)")
    cap: float = money(300000.0, "reward cap per project, yuan (Zhenhai: 300,000)")


BROKER_REWARDS = ledger.kind("broker_rewards", ledger.GOVERNMENT, ledger.BROKER,
                             "government rewards to brokers per contract payment", owner=NAME)
REWARDS_DENIED = columns.column("rewards_denied", "rewards refused for lack of budget (yuan)", money=True, owner=NAME)
# per project: by achievement, not by firm (a payment can fall due on a firm's earlier contract, a royalty
# instalment, while the firm negotiates or implements a new one; sim.core.contracts.collect_for)
state.field("ach_rewarded", "achievement", np.int64, 0, "rewards paid so far on the achievement's current contract",
            owner=NAME)
SPEND = "rewards"   # government spend on this instrument is the run metric gov_spend_rewards
ZERO_STRENGTH = ("broker_reward.rate=0",)  # on, yet no reward paid


@entry
def reward(contract_value, rate, cap, rewarded):
    """The reward on a payment (Zhenhai rule): min(rate x payment, cap left on the project), whole yuan."""
    return min(np.int64(np.floor(rate * contract_value)), np.int64(np.floor(cap)) - rewarded)


@kernel
def on_open(p, st, series, month, j, cover):
    st.ach_rewarded[st.c_ach[j]] = 0


@kernel
def on_payment(p, st, series, month, f, a, b, amount, net):
    if b < 0:
        return
    r = p.broker_reward
    due = reward(amount, r.rate, r.cap, st.ach_rewarded[a])
    if public.pay_public(p, st, series, month, ledger.account(st, ledger.BROKER, b), due, BROKER_REWARDS):
        st.broker_income[b] += due
        st.ach_rewarded[a] += due
    else:
        series[month, REWARDS_DENIED] += due


def check_series(s, cfg, c=None) -> None:
    """Each reward within min(rate x payment, cap), one per contract payment (each rounded down to the yuan from a
    float product: a yuan of slack per payment for the float's last bit)."""
    from ..core.results import InvariantError, failed, first_month, runs_of

    s = runs_of(s)   # a run's series as a batch of one; a batch's (runs, months, columns) as it is
    payments = s[:, :, columns.CONTRACT_PAYMENTS]
    paid = sum(s[:, :, k.column] for k in ledger.KINDS if k.payer == ledger.FIRM and k.payee == ledger.UNIVERSITY)
    bad = (s[:, :, BROKER_REWARDS] > np.floor(cfg.broker_reward.cap) * payments) | (
        s[:, :, BROKER_REWARDS] > cfg.broker_reward.rate * paid + payments)
    if failed(bad):
        m = first_month(bad)
        raise InvariantError(f"month {m}: broker rewards {s[0, m, BROKER_REWARDS]:.0f} exceed the rate or the cap of the "
                             "payments made")
