"""Build hook (all other metadata is in pyproject.toml): the wheel carries the Hydra configs.

The top-level ``configs/`` folder is the one source of the configs. A wheel has no
top-level folders besides its packages, so building one copies ``configs/`` into the
built package as ``sim/configs/``; :mod:`sim.core.locations` uses that copy when it exists
and the repository's ``configs/`` otherwise. An editable install (``pip install -e .``)
copies nothing, so edits to ``configs/`` take effect at once. ``MANIFEST.in`` puts
``configs/`` in the sdist, so a wheel built from the sdist has them too.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

CONFIGS = Path(__file__).resolve().parent / "configs"
TARGET = ("sim", "configs")  # where the configs go inside the built package


class build_py_with_configs(build_py):
    """``build_py``, then a copy of ``configs/`` into ``<build_lib>/sim/configs``."""

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return  # editable: sim.core.locations finds the repository's configs/ in place
        target = Path(self.build_lib).joinpath(*TARGET)
        if target.exists():  # no stale files from an earlier build
            shutil.rmtree(target)
        shutil.copytree(CONFIGS, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*"))

    def get_outputs(self, include_bytecode=True):
        outputs = list(super().get_outputs(include_bytecode))
        if not getattr(self, "editable_mode", False):
            target = Path(self.build_lib).joinpath(*TARGET)
            outputs += [str(target / p.relative_to(CONFIGS)) for p in sorted(CONFIGS.rglob("*.yaml"))]
        return outputs


setup(cmdclass={"build_py": build_py_with_configs})
