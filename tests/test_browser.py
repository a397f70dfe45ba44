"""End to end in a real browser: Debian's Chromium (installed by `make browser`), driven by Playwright, against
`streamlit run app.py` on a free port with a fresh cache holding two fast models trained on MovieLens 100K.

It builds a session with the search box, checks that every trained model has its column of picks, and saves a
screenshot to tests/artifacts/session_builder.png.
"""

import os
import subprocess
import sys

import pytest

from conftest import ROOT
from ui.serve import CHROMIUM, chromium, running_app, wait_until_healthy

ARTIFACTS = ROOT / "tests" / "artifacts"

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                reason="Debian's chromium is not installed: run `make browser`")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    cache = tmp_path_factory.mktemp("browser-cache")
    env = {"LLMSEQ_CACHE": str(cache), "LLMSEQ_DATASET": "ml-100k"}
    subprocess.run([sys.executable, "-m", "core", "train", "--dataset", "ml-100k", "--models", "popularity,vsknn"],
                   cwd=ROOT, env={**os.environ, **env}, check=True, capture_output=True)
    with running_app(env) as (url, process):
        wait_until_healthy(url, process)
        yield url


def test_build_a_session_and_see_every_trained_model(server):
    from playwright.sync_api import expect

    expected = ["popularity", "vsknn"]  # what the fixture trained into the server's (otherwise empty) cache
    ARTIFACTS.mkdir(exist_ok=True)
    with chromium() as page:
        page.goto(f"{server}/Session_Builder")
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
        page.wait_for_timeout(500)
        page.screenshot(path=str(ARTIFACTS / "session_builder.png"))
    assert (ARTIFACTS / "session_builder.png").stat().st_size > 10_000
