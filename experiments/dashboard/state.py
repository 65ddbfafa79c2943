"""What every page shares: the service answering questions, the server's settings, and how a page asks a question
(:func:`use_question`: its progress, its Cancel, given up when a newer one is asked or the page closes)."""

from __future__ import annotations

import threading
import time
from typing import Callable, Optional

import solara
import solara.lab

from experiments.dashboard import service as svc

SERVICE: Optional[svc.Service] = None  # set by experiments.dashboard before the server starts
SETTINGS: dict = {}                    # its paths: sweeps, calibrations (experiments.dashboard)
_SERVICE_LOCK = threading.Lock()


def service() -> svc.Service:
    global SERVICE
    with _SERVICE_LOCK:
        if SERVICE is None:  # served by `solara run`: the default config, runs in the server's process
            SERVICE = svc.Service(["engine=numba", f"seeds={svc.starting_seeds()}"], workers=1)
        return SERVICE


# --------------------------------------------------------------------------- a page's questions
PROGRESS_EVERY = 0.5  # s between the progress steps a page shows (each redraws it: 130 a default question before)
Run = Callable[..., "svc.Answer"]  # run(question, on_progress=..., cancel=..., on_wait=...): Service.compare's


class Asking:
    """A page's questions, without the page: which one is the newest asked (:attr:`current`, set on every redraw),
    the cancel event of the one running, and what a run does when it is given up.

    One mechanism: a question is given up by setting its event (:meth:`Service.compare`'s ``cancel``: the pool drops
    its chunks not begun). Who gave it up decides what the page shows: its own Cancel (the question is still the
    newest) shows "cancelled"; a newer question asked (or the page closed) shows nothing of it: the newer one's
    progress is shown instead."""

    def __init__(self):
        self.current: Optional[tuple] = None               # the newest question asked (None: none, or page closed)
        self.running: Optional[threading.Event] = None     # the cancel event of the one running
        self._lock = threading.Lock()

    def cancel(self) -> None:
        """Give up the question running (the Cancel button)."""
        with self._lock:
            if self.running is not None:
                self.running.set()

    def close(self) -> None:
        """The page closed: it asks nothing more, and the question running is given up."""
        self.current = None
        self.cancel()

    def ask(self, ident: Optional[tuple], run: Run, question: Optional[list[str]],
            set_progress: Callable[[tuple], None], set_cancelled: Callable[[bool], None]):
        """Run ``question`` (asked as ``ident``; None: nothing to run) after giving up the one running; its answer,
        or None if it was given up (``set_cancelled(True)`` if by its own Cancel). :class:`ConfigError` and a
        failed run raise (the page shows them)."""
        with self._lock:
            if self.running is not None:  # a newer question is asked: the older one stops within a chunk
                self.running.set()
            event = threading.Event() if ident is not None else None
            self.running = event
        if ident is None:
            return None
        set_cancelled(False)
        set_progress((0, 0, "starting"))

        shown = [0.0, None]  # when the progress was last shown, and its description

        def on_progress(done: int, total: int, desc: str) -> None:
            if self.current != ident:  # superseded (or the page closed): stop now, the pool is freed
                event.set()
                raise svc.Cancelled("a newer question was asked")
            now = time.monotonic()
            # each shown step redraws the page, in the server's process, beside the runs: a few a second at most
            if now - shown[0] >= PROGRESS_EVERY or desc != shown[1] or done == total:
                shown[:] = [now, desc]
                set_progress((done, total, desc))

        def on_wait(runs: int) -> None:  # other pages' questions ahead of this one
            on_progress(0, 0, f"queued behind {runs:,} runs")

        try:
            return run(question, on_progress=on_progress, cancel=event, on_wait=on_wait)
        except svc.Cancelled:
            if self.current == ident:  # its own Cancel: say so; else the newer question's progress is shown
                set_cancelled(True)
            return None
        finally:
            with self._lock:
                if self.running is event:
                    self.running = None


def use_question(run: Run, question: Optional[list[str]], enabled: bool = True, nonce=None):
    """A page's question, asked through the service's one queue: ``(result, progress, cancel, cancelled)``.

    ``run(question, on_progress=, cancel=, on_wait=)`` answers it (``service().compare``, or
    ``functools.partial(svc.compare_posterior, service())``); ``question`` (overrides) is asked when ``enabled`` and
    whenever it, or ``nonce``, changes (``nonce``: a button's count of clicks, for a page that asks on a click; a page
    that asks as it is edited leaves it None). A newer question gives the running one up (its chunks not begun are
    dropped from the pool) and only the newer one's progress is shown; the page closing gives it up too.

    Returns ``result`` (a ``solara.lab.use_task`` Task: ``pending``, ``value`` the :class:`svc.Answer` or None when
    given up, ``error``/``exception``), ``progress`` ``(done, total, description)``, ``cancel`` (for a Cancel button)
    and ``cancelled`` (whether the question shown was given up by that Cancel).

    The Compare page asks as it is edited: ``use_question(service().compare, question, enabled=cfg is not None)``.
    The Calibration page asks on a click: ``use_question(run, asked_question, enabled=clicks > 0, nonce=clicks)``,
    with the question as it was when clicked (editing the fields after the click does not give the run up)."""
    asking = solara.use_memo(Asking, [])
    progress = solara.use_reactive((0, 0, ""))
    cancelled, set_cancelled = solara.use_state(False)
    ident = (tuple(question), nonce) if enabled and question is not None else None
    asking.current = ident
    solara.use_effect(lambda: asking.close, [])  # its cleanup runs when the page (its virtual kernel) closes

    def ask():
        return asking.ask(ident, run, None if ident is None else list(question), progress.set, set_cancelled)

    result = solara.lab.use_task(ask, dependencies=[ident], raise_error=False)
    return result, progress.value, asking.cancel, cancelled



@solara.component
def AnswerFigure(answer: "svc.Answer"):
    """The answer's comparison figure (PNG), drawn when this is rendered (:meth:`svc.Answer.figure_png`: the first
    time ~1 s, then kept): in a lazy tab, only when the tab is opened."""
    solara.Image(answer.figure_png(), format="png", width="100%")
