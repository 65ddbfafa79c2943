"""The dashboard: ``python -m experiments.dashboard`` serves the pages of :mod:`.pages` on localhost.

Solara, as Mesa's own visualisation (SolaraViz) uses: the pages are Python components over
the same functions as the command line (:mod:`.service`), so they run in a notebook too.
"""
