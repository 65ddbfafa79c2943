"""The Numba engine: the phases of the month compiled as loops over the state's arrays
(:mod:`sim.engines.numba.kernels`), the fast one every batch uses by default."""
