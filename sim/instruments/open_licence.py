"""Open licences (开放许可): universities publish achievements at a stated price that any firm may take.

China's patent law (2021) lets a patentee declare an open licence: a published royalty or
price that any firm may accept, with no negotiation. Zhejiang pushed 379 patents of 24
universities and institutes as free open licences to 6,365 firms in October 2021; 306
licences were recorded by June 2022 (CNIPA, 2022-06-08; DOMAIN.md).

Under this instrument universities put a share ``share`` of their achievements on the
open-licence list (each achievement drawn once, keyed by the seed and the achievement: the
same ones under every regime), at a published price of ``price_share x asking price``
paid at signing (0: free, as Zhejiang's). A firm that finds such an achievement (through
its own search of the published lists, :func:`sim.core.contracts.search_lists`, a broker, an
expert or a matching event's pitch) weighs the open licence beside the forms the
university would negotiate, and if it takes it, **it is decided without negotiation**:
the offer's negotiation takes no time (:func:`sim.core.rules.negotiation_step` concludes a
negotiation of 0 months at once, with no breakdown), so it is signed in the month it was
found. The university consented by publishing: no reservation price is asked. The
licence is then implemented as a licence is (``negotiation.implementation_months``).

What is not modelled: the registration of an open licence still takes a place of the
transfer office's monthly capacity (a formality, but the office records it); the
published price is not adjusted to demand.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.jit import entry, kernel

from ..core import columns, forms, ledger, rng, rules, schema

NAME = "open_licence"
ZERO_STRENGTH = ("open_licence.share=0",)   # no university publishes an open licence


@dataclass
class Params:
    share: float = schema.share(
        0.1, "share of universities' achievements put on the open-licence list (judgement: a pilot lists part of "
             "the stock; Zhejiang's 2021 campaign listed 379 patents of 24 universities and institutes, DOMAIN.md)")
    price_share: float = schema.share(
        0.0, "published price of an open licence, as a share of the asking price, paid at signing (Zhejiang's "
             "open licences of October 2021 were free: CNIPA 2022-06-08, DOMAIN.md)")


OPEN_LICENCE_PAYMENTS = ledger.kind("open_licence_payments", ledger.FIRM, ledger.UNIVERSITY,
                                    "published prices of open licences, paid at signing", owner=NAME)
OPEN = forms.form("open_licence", "open licence at a published price, taken without negotiation", owner=NAME,
                  kind_at_sign=OPEN_LICENCE_PAYMENTS)
OPEN_OFFERED = columns.column("open_licences_offered", "matches weighed with an open licence on offer", summary=True,
                              owner=NAME)


@kernel
def listed_open(p, key):
    """Whether the achievement of key ``key`` (``st.ach_key``) is on the open-licence list (drawn once per run and
    achievement)."""
    return rng.uniform(p.seed, rng.OPEN_LIST, 0, key) < p.open_licence.share


@entry
def open_price(price_share, ask):
    """The published price of an open licence: ``price_share x asking price``, whole yuan."""
    return rules.yuan(price_share * ask)


@kernel
def offer_forms(p, st, series, month, j, a, signal, n):
    """An achievement on the open-licence list is on offer at its published price, agreed at once (0 months of
    negotiation)."""
    if not listed_open(p, st.ach_key[a]):
        return n
    series[month, OPEN_OFFERED] += 1
    return forms.offer(st, n, OPEN, open_price(p.open_licence.price_share, st.ach_ask[a]), 0, False, 0.0,
                       p.implementation_months, rules.LICENSED)


def check_series(s, cfg, c=None) -> None:
    """Open licences are paid only at their published price: never more than the asking prices of those signed."""
    from ..core.results import InvariantError, failed, first_month, runs_of

    s = runs_of(s)   # a run's series as a batch of one; a batch's (runs, months, columns) as it is
    signed = s[:, :, columns.index("signed_open_licence")]
    if cfg.open_licence.price_share == 0 and failed(s[:, :, OPEN_LICENCE_PAYMENTS].any(axis=1)):
        raise InvariantError("a free open licence was paid for")
    bad = (s[:, :, OPEN_LICENCE_PAYMENTS] > 0) & (signed == 0)
    if failed(bad):
        raise InvariantError(f"month {first_month(bad)}: open-licence payments without an open licence signed")
