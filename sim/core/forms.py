"""Contract forms and covers: what a firm and a university can agree on, declared once each.

A *form* says when the firm pays the university: a licence's bargained price at signing
(the model's own form), a free trial's fee only on success (:mod:`sim.instruments.free_trial`),
a royalty, ... A *cover* is what a pair can add to any form to move risk: insurance
refunds part of the cost on failure for a premium at signing. Instruments declare theirs
with :func:`form` and :func:`cover`, and put them on offer to a pair in their
``offer_forms`` / ``offer_covers`` hooks with :func:`offer` / :func:`offer_cover`; the firm
then picks the best form x cover by its certainty equivalent (:func:`sim.core.contracts.choose_contract`).

Each form and cover has a series column counting contracts signed with it
(``signed_<name>``); their sum over forms is the run's ``contracts``.
"""

from __future__ import annotations

from dataclasses import dataclass


from .jit import kernel

from . import columns, ledger
from .state import (BARGAIN_AT_SIGN, BARGAIN_ON_SUCCESS, COVER_OWNER, COVER_PREMIUM, COVER_REFUND, OFFER_AT_SIGN,
                    OFFER_BARGAINED, OFFER_FORM, OFFER_NEGOTIATION, OFFER_ON_SUCCESS, OFFER_STATUS, OFFER_TERM)


@dataclass(frozen=True)
class Form:
    name: str
    doc: str
    owner: str
    column: int            # contracts signed in this form (a flow column)
    kind_at_sign: int      # ledger kind of its payment at signing (-1: none)
    kind_on_success: int   # ledger kind of its payment on success (-1: none)


FORMS: list = [None]   # form 0: no deal
COVERS: list = []
NO_DEAL = 0


def form(name: str, doc: str, owner: str = "core", kind_at_sign: int = -1, kind_on_success: int = -1) -> int:
    """Declare a contract form; returns its number (``c_form`` of a contract signed in it).

    ``kind_at_sign`` / ``kind_on_success``: the ledger kinds (:func:`sim.core.ledger.kind`) under
    which the firm's payment at signing / on success is booked (-1: the form has none).
    """
    col = columns.column(f"signed_{name}", f"contracts signed: {doc}", summary=True, form=name, owner=owner)
    FORMS.append(Form(name, doc, owner, col, kind_at_sign, kind_on_success))
    return len(FORMS) - 1


def cover(name: str, doc: str, owner: str) -> int:
    """Declare a cover; returns its number (``covers[row, COVER_OWNER]`` of its offers)."""
    col = columns.column(f"signed_{name}", f"contracts signed {doc}", summary=True, cover=name, owner=owner)
    COVERS.append(Form(name, doc, owner, col, -1, -1))
    return len(COVERS) - 1


LICENCE = form("licence", "licence or outright transfer, price bargained and paid at signing",
               kind_at_sign=ledger.LICENCE_PAYMENTS)


# --------------------------------------------------------------------------- offers (njit, both engines)
@kernel
def offer(st, n, form, at_sign, on_success, bargained, negotiation_months, term, status):
    """Put form ``form`` on offer as row ``n`` of ``st.offers``; returns the number of rows.

    ``at_sign`` / ``on_success``: what the firm pays the university at signing / if the
    implementation succeeds (``bargained``: the price at signing is the Nash bargain
    instead); ``negotiation_months``: mean months to agree; ``term``: months from signing
    to the outcome; ``status``: the achievement's status during the term.
    """
    if n >= st.offers.shape[0]:
        raise ValueError("more contract forms on offer than state.MAX_OFFERS")
    row = st.offers[n]
    row[OFFER_FORM] = form
    row[OFFER_AT_SIGN] = at_sign
    row[OFFER_ON_SUCCESS] = on_success
    row[OFFER_BARGAINED] = BARGAIN_AT_SIGN if bargained else 0.0
    row[OFFER_NEGOTIATION] = negotiation_months
    row[OFFER_TERM] = term
    row[OFFER_STATUS] = status
    return n + 1


@kernel
def offer_bargained_on_success(st, n, form, reservation, negotiation_months, term, status):
    """Put form ``form`` on offer with nothing at signing and a payment on success bargained as a licence's price is
    (:func:`sim.core.contracts.choose_contract`), from the university's ``reservation``: the least it accepts on success
    (:func:`sim.core.rules.success_reservation`). Returns the number of rows."""
    n = offer(st, n, form, 0, reservation, False, negotiation_months, term, status)
    st.offers[n - 1, OFFER_BARGAINED] = BARGAIN_ON_SUCCESS
    return n


@kernel
def offer_cover(st, n, cover, firm_premium, refund):
    """Put cover ``cover`` on offer as row ``n`` of ``st.covers`` (the firm's premium at signing, its refund on
    failure); the instrument keeps its own terms in ``st.covers[n, COVER_AUX:]``. Returns the number of rows."""
    if n >= st.covers.shape[0]:
        raise ValueError("more covers on offer than state.MAX_COVERS")
    st.covers[n, COVER_OWNER] = cover
    st.covers[n, COVER_PREMIUM] = firm_premium
    st.covers[n, COVER_REFUND] = refund
    return n + 1


