"""How the pages look: the stylesheet, and tables as HTML."""

from __future__ import annotations

import html

from typing import Callable

import solara

from experiments.dashboard import fmt

# the longest search text a page filters by (metrics, the glossary, a table's rows): a metric's label and meaning are
# well under 200 characters, so longer text matches nothing; it is cut there so a pasted page of text cannot make
# every keystroke filter hundreds of rows by thousands of words
SEARCH_MAX = 200

# the money unit picker's buttons -> fmt's money units (the Latin name too: a browser without CJK fonts shows boxes)
UNIT_LABELS = {"yuan": "yuan", "wan": "万 (wan, 10^4 yuan)", "yi": "亿 (yi, 10^8 yuan)"}


def search_text(text) -> str:
    """Typed search text as the pages filter by it: at most :data:`SEARCH_MAX` characters (the rest dropped)."""
    return str(text or "")[:SEARCH_MAX]


def search_note(text) -> str:
    """The one line a search box shows when its text was cut (:data:`SEARCH_MAX`), else ''."""
    n = len(str(text or ""))
    return f"searched by the first {SEARCH_MAX} of {n:,} characters" if n > SEARCH_MAX else ""


@solara.component
def SearchText(label: str, value: str, on_value: Callable[[str], None], classes=()):
    """A search box (filtering as one types) whose text is cut at :data:`SEARCH_MAX` characters, saying so in one
    line below it."""
    typed, set_typed = solara.use_state(value)

    def changed(v):
        set_typed(v or "")
        on_value(search_text(v))

    solara.InputText(label, value=typed, on_value=changed, continuous_update=True, message=search_note(typed) or None,
                     classes=list(classes))


@solara.component
def MoneyUnit(value: str, on_value: Callable[[str], None]):
    """The money unit picker, the same on every page: ``money in`` yuan / 万 / 亿 (:data:`UNIT_LABELS`), giving fmt's
    unit (``yuan``, ``wan``, ``yi``)."""
    units = {label: unit for unit, label in UNIT_LABELS.items()}
    with solara.Row(style={"align-items": "center"}):
        solara.Text("money in")
        solara.ToggleButtonsSingle(value=UNIT_LABELS[value], values=list(units),
                                   on_value=lambda label: on_value(units[label]), classes=["tt-unit"])


def table_html(df, name: str, index: bool = True):
    """A table as HTML, marked for tests and styling; it scrolls in place (:data:`CSS`). Its cells are written as
    given (the pages pass text written by :mod:`experiments.dashboard.fmt`); a float cell left as a number is written
    by :func:`fmt.number <experiments.dashboard.fmt.number>` (no exponents), and so is a whole-number cell
    (thousands separators: ``4,579``, as the page's text writes counts)."""
    import pandas as pd

    whole = {c: fmt.number for c in df.columns if pd.api.types.is_integer_dtype(df[c]) and
             not pd.api.types.is_bool_dtype(df[c])}
    text = df.to_html(index=index, border=0, classes=["tt-table"], na_rep="-", escape=True,
                      float_format=fmt.number, formatters=whole or None)
    return solara.HTML(tag="div", unsafe_innerHTML=text, classes=[f"tt-{name}", "tt-scroll"])


def grid(columns, rows, titles=None, column_titles=None, first_class: str = "") -> str:
    """A table as HTML: ``columns`` (header texts), ``rows`` (lists of cell texts), escaped; ``titles`` (the same shape
    as ``rows``, or None) and ``column_titles`` become the cells' hover text (``title``: the raw key, the full
    numbers)."""
    def attr(t):
        return f' title="{html.escape(str(t))}"' if t else ""

    column_titles = column_titles or [""] * len(columns)
    head = "".join(f"<th{attr(t)}>{html.escape(str(c))}</th>" for c, t in zip(columns, column_titles))
    body = []
    for i, row in enumerate(rows):
        tips = titles[i] if titles is not None else [""] * len(row)
        cells = "".join(f"<td{attr(t)}>{html.escape(str(c))}</td>" for c, t in zip(row, tips))
        body.append(f"<tr>{cells}</tr>")
    return (f'<table class="tt-table {first_class}"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>')


def grid_html(name: str, columns, rows, titles=None, column_titles=None):
    """:func:`grid` in a scrolling container marked ``tt-<name>`` (for tests and styling)."""
    return solara.HTML(tag="div", unsafe_innerHTML=grid(columns, rows, titles, column_titles),
                       classes=[f"tt-{name}", "tt-scroll"])


# tables keep their cells on one line and scroll in place: a container at most 70% of the window high with its own
# scrollbars, its header row and first column sticky (the metric or the regime stays in view)
CSS = """
.tt-table { border-collapse: separate; border-spacing: 0; font-size: 13px; margin-bottom: 8px; }
.tt-table th, .tt-table td { padding: 2px 8px; border-bottom: 1px solid #ddd; text-align: right; white-space: nowrap;
  background: #fff; }
.tt-table th { background: #f4f4f4; position: sticky; top: 0; z-index: 2; }
.tt-table td:first-child, .tt-table th:first-child { position: sticky; left: 0; z-index: 1; text-align: left;
  border-right: 1px solid #ddd; }
.tt-table th:first-child { z-index: 3; }
.tt-table tbody th { background: #fff; text-align: left; }
.tt-table td.tt-key, .tt-table .tt-key { color: #777; font-family: monospace; font-size: 11px; }
.tt-scroll { overflow: auto; max-height: 70vh; max-width: 100%; border: 1px solid #eee; margin-bottom: 8px; }
.tt-command, .tt-previous-command { font-family: monospace; background: #f4f4f4; padding: 6px; word-break: break-all; }
.tt-howto { font-size: 13px; color: #333; background: #f7f9fc; border-left: 3px solid #1f77b4; padding: 4px 10px;
  margin: 4px 0 10px 0; }
.tt-card { border: 1px solid #ddd; border-radius: 4px; padding: 8px 12px; margin: 6px 0; }
.tt-card table { font-size: 12px; }
.tt-glossary td { text-align: left; }
.tt-glossary td:last-child { white-space: normal; min-width: 320px; }
.tt-card td { white-space: normal !important; text-align: left !important; }
.tt-changed, .tt-table td.tt-changed { background: #fff3c4; }
"""


def escape(text: str) -> str:
    return html.escape(text)
