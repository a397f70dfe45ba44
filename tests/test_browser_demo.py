"""The Demo page in a real browser (Debian's Chromium via Playwright) against the shared app server of
conftest (MovieLens 100K with popularity, V-SKNN and LLMSeqSim trained): a session with its picks and their
"why", the next screen, and a screenshot to tests/artifacts/demo.png."""

import os
import re

import pytest
from conftest import ROOT

from tools.serve import CHROMIUM, chromium, wait_for_idle

ARTIFACTS = ROOT / "tests" / "artifacts"

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                reason="Debian's chromium is not installed: run `make browser`")


def test_demo_shows_a_session_with_picks_and_a_why_then_the_next(server):
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(exist_ok=True)
    with chromium(width=1400, height=1600) as page:
        page.goto(f"{server}/Demo")
        # the first open chooses the sessions (every model ranks 400 test sessions), then draws the first one
        try:
            expect(page.get_by_text("What they chose next")).to_be_visible(timeout=120_000)
        except AssertionError:  # what the page showed instead, for whoever reads the failure
            page.screenshot(path=str(ARTIFACTS / "failed-demo.png"))
            raise AssertionError(f"no demo session at {page.url}: {page.inner_text('body')[:1500]}") from None
        expect(page.get_by_text(re.compile(r"^Session 1 of [2-5]$"))).to_be_visible()
        models = page.locator(".demo .model")
        expect(models.first.locator("h3")).to_have_text("llmseqsim")  # the one LLM-based model comes first
        count = models.count()
        assert 2 <= count <= 3
        for i in range(count):  # every shown model: 5 picks, each with a reason, and a verdict on the true item
            expect(models.nth(i).locator("li")).to_have_count(5)
            expect(models.nth(i).locator(".why")).to_have_count(5)
            verdict = re.compile(r"Found it at rank \d+|Not in its top 10")
            expect(models.nth(i).locator(".verdict")).to_have_text(verdict)
        expect(models.first.locator(".why").first).to_have_text(re.compile(r"^resembles “.+” \(cosine -?\d\.\d\d\)$"))
        # the fixture trains without evaluating: each shown model's headline figures, or that it has none yet
        figures = r"(NDCG@20 \d\.\d{4}, HR@20 \d\.\d{4}|not evaluated yet)"
        expect(page.locator(".demo .metrics")).to_have_text(re.compile(
            rf"^Over all [\d,]+ test sessions: llmseqsim: {figures}( · \w+: {figures}){{1,2}}$"))
        first = page.locator(".demo .target").inner_text()
        page.mouse.move(0, 0)
        page.screenshot(path=str(ARTIFACTS / "demo.png"))
        page.get_by_role("button", name="Next").click()
        wait_for_idle(page)
        expect(page.get_by_text(re.compile(r"^Session 2 of [2-5]$"))).to_be_visible(timeout=30_000)
        # another session (each has its own target); "Session 2" is drawn before the screen below it is replaced,
        # and while it is, the old screen and the new one can both be on the page: wait for one target, a new one
        page.wait_for_function("""first => {
            const shown = [...document.querySelectorAll('.demo .target')].map(e => e.innerText);
            return shown.length === 1 && shown[0] !== first;
        }""", arg=first, timeout=30_000)
        expect(page.get_by_role("button", name="Previous")).to_be_enabled()
    assert (ARTIFACTS / "demo.png").stat().st_size > 10_000
