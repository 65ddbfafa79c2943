"""What is done with many runs: statistics and plots of a comparison, robustness, calibration, exploration.

Statistics and figures of a regime comparison (:mod:`.stats`, :mod:`.plots`, :mod:`.robustness`);
calibration to reported figures (:mod:`.targets`, :mod:`.calibration`, :mod:`.calibration_plots`); the
model as a function of uncertainties and levers and what is done with it (:mod:`.explore`, :mod:`.designs`,
:mod:`.discovery`, :mod:`.optimise`, :mod:`.sensitivity`). These are the libraries; the Hydra apps of the
same names are in ``experiments/``. Analyses import the runs and the core, never :mod:`sim.api`.
"""
