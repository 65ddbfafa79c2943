"""The dashboard's interactive charts (Plotly, through ``solara.FigurePlotly``): hover values, zoom, intervals.

Plotly, because Solara shows its figures as widgets whose JavaScript ships inside the Python package (plotly's
``widgetbundle.js`` through anywidget): the page works on a machine with no network, as the tests run it; its
error bars and hover templates say the interval and the unit of every point; and its figures are plain data
(``fig.to_dict()``), so a test reads back the numbers a chart shows. Vega-Lite (Altair) would fetch its
renderer from a CDN; Bokeh needs its own server or a static bundle the page would have to serve.

Each module builds figures from frames, without the page: :mod:`.compare` (the Compare page), :mod:`.runs`
(One run, Sweep, Calibration). The look every chart shares is here.
"""

from __future__ import annotations

FONT = dict(family="Roboto, Arial, sans-serif", size=13)
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
          "#17becf", "#393b79", "#ad494a", "#637939", "#843c39")  # a regime keeps its colour in every chart


def layout(fig, title: str = "", height: int = 420):
    """The shared look: readable fonts, a white background, the legend below, margins that fit the labels."""
    fig.update_layout(title=dict(text=title, x=0, xanchor="left", font=dict(size=15)), font=FONT, height=height,
                      template="plotly_white", margin=dict(l=70, r=20, t=50 if title else 20, b=60),
                      legend=dict(orientation="h", yanchor="top", y=-0.15, x=0), hoverlabel=dict(font_size=13))
    return fig
