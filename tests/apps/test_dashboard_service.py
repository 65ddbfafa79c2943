"""The dashboard's service without a page or a browser: what keys its cache, what an answer computes, the files a
page reads, and the one hook the pages ask their questions through."""

from __future__ import annotations

import threading

import pandas as pd
import pytest

from experiments.dashboard import service as svc
from sim.core.config import ConfigError

from ..conftest import SMALL
from ..runs.test_posterior import write_posterior

RISK = "scenario.firms.risk_aversion_sme"
BASE = ["engine=numba", *SMALL, "regimes=[baseline,broker_reward]", "at_spend=broker_reward"]


# --------------------------------------------------------------------------- the cache's key
def test_a_posterior_rewritten_in_place_is_a_new_question(tmp_path):
    folder = write_posterior(tmp_path / "c1", [{"weight": 0.5, RISK: 1.0}, {"weight": 0.5, RISK: 5.0}])
    s = svc.Service(BASE, workers=1)
    question = svc.posterior_question(folder, "2", "1")
    cfg = s.config(question)
    before = svc._key(cfg)
    assert svc._key(cfg) == before  # the same files: the same key
    csv = folder / "posterior.csv"
    text = csv.read_text()
    assert "1.0" in text
    csv.write_text(text.replace("1.0", "2.0"))  # the same size: only what it holds changed
    assert len(csv.read_text()) == len(text)
    after = svc._key(cfg)
    assert after != before
    yaml = folder / "posterior.yaml"
    yaml.write_text(yaml.read_text() + "# re-run\n")
    assert svc._key(cfg) not in (before, after)
    # a config without a posterior is keyed as before: its repr
    plain = s.config([])
    assert svc._key(plain) == repr(svc.replace(plain, workers=1, progress=False))


def test_an_answer_on_a_rewritten_posterior_is_not_served_from_the_cache(tmp_path):
    folder = write_posterior(tmp_path / "c2", [{"weight": 1.0, RISK: 1.0}])
    s = svc.Service(BASE, workers=1)
    question = svc.posterior_question(folder, "2", "1")
    first = svc.compare_posterior(s, question)
    assert s.cached(question) is first
    write_posterior(folder, [{"weight": 1.0, RISK: 9.0}])  # the calibration re-run into the same folder
    assert s.cached(question) is None
    second = svc.compare_posterior(s, question)
    assert second is not first
    assert not second.comparison.table.equals(first.comparison.table)
