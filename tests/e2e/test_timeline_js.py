"""The timeline component alone in Chromium, against fixture runs: geometry, seek, select, zoom."""

from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

STATIC = Path(__file__).resolve().parents[2] / "webpanel" / "static"
HOUR_MS = 3600_000
T0 = 1_795_000_000_000 - 1_795_000_000_000 % HOUR_MS      # an hour boundary, in ms
RUNS = [{"start": T0 + 60_000, "end": T0 + 600_000, "trusted": True},
        {"start": T0 + 900_000, "end": T0 + 1_800_000, "trusted": False}]
PAGE = """<!doctype html><html><head><style>{css}</style></head><body><main>
<div class="tl-wrap"><div class="timeline" data-timeline></div>
<div class="tl-tip" data-tip hidden><img data-tip-img alt=""><span data-tip-text></span></div></div>
</main><script>{common}</script><script>{timeline}</script></body></html>"""


@pytest.fixture(scope="module")
def page(browser):
    context = browser.new_context(viewport={"width": 1000, "height": 600})
    pg = context.new_page()
    pg.set_content(PAGE.format(css=(STATIC / "css/app.css").read_text(),
                               common=(STATIC / "js/common.js").read_text(),
                               timeline=(STATIC / "js/timeline.js").read_text()))
    pg.evaluate("""([runs, t0]) => {
        window.seeks = []; window.selections = []; window.thumbs = [];
        const el = document.querySelector('[data-timeline]');
        window.tl = new Timeline(el, {
          tip: document.querySelector('[data-tip]'), tipImg: document.querySelector('[data-tip-img]'),
          tipText: document.querySelector('[data-tip-text]'),
          thumbUrl: ms => { window.thumbs.push(ms); return 'data:,'; },
          onSeek: ms => window.seeks.push(ms),
          onSelect: (a, b, done) => window.selections.push([a, b, done]) });
        tl.setView(t0, 3600000); tl.setRuns(runs); }""", [RUNS, T0])
    yield pg
    context.close()


def center_y(page) -> float:
    box = page.locator("[data-timeline]").bounding_box()
    return box["y"] + box["height"] / 2


def test_runs_are_drawn_where_they_are(page):
    runs = page.locator(".timeline .run")
    assert runs.count() == 2
    box = page.locator("[data-timeline]").bounding_box()
    first = runs.nth(0).bounding_box()
    assert abs(first["x"] - (box["x"] + box["width"] * 60 / 3600)) < 1.5
    assert abs(first["width"] - box["width"] * 540 / 3600) < 1.5
    assert "untrusted" in runs.nth(1).get_attribute("class")
    assert page.locator(".timeline .tick").count() >= 6


def test_click_seeks_to_the_time_under_the_pointer(page):
    x = page.evaluate(f"tl.xOf({T0 + 300_000})")
    page.mouse.click(x, center_y(page))
    seek = page.evaluate("window.seeks.at(-1)")
    assert abs(seek - (T0 + 300_000)) < 3600_000 / 1000 * 1.5     # within 1.5 px


def test_hover_shows_time_and_a_thumbnail_of_recorded_moments(page):
    x = page.evaluate(f"tl.xOf({T0 + 1_000_000})")
    page.mouse.move(x, center_y(page))
    page.wait_for_timeout(400)
    assert page.locator("[data-tip]").is_visible()
    assert page.evaluate("window.thumbs.length") >= 1
    x = page.evaluate(f"tl.xOf({T0 + 700_000})")         # a gap: no thumbnail
    page.mouse.move(x, center_y(page))
    assert "no recording" in page.locator("[data-tip-text]").inner_text()


def test_drag_in_select_mode_selects_a_range_and_does_not_seek(page):
    page.evaluate("tl.selectMode = true; window.seeks = []")
    y = center_y(page)
    x1, x2 = page.evaluate(f"[tl.xOf({T0 + 120_000}), tl.xOf({T0 + 240_000})]")
    page.mouse.move(x1, y)
    page.mouse.down()
    page.mouse.move(x2, y, steps=5)
    page.mouse.up()
    a, b, done = page.evaluate("window.selections.at(-1)")
    assert done and abs(a - (T0 + 120_000)) < 6000 and abs(b - (T0 + 240_000)) < 6000
    assert page.evaluate("window.seeks") == []
    assert page.locator(".timeline .sel").is_visible()
    page.evaluate("tl.selectMode = false")


def test_zooming_to_a_day_keeps_runs_in_place(page):
    page.evaluate(f"tl.setView({T0 - 12 * HOUR_MS}, {24 * HOUR_MS})")
    first = page.locator(".timeline .run").nth(0).bounding_box()
    box = page.locator("[data-timeline]").bounding_box()
    expected = box["x"] + box["width"] * (12 * 3600 + 60) / 86400
    assert abs(first["x"] - expected) < 1.5
    x = page.evaluate(f"tl.xOf({T0})")
    assert abs(page.evaluate(f"tl.timeAt({x})") - T0) < 1


@pytest.mark.parametrize("fraction", [0.05, 0.5, 0.999])
def test_now_is_marked_where_it_is_and_its_label_stays_inside(page, fraction):
    page.evaluate(f"tl.setView({T0}, {HOUR_MS}); tl.setNow({T0 + fraction * HOUR_MS})")
    marker = page.locator("[data-now-marker]")
    assert marker.is_visible() and marker.inner_text() == "now"
    box = page.locator("[data-timeline]").bounding_box()
    assert abs(marker.bounding_box()["x"] - (box["x"] + box["width"] * fraction)) < 1.5
    label = marker.locator("span").bounding_box()
    assert box["x"] <= label["x"] and label["x"] + label["width"] <= box["x"] + box["width"]
    page.evaluate(f"tl.setNow({T0 + 2 * HOUR_MS})")          # after the view: not drawn
    assert not marker.is_visible()
