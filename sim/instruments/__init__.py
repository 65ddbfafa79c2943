"""Policy instruments: each one module, registered here in one line.

An instrument module holds everything about one policy instrument, and nothing else
needs to know it exists:

* required: ``NAME``, its one name: what a regime lists (``regime.instruments: [free_trial]``), its
  parameters' section of the config (``free_trial.term_months``), its regime file
  (``configs/regime/free_trial.yaml``) and the kernels' view of its parameters (``p.free_trial``); ``Params``, a
  dataclass of its typed, validated parameters (:mod:`sim.core.schema` fields with ranges and
  a one-line meaning each), and ``ZERO_STRENGTH``, the overrides that put it at zero
  strength: on, yet the run is the baseline's exactly (tested for every instrument, so
  a module without it is refused when the registry loads);
* what it adds to the model, declared at import: payments (:func:`sim.core.ledger.kind`: payer,
  payee), contract forms and covers (:mod:`sim.core.forms`), series columns
  (:func:`sim.core.columns.column`), state arrays and agents (:func:`sim.core.state.field`,
  :func:`sim.core.state.agent`), accounts (:func:`sim.core.ledger.account_class`); an agent that holds reserves and
  withdraws below a floor (an insurer, a lender) with all of these at once: :class:`sim.core.reserves.Holders`;
* its rules and its hooks into the month, ``numba.njit`` functions of the shared state
  (the hooks are listed in :mod:`sim.core.hooks`; define only those you need);
* optionally ``check(cfg)`` (rules between its parameters and the scenario, raising a
  one-line ``ConfigError``), ``check_series(series, cfg, c=None)`` (its invariants, raising
  ``InvariantError``), ``summarize(totals, series) -> dict`` (metrics besides its
  columns' totals; both over a batch of runs, ``series`` ``(runs, months, columns)`` and
  one array over the runs per metric: :func:`sim.core.results.runs_of`, ``failed``, ``first_month``,
  ``cumulative``, ``ratio``), ``initial_balances(cfg, balance, acct_base)``, ``initial_state(cfg,
  arrays)`` (changes to the month-0 state, called only when the regime lists it),
  ``money_bound(cfg, pop) -> float`` (what it adds to :func:`sim.core.population.money_bound`:
  every payment it makes, all months) with ``MONEY_KEYS`` (the keys the error names),
  ``MESA_AGENTS`` ({agent kind: :class:`sim.engines.mesa.agents.InstrumentAgent` subclass}: its agents
  in the Mesa engine) and ``SPEND`` (its government spend is the run metric
  ``gov_spend_<SPEND>``).

Both engines run the same hooks, government spend and the invariants of money are
derived from its declared payments, and the comparison table and plots from its
declared columns. docs/how-to/add-instrument.md walks through one (the vouchers).
"""

import importlib

from ..core import columns, forms, hooks, ledger, state  # noqa: F401  (the model's own declarations come first)

# the registered instruments, in the order their hooks run (one line each)
REGISTRY = (
    "free_trial",
    "broker_reward",
    "insurance",
    "royalty",
    "vouchers",
    "maturation",
    "ip_pledge",
    "appraisal",
    "income_share",
    "expert_visits",
    "open_licence",
)

INSTRUMENTS = tuple(importlib.import_module(f"{__name__}.{name}") for name in REGISTRY)
REQUIRED = ("NAME", "Params", "ZERO_STRENGTH")


def check_module(module) -> None:
    """Refuse, in one line, an instrument module without what every instrument must declare (:data:`REQUIRED`)."""
    missing = [k for k in REQUIRED if not getattr(module, k, None)]
    if missing:
        raise ImportError(f"{module.__name__}: an instrument module must define {', '.join(missing)} "
                          "(sim/instruments/__init__.py says what each is)")


for _m in INSTRUMENTS:
    check_module(_m)
BY_NAME = {m.NAME: m for m in INSTRUMENTS}
state.freeze(INSTRUMENTS)
hooks.build(INSTRUMENTS)
