"""Where the project's files are: the Hydra configs (a source checkout or an installed wheel)."""

from __future__ import annotations

from pathlib import Path

# a source checkout or an editable install: the top-level configs/ folder is the source of truth
CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
