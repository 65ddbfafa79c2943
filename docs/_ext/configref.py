"""The configuration reference, generated from the schema at build time.

Every key of :class:`sim.core.config.Config` (the scenario's sections in :mod:`sim.core.config`, the
regime, government, and each registered instrument's ``Params``, :mod:`sim.instruments`) is a
dataclass field declared with :mod:`sim.core.schema`'s helpers (``_c``/``param``, ``share``,
``money``, ...), which carry its default, its bounds and a one-line meaning with its source.
This module reads them, so the reference can never disagree with the schema, and lists them:

* ``rows()`` / ``sections()``: the keys as data (used by the directive and by the tests);
* the directive ``config-reference``: the tables, in a MyST page as

  .. code-block:: markdown

     ```{config-reference}
     ```

  for every section, or ``:section: vouchers`` for one (an instrument's own list, derived
  from the registry rather than kept by hand).

A key without a meaning stops the build (a warning; the docs are built with ``-W``), except
the second shape ``<x>_b`` of a Beta(a, b) whose ``<x>_a`` says what the pair is.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Row:
    key: str          # dotted key, e.g. "vouchers.rate"
    type: str         # int, float, str, bool, list, dict
    default: str      # as a YAML file or the command line would write it
    bounds: str       # what the schema allows ("" where anything of the type is)
    doc: str          # its meaning and source, from the schema
    section: str      # dotted section ("" for the top level)


@dataclass(frozen=True)
class Section:
    key: str          # "" (how to run), "scenario.firms", "voucher", ...
    title: str
    source: str       # the class that declares it
    intro: str        # a line on what it is
    rows: tuple


def show(value) -> str:
    """A default as one writes it: ``true``, ``null``, ``300000`` (a whole amount of money as an integer)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer() and abs(value) >= 1000:
        return str(int(value))
    if isinstance(value, list):
        return "[" + ", ".join(map(str, value)) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {v}" for k, v in value.items()) + "}"
    return str(value)


def _type_name(typ) -> str:
    if typing.get_origin(typ) is typing.Union:
        inner = [a for a in typing.get_args(typ) if a is not type(None)]
        return _type_name(inner[0]) + " or null"
    return getattr(typ, "__name__", str(typ))


def _default(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    raise ValueError(f"field {f.name} has no default")


def _doc(cls, f: dataclasses.Field, key: str) -> str:
    doc = f.metadata.get("doc", "")
    if doc:
        return doc
    if f.name.endswith("_b"):
        sibling = {g.name: g for g in dataclasses.fields(cls)}.get(f.name[:-2] + "_a")
        if sibling is not None and sibling.metadata.get("doc", "").startswith("Beta(a, b)"):
            return f"b of the Beta(a, b) of {key[:-2]}_a ({sibling.metadata['doc'][len('Beta(a, b) '):]})"
    return ""


def _rows(cls, prefix: str) -> tuple[list[Row], list[tuple[str, type]]]:
    """The leaf keys of ``cls`` and its nested sections, in the order of the schema."""
    from sim.core.schema import _describe

    hints = typing.get_type_hints(cls)
    rows, nested = [], []
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(hints[f.name]):
            nested.append((key, hints[f.name]))
            continue
        rows.append(Row(key, _type_name(hints[f.name]), show(_default(f)), _describe(f.metadata),
                        _doc(cls, f, key), prefix[:-1]))
    return rows, nested


SECTION_TITLES = {
    "": "How to run (the main job, sweeps; not parameters of a run)",
    "scenario": "The scenario: its size and horizon",
    "scenario.firms": "Firms",
    "scenario.universities": "Universities and their portfolios",
    "scenario.achievements": "Achievements",
    "scenario.success": "The success chance",
    "scenario.negotiation": "Negotiation",
    "scenario.brokers": "Brokers",
    "regime": "The regime: the instruments switched on",
    "government": "Government",
}


def sections() -> list[Section]:
    """Every section of the schema, in the order of :class:`sim.core.config.Config`, each with its keys."""
    from sim.core.config import Config
    from sim.instruments import INSTRUMENTS

    by_section = {m.NAME: m for m in INSTRUMENTS}
    out = []

    def visit(key: str, cls):
        rows, nested = _rows(cls, f"{key}." if key else "")
        module = by_section.get(key)
        if module is not None:
            lines = (module.__doc__ or "").strip().splitlines()
            title = f"{key}: the instrument (regime.instruments: [{module.NAME}])"
            intro = " ".join(lines[:next((i for i, ln in enumerate(lines) if not ln.strip()), len(lines))])
            source = f"{module.__name__}.Params"
        else:
            title = SECTION_TITLES.get(key, key)
            intro = ""
            source = "sim.core.config.Config" if not key else f"{cls.__module__}.{cls.__qualname__}"
        if rows:
            out.append(Section(key, title, source, intro, tuple(rows)))
        for k, c in nested:
            visit(k, c)

    visit("", Config)
    return out


def rows() -> list[Row]:
    """Every leaf key of the schema with its default, bounds and meaning."""
    return [r for s in sections() for r in s.rows]


def anchor(key: str) -> str:
    """The HTML id of a key's row: ``param-voucher-rate``."""
    return "param-" + key.replace(".", "-").replace("_", "-")


# --------------------------------------------------------------------------- the directive
def _table(section: Section, with_ids: bool) -> nodes.table:
    widths = (22, 12, 16, 50)
    table = nodes.table(classes=["config-reference"])
    group = nodes.tgroup(cols=len(widths))
    table += group
    for w in widths:
        group += nodes.colspec(colwidth=w)
    head = nodes.thead()
    group += head
    row = nodes.row()
    for text in ("key", "default", "allowed", "meaning (source)"):
        row += nodes.entry("", nodes.paragraph(text=text))
    head += row
    body = nodes.tbody()
    group += body
    for r in section.rows:
        row = nodes.row()
        key = nodes.literal(text=r.key)
        if with_ids:
            key["ids"].append(anchor(r.key))
        row += nodes.entry("", nodes.paragraph("", "", key))
        row += nodes.entry("", nodes.paragraph("", "", nodes.literal(text=r.default)))
        allowed = r.type + (f", {r.bounds}" if r.bounds else "")
        row += nodes.entry("", nodes.paragraph(text=allowed))
        row += nodes.entry("", nodes.paragraph(text=r.doc))
        body += row
    return table


class ConfigReference(SphinxDirective):
    """Tables of the config's keys: all sections (each under its own heading) or ``:section: <key>`` alone."""

    option_spec = {"section": directives.unchanged}

    def run(self):
        wanted = self.options.get("section")
        found = sections()
        for s in found:
            for r in s.rows:
                if not r.doc:
                    logger.warning(f"config key {r.key} ({s.source}) has no doc: give its field a doc= in the schema",
                                   location=self.get_location())
        if wanted is not None:
            match = [s for s in found if s.key == wanted]
            if not match:
                logger.warning(f"config-reference: no section {wanted!r} in the schema (sections: "
                               + ", ".join(s.key for s in found if s.key) + ")", location=self.get_location())
                return []
            para = nodes.paragraph()
            para += nodes.Text("Declared in ")
            para += nodes.literal(text=match[0].source)
            para += nodes.Text("; every key, its default and its range (generated from the schema):")
            return [para, _table(match[0], with_ids=False)]
        out = []
        for s in found:
            sec = nodes.section(ids=[("section-" + (s.key or "run")).replace(".", "-").replace("_", "-")])
            sec += nodes.title(text=f"{s.key or 'top level'}: {s.title}" if not s.title.startswith(s.key + ":")
                               else s.title)
            para = nodes.paragraph()
            para += nodes.Text("Declared in ")
            para += nodes.literal(text=s.source)
            para += nodes.Text("." + (f" {s.intro}" if s.intro else ""))
            sec += para
            sec += _table(s, with_ids=True)
            out.append(sec)
        return out


class InstrumentModules(SphinxDirective):
    """A section per registered instrument, in the order of ``REGISTRY`` (the order their hooks run), with its module's
    API from its docstrings: an instrument added to the registry is on the page with nothing else edited."""

    def run(self):
        from docutils.statemachine import StringList
        from sphinx.util.nodes import nested_parse_with_titles

        from sim.instruments import REGISTRY

        lines = []
        for name in REGISTRY:
            title = f"``sim.instruments.{name}``"
            lines += [title, "-" * len(title), "", f".. automodule:: sim.instruments.{name}", ""]
        container = nodes.section()
        container.document = self.state.document
        nested_parse_with_titles(self.state, StringList(lines, source="instrument-modules"), container)
        return container.children


def setup(app):
    app.add_directive("config-reference", ConfigReference)
    app.add_directive("instrument-modules", InstrumentModules)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
