"""The Numba engine: the phases of :mod:`sim.core.loop` as loops over the state's arrays.

Each phase is a ``numba.njit`` kernel that decides which agents act this month, visits
them in the same canonical order as the Mesa engine (:mod:`sim.engines.mesa.model`) and applies to each
the shared operation of :mod:`sim.core.contracts`; nothing else is written here. The
equivalence test (``tests/engines/test_engines.py``) checks that the two engines give the same
series.

Discovery draws from the sector's slice of the sorted achievements (and a broker's visits
from its sector's slice of the firms), so a month costs O(firms' project slots + achievements + brokers
x visits).
"""

from __future__ import annotations

import numpy as np

from numba import typeof, types

from ...core import columns as C
from ...core import contracts, jit, loop, rng, rules
from ...core.jit import entry, kernel
from ...core.config import Config
from ...core.population import Population
from ...core.results import new_series
from ...core.rules import IDLE, IMPLEMENTING, NEED, NEGOTIATING_FIRM
from ...core.state import make_params, new_state, struct_type, to_struct


# --------------------------------------------------------------------------- the canonical order
@kernel
def rotation_start(p, month, which, n):
    """Start of this month's canonical rotation of ``n`` agents (which: 0 firms' projects, 1 brokers)."""
    return rng.randint(p.seed, rng.ORDER, month, which, n) if n > 0 else 0


@kernel
def _rotated(chosen, count, start):
    """The chosen indices (ascending, ``count`` of them) in the rotation order that begins at ``start``."""
    out = np.empty(count, dtype=np.int64)
    k = 0
    for i in range(count):
        if chosen[i] >= start:
            out[k] = chosen[i]
            k += 1
    for i in range(count):
        if chosen[i] < start:
            out[k] = chosen[i]
            k += 1
    return out


@kernel
def _projects_in(st, state, month, ending_now):
    """Project slots in ``state`` (and, if ``ending_now``, whose term ends this month), ascending."""
    states, ends = st.project_state, st.c_ends
    n = states.shape[0]
    chosen = np.empty(n, dtype=np.int64)
    count = 0
    whole = n - n % 8
    for lo in range(0, whole, 8):   # few slots are in the state: 8 at a time without a branch, those 8 if one is
        found = False
        for k in range(8):
            found |= states[lo + k] == state
        if found:
            for j in range(lo, lo + 8):
                if states[j] == state and (not ending_now or ends[j] == month):
                    chosen[count] = j
                    count += 1
    for j in range(whole, n):
        if states[j] == state and (not ending_now or ends[j] == month):
            chosen[count] = j
            count += 1
    return chosen, count


# --------------------------------------------------------------------------- phases
@kernel
def open_month(p, st, series, month):
    contracts.open_month(p, st, series, month)


@kernel
def raise_needs(p, st, series, month):
    # each firm's needs depend on nothing but its own projects, so the index order gives the
    # same result as the rotation of the other phases, and tighter loops: every firm's draw
    # (vectorised; a firm with no idle slot draws too, unused: a draw is a function of its key),
    # then the new needs of the firms whose draw says so, in their first idle slot, then every
    # slot's expiry (a need raised now does not expire now: contracts.expire_needs)
    draws = rng.stream(p.seed, rng.NEED, month)
    n_f = st.firm_alpha.shape[0]
    arises, need_rate = np.empty(n_f, dtype=np.bool_), st.firm_need_rate   # locals: the loop is vectorised
    for f in range(n_f):
        arises[f] = rng.uniform_in(draws, f) < need_rate[f]
    for f in range(n_f):
        if arises[f]:
            j = contracts.firm_project(st, f, IDLE)
            if j >= 0:
                contracts.raise_need(st, series, month, j, False)
    series[month, C.NEEDS_EXPIRED] += contracts.expire_needs(p, st, month, 0, st.project_state.shape[0])


@kernel
def firms_search(p, st, series, month):
    state = st.project_state
    n = state.shape[0]
    # who searches depends only on each project itself: find them in tight loops (every slot's
    # draw, vectorised: a slot without a need draws too, unused, as a draw is a function of its
    # key; then the searching slots, ascending), then let them claim achievements in the
    # canonical (rotation) order, where order matters
    draws = rng.stream(p.seed, rng.SELF_SEARCH, month)
    searches, chance = np.empty(n, dtype=np.bool_), p.self_search_prob
    for j in range(n):
        searches[j] = (state[j] == NEED) & (rng.uniform_in(draws, j) < chance)
    searching = np.empty(n, dtype=np.int64)   # slot j is written at searching[count], count <= j
    count = 0
    for j in range(n):   # without a branch: each slot is written, the count moves on past a searching one
        searching[count] = j
        count += searches[j]
    contracts.publish(st)   # the lists as they stand when the month's search begins (brokers and experts use them too)
    for j in _rotated(searching, count, rotation_start(p, month, 0, n)):
        a, signal = contracts.search_lists(p, st, series, month, j)
        if a >= 0 and contracts.can_open(st, a):
            contracts.consider(p, st, series, month, j, a, signal, -1)


@kernel
def brokers_visit(p, st, series, month):
    n_b = st.broker_active.shape[0]
    start = rotation_start(p, month, 1, n_b)
    for kb in range(n_b):
        b = start + kb - n_b if start + kb >= n_b else start + kb
        if not st.broker_active[b]:
            continue
        s = st.broker_sector[b]
        f_lo, f_size = st.firm_offsets[s], st.firm_offsets[s + 1] - st.firm_offsets[s]
        if f_size == 0:
            continue
        sd = rules.broker_noise(p.noise, st.broker_skill[b])
        for k in range(p.capacity):
            visit = b * p.capacity + k
            f = f_lo + rng.randint(p.seed, rng.VISIT, month, visit, f_size)
            contracts.visit(p, st, series, month, f, visit, p.surface_prob, rng.SURFACE, s, sd, p.screen, rng.SCREEN,
                            rng.BROKER_NOISE, b)


@kernel
def organised_search(p, st, series, month):
    contracts.organised_search(p, st, series, month)


@kernel
def negotiate(p, st, series, month):
    # the negotiating projects, in the canonical order (a signing can use budget or pay an insurer)
    draws = rng.stream(p.seed, rng.NEGOTIATION, month)
    chosen, count = _projects_in(st, NEGOTIATING_FIRM, month, False)
    for j in _rotated(chosen, count, rotation_start(p, month, 0, st.project_state.shape[0])):
        contracts.negotiate(p, st, series, month, j, rng.uniform_in(draws, j))


@kernel
def settle(p, st, series, month):
    # the terms ending now, in the canonical order (a claim may find the insurer's reserves short)
    chosen, count = _projects_in(st, IMPLEMENTING, month, True)
    for j in _rotated(chosen, count, rotation_start(p, month, 0, st.project_state.shape[0])):
        contracts.settle(p, st, series, month, j)


@kernel
def learn(p, st, series, month):
    contracts.learn(p, st)
    n_b = st.broker_active.shape[0]
    start = rotation_start(p, month, 1, n_b)
    for kb in range(n_b):
        b = start + kb - n_b if start + kb >= n_b else start + kb
        if st.broker_active[b]:
            contracts.review_broker(p, st, series, month, b)
    contracts.close_month(p, st, series, month)


@kernel
def record(p, st, series, month):
    contracts.record(p, st, series, month)


month_step = loop.compile_month(globals())

# Compiled by a helper process while this one compiles the other phases, when the cache is
# empty (a new user, a changed source): about half the work of a cold compile. firms_search,
# brokers_visit and organised_search share the contract decision (contracts.consider), the largest subtree.
HELPER_PHASES = ("firms_search", "brokers_visit", "organised_search", "learn")
_compiled = [False]


@entry
def run_months(p, st, series):
    for month in range(p.months):
        month_step(p, st, series, month)


# --------------------------------------------------------------------------- entry points
def simulate(cfg: Config, seed: int, population: Population | None = None):
    """Run one replicate with the Numba engine; returns (series, n_achievements, initial money)."""
    return run(cfg, seed, population)[:3]


def run(cfg: Config, seed: int, population: Population | None = None, audit_rows: int = 0, params=None):
    """:func:`simulate`, also returning the final state (with ``audit_rows``, its audit log of payments). ``params``:
    ``make_params(cfg, ...)`` of any seed, made once for many runs of ``cfg`` (the seed and the number of
    achievements are this run's)."""
    from ...core.population import draw_population

    pop = population if population is not None else draw_population(cfg, seed)
    arrays = new_state(cfg, pop, audit_rows)
    p = (make_params(cfg, seed, pop.n_achievements) if params is None
         else params._replace(seed=np.int64(seed), n_achievements=np.int64(pop.n_achievements)))
    series = new_series(cfg.scenario.months)
    initial_money = int(arrays.balance.sum())
    helper = None
    if not _compiled[0] and not jit.cached(run_months):  # an empty cache: compile on two cores
        signature = (struct_type(p), struct_type(arrays), typeof(series), types.int64)
        helper = jit.compile_beside(__name__, HELPER_PHASES, signature)
        if helper is not None:
            for name in loop.PHASES:
                if name not in HELPER_PHASES:
                    globals()[name].compile(signature)
    p, st = to_struct(p), to_struct(arrays)
    jit.join(helper)  # run_months finds the helper's phases in the cache
    run_months(p, st, series)
    _compiled[0] = True  # in this process from now on: no need to look at the cache again
    return series, pop.n_achievements, initial_money, arrays
