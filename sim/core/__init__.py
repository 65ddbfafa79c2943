"""The model itself, shared by both engines: its state, rules, contracts, ledger, month, population and results.

Everything a run *is*, declared once: the typed configuration (:mod:`.config`, :mod:`.schema`), the
counter-based random numbers (:mod:`.rng`), the business rules (:mod:`.rules`), the state arrays
(:mod:`.state`), the ledger every yuan goes through (:mod:`.ledger`), contract forms and the shared
operations on contracts (:mod:`.forms`, :mod:`.contracts`), the month as a named list of phases
(:mod:`.loop`), the instruments' hooks (:mod:`.hooks`), the population (:mod:`.population`) and a run's
series, summary and invariants (:mod:`.results`), with how they are compiled (:mod:`.jit`,
:mod:`.engine_cache`). The core imports nothing of the engines, the runs or the analyses; it reads the
registered instruments only through the registry, :mod:`sim.instruments` (the plug-in point). This file
imports nothing: ``sim/__init__.py`` imports :mod:`.engine_cache` before any compiled function is defined.
"""
