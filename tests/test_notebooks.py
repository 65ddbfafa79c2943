"""The notebooks run top to bottom on a real Jupyter kernel and answer their questions."""

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb")))
def test_notebook_executes(name, tmp_path):
    nb = nbformat.read(ROOT / "notebooks" / name, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    if name == "what_if.ipynb":
        text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
        # question 3 printed a finite, positive cost per extra conversion for the broad insurance cover (the last)
        line = [ln for ln in text.splitlines() if ln.startswith("insurance")][-1]
        assert float(line.split()[1]) > 0
        assert any("image/png" in o.get("data", {}) for o in outputs)  # the figure was drawn
        # each question answered with an effect and its interval for every variant it asks about; the last, every
        # registered instrument (the registry's list, so a new instrument is in it with no edit of the notebook)
        from sim.instruments import REGISTRY
        effect = r"[+-][\d,.]+ \[-?[\d,.]+, -?[\d,.]+\]"
        blocks = {b.splitlines()[0].split(": ", 1)[1]: [ln for ln in b.splitlines()[1:] if ln.startswith("  ")]
                  for b in text.split("\nQ")[1:]}
        every = blocks.pop("every instrument")
        assert [ln.split(":")[0].strip() for ln in every] == list(REGISTRY)
        assert all(len(re.findall(effect, ln)) == 2 for ln in every), every
        assert len(blocks) >= 8
        for variants in blocks.values():
            assert len(variants) == 2 and all(re.search(effect, v) for v in variants)

    if name == "exploration.ipynb":
        text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
        lines = text.splitlines()
        # 1. the most influential parameter of each outcome, with its total index and interval
        q1 = [ln for ln in lines if ln.startswith("Q1 ")]
        assert {ln.split(":")[0] for ln in q1} == {"Q1 extra_conversions", "Q1 extra_public_cost_per_year"}
        assert all(re.search(r"most influential scenario\.\S+ ST -?[\d.]+ \[-?[\d.]+, -?[\d.]+\]", ln) for ln in q1)
        # 2. a box with its coverage and density, shares of the cases and of the box's points
        q2 = next(ln for ln in lines if ln.startswith("Q2 "))
        cov, dens = (float(x) for x in re.search(r"coverage ([\d.]+), density ([\d.]+)", q2).groups())
        assert 0 < cov <= 1 and 0 < dens <= 1
        # 3. the best mix for the budget with intervals on fresh seeds
        q3 = next(ln for ln in lines if ln.startswith("Q3 "))
        assert re.search(r"extra conversions -?[\d.]+ \[-?[\d.]+, -?[\d.]+\]", q3), q3
        assert sum("image/png" in o.get("data", {}) for o in outputs) >= 3  # indices, trade-off, front
