"""The exported HTML report in headless Chromium, offline: saved results of a few models (one a long-named
variant) on a tiny dataset of its own, written to the test's temporary cache by ``core.evaluate.run``, loaded back
and exported; the page is opened from ``file://`` with every other request blocked, and its SVG is measured."""

from pathlib import Path

import pytest
from tiny_data import write_tiny_dataset

from core import data, evaluate, report
from core.models import create

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


@pytest.fixture(scope="module")
def report_file(tmp_path_factory):
    # its own data set (a data set is named by its files' content): the shared test cache's other tests never
    # find these models already fitted
    shop = data.load(str(write_tiny_dataset(tmp_path_factory.mktemp("report") / "reportshop")))
    models = [create("popularity"), create("sknn"),
              create("vsknn", k=25, sample_size=120, similarity="cosine", decay="log", idf_weighting=False)]
    evaluate.run(shop, models)
    results = evaluate.load_results(shop)
    path = tmp_path_factory.mktemp("report") / "report.html"
    path.write_text(report.html_report(shop.name, results))
    return path, list(report.seed_groups(results))


def test_the_report_renders_offline_with_whole_labels_colours_and_legends(report_file):
    from tools.serve import chromium

    path, labels = report_file
    assert any(len(label) > 60 for label in labels)  # a long variant label is among them
    fetched = []
    with chromium(1280, 900) as page:
        def route(request_route):
            if request_route.request.url.startswith("file://"):
                request_route.continue_()
            else:
                fetched.append(request_route.request.url)
                request_route.abort()

        page.route("**/*", route)
        page.goto(path.as_uri())
        page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length >= 6")
        page.wait_for_timeout(500)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
        plots = page.evaluate("""() => [...document.querySelectorAll('.js-plotly-plot')].map(div => {
            const svg = div.querySelector('.main-svg').getBoundingClientRect();
            const box = r => ({left: r.left, right: r.right, top: r.top, bottom: r.bottom});
            return {svg: box(svg),
                    ticks: [...div.querySelectorAll('.ytick text')].map(t => ({text: t.textContent,
                                                                              ...box(t.getBoundingClientRect())})),
                    legend: [...div.querySelectorAll('.legendtext')].map(t => t.textContent),
                    titles: [...div.querySelectorAll('.gtitle, .gtitle-subtitle, .xtitle, .ytitle')]
                        .map(t => box(t.getBoundingClientRect())),
                    traces: div._fullData.map(t => ({name: t.name, type: t.type,
                        colour: (t.marker && t.marker.color) || (t.line && t.line.color)}))};
        })""")
    assert fetched == []  # nothing but the file itself: plotly.js is embedded
    assert len(plots) == 6
    whole = {label.replace(" ", "") for label in labels}
    for plot in plots:
        svg = plot["svg"]
        for tick in plot["ticks"]:  # every y tick label fully inside the figure
            assert svg["left"] <= tick["left"] and tick["right"] <= svg["right"], tick
            assert svg["top"] <= tick["top"] and tick["bottom"] <= svg["bottom"], tick
        titles = plot["titles"]
        for i, a in enumerate(titles):  # title, subtitle and axis titles never overlap
            for b in titles[i + 1:]:
                apart = (a["right"] <= b["left"] or b["right"] <= a["left"] or a["bottom"] <= b["top"]
                         or b["bottom"] <= a["top"])
                assert apart, (a, b)
        ours = [t for t in plot["traces"] if t["name"] != report.PAPER_LABEL]
        colours = {t["name"]: t["colour"] for t in ours}
        assert len(set(colours.values())) == len(colours) == len(labels)  # one colour per model
        if plot["legend"] and any(t["type"] == "scatter" for t in ours):  # the scatter and line charts
            assert {text.replace(" ", "") for text in plot["legend"]} == whole  # the legend names every model
    line_colours = [{t["name"]: t["colour"] for t in plot["traces"]} for plot in plots[2:]]
    assert all(c == line_colours[0] for c in line_colours)  # the same colour for a model in every chart
