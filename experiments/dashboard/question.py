"""The Compare page's question as a link: its query string (``?scenario=lishui&regimes=baseline,vouchers&seeds=40``).

A reload, or a link sent to a colleague, opens the same question: scenario, regimes, the mix of
instruments, seeds, the equal-spend regime and the instruments' parameters. A link is typed by
whoever sent it, so what it holds is judged as the page's own fields are: names (scenario,
regimes, instruments, parameter keys) must be among those the page offers, and every value goes
into its field as typed text, through :func:`experiments.dashboard.service.field_value` and the
schema, when the page composes the question. A value never reaches Hydra as anything but a plain
value (no interpolation is resolved, nothing is echoed resolved); what a link gets wrong is said
in one line each and the page's defaults stand in for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional
from urllib.parse import parse_qsl, urlencode

QUERY_MAX = 4000   # characters of a link's query: a question is ~100-500
FIELDS_MAX = 64    # keys in a link's query: the page has ~60 fields at most
_SHOWN = 60        # characters of a bad name or value echoed in a message


def _show(text: str) -> str:
    return repr(text[:_SHOWN] + ("..." if len(text) > _SHOWN else ""))


@dataclass
class Question:
    """The Compare page's inputs, as typed (text): what a link and a saved question hold."""

    scenario: str
    regimes: list
    mix: list = field(default_factory=list)
    seeds: str = ""
    at_spend: str = "none"
    values: dict = field(default_factory=dict)  # {parameter key: typed text}, only those set away from the default

    def query(self) -> str:
        """The query string (without ``?``) that opens this question."""
        pairs = [("scenario", self.scenario), ("regimes", ",".join(self.regimes))]
        pairs += [("mix", ",".join(self.mix))] if self.mix else []
        pairs += [("seeds", self.seeds), ("at_spend", self.at_spend)]
        pairs += sorted(self.values.items())
        return urlencode(pairs, safe=",")


def parse(search: Optional[str], default: Question, scenarios, regimes, instruments,
          parameters) -> tuple[Question, list[str]]:
    """The question a query string opens, and a line for each thing in it refused (then ``default``'s stands).

    ``scenarios``, ``regimes``, ``instruments``: the names the page offers; ``parameters``: the parameter keys it has
    fields for. Seeds, at_spend and parameters' values are kept as typed text: the page judges them as it judges
    what is typed (:func:`experiments.dashboard.service.field_value`, then the schema), next to their fields."""
    q = Question(default.scenario, list(default.regimes), list(default.mix), default.seeds, default.at_spend,
                 dict(default.values))
    if not search:
        return q, []
    search = search.lstrip("?")
    if len(search) > QUERY_MAX:
        return q, [f"link: its question is {len(search):,} characters long, more than the {QUERY_MAX:,} a question "
                   "may take; the page's starting question is shown"]
    try:
        pairs = parse_qsl(search, keep_blank_values=True, max_num_fields=FIELDS_MAX)
    except ValueError:
        return q, [f"link: more than {FIELDS_MAX} keys; the page's starting question is shown"]
    errors: list[str] = []

    def names(key: str, text: str, allowed) -> Optional[list]:
        chosen = [t.strip() for t in text.split(",") if t.strip()]
        bad = [t for t in chosen if t not in allowed]
        if bad:
            errors.append(f"link: {key} = {_show(text)}: {_show(bad[0])} is not one of {', '.join(allowed)}")
            return None
        if len(set(chosen)) != len(chosen):
            errors.append(f"link: {key} = {_show(text)}: each name may appear once")
            return None
        return chosen

    seen = set()
    for key, text in pairs:
        if key in seen:
            errors.append(f"link: {_show(key)} given twice; the first is kept")
            continue
        seen.add(key)
        if key == "scenario":
            if text in scenarios:
                q.scenario = text
            else:
                errors.append(f"link: scenario = {_show(text)}: allowed scenarios are {', '.join(scenarios)}")
        elif key == "regimes":
            chosen = names(key, text, regimes)
            if chosen is not None:
                q.regimes = chosen
        elif key == "mix":
            chosen = names(key, text, instruments)
            if chosen is not None:
                q.mix = chosen
        elif key == "seeds":
            q.seeds = text
        elif key == "at_spend":
            q.at_spend = text
        elif key in parameters:
            q.values[key] = text
        else:
            errors.append(f"link: {_show(key)} is not a key the Compare page sets (scenario, regimes, mix, seeds, "
                          "at_spend or an instrument's parameter)")
    return q, errors
