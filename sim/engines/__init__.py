"""The two engines that run the month of :mod:`sim.core.loop`: the Mesa reference and the Numba one.

:mod:`sim.engines.mesa` runs it over Mesa agents (views of their row of the state), :mod:`sim.engines.numba`
as loops over the state's arrays; both call the same compiled operations of :mod:`sim.core` and the
instruments' hooks, so they give the same numbers. Engines import the core and the instruments, never the
runs or the analyses.
"""
