"""Income-share reform for inventors (seeds 001, 004): a larger share of conversion income to the inventors' team.

Shanghai (seed 001) calls to "decentralise and unbundle" the rights to achievements;
Ningbo (seed 004) gives research teams larger cash and equity rewards. Most licensed
university inventions are embryonic and need their inventors' further work to succeed
(Jensen & Thursby, AER 2001), and inventors put in that work when it pays them.

Here the reform raises the inventors' share of every yuan a university nets from a
contract from ``scenario.universities.inventor_share`` to that plus ``extra_share``
(ledger kind ``inventor_income_reform``: the extra part, university -> inventors, on
each payment). The inventors' involvement, ``extra_share / (1 - inventor_share)`` (0
without the reform, 1 when they get all of it), closes ``effort`` of the gap between
the pair's success chance and certainty for a fully embryonic achievement, less as the
achievement is more mature:

    chance -> chance + (1 - chance) x effort x involvement x (1 - maturity).

The inventors' work is a fact of the implementation that neither party prices in: the
firm's estimate and the university's offers are as before (they learn only from
outcomes), and the university's net income falls by the extra share. No public money
moves: the reform's cost falls on the universities (public bodies mostly: the
``_public`` cost metrics count it).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.jit import entry, kernel

from ..core import columns, ledger, rules, schema
from ..core.schema import ConfigError

NAME = "income_share"
ZERO_STRENGTH = ("income_share.extra_share=0",)  # on, yet the inventors' share and effort as before


@dataclass
class Params:
    extra_share: float = schema.share(
        0.2, "rise in the inventors' share of university net income (judgement: seed 004's larger rewards to "
             "teams; the default 0.7 to 0.9, as provinces that grant inventors up to 90%)")
    effort: float = schema.share(
        0.3, "share of the gap to certain success the inventors' full involvement closes for a fully embryonic "
             "achievement (judgement from Jensen & Thursby 2001: most inventions need the inventor's work; range "
             "0.1-0.5)")


INVENTOR_INCOME_REFORM = ledger.kind("inventor_income_reform", ledger.UNIVERSITY, ledger.INVENTORS,
                                     "inventors' extra share of university income under the reform", owner=NAME)
INVOLVED = columns.column("implementations_with_inventors", "contracts opened with the inventors involved (the "
                          "reform on)", summary=True, owner=NAME)


def check(cfg) -> None:
    base = cfg.scenario.universities.inventor_share
    if base + cfg.income_share.extra_share > 1.0:
        raise ConfigError(f"income_share.extra_share = {cfg.income_share.extra_share}: with "
                          f"scenario.universities.inventor_share = {base} the inventors' share would exceed 1 "
                          f"(allowed: <= {1.0 - base:g})")


@entry
def involvement(extra_share, base_share):
    """How far the inventors are drawn into the implementation: their extra share of what they could still gain."""
    return min(1.0, extra_share / (1.0 - base_share)) if base_share < 1.0 else 0.0


@entry
def involved_chance(chance, effort, involvement_, maturity):
    """The pair's success chance with the inventors' work: ``effort x involvement x (1 - maturity)`` of the gap to 1
    closed."""
    return chance + (1.0 - chance) * effort * involvement_ * (1.0 - maturity)


@kernel
def on_open(p, st, series, month, j, cover):
    r = p.income_share
    if r.extra_share <= 0.0:
        return
    st.c_chance[j] = involved_chance(st.c_chance[j], r.effort, involvement(r.extra_share, p.inventor_share),
                                     st.ach_maturity[st.c_ach[j]])
    series[month, INVOLVED] += 1


@kernel
def on_payment(p, st, series, month, f, a, b, amount, net):
    """The inventors' extra share of the university's net (rounded as the base share is: the two add up to the
    reformed share's payment exactly)."""
    r = p.income_share
    extra = (rules.inventor_payment(net, p.inventor_share + r.extra_share)
             - rules.inventor_payment(net, p.inventor_share))
    if extra > 0:
        u = st.ach_owner[a]
        ledger.pay(st, series, month, ledger.account(st, ledger.UNIVERSITY, u), ledger.account(st, ledger.INVENTORS, 0),
                   extra, INVENTOR_INCOME_REFORM)   # a public university keeps that much less (ledger.pay)


def check_series(s, cfg, c=None) -> None:
    """The inventors' base and extra payments never exceed their reformed share of the universities' net income (a
    yuan of rounding per payment)."""
    from ..core.results import InvariantError, failed, first_month, runs_of

    s = runs_of(s)   # a run's series as a batch of one; a batch's (runs, months, columns) as it is
    share = cfg.scenario.universities.inventor_share + (cfg.income_share.extra_share if NAME in cfg.regime.instruments
                                                         else 0.0)
    paid = s[:, :, ledger.INVENTOR_INCOME] + s[:, :, INVENTOR_INCOME_REFORM]
    bad = paid > share * s[:, :, columns.UNIVERSITY_INCOME] + s[:, :, columns.CONTRACT_PAYMENTS]
    if failed(bad):
        m = first_month(bad)
        raise InvariantError(f"month {m}: inventors paid {paid[0, m]:.0f}, more than {share:g} of the universities' net "
                             f"income {s[0, m, columns.UNIVERSITY_INCOME]:.0f}")
