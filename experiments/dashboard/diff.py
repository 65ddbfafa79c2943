"""Two answers side by side: the headline numbers of both, as the answer view writes them (its labels, units and
money unit: :func:`experiments.dashboard.pages.answer.headline`), the cells that differ marked (the Compare page's
"compare with")."""

from __future__ import annotations

import html

CHANGED = " class='tt-changed'"  # a cell that differs (ui.py's CSS shades it)


def question_changes(this: list[str], other: list[str]) -> list[tuple[str, str, str]]:
    """(key, this answer's value, the other's) of the overrides that differ ('' where one does not set the key)."""
    a = dict(o.split("=", 1) for o in this if "=" in o)
    b = dict(o.split("=", 1) for o in other if "=" in o)
    return [(k, a.get(k, ""), b.get(k, "")) for k in dict.fromkeys([*a, *b]) if a.get(k) != b.get(k)]


def answer_headline(answer, unit: str = "yuan") -> tuple[list[str], list[list[str]]]:
    """The headline of an answer as the answer view shows it: (header, rows), a row per regime but baseline, cheapest
    conversion first, its cells written in ``unit`` (:func:`experiments.dashboard.pages.answer.headline`)."""
    from experiments.dashboard.pages.answer import headline

    order = list(answer.headline["regime"]) if len(answer.headline) else []
    equal = None if answer.equal is None else answer.equal.table
    header, rows, _, _ = headline(answer.comparison.table, equal, order, answer.config.scenario.months, unit)
    return header, rows


def headline_diff(this, other) -> tuple[list[str], list[list[tuple[str, str, bool]]]]:
    """Two headlines ((header, rows) of :func:`answer_headline`: the regime first) side by side: (the metrics'
    columns, a row per regime of either: [(this cell, the other's, whether they differ)]). Regimes in this answer's
    order, then those only the other has; a cell a headline lacks is '-'."""
    (ha, ra), (hb, rb) = this, other
    columns = [c for c in dict.fromkeys([*ha[1:], *hb[1:]])]
    a = {r[0]: dict(zip(ha[1:], r[1:])) for r in ra}
    b = {r[0]: dict(zip(hb[1:], r[1:])) for r in rb}
    rows = []
    for regime in dict.fromkeys([*a, *b]):
        ca, cb = a.get(regime, {}), b.get(regime, {})
        row = [(regime, regime, regime not in a or regime not in b)]
        for c in columns:
            x, y = str(ca.get(c, "-")), str(cb.get(c, "-"))
            row.append((x, y, x != y))
        rows.append(row)
    return columns, rows


def diff_html(this, other) -> str:
    """:func:`headline_diff` as an HTML table: for each metric a column "now" and one "compared with"; a changed
    cell's pair has class ``tt-changed`` (ui.py's CSS shades it)."""
    columns, rows = headline_diff(this, other)
    e = html.escape
    head = "<tr><th rowspan=2>regime</th>" + "".join(f"<th colspan=2>{e(c)}</th>" for c in columns) + "</tr>"
    head += "<tr>" + "<th>now</th><th>compared with</th>" * len(columns) + "</tr>"
    body = []
    for row in rows:
        (regime, _, only), cells = row[0], row[1:]
        tds = [f"<td{CHANGED if only else ''}>{e(regime)}</td>"]
        for x, y, changed in cells:
            cls = CHANGED if changed else ""
            tds.append(f"<td{cls}>{e(x)}</td><td{cls}>{e(y)}</td>")
        body.append("<tr>" + "".join(tds) + "</tr>")
    return f"<table class='tt-table'><thead>{head}</thead><tbody>{''.join(body)}</tbody></table>"
