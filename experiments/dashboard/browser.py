"""Start the dashboard and drive it in Debian's Chromium (Playwright): the browser test and the README's screenshots.

    python -m experiments.dashboard.browser [out folder] [overrides]   # the README's screenshots of every page

The screenshots are of the default scenario's Compare page (at the dashboard's seeds), the One run page after 24
months, and the Sweep and Calibration pages on an example sweep and calibration made for them (~5 minutes in all
on 2 cores).

Chromium is the system's (``/usr/bin/chromium``, Debian's package ``chromium``; ``CHROMIUM`` names
another): Playwright drives it and downloads no browser of its own.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# the flags this closed machine needs: no background connections to Google's hosts, no GPU, no sandbox as root
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


def chromium_path() -> str | None:
    path = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    return path if path and Path(path).exists() else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def dashboard(*overrides: str, port: int | None = None, timeout: float = 600, log: Path | None = None,
              process: bool = False):
    """``python -m experiments.dashboard`` in a subprocess; yields its URL once it serves (with ``process``, the URL
    and the :class:`subprocess.Popen`, e.g. to measure its memory), stops it after."""
    port = port or free_port()
    log = log or Path(os.devnull)
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "experiments.dashboard", *overrides, f"dashboard.port={port}"],
                                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, text=True)
        try:
            url = f"http://127.0.0.1:{port}/"
            deadline = time.monotonic() + timeout
            while True:
                if proc.poll() is not None:
                    text = Path(log).read_text() if log != Path(os.devnull) else ""
                    raise RuntimeError(f"the dashboard exited with {proc.returncode}: {text[-2000:]}")
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the dashboard did not serve {url} within {timeout:.0f} s")
                time.sleep(0.5)
            yield (url, proc) if process else url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.contextmanager
def chromium(width: int = 1500, height: int = 1100):
    """A page of a headless Chromium (the system's), with downloads allowed."""
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    if path is None:
        raise FileNotFoundError("no Chromium: install Debian's package chromium (tests/install.sh does)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(viewport={"width": width, "height": height}, accept_downloads=True)
            yield context.new_page()
        finally:
            browser.close()


def _run(*args: str, cwd: Path, timeout: float = 1800) -> None:
    p = subprocess.run([sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(f"python -m {' '.join(args)} exited with {p.returncode}: {(p.stdout + p.stderr)[-2000:]}")


def example_sweep(folder: Path, *overrides: str) -> Path:
    """A real sweep of the broker reward's rate and cap (2 x 2 points x 4 seeds, small runs of 36 months: long enough
    for conversions), collected: what the Sweep page opens. Returns its root (``folder/multirun``)."""
    _run("experiments.run", "-m", "regime=broker_reward", "+grid.broker_reward.rate=[0.005,0.015]",
         "+grid.broker_reward.cap=[100000,300000]", "seeds=4", "scenario.firms.n=300", "scenario.universities.n=3",
         "scenario.months=36", "progress=false", *overrides, cwd=folder)
    (sweep,) = (folder / "multirun").iterdir()
    _run("experiments.collect", str(sweep), cwd=folder)
    return folder / "multirun"


def example_calibration(folder: Path, workers: int = 2) -> Path:
    """A real, small calibration on the reported targets (three parameters, 100 particles, 3 generations: a few
    minutes of 2 cores): what the Calibration page opens. Returns its root (``folder/calibration``)."""
    _run("experiments.calibrate", "screen.fit=[scenario.firms.prior_success,scenario.firms.self_search_prob,"
         "scenario.universities.reservation_share]", "abc.population=100", "abc.generations=3", "predictive_draws=8",
         f"workers={workers}", "scenario_dir=none", "progress=false",
         f"hydra.run.dir={folder / 'calibration' / 'example'}", cwd=folder, timeout=3600)
    return folder / "calibration"


def screenshots(out: Path, *overrides: str, data: Path | None = None) -> list[Path]:
    """A screenshot of each page, on the config of ``overrides``; the Sweep and Calibration pages open an example
    sweep and calibration made in ``data`` (a temporary folder if None)."""
    import tempfile

    out.mkdir(parents=True, exist_ok=True)
    shots = []
    with contextlib.ExitStack() as stack:
        data = data or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        sweeps, calibrations = example_sweep(data), example_calibration(data)
        url = stack.enter_context(dashboard(*overrides, f"dashboard.sweeps={sweeps}",
                                            f"dashboard.calibrations={calibrations}"))
        page = stack.enter_context(chromium())
        page.goto(url)
        page.locator(".tt-headline").wait_for(timeout=120_000)
        shots.append(out / "compare.png")
        page.screenshot(path=shots[-1], full_page=False)
        page.goto(url + "one-run")
        step = page.locator(".tt-step")
        step.wait_for(timeout=60_000)
        for month in range(24):  # numbered as the series numbers them: 0 first
            step.click()
            page.get_by_text(f"month {month} of 0–").wait_for(timeout=60_000)
        shots.append(out / "one_run.png")
        page.screenshot(path=shots[-1])
        for name, ready in (("sweep", ".tt-sweep table"), ("calibration", ".tt-fit table")):
            page.goto(url + name)
            page.locator(ready).first.wait_for(timeout=60_000)
            page.wait_for_timeout(1000)  # the figures below the table
            shots.append(out / f"{name}.png")
            page.screenshot(path=shots[-1])
    return shots


if __name__ == "__main__":
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "experiments" / "dashboard" / "screenshots"
    for path in screenshots(folder, *sys.argv[2:]):
        print(f"wrote {path}")
