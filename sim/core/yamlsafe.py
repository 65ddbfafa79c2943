"""Reading a YAML file a user can edit, within limits: its size, its nesting and its size once aliases are expanded.

A YAML file of a few hundred bytes can stand for billions of nodes through nested aliases
(``a: &a [x, x]``, ``b: &b [*a, *a]``, ... : "billion laughs"); the parser shares the nodes,
but whatever walks the data (OmegaConf, validation, a copy) walks every one. So a file is
read only when it is a regular file of at most :data:`YAML_MAX_BYTES` bytes whose document,
aliases expanded, has at most :data:`YAML_MAX_NODES` nodes, nested at most
:data:`YAML_MAX_DEPTH` deep, and no alias inside the node it refers to. Counting is linear in
the file (each node is counted once, its expanded size remembered), so a bomb is refused
in milliseconds. Aliases within those limits are read as usual.

Used for every YAML file of the user's the project reads besides Hydra's own composition:
target sets (:mod:`sim.analysis.targets`), a posterior's ``posterior.yaml`` (:mod:`sim.runs.posterior`),
the named regimes (:mod:`sim.core.config`), parameter spaces and levers
(:func:`sim.analysis.calibration.read_yaml_mapping`) and a sweep's ``multirun.yaml`` (:mod:`sim.runs.sweep`).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from .schema import ConfigError

# judgement: our files are far smaller (a target set ~10 kB and ~500 nodes, a sweep's multirun.yaml ~1,000 nodes);
# 10^5 nodes are read by OmegaConf in about a second and ~100 MB, far more would exhaust the machine
YAML_MAX_BYTES = 1 << 20      # 1 MiB
YAML_MAX_NODES = 100_000      # nodes of the document once its aliases are expanded
YAML_MAX_DEPTH = 100          # levels of nesting, aliases expanded


class YamlError(ConfigError):
    """A YAML file that cannot be read or passes a limit; ``reason`` says why, without the file's name."""

    def __init__(self, where: str, reason: str):
        super().__init__(f"{where}: {reason}")
        self.where, self.reason = where, reason


class _Limit(Exception):
    pass


def _loader_class(base):
    """``base`` (a PyYAML loader class) that refuses nesting beyond the limit while composing, and a document beyond
    the limits once composed."""

    class Limited(base):
        _depth = 0

        def compose_node(self, parent, index):
            self._depth += 1
            try:
                if self._depth > YAML_MAX_DEPTH:
                    raise _Limit(f"nested more than {YAML_MAX_DEPTH} levels deep")
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1

        def get_single_node(self):
            node = super().get_single_node()
            if node is not None:
                _expanded(node, {}, set())
            return node

    return Limited


def _expanded(node, memo: dict, active: set) -> tuple:
    """(nodes, depth) of ``node`` with its aliases expanded; raises :class:`_Limit` past a limit or on a cycle."""
    import yaml

    key = id(node)
    if key in memo:
        return memo[key]
    if key in active:
        raise _Limit("an alias refers to a node that contains it (a recursive structure)")
    active.add(key)
    count, depth = 1, 0
    if isinstance(node, yaml.SequenceNode):
        children = node.value
    elif isinstance(node, yaml.MappingNode):
        children = [n for pair in node.value for n in pair]
    else:
        children = ()
    for child in children:
        n, d = _expanded(child, memo, active)
        count += n
        depth = max(depth, d + 1)
        if count > YAML_MAX_NODES:
            raise _Limit(f"more than {YAML_MAX_NODES} nodes once its aliases are expanded")
        if depth > YAML_MAX_DEPTH:
            raise _Limit(f"nested more than {YAML_MAX_DEPTH} levels deep once its aliases are expanded")
    active.discard(key)
    memo[key] = (count, depth)
    return count, depth


_LOADERS: dict = {}


def _loader(omegaconf: bool):
    if omegaconf not in _LOADERS:
        import yaml

        if omegaconf:
            from omegaconf._utils import get_yaml_loader

            base = get_yaml_loader()
        else:
            base = yaml.SafeLoader
        _LOADERS[omegaconf] = _loader_class(base)
    return _LOADERS[omegaconf]


def parse_yaml(text, where: str, omegaconf: bool = False) -> Any:
    """The data of a YAML document (``text``: str or bytes of at most :data:`YAML_MAX_BYTES`), or a
    :class:`YamlError` naming ``where``. ``omegaconf``: OmegaConf's loader (as ``OmegaConf.load``: ``1e3`` is a
    float, duplicate keys are refused), else PyYAML's safe loader."""
    import yaml

    if len(text) > YAML_MAX_BYTES:
        raise YamlError(where, f"{len(text)} bytes, more than the {YAML_MAX_BYTES} a YAML file of ours can have")
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise YamlError(where, f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    try:
        return yaml.load(text, Loader=_loader(omegaconf))  # noqa: S506  (a safe loader, with limits)
    except _Limit as e:
        raise YamlError(where, f"not read: {e}") from None
    except RecursionError:
        raise YamlError(where, "not read: nested too deep") from None
    except yaml.YAMLError as e:
        raise YamlError(where, "not YAML (" + " ".join(str(e).split())[:200] + ")") from None


def read_bytes(path: Path, limit: int = YAML_MAX_BYTES, kind: str = "a YAML file") -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes (never blocks on a FIFO or a device), or a
    :class:`YamlError` naming the file (``kind``: what it is, for the message). Also the readers of the apps' JSON
    state files (``calibration.json``, ``exploration.json``), which are far smaller."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as e:
        raise YamlError(str(path), f"cannot be read ({e.strerror or e})") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise YamlError(str(path), "not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read(limit + 1)
    except OSError as e:
        raise YamlError(str(path), f"cannot be read ({e.strerror or e})") from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise YamlError(str(path), f"more than the {limit} bytes {kind} of ours can have")
    return data


def read_yaml(path, omegaconf: bool = False) -> Any:
    """The data of the YAML file ``path`` within the limits above, or a one-line :class:`YamlError` naming it."""
    return parse_yaml(read_bytes(Path(path)), str(path), omegaconf=omegaconf)
