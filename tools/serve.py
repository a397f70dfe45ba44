"""Run the app in the background and open it in headless Chromium: shared by the browser test, the screenshot
script and the app benchmark (no streamlit import here; this drives the app from outside)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"  # Debian's, installed by `make browser`; Playwright never downloads one
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_healthy(url: str, process: subprocess.Popen, timeout: float = 120.0) -> float:
    """Seconds until the server answers its health check; raises if it exits or times out."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if process.poll() is not None:
            raise RuntimeError(f"the app exited early: {process.stdout.read() if process.stdout else ''}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return time.perf_counter() - start
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"the app did not answer at {url} within {timeout:.0f} s")


@contextlib.contextmanager
def running_app(env: dict[str, str] | None = None, command: list[str] | None = None,
                port: int | None = None) -> Iterator[tuple[str, subprocess.Popen]]:
    """``streamlit run app.py`` (or ``command``, which must honour STREAMLIT_SERVER_PORT) on a free port."""
    port = port or free_port()
    full_env = {**os.environ, **(env or {}), "STREAMLIT_SERVER_PORT": str(port), "HF_HUB_OFFLINE": "1"}
    command = command or [sys.executable, "-m", "streamlit", "run", "app.py", "--server.fileWatcherType", "none"]
    process = subprocess.Popen(command, cwd=ROOT, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    try:
        yield f"http://localhost:{port}", process
    finally:
        stop_group(process, f"http://localhost:{port}")


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1):
            return True
    except OSError:
        return False


def stop_group(process: subprocess.Popen, url: str, grace: float = 15.0) -> None:
    """SIGTERM to the whole process group (`make run` starts streamlit as its child), SIGKILL after ``grace``
    seconds if the leader or the server is still there."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and (process.poll() is None or _answers(url)):
        time.sleep(0.3)
    if process.poll() is None or _answers(url):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


@contextlib.contextmanager
def chromium(width: int = 1400, height: int = 1100) -> Iterator[Any]:
    """A Playwright page in Debian's headless Chromium."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport={"width": width, "height": height})
        finally:
            browser.close()


def wait_for_idle(page, timeout: float = 60_000) -> None:
    """Until Streamlit has finished the current script run (its "running" indicator is gone)."""
    page.wait_for_timeout(150)
    page.locator("[data-testid='stStatusWidget']").wait_for(state="hidden", timeout=timeout)


def open_page(page, name: str, attempts: int = 3, timeout: float = 60_000) -> None:
    """Click the sidebar link `name` until the browser is on that page.

    A finished job or a fragment can rerun the page just as the link is clicked; Streamlit then redraws the
    sidebar and the click is lost (seen under a loaded CI machine). The URL says whether it landed.
    Raises playwright's TimeoutError when `attempts` clicks all failed to switch pages.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    def last_part(url: str) -> str:
        return url.split("?")[0].rstrip("/").rsplit("/", 1)[-1]

    link = page.get_by_role("link", name=name, exact=True)
    path = last_part(link.get_attribute("href", timeout=timeout))
    for attempt in range(attempts):
        wait_for_idle(page, timeout)
        link.click(timeout=timeout)
        try:
            page.wait_for_url(lambda url: last_part(url) == path, timeout=timeout / attempts)
            return
        except PlaywrightTimeout:
            if attempt == attempts - 1:
                raise
