"""Tests of sim.core: the rules, the state, contracts, the ledger, the configuration, random numbers, compilation, invariants."""
