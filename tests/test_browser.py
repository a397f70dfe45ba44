"""End to end in a real browser: Debian's Chromium (installed by `make browser`), driven by Playwright, against
`streamlit run app.py` on a free port with a fresh cache holding two fast models trained on MovieLens 100K.

It builds a session with the search box, checks that every trained model has its column of picks, and saves a
screenshot to tests/artifacts/session_builder.png.
"""

import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from conftest import ROOT

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = ROOT / "tests" / "artifacts"

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                reason="Debian's chromium is not installed: run `make browser`")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_healthy(url: str, process: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited early: {process.stdout.read()}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"streamlit did not answer at {url} within {timeout:.0f} s")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    cache = tmp_path_factory.mktemp("browser-cache")
    env = {**os.environ, "LLMSEQ_CACHE": str(cache), "LLMSEQ_DATASET": "ml-100k", "HF_HUB_OFFLINE": "1"}
    subprocess.run([sys.executable, "-m", "core", "train", "--dataset", "ml-100k", "--models", "popularity,vsknn"],
                   cwd=ROOT, env=env, check=True, capture_output=True)
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port), "--server.headless", "true",
         "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://localhost:{port}"
    try:
        wait_until_healthy(url, process)
        yield url, env
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_build_a_session_and_see_every_trained_model(server):
    from playwright.sync_api import expect, sync_playwright

    url, _ = server
    expected = ["popularity", "vsknn"]  # what the fixture trained into the server's (otherwise empty) cache
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.goto(f"{url}/Session_Builder")
            search = page.get_by_label("Search the catalog by title (typos are fine)")
            search.fill("star wars")
            search.press("Enter")
            page.locator("[class*='st-key-add-'] button").first.click()
            expect(page.get_by_text("Session · 1 item")).to_be_visible(timeout=30_000)
            for name in expected:  # one column of picks per trained model
                expect(page.get_by_role("heading", name=name, exact=True)).to_be_visible(timeout=30_000)
            expect(page.locator("table.picks")).to_have_count(len(expected))
            expect(page.locator("table.picks").first.locator("tr")).to_have_count(10)
            page.get_by_role("button").filter(has_text="Random real test session").click()
            expect(page.get_by_text("True next item:")).to_be_visible(timeout=30_000)
            page.mouse.move(0, 0)  # no tooltip in the picture
            page.screenshot(path=str(ARTIFACTS / "session_builder.png"), full_page=True)
        finally:
            browser.close()
    assert (ARTIFACTS / "session_builder.png").stat().st_size > 10_000
