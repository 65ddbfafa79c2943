"""Sphinx configuration of the documentation (Markdown pages, read by MyST).

Build: ``.venv/bin/python -m sphinx -b html docs docs/_build/html`` (``tests/test_docs.py`` builds it with ``-W``:
any warning, a broken link or a config key without a meaning included, fails the tests).
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))                       # sim, experiments: the checkout's, for autodoc and the reference
sys.path.insert(0, str(Path(__file__).parent / "_ext"))

project = "techtransfer-sim"
author = "techtransfer-sim contributors"
copyright = "techtransfer-sim contributors, MIT licence"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "configref",          # docs/_ext/configref.py: the config reference, generated from the schema
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

# MyST: heading anchors, so that links such as [x](../explanation/calibration.md#how-sharp-the-posterior-is) resolve
# (GitHub's slugs, the ones README.md's links used)
myst_heading_anchors = 4
myst_enable_extensions = ["colon_fence", "deflist"]

# autodoc: the docstrings of sim.api and the instruments, in the order of the source
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "undoc-members": False}
autodoc_typehints = "signature"

html_theme = "alabaster"         # ships with Sphinx: nothing is downloaded when the docs are built
html_theme_options = {
    "description": "university-to-firm technology transfer under policy pilots",
    "page_width": "1200px",
    "sidebar_width": "260px",
    "fixed_sidebar": False,
}
html_sidebars = {"**": ["about.html", "navigation.html", "searchbox.html"]}
html_static_path = []
html_title = "techtransfer-sim"
smartquotes = False             # the pages quote code and the schema's text as written


def _skip(app, what, name, obj, skip, options):
    """The instruments' compiled parameter structs (``KernelParams``, ``<name>_params``) are plumbing, not API."""
    if what == "module" and (name == "KernelParams" or name.endswith("_params")):
        return True
    return None


def setup(app):
    app.connect("autodoc-skip-member", _skip)
