"""What the dashboard computes, without the page: questions in, tables and figures out.

A question is a list of Hydra overrides of the main job's config (``configs/config.yaml``), exactly
what the command line takes: ``scenario=lishui``, ``regimes=[baseline,free_trial]``,
``broker_reward.cap=500000``, ... So the page validates with the same schema and shows the same one-line
message as ``python -m experiments.run`` (:func:`sim.api.compose`), and its answer is the main
job's: :func:`sim.api.compare`, then :func:`sim.api.compare_at_spend`, with its headline table
(:func:`sim.analysis.stats.headline_table`; the pages build their own tables from the answer's frames, and its
figure is drawn when first shown). :meth:`Service.command_line` is the command that reproduces an answer.

The runs go to a pool of processes started once with the server (spawned: a web server has
threads, so forking is unsafe) whose workers load the compiled kernels once; answers are kept
in a small cache, so a question asked again is answered at once.
"""

from __future__ import annotations

import dataclasses
import io
import multiprocessing
import re
import shlex
import threading
from collections import OrderedDict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from sim import api
from sim.runs import parallel
from sim.core.config import Config, ConfigError, replace

_FIGURE_LOCK = threading.Lock()  # pyplot's state is global: one figure drawn at a time
MAX_RUNS = 5000   # runs a question may take (dashboard.max_runs)
MAX_WORK = 5e9    # model steps a question may take (dashboard.max_work): ~2 minutes of 2 cores (~5e7 steps/s here)
CACHE_MB = 400  # MB of frames the answers kept may hold (dashboard.cache_mb); the newest is always kept
CHUNK_RUNS = 8  # runs a worker takes at a time (a round trip costs ~1 ms; a default-scenario run ~10 ms)


# --------------------------------------------------------------------------- what a page's field may hold
# a value typed in a page is a plain value: a number, a word, or a quoted word ('bargained'); never an interpolation
# (${oc.env:HOME} would show the server's environment in the error) nor Hydra's grammar (=, [, ], {, }, ',', (, ...)
_PLAIN = re.compile(r"[A-Za-z0-9_.+-]*")
_QUOTED = re.compile(r"'[A-Za-z0-9_.+ -]*'|\"[A-Za-z0-9_.+ -]*\"")
_TEXT_MAX = 200  # characters of a field's text: a number or a name


def plain_value(key: str, text: str, path: bool = False) -> str:
    """``text`` typed in a page's field ``key``, stripped, if it is a plain value; else a one-line :class:`ConfigError`
    naming the field (it echoes what was typed, never a resolved value: nothing is composed).

    A value is a number (``500000``, ``1e5``, ``-5``), a word (``null``, ``true``) or a quoted word
    (``'bargained'``): the schema judges it then. With ``path``, a folder typed in a page: any characters but
    ``${`` and control characters (a path is never composed; it is read only under its root, :func:`under_root`)."""
    text = str(text).strip()
    shown = repr(text[:60] + ("..." if len(text) > 60 else ""))
    if path:
        if "${" in text or not text.isprintable() or len(text) > 4096:
            raise ConfigError(f"{key} = {shown}: a folder's path, without '${{' or control characters")
        return text
    if len(text) > _TEXT_MAX or not (_PLAIN.fullmatch(text) or _QUOTED.fullmatch(text)):
        raise ConfigError(f"{key} = {shown}: must be a plain value (a number, a word or a 'quoted word'), "
                          "not an interpolation (${...}) nor override syntax (= [ ] { } , ( ) quotes)")
    return text


# a number written with thousands separators: 500,000 or 1,250,000.5 (groups of three digits after the first)
_GROUPED = re.compile(r"[+-]?[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?")


def number_text(text: str) -> str:
    """``text`` as the command line writes it: a number with thousands separators without them (``500,000`` ->
    ``500000``; Hydra would read ``500,000`` as a list, "Ambiguous value"); any other text as it is (stripped)."""
    text = str(text).strip()
    return text.replace(",", "") if _GROUPED.fullmatch(text) else text


def field_value(key: str, text: str) -> str:
    """A page's field (or a link's value) as the command line's value: :func:`number_text`, then :func:`plain_value`
    (a one-line ConfigError naming ``key`` if it is not a plain value)."""
    return plain_value(key, number_text(text))


def check_values(fields: dict) -> None:
    """:func:`field_value` of each of a page's fields ({key: text}): the first bad one raises."""
    for key, text in fields.items():
        field_value(key, text)


_ERROR_KEY = re.compile(r"(?:config error: )?(?:regimes contains .*|(?P<key>[A-Za-z_][\w.]*)(?: \([^)]*\))? = .*|"
                        r"Could not override '(?P<hydra>[\w.]+)'.*)", re.S)


def error_key(message: str) -> Optional[str]:
    """The key a one-line ConfigError names (``broker_reward.cap = -5.0: ...`` -> ``broker_reward.cap``;
    ``regimes contains 'x': ...`` -> ``regimes``; Hydra's ``Could not override 'k'`` -> ``k``), or None: where the
    Compare page shows it (next to that key's field)."""
    m = _ERROR_KEY.fullmatch(str(message).strip())
    if m is None:
        return None
    return m.group("key") or m.group("hydra") or "regimes"


def check_question(question: list[str]) -> None:
    """Refuse a page's question with an interpolation in it (the command line's own overrides may have some)."""
    for o in question:
        if "${" in o:
            key, _, value = o.partition("=")
            plain_value(key, value)


def figure_png(fig, dpi: int = 90) -> bytes:
    """A matplotlib figure as PNG bytes (and closed)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return buf.getvalue()


def command_line(overrides: list[str]) -> str:
    """The main job's command for these overrides, quoted for a POSIX shell."""
    return " ".join(["python -m experiments.run", *(shlex.quote(o) for o in overrides)])


@dataclass
class Answer:
    """A comparison as the Compare page shows it."""

    overrides: list[str]                  # the question
    config: Config
    comparison: api.Comparison
    equal: Optional[api.Comparison]       # at equal spend, if asked and possible
    at_spend: Optional[str]
    note: str                             # why there is no comparison at equal spend, if there is none
    headline: object                      # DataFrame: a row per regime (sim.analysis.stats.headline_table)
    title: str = ""                       # the comparison figure's
    _figure: Optional[bytes] = field(default=None, repr=False, compare=False)  # figure_png's, once drawn

    @property
    def command(self) -> str:
        return command_line(self.overrides)

    @property
    def nbytes(self) -> int:
        """Memory of its frames (the series: most of it), what the cache counts."""
        frames = [c.series for c in (self.comparison, self.equal) if c is not None] + \
                 [c.summary for c in (self.comparison, self.equal) if c is not None]
        return int(sum(df.memory_usage(index=True, deep=False).sum() for df in frames))

    def figure_png(self) -> bytes:
        """The comparison figure as PNG bytes at the width of a page, drawn on first use (~1 s; a tab few open) under
        the figure lock, then kept; the download (:meth:`figure_file`) is drawn again, sharper."""
        from sim.analysis.plots import comparison_figure

        with _FIGURE_LOCK:  # pyplot's state is global; and two pages asking at once draw it once
            if self._figure is None:
                self._figure = figure_png(comparison_figure(self.comparison.series, self.comparison.summary,
                                                            self.title), dpi=60)
            return self._figure

    def figure_file(self) -> bytes:
        """The comparison figure as the main job saves it (``comparison.png``)."""
        import tempfile

        from sim.analysis.plots import save_comparison

        with _FIGURE_LOCK, tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "comparison.png"
            save_comparison(self.comparison.series, self.comparison.summary, path, self.title)
            return path.read_bytes()

    def headline_numbers(self):
        """The headline as numbers, a row per regime and figure (:func:`sim.analysis.stats.headline_numbers`): the
        download ``headline.csv``, whose figures a spreadsheet reads (the page writes them for people)."""
        from sim.analysis.stats import headline_numbers

        return headline_numbers(self.comparison.table, None if self.equal is None else self.equal.table)

    def files(self) -> dict[str, Callable[[], bytes]]:
        """Downloads: {file name: a function making its bytes}."""
        out = {"table.csv": lambda: _csv(self.comparison.table), "table.parquet": lambda: _parquet(self.comparison.table),
               "summary.csv": lambda: _csv(self.comparison.summary),
               "summary.parquet": lambda: _parquet(self.comparison.summary),
               "headline.csv": lambda: _csv(self.headline_numbers()), "comparison.png": self.figure_file,
               "command.sh": lambda: (self.command + "\n").encode()}
        if self.equal is not None:
            out.update({"table_equal_spend.csv": lambda: _csv(self.equal.table),
                        "table_equal_spend.parquet": lambda: _parquet(self.equal.table)})
        return out


def _csv(df) -> bytes:
    return df.to_csv(index=False).encode()


def _parquet(df) -> bytes:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()


class Cancelled(Exception):
    """A question given up by its page (:meth:`Service.compare`'s ``cancel`` set)."""


class Service:
    """Answers the dashboard's questions: a warm process pool and a cache of answers.

    Args:
        base: overrides every question starts from (the server's command line: engine, seed, ...).
        workers: processes of the pool (1: runs in the calling thread).
        cache: answers kept (least recently used dropped first).
        cache_mb: megabytes of frames the answers kept may hold (the newest is always kept): what bounds the
            server's memory (a default comparison's answer holds ~83 MB, and the server grows by about as much).
        max_runs, max_work: the most runs, and model steps (``sim.core.population.run_work``), a question may take
            (``dashboard.max_runs``, ``dashboard.max_work``): a question above either is refused with the reason.
    """

    def __init__(self, base: list[str], workers: int = 1, cache: int = 32, max_runs: int = MAX_RUNS,
                 max_work: float = MAX_WORK, cache_mb: float = CACHE_MB):
        self.base = list(base)
        self.workers = int(workers)
        self.cache_size = int(cache)
        self.cache_bytes = float(cache_mb) * 1e6
        self.max_runs, self.max_work = int(max_runs), float(max_work)
        self._cache: OrderedDict[str, Answer] = OrderedDict()
        self._configs: OrderedDict[tuple, Config] = OrderedDict()
        self._sizes: OrderedDict[tuple, tuple[int, float]] = OrderedDict()
        self._lock = threading.Lock()
        self._pool: Optional[ProcessPoolExecutor] = None
        self._turn = threading.Condition()  # the questions, one at a time in arrival order: (ticket, runs)
        self._queue: list[tuple[object, int]] = []

    # ------------------------------------------------------------------ lifecycle
    def start(self, answer_start: bool = False) -> None:
        """Start the pool, load the kernels in every worker (a run of the base config each), and answer a small
        question once here (the tables' and figures' modules imported, their first calls made); with
        ``answer_start``, answer the starting question too (the pages' first, so it is shown at once)."""
        cfg = self.config([])
        if self.workers > 1 and self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_die_with_parent)
            warm = [self._pool.submit(parallel.worker_chunk, [(cfg, cfg.seed)]) for _ in range(2 * self.workers)]
            for f in warm:
                f.result()
        warm = self._answer(["seeds=2", "regimes=[baseline,broker_reward]", "at_spend=broker_reward"], None, None)
        warm.figure_png()  # matplotlib imported and its first figure drawn here, not on a page's first Figure tab
        if answer_start:
            self.compare([])

    def close(self) -> None:
        """Stop the workers (the runs under way end first)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    # ------------------------------------------------------------------ questions
    def overrides(self, question: list[str]) -> list[str]:
        """The base, but for the keys the question sets, then the question."""
        asked = {o.split("=", 1)[0] for o in question}
        return [o for o in self.base if o.split("=", 1)[0] not in asked] + list(question)

    def config(self, question: list[str]) -> Config:
        """The validated config of a question (a one-line :class:`ConfigError` as the command line's); composed
        once per question (a page asks on every redraw; Hydra takes ~0.3 s)."""
        check_question(question)
        key = tuple(self.overrides(question))
        with self._lock:
            if key in self._configs:
                return self._configs[key]
        cfg = api.compose(*key)
        with self._lock:
            self._configs[key] = cfg
            while len(self._configs) > 256:
                self._configs.popitem(last=False)
        return cfg

    def validate(self, question: list[str]) -> Config:
        """The config of a question the Compare page may run: valid, and its comparison fits in memory (the main
        job's checks, with the same one-line messages)."""
        from experiments.cli import check_comparison_memory

        cfg = self.config(question)
        at_spend = cfg.at_spend if len(cfg.regimes) > 1 else None
        if at_spend is not None:  # a regime that spends nothing: refused here, next to its field, not after the runs
            api.check_at_spend(at_spend)
        api.check_regimes(cfg, [*cfg.regimes, *([at_spend] if at_spend else [])])  # each regime's own rules
        runs, work = self.size(question, cfg)  # the limits first: the size of the question is what the user chose
        if runs > self.max_runs:
            raise ConfigError(f"seeds = {cfg.seeds}: {runs:,} runs, above dashboard.max_runs = {self.max_runs:,} "
                              "(lower the seeds or the regimes, or start the dashboard with dashboard.max_runs=...)")
        if work > self.max_work:
            raise ConfigError(f"seeds = {cfg.seeds}: about {work:.3g} model steps ({runs:,} runs of "
                              f"{work / runs:.3g} on average), above dashboard.max_work = {self.max_work:.3g} (lower "
                              "the seeds, the regimes or the size of a run: months, firms, screenings; or start the "
                              "dashboard with dashboard.max_work=...)")
        check_comparison_memory(cfg, cfg.regimes, cfg.at_spend if len(cfg.regimes) > 1 else None)
        return cfg

    def size(self, question: list[str], cfg: Optional[Config] = None) -> tuple[int, float]:
        """(runs, model steps) of a question (:func:`question_size`): ~0.1 s (a config per regime), so once per
        question, as its config."""
        key = tuple(self.overrides(question))
        with self._lock:
            size = self._sizes.get(key)
        if size is None:
            size = question_size(self.config(question) if cfg is None else cfg)
            with self._lock:
                self._sizes[key] = size
                while len(self._sizes) > 256:
                    self._sizes.popitem(last=False)
        return size

    def command_line(self, question: list[str]) -> str:
        return command_line(self.overrides(question))

    def cached(self, question: list[str]) -> Optional[Answer]:
        """The answer to ``question`` if it is in the cache (validated first: a bad question raises)."""
        key = _key(self.config(question))
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        return None

    def compare(self, question: list[str], on_progress: Optional[Callable[[int, int, str], None]] = None,
                cancel: Optional[threading.Event] = None,
                on_wait: Optional[Callable[[int], None]] = None) -> Answer:
        """The main job's comparison for ``question``: every regime of ``regimes``, and at equal spend to
        ``at_spend`` when it is set and more than one regime is compared (as the main job does).

        ``cancel``: an event the page sets to give the question up (its Cancel button, its page closed): the
        comparison raises :class:`Cancelled` when the chunk under way ends, and the chunks not yet begun are
        cancelled (:func:`sim.api.run_batch`), so the pool is free for the next question.

        Questions of every page run one at a time, in the order they arrive (a page's question does not wait for
        another page's runs chunk by chunk, nor get ahead of it); ``on_wait(runs)`` is told, while it waits, the runs
        of the questions ahead of it (it may raise, as ``on_progress`` may, to give the question up)."""
        cfg = self.validate(question)
        key = _key(cfg)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]

        def progress(done: int, total: int, desc: str) -> None:
            if cancel is not None and cancel.is_set():
                raise Cancelled(f"cancelled after {done} of {total} runs")
            if on_progress is not None:
                on_progress(done, total, desc)

        entry = (object(), self.size(question, cfg)[0])  # its place in the queue, and its runs
        with self._turn:
            self._queue.append(entry)
        try:
            self._wait_turn(entry, cancel, on_wait)
            with self._lock:  # answered while it waited (the same question from another page)
                if key in self._cache:
                    self._cache.move_to_end(key)
                    return self._cache[key]
            answer = self._answer(question, cfg, progress)
        finally:
            with self._turn:
                self._queue.remove(entry)
                self._turn.notify_all()
        with self._lock:
            self._cache[key] = answer
            while len(self._cache) > 1 and (len(self._cache) > self.cache_size or
                                            sum(a.nbytes for a in self._cache.values()) > self.cache_bytes):
                self._cache.popitem(last=False)
        return answer

    def _wait_turn(self, entry, cancel: Optional[threading.Event], on_wait) -> None:
        """Wait until ``entry`` heads the queue (telling ``on_wait`` the runs ahead when they change)."""
        told = None
        while True:
            with self._turn:
                i = self._queue.index(entry)
                ahead = sum(runs for _, runs in self._queue[:i])
            if cancel is not None and cancel.is_set():
                raise Cancelled("cancelled before it began" + (f" (queued behind {ahead:,} runs)" if i else ""))
            if i == 0:
                return
            if on_wait is not None and ahead != told:
                on_wait(ahead)
                told = ahead
            with self._turn:
                if self._queue[0] is not entry:
                    self._turn.wait(0.2)  # a question ahead ends, or a look at ``cancel``

    def queued_runs(self) -> int:
        """Runs of the questions running or waiting now."""
        with self._turn:
            return sum(runs for _, runs in self._queue)

    def _answer(self, question, cfg: Optional[Config], on_progress) -> Answer:
        from experiments.cli import no_spend_note
        from sim.analysis.stats import headline_table

        cfg = self.config(question) if cfg is None else cfg
        regimes = list(cfg.regimes)
        at_spend = cfg.at_spend if len(regimes) > 1 else None
        if at_spend is not None:
            api.check_at_spend(at_spend)
        # small chunks: the progress bar moves, and a question given up frees the pool within a chunk
        batch = {"pool": self._pool, "on_progress": on_progress, "workers": self.workers, "progress": False,
                 "chunksize": CHUNK_RUNS}
        res = api.compare(cfg, regimes=regimes, **batch)
        equal, note = None, ""
        if at_spend is not None:
            try:
                equal = api.compare_at_spend(cfg, at_spend, regimes=regimes, spend_of=res, **batch)
            except api.NoSpend:
                note = no_spend_note(at_spend)
        title = f"{cfg.scenario.name}: regimes compared over {api.replicates_text(cfg)}"  # its figure: drawn when asked
        # an answer kept in the cache keeps its frames, not every run's own arrays (as large as the series frame:
        # ~half of an answer's memory; nothing of the page reads them)
        res = dataclasses.replace(res, results=[])
        equal = dataclasses.replace(equal, results=[]) if equal is not None else None
        return Answer(self.overrides(question), cfg, res, equal, at_spend if equal is not None else None, note,
                      headline_table(res.table, None if equal is None else equal.table), title)


def starting_seeds() -> int:
    """The Compare page's starting seeds when the command line sets none: ``seeds`` of ``configs/dashboard.yaml``."""
    from omegaconf import OmegaConf

    from sim.core.locations import CONFIG_DIR

    value = OmegaConf.load(CONFIG_DIR / "dashboard.yaml").get("seeds")
    if isinstance(value, bool) or not isinstance(value, int):   # its range is the schema's, checked when composed
        raise ConfigError(f"seeds = {value!r} in {CONFIG_DIR / 'dashboard.yaml'}: must be a whole number of seeds")
    return value


def question_size(cfg: Config) -> tuple[int, float]:
    """(runs, model steps) of the Compare page's question ``cfg``: every regime x replicate, again at equal spend
    (and the ``at_spend`` regime once more if it is not compared); steps by :func:`sim.core.population.run_work`."""
    from sim.core.population import run_work

    replicates = cfg.seeds * (cfg.posterior_draws if cfg.posterior is not None else 1)
    regimes = list(cfg.regimes)
    at_spend = cfg.at_spend if len(regimes) > 1 else None
    times = 2 if at_spend is not None else 1
    extra = [at_spend] if at_spend is not None and at_spend not in regimes else []
    per_regime = {name: run_work(api.under_regime(cfg, name)) for name in {*regimes, *extra}}
    runs = replicates * (times * len(regimes) + len(extra))
    work = replicates * (times * sum(per_regime[r] for r in regimes) + sum(per_regime[r] for r in extra))
    return runs, float(work)


def _die_with_parent() -> None:
    """A worker ends when the server does, however it ends (Linux: the kernel signals it; elsewhere the pool's
    own shutdown does it)."""
    import sys

    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _key(cfg: Config) -> str:
    """What identifies an answer: the config, but for settings that change no number; on a posterior, also what its
    files hold (``cfg.posterior`` is only a folder's path: a calibration re-run into the same folder is a new
    question, :func:`posterior_digest`)."""
    key = repr(replace(cfg, workers=1, progress=False))
    if cfg.posterior is not None:
        key += " " + posterior_digest(cfg.posterior)
    return key


def posterior_digest(folder) -> str:
    """A SHA-256 of a posterior's files (``posterior.csv`` and ``posterior.yaml`` of ``folder``; a missing one counts
    as missing): what changes when the calibration is re-run into the same folder, even at the same size and time."""
    import hashlib

    h = hashlib.sha256()
    for name in ("posterior.csv", "posterior.yaml"):
        h.update(name.encode() + b"\0")
        try:
            h.update(hashlib.sha256((Path(folder) / name).read_bytes()).digest())
        except OSError:
            h.update(b"missing")
    return h.hexdigest()


# --------------------------------------------------------------------------- the one-run page
def _project_states() -> tuple[str, ...]:
    """A project slot's states (sim.core.rules: IDLE, NEED, NEGOTIATING_FIRM, IMPLEMENTING), named as the One run
    page's firms table names them, each at its own code: ``PROJECT_STATES[rules.NEED] == "need"``."""
    from sim.core import rules

    names = {rules.IDLE: "idle", rules.NEED: "need", rules.NEGOTIATING_FIRM: "negotiating",
             rules.IMPLEMENTING: "implementing"}
    if sorted(names) != list(range(len(names))):
        raise AssertionError(f"sim.core.rules' project states are not the codes 0..{len(names) - 1}: {names}")
    return tuple(names[k] for k in range(len(names)))


PROJECT_STATES = _project_states()


class Stepper:
    """One run of the Mesa engine, a month at a time (the One run page's play, pause and step).

    Months are numbered as in the downloadable series (:func:`sim.api.series_frame`'s ``month``: 0 is the first):
    after ``k`` steps the months run are 0 .. k - 1, and :attr:`last_month` is k - 1."""

    def __init__(self, cfg: Config, seed: int):
        from sim.engines.mesa.model import TransferModel

        self.cfg, self.seed = cfg, int(seed)
        self.model = TransferModel(cfg, self.seed)

    @property
    def month(self) -> int:
        """Months run so far."""
        return self.model.month

    @property
    def last_month(self) -> int:
        """The series' number of the last month run (-1 before the first)."""
        return self.model.month - 1

    @property
    def months(self) -> int:
        return self.cfg.scenario.months

    @property
    def done(self) -> bool:
        return self.model.month >= self.months

    def step(self) -> None:
        if not self.done:
            self.model.step()

    def series(self):
        """The months run so far, as :func:`sim.api.series_frame` writes a run's (without its regime and seed):
        ``month`` (0 first), then a column per series (sim.core.results.SERIES_NAMES)."""
        import numpy as np
        import pandas as pd

        from sim.core.results import SERIES_NAMES

        df = pd.DataFrame(self.model.series[:self.model.month], columns=list(SERIES_NAMES))
        df.insert(0, "month", np.arange(len(df)))
        return df

    def flows(self):
        """The money moved so far, a row per month and kind of payment (:data:`sim.core.ledger.KINDS`, each a column
        of the series): ``month``, ``kind``, ``payer`` and ``payee`` (account classes), ``doc``, ``amount`` (yuan);
        every kind every month, zeros included."""
        import numpy as np
        import pandas as pd

        from sim.core import ledger

        months = self.model.month
        rows = []
        for k in ledger.KINDS:
            payer, payee = ledger.ACCOUNT_CLASSES[k.payer], ledger.ACCOUNT_CLASSES[k.payee]
            rows.append(pd.DataFrame({"month": np.arange(months), "kind": k.name, "payer": payer.plural,
                                      "payee": payee.plural, "doc": k.doc,
                                      "amount": self.model.series[:months, k.column]}))
        if not rows:
            return pd.DataFrame(columns=["month", "kind", "payer", "payee", "doc", "amount"])
        return pd.concat(rows, ignore_index=True)

    def agents(self):
        """How many agents of each kind the model holds now: a row per kind (firms, their project slots,
        universities, achievements, brokers, and the agents instruments add: insurers, lenders), with how many are
        active where an agent can leave or withdraw (a broker, an insurer, a lender)."""
        import pandas as pd

        from sim.core import rules

        m = self.model
        a = m.arrays
        rows = [("firms", len(m.firms), int(a.firm_sme[:len(m.firms)].sum()), "SMEs"),
                ("project slots (a firm's projects)", len(m.projects), int((a.project_state != rules.IDLE).sum()),
                 "busy: a need, a negotiation or an implementation"),
                ("universities", len(m.universities), int(a.univ_public[:len(m.universities)].sum()), "public"),
                ("achievements", len(m.achievements), int(sum(1 for x in m.achievements if x.shelved)),
                 "shelved (on offer)"),
                ("brokers", len(m.brokers), int(sum(bool(b.active) for b in m.brokers)), "active in the market")]
        for kind, what in (("insurers", "writing policies"), ("lenders", "lending")):
            members = getattr(m, kind, [])
            rows.append((kind, len(members), int(sum(bool(x.active) for x in members)), what))
        return pd.DataFrame(rows, columns=["agents", "count", "of which", "which"])

    def firms(self):
        """Each firm's state now: a row per firm (index order)."""
        import numpy as np
        import pandas as pd

        from sim.core import ledger, rules

        m = self.model
        a = m.arrays
        n = len(m.firms)
        base = a.acct_base[ledger.FIRM]
        cash = a.balance[base:base + n].astype(np.int64)
        states = np.zeros((n, len(PROJECT_STATES)), dtype=np.int64)
        np.add.at(states, (a.project_firm, a.project_state), 1)
        out = pd.DataFrame({
            "firm": np.arange(n), "sector": a.firm_sector[:n].astype(int),
            "size": np.where(a.firm_sme[:n], "SME", "large"),
            "cash": cash, "cash at start": a.firm_cash_start[:n].astype(np.int64),
            "belief in success": [rules.belief_mean(al, be) for al, be in zip(a.firm_alpha[:n], a.firm_beta[:n])],
            "contracts signed": a.firm_signed[:n].astype(int)})
        for k, name in enumerate(PROJECT_STATES):
            out[f"projects {name}"] = states[:, k]
        return out


# --------------------------------------------------------------------------- sweeps and calibrations
def inside(root: Path, path: Path) -> bool:
    """Whether ``path`` resolves (links followed) to ``root`` or below it (``root`` resolved too)."""
    try:
        return Path(path).resolve().is_relative_to(Path(root).resolve())
    except (OSError, RuntimeError):  # a loop of links
        return False


def under_root(key: str, text: str, root: Path, setting: str) -> Path:
    """The path typed in a page's field ``key``, if it resolves (links followed) inside ``root`` (the dashboard's
    setting ``setting``); else a one-line :class:`ConfigError`. A page reads no folder but these."""
    path = Path(plain_value(key, text, path=True))
    if not inside(root, path):
        raise ConfigError(f"{key} = {str(path)!r}: not under the dashboard's {setting.split('.')[-1]} folder "
                          f"{Path(root).resolve()} ({setting})")
    return path


def find_results(root: Path, marker: str) -> list[Path]:
    """Folders under ``root`` (at most two levels down) that hold ``marker``, newest first; a link out of ``root``
    (to a folder or to the marker) is not followed."""
    if not root.is_dir():
        return []
    found = [p.parent for p in [*root.glob(f"*/{marker}"), *root.glob(f"*/*/{marker}")]
             if p.is_file() and inside(root, p)]
    return sorted(found, key=lambda p: (p / marker).stat().st_mtime, reverse=True)


def load_sweep(path: Path, root: Optional[Path] = None):
    """A collected sweep (``sweep.parquet``, or its folder) and its axes: (table, axes, metrics); with ``root``,
    only if the file resolves inside it (links followed)."""
    import pandas as pd

    from experiments.cli import swept_columns
    from sim.core.results import METRICS

    path = Path(path)
    file = path / "sweep.parquet" if path.is_dir() else path
    if root is not None and not inside(root, file):
        raise ConfigError(f"sweep = {str(path)!r}: not under the dashboard's sweeps folder {Path(root).resolve()} "
                          "(dashboard.sweeps)")
    if not file.is_file():
        raise ConfigError(f"sweep = {str(path)!r}: no sweep.parquet there (collect it: python -m experiments.collect "
                          "<sweep dir>)")
    try:
        df = pd.read_parquet(file)
    except Exception as e:  # noqa: BLE001 (pyarrow raises many kinds for a file that is not Parquet)
        raise ConfigError(f"sweep = {str(path)!r}: not a Parquet table ({type(e).__name__})") from None
    if not {"run_id", "seed", "regime.name"} <= set(df.columns):
        raise ConfigError(f"sweep = {str(path)!r}: not a collected sweep (no run_id, seed and regime.name columns)")
    params = [c for c in df.columns if "." in c and c not in ("regime.instruments",)]
    rows = df[params].to_dict("records")
    axes = [a for a in swept_columns(rows) if a != "seed"]
    metrics = [m for m in METRICS if m in df.columns]
    return df, axes, metrics


def read_table(folder, name: str, columns: tuple = (), numeric: tuple = ()):
    """A CSV table a page shows (``folder / name``: a calibration's ``posterior_summary.csv``, ``fit.csv``, ...), read;
    or a one-line :class:`ConfigError` naming the file: not readable, not CSV, without the ``columns`` it must have,
    or with a value that is not a number in one of the ``numeric`` columns it has."""
    import pandas as pd

    path = Path(folder) / name
    shown = f"{name} in {str(folder)!r}"
    try:
        df = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as e:  # EmptyDataError, UnicodeDecodeError: ValueErrors
        why = str(e).strip().splitlines()[0][:120] if str(e).strip() else ""
        raise ConfigError(f"{shown}: not a readable CSV table ({type(e).__name__}{': ' + why if why else ''})") \
            from None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ConfigError(f"{shown}: no column {missing[0]!r} (its columns: {', '.join(map(str, df.columns))[:200]})")
    for c in numeric:
        if c in df.columns and not (pd.api.types.is_numeric_dtype(df[c]) or pd.api.types.is_bool_dtype(df[c])):
            bad = next((v for v in df[c] if pd.notna(v) and pd.isna(pd.to_numeric(pd.Series([v]), errors="coerce")[0])),
                       "?")
            raise ConfigError(f"{shown}: column {c!r} holds {str(bad)[:40]!r}, not a number")
    return df


# --------------------------------------------------------------------------- a comparison on a calibration's posterior
_POSTERIOR_PATH = re.compile(r"[A-Za-z0-9_./+-]+")


def posterior_question(folder, draws: str, seeds: str, regimes: Optional[list[str]] = None) -> list[str]:
    """The main job's overrides that compare regimes on a calibration's posterior, as
    ``python -m experiments.run posterior=<folder> posterior_draws=<draws> seeds=<seeds>``
    (docs/how-to/run-on-posterior.md):
    ``draws`` and ``seeds`` as typed in the page (plain values, :func:`plain_value`), ``folder`` one the page may read
    (:func:`under_root`) whose path the command line takes as it is (letters, digits, ``_ . / + -``)."""
    check_values({"posterior_draws": draws, "seeds": seeds})
    text = str(folder)
    if not _POSTERIOR_PATH.fullmatch(text):
        raise ConfigError(f"posterior = {text!r}: a folder whose path has only letters, digits and _ . / + - (the "
                          "command line takes it unquoted); rename or link it")
    question = [f"posterior={text}", f"posterior_draws={draws.strip()}", f"seeds={seeds.strip()}"]
    if regimes is not None:
        question.append(f"regimes=[{','.join(regimes)}]")
    return question


def compare_posterior(service: Service, question: list[str], **kw) -> Answer:
    """:meth:`Service.compare` of a question with ``posterior=<folder>`` (:func:`posterior_question`): the main job's
    comparison over the posterior's draws x seeds (:func:`sim.api.compare` draws them, as the command line does),
    through the service's one queue, with its limits (``max_runs``, ``max_work``: draws x seeds x regimes, twice at
    equal spend), its cancel and its cache; ``kw``: :meth:`Service.compare`'s ``on_progress``, ``cancel``, ``on_wait``.

    Checked first as the main job checks (experiments.app): the posterior's files, its keys for the scenario, no key
    both set by the question (or the server's command line) and drawn from the posterior, and the memory of every
    draw's runs."""
    from experiments.cli import check_comparison_memory
    from sim.runs.posterior import load_posterior

    cfg = service.config(question)
    if cfg.posterior is None:
        raise ConfigError("posterior = null: name a calibration's folder")
    posterior = load_posterior(cfg.posterior)
    keys = posterior.applied(cfg.scenario.name)
    asked = {o.split("=", 1)[0].lstrip("+~") for o in service.overrides(question)}
    both = [k for k in keys if k in asked or any(k.startswith(a + ".") for a in asked)]
    if both:
        raise ConfigError(f"{both[0]}: set on the command line and by the posterior {posterior.path} (its draws set "
                          f"{', '.join(keys)}); drop one of them")
    service.validate(question)  # the limits first: draws x seeds x regimes is what the user chose
    regimes = list(cfg.regimes)
    check_comparison_memory(cfg, regimes, cfg.at_spend if len(regimes) > 1 else None,
                            posterior.draws(cfg, cfg.posterior_draws))
    return service.compare(question, **kw)
