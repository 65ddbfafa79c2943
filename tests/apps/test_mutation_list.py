"""The mutation report's list (experiments/mutation.py) is kept with the code: each mutant names exactly one place in
its file and test files that exist, and applying it changes that place only. The report itself (a compile and the
related tests per mutant, ~25 minutes) is a benchmark-like run, not a test: README, "Tests that a broken rule fails"."""

from __future__ import annotations

import pytest

from experiments import mutation as M


@pytest.mark.parametrize("m", M.MUTANTS, ids=lambda m: m.name)
def test_every_mutant_names_one_place_in_its_file_and_existing_tests(m):
    M.check(m)   # exits with the mutant's name when its text is gone or found twice, or a test file is missing
    assert m.old != m.new and m.tests


def test_mutants_have_distinct_names_and_explanations_name_mutants():
    names = [m.name for m in M.MUTANTS]
    assert len(set(names)) == len(names)
    assert set(M.EQUIVALENT) <= set(names)


def test_applying_a_mutant_changes_its_text_and_nothing_else(tmp_path):
    m = M.MUTANTS[0]
    (tmp_path / m.path).parent.mkdir(parents=True)
    original = (M.ROOT / m.path).read_text()
    (tmp_path / m.path).write_text(original)
    M.apply(tmp_path, m)
    mutated = (tmp_path / m.path).read_text()
    assert mutated == original.replace(m.old, m.new) and mutated != original
    with pytest.raises(SystemExit, match="found 0 times"):   # applied twice: its text is gone
        M.apply(tmp_path, m)


def test_pytest_exit_codes_read_as_verdicts():
    assert M.verdict(0) == "survived"
    assert M.verdict(1) == M.verdict(2) == "killed"
    assert M.verdict(5).startswith("ERROR")   # no test collected: the report's error, never a kill
