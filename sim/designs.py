"""A design's outcomes as Parquet parts: written atomically as they finish, reused when a run is resumed.

A design (a list of points, the same every time for the same settings and seed) is cut into
parts of ``part_size`` points. Each part is evaluated (in parallel, by the executor) and written
as ``parts/part-<k>.parquet`` through a temporary file and a rename, so a killed run loses at
most the parts it was computing, and nothing is ever half-written. Running again evaluates
only the parts missing; a part whose points differ from the design's (another design in the
folder, a damaged file) is refused, never mixed in.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Optional

import numpy as np

from .config import ConfigError

PARTS = "parts"


def _part(folder: Path, k: int) -> Path:
    return folder / PARTS / f"part-{k:05d}.parquet"


def write_parquet(frame, path: Path) -> None:
    """``frame`` to ``path`` through a temporary file in the same folder and a rename (never half-written)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        frame.to_parquet(tmp, index=False)
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


def run_design(model, points: list, folder: Path, executor=None, part_size: int = 512, resume: bool = True,
               progress: bool = False, desc: str = "points"):
    """The outcomes of every point (a DataFrame: the points' columns, then the outcomes), part by part.

    Returns ``(table, evaluated)``: ``evaluated`` is the number of points computed in this call
    (the others were read from their parts).
    """
    import pandas as pd

    from .api import _progress_bar

    folder = Path(folder)
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
            try:
                stored = pd.read_parquet(path)
            except Exception:  # noqa: BLE001  (a damaged or half-copied file: recomputed, not trusted)
                stored = None
            if stored is not None and _same_points(stored, expected) and set(model.outcomes) <= set(stored.columns):
                tables[k] = stored[list(model.names) + list(model.outcomes)]
                continue
            if stored is not None:
                raise ConfigError(f"{path}: holds other points or outcomes than this design's; run with resume=false "
                                  "to start again, or choose another folder")
            path.unlink()
        todo.append(k)
    bar = _progress_bar(len(points), desc, disable=not progress)
    bar.update(len(points) - sum(min(part_size, len(points) - k * part_size) for k in todo))
    try:
        for k in todo:
            chunk = points[k * part_size:(k + 1) * part_size]
            table = model.evaluate(chunk, executor)
            write_parquet(table, _part(folder, k))
            tables[k] = table
            bar.update(len(chunk))
    finally:
        bar.close()
    evaluated = sum(min(part_size, len(points) - k * part_size) for k in todo)
    out = pd.concat(tables, ignore_index=True) if tables else frame
    return out, evaluated
