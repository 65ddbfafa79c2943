"""The dashboard's pages (Solara): Compare, One run, Sweep, Calibration, a module each.

Served by ``python -m experiments.dashboard`` (which sets :data:`experiments.dashboard.state.SERVICE` before the
server starts); ``solara run experiments.dashboard.pages`` serves them too, on the default config with one
process. Every number comes from :mod:`experiments.dashboard.service`, which asks the same functions as the
command line; these modules only lay them out.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # figures are drawn to PNG for the page, never in a window

import solara  # noqa: E402

from experiments.dashboard.pages.calibration import CalibrationPage  # noqa: E402
from experiments.dashboard.pages.compare import ComparePage  # noqa: E402
from experiments.dashboard.pages.one_run import OneRunPage  # noqa: E402
from experiments.dashboard.pages.sweep import SweepPage  # noqa: E402
from experiments.dashboard.ui import CSS  # noqa: E402

TITLE = "Technology-transfer policy"


@solara.component
def Layout(children=[]):
    """The app bar with a tab per page (the routes' labels), then the page (and the stylesheet: inside the layout,
    as an element made outside the one returned is dropped)."""
    route, routes = solara.use_route()
    with solara.AppLayout(title=TITLE, navigation=False, sidebar_open=False) as main:  # no empty drawer
        solara.Style(CSS)
        solara.Title(TITLE)
        with solara.AppBar():
            for r in routes:
                with solara.Link(solara.resolve_path(r)):
                    solara.Button(r.label, text=True, dark=True, classes=[f"tt-nav-{r.path.strip('/') or 'compare'}"],
                                  style={"font-weight": "bold" if r is route else "normal"})
        solara.Column(children=children)
    return main


routes = [
    solara.Route(path="/", component=ComparePage, label="Compare", layout=Layout),
    solara.Route(path="one-run", component=OneRunPage, label="One run"),
    solara.Route(path="sweep", component=SweepPage, label="Sweep"),
    solara.Route(path="calibration", component=CalibrationPage, label="Calibration"),
]
