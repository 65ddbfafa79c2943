"""Running the model: one run, a batch of runs in this process or a pool of processes, sweeps, executors.

A batch (:mod:`.batch`) draws populations and runs them on an engine, checking every run's invariants;
:mod:`.parallel` cuts a batch into chunks for worker processes; :mod:`.executor` maps a function over items
locally or as Slurm job arrays; :mod:`.sweep` runs parameter grids exactly once, resumably; :mod:`.posterior`
gives a replicate its draw of a calibration's posterior; :mod:`.outputs` writes files atomically. Runs import
the engines and the core, never the analyses or :mod:`sim.api`.
"""
