"""An exploration's Parquet parts are checked before reuse: a part edited after it was computed, or holding a value
outside its outcome's domain, is moved aside and recomputed (the result equal to an untampered run's); a folder
holding another regime's parts is refused even with its exploration.json gone; two runs into one folder at once are
refused in one line."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sim.analysis.designs import META, values_digest

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).parents[1] / "data"
APP = ["regime=vouchers", "engine=numba", "scenario.firms.n=300", "scenario.months=24", "sensitivity.method=sobol",
       "sensitivity.sobol.n=8", "sensitivity.replicates=2", f"sensitivity.space={DATA / 'inert_space.yaml'}",
       "sensitivity.parameters=null", "sensitivity.outcomes=[conversions,extra_conversions,cost_per_extra_conversion]",
       "sensitivity.resamples=100", "sensitivity.run.part_size=16", "workers=1", "progress=false"]


def _app(out, *args):
    return subprocess.run([sys.executable, "-m", "experiments.sensitivity", *args, f"hydra.run.dir={out}"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    out = tmp_path_factory.mktemp("explore") / "out"
    p = _app(out, *APP)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    return out


def _copy(clean, tmp_path) -> Path:
    out = tmp_path / "out"
    shutil.copytree(clean, out)
    for name in ("outcomes.parquet", "indices.parquet", "indices.csv", "report.md"):
        (out / name).unlink()
    return out


def _rewrite(path: Path, change, redigest: bool) -> None:
    """The part with its values changed and its metadata kept (``redigest``: the digest made to match them)."""
    table = pq.read_table(path)
    meta = json.loads(table.schema.metadata[META])
    frame = change(table.to_pandas())
    if redigest:
        meta["digest"] = values_digest(frame)
    new = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(new.replace_schema_metadata({**new.schema.metadata, META: json.dumps(meta).encode()}), path)


def _recomputed_alone(clean, out, p):
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    assert re.findall(r"(\d+) runs in this session", p.stdout) == [str(16 * 2 * 2)], p.stdout[-2000:]
    aside = [f for f in (out / "parts").iterdir() if ".damaged-" in f.name and not f.name.endswith(".reason")]
    assert len(aside) == 1 and aside[0].name.startswith("part-00001.parquet.damaged-")
    pd.testing.assert_frame_equal(pd.read_parquet(out / "outcomes.parquet"), pd.read_parquet(clean / "outcomes.parquet"))
    pd.testing.assert_frame_equal(pd.read_parquet(out / "indices.parquet"), pd.read_parquet(clean / "indices.parquet"))
    return aside[0].with_name(aside[0].name + ".reason").read_text()


def test_a_part_edited_after_it_was_computed_is_moved_aside_and_recomputed(clean, tmp_path):
    out = _copy(clean, tmp_path)

    def times_100(f):
        f["conversions"] = f["conversions"] * 100
        return f

    _rewrite(out / "parts" / "part-00001.parquet", times_100, redigest=False)
    reason = _recomputed_alone(clean, out, _app(out, *APP))
    assert "do not match the digest" in reason


def test_a_part_with_an_impossible_value_is_moved_aside_and_recomputed(clean, tmp_path):
    out = _copy(clean, tmp_path)

    def nan(f):
        f.loc[3, "conversions"] = np.nan
        return f

    _rewrite(out / "parts" / "part-00001.parquet", nan, redigest=True)  # consistent digest: the domain catches it
    reason = _recomputed_alone(clean, out, _app(out, *APP))
    assert "conversions = nan: outside the outcome's domain" in reason


def test_a_part_without_its_identity_is_not_trusted(clean, tmp_path):
    out = _copy(clean, tmp_path)
    path = out / "parts" / "part-00001.parquet"
    pd.read_parquet(path).to_parquet(path, index=False)  # the same values, written by another program
    reason = _recomputed_alone(clean, out, _app(out, *APP))
    assert "no identity and digest recorded" in reason


def test_another_regime_in_the_folder_is_refused_even_without_exploration_json(clean, tmp_path):
    out = _copy(clean, tmp_path)
    (out / "exploration.json").unlink()
    parts = sorted(p.read_bytes() for p in (out / "parts").glob("part-*.parquet"))
    p = _app(out, *[a if a != "regime=vouchers" else "regime=free_trial" for a in APP])
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(lines) == 1, p.stderr[-2000:]
    assert re.match(rf"config error: hydra\.run\.dir = '{re.escape(str(out))}': parts/part-00000\.parquet holds a "
                    r"part of an exploration with other regime, config", lines[0]), lines[0]
    assert sorted(p.read_bytes() for p in (out / "parts").glob("part-*.parquet")) == parts  # nothing touched
    assert not (out / "indices.parquet").exists()


def test_a_refused_second_run_never_removes_the_first_ones_folder_or_lock(tmp_path):
    """The first job has made its folder and holds its lock, nothing else written yet (the moment a second job once
    found, and removed both: the first then failed to write its state). The refused second job leaves both."""
    from sim.runs.outputs import lock_folder

    out = tmp_path / "busy"
    out.mkdir()
    lock = lock_folder(out, "hydra.run.dir", "exploration")  # as a starting app holds it
    try:
        p = _app(out, *APP)
        assert p.returncode == 2 and "another exploration (pid" in p.stderr, p.stderr[-2000:]
        assert os.listdir(out) == [".lock"]
        assert os.stat(out / ".lock").st_ino == os.fstat(lock.fd).st_ino  # the very file still locked
    finally:
        lock.release()


def test_a_second_run_into_a_folder_in_use_is_refused_in_one_line(clean, tmp_path):
    from sim.runs.outputs import folder_lock

    out = _copy(clean, tmp_path)
    with folder_lock(out, "hydra.run.dir", "exploration"):  # as a running app holds it
        p = _app(out, *APP)
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(lines) == 1, p.stderr[-2000:]
    assert "another exploration (pid" in lines[0] and "is writing in this folder" in lines[0], lines[0]
    assert not (out / "indices.parquet").exists()
    assert _app(out, *APP).returncode == 0  # released: the same command runs
