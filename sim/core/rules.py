"""Every business rule of the model, written once.

Each rule is a small ``numba.njit`` function of scalars: the Mesa agents call
them from Python and the Numba kernels call them from compiled loops, so the two
engines cannot disagree on a decision, a price, a chance or a payment. Money is
integer yuan (int64); rounding is explicit and happens here.

The economics, in one paragraph: a firm judges a project by the certainty
equivalent (CARA utility, absolute risk aversion = relative risk aversion / cash)
of a two-outcome lottery (the implementation succeeds with the firm's estimated
chance or fails). A licence price is the Nash bargain between the university's
reservation price and the firm's willingness to pay. A free trial moves the
payment to the success state; insurance refunds part of the implementation cost
in the failure state. The firm picks the contract form with the highest
certainty equivalent among those the regime, the university and its cash allow.
"""

from __future__ import annotations

import math

import numpy as np

from .jit import entry

# achievement status (exactly one at any time)
SHELVED = 0
NEGOTIATING = 1
ON_TRIAL = 2
LICENSED = 3
IN_USE = 4
ABANDONED = 5
NOT_YET = 6        # not yet disclosed: arrives later in the run
EXPIRED = 7        # left the portfolio unconverted (Zhejiang: to the sector pools after 3 years)
USE_ENDED = 8      # its use ended after the product's life
MATURING = 9       # in a publicly funded pilot test: not on offer until it ends
N_STATUS = 10
STATUS_NAMES = ("shelved", "negotiating", "on_trial", "licensed", "in_use", "abandoned")

# a project slot's state (a firm runs several: sim.core.population)
IDLE = 0
NEED = 1
NEGOTIATING_FIRM = 2
IMPLEMENTING = 3

# negotiation step outcome
CONTINUES = 0
CONCLUDED = 1
BROKE_DOWN = -1


@entry
def yuan(x):
    """Round an amount to whole yuan (half up)."""
    return np.int64(math.floor(x + 0.5))


@entry
def yuan_array(x):
    """:func:`yuan` over an array."""
    out = np.empty(x.shape[0], dtype=np.int64)
    for i in range(x.shape[0]):
        out[i] = yuan(x[i])
    return out


# --------------------------------------------------------------------------- projects and beliefs
@entry
def project_amount(sme_amount, firm_scale):
    """A project's value or cost in a firm: the SME amount scaled by the firm's size."""
    return yuan(sme_amount * firm_scale)


@entry
def belief_mean(alpha, beta):
    """Mean of a firm's Beta(alpha, beta) belief in the success of university technology."""
    return alpha / (alpha + beta)


@entry
def peer_outcomes(sector_successes, sector_failures, own_successes, own_failures):
    """(successes, failures) a firm learns from its sector's peers this month: all but its own (its projects'
    successes and failures this month)."""
    return sector_successes - own_successes, sector_failures - own_failures


# --------------------------------------------------------------------------- outcomes
@entry
def success_chance(quality, maturity, absorptive, fit, maturity_floor, absorptive_floor, fit_floor):
    """Chance that an implementation succeeds.

    Latent quality scaled by how ready the achievement is, how well the firm can
    absorb it and how well the two fit; each factor runs from its floor (at 0) to 1.
    """
    return (
        quality
        * (maturity_floor + (1.0 - maturity_floor) * maturity)
        * (absorptive_floor + (1.0 - absorptive_floor) * absorptive)
        * (fit_floor + (1.0 - fit_floor) * fit)
    )


@entry
def pair_key(firm, achievement_key):
    """One integer naming a (firm, achievement) pair, for its fit and outcome draws: the firm in the high 32 bits,
    the achievement's key (``ach_key``, below 2^32: a run has at most :data:`sim.core.schema.POPULATION_MAX` achievements)
    in the low ones, so a pair is named alike however many achievements the run has."""
    return (np.int64(firm) << np.int64(32)) | np.int64(achievement_key)


@entry
def find_chance(match, listed):
    """The chance a search of ``listed`` achievements finds one meeting the need, each meeting it with chance
    ``match`` independently: ``1 - (1 - match)^listed``."""
    return 1.0 - (1.0 - match) ** listed


@entry
def perceived_chance(true_chance, noise_sd, z):
    """A judgement of the success chance with normal error ``noise_sd * z``, kept in [0.01, 0.99]."""
    return min(0.99, max(0.01, true_chance + noise_sd * z))


@entry
def broker_noise(noise_at_zero_skill, skill):
    """A broker's judgement error falls linearly with skill (0 at skill 1)."""
    return noise_at_zero_skill * (1.0 - skill)


@entry
def firm_estimate(belief_mean, signal, belief_weight):
    """The firm's success estimate: its belief about university technology blended with the signal."""
    return belief_weight * belief_mean + (1.0 - belief_weight) * signal


# --------------------------------------------------------------------------- utility and prices
@entry
def certainty_equivalent(p, x_success, x_failure, abs_risk_aversion):
    """CARA certainty equivalent of the lottery (x_success w.p. p, else x_failure)."""
    if p >= 1.0:
        return float(x_success)
    if p <= 0.0:
        return float(x_failure)
    if abs_risk_aversion <= 0.0:
        return p * x_success + (1.0 - p) * x_failure
    r = abs_risk_aversion
    a = -r * x_success
    b = -r * x_failure
    m = max(a, b)  # log-sum-exp for stability
    return -(m + math.log(p * math.exp(a - m) + (1.0 - p) * math.exp(b - m))) / r


@entry
def discount_factor(annual_rate, months):
    """Present value of one yuan paid ``months`` from now at the yearly rate ``annual_rate``."""
    return (1.0 + annual_rate) ** (-months / 12.0)


@entry
def university_accepts(chance, at_sign, on_success_pv, risk_aversion, ask, reservation_share):
    """Whether a university offers a contract form: the certainty equivalent of its income from it (``at_sign`` for
    sure, plus the present value of the payment on success with probability ``chance``; CARA with coefficient
    ``risk_aversion / ask``) reaches its reservation price, ``reservation_share x ask`` (as for a licence)."""
    ra = risk_aversion / ask if ask > 0 else 0.0
    return certainty_equivalent(chance, float(at_sign + on_success_pv), float(at_sign), ra) >= reservation_share * ask


@entry
def abs_risk_aversion(relative, wealth):
    """Absolute risk aversion: the relative coefficient per yuan of ``wealth`` (poorer firms fear losses more)."""
    return relative / max(float(wealth), 1.0)


@entry
def licence_price(willingness, reservation, bargaining_power):
    """Nash bargain over the price; -1 when the firm will not pay the reservation price."""
    if willingness < reservation:
        return np.int64(-1)
    return yuan(reservation + bargaining_power * (willingness - reservation))


@entry
def bargained_price(willingness, reservation, bargaining_power, affordable):
    """The licence price the pair agrees on: the Nash bargain (:func:`licence_price`) over the prices both accept
    that the firm can pay (at most ``affordable``): the unconstrained bargain, or the most the firm can pay where that
    is less and still at least the reservation price; -1 when no price is both acceptable and affordable."""
    price = licence_price(willingness, reservation, bargaining_power)
    if price < 0 or affordable >= price:
        return price
    most = np.int64(math.floor(affordable))   # whole yuan: never below the reservation price, even by a fraction
    return most if most >= reservation else np.int64(-1)


@entry
def success_willingness(p, x_success, x_failure, abs_risk_aversion):
    """The most a firm will pay ONLY if its implementation succeeds: the payment ``w`` at which the certainty
    equivalent of (``x_success - w`` w.p. ``p``, else ``x_failure``) is 0 (:func:`certainty_equivalent`).

    Closed form, CARA with coefficient r: ``w = x_success + ln((1 - (1 - p) e^(-r x_failure)) / p) / r``; risk
    neutral (r = 0): ``w = x_success + (1 - p) x_failure / p``. -1 when no payment (not even 0 or less) makes the
    lottery worth taking (its failure alone costs too much, or it never succeeds).
    """
    if p <= 0.0:
        return -1.0
    if p >= 1.0:
        return float(x_success)
    if abs_risk_aversion <= 0.0:
        return x_success + (1.0 - p) * x_failure / p
    r = abs_risk_aversion
    if -r * x_failure > 700.0:   # e^700: the failure's disutility alone exceeds anything a success can make up
        return -1.0
    rest = 1.0 - (1.0 - p) * math.exp(-r * x_failure)
    if rest <= 0.0:
        return -1.0
    return x_success + math.log(rest / p) / r


@entry
def success_reservation(chance, reservation, discount, bonus_pv, risk_aversion, ask):
    """The least a university accepts to be paid ONLY on success, ``discount`` x the payment later (plus
    ``bonus_pv``, what the conversion is worth to it besides: an appraisal reward), with chance ``chance``: the payment
    at which :func:`university_accepts`' certainty equivalent (CARA, ``risk_aversion / ask``) equals its
    ``reservation`` price (in yuan).

    Closed form: ``x = (-ln((e^(-r R) - (1 - q)) / q) / r - B) / D`` with r the coefficient, R the reservation, q the
    chance, D the discount and B the bonus; risk neutral, ``x = (R / q - B) / D``. Never below 0; -1 when no payment
    reaches the reservation (the chance is too small for the university's risk aversion).
    """
    if reservation <= 0.0:
        return 0.0
    if chance <= 0.0 or discount <= 0.0:
        return -1.0
    r = risk_aversion / ask if ask > 0 else 0.0
    if r <= 0.0 or chance >= 1.0:
        needed = reservation / min(chance, 1.0)
    else:
        rest = math.exp(-r * reservation) - (1.0 - chance)
        if rest <= 0.0:
            return -1.0
        needed = -math.log(rest / chance) / r
    return max(0.0, (needed - bonus_pv) / discount)


@entry
def negotiation_months(mean, brokered, broker_speedup):
    """Mean months to conclude a form's negotiation (``mean``): a broker speeds any deal."""
    return mean * broker_speedup if brokered else mean


@entry
def negotiation_step(u, mean_months, hazard):
    """One month of a running negotiation: breaks down with ``hazard``, else concludes with 1/mean. A negotiation of
    0 months (a published price taken as it stands: an open licence) concludes at once and cannot break down. Total:
    a mean of a month or less concludes with chance 1 (no division by a tiny or subnormal mean)."""
    if mean_months <= 0.0:
        return CONCLUDED
    if u < hazard:
        return BROKE_DOWN
    conclude = 1.0 if mean_months <= 1.0 else 1.0 / mean_months
    if u < hazard + (1.0 - hazard) * conclude:
        return CONCLUDED
    return CONTINUES


@entry
def settles_as_abandoned(failures, max_failures):
    """After a failed implementation, an achievement is abandoned once it has failed ``max_failures`` times."""
    return failures >= max_failures


@entry
def inventor_payment(university_net_income, inventor_share):
    """The inventors' share of what the university takes in."""
    return yuan(inventor_share * university_net_income)


# --------------------------------------------------------------------------- brokers and government
@entry
def broker_fee(contract_value, fee_rate):
    """The broker's fee from the parties on a contract payment."""
    return yuan(fee_rate * contract_value)


@entry
def fee_split(fee, firm_share):
    """(firm's part, university's part) of a broker fee; the parts add up to the fee."""
    firm_part = yuan(firm_share * fee)
    return firm_part, fee - firm_part


@entry
def firms_fee(amount, fee_rate, fee_firm_share):
    """The firm's part of the broker's fee on a payment of ``amount`` (what a payment costs the firm on top)."""
    return fee_split(broker_fee(amount, fee_rate), fee_firm_share)[0]


@entry
def within_budget(amount, spent_this_year, annual_budget):
    """Whether government can pay ``amount`` this year (annual_budget < 0 means no budget)."""
    return annual_budget < 0.0 or spent_this_year + amount <= annual_budget


@entry
def budget_year_starts(month):
    """Budgets are yearly: month 0, 12, 24, ... open a new budget year."""
    return month % 12 == 0


@entry
def moving_average(previous, latest, memory):
    """Exponential moving average with weight ``memory`` on the past."""
    return memory * previous + (1.0 - memory) * latest


@entry
def broker_exits(avg_profit, exit_loss, age_months, grace_months):
    """A broker leaves when, past its grace period, its average monthly profit is below -exit_loss."""
    return age_months >= grace_months and avg_profit < -exit_loss


@entry
def broker_entry_chance(mean_avg_profit, monthly_cost, max_chance, sensitivity):
    """Chance that a candidate broker enters: logistic in incumbents' average profit (in months of cost).

    Candidates differ in their outside options, so entry rises smoothly with
    profitability: half of ``max_chance`` when incumbents just break even.
    """
    x = sensitivity * mean_avg_profit / max(monthly_cost, 1.0)
    return max_chance / (1.0 + math.exp(-x))


