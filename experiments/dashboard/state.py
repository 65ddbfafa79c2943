"""What every page shares: the service answering questions, and the server's settings."""

from __future__ import annotations

import threading
from typing import Optional

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
