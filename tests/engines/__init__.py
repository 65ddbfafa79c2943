"""Tests of sim.engines: the Mesa and Numba engines give the same numbers, and the long-run behaviour of a run."""
