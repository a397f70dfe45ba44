"""Screenshots of every page for docs/ (small PNGs), taken in headless Chromium against the app on Beauty with
whatever is trained in cache/ (run "Prepare the defaults" or `python -m core evaluate` first).

Before starting the app it computes the UMAP maps the embedding page shows (cached under cache/projections,
so the app reads them); then it drives the app like a user: a real test session whose true next item some
model found, the map coloured by topic with a searched item ringed and its neighbours, the metrics, a short
training job, the demo and the findings.

    .venv/bin/python bench/screenshots.py            # writes docs/*.png
    .venv/bin/python bench/screenshots.py --pca      # a quick preview without computing UMAP maps
    .venv/bin/python bench/screenshots.py --only findings,metrics   # just these pictures
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from tools.serve import chromium, running_app, wait_for_idle, wait_until_healthy

ROOT = Path(__file__).resolve().parent.parent

DOCS = ROOT / "docs"
WIDTH = 1400
SESSION_MODELS = ("vsknn", "sasrec", "llm2sasrec", "llmseqsim")  # the README picture: baselines next to LLM ones


def precompute_maps(dataset_name: str) -> None:
    from core import data
    from core.embeddings import item_embeddings
    from core.models import load as load_saved
    from core.projection import project
    from core.trained import trained_models

    dataset = data.load(dataset_name)
    project(item_embeddings(dataset.catalog), "umap")
    for saved in trained_models(dataset):  # the learned map the embedding page shows first
        if saved.name == "llm2sasrec" and not saved.changed:
            learned = load_saved(saved.folder).learned_item_vectors()
            if learned is not None:
                project(learned, "umap")
            break


def shrink(path: Path) -> None:
    """256 colours: a third of the bytes, and screenshots of a UI lose nothing visible."""
    from PIL import Image

    image = Image.open(path).convert("RGB")
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(path, optimize=True)


def shot(page, name: str, height: int) -> None:
    page.set_viewport_size({"width": WIDTH, "height": height})
    page.mouse.move(60, height - 60, steps=5)  # off every chart: no hover label in the picture
    wait_for_idle(page)  # the page has finished running (no "Stop" button, every element drawn)
    page.wait_for_timeout(1500)
    path = DOCS / f"{name}.png"
    page.screenshot(path=str(path))
    shrink(path)
    print(f"{path.relative_to(ROOT)}: {path.stat().st_size // 1024} KB")


def open_page(page, title: str) -> None:
    page.get_by_role("link", name=title, exact=True).click()
    page.wait_for_timeout(2500)


def main() -> None:
    from playwright.sync_api import expect

    only = sys.argv[sys.argv.index("--only") + 1].split(",") if "--only" in sys.argv else None

    def wanted(name: str) -> bool:
        return only is None or name in only

    DOCS.mkdir(exist_ok=True)
    if "--pca" not in sys.argv and wanted("embedding_space"):  # --pca: quick preview, the maps fall back to PCA
        precompute_maps("beauty")
    with running_app({"LLMSEQ_DATASET": "beauty"}) as (url, process):
        wait_until_healthy(url, process)
        with chromium(WIDTH, 1000) as page:
            page.goto(url)
            expect(page.get_by_text("3 · Models")).to_be_visible(timeout=120_000)
            if wanted("home"):
                shot(page, "home", 1150)
            if wanted("session_builder"):
                session_builder(page, url)
            if wanted("embedding_space"):
                embedding_space(page, expect)
            if wanted("metrics"):
                open_page(page, "Metrics")
                expect(page.locator(".js-plotly-plot").first).to_be_visible(timeout=60_000)
                shot(page, "metrics", 1500)
            if wanted("train"):
                open_page(page, "Train")
                page.get_by_role("button").filter(has_text="Start training").click()
                expect(page.get_by_text("done in")).to_be_visible(timeout=120_000)
                shot(page, "train", 1300)
            if wanted("findings"):
                open_page(page, "Findings")
                expect(page.locator(".js-plotly-plot").first).to_be_visible(timeout=60_000)
                shot(page, "findings", 1600)
            if wanted("demo"):  # last: the demo page folds the sidebar away
                open_page(page, "Demo")
                expect(page.get_by_text(re.compile(r"Session 1 of \d+"))).to_be_visible(timeout=120_000)
                page.wait_for_timeout(1500)
                shot(page, "demo", 1300)


def session_builder(page, url: str) -> None:
    page.goto(f"{url}/Session_Builder?" + "&".join(f"model={name}" for name in SESSION_MODELS))  # a link
    random_button = page.get_by_role("button").filter(has_text="Random real test session")
    for _ in range(60):  # a short real session whose true next item some model found
        random_button.click()
        page.wait_for_timeout(1200)
        caption = page.get_by_text("model(s) ranked all").inner_text()
        length = int(caption.split("session of ")[1].split(" ")[0])
        if 3 <= length <= 5 and page.get_by_text("✓ true next").count():
            break
    shot(page, "session_builder", 1500)


def embedding_space(page, expect) -> None:
    open_page(page, "Embedding space")
    expect(page.locator(".js-plotly-plot").first).to_be_visible(timeout=60_000)
    page.get_by_label("Colour by").click()  # topics: Beauty has no categories
    page.get_by_role("option", name="topic (k-means over the embeddings)").click()
    wait_for_idle(page)
    search = page.get_by_label("Find an item on the map (typos are fine)")  # an item ringed, its neighbours
    search.fill("maybelline mascara")
    search.press("Enter")
    expect(page.get_by_role("heading", name="Found item")).to_be_visible(timeout=60_000)
    wait_for_idle(page)
    page.wait_for_timeout(2000)
    shot(page, "embedding_space", 1500)


if __name__ == "__main__":
    main()
