"""The month: one named list of phases, read here by both engines.

Every month runs these phases in this order. The Mesa engine
(:meth:`sim.engines.mesa.model.TransferModel.step`) calls its method of each name; the Numba engine
(:mod:`sim.engines.numba.kernels`) compiles one function calling its kernel of each name, built from this
list by :func:`compile_month`. The benchmark times each phase.
"""

from __future__ import annotations


from .jit import generated

PHASES = (
    "open_month",      # a budget year may start; transfer offices' capacity renews
    "raise_needs",     # needs arise in firms with a project slot free, or expire unmatched
    "firms_search",    # firms search the lists for their open needs
    "brokers_visit",   # brokers visit firms of their sector, surface needs, propose achievements
    "organised_search",  # publicly organised search: expert visits, matching events (the instruments' search hook)
    "negotiate",       # negotiations conclude (signing: payments, term starts), continue or break down
    "settle",          # implementations whose term ends succeed or fail; payments on success, claims
    "learn",           # beliefs, brokers' costs and exits, entry, the instruments' month end
    "record",          # month-end stocks
)


def compile_month(phases: dict):
    """One njit function ``month(p, st, series, month)`` calling ``phases[name]`` for each name of :data:`PHASES`."""
    namespace = {f"_{name}": phases[name] for name in PHASES}
    body = "\n".join(f"    _{name}(p, st, series, month)" for name in PHASES)
    exec(f"def month(p, st, series, month):\n{body}\n", namespace)  # noqa: S102 - built from PHASES only
    return generated(namespace["month"])
