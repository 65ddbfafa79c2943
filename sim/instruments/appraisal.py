"""Appraisal of universities on conversions (seeds 001, 003, 004): conversions enter universities' evaluation.

Shanghai (seed 001), Heilongjiang (seed 003) and Ningbo (seed 004) make the conversion of
achievements part of how universities and institutes are evaluated. The evaluation acts
on a university three ways here, each a parameter:

* **reward**: each reported conversion of its achievement (a successful implementation;
  a free trial's false failure report that is not found out is a failure to it) brings
  the university ``reward`` yuan of performance funding from government (ledger kind
  ``appraisal_rewards``, within the yearly budget; a reward the budget cannot pay is
  refused and counted, ``appraisal_rewards_denied``). The university counts on it when it
  decides which forms to offer: a free trial or a royalty is worth the fee or royalty
  *and* the reward, discounted, with the chance the match shows
  (:func:`sim.core.contracts.success_bonus_pv`), so more trials clear its reservation price;
* **pressure on prices**: its reservation price falls by ``reservation_cut`` of itself
  (an office judged on conversions sells rather than waits for a high price);
* **capacity**: its transfer office can open ``capacity_add`` more negotiations a month
  (staff assigned to conversion work).

All three from the first month (the appraisal is announced); the sources give no
figures, so each is a stated judgement.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.jit import kernel

from ..core import columns, ledger, public, rules, schema

NAME = "appraisal"
SPEND = "appraisal"   # government spend on this instrument is the run metric gov_spend_appraisal
ZERO_STRENGTH = ("appraisal.reward=0", "appraisal.reservation_cut=0", "appraisal.capacity_add=0")


@dataclass
class Params:
    reward: float = schema.money(
        100000.0, "performance funding to the university per conversion of its achievements, yuan (judgement: "
                  "seeds 001, 003, 004 name the appraisal without an amount; range 0-500,000)")
    reservation_cut: float = schema.share(
        0.2, "fall in universities' reservation price, as a share of it, under appraisal pressure (judgement; "
             "range 0-0.5)")
    capacity_add: int = schema.param(
        2, ge=0, le=schema.COUNT_MAX,
        doc="more negotiations a transfer office can open a month (judgement: staff assigned to conversions; "
            "range 0-6, the default office opens 6)")


APPRAISAL_REWARDS = ledger.kind("appraisal_rewards", ledger.GOVERNMENT, ledger.UNIVERSITY,
                                "performance funding to universities per conversion", owner=NAME)
REWARDS_DENIED = columns.column("appraisal_rewards_denied", "appraisal rewards refused for lack of budget (yuan)",
                                money=True, summary=True, owner=NAME)


MONEY_KEYS = "appraisal.reward"  # what to lower when the money bound is passed


def money_bound(cfg, pop) -> float:
    """A reward per conversion, at most one conversion per achievement."""
    return cfg.appraisal.reward * pop.n_achievements


def initial_state(cfg, arrays) -> None:
    """The appraisal is announced before the first month: reservation prices, capacity and the value of a conversion
    change at once."""
    a = cfg.appraisal
    arrays.univ_reservation[:] = arrays.univ_reservation * (1.0 - a.reservation_cut)
    arrays.univ_capacity[:] = arrays.univ_capacity + a.capacity_add
    arrays.univ_success_bonus[:] = rules.yuan(a.reward)


@kernel
def on_settle(p, st, series, month, j, success):
    """A conversion as the university reports it earns the reward (a trial reported failed, and not found out, does
    not: ``free_trial`` runs before this in the registry and sets ``c_reported``)."""
    if not st.c_reported[j]:
        return
    reward = rules.yuan(p.appraisal.reward)
    if reward <= 0:
        return
    university = ledger.account(st, ledger.UNIVERSITY, st.ach_owner[st.c_ach[j]])
    if not public.pay_public(p, st, series, month, university, reward, APPRAISAL_REWARDS):
        series[month, REWARDS_DENIED] += reward


def check_series(s, cfg, c=None) -> None:
    """Rewards only on conversions: ``reward`` for each reported success, paid or refused (a success reported as a
    failure earns none), never more than the successes."""
    from ..core.results import InvariantError, failed, first_month, runs_of

    s = runs_of(s)   # a run's series as a batch of one; a batch's (runs, months, columns) as it is
    reward = rules.yuan(cfg.appraisal.reward) if NAME in cfg.regime.instruments else 0
    paid_and_denied = s[:, :, APPRAISAL_REWARDS] + s[:, :, REWARDS_DENIED]
    unreported = s[:, :, columns.index("trials_misreported")] - s[:, :, columns.index("trials_caught")]
    bad = paid_and_denied != reward * (s[:, :, columns.SUCCESSES] - unreported)
    if failed(bad):
        m = first_month(bad)
        raise InvariantError(f"month {m}: appraisal rewards paid and denied {paid_and_denied[0, m]:.0f} are not "
                             f"{reward} x {s[0, m, columns.SUCCESSES] - unreported[0, m]:.0f} reported conversions")
