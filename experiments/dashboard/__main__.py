"""``python -m experiments.dashboard [overrides]``: the dashboard on http://127.0.0.1:8765 (configs/dashboard.yaml).

    python -m experiments.dashboard                          # the default scenario, every core
    python -m experiments.dashboard scenario=lishui dashboard.port=9000
    python -m experiments.dashboard dashboard.host=0.0.0.0   # reachable from other machines (no login: it warns)

The model's keys set the pages' starting question (scenario, seeds, instruments' parameters);
the ``dashboard`` section says where and how to serve. A bad value is refused in one line,
exit code 2, before the server starts.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import warnings
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from experiments.dashboard.service import CACHE_MB, MAX_RUNS, MAX_WORK
from experiments.cli import app_main
from sim.core.config import ConfigError
from sim.core.schema import _c

# keys of the page's own question, and settings that change no number: not carried into its questions
PAGE_KEYS = ("scenario", "seeds", "regimes", "at_spend", "regime", "workers", "progress")


@dataclass
class DashboardConfig:
    host: str = _c("127.0.0.1", doc="address the server listens on (127.0.0.1: this machine only)")
    port: int = _c(8765, ge=1, le=65535, doc="port the server listens on")
    cache: int = _c(32, ge=1, le=10000, doc="answers kept, so a question asked again is answered at once")
    cache_mb: float = _c(CACHE_MB, gt=0, le=1e6, doc="megabytes of frames the answers kept may hold: bounds the "
                         "server's memory (a default comparison's answer ~83 MB; the newest is always kept)")
    answer_start: bool = _c(True, doc="answer the pages' starting question before serving, so the first page shows "
                            "it at once (the default comparison: ~9 s of 2 cores at start)")
    page_timeout: float = _c(30.0, ge=1, le=86400, doc="seconds a page whose connection dropped without closing (a "
                             "crashed browser, a lost network, a laptop asleep) is kept for its return; then its "
                             "question is given up and its answers freed (Solara's own default keeps it 24 h)")
    sweeps: str = _c("multirun", doc="folder the Sweep page looks in for collected sweeps (sweep.parquet)")
    calibrations: str = _c("calibration", doc="folder the Calibration page looks in for calibrations")
    saved: str = _c("outputs/saved_questions", doc="folder of the Compare page's named saved questions "
                    "(saved_questions.json, the only file the dashboard writes there)")
    max_runs: int = _c(MAX_RUNS, ge=1, le=10**6, doc="runs a question may take (regimes x seeds, twice at equal spend)")
    max_work: float = _c(MAX_WORK, gt=0, le=1e13, doc="model steps a question may take (runs x "
                         "sim.core.population.run_work): 5e9 is ~2 minutes of 2 cores")
    allowed_hosts: list = _c([], doc="more names the pages may be asked for (Host header), e.g. a reverse proxy's: "
                             "name (any port) or name:port")


def base_overrides(engine: str, task: Optional[list[str]] = None) -> list[str]:
    """The command line's model overrides (``task``; default Hydra's) that the pages start from (the engine first);
    the seeds typed there, else ``configs/dashboard.yaml``'s (the app's model config is composed with one seed: an
    app runs its own replicates, :func:`experiments.cli.split`)."""
    from experiments.dashboard.service import starting_seeds

    if task is None:
        from hydra.core.hydra_config import HydraConfig

        task = list(HydraConfig.get().overrides.task)
    keep = [o for o in task if not o.lstrip("+~").startswith(("dashboard.", "dashboard=", "hydra."))
            and o.lstrip("+~").split("=", 1)[0] not in PAGE_KEYS + ("engine",)]
    page = [o for o in task if o.lstrip("+~").split("=", 1)[0] in ("scenario", "seeds", "regimes", "at_spend")]
    if not any(o.lstrip("+~").split("=", 1)[0] == "seeds" for o in page):
        page.append(f"seeds={starting_seeds()}")
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


LOOPBACK = ("127.0.0.1", "localhost", "::1")
WILDCARD = ("0.0.0.0", "::", "")
_HOST_NAME = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::[0-9]{1,5})?")


def _split_host(text: str) -> tuple[str, Optional[int]]:
    """``name``, ``name:port``, ``[::1]:port`` -> (name lower-cased, without brackets or a final dot; port or None)."""
    text = text.strip()
    name, port = text, None
    if text.startswith("["):
        name, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else None
    elif text.count(":") == 1:
        name, port = text.split(":")
    return name.lower().rstrip("."), (int(port) if port and port.isdigit() else None)


class HostGuard:
    """ASGI middleware: an HTTP request or a WebSocket handshake whose ``Host`` is not an allowed host gets 400
    (a page of another site reached through DNS rebinding); a WebSocket whose ``Origin`` is present and not
    ``http(s)://<an allowed host>`` is refused, 403 (another site's page opening the kernel's socket).

    Allowed: the served host (its name at its port; no port: the default), its loopback forms when it serves on
    loopback, this machine's names and loopback when it serves on every address (0.0.0.0), and
    ``dashboard.allowed_hosts`` (``name``: any port; ``name:port``)."""

    def __init__(self, app, host: str, port: int, extra: list[str] = ()):
        import socket

        self.app, self.port = app, int(port)
        names = {_split_host(host)[0]}
        if host in WILDCARD:
            names = set(LOOPBACK) | {socket.gethostname().lower(), socket.getfqdn().lower()}
            try:  # its addresses too
                names |= set(socket.gethostbyname_ex(socket.gethostname())[2])
            except OSError:
                pass
        elif is_loopback(host):
            names |= set(LOOPBACK)
        self.names = names
        self.extra = [_split_host(e) for e in extra]

    def allowed(self, text: str) -> bool:
        if not _HOST_NAME.fullmatch(text or ""):
            return False
        name, port = _split_host(text)
        if name in self.names and port in (None, self.port):
            return True
        return any(name == n and (p is None or p == port) for n, p in self.extra)

    def origin_allowed(self, origin: str) -> bool:
        from urllib.parse import urlsplit

        try:
            url = urlsplit(origin)
        except ValueError:
            return False
        return url.scheme in ("http", "https") and not url.path.strip("/") and self.allowed(url.netloc)

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        websocket = scope["type"] == "websocket"
        if not self.allowed(headers.get("host", "")):
            return await self._refuse(scope, send, 400, b"Bad Request: this host name is not served here "
                                      b"(dashboard.allowed_hosts)\n")
        if websocket and "origin" in headers and not self.origin_allowed(headers["origin"]):
            return await self._refuse(scope, send, 403, b"Forbidden: a page of another origin\n")
        return await self.app(scope, receive, send)

    @staticmethod
    async def _refuse(scope, send, status: int, body: bytes) -> None:
        head = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": status, "headers": head})
            await send({"type": "http.response.body", "body": body})
        elif "websocket.http.response" in scope.get("extensions", {}):  # the handshake answered with a status
            await send({"type": "websocket.http.response.start", "status": status, "headers": head})
            await send({"type": "websocket.http.response.body", "body": body})
        else:
            await send({"type": "websocket.close", "code": 1008})  # the server answers the handshake 403


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine only (127.x, ::1, localhost)."""
    import ipaddress

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_warning(host: str) -> Optional[str]:
    """The line printed at start when the pages are served beyond this machine (they have no login)."""
    if is_loopback(host):
        return None
    return (f"dashboard: warning: dashboard.host = {host} is reachable from other machines and the pages have no "
            "authentication: anyone who reaches the port runs questions; put it behind a proxy with a login "
            "(docs/how-to/dashboard.md)")


def check_hosts(hosts) -> list[str]:
    """``dashboard.allowed_hosts``: a list of host names (name or name:port)."""
    for h in hosts:
        if not isinstance(h, str) or not _HOST_NAME.fullmatch(h):
            raise ConfigError(f"dashboard.allowed_hosts = {list(hosts)!r}: {h!r} is not a host name (a name or "
                              "name:port, e.g. dash.example.org)")
    return list(hosts)


def serve(cfg, own: DashboardConfig, out: Path) -> None:
    # Solara reads its settings from the environment once, when first imported (the pages' modules import it):
    # set them before anything imports it, then on its settings objects too, in case something already had
    os.environ.update(SOLARA_APP="experiments.dashboard.pages", SERVER_NAME=own.host, SERVER_PORT=str(own.port),
                      SOLARA_TELEMETRY_MIXPANEL_ENABLE="False", SOLARA_CHECK_VERSION="False",
                      SOLARA_THEME_SHOW_BANNER="False",  # no "runs on Solara" badge over the tables
                      SOLARA_KERNEL_CULL_TIMEOUT=f"{own.page_timeout:g}s")
    import solara.server.settings as solara_settings
    import uvicorn

    solara_settings.kernel.cull_timeout = f"{own.page_timeout:g}s"  # a page gone without closing: given up then
    solara_settings.theme.show_banner = False

    from experiments.dashboard import state
    from experiments.dashboard.service import Service

    check_port(own.host, own.port)
    hosts = check_hosts(own.allowed_hosts)
    if host_warning(own.host):
        print(host_warning(own.host), file=sys.stderr, flush=True)
    service = Service(base_overrides(cfg.engine), workers=cfg.workers, cache=own.cache, cache_mb=own.cache_mb,
                      max_runs=own.max_runs,
                      max_work=own.max_work)
    service.validate([])  # the starting question is valid (as the command line, and within the limits)
    print(f"dashboard: starting {cfg.workers} worker processes (the first start compiles the kernels) ...", flush=True)
    if own.answer_start:
        print(f"dashboard: answering the starting question ({service.size([])[0]:,} runs) ...", flush=True)
    service.start(answer_start=own.answer_start)
    state.SERVICE = service
    state.SETTINGS.update(sweeps=own.sweeps, calibrations=own.calibrations, saved=own.saved)
    warnings.filterwarnings("ignore", message="Cookies with samesite=none")  # plain http on localhost: lax is right
    for name in ("solara", "reacton", "MESA", "numba"):  # they log every render and step at INFO
        logging.getLogger(name).setLevel(logging.WARNING)
    url = f"http://{own.host}:{own.port}/"
    print(f"dashboard: serving {url} (Ctrl-C stops it)", flush=True)
    try:
        from solara.server.starlette import app  # after SOLARA_APP is set: it loads the pages

        uvicorn.run(HostGuard(app, own.host, own.port, hosts), host=own.host, port=own.port, log_level="warning")
    finally:
        service.close()


main = app_main("dashboard", "dashboard", DashboardConfig, serve, provenance=False, lock=False)  # writes nothing

if __name__ == "__main__":
    sys.exit(main())
