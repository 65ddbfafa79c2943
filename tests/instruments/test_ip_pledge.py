"""The IP pledge instrument (sim/instruments/ip_pledge.py): loans against patents with a public guarantee fund.

Each test asserts something a wrong implementation would break: every loan, rate,
repayment, default and guarantee payout of a one-firm world is the closed form, replayed
from the audit log (which lender, how much, at what rate, what is repaid and what the
fund pays); a guarantee fund lowers the lenders' rate and finances more contracts by
cash-poor firms (paired seeds, a signed-rank test); both engines agree to the bit where
loans, defaults, refused guarantees and withdrawn lenders all occur; the invariants catch
a corrupted series.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter

import numpy as np
import pytest
from scipy import stats

from sim import api
from sim.engines.numba import kernels
from sim.core import ledger
from sim.instruments import ip_pledge as P
from sim.engines.mesa.model import TransferModel
from sim.core.population import draw_population
from sim.core.results import InvariantError, check_invariants

# seeds no other suite uses
SEEDS_ONE = range(7200, 7240)
SEEDS_PAIRED = range(7100, 7160)   # 60: the fund moves loans by ~10 of ~1,500 SMEs
SEEDS_ENGINES = range(7300, 7304)
SEEDS_BOLD = range(7700, 7712)     # 12: the smallest p of a one-sided signed-rank test is 1/4096

# one SME, one achievement, one university, no brokers: the firm finds the achievement at once and borrows to sign:
# one decision, one loan, one outcome (after a success it has cash, after a default none: it borrows once; pricing
# from experience is the next test's). Near risk-neutral, so that it signs; loans up to the asking price, so that it
# can borrow what it lacks.
ONE = ("scenario.firms.n=1", "scenario.firms.sme_share=1.0", "scenario.sectors=1", "scenario.universities.n=1",
       "scenario.universities.achievements_each=1", "scenario.universities.arrivals_per_month=0",
       "scenario.universities.expiry_months=1200", "scenario.brokers.initial=0", "scenario.brokers.max=0",
       "scenario.firms.need_rate_sme=1", "scenario.firms.self_search_prob=1", "scenario.firms.list_match=1",
       "scenario.firms.risk_aversion_sme=0.01",
       "scenario.firms.risk_aversion_sigma=0", "scenario.months=60", "progress=false", "regime=ip_pledge",
       "ip_pledge.loan_to_value=1")

# the population the instrument is meant for: SMEs short of cash for a deal (median cash 1 M yuan against a median
# implementation cost and asking price of ~1 M each) and not so risk-averse that a loss beyond their cash rules every
# deal out (with the default relative risk aversion of 5, risk, not cash, is what stops them: on the default scenario
# a firm short of cash would stake all of it and more, which no firm that risk-averse accepts: none borrows, see
# test_no_credit_terms_make_a_borrower_accept_a_deal_below_one_minus_e_to_the_minus_risk_aversion)
CASH_POOR = ("scenario.firms.n=1500", "scenario.firms.sme_share=1.0", "scenario.months=48",
             "scenario.firms.risk_aversion_sme=0.3", "scenario.firms.cash_median_sme=1e6", "ip_pledge.loan_to_value=1",
             # a dense broker market (15 at the start, at a cost of 3,000 yuan a month, not the default 3 at 5,700):
             # search does not bind, cash does; with the default's few brokers the contracts' paired differences
             # follow the brokers' entries and exits, not the fund (60 seeds: -0.3, p = 0.18)
             "scenario.brokers.initial=15", "scenario.brokers.monthly_cost=3000", "progress=false",
             # one project a firm: a loan's effect on the firm's one contract (with two slots a firm's second project
             # competes for the cash the first left, and the fund's paired effect on contracts blurs: 60 seeds, +5.2,
             # p = 0.013; the lenders' records below match a repayment to its loan by the firm)
             "scenario.firms.projects_sme=1",
             # every firm's assets at the median multiple of its cash: the fund's effect, not the spread of liquidity
             "scenario.firms.assets_sigma=0")


def _one_firm(cfg, seed, assets_share=0.0):
    """The one-firm population, its cash short of a licence's price (at least 0.6 x the asking price) plus the
    implementation cost, by design; its assets beyond cash ``assets_share`` x the asking price (so that what it may
    pledge covers part of a loan: the lender recovers some and loses the rest)."""
    pop = draw_population(cfg, seed)
    cash = int(pop.ach_cost[0] + pop.ach_ask[0] // 10)
    return dataclasses.replace(pop, firm_cash=np.array([cash], dtype=np.int64),
                               firm_assets=np.array([int(assets_share * pop.ach_ask[0])], dtype=np.int64))


# --------------------------------------------------------------------------- (1) the closed form, from the audit log
@pytest.mark.parametrize("fund, assets_share", [("2e7", 0.0), ("0", 0.0), ("2e7", 0.6)])
def test_every_loan_rate_repayment_and_guarantee_is_the_closed_form(fund, assets_share):
    cfg = api.compose(*ONE, f"ip_pledge.fund_size={fund}")
    pl = cfg.ip_pledge
    seen = Counter()
    for seed in SEEDS_ONE:
        pop = _one_firm(cfg, seed, assets_share)
        assets = int(pop.firm_assets[0])   # less what the lender seizes
        series, _, _, arr = kernels.run(cfg, seed, pop, audit_rows=5000)
        audit = arr.audit[:arr.audit_n[0]]
        assert arr.audit_n[0] < arr.audit.shape[0]
        base = arr.acct_base
        firm, gov = base[ledger.FIRM], base[ledger.GOVERNMENT]
        lenders = [int(base[P.LENDER] + i) for i in range(pl.lenders)]
        cash = {firm: int(pop.firm_cash[0]), **{acct: math.floor(pl.initial_reserves + 0.5) for acct in lenders}}
        defaults, settled = [0] * pl.lenders, [0] * pl.lenders
        fund_paid, loan, recovered = 0, None, 0
        for r, (month, kind, payer, payee, amount) in enumerate(audit):
            if kind == P.PLEDGE_LOANS:
                assert loan is None   # one firm: one loan at a time
                # each lender's quote: the limit (the patent's pledge value within its cash), guaranteed if the fund's
                # capital left covers the guarantee on the whole limit, priced from its own experience
                # the achievement: the one whose implementation cost is paid at this signing
                j = r + 1
                while audit[j, 1] != ledger.IMPLEMENTATION_COST:
                    j += 1
                (a,) = np.nonzero(arr.ach_cost == audit[j, 4])[0]
                quotes = []
                collateral = math.floor(pl.asset_loan_to_value * assets)   # the lending value of its pledged assets
                for i, acct in enumerate(lenders):
                    limit = min(math.floor(pl.loan_to_value * arr.ach_ask[a]) + collateral, cash[acct])
                    guaranteed = (pl.guarantee_share > 0
                                  and math.floor(pl.fund_size) - fund_paid >= math.ceil(pl.guarantee_share * limit))
                    d = (pl.prior_default * pl.prior_strength + defaults[i]) / (pl.prior_strength + settled[i])
                    g = pl.guarantee_share if guaranteed else 0.0
                    lgd = (limit - min(collateral, limit)) / limit   # the share of the limit the assets leave at risk
                    quotes.append((pl.funding_rate * pl.term_months / 12.0 + (1.0 + pl.loading) * d * lgd * (1.0 - g),
                                   limit, guaranteed))
                # the cheapest; on ties the one that can lend more, then the first
                best = min(range(pl.lenders), key=lambda i: (quotes[i][0], -quotes[i][1], i))
                rate, limit, guaranteed = quotes[best]
                assert payer == lenders[best] and payee == firm
                # it lends exactly what the firm's cash lacks for its payments at signing (price, implementation cost)
                j, due = r + 1, 0
                while audit[j - 1, 1] != ledger.IMPLEMENTATION_COST:
                    due += audit[j, 4] if audit[j, 2] == firm else 0
                    j += 1
                assert 0 < amount == due - cash[firm] <= limit
                loan = (best, int(amount), math.floor(rate * amount + 0.5), guaranteed, collateral)
                assert series[month, P.LOAN_INTEREST_DUE] == loan[2]
                assert series[month, P.LOANS_GUARANTEED] == guaranteed
                seen["guaranteed" if guaranteed else "not guaranteed"] += 1
            elif kind == P.LOAN_REPAYMENTS:
                i, principal, interest, guaranteed, collateral = loan
                assert payer == firm and payee == lenders[i]
                # loan + interest as far as the firm's cash goes; then the pledged assets are seized for the rest, up
                # to their lending value (paid to the lender by the outside economy); interest first
                owed = principal + interest
                assert amount == min(owed, cash[firm])
                seized = min(owed - int(amount), collateral)
                k = r + 1
                if seized > 0:
                    assert tuple(audit[k, 1:]) == (P.COLLATERAL_RECOVERED, base[ledger.MARKET], lenders[i], seized)
                    k += 1
                    seen["recovered"] += 1
                else:
                    assert not (k < len(audit) and audit[k, 1] == P.COLLATERAL_RECOVERED)
                assets -= seized
                recovered += seized
                back = int(amount) + seized
                unpaid = principal - (back - min(interest, back))
                defaulted = back < owed
                paid_out = k < len(audit) and audit[k, 1] == P.GUARANTEE_PAYOUTS
                if defaulted and guaranteed:   # the fund pays its share of the principal lost, rounded down
                    assert paid_out and audit[k, 2] == gov and audit[k, 3] == lenders[i]
                    assert audit[k, 4] == math.floor(pl.guarantee_share * unpaid)
                    fund_paid += int(audit[k, 4])
                else:
                    assert not paid_out
                assert series[month, P.LOAN_LOSSES] == (unpaid if defaulted else 0)
                defaults[i] += int(amount) < owed   # the lender learns how often a borrower's cash falls short
                settled[i] += 1
                seen["defaulted" if defaulted else "repaid"] += 1
                seen["paid out"] += paid_out
                loan = None
            for acct, sign in ((payer, -1), (payee, 1)):
                if acct in cash:
                    cash[acct] += sign * int(amount)
        assert series[:, P.GUARANTEE_PAYOUTS].sum() == fund_paid <= math.floor(pl.fund_size)
        assert series[:, P.COLLATERAL_RECOVERED].sum() == recovered and arr.firm_assets[0] == assets
        assert series[-1, P.LOANS_OUTSTANDING] == (loan is not None)
        assert (series[:, P.LENDERS_ACTIVE] == pl.lenders).all()
        assert [arr.balance[a] for a in lenders] == [cash[a] for a in lenders]
    # the cases that matter occurred: loans repaid and defaulted, the fund paying when it has capital and never
    # without
    assert seen["repaid"] >= 3 and seen["defaulted"] >= 3
    assert (seen["recovered"] >= 3) == (assets_share > 0)
    if fund == "0":
        assert seen["guaranteed"] == 0 and seen["paid out"] == 0
    else:
        assert seen["not guaranteed"] == 0 and seen["paid out"] == seen["defaulted"]


def test_lenders_price_each_loan_from_their_own_settled_loans():
    """Many firms: a loan is priced when the firm decides, before it signs, so the lender's experience then is one of
    the states it passed through up to the signing (one per settlement in the audit log; a fund without limit
    guarantees every loan, so a default is a settlement followed by a payout). The interest of each loan repaid in
    full (repayment - principal) is the rate of one of those states, exactly; later loans are priced from
    experience, not the prior alone; the lenders' records are the audit log's settlements and defaults."""
    cfg = api.compose(*CASH_POOR, "regime=ip_pledge", "ip_pledge.fund_size=1e12",
                      "scenario.firms.assets_to_cash_sme=0")   # the patent alone: every shortfall is a loss
    pl = cfg.ip_pledge
    seen = Counter()
    for seed in SEEDS_PAIRED:
        series, _, _, arr = kernels.run(cfg, seed, audit_rows=400_000)
        assert arr.audit_n[0] < arr.audit.shape[0]
        audit = arr.audit[:arr.audit_n[0]]
        lenders = [int(arr.acct_base[P.LENDER] + i) for i in range(pl.lenders)]
        states = {acct: [(0, 0)] for acct in lenders}   # (defaults, settled loans), after each settlement
        running = {}   # firm account -> (lender, principal, states passed through up to the signing)
        for r, (month, kind, payer, payee, amount) in enumerate(audit):
            if kind == P.PLEDGE_LOANS:
                running[int(payee)] = (int(payer), int(amount), list(states[payer]))
            elif kind == P.LOAN_REPAYMENTS:
                lender, principal, known = running.pop(int(payer))
                assert payee == lender
                # what its pledged assets brought, if seized (the next row), counts as repaid
                seized = int(audit[r + 1, 4]) if r + 1 < len(audit) and audit[r + 1, 1] == P.COLLATERAL_RECOVERED else 0
                k = r + (2 if seized else 1)
                defaulted = k < len(audit) and audit[k, 1] == P.GUARANTEE_PAYOUTS
                amount = amount + seized
                if not defaulted:
                    quotes = {}
                    for d, n in known:
                        estimate = (pl.prior_default * pl.prior_strength + d) / (pl.prior_strength + n)
                        rate = pl.funding_rate * pl.term_months / 12.0 + (1.0 + pl.loading) * estimate * (
                            1.0 - pl.guarantee_share)
                        quotes[math.floor(rate * principal + 0.5)] = n
                    assert int(amount) - principal in quotes
                    seen["from experience"] += quotes[int(amount) - principal] > 0
                d, n = states[lender][-1]
                states[lender].append((d + defaulted, n + 1))
                seen["settled"] += 1
        for i, acct in enumerate(lenders):
            assert (arr.pl_defaults[i], arr.pl_observed[i]) == states[acct][-1]
    assert seen["settled"] > 20 and seen["from experience"] > 0


def test_the_rate_is_funding_plus_the_loaded_loss_the_fund_leaves_to_the_lender():
    # by hand: 3.5% a year for 12 months, plus 1.3 x 40% defaults x the 40% of the loss not guaranteed
    assert P.loan_rate(0.035, 12, 0.3, 0.4, 0.6, 1.0) == pytest.approx(0.035 + 1.3 * 0.4 * 0.4)
    assert P.loan_rate(0.035, 12, 0.3, 0.4, 0.0, 1.0) == pytest.approx(0.035 + 1.3 * 0.4)
    # collateral covering 3/4 of the limit leaves a quarter of the loss; covering all of it, the funding cost alone
    assert P.loan_rate(0.035, 12, 0.3, 0.4, 0.6, 0.25) == pytest.approx(0.035 + 1.3 * 0.4 * 0.25 * 0.4)
    assert P.loan_rate(0.035, 12, 0.3, 0.4, 0.6, 0.0) == 0.035
    assert P.loss_given_default(4_000, 3_000) == 0.25 and P.loss_given_default(4_000, 0) == 1.0
    assert P.loss_given_default(4_000, 4_000) == 0.0 and P.loss_given_default(4_000, 9_000) == 0.0
    assert P.loss_given_default(4_000, 3_999) == 1 / 4_000 and P.loss_given_default(0, 5) == 1.0
    assert P.default_estimate(0.4, 20.0, 3, 5) == pytest.approx((8 + 3) / 25)
    # repaid in full; interest paid, principal half lost; nothing
    assert P.repayment(1000, 200, 5000, 0) == (1200, 0, 200, 0)
    assert P.repayment(1000, 200, 700, 0) == (700, 0, 200, 500)
    assert P.repayment(1000, 200, 0, 0) == (0, 0, 0, 1000)
    assert P.guarantee_due(999, 0.6) == 599 and P.guarantee_of(999, 0.6) == 600


# --------------------------------------------------------------------------- (2) direction, over paired seeds
def test_a_guarantee_fund_lowers_the_rate_cash_poor_firms_borrow_at():
    """Paired seeds (the same firms and chance events with and without the fund's share): the paired difference of the
    mean lending rate, a one-sided Wilcoxon signed-rank test at the 1% level. Loans made and contracts are not asserted:
    their paired effects are small against the seeds' spread (+7.6 +- 2.8 loans of ~230 on these 60 seeds before the
    achievements' draws were rekeyed, +0.8 +- 2.5 after): under limited liability a firm short of cash borrows at
    almost any rate, so a cheaper rate moves few loans; what the fund buys is the borrowers' lower rate."""
    runs = {}
    for share in (0.6, 0.0):
        cfg = api.compose(*CASH_POOR, "regime=ip_pledge", f"ip_pledge.guarantee_share={share}")
        runs[share] = [api.simulate(cfg, seed, "numba").summary for seed in SEEDS_PAIRED]
    d = np.array([b["mean_loan_rate"] - a["mean_loan_rate"] for a, b in zip(runs[0.6], runs[0.0])])
    d = d[~np.isnan(d)]
    assert len(d) >= 15   # the rate is defined where both runs lent
    p = stats.wilcoxon(d, alternative="greater", zero_method="zsplit").pvalue
    assert d.mean() > 0 and p < 0.01, f"rate lowered by {d.mean():.3g} (se {d.std(ddof=1) / math.sqrt(len(d)):.2g}), p = {p:.3g}"
    # and the fund paid out: public money is what buys the effect
    assert sum(r["gov_spend_guarantees"] for r in runs[0.6]) > 0
    assert sum(r["gov_spend_guarantees"] for r in runs[0.0]) == 0


# --------------------------------------------------------------------------- (3) the engines, on the rare branches
def test_engines_agree_with_defaults_refused_guarantees_and_lenders_withdrawn():
    """Lenders that underprice (no loading, a prior of 5% defaults held firmly) with little capital, a budget that
    refuses guarantee payouts, and the instruments whose payments share the firm's cash (trials, insurance claims,
    royalty instalments)."""
    cfg = api.compose(*CASH_POOR, "regime.name=mix", "regime.instruments=[free_trial,insurance,royalty,ip_pledge]",
                      "scenario.firms.assets_to_cash_sme=0.3",   # collateral that covers part of a loan
                      "government.annual_budget=1e5", "ip_pledge.lenders=3", "ip_pledge.initial_reserves=5e5",
                      "ip_pledge.min_reserves=4e5", "ip_pledge.guarantee_share=0.3", "ip_pledge.loading=0",
                      "ip_pledge.prior_default=0.05", "ip_pledge.prior_strength=1000")
    seen = Counter()
    for seed in SEEDS_ENGINES:
        pop = draw_population(cfg, seed)
        mesa = TransferModel(cfg, seed, pop).run()
        numba, n_ach, money = kernels.simulate(cfg, seed, pop)
        assert np.array_equal(mesa, numba), f"seed {seed}"
        check_invariants(numba, n_ach, money, cfg)
        seen["loans"] += mesa[:, P.LOANS_MADE].sum()
        seen["defaults"] += mesa[:, P.LOANS_DEFAULTED].sum()
        seen["recovered"] += mesa[:, P.COLLATERAL_RECOVERED].sum() > 0
        seen["paid"] += mesa[:, P.GUARANTEE_PAYOUTS].sum() > 0
        seen["denied"] += mesa[:, P.GUARANTEES_DENIED].sum() > 0
        seen["withdrawn"] += mesa[0, P.LENDERS_ACTIVE] - mesa[-1, P.LENDERS_ACTIVE]
    assert seen["loans"] > 10 and seen["defaults"] > 5 and seen["recovered"] > 0
    assert seen["paid"] > 0 and seen["denied"] > 0 and seen["withdrawn"] > 0


def test_the_mesa_lenders_are_views_of_the_state():
    cfg = api.compose(*ONE)
    for seed in SEEDS_ONE:
        model = TransferModel(cfg, seed, _one_firm(cfg, seed))
        model.run()
        if model.arrays.pl_observed.sum() > 0:
            break
    assert len(model.lenders) == cfg.ip_pledge.lenders
    st = model.arrays
    for i, lender in enumerate(model.lenders):
        assert lender.reserves == st.balance[st.acct_base[P.LENDER] + i]
        assert lender.observed == st.pl_observed[i] and lender.defaults == st.pl_defaults[i]
        assert lender.default_estimate == pytest.approx(
            (cfg.ip_pledge.prior_default * cfg.ip_pledge.prior_strength + lender.defaults)
            / (cfg.ip_pledge.prior_strength + lender.observed))
    assert sum(lender.observed for lender in model.lenders) > 0


# --------------------------------------------------------------------------- (4) the invariants
@pytest.fixture(scope="module")
def lending_run():
    cfg = api.compose(*CASH_POOR, "regime=ip_pledge")
    for seed in SEEDS_PAIRED:
        series, _, _ = kernels.simulate(cfg, seed, draw_population(cfg, seed))
        if series[:, P.GUARANTEE_PAYOUTS].any() and series[:, P.LOANS_REPAID].any():
            return series, cfg
    raise AssertionError("no run with a repaid loan and a guarantee payout")


def _month(s, column):
    return int(np.nonzero(s[:, column])[0][0])


def _corrupt(s, how):
    """Break one invariant of the series ``s`` (in place)."""
    if how == "payout without a default":      # month 0: nothing has settled yet
        s[0, P.GUARANTEE_PAYOUTS] += 1
    elif how == "payout beyond the share":     # the fund pays the whole principal lost
        m = _month(s, P.GUARANTEE_PAYOUTS)
        s[m, P.GUARANTEE_PAYOUTS] = s[m, P.LOAN_LOSSES]
    elif how == "a yuan lent unaccounted":     # neither repaid, defaulted nor outstanding
        s[_month(s, P.PLEDGE_LOANS), P.PLEDGE_LOANS] += 1
    elif how == "a loan unaccounted":
        s[_month(s, P.LOANS_MADE), P.LOANS_MADE] += 1
    elif how == "a lender returns":            # one fewer at month 0 than later
        s[0, P.LENDERS_ACTIVE] -= 1
    elif how == "a loan without an offer":     # no credit offered up to the first loan
        s[:_month(s, P.LOANS_MADE) + 1, P.CREDIT_OFFERS] = 0
        s[:_month(s, P.LOANS_MADE) + 1, P.CREDIT_OFFERS_SHORT] = 0
        s[:_month(s, P.LOANS_MADE) + 1, P.CREDIT_OFFERS_SHORT_SME] = 0
    elif how == "more short than offered":
        m = _month(s, P.CREDIT_OFFERS)
        s[m, P.CREDIT_OFFERS_SHORT] = s[m, P.CREDIT_OFFERS] + 1
    elif how == "more SMEs short than short":
        m = _month(s, P.CREDIT_OFFERS)
        s[m, P.CREDIT_OFFERS_SHORT_SME] = s[m, P.CREDIT_OFFERS_SHORT] + 1


@pytest.mark.parametrize("how, message", [
    ("payout without a default", "without defaults"),
    ("payout beyond the share", "guarantee_share"),
    ("a yuan lent unaccounted", "lent differ"),
    ("a loan unaccounted", "loans made differ"),
    ("a lender returns", "lends again"),
    ("a loan without an offer", "more loans than credit offers"),
    ("more short than offered", "more offers to firms short of cash"),
    ("more SMEs short than short", "more offers to firms short of cash"),
])
def test_the_invariants_catch_a_corrupted_series(lending_run, how, message):
    series, cfg = lending_run
    P.check_series(series, cfg)   # the run itself keeps them
    s = series.copy()
    _corrupt(s, how)
    with pytest.raises(InvariantError, match=message):
        P.check_series(s, cfg)


def test_the_invariants_catch_payouts_beyond_the_fund(lending_run):
    series, cfg = lending_run
    paid = series[:, P.GUARANTEE_PAYOUTS].sum()
    with pytest.raises(InvariantError, match="exceed the fund"):
        P.check_series(series, dataclasses.replace(cfg, ip_pledge=dataclasses.replace(cfg.ip_pledge, fund_size=paid - 1)))


# --------------------------------------------------------------------------- (6) collateral: the patent and assets
def test_the_credit_limit_is_the_patents_and_the_assets_lending_value_within_what_the_lender_can_lend():
    # the assets' lending value: floor(asset_loan_to_value x assets), never negative
    assert P.asset_collateral(0.5, 3_000_001) == 1_500_000
    assert P.asset_collateral(0.3, 1_000_000) == 300_000 and P.asset_collateral(0.0, 10**9) == 0
    assert P.asset_collateral(0.5, -10) == 0
    # limit = floor(ltv x ask) + that, within what the lender can lend (at the boundary either way)
    assert P.credit_limit(0.4, 2_000_001, 1_500_000, 10**9) == 800_000 + 1_500_000
    assert P.credit_limit(0.4, 2_000_000, 1_500_000, 2_300_000) == 2_300_000
    assert P.credit_limit(0.4, 2_000_000, 1_500_000, 2_299_999) == 2_299_999
    assert P.credit_limit(0.0, 2_000_000, 1_500_000, 10**9) == 1_500_000   # the assets alone
    assert P.credit_limit(0.4, 2_000_000, 0, 10**9) == 800_000             # the patent alone


@pytest.mark.parametrize("cash, collateral, expected", [
    # (repaid from cash, recovered from the collateral, interest paid, principal unpaid) of a loan of 1,000 at 100
    (1_100, 500, (1_100, 0, 100, 0)),      # repaid in full from cash: nothing seized
    (5_000, 500, (1_100, 0, 100, 0)),
    (600, 500, (600, 500, 100, 0)),        # cash and collateral exactly cover what is owed
    (600, 499, (600, 499, 100, 1)),        # a yuan short: the lender loses it
    (600, 10_000, (600, 500, 100, 0)),     # never more seized than is owed
    (50, 30, (50, 30, 80, 1_000)),         # interest first: all the principal lost
    (0, 0, (0, 0, 0, 1_000)),
    (-5, 200, (0, 200, 100, 900)),         # an overdrawn firm repays nothing from cash
])
def test_repayment_takes_cash_then_the_pledged_assets_interest_first(cash, collateral, expected):
    assert tuple(int(x) for x in P.repayment(1_000, 100, cash, collateral)) == expected


def test_a_borrower_loses_at_most_its_cash_and_the_collateral_it_pledged():
    from sim.core import contracts, rules
    p_hat, value, at_sign, interest, cash, ara = 0.5, 4.0e6, 3.0e6, 3.0e5, 1.0e6, 1.0 / 2.0e6
    for collateral, failure in ((0.0, -cash), (1.0e6, -2.0e6), (2.3e6, -3.3e6), (5.0e6, -3.3e6)):
        expected = rules.certainty_equivalent(p_hat, value - at_sign - interest, failure, ara)
        assert contracts.supported_ce(p_hat, value, at_sign, 0.0, interest, 2.0e6, 0.0, cash, ara, 2.0e6,
                                      collateral) == expected
    # no loan (or one beyond the credit): liable for everything, whatever it could pledge
    full = rules.certainty_equivalent(p_hat, value - at_sign - interest, -at_sign - interest, ara)
    assert contracts.supported_ce(p_hat, value, at_sign, 0.0, interest, 2.0e6, 0.0, cash, ara, 1.9e6, 0.0) == full


def test_firms_hold_assets_beyond_cash_by_size_class():
    cfg = api.compose("scenario.firms.n=400", "scenario.firms.assets_to_cash_sme=2.0",
                      "scenario.firms.assets_to_cash_large=0.5", "progress=false")
    pop = draw_population(cfg, 7400)
    assert pop.firm_sme.any() and (~pop.firm_sme).any()
    # the same draw of cash with and without assets; assets = multiple x cash, to the yuan
    base = draw_population(api.compose("scenario.firms.n=400", "scenario.firms.assets_to_cash_sme=0",
                                       "scenario.firms.assets_to_cash_large=0", "progress=false"), 7400)
    assert (base.firm_cash == pop.firm_cash).all() and (base.firm_assets == 0).all()
    k = np.where(pop.firm_sme, 2.0, 0.5)
    # the multiple is k x exp(assets_sigma x z), one standard normal z a firm, the same z whatever the sigma: the
    # log multiple's deviation from log k scales with sigma exactly (to the yuan's rounding)
    log_dev = {}
    for sigma in (0.35, 0.7):
        q = draw_population(api.compose("scenario.firms.n=400", "scenario.firms.assets_to_cash_sme=2.0",
                                        "scenario.firms.assets_to_cash_large=0.5",
                                        f"scenario.firms.assets_sigma={sigma}", "progress=false"), 7400)
        assert (q.firm_cash == pop.firm_cash).all()
        log_dev[sigma] = np.log(q.firm_assets / (k * q.firm_cash))
    zero = draw_population(api.compose("scenario.firms.n=400", "scenario.firms.assets_to_cash_sme=2.0",
                                       "scenario.firms.assets_to_cash_large=0.5", "scenario.firms.assets_sigma=0",
                                       "progress=false"), 7400)
    assert (np.abs(zero.firm_assets - k * zero.firm_cash) <= 0.5 * k + 0.5).all()   # sigma 0: k x cash, to the yuan
    big = pop.firm_cash > 1e5                  # where a yuan's rounding is negligible
    np.testing.assert_allclose(log_dev[0.7][big], 2.0 * log_dev[0.35][big], atol=1e-4)
    # the default dispersion is the one drawn (0.7): the deviations' sd is sigma within sampling error
    assert cfg.scenario.firms.assets_sigma == 0.7
    assert abs(log_dev[0.7].std() / 0.7 - 1.0) < 4.0 / math.sqrt(2 * 400)


def test_the_pledge_targets_evaluate_on_a_run_where_firms_borrow():
    # the reported pledge figures (configs/targets/reported.yaml) are the model's counts: SMEs' loans below the small
    # loan line among all loans, and the mean loan
    from sim.analysis.targets import load_targets

    ts = load_targets("reported")
    cfg = api.compose(*CASH_POOR, "regime=ip_pledge")
    r = api.simulate(cfg, 7500, engine="numba").summary
    assert r["loans_made"] > 0 and r["loans_made_sme"] == r["loans_made"]   # SMEs only in this population
    assert ts.targets["pledge_sme_small_share"].evaluate(r, cfg) == r["loans_sme_small"] / r["loans_made"]
    assert ts.targets["pledge_mean_loan"].evaluate(r, cfg) == r["pledge_loans"] / r["loans_made"]
    # the small-loan line only counts (the same loans): every loan is below a line of 1e12 yuan, none below 0
    for line, small in (("1e12", r["loans_made"]), ("0", 0)):
        other = api.simulate(api.compose(*CASH_POOR, "regime=ip_pledge", f"ip_pledge.small_loan={line}"), 7500,
                             engine="numba").summary
        assert other["loans_made"] == r["loans_made"] and other["loans_sme_small"] == small


# --------------------------------------------------------------------------- (7) who needs the credit, who takes it
def test_short_of_cash_is_the_cost_plus_the_lowest_licence_price_the_university_accepts():
    # cost 1,000 + 0.6 x ask 500 = 1,300: a yuan less is short, exactly that is not (a share 10% off moves it by 30)
    assert P.short_of_cash(1_299, 1_000, 500, 0.6) and not P.short_of_cash(1_300, 1_000, 500, 0.6)
    assert not P.short_of_cash(1_271, 1_000, 500, 0.54) and P.short_of_cash(1_329, 1_000, 500, 0.66)
    assert not P.short_of_cash(1_000, 1_000, 500, 0.0) and P.short_of_cash(999, 1_000, 500, 0.0)


def test_credit_offers_count_every_decision_and_those_short_of_cash(monkeypatch):
    """Every decision of a small run of the default scenario (Mesa), recounted outside the model: the firm's cash before
    it weighs the achievement against the implementation cost (the SME amount x its scale, to the yuan) plus the
    university's reservation share of the asking price. The series' counts are those, month by month (every decision
    is offered credit: the lenders' reserves far exceed what this run asks of them)."""
    from sim.engines.mesa import agents

    cfg = api.compose("scenario.firms.n=300", "scenario.months=24", "regime=ip_pledge", "progress=false")
    seen = []
    real = agents.Project.consider

    def consider(self, achievement, signal, broker):
        m, f, a = self.model, self.firm.index, achievement.index
        st = m.arrays
        cash = int(st.balance[st.acct_base[ledger.FIRM] + f])
        cost = math.floor(float(st.ach_cost[a]) * float(st.firm_scale[f]) + 0.5)   # to the yuan, half up
        short = cash < cost + float(st.univ_reservation[st.ach_owner[a]]) * float(st.ach_ask[a])
        seen.append((m.month, short, bool(st.firm_sme[f])))
        return real(self, achievement, signal, broker)

    monkeypatch.setattr(agents.Project, "consider", consider)
    model = TransferModel(cfg, 7600)
    s = model.run()
    months = np.array([m for m, _, _ in seen])
    short = np.array([x for _, x, _ in seen])
    sme = np.array([x for _, _, x in seen])
    for column, mask in ((P.CREDIT_OFFERS, np.ones(len(seen), bool)), (P.CREDIT_OFFERS_SHORT, short),
                         (P.CREDIT_OFFERS_SHORT_SME, short & sme)):
        assert (s[:, column] == np.bincount(months[mask], minlength=cfg.scenario.months)).all()
    assert (short & sme).sum() > 0   # SMEs short of cash for a licence are among the decisions


def test_no_credit_terms_make_a_borrower_accept_a_deal_below_one_minus_e_to_the_minus_risk_aversion():
    """Why the default SMEs do not borrow (docs/reference/instruments.md, IP pledge loans, "Who borrows"): a borrower
    spends all its cash at signing, so on a failure it loses its cash and the collateral it pledged, ``cash +
    collateral``, at least; with the CARA coefficient ``R / cash`` its certainty equivalent is below ``-(cash / R)
    (R (1 + collateral / cash) + ln(1 - p))`` whatever the value on success, negative for ``p < 1 - exp(-R (1 +
    collateral / cash))``: no rate, limit or guarantee changes that. At the default SME risk aversion (5) the estimate
    would have to exceed 0.9933."""
    from sim.core import contracts

    cash, at_sign, huge = 1.0e6, 2.5e6, 1.0e12
    for R, collateral in ((5.0, 0.0), (1.05, 0.0), (1.05, 5.0e5), (0.3, 1.0e6)):
        threshold = 1.0 - math.exp(-R * (1.0 + collateral / cash))
        for p_hat, sign in ((threshold - 1e-4, -1), (threshold + 1e-4, 1)):
            ce = contracts.supported_ce(p_hat, huge, at_sign, 0.0, 0.0, at_sign - cash, 0.0, cash, R / cash,
                                        at_sign, collateral)
            assert sign * ce > 0, (R, collateral, p_hat, ce)
    assert 1.0 - math.exp(-5.0) == pytest.approx(0.99326, abs=1e-5)


def test_where_smes_are_bold_enough_to_stake_more_than_their_cash_the_pledge_lends_to_them_and_adds_contracts():
    """The default scenario with SMEs' relative risk aversion 0.5 (in the judgement range, configs/spaces): paired
    seeds, baseline against ip_pledge. Every run lends, SMEs take most loans (they are the firms short of cash), and
    the SMEs' contracts rise: a one-sided Wilcoxon signed-rank test at 1% with a positive mean difference."""
    cfg = api.compose("scenario.firms.risk_aversion_sme=0.5", "progress=false")
    runs = {name: [api.simulate(api.under_regime(cfg, name), seed, "numba").summary for seed in SEEDS_BOLD]
            for name in ("baseline", "ip_pledge")}
    lent = runs["ip_pledge"]
    assert all(r["loans_made"] > 0 for r in lent)
    assert sum(r["loans_made_sme"] for r in lent) > 0.5 * sum(r["loans_made"] for r in lent)
    assert all(r["credit_offers_short_sme"] > 0 for r in lent)
    d = np.array([a["contracts_sme"] - b["contracts_sme"] for a, b in zip(lent, runs["baseline"])])
    p = stats.wilcoxon(d, alternative="greater", zero_method="zsplit").pvalue
    assert d.mean() > 0 and p < 0.01, f"SME contracts: paired effect {d.mean():.3g}, p = {p:.3g}"


def test_a_firm_weighs_risk_per_yuan_of_its_net_worth_cash_and_assets():
    """Closed form: the absolute risk aversion is R / (cash + assets) at the firm's cash now (and at least R per
    yuan), so a firm short of cash but rich in assets is as bold as a cash-rich firm of the same net worth."""
    from sim.core import contracts, state

    cfg = api.compose("scenario.firms.n=50", "progress=false")
    st = state.new_state(cfg, draw_population(cfg, 7600))
    firm = st.acct_base[ledger.FIRM]
    for f, (cash, assets) in enumerate([(1_000_000, 2_000_000), (3_000_000, 0), (0, 3_000_000), (0, 0), (1, 0),
                                        (2_500_000, 500_001)]):
        st.balance[firm + f], st.firm_assets[f] = cash, assets
        R = float(st.firm_risk_aversion[f])
        assert contracts.firm_risk_attitude(st, f) == R / max(cash + assets, 1)
    # the same net worth, however it is held: the same attitude (to the bit, at the same R)
    st.firm_risk_aversion[:3] = 4.0
    assert contracts.firm_risk_attitude(st, 0) == contracts.firm_risk_attitude(st, 1) == \
        contracts.firm_risk_attitude(st, 2) == 4.0 / 3_000_000


def test_on_the_default_population_smes_short_of_cash_borrow_because_liquidity_varies():
    """Issue 22, point 7: the pledge lends on the default population, mostly to SMEs (CNIPA: 71% of borrowers are
    SMEs with loans under 10 M). Paired seeds: with firms' liquidity spread (the default assets_sigma) SMEs take more
    loans than with every firm at the median multiple of cash, where the cash-short firms are the poor ones (a
    one-sided Wilcoxon test at 1%); and over the seeds most loans go to SMEs below the small-loan line."""
    runs = {}
    for sigma in (0.7, 0.0):
        cfg = api.compose("regime=ip_pledge", "scenario.months=36", "scenario.firms.assets_sigma=%s" % sigma,
                          "progress=false")
        runs[sigma] = [api.simulate(cfg, seed, "numba").summary for seed in range(12)]
    spread = np.array([r["loans_made_sme"] for r in runs[0.7]])
    d = spread - np.array([r["loans_made_sme"] for r in runs[0.0]])
    assert d.mean() > 0 and stats.wilcoxon(d, alternative="greater", zero_method="zsplit").pvalue < 0.01
    made = sum(r["loans_made"] for r in runs[0.7])
    assert (spread > 0).mean() >= 0.9 and sum(r["loans_sme_small"] for r in runs[0.7]) > 0.5 * made
