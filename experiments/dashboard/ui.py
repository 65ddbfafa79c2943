"""How the pages look: the stylesheet, and tables as HTML."""

from __future__ import annotations

import html

import solara


def table_html(df, name: str, index: bool = True):
    """A table as HTML (its cells are the formatted strings of sim.analysis.stats), marked for tests and styling."""
    html = df.to_html(index=index, border=0, classes=["tt-table"], na_rep="-", escape=True,
                      float_format=lambda v: f"{v:.6g}")
    return solara.HTML(tag="div", unsafe_innerHTML=html, classes=[f"tt-{name}", "tt-scroll"])


CSS = """
.tt-table { border-collapse: collapse; font-size: 13px; margin-bottom: 8px; }
.tt-table th, .tt-table td { padding: 2px 8px; border-bottom: 1px solid #ddd; text-align: right; white-space: nowrap; }
.tt-table th { background: #f4f4f4; }
.tt-scroll { overflow-x: auto; }
.tt-command { font-family: monospace; background: #f4f4f4; padding: 6px; word-break: break-all; }
"""



def escape(text: str) -> str:
    return html.escape(text)
