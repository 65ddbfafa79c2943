"""Results: the per-month series of a run, its one-row summary, and its invariants.

Both engines fill the same ``(months, len(Series))`` float64 array, one column
per :class:`Series` member (counts and yuan are whole numbers, exact in float64).
``summarize`` turns it into one row of metrics; ``check_invariants`` recomputes
the model's invariants from the series alone.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np


class Series(IntEnum):
    """Columns of the per-month series. Flows are this month's; stocks are at month end."""

    # the funnel (flows)
    NEEDS_RAISED = 0          # technology needs raised by firms (own or surfaced by brokers)
    NEEDS_SURFACED = 1        # of which surfaced by broker visits
    NEEDS_EXPIRED = 2         # needs given up unmatched
    MATCHES = 3               # firm-achievement pairs entering negotiation
    MATCHES_BROKERED = 4      # of which proposed by a broker
    NEGOTIATIONS_FAILED = 5
    SIGNED_LICENCE = 6
    SIGNED_TRIAL = 7
    SIGNED_INSURED = 8
    SIGN_DELAY_SUM = 9        # months from need to signing, summed over this month's contracts
    SUCCESSES = 10            # implementations that succeeded (conversions)
    FAILURES = 11
    TRIALS_CONVERTED = 12     # free trials that succeeded and were paid for
    # money flows (yuan)
    LICENCE_PAYMENTS = 13     # firm -> university, at signing
    TRIAL_PAYMENTS = 14       # firm -> university, on trial success only
    UNIVERSITY_INCOME = 15    # university receipts net of its share of broker fees (before inventors)
    INVENTOR_INCOME = 16      # university -> inventors
    FIRM_VALUE = 17           # market -> firm, value of successful implementations
    IMPLEMENTATION_COST = 18  # firm -> market, front-end costs
    BROKER_FEES = 19          # parties -> brokers
    BROKER_REWARDS = 20       # government -> brokers
    BROKER_COSTS = 21         # brokers -> market, operating costs
    PREMIUMS = 22             # firm + government -> insurer
    PREMIUM_SUBSIDIES = 23    # government part of premiums
    CLAIMS = 24               # insurer -> firm, on insured failures only
    CLAIMS_UNPAID = 25        # claims an insolvent insurer could not pay
    REWARDS_DENIED = 26       # rewards and subsidies refused for lack of budget (yuan)
    FIRM_SURPLUS = 27         # change in firms' cash
    # stocks at month end
    SHELVED = 28
    NEGOTIATING = 29
    ON_TRIAL = 30
    LICENSED = 31
    IN_USE = 32
    ABANDONED = 33
    BROKERS_ACTIVE = 34
    BROKER_ENTRIES = 35       # flow
    BROKER_EXITS = 36         # flow
    INSURERS_ACTIVE = 37
    INSURER_RESERVES = 38
    MEAN_BELIEF = 39          # firms' mean belief in the success of university technology
    # balances (yuan): their sum is constant (money is conserved)
    CASH_FIRMS = 40
    CASH_UNIVERSITIES = 41
    CASH_INVENTORS = 42
    CASH_BROKERS = 43
    CASH_INSURERS = 44
    CASH_GOVERNMENT = 45
    CASH_MARKET = 46          # the outside economy: pays value, receives costs


SERIES_NAMES = tuple(m.name.lower() for m in Series)
N_SERIES = len(Series)
STATUS_COLUMNS = (Series.SHELVED, Series.NEGOTIATING, Series.ON_TRIAL, Series.LICENSED, Series.IN_USE, Series.ABANDONED)
BALANCE_COLUMNS = tuple(range(Series.CASH_FIRMS, Series.CASH_MARKET + 1))

_FLOWS = [
    Series.NEEDS_RAISED, Series.NEEDS_SURFACED, Series.NEEDS_EXPIRED, Series.MATCHES, Series.MATCHES_BROKERED,
    Series.NEGOTIATIONS_FAILED, Series.SIGNED_LICENCE, Series.SIGNED_TRIAL, Series.SIGNED_INSURED,
    Series.SUCCESSES, Series.FAILURES, Series.TRIALS_CONVERTED, Series.LICENCE_PAYMENTS, Series.TRIAL_PAYMENTS,
    Series.UNIVERSITY_INCOME, Series.INVENTOR_INCOME, Series.FIRM_VALUE, Series.IMPLEMENTATION_COST,
    Series.BROKER_FEES, Series.BROKER_REWARDS, Series.BROKER_COSTS, Series.PREMIUMS, Series.PREMIUM_SUBSIDIES,
    Series.CLAIMS, Series.CLAIMS_UNPAID, Series.REWARDS_DENIED, Series.FIRM_SURPLUS, Series.BROKER_ENTRIES,
    Series.BROKER_EXITS,
]

# the metrics of one run (columns of summary.csv besides the parameters)
METRICS = (
    "needs_raised", "matches", "matches_brokered", "contracts", "signed_licence", "signed_trial", "signed_insured",
    "successes", "failures", "trials_converted", "conversion_rate", "mean_months_need_to_signing",
    "university_income", "inventor_income", "firm_surplus", "broker_income", "broker_fees", "broker_rewards",
    "brokers_final", "brokers_mean", "premiums", "premium_subsidies", "claims", "loss_ratio", "insurer_reserves_final",
    "gov_spend", "gov_spend_rewards", "gov_spend_subsidies",
)


def new_series(months: int) -> np.ndarray:
    return np.zeros((months, N_SERIES), dtype=np.float64)


def summarize(series: np.ndarray, n_achievements: int) -> dict:
    """One row of run metrics from a run's series."""
    tot = {Series(c).name.lower(): float(series[:, c].sum()) for c in _FLOWS}
    last = series[-1]
    contracts = tot["signed_licence"] + tot["signed_trial"]
    premiums = tot["premiums"]
    out = {
        "needs_raised": tot["needs_raised"],
        "matches": tot["matches"],
        "matches_brokered": tot["matches_brokered"],
        "contracts": contracts,
        "signed_licence": tot["signed_licence"],
        "signed_trial": tot["signed_trial"],
        "signed_insured": tot["signed_insured"],
        "successes": tot["successes"],
        "failures": tot["failures"],
        "trials_converted": tot["trials_converted"],
        "conversion_rate": float(last[Series.IN_USE]) / n_achievements,
        "mean_months_need_to_signing": float(series[:, Series.SIGN_DELAY_SUM].sum()) / contracts if contracts else np.nan,
        "university_income": tot["university_income"],
        "inventor_income": tot["inventor_income"],
        "firm_surplus": tot["firm_surplus"],
        "broker_income": tot["broker_fees"] + tot["broker_rewards"],
        "broker_fees": tot["broker_fees"],
        "broker_rewards": tot["broker_rewards"],
        "brokers_final": float(last[Series.BROKERS_ACTIVE]),
        "brokers_mean": float(series[:, Series.BROKERS_ACTIVE].mean()),
        "premiums": premiums,
        "premium_subsidies": tot["premium_subsidies"],
        "claims": tot["claims"],
        "loss_ratio": tot["claims"] / premiums if premiums else np.nan,
        "insurer_reserves_final": float(last[Series.INSURER_RESERVES]),
        "gov_spend": tot["broker_rewards"] + tot["premium_subsidies"],
        "gov_spend_rewards": tot["broker_rewards"],
        "gov_spend_subsidies": tot["premium_subsidies"],
    }
    return out


class InvariantError(AssertionError):
    """A run broke one of the model's invariants."""


def check_invariants(series: np.ndarray, n_achievements: int, initial_money: float, cfg=None) -> None:
    """Recompute the model's invariants from a series; raise :class:`InvariantError` on the first broken one.

    With the run's config ``cfg``, the instruments' rules are checked too: a switched-off
    instrument moves nothing, rewards stay within their rate and cap, subsidies within
    their share and cap, claims within the insured costs.
    """
    S = Series
    s = series
    if not np.isfinite(s).all():
        raise InvariantError(f"{SERIES_NAMES[int(np.nonzero(~np.isfinite(s))[1][0])]} is not finite")
    # each achievement is in exactly one status
    stock = s[:, list(STATUS_COLUMNS)].sum(axis=1)
    bad = np.nonzero(stock != n_achievements)[0]
    if bad.size:
        raise InvariantError(f"month {bad[0]}: statuses add up to {stock[bad[0]]}, not {n_achievements}")
    # money is conserved: the balances always add up to the initial money
    total = s[:, list(BALANCE_COLUMNS)].sum(axis=1)
    bad = np.nonzero(total != initial_money)[0]
    if bad.size:
        raise InvariantError(f"month {bad[0]}: money adds up to {total[bad[0]]:.0f}, not {initial_money:.0f}")
    # every flow accounted for: balance changes match the flows
    if not np.array_equal(np.diff(s[:, S.CASH_FIRMS]), s[1:, S.FIRM_SURPLUS]):
        raise InvariantError("firms' cash changes differ from the firm surplus flow")
    market = (s[:, S.IMPLEMENTATION_COST] + s[:, S.BROKER_COSTS] - s[:, S.FIRM_VALUE])
    if not np.array_equal(np.diff(s[:, S.CASH_MARKET]), market[1:]):
        raise InvariantError("the market's balance changes differ from value, costs and broker costs")
    gov = -(s[:, S.BROKER_REWARDS] + s[:, S.PREMIUM_SUBSIDIES])
    if not np.array_equal(np.diff(s[:, S.CASH_GOVERNMENT]), gov[1:]):
        raise InvariantError("government's balance changes differ from rewards and subsidies")
    # the funnel never widens (cumulative)
    c = np.cumsum(s, axis=0)
    contracts = c[:, S.SIGNED_LICENCE] + c[:, S.SIGNED_TRIAL]
    for name, wide, narrow in (
        ("needs >= matches", c[:, S.NEEDS_RAISED], c[:, S.MATCHES]),
        ("matches >= contracts", c[:, S.MATCHES], contracts),
        ("contracts >= successes", contracts, c[:, S.SUCCESSES]),
        ("contracts >= successes + failures", contracts, c[:, S.SUCCESSES] + c[:, S.FAILURES]),
        ("successes >= trials converted", c[:, S.SUCCESSES], c[:, S.TRIALS_CONVERTED]),
        ("matches >= brokered matches", c[:, S.MATCHES], c[:, S.MATCHES_BROKERED]),
    ):
        bad = np.nonzero(wide < narrow)[0]
        if bad.size:
            raise InvariantError(f"month {bad[0]}: funnel widens, {name} fails ({wide[bad[0]]} < {narrow[bad[0]]})")
    # a trial fee only on success: trial payments only in months with converted trials
    bad = np.nonzero((s[:, S.TRIAL_PAYMENTS] > 0) & (s[:, S.TRIALS_CONVERTED] == 0))[0]
    if bad.size:
        raise InvariantError(f"month {bad[0]}: trial payments without a converted trial")
    # a claim only on failure: claims only in months with failures
    bad = np.nonzero((s[:, S.CLAIMS] > 0) & (s[:, S.FAILURES] == 0))[0]
    if bad.size:
        raise InvariantError(f"month {bad[0]}: claims paid in a month without failures")
    for c_ in range(s.shape[1]):
        if c_ in (S.FIRM_SURPLUS, S.MEAN_BELIEF, S.CASH_BROKERS, S.CASH_GOVERNMENT, S.CASH_MARKET):
            continue  # brokers pay costs on credit, government and the market are sources of money
        if (s[:, c_] < 0).any():
            raise InvariantError(f"{SERIES_NAMES[c_]} is negative")
    if cfg is not None:
        _check_instruments(s, cfg)


def _check_instruments(s: np.ndarray, cfg) -> None:
    """The instruments' rules, month by month, from the series and the run's config."""
    S = Series
    off = {
        "free_trial": (S.SIGNED_TRIAL, S.TRIAL_PAYMENTS, S.TRIALS_CONVERTED, S.ON_TRIAL),
        "broker_reward": (S.BROKER_REWARDS,),
        "insurance": (S.SIGNED_INSURED, S.PREMIUMS, S.PREMIUM_SUBSIDIES, S.CLAIMS, S.CLAIMS_UNPAID),
    }
    for flag, columns in off.items():
        if not getattr(cfg.regime, flag):
            for c in columns:
                if s[:, c].any():
                    raise InvariantError(f"{SERIES_NAMES[c]} is not zero though {flag} is off")
    # rewards: each within min(rate x payment, cap), one per paid contract payment (each rounded
    # down to the yuan from a float product: a yuan of slack per payment for the float's last bit)
    payments = s[:, S.SIGNED_LICENCE] + s[:, S.TRIALS_CONVERTED]
    paid = s[:, S.LICENCE_PAYMENTS] + s[:, S.TRIAL_PAYMENTS]
    bad = np.nonzero((s[:, S.BROKER_REWARDS] > np.floor(cfg.broker.cap) * payments)
                     | (s[:, S.BROKER_REWARDS] > cfg.broker.rate * paid + payments))[0]
    if bad.size:
        raise InvariantError(f"month {bad[0]}: broker rewards {s[bad[0], S.BROKER_REWARDS]:.0f} exceed the rate or "
                             "the cap of the payments made")
    # subsidies: within their share (+ rounding) and cap, paid at signing of insured contracts
    ins = s[:, S.SIGNED_INSURED]
    bad = np.nonzero((s[:, S.PREMIUM_SUBSIDIES] > np.floor(cfg.insurance.subsidy_cap) * ins)
                     | (s[:, S.PREMIUM_SUBSIDIES] > cfg.insurance.subsidy_share * s[:, S.PREMIUMS] + 0.5 * ins))[0]
    if bad.size:
        raise InvariantError(f"month {bad[0]}: premium subsidies exceed their share or cap")
    # claims: within the insured share of what was spent on implementations so far (each claim
    # is rounded half up to the yuan: half a yuan of slack per failure)
    cum = np.cumsum(s, axis=0)
    bad = np.nonzero(cum[:, S.CLAIMS] + cum[:, S.CLAIMS_UNPAID]
                     > cfg.insurance.coverage * cum[:, S.IMPLEMENTATION_COST] + 0.5 * cum[:, S.FAILURES])[0]
    if bad.size:
        raise InvariantError(f"month {bad[0]}: claims exceed the insured share of implementation costs")
