"""The instruments' hooks into the month, each chained once over the registered instruments.

An instrument module defines any of the hooks below as ``@kernel`` functions (:mod:`sim.core.jit`); here
each hook becomes one compiled function calling, in the order of
:data:`sim.instruments.REGISTRY`, the instrument's own version when the run's regime lists
the instrument (``p.<name>.on``). ``record`` runs in every run, so an instrument's stock
columns are filled whether it is on or off. Numba has no cheap dynamic dispatch: a chain
written out per registry (a few lines of generated source, compiled like any function)
keeps every kernel monomorphic, and the shared operations of :mod:`sim.core.contracts` call
``hooks.on_sign(...)`` without knowing which instruments exist.

The hooks, their arguments and what they return:
"""

from __future__ import annotations

import numpy as np

from . import columns, forms, ledger
from .jit import generated

# name: (arguments, returned value or None, what it is for)
HOOKS = {
    "offer_forms": ("p, st, series, month, j, a, signal, n", "n", "put contract forms on offer to project j (of "
                    "firm st.project_firm[j]) for achievement a (forms.offer; signal: the success chance the match shows both parties); return "
                    "the number of offers"),
    "offer_covers": ("p, st, j, a, cost, n", "n", "put covers on offer (forms.offer_cover); return their number"),
    "offer_support": ("p, st, series, month, j, a, cost", None, "offer public or private support to project j's decision on "
                      "achievement a: write st.support (a co-payment of its technology-service payments in the "
                      "instrument's slot, sim.core.public.offer_copayment; credit, SUPPORT_CREDIT at SUPPORT_CREDIT_RATE "
                      "for the term, against "
                      "SUPPORT_COLLATERAL yuan of pledged assets the firm is liable with beyond its cash)"),
    "on_open": ("p, st, series, month, j, cover", None, "negotiation opens; cover: the chosen row of st.covers or -1"),
    "on_breakdown": ("p, st, series, month, j", None, "the negotiation broke down"),
    "at_signing": ("p, st, series, month, j", None, "project j's contract is about to be signed, before any payment "
                   "(finance arrives: st.c_borrowed[j])"),
    "on_sign": ("p, st, series, month, j", None, "the contract is signed (after the payment at signing)"),
    "on_payment": ("p, st, series, month, f, a, b, amount, net", None, "firm f paid the university amount under "
                   "the contract for achievement a brought about by broker b (-1: none), of which the university keeps "
                   "net after its part of the broker's fee (before the inventors' share); not necessarily a contract "
                   "of one of f's running projects (sim.core.contracts.collect_for)"),
    "on_settle": ("p, st, series, month, j, success", None, "the implementation's outcome is known"),
    "search": ("p, st, series, month", None, "publicly organised search (phase organised_search): expert visits, "
               "matching events"),
    "on_month": ("p, st, series, month", None, "end of the month's learning phase"),
    "record": ("p, st, series, month", None, "fill the instrument's stock columns (runs whether on or off)"),
}
__doc__ += "\n".join(f"\n* ``{name}({args})``{' -> ' + ret if ret else ''}: {doc}"
                     for name, (args, ret, doc) in HOOKS.items())


def _chain(name: str, registered):
    """One njit function calling every instrument's ``name`` hook in registry order."""
    args, ret, _ = HOOKS[name]
    namespace = {}
    lines = [f"def {name}({args}):"]
    for m in registered:
        hook = getattr(m, name, None)
        if hook is None:
            continue
        alias = f"_{m.NAME}_{name}"
        namespace[alias] = hook
        call = f"{ret + ' = ' if ret else ''}{alias}({args})"
        lines.append(f"    {call}" if name == "record" else f"    if p.{m.NAME}.on:\n        {call}")
    lines.append(f"    return {ret}" if ret else "    return")
    exec("\n".join(lines), namespace)  # noqa: S102 - source built from the registry above, nothing else
    return generated(namespace[name])


def build(registered) -> None:
    """Chain every hook over the ``registered`` instruments and tabulate the declared forms and accounts (called once, by
    :mod:`sim.instruments` when every instrument is loaded; instruments may import :mod:`sim.core.contracts`)."""
    global FORM_COLUMN, FORM_KIND_AT_SIGN, FORM_KIND_ON_SUCCESS, CASH_COLUMN, OVERDRAFT
    for name in HOOKS:
        globals()[name] = _chain(name, registered)
    # tables the shared operations read (constants once every instrument is registered)
    FORM_COLUMN = np.array([-1] + [f.column for f in forms.FORMS[1:]], dtype=np.int64)
    FORM_KIND_AT_SIGN = np.array([-1] + [f.kind_at_sign for f in forms.FORMS[1:]], dtype=np.int64)
    FORM_KIND_ON_SUCCESS = np.array([-1] + [f.kind_on_success for f in forms.FORMS[1:]], dtype=np.int64)
    CASH_COLUMN = np.array([c.column for c in ledger.ACCOUNT_CLASSES], dtype=np.int64)
    OVERDRAFT = np.array([c.overdraft for c in ledger.ACCOUNT_CLASSES], dtype=np.bool_)
    sme = np.full(len(columns.COLUMNS), -1, dtype=np.int64)
    for k in ledger.KINDS:
        sme[k.column] = k.sme_column
    ledger.SME_COLUMN = sme


from .. import instruments  # noqa: E402,F401  (loads the registry, which calls build)
