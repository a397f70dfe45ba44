"""The Embedding space page in a real browser (Debian's Chromium via Playwright, the shared MovieLens-100K app of
conftest.server): a real click on one point of the WebGL map selects it and lists its neighbours with their
similarity in view; the search box rings "Star Wars" and lists its neighbours; topic colouring draws a legend.

A point is clicked at its pixel position, computed in the page from plotly's own axes (``l2p``): the most
isolated point of the map, so the click cannot land on a neighbour.
"""

import html
import os

import pytest
from conftest import ROOT

from tools.serve import CHROMIUM, chromium, wait_for_idle

ARTIFACTS = ROOT / "tests" / "artifacts"

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                reason="Debian's chromium is not installed: run `make browser`")

# The LLM map's first trace (every item): the most isolated point, in page pixels, and what it shows.
ISOLATED_POINT = """gd => {
    const trace = gd._fullData[0], layout = gd._fullLayout, xa = layout.xaxis, ya = layout.yaxis;
    const box = gd.getBoundingClientRect(), size = layout._size;
    const xs = Array.from(trace.x, v => xa.l2p(v)), ys = Array.from(trace.y, v => ya.l2p(v));
    let best = -1, far = -1;
    for (let i = 0; i < xs.length; i++) {
        if (xs[i] < 15 || ys[i] < 15 || xs[i] > size.w - 15 || ys[i] > size.h - 15) continue;
        let near = Infinity;
        for (let j = 0; j < xs.length; j++) {
            if (j !== i) near = Math.min(near, Math.hypot(xs[i] - xs[j], ys[i] - ys[j]));
        }
        if (near > far) { far = near; best = i; }
    }
    return {x: box.left + size.l + xs[best], y: box.top + size.t + ys[best], item: trace.customdata[best],
            text: trace.text[best], gap: far};
}"""


def llm_map(page):
    return page.locator(".js-plotly-plot").first


def test_click_search_and_topics_on_the_map(server):
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(exist_ok=True)
    with chromium(width=1400, height=1300) as page:
        page.goto(f"{server}/Embedding_Space")
        # the map is there without asking: PCA is computed when no UMAP exists yet
        expect(page.get_by_role("button", name="Compute the UMAP map (1–2 min, in the background)").first) \
            .to_be_visible(timeout=60_000)
        expect(llm_map(page)).to_be_visible(timeout=30_000)
        wait_for_idle(page)
        page.wait_for_function("document.querySelector('.js-plotly-plot')?._fullLayout?._size !== undefined")

        point = llm_map(page).evaluate(ISOLATED_POINT)
        assert point["gap"] > 6, point  # pixels to its nearest other point
        page.mouse.move(point["x"], point["y"])  # plotly selects the point under the hover
        page.wait_for_timeout(400)
        page.mouse.click(point["x"], point["y"])
        expect(page.get_by_role("heading", name="Selected item")).to_be_visible(timeout=30_000)
        expect(page.locator(".focus-title")).to_have_text(html.unescape(point["text"]))
        neighbours = page.locator("table.neighbours tbody tr")
        expect(neighbours).to_have_count(10)
        cosine = page.locator("table.neighbours tbody td").first  # the similarity, in view without scrolling
        assert 0 < float(cosine.inner_text()) <= 1
        box = cosine.bounding_box()
        assert box is not None and box["x"] + box["width"] <= 1400
        table_fits = "t => t.scrollWidth <= t.parentElement.clientWidth + 1"
        assert page.locator("table.neighbours").evaluate(table_fits)

        search = page.get_by_label("Find an item on the map (typos are fine)")
        search.fill("star wars")
        search.press("Enter")
        expect(page.get_by_role("heading", name="Found item")).to_be_visible(timeout=30_000)
        expect(page.locator(".focus-title")).to_have_text("Star Wars")
        expect(neighbours).to_have_count(10)
        wait_for_idle(page)
        ring = llm_map(page).evaluate("gd => [gd.data.filter(t => t.name === 'found').length, "
                                      "gd.layout.annotations[0].text]")
        assert ring == [1, "<b>Star Wars</b>"]
        page.mouse.move(0, 0)
        page.screenshot(path=str(ARTIFACTS / "embedding_space.png"), full_page=True)

        page.get_by_label("Colour by").click()  # a Streamlit selectbox: open it, pick the option
        page.get_by_role("option", name="topic (k-means over the embeddings)").click()
        k = page.get_by_role("spinbutton", name="Topics (k)")
        expect(k).to_have_value("12", timeout=60_000)
        legend = llm_map(page).locator("g.legend g.traces")
        expect(legend).to_have_count(12, timeout=60_000)
        expect(legend.first).to_contain_text("01 · ")
