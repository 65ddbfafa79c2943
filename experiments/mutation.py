"""``python -m experiments.mutation``: break the model's rules one at a time and see the tests fail (a report).

Each mutant is one small change to one business rule (a payment, a price, a decision), written here
as the exact source text it replaces, and the test files that guard that rule. For each, the
working tree's ``sim/``, ``tests/`` and ``configs/`` are copied to a temporary folder, the one
change applied, and those tests run there (their own compiled-kernel cache, a fresh process):
the mutant is **killed** when a test fails, **survives** when they all pass. The unmutated copy
runs the same tests first, so a kill is the mutant's and not a broken test's. A survivor is either
a missing test (add the equality that catches it) or an *equivalent* mutant, listed in
``EQUIVALENT`` with the reason it changes no number.

    python -m experiments.mutation                 # every mutant (~25 minutes on 2 cores: a compile each)
    python -m experiments.mutation --only vouchers  # the mutants whose name contains "vouchers"
    python -m experiments.mutation --list           # the mutants, nothing run

A mutant whose source text is no longer in its file (the rule was rewritten) stops the report
with its name: the list is kept with the code. Nothing is written but the temporary folders,
which are removed; the report is printed (docs/explanation/testing.md, "Tests that a broken rule fails").
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COPIED = ("sim", "tests", "configs")   # what a mutant's tests need; pyproject.toml for pytest's settings
TIMEOUT_S = 1800                       # a mutant's tests (a mutant that loops forever is killed by it)


@dataclass(frozen=True)
class Mutant:
    name: str          # what is broken, in the domain's words
    path: str          # the file, from the project's root
    old: str           # the exact source text replaced (found exactly once)
    new: str
    tests: tuple       # test files that guard the rule


MUTANTS = (
    # --- the free trial ("use first, pay later")
    Mutant("trial fee without price_share x ask (the rule)", "sim/instruments/free_trial.py",
           "return rules.yuan(success_fee + price_share * ask)", "return rules.yuan(success_fee)",
           ("tests/instruments/test_trial_price.py",)),
    Mutant("trial fee without price_share x ask (where it is offered)", "sim/instruments/free_trial.py",
           "fee = trial_payment(t.success_fee, t.price_share, st.ach_ask[a])",
           "fee = trial_payment(t.success_fee, 0.0, st.ach_ask[a])", ("tests/instruments/test_trial_price.py",)),
    Mutant("trial: the university's risk aversion x 1.1 in its acceptance", "sim/instruments/free_trial.py",
           "            p.univ_risk_aversion, st.ach_ask[a], st.univ_reservation[st.ach_owner[a]]):",
           "            1.1 * p.univ_risk_aversion, st.ach_ask[a], st.univ_reservation[st.ach_owner[a]]):",
           ("tests/instruments/test_trial_price.py", "tests/core/test_decisions.py")),
    # --- the university's decisions (sim/core/rules.py)
    Mutant("university acceptance: risk aversion x 1.1", "sim/core/rules.py",
           "    ra = risk_aversion / ask if ask > 0 else 0.0\n    return certainty_equivalent(",
           "    ra = 1.1 * risk_aversion / ask if ask > 0 else 0.0\n    return certainty_equivalent(",
           ("tests/core/test_decisions.py", "tests/instruments/test_trial_price.py")),
    Mutant("royalty: the university's risk aversion x 1.1 in its acceptance", "sim/instruments/royalty.py",
           "rules.university_accepts(signal, at_sign, pv, p.univ_risk_aversion, st.ach_ask[a],",
           "rules.university_accepts(signal, at_sign, pv, 1.1 * p.univ_risk_aversion, st.ach_ask[a],",
           ("tests/instruments/test_royalty.py",)),
    Mutant("Nash bargain: the firm's power for the university's", "sim/core/rules.py",
           "return yuan(reservation + bargaining_power * (willingness - reservation))",
           "return yuan(reservation + (1.0 - bargaining_power) * (willingness - reservation))",
           ("tests/core/test_decisions.py", "tests/instruments/test_trial_price.py")),
    Mutant("discounting: a year of 11 months", "sim/core/rules.py",
           "return (1.0 + annual_rate) ** (-months / 12.0)", "return (1.0 + annual_rate) ** (-months / 11.0)",
           ("tests/core/test_decisions.py",)),
    Mutant("certainty equivalent: risk neutral weights swapped", "sim/core/rules.py",
           "return p * x_success + (1.0 - p) * x_failure", "return (1.0 - p) * x_success + p * x_failure",
           ("tests/core/test_decisions.py", "tests/core/test_rules.py")),
    Mutant("inventors' share x 1.1", "sim/core/rules.py",
           "return yuan(inventor_share * university_net_income)",
           "return yuan(1.1 * inventor_share * university_net_income)", ("tests/core/test_rules.py", "tests/core/test_accounts.py")),
    # --- brokers
    Mutant("broker's fee: the firm's part and the university's swapped", "sim/core/rules.py",
           "    firm_part = yuan(firm_share * fee)", "    firm_part = yuan((1.0 - firm_share) * fee)",
           ("tests/core/test_rules.py", "tests/core/test_accounts.py")),
    Mutant("broker reward: the cap per project not applied", "sim/instruments/broker_reward.py",
           "return min(np.int64(np.floor(rate * contract_value)), np.int64(np.floor(cap)) - rewarded)",
           "return np.int64(np.floor(rate * contract_value))", ("tests/core/test_rules.py", "tests/instruments/test_instruments.py")),
    Mutant("broker reward: rate x 1.1", "sim/instruments/broker_reward.py",
           "return min(np.int64(np.floor(rate * contract_value)), np.int64(np.floor(cap)) - rewarded)",
           "return min(np.int64(np.floor(1.1 * rate * contract_value)), np.int64(np.floor(cap)) - rewarded)",
           ("tests/core/test_rules.py", "tests/instruments/test_instruments.py")),
    # --- vouchers
    Mutant("voucher on a later payment without the firm's part of the broker's fee", "sim/core/contracts.py",
           "return amount + rules.firms_fee(amount, fee_rate, p.fee_firm_share)",
           "return amount", ("tests/instruments/test_vouchers.py",)),
    Mutant("voucher at signing without the broker's service fee", "sim/core/contracts.py",
           "return fixed + at_sign + rules.firms_fee(at_sign, fee_rate, p.fee_firm_share)",
           "return at_sign + rules.firms_fee(at_sign, fee_rate, p.fee_firm_share)", ("tests/instruments/test_vouchers.py",)),
    Mutant("co-payment: the cap left not applied", "sim/core/contracts.py",
           "return min(rules.yuan(rate * spend), max(np.int64(0), np.int64(math.floor(cap_left))))",
           "return rules.yuan(rate * spend)", ("tests/instruments/test_vouchers.py", "tests/core/test_rules.py")),
    # --- insurance
    Mutant("insurance claim: the deductible not taken off", "sim/instruments/insurance.py",
           "return max(np.int64(0), rules.yuan(coverage * implementation_cost) - np.int64(math.floor(deductible)))",
           "return max(np.int64(0), rules.yuan(coverage * implementation_cost))", ("tests/core/test_rules.py", "tests/instruments/test_insurance.py")),
    Mutant("insurance premium: loading x 1.1", "sim/instruments/insurance.py",
           "return rules.yuan((1.0 + loading) * expected_failure * claim)",
           "return rules.yuan((1.0 + 1.1 * loading) * expected_failure * claim)", ("tests/core/test_rules.py", "tests/instruments/test_insurance.py")),
    Mutant("premium subsidy: the cap per policy not applied", "sim/instruments/insurance.py",
           "return min(rules.yuan(share * premium_amount), np.int64(math.floor(cap)))",
           "return rules.yuan(share * premium_amount)", ("tests/core/test_rules.py", "tests/instruments/test_insurance.py")),
    # --- agents that hold reserves (insurers, lenders: sim/core/reserves.py)
    Mutant("reserve holders: reserves exactly at the floor withdraw", "sim/core/reserves.py",
           "return active and worth >= min_reserves", "return active and worth > min_reserves",
           ("tests/core/test_reserves.py",)),
    Mutant("reserve holders: a withdrawn one returns when its reserves recover", "sim/core/reserves.py",
           "return active and worth >= min_reserves", "return worth >= min_reserves",
           ("tests/core/test_reserves.py",)),
    Mutant("reserve holders: the prior's weight left out of the denominator", "sim/core/reserves.py",
           "return (prior_rate * prior_strength + events) / (prior_strength + observed)",
           "return (prior_rate * prior_strength + events) / (1.0 + observed)",
           ("tests/core/test_reserves.py",)),
    # --- other instruments
    Mutant("royalty: the upfront share x 1.1", "sim/instruments/royalty.py",
           "return rules.yuan(upfront_share * ask)", "return rules.yuan(1.1 * upfront_share * ask)",
           ("tests/instruments/test_royalty.py",)),
    Mutant("open licence: the published price x 1.1", "sim/instruments/open_licence.py",
           "return rules.yuan(price_share * ask)", "return rules.yuan(1.1 * price_share * ask)",
           ("tests/instruments/test_open_licence.py",)),
    Mutant("IP pledge: the credit limit without the achievement's loan-to-value", "sim/instruments/ip_pledge.py",
           "return min(np.int64(math.floor(loan_to_value * ask)) + collateral, can_lend)",
           "return min(collateral, can_lend)", ("tests/instruments/test_ip_pledge.py",)),
)

EQUIVALENT: dict = {}  # name -> why it changes no number (none today: every mutant above is killed)


def copy_tree(dest: Path) -> None:
    """The working tree's sources, tests and configs (no caches, no outputs) and pyproject.toml, into ``dest``."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", "outputs", "test-artifacts")
    for name in COPIED:
        shutil.copytree(ROOT / name, dest / name, ignore=ignore)
    shutil.copy2(ROOT / "pyproject.toml", dest / "pyproject.toml")


def _once(root: Path, m: Mutant) -> str:
    """The text of ``m``'s file under ``root``, if ``m.old`` is in it exactly once; else the report stops, naming it."""
    text = (root / m.path).read_text()
    found = text.count(m.old)
    if found != 1:
        raise SystemExit(f"mutant {m.name!r}: its text is found {found} times in {m.path} (expected once): "
                         "update experiments/mutation.py with the rule")
    return text


def apply(dest: Path, m: Mutant) -> None:
    """Replace ``m.old`` by ``m.new`` in ``dest``'s copy of its file; a text not found exactly once is an error."""
    (dest / m.path).write_text(_once(dest, m).replace(m.old, m.new))


def run_tests(dest: Path, tests, workers: int) -> tuple[int, float]:
    """pytest on ``tests`` in ``dest`` (its own ``sim``, its own kernel cache); (return code, seconds)."""
    env = {**os.environ, "PYTHONPATH": str(dest), "TECHTRANSFER_CACHE_DIR": str(dest / ".nbcache")}
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-n", str(workers), *tests]
    t0 = time.perf_counter()
    try:
        rc = subprocess.run(cmd, cwd=dest, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            timeout=TIMEOUT_S).returncode
    except subprocess.TimeoutExpired:
        rc = -1
    return rc, time.perf_counter() - t0


def verdict(rc: int) -> str:
    """pytest's exit code as a verdict: 1 a test failed, 2 stopped at the first failure (``-x`` under xdist, or the
    mutant does not import); anything else is an error of the report, not a kill."""
    return {0: "survived", 1: "killed", 2: "killed", -1: "killed (timeout)"}.get(rc, f"ERROR (pytest exit {rc})")


def check(m: Mutant) -> None:
    """The mutant's text is in its file exactly once, and its tests exist (before any work)."""
    _once(ROOT, m)
    for t in m.tests:
        if not (ROOT / t).is_file():
            raise SystemExit(f"mutant {m.name!r}: no test file {t}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", action="append", default=[],
                    help="run the mutants whose name contains this text (repeat it for several)")
    ap.add_argument("--list", action="store_true", help="list the mutants and their tests; run nothing")
    ap.add_argument("--workers", type=int, default=2, choices=range(0, 65), metavar="0..64",
                    help="pytest-xdist processes for a mutant's tests (0: in one process)")
    args = ap.parse_args(argv)
    chosen = [m for m in MUTANTS if not args.only or any(o in m.name for o in args.only)]
    if not chosen:
        print(f"mutation: --only {args.only!r}: no mutant's name contains any of them (--list shows them)",
              file=sys.stderr)
        return 2
    for m in chosen:
        check(m)
    if args.list:
        for m in chosen:
            print(f"{m.name}  [{m.path}]  tests: {' '.join(m.tests)}")
        return 0
    from tabulate import tabulate

    rows, survivors = [], []
    with tempfile.TemporaryDirectory(prefix="mutation-") as tmp:
        base = Path(tmp) / "unmutated"
        copy_tree(base)
        tests = sorted({t for m in chosen for t in m.tests})
        print(f"mutation: {len(chosen)} mutants; the unmutated copy on {len(tests)} test files first ...", flush=True)
        rc, s = run_tests(base, tests, args.workers)
        if rc != 0:
            print(f"mutation: the unmutated tests fail (pytest exit {rc}): fix them before reading mutants",
                  file=sys.stderr)
            return 1
        print(f"  unmutated: passed in {s:.0f} s", flush=True)
        for i, m in enumerate(chosen, 1):
            dest = Path(tmp) / f"m{i}"
            copy_tree(dest)
            apply(dest, m)
            rc, s = run_tests(dest, m.tests, args.workers)
            shutil.rmtree(dest, ignore_errors=True)
            v = verdict(rc)
            if v == "survived":
                v = f"survived: equivalent ({EQUIVALENT[m.name]})" if m.name in EQUIVALENT else "SURVIVED"
            if v in ("SURVIVED",) or v.startswith("ERROR"):
                survivors.append(m.name)
            rows.append([m.name, m.path, v, f"{s:.0f}"])
            print(f"  [{i}/{len(chosen)}] {m.name}: {v} ({s:.0f} s)", flush=True)
    print()
    print(tabulate(rows, headers=["mutant", "file", "verdict", "s"], tablefmt="github"))
    killed = sum(r[2].startswith("killed") for r in rows)
    print(f"\n{killed} of {len(rows)} killed; {len(survivors)} survived without an explanation (or failed to run)"
          + (": " + "; ".join(survivors) if survivors else ""))
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
