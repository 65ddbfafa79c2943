"""Agent-based model of university-to-firm technology transfer under policy regimes.

Pipeline: config -> population -> monthly process (engine) -> results -> tables and plots.
See README.md; the notebook-facing API is :mod:`sim.api`.
"""

__version__ = "0.1.0"
