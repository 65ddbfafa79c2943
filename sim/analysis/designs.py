"""A design's outcomes as Parquet parts: written atomically as they finish, reused when a run is resumed.

A design (a list of points, the same every time for the same settings and seed) is cut into
parts of ``part_size`` points. Each part is evaluated (in parallel, by the executor) and written
as ``parts/part-<k>.parquet`` through a temporary file and a rename, so a killed run loses at
most the parts it was computing, and nothing is ever half-written. Running again evaluates
only the parts missing; a part whose points differ from the design's (another design in the
folder, a damaged file) is refused, never mixed in.

Each part carries, in its Parquet metadata, the identity of the model that computed it (regime,
config, uncertainties, seeds, engine, posterior, sources: ``model.identity()``) and a digest of its
values. Before reuse a part is read back and checked: another identity means the folder holds
another exploration (refused in one line, even with its ``exploration.json`` gone); an unreadable
part, one without the metadata, with values that no longer match their digest or outside their
outcome's domain (:func:`sim.analysis.explore.outside_domain`) is moved aside (``<part>.damaged-<time>``,
the reason in ``<that>.reason``) and recomputed, never trusted.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Optional

import numpy as np

from ..core.config import ConfigError

PARTS = "parts"
META = b"techtransfer"  # the Parquet metadata key of a part's identity and digest


def _part(folder: Path, k: int) -> Path:
    return folder / PARTS / f"part-{k:05d}.parquet"


def write_parquet(frame, path: Path, meta: Optional[dict] = None) -> None:
    """``frame`` to ``path`` through a temporary file in the same folder and a rename (never half-written);
    ``meta``: a JSON-able mapping kept in the file's metadata."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        if meta is None:
            frame.to_parquet(tmp, index=False)
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(frame, preserve_index=False)
            table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                                   META: json.dumps(meta, sort_keys=True, default=str).encode()})
            pq.write_table(table, tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _same_points(stored, expected) -> bool:
    if list(stored.columns[:len(expected.columns)]) != list(expected.columns) or len(stored) != len(expected):
        return False
    a = stored[expected.columns].to_numpy(dtype=float)
    b = expected.to_numpy(dtype=float)
    return bool(np.array_equal(a, b, equal_nan=True))


def values_digest(frame) -> str:
    """A digest of a table's columns and values (bit for bit: NaN and inf included)."""
    h = hashlib.sha256(json.dumps([str(c) for c in frame.columns]).encode())
    for c in frame.columns:
        h.update(np.ascontiguousarray(frame[c].to_numpy(dtype=float)).tobytes())
    return h.hexdigest()[:32]


def _identity(model) -> Optional[dict]:
    fn = getattr(model, "identity", None)
    return json.loads(json.dumps(fn(), default=str)) if callable(fn) else None


def _read_part(path: Path):
    """``(table, meta)`` of a part, or ``(None, why)`` if it cannot be read."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
        raw = (table.schema.metadata or {}).get(META)
        meta = json.loads(raw.decode()) if raw is not None else None
        return table.to_pandas(), meta
    except Exception as e:  # noqa: BLE001  (a damaged or half-copied file: recomputed, not trusted)
        return None, f"unreadable ({type(e).__name__})"


def _move_aside(path: Path, reason: str) -> Path:
    aside = path.with_name(f"{path.name}.damaged-{datetime.datetime.now().strftime('%Y%m%dT%H%M%S%f')}")
    os.replace(path, aside)
    aside.with_name(aside.name + ".reason").write_text(reason + "\n")
    return aside


def _check_part(stored, meta, identity, model) -> Optional[str]:
    """Why a part whose points are the design's must not be reused (None: it may). A model may say where its
    outcomes lie (``model.outside_domain(table)``); else each outcome is checked against its domain
    (:data:`sim.analysis.explore.DOMAINS`)."""
    from .explore import outside_domain

    if not isinstance(meta, dict) or "digest" not in meta:
        return "no identity and digest recorded (written by another program or an older version)"
    if meta["digest"] != values_digest(stored):
        return "its values do not match the digest written with them (edited after it was computed)"
    own = getattr(model, "outside_domain", None)
    bad = own(stored) if callable(own) else outside_domain(stored, model.outcomes)
    if bad is not None:
        return f"{bad}: outside the outcome's domain"
    return None


def run_design(model, points: list, folder: Path, executor=None, part_size: int = 512, resume: bool = True,
               progress: bool = False, desc: str = "points"):
    """The outcomes of every point (a DataFrame: the points' columns, then the outcomes), part by part.

    Returns ``(table, evaluated)``: ``evaluated`` is the number of points computed in this call
    (the others were read from their parts).
    """
    import pandas as pd

    from ..runs.parallel import progress_bar

    folder = Path(folder)
    identity = _identity(model)
    frame = pd.DataFrame(points, columns=model.names)
    n_parts = -(-len(points) // part_size)
    if not resume:
        for old in (folder / PARTS).glob("part-*.parquet"):
            old.unlink()
    tables: list[Optional[object]] = [None] * n_parts
    todo = []
    for k in range(n_parts):
        path = _part(folder, k)
        expected = frame.iloc[k * part_size:(k + 1) * part_size].reset_index(drop=True)
        if path.exists():
            stored, meta = _read_part(path)
            if stored is not None and isinstance(meta, dict) and identity is not None \
                    and meta.get("identity") not in (None, identity):
                other = meta["identity"] if isinstance(meta["identity"], dict) else {}
                changed = [key for key in identity if other.get(key) != identity[key]] or ["identity"]
                raise ConfigError(f"hydra.run.dir = {str(folder)!r}: {path.relative_to(folder)} holds a part of an "
                                  f"exploration with other {', '.join(changed)}; start again with <app>.run.resume="
                                  "false, or choose another folder")
            if stored is not None and _same_points(stored, expected) and set(model.outcomes) <= set(stored.columns):
                why = _check_part(stored, meta, identity, model)
                if why is None:
                    tables[k] = stored[list(model.names) + list(model.outcomes)]
                    continue
                stored = None
                meta = why
            if stored is not None:
                raise ConfigError(f"{path}: holds other points or outcomes than this design's; run with resume=false "
                                  "to start again, or choose another folder")
            aside = _move_aside(path, f"{path.name}: {meta}")
            print(f"{path}: {meta}; moved aside to {aside.name}, recomputed", flush=True)
        todo.append(k)
    bar = progress_bar(len(points), desc, disable=not progress)
    bar.update(len(points) - sum(min(part_size, len(points) - k * part_size) for k in todo))
    try:
        for k in todo:
            chunk = points[k * part_size:(k + 1) * part_size]
            table = model.evaluate(chunk, executor)
            write_parquet(table, _part(folder, k), {"identity": identity, "digest": values_digest(table)})
            tables[k] = table
            bar.update(len(chunk))
    finally:
        bar.close()
    evaluated = sum(min(part_size, len(points) - k * part_size) for k in todo)
    out = pd.concat(tables, ignore_index=True) if tables else frame
    return out, evaluated
