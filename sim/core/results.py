"""Results: the per-month series of a run, its one-row summary, and its invariants.

Both engines fill the same ``(months, len(COLUMNS))`` float64 array, one column per
declared column (:mod:`sim.core.columns`: the model's counts and stocks, one per ledger kind of
payment, the instruments' own). ``summarize`` turns it into one row of metrics and
``check_invariants`` recomputes the model's invariants from it, both from the
declarations: a new instrument's payments, forms and columns are summed, checked and
plotted without code here.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from . import columns as C
from . import forms, ledger
from ..instruments import INSTRUMENTS

SERIES_NAMES = C.names()
N_SERIES = len(C.COLUMNS)
STATUS_COLUMNS = C.STATUS_COLUMNS
BALANCE_COLUMNS = tuple(c.column for c in ledger.ACCOUNT_CLASSES)
FORM_COLUMNS = tuple(f.column for f in forms.FORMS[1:])
COVER_COLUMNS = tuple(c.column for c in forms.COVERS)


# the columns by name, as attributes: Series.SUCCESSES is the index of "successes"
Series = SimpleNamespace(**{c.name.upper(): i for i, c in enumerate(C.COLUMNS)})


# (metric, its column or -1 for all contracts, its SMEs' part): split into <metric>_sme and <metric>_large
SIZE_SPLITS = ((("matches", C.MATCHES, C.MATCHES_SME), ("contracts", -1, C.CONTRACTS_SME),
                ("successes", C.SUCCESSES, C.SUCCESSES_SME), ("failures", C.FAILURES, C.FAILURES_SME))
               + tuple((k.name, k.column, k.sme_column) for k in ledger.KINDS if k.sme_column >= 0))


# MOST / Torch statistics' "contracts of 10 M yuan or more" (80% of the technology contract value in 2019, DOMAIN.md):
# the definition of a reported statistic, not a parameter of the model
LARGE_CONTRACT = 1.0e7


_QUANTILES = (10, 50, 90)   # the percentiles of the contracts' values a run reports


def deal_metrics(values, deal_forms) -> dict:
    """Metrics of a run's contracts, one value each (``values``: what each contract signed agreed to pay the
    university, at signing and on success; ``deal_forms``: its form, :data:`sim.core.forms.FORMS`); None: all NaN.

    For all contracts and for each form (``_<form>``): ``contract_value_total`` (their sum),
    ``contract_value_10m`` (the sum over contracts of at least :data:`LARGE_CONTRACT`), ``contract_value_mean``,
    ``contract_value_share_10m`` (the share of the value in contracts of 10 M or more); for all contracts, the
    quantiles ``contract_value_p10``, ``_p50``, ``_p90`` (linear interpolation between order statistics).
    """
    out = {}
    v = None if values is None else np.asarray(values, dtype=np.float64)
    groups = [("", None)] + [(f"_{f.name}", i) for i, f in enumerate(forms.FORMS) if i > 0]
    for suffix, form in groups:
        if v is None:
            x = np.zeros(0)
        else:
            x = v if form is None else v[np.asarray(deal_forms) == form]
        total, large = float(x.sum()), float(x[x >= LARGE_CONTRACT].sum())
        out[f"contract_value_total{suffix}"] = total if v is not None else np.nan
        out[f"contract_value_10m{suffix}"] = large if v is not None else np.nan
        out[f"contract_value_mean{suffix}"] = float(x.mean()) if x.size else np.nan
        out[f"contract_value_share_10m{suffix}"] = large / total if total > 0 else np.nan
        if form is None:   # the three quantiles in one call (each computed as it would be alone)
            qs = np.quantile(x, [q / 100.0 for q in _QUANTILES]).tolist() if x.size else [np.nan] * len(_QUANTILES)
            out.update({f"contract_value_p{q}": v for q, v in zip(_QUANTILES, qs)})
    return out


def check_deals(series: np.ndarray, values: np.ndarray, deal_forms: np.ndarray) -> None:
    """The contracts recorded one by one are those the series counts, form by form; none is worth less than 0; the
    licences' values are the licence payments (paid in full at signing)."""
    total = series.sum(axis=0)
    if (values < 0).any():
        raise InvariantError(f"a contract recorded with a negative value ({values.min()})")
    for i, f in enumerate(forms.FORMS[1:], start=1):
        n = int((deal_forms == i).sum())
        if n != total[f.column]:
            raise InvariantError(f"{n} {f.name} contracts recorded one by one, {total[f.column]:.0f} counted")
    if (deal_forms == 0).any():
        raise InvariantError("a contract recorded without a form")
    licences = float(values[deal_forms == forms.LICENCE].sum())
    if licences != total[ledger.LICENCE_PAYMENTS]:
        raise InvariantError(f"licences recorded at {licences:.0f} yuan, licence payments differ")


def new_series(months: int) -> np.ndarray:
    return np.zeros((months, N_SERIES), dtype=np.float64)


def gov_kinds(owner: str | None = None) -> list[ledger.Kind]:
    """The kinds of payment government makes (those of one instrument, with ``owner``)."""
    return [k for k in ledger.KINDS if k.payer == ledger.GOVERNMENT and (owner is None or k.owner == owner)]


def discount_factors(months: int, annual_rate: float) -> np.ndarray:
    """The present value, at month 0, of a yuan paid in month t = 0, 1, ..., months - 1."""
    return (1.0 + annual_rate) ** (-np.arange(months) / 12.0)


def runs_of(series: np.ndarray) -> np.ndarray:
    """A run's series ``(months, columns)`` as a batch of one, ``(1, months, columns)``; a batch's as it is. The
    summaries and invariants are written once, over a batch's leading axis of runs (one NumPy operation for all the
    runs of a chunk instead of one per run), and a single run is a batch of one."""
    series = np.asarray(series)
    return series[None] if series.ndim == 2 else series


def ratio(num, den, where=None) -> np.ndarray:
    """``num / den`` run by run, NaN where ``where`` (by default ``den != 0``) is false: the batch form of
    ``num / den if den else nan`` (the same IEEE division, so the same numbers)."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    out = np.full(np.broadcast(num, den).shape, np.nan)
    return np.divide(num, den, out=out, where=(den != 0) if where is None else where)


def summarize(series: np.ndarray, n_achievements: int, discount_rate: float = 0.0, deals=None) -> dict:
    """One row of run metrics from a run's series (a dict of floats): :func:`summarize_runs` of a batch of one."""
    return {name: float(v[0]) for name, v in summarize_runs(runs_of(series), [n_achievements], discount_rate,
                                                            [deals]).items()}


def summarize_runs(series: np.ndarray, n_achievements, discount_rate: float = 0.0, deals=None) -> dict:
    """The run metrics of a batch of runs, one array over the runs per metric (columnar), derived from the declared
    columns and payments. ``series``: ``(runs, months, columns)``; ``n_achievements``: one per run; ``deals``: one
    ``(values, forms)`` or None per run (or None for all).

    Every money metric also as a present value at month 0 (``<name>_pv``; yearly rate
    ``discount_rate``, a payment in month t discounted by t months, a stock at the horizon by
    the last month). Deals still running at the horizon are valued at their expected value
    (the true chance of success): ``firm_surplus_valued`` adds the running implementations'
    value less what they owe on success, ``university_income_valued`` adds what they owe, and
    ``successes_expected`` adds their chances to the conversions (``successes`` stays the
    realised ones). Conversions have present values too (``successes_pv``,
    ``successes_expected_pv``: each discounted from its month as a payment is), the
    denominators of a cost per conversion in present values.
    Each class of accounts' net position (``net_<plural>``: payments in less payments out)
    says who pays and who gains; ``public_cost`` is government's spend less the money
    public universities keep (public money too), whoever paid it to them (a firm or
    government: :func:`sim.core.ledger.public_body` decides, payment by payment). ``deals``, (values,
    forms) of the contracts signed one by one (``st.deal_value``, ``st.deal_form``), gives
    the contract-value metrics (:func:`deal_metrics`; NaN without it).

    Every operation is elementwise over the runs, in the order a single run's sums were made, so a run's metrics
    do not depend on the batch it is in.
    """
    s = series
    runs, months = s.shape[0], s.shape[1]
    n_ach = np.asarray(n_achievements, dtype=np.float64).reshape(runs)
    total = s.sum(axis=1)                 # (runs, columns): each column summed month by month, in order
    last = s[:, -1]
    d = discount_factors(months, discount_rate)
    pv = np.empty((runs, s.shape[2]))
    for r in range(runs):
        pv[r] = d @ s[r]                  # each flow column's present value (one product a run, as for a run alone)
    pv_last = last * d[-1]                # each stock at the horizon, discounted
    # each summary column's total (a flow) or last value (a stock), and its present value if it is money
    out = dict(zip(_SUMMARY_NAMES, np.where(_IS_STOCK, last, total)[:, _SUMMARY_COLUMNS].T))
    out_pv = dict(zip(_SUMMARY_MONEY_NAMES, np.where(_IS_STOCK, pv_last, pv)[:, _SUMMARY_MONEY_COLUMNS].T))
    for k in ledger.KINDS:  # groups of payments (broker fees, premiums)
        for metric in k.metrics:
            out[metric] = out.get(metric, 0.0) + total[:, k.column]
            out_pv[metric] = out_pv.get(metric, 0.0) + pv[:, k.column]
    contracts = _sum_of(total, FORM_COLUMNS)
    out["contracts"] = contracts
    # the achievements that exist (disclosed, not expired, use not ended), month by month
    existing = n_ach[:, None] - s[:, :, C.NOT_YET] - s[:, :, C.EXPIRED] - s[:, :, C.USE_ENDED]
    out["conversion_rate"] = ratio(last[:, C.IN_USE], existing[:, -1], existing[:, -1] > 0)  # stock share
    mean_existing = existing.mean(axis=1)
    out["conversion_rate_per_year"] = ratio(total[:, C.SUCCESSES] / (months / 12.0), mean_existing, mean_existing > 0)
    out["contracts_per_adopter"] = ratio(contracts, total[:, C.ADOPTERS])
    out["mean_months_need_to_signing"] = ratio(total[:, C.SIGN_DELAY_SUM], contracts)
    out["broker_income"] = _sum_of(total, [k.column for k in ledger.KINDS if k.payee == ledger.BROKER])
    out["brokers_final"] = last[:, C.BROKERS_ACTIVE]
    out["brokers_mean"] = s[:, :, C.BROKERS_ACTIVE].mean(axis=1)
    out["gov_spend"] = _sum_of(total, [k.column for k in gov_kinds()])
    out_pv["gov_spend"] = _sum_of(pv, [k.column for k in gov_kinds()])
    for m in INSTRUMENTS:
        if hasattr(m, "SPEND"):
            out[f"gov_spend_{m.SPEND}"] = _sum_of(total, [k.column for k in gov_kinds(m.NAME)])
            out_pv[f"gov_spend_{m.SPEND}"] = _sum_of(pv, [k.column for k in gov_kinds(m.NAME)])
    out_pv["successes"] = pv[:, C.SUCCESSES]   # each conversion discounted from its month, as spend is
    for values, flows, at_end in ((out, total, last), (out_pv, pv, pv_last)):
        values["successes_expected"] = flows[:, C.SUCCESSES] + at_end[:, C.RUNNING_SUCCESSES]
        values["public_cost"] = values["gov_spend"] - values["public_university_retained"]
        values["firm_surplus_valued"] = (values["firm_surplus"] + at_end[:, C.RUNNING_VALUE]
                                         - at_end[:, C.RUNNING_PAYMENTS])
        values["university_income_valued"] = values["university_income"] + at_end[:, C.RUNNING_PAYMENTS]
        net = _sum_of(flows, _KIND_COLUMNS, _NET_SIGNS)   # (runs, classes)
        for cls, acc in enumerate(ledger.ACCOUNT_CLASSES):
            values[f"net_{acc.plural}"] = net[:, cls]
    out.update({f"{name}_pv": v for name, v in out_pv.items()})
    # by firm size: the SMEs' part and the large firms' rest of every count and payment of firms
    for name, whole, part in SIZE_SPLITS:
        out[f"{name}_sme"] = total[:, part]
        out[f"{name}_large"] = total[:, whole] - total[:, part] if whole >= 0 else contracts - total[:, part]
    net_sme = _sum_of(total, [k.sme_column for k in ledger.KINDS if k.sme_column >= 0],
                      [(k.payee == ledger.FIRM) - (k.payer == ledger.FIRM) for k in ledger.KINDS if k.sme_column >= 0])
    out["net_firms_sme"], out["net_firms_large"] = net_sme, out["net_firms"] - net_sme
    converted = s[:, :, C.SUCCESSES] != 0
    out["months_to_first_conversion"] = np.where(converted.any(axis=1), converted.argmax(axis=1), np.nan)
    for name, values in _deal_columns(runs, deals).items():
        out[name] = values
    for m in INSTRUMENTS:
        if hasattr(m, "summarize"):
            out.update(m.summarize(out, s))
    return {name: _per_run(name, v, runs) for name, v in out.items()}


def _per_run(name: str, values, runs: int) -> np.ndarray:
    """A metric as one float64 value per run; anything else (one value for the whole batch, say an instrument's
    metric computed from the first run only) is a ValueError, not stretched over the runs."""
    values = np.asarray(values, dtype=np.float64)
    if values.shape != (runs,):
        raise ValueError(f"metric {name}: {runs} values expected, one per run, not an array of shape {values.shape}")
    return values


# the columns that are run metrics (their totals or, for stocks, their last values), and those of them in yuan
_IS_STOCK = np.array([col.stock for col in C.COLUMNS])
_SUMMARY_COLUMNS = [i for i, col in enumerate(C.COLUMNS) if col.summary]
_SUMMARY_NAMES = [C.COLUMNS[i].name for i in _SUMMARY_COLUMNS]
_SUMMARY_MONEY_COLUMNS = [i for i in _SUMMARY_COLUMNS if C.COLUMNS[i].money]
_SUMMARY_MONEY_NAMES = [C.COLUMNS[i].name for i in _SUMMARY_MONEY_COLUMNS]

# every payment kind's column, and its sign for each class of accounts (a row each): +1 into its payee's, -1 out of
# its payer's
_KIND_COLUMNS = np.array([k.column for k in ledger.KINDS], dtype=np.intp)
_NET_SIGNS = np.array([[(k.payee == cls) - (k.payer == cls) for k in ledger.KINDS]
                       for cls in range(len(ledger.ACCOUNT_CLASSES))], dtype=np.int64)


def _sum_of(values: np.ndarray, columns, signs=None) -> np.ndarray:
    """Run by run, ``sum(sign * values[col] for col, sign in ...)`` as Python sums it (from the integer 0, term by
    term in order; zero-sign terms included, so an infinite value gives NaN as it did): a running sum along the terms
    is sequential, and ``+ 0.0`` turns its -0.0 into Python's 0.0, the only difference. ``signs`` of several rows:
    one sum per row, ``(runs, rows)``."""
    terms = values[:, np.asarray(columns, dtype=np.intp)]
    if signs is not None:
        signs = np.asarray(signs)
        terms = terms[:, None, :] * signs if signs.ndim == 2 else terms * signs
    if terms.shape[-1] == 0:
        return np.zeros(terms.shape[:-1])
    return np.cumsum(terms, axis=-1)[..., -1] + 0.0


def _deal_columns(runs: int, deals) -> dict:
    """:func:`deal_metrics` of each run's contracts, as one array per metric."""
    rows = [deal_metrics(*(d if d is not None else (None, None)))
            for d in (deals if deals is not None else [None] * runs)]
    if not rows:
        return {name: np.zeros(0) for name in deal_metrics(None, None)}
    return {name: np.array([row[name] for row in rows], dtype=np.float64) for name in rows[0]}


# the metrics of one run (columns of summary.csv besides the parameters), in summary order
METRICS = tuple(summarize(np.zeros((1, N_SERIES)), 1))


class InvariantError(AssertionError):
    """A run broke one of the model's invariants."""


def check_by_sector(series: np.ndarray, by_sector: np.ndarray) -> None:
    """The funnel by sector adds up, month by month, to the series' matches, contracts, successes and failures."""
    from .state import SECTOR_SERIES_NAMES

    whole = {"matches": series[:, C.MATCHES], "contracts": series[:, list(FORM_COLUMNS)].sum(axis=1),
             "successes": series[:, C.SUCCESSES], "failures": series[:, C.FAILURES]}
    for k, name in enumerate(SECTOR_SERIES_NAMES):
        bad = by_sector[:, :, k].sum(axis=1) != whole[name]
        if bad.any():
            raise InvariantError(f"month {_first(bad)}: {name} by sector add up to {by_sector[_first(bad), :, k].sum()}, "
                                 f"not {whole[name][_first(bad)]}")


def _first(bad) -> int:
    return int(np.nonzero(bad)[0][0])


# each payment's column, +1 into its payee's class and -1 out of its payer's: a month's payments times this are each
# class's net inflow (what its balance must change by)
_NET_FLOWS = np.zeros((N_SERIES, len(ledger.ACCOUNT_CLASSES)))
for _k in ledger.KINDS:
    _NET_FLOWS[_k.column, _k.payee] += 1.0
    _NET_FLOWS[_k.column, _k.payer] -= 1.0
# the columns that may go below zero: the firms' surplus flow and the balances of classes that may be overdrawn
_MAY_BE_NEGATIVE = np.zeros(N_SERIES, dtype=bool)
_MAY_BE_NEGATIVE[[C.FIRM_SURPLUS, *(a.column for a in ledger.ACCOUNT_CLASSES if a.overdraft)]] = True
# per instrument, the flow columns it owns (all zero while it is off)
_OWNED_FLOWS = {m.NAME: np.array([i for i, col in enumerate(C.COLUMNS) if col.owner == m.NAME and not col.stock],
                                 dtype=np.int64) for m in INSTRUMENTS}


class _SeveralRuns(Exception):
    """A check of a batch of several runs failed: each run is then checked alone, for its own message."""


def failed(bad) -> bool:
    """Whether a check failed (``bad``: its failures, runs first). Checks are written over a batch's runs; a batch of
    several whose check fails is checked again run by run (:func:`check_invariants`), so a message is only ever
    formatted for a batch of one (index its arrays ``[0, ...]``)."""
    if not bad.any():
        return False
    if len(bad) > 1:
        raise _SeveralRuns
    return True


def cumulative(s: np.ndarray) -> np.ndarray:
    """Running totals over the months of a batch's series ``(runs, months, columns)``: ``np.cumsum(s, axis=1)``,
    the same sums in the same order, a month of every run at a time on a months-first copy (NumPy's cumsum over a
    middle axis walks one column of one run at a time: ~7x slower)."""
    c = s.transpose(1, 0, 2).copy()
    for m in range(1, c.shape[0]):
        c[m] += c[m - 1]
    return c.transpose(1, 0, 2)


def first_month(bad) -> int:
    """The first month a check of a batch of one failed in (``bad``: ``(1, months)``)."""
    return _first(bad[0])


def check_invariants(series: np.ndarray, n_achievements, initial_money, cfg=None) -> None:
    """Recompute the model's invariants from a run's series (or a batch's, ``(runs, months, columns)``, with one
    ``n_achievements`` and ``initial_money`` per run); raise :class:`InvariantError` on the first broken one (of the
    first run in the batch that broke one, with its ``run`` attribute set to its index in the batch).

    From the declarations: statuses add up, money is conserved, every class of accounts
    changes by exactly the payments declared to and from it, the funnel never widens,
    nothing negative that cannot be (no firm's, university's, insurer's ... account at any
    month's end). With the run's config ``cfg``: an instrument the
    regime does not list moved nothing, and each instrument's own rules hold
    (``check_series`` of its module: rewards within their rate and cap, claims only on
    insured failures, ...). A batch is checked with one operation per check for all its runs; if one fails, each run
    is checked alone, in order: the same checks, the same message as a run checked by itself.
    """
    series = np.asarray(series)
    if series.ndim == 2:
        _check_runs(series[None], [n_achievements], [initial_money], cfg)
        return
    n_achievements, initial_money = list(n_achievements), list(initial_money)
    try:
        _check_runs(series, n_achievements, initial_money, cfg)
    except _SeveralRuns:
        for r in range(series.shape[0]):
            try:
                _check_runs(series[r:r + 1], n_achievements[r:r + 1], initial_money[r:r + 1], cfg)
            except InvariantError as e:
                e.run = r
                raise
        raise InvariantError("a check failed for the batch and for none of its runs alone") from None


def _check_runs(s: np.ndarray, n_achievements: list, initial_money: list, cfg) -> None:
    """:func:`check_invariants` of a batch ``(runs, months, columns)``; messages name run 0 (see :func:`failed`)."""
    finite = np.isfinite(s)
    if failed(~finite.all(axis=(1, 2))):
        raise InvariantError(f"{SERIES_NAMES[int(np.nonzero(~finite[0])[1][0])]} is not finite")
    # each achievement is in exactly one status
    stock = s[:, :, list(STATUS_COLUMNS)].sum(axis=2)
    bad = stock != np.asarray(n_achievements, dtype=np.float64)[:, None]
    if failed(bad):
        m = first_month(bad)
        raise InvariantError(f"month {m}: statuses add up to {stock[0, m]}, not {n_achievements[0]}")
    # money is conserved: the balances always add up to the initial money
    total = s[:, :, list(BALANCE_COLUMNS)].sum(axis=2)
    bad = total != np.asarray(initial_money, dtype=np.float64)[:, None]
    if failed(bad):
        m = first_month(bad)
        raise InvariantError(f"month {m}: money adds up to {total[0, m]:.0f}, not {initial_money[0]:.0f}")
    # every flow accounted for: each class's balance changes by the payments declared to and from it (payments are
    # whole yuan within 2^53, population.check_money: exact in any order of summing)
    bad = np.diff(s[:, :, list(BALANCE_COLUMNS)], axis=1) != (s @ _NET_FLOWS)[:, 1:]
    if failed(bad.any(axis=(1, 2))):
        cls = _first(bad[0].any(axis=0))  # the first class in the ledger's order, at its first month
        month = _first(bad[0][:, cls])
        raise InvariantError(f"month {month + 1}: the {ledger.ACCOUNT_CLASSES[cls].plural}' cash changes differ from "
                             f"the payments to and from them")
    if failed((np.diff(s[:, :, BALANCE_COLUMNS[ledger.FIRM]], axis=1) != s[:, 1:, C.FIRM_SURPLUS]).any(axis=1)):
        raise InvariantError("firms' cash changes differ from the firm surplus flow")
    # the funnel never widens (cumulative)
    c = cumulative(s)
    contracts = c[:, :, list(FORM_COLUMNS)].sum(axis=2)
    checks = [
        ("needs >= matches", c[:, :, C.NEEDS_RAISED], c[:, :, C.MATCHES]),
        ("matches >= contracts", c[:, :, C.MATCHES], contracts),
        ("contracts >= successes + failures", contracts, c[:, :, C.SUCCESSES] + c[:, :, C.FAILURES]),
        ("matches >= brokered matches", c[:, :, C.MATCHES], c[:, :, C.MATCHES_BROKERED]),
        ("contracts >= adopting firms", contracts, c[:, :, C.ADOPTERS]),
    ] + [(f"contracts >= {C.COLUMNS[col].name}", contracts, c[:, :, col]) for col in COVER_COLUMNS]
    for name, wide, narrow in checks:
        bad = wide < narrow
        if failed(bad):
            m = first_month(bad)
            raise InvariantError(f"month {m}: funnel widens, {name} fails ({wide[0, m]} < {narrow[0, m]})")
    # the conversions expected of the running implementations: a chance each, at most one per achievement under them
    under_contract = s[:, :, C.LICENSED] + s[:, :, C.ON_TRIAL]
    bad = s[:, :, C.RUNNING_SUCCESSES] > under_contract
    if failed(bad):
        m = first_month(bad)
        raise InvariantError(f"month {m}: {s[0, m, C.RUNNING_SUCCESSES]:.3f} conversions expected of running "
                             f"implementations, more than the {under_contract[0, m]:.0f} achievements under contract")
    bad = s[:, :, C.ACCOUNTS_OVERDRAWN] > 0
    if failed(bad):
        m = first_month(bad)
        raise InvariantError(f"month {m}: {s[0, m, C.ACCOUNTS_OVERDRAWN]:.0f} accounts that cannot be overdrawn are "
                             "below zero (a firm paid more than it had)")
    negative = (s < 0).any(axis=1) & ~_MAY_BE_NEGATIVE
    if failed(negative):
        raise InvariantError(f"{SERIES_NAMES[_first(negative[0])]} is negative")
    # project slots: a need fills one; expiry, a breakdown and the outcome free it again
    occupied = (c[:, :, C.NEEDS_RAISED] - c[:, :, C.NEEDS_EXPIRED] - c[:, :, C.NEGOTIATIONS_FAILED]
                - c[:, :, C.SUCCESSES] - c[:, :, C.FAILURES])
    bad = occupied < 0
    if failed(bad):
        m = first_month(bad)
        raise InvariantError(f"month {m}: more project slots freed than filled ({occupied[0, m]:.0f} occupied)")
    bad = s[:, :, C.ADOPTERS] > s[:, :, list(FORM_COLUMNS)].sum(axis=2)
    if failed(bad):
        raise InvariantError(f"month {first_month(bad)}: more firms adopted than contracts signed")
    if cfg is not None:
        f = cfg.scenario.firms
        if failed(c[:, -1, C.ADOPTERS] > f.n):
            raise InvariantError(f"{c[0, -1, C.ADOPTERS]:.0f} firms adopted, more than the {f.n} firms")
        bad = occupied > f.n * max(f.projects_sme, f.projects_large)
        if failed(bad):
            m = first_month(bad)
            raise InvariantError(f"month {m}: {occupied[0, m]:.0f} project slots occupied, more than the firms have")
        bad = s[:, :, C.NEEDS_RAISED] - s[:, :, C.NEEDS_SURFACED] > f.n
        if failed(bad):
            raise InvariantError(f"month {first_month(bad)}: firms raised more than one need each by themselves")
        _check_budget(s, cfg)
        _check_instruments(s, cfg, c)


def _check_budget(s: np.ndarray, cfg) -> None:
    """Government's payments in each budget year (months 0-11, 12-23, ...) within ``government.annual_budget``."""
    budget = cfg.government.annual_budget
    if budget is None:
        return
    s = runs_of(s)
    paid = sum((s[:, :, k.column] for k in gov_kinds()), np.zeros(s.shape[:2]))
    for year in range(0, s.shape[1], 12):
        total = paid[:, year:year + 12].sum(axis=1)
        if failed(total > budget):
            raise InvariantError(f"budget year {year // 12}: government paid {total[0]:.0f} yuan, over its annual "
                                 f"budget {budget:.0f}")


def _check_instruments(s: np.ndarray, cfg, c: np.ndarray | None = None) -> None:
    """An instrument the regime does not list moved nothing; each listed one keeps its own rules (``c``: the running
    totals, :func:`cumulative`, computed once for them all)."""
    s = runs_of(s)
    c = cumulative(s) if c is None else c
    on = set(cfg.regime.instruments)
    for m in INSTRUMENTS:
        if m.NAME not in on:
            owned = _OWNED_FLOWS[m.NAME]
            moved = s[:, :, owned].any(axis=1)
            if failed(moved):
                raise InvariantError(f"{SERIES_NAMES[owned[_first(moved[0])]]} is not zero though {m.NAME} is off")
        if hasattr(m, "check_series"):
            m.check_series(s, cfg, c)
