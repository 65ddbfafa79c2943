"""Two answers side by side: the headline numbers of both, the cells that differ marked (the Compare page's
"compare with")."""

from __future__ import annotations

import html


def question_changes(this: list[str], other: list[str]) -> list[tuple[str, str, str]]:
    """(key, this answer's value, the other's) of the overrides that differ ('' where one does not set the key)."""
    a = dict(o.split("=", 1) for o in this if "=" in o)
    b = dict(o.split("=", 1) for o in other if "=" in o)
    return [(k, a.get(k, ""), b.get(k, "")) for k in dict.fromkeys([*a, *b]) if a.get(k) != b.get(k)]


def headline_diff(this, other) -> tuple[list[str], list[list[tuple[str, str, bool]]]]:
    """The headline tables of two answers (sim.analysis.stats.headline_table: a row per regime, formatted cells) side
    by side: (the metrics' columns, a row per regime of either: [(this cell, the other's, whether they differ)]).
    Regimes in this answer's order, then those only the other has; a cell a table lacks is '-'."""
    columns = [c for c in dict.fromkeys([*this.columns, *other.columns]) if c != "regime"]
    a = {r["regime"]: r for r in this.to_dict("records")} if len(this) else {}
    b = {r["regime"]: r for r in other.to_dict("records")} if len(other) else {}
    rows = []
    for regime in dict.fromkeys([*a, *b]):
        ra, rb = a.get(regime, {}), b.get(regime, {})
        row = [(regime, regime, regime not in a or regime not in b)]
        for c in columns:
            x, y = str(ra.get(c, "-")), str(rb.get(c, "-"))
            row.append((x, y, x != y))
        rows.append(row)
    return columns, rows


def diff_html(this, other) -> str:
    """:func:`headline_diff` as an HTML table: for each metric a column "now" and one "compared with"; a changed
    cell's pair has class ``tt-changed``."""
    columns, rows = headline_diff(this, other)
    e = html.escape
    head = "<tr><th rowspan=2>regime</th>" + "".join(f"<th colspan=2>{e(c)}</th>" for c in columns) + "</tr>"
    head += "<tr>" + "<th>now</th><th>compared with</th>" * len(columns) + "</tr>"
    body = []
    for row in rows:
        (regime, _, only), cells = row[0], row[1:]
        tds = [f"<td class='{'tt-changed' if only else ''}'>{e(regime)}</td>"]
        for x, y, changed in cells:
            cls = " class='tt-changed'" if changed else ""
            tds.append(f"<td{cls}>{e(x)}</td><td{cls}>{e(y)}</td>")
        body.append("<tr>" + "".join(tds) + "</tr>")
    return f"<table class='tt-table'><thead>{head}</thead><tbody>{''.join(body)}</tbody></table>"
