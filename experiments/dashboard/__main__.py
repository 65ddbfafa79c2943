"""``python -m experiments.dashboard [overrides]``: the dashboard on http://127.0.0.1:8765 (configs/dashboard.yaml).

    python -m experiments.dashboard                          # the default scenario, every core
    python -m experiments.dashboard scenario=lishui dashboard.port=9000
    python -m experiments.dashboard dashboard.host=0.0.0.0   # reachable from other machines (no login: a trusted network)

The model's keys set the pages' starting question (scenario, seeds, instruments' parameters);
the ``dashboard`` section says where and how to serve. A bad value is refused in one line,
exit code 2, before the server starts.
"""

from __future__ import annotations

import errno
import logging
import os
import warnings
import sys
from dataclasses import dataclass
from pathlib import Path

from experiments.explore_app import app_main
from sim.config import ConfigError
from sim.schema import _c

# keys of the page's own question, and settings that change no number: not carried into its questions
PAGE_KEYS = ("scenario", "seeds", "regimes", "at_spend", "regime", "workers", "progress")


@dataclass
class DashboardConfig:
    host: str = _c("127.0.0.1", doc="address the server listens on (127.0.0.1: this machine only)")
    port: int = _c(8765, ge=1, le=65535, doc="port the server listens on")
    cache: int = _c(32, ge=1, le=10000, doc="answers kept, so a question asked again is answered at once")
    sweeps: str = _c("multirun", doc="folder the Sweep page looks in for collected sweeps (sweep.parquet)")
    calibrations: str = _c("calibration", doc="folder the Calibration page looks in for calibrations")


def base_overrides(engine: str) -> list[str]:
    """The command line's model overrides that the pages start from (the engine first)."""
    from hydra.core.hydra_config import HydraConfig

    task = list(HydraConfig.get().overrides.task)
    keep = [o for o in task if not o.lstrip("+~").startswith(("dashboard.", "dashboard=", "hydra."))
            and o.lstrip("+~").split("=", 1)[0] not in PAGE_KEYS + ("engine",)]
    page = [o for o in task if o.lstrip("+~").split("=", 1)[0] in ("scenario", "seeds", "regimes", "at_spend")]
    return [f"engine={engine}"] + keep + page


def check_port(host: str, port: int) -> None:
    """Refuse, before the workers start, an address the server could not listen on."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as e:
        raise ConfigError(f"dashboard.host = {host!r}: not an address of this machine ({e.strerror or e})") from None
    family, kind, proto, _, addr = infos[0]
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(addr)
        except OSError as e:
            if e.errno == errno.EADDRNOTAVAIL:  # the address is not one of this machine's
                raise ConfigError(f"dashboard.host = {host!r}: not an address of this machine ({e.strerror})") from None
            raise ConfigError(f"dashboard.port = {port}: cannot listen on {host}:{port} ({e.strerror or e})") from None


def serve(cfg, own: DashboardConfig, out: Path) -> None:
    import uvicorn

    from experiments.dashboard import pages
    from experiments.dashboard.service import Service

    check_port(own.host, own.port)
    service = Service(base_overrides(cfg.engine), workers=cfg.workers, cache=own.cache)
    service.config([])  # the starting question is valid (it was, as the command line: a check, not a surprise)
    print(f"dashboard: starting {cfg.workers} worker processes (the first start compiles the kernels) ...", flush=True)
    service.start()
    pages.SERVICE = service
    pages.SETTINGS.update(sweeps=own.sweeps, calibrations=own.calibrations)
    warnings.filterwarnings("ignore", message="Cookies with samesite=none")  # plain http on localhost: lax is right
    for name in ("solara", "reacton", "MESA", "numba"):  # they log every render and step at INFO
        logging.getLogger(name).setLevel(logging.WARNING)
    os.environ.update(SOLARA_APP="experiments.dashboard.pages", SERVER_NAME=own.host, SERVER_PORT=str(own.port),
                      SOLARA_TELEMETRY_MIXPANEL_ENABLE="False", SOLARA_CHECK_VERSION="False")
    url = f"http://{own.host}:{own.port}/"
    print(f"dashboard: serving {url} (Ctrl-C stops it)", flush=True)
    try:
        uvicorn.run("solara.server.starlette:app", host=own.host, port=own.port, log_level="warning")
    finally:
        service.close()


main = app_main("dashboard", "dashboard", DashboardConfig, serve, provenance=False, lock=False)  # writes nothing

if __name__ == "__main__":
    sys.exit(main())
