"""Tests of sim.runs: batches, worker pools, sweeps, posteriors as sources of parameters, output files."""
