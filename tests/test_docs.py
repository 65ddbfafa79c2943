"""The documentation (``docs/``, Sphinx + MyST) builds without a warning and says what the code is.

The site is built once for this module (``python -m sphinx -W --keep-going -b html docs <tmp>``, ~10 s): a broken link
between pages, a missing image, a docstring autodoc cannot read or a config key without a meaning is a warning, and a
warning fails. Then what was built is read: the generated parameter reference lists every key of the composed default
config with its default and meaning; every registered instrument has its section, with the table generated from its
``Params`` (this replaced a README table kept by hand, which ``tests/core/test_config.py`` checked row by row); the how-to
guides exist and the adding-an-instrument guide names hooks the code has; README.md links only to files and anchors
that exist, and still holds the commands CI runs.
"""

from __future__ import annotations

import dataclasses
import html
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sim import api
from sim.instruments import INSTRUMENTS

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"
HOWTOS = ("add-instrument", "add-analysis", "calibrate-region", "sweeps", "dashboard")

sys.path.insert(0, str(DOCS / "_ext"))
import configref  # noqa: E402  (docs/_ext/configref.py: what the reference is generated from)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The HTML site, built with warnings as errors; ``(completed process, output folder)``."""
    out = tmp_path_factory.mktemp("docs_html")
    p = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-j", "1", "-q", "-b", "html",
                        "-d", str(out / ".doctrees"), str(DOCS), str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    return p, out


def _rows(page: Path) -> list[list[str]]:
    """The text of every table row of a built page, cell by cell."""
    rows = []
    for tr in re.findall(r"<tr\b.*?</tr>", page.read_text(), re.S):
        cells = re.findall(r"<t[dh]\b.*?</t[dh]>", tr, re.S)
        rows.append([" ".join(html.unescape(re.sub(r"<[^>]+>", "", c)).split()) for c in cells])
    return rows


def _leaves(obj, prefix: str = ""):
    """(dotted key, value) of every leaf of a config dataclass."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            yield from _leaves(value, f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", value


def test_the_docs_build_with_warnings_as_errors(site):
    p, out = site
    assert p.returncode == 0, f"sphinx exited {p.returncode}\n{p.stderr[-6000:]}"
    assert "WARNING" not in p.stderr, p.stderr[-6000:]
    for page in ("index", "reference/parameters", "reference/instruments", "reference/api",
                 "reference/instruments-api", "explanation/testing"):
        assert (out / f"{page}.html").is_file(), page


def test_the_parameter_reference_lists_every_key_of_the_composed_config_with_its_default(site):
    _, out = site
    page = out / "reference" / "parameters.html"
    ids = set(re.findall(r'id="(param-[^"]+)"', page.read_text()))
    rows = {r[0]: r for r in _rows(page) if len(r) == 4 and r[0] != "key"}
    keys = dict(_leaves(api.compose()))
    missing = [k for k in keys if k not in rows or configref.anchor(k) not in ids]
    assert not missing, f"keys of the composed config missing from the parameter reference: {missing}"
    stale = sorted(set(rows) - set(keys))
    assert not stale, f"the reference lists keys the config does not have: {stale}"
    for key, value in keys.items():
        _, default, allowed, meaning = rows[key]
        assert default == configref.show(value), f"{key}: the reference says {default}, the config {value!r}"
        assert meaning, f"{key}: no meaning in the reference"
        assert allowed, key
    # ranges are the schema's, as the config's errors state them
    assert rows["broker_reward.rate"][2] == "float, >= 0 and <= 1"
    assert rows["engine"][2] == "str, one of mesa, numba"


@pytest.mark.parametrize("module", INSTRUMENTS, ids=lambda m: m.NAME)
def test_each_instrument_has_its_section_with_its_generated_parameters(module, site):
    """(Moved from tests/core/test_config.py, which checked the README's hand-kept table row by row.)"""
    source = (DOCS / "reference" / "instruments.md").read_text()
    assert re.search(rf"```{{config-reference}}\n:section: {re.escape(module.NAME)}\n```", source), \
        f"docs/reference/instruments.md has no config-reference table of section {module.NAME} ({module.NAME})"
    _, out = site
    rows = {r[0]: r for r in _rows(out / "reference" / "instruments.html") if len(r) == 4}
    for f in dataclasses.fields(module.Params):
        key = f"{module.NAME}.{f.name}"
        assert key in rows, f"{key} is not in the instruments reference"
        assert rows[key][1] == configref.show(f.default), f"{key}: shown {rows[key][1]}, default {f.default!r}"
        assert rows[key][3] == f.metadata["doc"], key


def test_the_howto_guides_exist_and_the_instrument_guide_names_hooks_the_code_has(site):
    _, out = site
    for name in HOWTOS:
        assert (DOCS / "how-to" / f"{name}.md").is_file(), name
        assert (out / "how-to" / f"{name}.html").is_file(), f"how-to/{name} is not built (not in a toctree?)"
    guide = (DOCS / "how-to" / "add-instrument.md").read_text()
    from sim.core import hooks
    from sim.instruments import vouchers

    assert "ZERO_STRENGTH" in guide and vouchers.ZERO_STRENGTH
    for hook in ("offer_support", "on_open", "at_signing", "on_breakdown", "on_payment"):
        assert f"`{hook}(" in guide, f"the guide does not show the hook {hook}"
        assert hook in hooks.HOOKS and callable(getattr(vouchers, hook, None)), \
            f"the guide walks through {hook}, which sim.core.hooks or vouchers no longer has"
        args = hooks.HOOKS[hook][0]
        assert f"`{hook}({args})`" in guide, f"the guide gives {hook} other arguments than sim.core.hooks: ({args})"


def _slugs(markdown: str) -> set[str]:
    """The anchors of a Markdown file's headings, as GitHub and MyST (``myst_heading_anchors``) make them."""
    try:
        from myst_parser.slugs import github_slugify
    except ImportError:  # myst-parser before 5.2
        from myst_parser.mdit_to_docutils.base import default_slugify as github_slugify
    text = re.sub(r"^```.*?^```", "", markdown, flags=re.S | re.M)   # no headings inside code blocks
    titles = re.findall(r"^#{1,6} +(.+?) *$", text, re.M)
    return {github_slugify(re.sub(r"`", "", t)) for t in titles}


def test_readme_links_only_to_files_and_anchors_that_exist():
    readme = README.read_text()
    links = re.findall(r"\]\(([^)\s]+)\)", re.sub(r"^```.*?^```", "", readme, flags=re.S | re.M))
    assert any(link.startswith("docs/") for link in links)
    own = _slugs(readme)
    for link in links:
        if re.match(r"[a-z]+:", link):   # http(s), mailto: not checked here (no network)
            continue
        path, _, anchor = link.partition("#")
        if not path:
            assert anchor in own, f"README.md links to #{anchor}, which is none of its headings: {sorted(own)}"
            continue
        target = ROOT / path
        assert target.exists(), f"README.md links to {path}, which does not exist"
        if anchor:
            assert anchor in _slugs(target.read_text()), f"README.md links to {link}: {path} has no such heading"


def test_readme_holds_the_commands_ci_runs_verbatim():
    readme = README.read_text()
    blocks = re.findall(r"^```bash\n(.*?)^```", readme, re.S | re.M)
    ci = [ln for ln in (ROOT / ".ci" / "run").read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    assert ci[-1] in [b.strip() for b in blocks], "the README's test command is not .ci/run's, verbatim"
    assert ('python3 -m venv .venv && .venv/bin/pip install -e ".[test]" && .venv/bin/python -m experiments.run'
            in [b.strip() for b in blocks])
