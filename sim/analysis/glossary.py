"""One glossary of the run metrics: a readable label, its meaning, its unit and, for money, its period and basis.

Every metric of :data:`sim.core.results.METRICS` (and the rows the comparison adds: the costs per extra conversion,
:data:`sim.analysis.stats.COST_ROWS`) has one :class:`Entry`, generated where the model declares it: a series
column's ``doc`` (:mod:`sim.core.columns`), a payment kind's payer and payee (:mod:`sim.core.ledger`), an account
class (``net_<plural>``), an instrument's spend (``gov_spend_<SPEND>``), and the patterns of the derived metrics
(``<metric>_pv``, ``<metric>_sme``, ``<metric>_large``, ``contract_value_*``). Only metrics that nothing declares
are written here by hand (:data:`_BY_HAND`, from docs/reference/outputs.md). The dashboard writes every metric with
its label (the raw key stays the command line's CSV column). :func:`entry` of a metric without an entry is a
KeyError naming it; :func:`label` of a column without one is the column's own name (a page may show a column the
glossary does not know, e.g. a sweep's extra column).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Optional

from ..core import columns as C
from ..core import ledger

YUAN, COUNT, SHARE, MONTHS, RATIO = "yuan", "count", "share", "months", "ratio"
# how a money metric sums the run's months: a flow's total, a stock's value at the end, either discounted to month 0
TOTAL, AT_END, PV, PV_AT_END = "total", "at the end", "present value", "present value at the end"
PER_CONTRACT = "per contract"   # a contract's value (a mean, a percentile over the run's contracts)


@dataclass(frozen=True)
class Entry:
    """What a metric is, as the pages write it."""

    key: str                  # the metric's name in summary.csv, table.csv, the command line
    label: str                # readable, unique: "conversions" for successes
    meaning: str              # one line
    unit: str                 # yuan, count, share, months or ratio
    basis: Optional[str] = None   # money (and counts over the run): TOTAL, AT_END, PV, PV_AT_END; None: not a sum
    low: Optional[float] = 0.0    # the domain of its level (an effect, a difference, has none): None, unbounded
    high: Optional[float] = None

    @property
    def money(self) -> bool:
        return self.unit == YUAN

    def period(self, months: int, discount_rate: float) -> str:
        """How its figure sums the run, in words: ``total over the run's 60 months, nominal``; ``present value at
        month 0 (8% a year)``; '' when it is not a sum of money."""
        if not self.money:
            return {TOTAL: f"total over the run's {months} months", PV: "discounted to month 0 as payments are, at "
                    f"{discount_rate:.0%} a year"}.get(self.basis, "")
        return {TOTAL: f"total over the run's {months} months, nominal", PER_CONTRACT: "per contract signed, nominal",
                AT_END: f"at the end of month {months}, nominal",
                PV: f"present value at month 0, discounted at {discount_rate:.0%} a year, over the run's {months} "
                    "months",
                PV_AT_END: f"present value at month 0 of its value at the end of month {months} "
                           f"({discount_rate:.0%} a year)"}[self.basis]


# the labels an analyst reads first (the rest: the key with spaces)
_LABELS = {
    "successes": "conversions", "successes_expected": "expected conversions", "contracts": "contracts signed",
    "needs_raised": "needs raised", "matches": "matches", "matches_brokered": "matches brokered",
    "gov_spend": "public spend", "public_cost": "public cost (spend less what public universities keep)",
    "public_university_retained": "kept by public universities", "firm_surplus": "firms' surplus",
    "firm_surplus_valued": "firms' surplus, running deals valued", "university_income": "universities' income",
    "university_income_valued": "universities' income, running deals valued", "failures": "failed implementations",
    "firms_below_start": "firms below their starting cash", "arrivals": "achievements disclosed",
    "adopters": "firms adopting", "running_expected_successes": "conversions still running (expected)",
    "running_expected_value": "value of running implementations (expected)",
    "running_expected_payments": "payments owed by running implementations (expected)",
    "conversion_rate": "conversion rate (stock)", "conversion_rate_per_year": "conversions a year per achievement",
    "months_to_first_conversion": "months to the first conversion",
    "mean_months_need_to_signing": "months from need to signing", "brokers_final": "brokers at the end",
    "brokers_mean": "brokers on average", "broker_income": "brokers' income", "broker_fees": "brokers' fees",
    "claims": "insurance claims paid", "premiums": "insurance premiums",
}

# metrics nothing declares (docs/reference/outputs.md): (meaning, unit, basis, low, high)
_BY_HAND = {
    "broker_fees": ("brokers' fees from the parties: service fees + firms' and universities' parts of fees on "
                    "payments", YUAN, TOTAL, 0.0, None),
    "premiums": ("insurance premiums written: firms' part + government's subsidies", YUAN, TOTAL, 0.0, None),
    "contracts": ("contracts signed, of every form", COUNT, TOTAL, 0.0, None),
    "conversion_rate": ("achievements in use at the end / achievements that exist then (disclosed, not expired, use "
                        "not ended): CNIPA's industrialisation rate", SHARE, None, 0.0, 1.0),
    "conversion_rate_per_year": ("conversions a year / mean number of existing achievements", SHARE, None, 0.0, None),
    "contracts_per_adopter": ("contracts per firm that signed at least one", RATIO, None, 0.0, None),
    "mean_months_need_to_signing": ("mean months from a need being raised to its contract being signed", MONTHS,
                                    None, 0.0, None),
    "broker_income": ("brokers' receipts: fees from the parties and rewards from government", YUAN, TOTAL, 0.0, None),
    "brokers_final": ("active brokers at the end of the run", COUNT, None, 0.0, None),
    "brokers_mean": ("active brokers, mean over the months", COUNT, None, 0.0, None),
    "gov_spend": ("government's payments to every instrument (public money)", YUAN, TOTAL, 0.0, None),
    "successes_expected": ("conversions realised plus those the deals running at the end will bring at their true "
                           "chance of success", COUNT, TOTAL, 0.0, None),
    "public_cost": ("government's spend less the money public universities keep (public money too)", YUAN, TOTAL,
                    None, None),
    "firm_surplus_valued": ("change in firms' cash, plus the running implementations' expected value less what they "
                            "owe on success", YUAN, TOTAL, None, None),
    "university_income_valued": ("universities' income, plus what running implementations owe on success at their "
                                 "chance", YUAN, TOTAL, None, None),
    "months_to_first_conversion": ("the month of the run's first conversion (0: the first month)", MONTHS, None, 0.0,
                                   None),
    "trial_offer_share": ("share of matches weighed with a free trial on offer", SHARE, None, 0.0, 1.0),
    "trial_misreport_share": ("share of succeeded trials the firm reported as failed", SHARE, None, 0.0, 1.0),
    "loss_ratio": ("insurance claims / premiums", RATIO, None, 0.0, None),
    "insurer_reserves_final": ("insurers' reserves at the end of the run", YUAN, AT_END, None, None),
    "insurers_withdrawn": ("insurers that withdrew from the market during the run", COUNT, None, 0.0, None),
    "matured_success_rate": ("share of implementations of matured achievements that succeeded", SHARE, None, 0.0,
                             1.0),
    "unmatured_success_rate": ("share of implementations of other achievements that succeeded", SHARE, None, 0.0,
                               1.0),
    "mean_loan_rate": ("interest agreed / money lent, over IP pledge loans", RATIO, None, 0.0, None),
    "loan_default_rate": ("share of settled IP pledge loans that defaulted", SHARE, None, 0.0, 1.0),
    "lender_reserves_final": ("lenders' reserves at the end of the run", YUAN, AT_END, None, None),
    "lenders_withdrawn": ("lenders that withdrew from the market during the run", COUNT, None, 0.0, None),
}

# the comparison's own rows (sim.analysis.stats.COSTS): extra spend / extra expected conversions against baseline
_COSTS = {
    "cost_per_extra_conversion": ("cost per extra conversion", "extra public spend / extra expected conversions "
                                  "against baseline, paired by seed", TOTAL),
    "cost_per_extra_conversion_public": ("public cost per extra conversion", "extra public cost (spend less what "
                                         "public universities keep) / extra expected conversions", TOTAL),
    "cost_per_extra_conversion_pv": ("cost per extra conversion (present value)", "extra public spend / extra "
                                     "expected conversions, both in present values", PV),
    "cost_per_extra_conversion_public_pv": ("public cost per extra conversion (present value)", "extra public cost / "
                                            "extra expected conversions, both in present values", PV),
}
_SIGNED = {"firm_surplus", "public_university_retained"}  # money levels that may be below zero
_FORMS = ("licence", "trial", "royalty", "open_licence")


def _label(key: str) -> str:
    return _LABELS.get(key, key.replace("_", " "))


def _declared() -> dict[str, Entry]:
    """Entries of the metrics declared as series columns, payment kinds, account classes and instrument spends."""
    from ..instruments import INSTRUMENTS

    out = {}
    for col in C.COLUMNS:
        if not col.summary:
            continue
        if col.money:
            basis, low = (AT_END if col.stock else TOTAL), (None if col.name in _SIGNED else 0.0)
            out[col.name] = Entry(col.name, _label(col.name), col.doc, YUAN, basis, low)
        elif col.name == "firms_below_start":
            out[col.name] = Entry(col.name, _label(col.name), col.doc + " (at the end)", SHARE, None, 0.0, 1.0)
        else:
            out[col.name] = Entry(col.name, _label(col.name), col.doc, COUNT, None if col.stock else TOTAL)
    for key, (meaning, unit, basis, low, high) in _BY_HAND.items():
        out[key] = Entry(key, _label(key), meaning, unit, basis, low, high)
    for acc in ledger.ACCOUNT_CLASSES:
        key = f"net_{acc.plural}"
        out[key] = Entry(key, f"net position of {acc.plural}", f"{acc.doc}: payments received less payments made "
                         "(the parties' net positions add up to zero)", YUAN, TOTAL, None)
    for m in INSTRUMENTS:
        if hasattr(m, "SPEND"):
            key = f"gov_spend_{m.SPEND}"
            kinds = "; ".join(k.doc for k in ledger.KINDS if k.payer == ledger.GOVERNMENT and k.owner == m.NAME)
            out[key] = Entry(key, f"public spend on {m.SPEND} ({m.NAME})", f"government's payments under {m.NAME}: "
                             f"{kinds}", YUAN, TOTAL)
    return out


def _contract_values() -> dict[str, Entry]:
    """``contract_value_*``: the contracts signed, one by one (:func:`sim.core.results.deal_metrics`)."""
    out = {}
    what = {"total": ("value of contracts", "sum of what firms agreed to pay universities, at signing and on "
                      "success", YUAN, TOTAL, None),
            "10m": ("value of contracts of 10 M yuan or more", "sum over contracts of at least 10 M yuan (MOST/Torch's "
                    "statistic)", YUAN, TOTAL, None),
            "mean": ("mean contract value", "mean of what a contract's firm agreed to pay its university", YUAN,
                     PER_CONTRACT, None),
            "share_10m": ("share of contract value in contracts of 10 M or more", "value in contracts of at least "
                          "10 M yuan / all contracts' value", SHARE, None, 1.0)}
    for form in ("",) + _FORMS:
        for part, (label, meaning, unit, basis, high) in what.items():
            key = f"contract_value_{part}" + (f"_{form}" if form else "")
            of = f", {form.replace('_', ' ')} contracts" if form else ""
            out[key] = Entry(key, label + of, meaning + (f" ({form.replace('_', ' ')} contracts only)" if form else ""),
                             unit, basis, 0.0, high)
    for q in (10, 50, 90):
        key = f"contract_value_p{q}"
        out[key] = Entry(key, f"contract value, {q}th percentile", f"the {q}th percentile of the contracts' values",
                         YUAN, PER_CONTRACT)
    return out


@functools.lru_cache(maxsize=1)
def entries() -> dict[str, Entry]:
    """Every metric's entry, by key, in the order of :data:`sim.core.results.METRICS` (then the comparison's rows)."""
    from ..core.results import METRICS

    base = {**_declared(), **_contract_values()}
    out = {}
    for key in METRICS:
        if key in base:
            out[key] = base[key]
        elif key.endswith("_pv") and key[:-3] in base:
            e = base[key[:-3]]
            basis = PV_AT_END if e.basis == AT_END else PV if e.money or e.basis == TOTAL else e.basis
            out[key] = Entry(key, f"{e.label} (present value)", f"{e.meaning}; discounted to month 0 at the scenario's "
                             "rate", e.unit, basis, e.low, e.high)
        elif key.endswith(("_sme", "_large")) and key.rsplit("_", 1)[0] in base:
            whole, part = key.rsplit("_", 1)
            e = base[whole]
            who = "SMEs" if part == "sme" else "large firms"
            out[key] = Entry(key, f"{e.label}, {who}", f"{e.meaning}: {who}' part", e.unit, e.basis, e.low, e.high)
    for key, (label, meaning, basis) in _COSTS.items():
        out[key] = Entry(key, label, meaning + " (bootstrap interval; none where the regime adds no conversions)",
                         YUAN, basis, None)
    return out


def entry(key: str) -> Entry:
    """The entry of metric ``key`` (a KeyError names a metric without one)."""
    try:
        return entries()[key]
    except KeyError:
        raise KeyError(f"metric {key!r} has no glossary entry (sim/analysis/glossary.py)") from None


def label(key: str) -> str:
    """The metric's readable label (its key where it has no entry: a column the page does not know)."""
    e = entries().get(key)
    return e.label if e is not None else key


def frame():
    """The glossary as a table: key, label, unit, basis, meaning (a row per metric)."""
    import pandas as pd

    return pd.DataFrame([{"metric": e.label, "key": e.key, "unit": e.unit, "basis": e.basis or "",
                          "meaning": e.meaning} for e in entries().values()])
