"""How fast the app is usable, measured in headless Chromium against `make run` (the venv must exist already).

Prints, for the dataset the app opens with (Beauty unless LLMSEQ_DATASET says otherwise) and whatever is
trained in cache/:
* seconds from starting `make run` to the server's health check answering;
* seconds to a usable session builder (page drawn, search box and "random test session" button there);
* seconds to the first picks of every model shown by default (one per trained model; includes loading each
  model from cache/);
* the session-builder refresh with all of them: click "remove" on the session's last item, then (a) until the
  page is redrawn with the picks of every model that ranked within the page's 1 s wait, and (b) until every
  model's picks are shown (a generative model such as LLMSeqPrompt fills in later); median and range.

With ``--cold`` the app starts on an empty cache, as after a fresh clone, and the browser opens a link to a test
session in the session builder, which prepares the defaults by itself: it prints the seconds from `make run` to
the picks of the three baselines, to the picks of every default model (with LLMSeqSim, from the embeddings the
bundled dataset ships), and to the end of their evaluation.

Run it alone on the machine (e.g. under `flock /tmp/heavy.lock`): it measures wall-clock time.
"""

from __future__ import annotations

import re
import statistics
import sys
import tempfile
import time

from tools.serve import chromium, running_app, wait_until_healthy

REFRESHES = 6


def caption_after(page, previous: str, timeout: float = 120_000) -> str:
    """The picks caption once it differs from ``previous`` (i.e. the page has re-ranked)."""
    from playwright.sync_api import expect

    caption = page.get_by_text("model(s) ranked all")
    expect(caption).to_be_visible(timeout=timeout)
    if previous:
        expect(caption).not_to_have_text(previous, timeout=timeout)
    return caption.inner_text()


def main() -> None:
    from playwright.sync_api import expect

    cold = "--cold" in sys.argv
    env = {"LLMSEQ_CACHE": tempfile.mkdtemp(prefix="llmseq-cold-")} if cold else {}
    start = time.perf_counter()
    with running_app(env, command=["make", "run"]) as (url, process):
        healthy = wait_until_healthy(url, process)
        with chromium(height=1400) as page:
            if cold:  # the session builder prepares the defaults by itself: no click, no page switch
                page.goto(f"{url}/Session_Builder?test=0")
                page.wait_for_function("document.querySelectorAll('table.picks').length >= 3", timeout=900_000)
                baselines = time.perf_counter() - start
                expect(page.locator("table.picks")).to_have_count(4, timeout=900_000)
                every = time.perf_counter() - start
                print(f"cold cache: picks from popularity, SKNN and V-SKNN {baselines:.1f} s after `make run`, from "
                      f"every default model (+ LLMSeqSim) after {every:.1f} s", flush=True)
                page.get_by_role("link", name="Home", exact=True).click()  # the same browser session: its jobs
                expect(page.get_by_text(re.compile("evaluate the defaults on .* — done"))).to_be_visible(
                    timeout=900_000)
                print(f"cold cache: the defaults evaluated for the dashboards {time.perf_counter() - start:.1f} s "
                      "after `make run`", flush=True)
            page.goto(f"{url}/Session_Builder")
            random_button = page.get_by_role("button").filter(has_text="Random real test session")
            random_button.wait_for(timeout=120_000)
            page.get_by_label("Search the catalog by title (typos are fine)").wait_for()
            usable = time.perf_counter() - start
            clicked = time.perf_counter()
            random_button.click()
            text = caption_after(page, "")
            first_ready = time.perf_counter() - clicked
            n_models = int(text.split(" model(s)")[0].split("/")[1])
            expect(page.locator("table.picks")).to_have_count(n_models, timeout=300_000)
            first_all = time.perf_counter() - clicked
            length = int(text.split("session of ")[1].split(" ")[0])
            while length < REFRESHES + 1:  # a test session long enough to remove items from
                random_button.click()
                page.wait_for_timeout(1000)
                text = page.get_by_text("model(s) ranked all").inner_text()
                length = int(text.split("session of ")[1].split(" ")[0])
            expect(page.locator("table.picks")).to_have_count(n_models, timeout=300_000)
            ready, complete, models = [], [], []
            for _ in range(REFRESHES):
                remove = page.locator(f".st-key-drop-{length - 1} button").first
                expect(remove).to_be_enabled(timeout=60_000)
                begin = time.perf_counter()
                remove.click()
                length -= 1
                # checked at every animation frame (Playwright's expect polls at 100-1000 ms steps, which would
                # add up to half a second to what is measured)
                caption = page.wait_for_function(REDRAWN, arg=length, polling="raf", timeout=60_000)
                ready.append(time.perf_counter() - begin)
                models.append(caption.json_value().split(" model(s)")[0])
                page.wait_for_function(f"document.querySelectorAll('table.picks').length >= {n_models}",
                                       polling="raf", timeout=300_000)
                complete.append(time.perf_counter() - begin)
    print(f"server healthy after {healthy:.1f} s of `make run`")
    print(f"session builder usable {usable:.1f} s after `make run`")
    print(f"first session: picks drawn after {first_ready:.1f} s, all {n_models} models' picks after "
          f"{first_all:.1f} s (includes loading every model from cache/)")
    print(f"refresh (remove an item), page redrawn with the models ready within "
          f"{WAIT_SECONDS_NOTE}: median {statistics.median(ready):.2f} s (min {min(ready):.2f}, max {max(ready):.2f}); "
          f"models ready at that point: {', '.join(models)}")
    print(f"refresh until all {n_models} models' picks are shown: median {statistics.median(complete):.2f} s "
          f"(min {min(complete):.2f}, max {max(complete):.2f}, {len(complete)} clicks)")


REDRAWN = """n => { const text = [...document.querySelectorAll('[data-testid=stCaptionContainer]')]
  .map(e => e.innerText).find(t => t.includes(`for this session of ${n} item(s)`)); return text || false; }"""
WAIT_SECONDS_NOTE = "the page's wait (models that took under 0.3 s last time, at most 1 s)"


if __name__ == "__main__":
    main()
