"""Where the project's files are: the Hydra configs (a source checkout or an installed wheel).

The top-level ``configs/`` folder of the repository is the one source of the configs.
A wheel carries a copy of it inside the package, as ``sim/configs/`` (``setup.py``
copies it at build time), since a wheel installs no top-level folders besides packages.
A source checkout or an editable install (``pip install -e .``) has no such copy and uses
the repository's ``configs/`` in place, so edits to it take effect at once.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parents[1]  # the sim package (this file is sim/core/locations.py)
_SHIPPED = _PACKAGE_DIR / "configs"          # an installed wheel
_CHECKOUT = _PACKAGE_DIR.parent / "configs"  # a source checkout or an editable install

CONFIG_DIR = _SHIPPED if _SHIPPED.is_dir() else _CHECKOUT
