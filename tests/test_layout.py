"""The package's layers, from the real imports (docs/reference/layout.md): no module imports a layer above its own.

Every module of ``sim`` is parsed (``ast``) and each of its imports, at the top or inside a function, under
``TYPE_CHECKING`` or not, resolved to the module it names. The layers, lowest first:

0. ``sim.core``: the model itself (state, rules, contracts, ledger, the month, population, results, config);
1. ``sim.instruments``: one module per policy instrument; they import the core;
2. ``sim.engines`` (``sim.engines.mesa``, ``sim.engines.numba``): run the month; import the core and instruments;
3. ``sim.runs``: batches, pools, sweeps, executors; import the engines;
4. ``sim.analysis``: statistics, plots, calibration, exploration; import the runs;
5. ``sim.api``: the one facade; imports all of them.

A module may import its own layer and those below. The one exception, by design: the core reads the registered
instruments through the registry, the package ``sim.instruments`` itself (its ``REGISTRY``/``INSTRUMENTS``; the
plug-in point), never an instrument's module. The two engines never import each other, and nothing in ``sim``
imports the apps (``experiments``).

The apps in ``experiments/`` are parsed the same way: each imports ``sim``, ``experiments.cli`` (what the apps share)
and its own modules, never another app; ``experiments.cli`` imports no app. The one exception, by purpose: the
benchmark (``experiments.bench``) times the optimise app's search and the dashboard's service as they run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SIM = Path(__file__).resolve().parents[1] / "sim"
EXPERIMENTS = SIM.parent / "experiments"

LAYERS = ("sim.core", "sim.instruments", "sim.engines", "sim.runs", "sim.analysis", "sim.api")
REGISTRY = "sim.instruments"  # the one module of a higher layer the core may import (see the docstring)


def module_name(path: Path) -> str:
    parts = path.relative_to(SIM.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(name: str) -> int | None:
    """The rank of the layer of module ``name`` (``sim`` itself: None, the package's root)."""
    for rank, prefix in enumerate(LAYERS):
        if name == prefix or name.startswith(prefix + "."):
            return rank
    return None


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in the file, a ``from X import y`` naming ``X.y`` when that is a
    module of the package, else ``X``."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            for a in node.names:
                sub = f"{target}.{a.name}"
                is_module = (SIM.parent / Path(*sub.split("."))).with_suffix(".py").is_file() or \
                    (SIM.parent / Path(*sub.split(".")) / "__init__.py").is_file()
                out.append((node.lineno, sub if is_module else target))
    return out


MODULES = sorted(SIM.rglob("*.py"))


def test_every_module_is_in_a_layer():
    """No flat modules besides the facade: every module of sim is in one of the layers' packages."""
    loose = [module_name(p) for p in MODULES if layer(module_name(p)) is None and module_name(p) != "sim"]
    assert not loose, f"modules outside every layer: {loose}"


def test_every_package_says_what_it_is():
    for init in SIM.rglob("__init__.py"):
        assert ast.get_docstring(ast.parse(init.read_text())), f"{init.relative_to(SIM.parent)} has no docstring"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(SIM.parent).as_posix())
def test_no_import_of_a_higher_layer(path):
    name = module_name(path)
    own = layer(name)
    bad = []
    for line, target in imports(path):
        if target.split(".")[0] == "experiments":
            bad.append(f"line {line}: {target} (sim never imports the apps)")
            continue
        if target != "sim" and not target.startswith("sim."):
            continue
        theirs = layer(target)
        if own is None:  # sim/__init__.py: only the core (the cache directory, set before anything compiles)
            if theirs != 0:
                bad.append(f"line {line}: {target}")
            continue
        if theirs is None or theirs <= own:
            continue
        if own == 0 and target == REGISTRY:
            continue  # the registry of instruments, the plug-in point
        bad.append(f"line {line}: {target} (layer {LAYERS[theirs]} above {LAYERS[own]})")
    assert not bad, f"{name} imports upwards: " + "; ".join(bad)


@pytest.mark.parametrize("path", [p for p in MODULES if module_name(p).startswith("sim.engines.")],
                         ids=lambda p: p.relative_to(SIM.parent).as_posix())
def test_engines_do_not_import_each_other(path):
    name = module_name(path)
    mine = name.split(".")[2]
    others = [t for _, t in imports(path) if t.startswith("sim.engines.") and t.split(".")[2] != mine]
    assert not others, f"{name} imports the other engine: {others}"


SHARED = "experiments.cli"  # what the apps share: the one module of experiments/ an app imports besides its own
# the apps the benchmark times as they run (its sections: the policy search, the dashboard's default comparison)
BENCHMARKED = {"experiments.bench": {"experiments.optimise", "experiments.dashboard"}}
APP_MODULES = sorted(p for p in EXPERIMENTS.rglob("*.py") if module_name(p) not in ("experiments", SHARED))


def app_of(name: str) -> str | None:
    """The app a module of ``experiments`` belongs to (None: the package itself or the shared module): the dashboard's
    package is one app, and ``experiments.run`` is the entry point of the main job, ``experiments.app``."""
    parts = name.split(".")
    if len(parts) < 2 or name == SHARED:
        return None
    if parts[1] == "dashboard":
        return "experiments.dashboard"
    return "experiments.app" if name == "experiments.run" else ".".join(parts[:2])


def test_the_apps_are_found():
    apps = {app_of(module_name(p)) for p in APP_MODULES}
    assert {"experiments.app", "experiments.calibrate", "experiments.collect", "experiments.dashboard",
            "experiments.sensitivity", "experiments.discover", "experiments.optimise"} <= apps, apps
    assert not (EXPERIMENTS / "explore_app.py").exists()  # its helpers are in experiments.cli


@pytest.mark.parametrize("path", APP_MODULES, ids=lambda p: p.relative_to(SIM.parent).as_posix())
def test_an_app_imports_sim_and_the_shared_module_never_another_app(path):
    name = module_name(path)
    mine = app_of(name)
    bad = list(dict.fromkeys(f"line {line}: {target}" for line, target in imports(path)
                             if target.split(".")[0] == "experiments" and target != SHARED and app_of(target) != mine
                             and app_of(target) not in BENCHMARKED.get(name, ())))
    assert not bad, f"{name} imports another app (what apps share goes in {SHARED}): " + "; ".join(bad)


def test_the_shared_module_imports_no_app():
    path = EXPERIMENTS / "cli.py"
    bad = [f"line {line}: {target}" for line, target in imports(path) if target.split(".")[0] == "experiments"]
    assert not bad, f"{SHARED} imports an app: " + "; ".join(bad)


def test_mesa_is_imported_only_by_the_mesa_engine():
    # every command (a config error, a Numba run, a Slurm job) would otherwise pay Mesa's second of imports
    import subprocess
    import sys

    code = ("import sys, experiments.app, experiments.cli, sim.api, sim.engines.numba.kernels; "
            "print('mesa' in sys.modules); import sim.engines.mesa.model; print('mesa' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "True"]
