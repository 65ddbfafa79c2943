"""Tests of sim.instruments: one module per policy instrument, and the registry."""
