"""Many visitors on one app server at once: errors and latency of the session builder under load.

Starts the app on 127.0.0.1 (a free port; nothing listens beyond this machine) and opens ``--sessions``
browser sessions in one headless Chromium (each its own context: its own cookies and Streamlit session). For
``--seconds``, every visitor keeps clicking "Random real test session" and waits until the page shows every
shown model's picks for the new session. Prints, over all clicks:

* errors: clicks after which the page showed an exception, a ``CancelledError`` or a model's "could not rank",
  or that did not finish within ``--timeout`` seconds;
* median and 90th-percentile latency from the click to every model's picks drawn.

The models are whatever is trained in the cache for the dataset; with none, popularity, SKNN and V-SKNN are
trained first (seconds on Beauty). Usage:

    .venv/bin/python bench/load.py                      # 10 visitors, 60 s, Beauty
    .venv/bin/python bench/load.py --sessions 5 --seconds 30 --dataset ml-100k

It measures wall-clock time on a machine shared by the server, Chromium and 10 pages: run it alone.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from pathlib import Path

from tools.serve import CHROMIUM, CHROMIUM_ARGS, running_app, wait_until_healthy

ROOT = Path(__file__).resolve().parent.parent

ERRORS = "[data-testid='stException'], [data-testid='stAlertContentError']"


def ensure_models(dataset: str) -> None:
    from core import data
    from core.trained import trained_models

    if not trained_models(data.load(dataset)):
        print(f"no model is trained on {dataset}: training popularity, sknn, vsknn first", flush=True)
        subprocess.run([sys.executable, "-m", "core", "train", "--dataset", dataset, "--models",
                        "popularity,sknn,vsknn"], cwd=ROOT, check=True)


async def visitor(browser, url: str, ends: float, timeout: float, latencies: list, errors: list) -> None:
    context = await browser.new_context(viewport={"width": 1400, "height": 1200})
    page = await context.new_page()
    try:
        await page.goto(f"{url}/Session_Builder", timeout=timeout * 1000)
        button = page.get_by_role("button").filter(has_text="Random real test session")
        await button.wait_for(timeout=timeout * 1000)
        previous = ""
        while time.monotonic() < ends:
            start = time.monotonic()
            await button.click(timeout=timeout * 1000)
            try:
                # every shown model has ranked the new session: "n/n model(s) ranked ... session of L item(s)"
                await page.wait_for_function(
                    """previous => {
                        const caption = [...document.querySelectorAll('p')]
                            .find(p => p.innerText.includes('model(s) ranked all'));
                        if (!caption || caption.innerText === previous) return false;
                        const [done, shown] = caption.innerText.split(' ')[0].split('/');
                        return done === shown;
                    }""", arg=previous, timeout=timeout * 1000, polling=50)
            except Exception as err:  # noqa: BLE001 (a timeout is one error of this click)
                caption = await page.evaluate(
                    "() => ([...document.querySelectorAll('p')].find(p => p.innerText.includes('model(s) ranked all'))"
                    " || {innerText: '(no picks caption)'}).innerText")
                errors.append(f"no picks within {timeout:.0f} s ({type(err).__name__}; the page shows: {caption})")
                previous = caption
                continue
            latencies.append(time.monotonic() - start)
            text = await page.locator("body").inner_text()
            if await page.locator(ERRORS).count() or "CancelledError" in text or "could not rank" in text:
                errors.append(text[:200])
            previous = await page.evaluate(
                "() => [...document.querySelectorAll('p')]"
                ".find(p => p.innerText.includes('model(s) ranked all')).innerText")
    finally:
        await context.close()


async def drive(url: str, sessions: int, seconds: float, timeout: float) -> tuple[list, list]:
    from playwright.async_api import async_playwright

    latencies: list[float] = []
    errors: list[str] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        ends = time.monotonic() + seconds
        await asyncio.gather(*(visitor(browser, url, ends, timeout, latencies, errors) for _ in range(sessions)))
        await browser.close()
    return latencies, errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10, help="browser sessions at once (default 10)")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long they keep clicking (default 60)")
    parser.add_argument("--dataset", default="beauty", help="bundled name or folder (default beauty)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds a click may take before it counts "
                                                                      "as an error (default 60)")
    args = parser.parse_args()
    ensure_models(args.dataset)
    env = {"LLMSEQ_DATASET": args.dataset, "STREAMLIT_SERVER_ADDRESS": "127.0.0.1"}
    with running_app(env) as (url, process):
        wait_until_healthy(url.replace("localhost", "127.0.0.1"), process)
        url = url.replace("localhost", "127.0.0.1")
        latencies, errors = asyncio.run(drive(url, args.sessions, args.seconds, args.timeout))
    clicks = len(latencies) + sum(1 for e in errors if e.startswith("no picks"))
    print(f"{args.sessions} sessions for {args.seconds:.0f} s on {args.dataset}: {clicks} clicks, "
          f"{len(errors)} error(s)")
    if latencies:
        ordered = sorted(latencies)
        p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
        print(f"latency click -> every model's picks: median {statistics.median(ordered):.2f} s, p90 {p90:.2f} s, "
              f"max {ordered[-1]:.2f} s")
    for error in errors[:5]:
        print(f"  error: {error}")


if __name__ == "__main__":
    main()
