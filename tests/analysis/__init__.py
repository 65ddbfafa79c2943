"""Tests of sim.analysis and of the Hydra apps that drive each analysis: statistics, plots, calibration, exploration."""
