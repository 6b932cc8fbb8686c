"""Activity on the recordings page, in a real Chromium against the real recorder.

Camera 1 plays the scripted scene "walk-by" (recorder/sim/scenes.py): an object
crosses the picture at 10-18 s and 28-34 s of every 40 s, and a light is switched
on at 22 s. The recorder finds the activity at ingest; the page must draw the band
where the motion was, and previous/next activity must land on the scripted starts.
"""

import time

import pytest

from e2e_support import api_json, poll, running_stack, screenshot, sign_in
from recorder.sim.scenes import read_truth

pytestmark = pytest.mark.integration

EDGE_S = 2.0            # a period may start or end this far from the scripted motion
WAIT_S = 150            # the first loop of the scene, indexed and analysed


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    base = tmp_path_factory.mktemp("activity")
    with running_stack(base, adopt=True, scenes=("walk-by",)) as st:
        st.truth_file = base / "truth.jsonl"
        yield st


def scripted(stack, loops: int = 1) -> list[tuple[float, float]]:
    """Wall-clock intervals (epoch s) of the motion in the first loops of camera 1's sub stream."""
    scene, start = read_truth(stack.truth_file)["cam1/sub"]
    return [(start + k * scene.seconds + a, start + k * scene.seconds + b)
            for k in range(loops) for a, b in scene.moves]


def periods(stack, page, start: float, end: float) -> list[tuple[float, float]]:
    found = api_json(stack, page, f"/api/cameras/cam1/activity?start={start:.3f}&end={end:.3f}")
    return [(p["start_us"] / 1e6, p["end_us"] / 1e6) for p in found["periods"]]


@pytest.fixture(scope="module")
def found(stack, browser):
    """The first loop's periods, once the recorder analysed past its second motion."""
    page = sign_in(stack, browser)
    truth = poll(lambda: stack.truth_file.exists() and scripted(stack), 30, 0.5, "the scene")
    window = (truth[0][0] - 10, truth[-1][1] + 6)

    def analysed():
        got = periods(stack, page, *window)
        return got if got and got[-1][1] >= truth[-1][0] + 2 else None
    got = poll(analysed, WAIT_S, 1.0, "activity past the second scripted motion")
    page.context.close()
    return truth, periods_settled(stack, browser, window, got)


def periods_settled(stack, browser, window, got):
    """The periods again once the segment after the window is analysed too."""
    time.sleep(max(0.0, window[1] + 8 - time.time()))
    page = sign_in(stack, browser)
    try:
        return periods(stack, page, *window)
    finally:
        page.context.close()


def test_activity_is_found_where_the_scripted_motion_was(found):
    truth, got = found
    for a, b in got:        # every period is scripted motion ...
        assert any(a < tb + EDGE_S and b > ta - EDGE_S for ta, tb in truth), (got, truth)
    for ta, tb in truth:    # ... and every scripted motion has its period, starting near it
        assert any(abs(a - ta) <= EDGE_S and b >= tb - EDGE_S for a, b in got), (got, truth)


def test_band_is_drawn_under_the_runs_where_the_motion_was(stack, browser, found):
    truth, _got = found
    page = sign_in(stack, browser)
    middle = (truth[0][0] + truth[-1][1]) / 2
    page.goto(f"{stack.url}/recordings/cam1?zoom=hour&focus={middle:.3f}")
    page.locator("[data-activity-loaded]").wait_for()
    bands = page.locator(".timeline .activity")
    assert bands.count() >= len(truth)
    boxes = [bands.nth(i).bounding_box() for i in range(bands.count())]
    run_box = page.locator(".timeline .run").first.bounding_box()
    for ta, tb in truth:
        x = page.evaluate("t => document.querySelector('[data-timeline]').timeline.xOf(t)",
                          (ta + tb) / 2 * 1000)
        assert any(b["x"] - 1 <= x <= b["x"] + b["width"] + 1 for b in boxes), (x, boxes)
    every_loop = scripted(stack, loops=20)     # the scene repeats while the test runs
    for box in boxes:
        ends = [page.evaluate("x => document.querySelector('[data-timeline]').timeline"
                              ".timeAt(x)", x) / 1000 for x in (box["x"], box["x"] + box["width"])]
        assert any(ends[0] < tb + EDGE_S and ends[1] > ta - EDGE_S for ta, tb in every_loop), (
            ends, every_loop)
        assert box["y"] >= run_box["y"] + run_box["height"] - 1      # under the recorded run
    assert int(page.locator("[data-activity-summary]").get_attribute("data-day-count")) >= 2
    assert "periods of activity on" in page.locator("[data-activity-summary]").inner_text()
    thumbs = page.locator("[data-activity-thumb]")
    assert thumbs.count() >= len(truth)
    poll(lambda: page.evaluate("document.querySelector('[data-activity-thumb] img')"
                               ".naturalWidth") > 0, 20, 0.2, "the first thumbnail")
    # For the picture: three minutes around the motion (the page's views are an hour or more).
    page.evaluate("t => document.querySelector('[data-timeline]').timeline.setView(t, 180e3)",
                  truth[0][0] * 1000 - 60e3)
    screenshot(stack, page, "recordings-activity")
    assert not page.js_errors
    page.context.close()


def test_next_and_previous_land_on_the_scripted_starts(stack, browser, found):
    truth, _got = found
    page = sign_in(stack, browser)
    page.goto(f"{stack.url}/recordings/cam1?zoom=hour&t={truth[0][0] - 6:.3f}")
    page.locator("[data-activity-loaded]").wait_for()
    clock = page.locator("[data-wallclock]")
    poll(lambda: clock.get_attribute("data-wall-ms"), 20, 0.2, "the player")

    def press(key: str, expect: float) -> None:
        before = page.locator("#recordings").get_attribute("data-activity-target")
        page.locator("h1").first.click()        # keys go to the page, not a form field
        page.keyboard.press(key)
        target = poll(lambda: (page.locator("#recordings").get_attribute("data-activity-target")
                               not in (None, before))
                      and page.locator("#recordings").get_attribute("data-activity-target"),
                      15, 0.1, f"a jump on {key}")
        assert abs(float(target) / 1000 - expect) <= EDGE_S, (
            key, float(target) / 1000, expect, before,
            page.locator("#recordings").get_attribute("data-activity-from"),
            periods(stack, page, truth[0][0] - 30, truth[-1][1] + 30))
        landed(float(target), f"the player at the activity after {key}")

    def landed(target_ms: float, what: str) -> None:
        """The player plays from target_ms (not merely passing by it)."""
        poll(lambda: page.evaluate("document.getElementById('recordings').recordings.state.cur"
                                   "?.start") == target_ms
             and abs(float(clock.get_attribute("data-wall-ms")) - target_ms) <= EDGE_S * 1000,
             20, 0.2, what)

    press("n", truth[0][0])
    press("n", truth[1][0])
    press("p", truth[0][0])
    first_target = page.locator("#recordings").get_attribute("data-activity-target")
    page.locator("[data-activity-nav='1']").click()            # the button does the same
    target = poll(lambda: page.locator("#recordings").get_attribute("data-activity-target")
                  != first_target and page.locator("#recordings").get_attribute(
                      "data-activity-target"), 15, 0.1, "a jump on the button")
    assert abs(float(target) / 1000 - truth[1][0]) <= EDGE_S
    landed(float(target), "the player at the second activity")
    assert not page.js_errors
    page.context.close()
