"""Playing the newest seconds and honest ranges, in a real Chromium against the real recorder.

Segments are a minute long here, as on a real box, so the newest video is in the
segment ffmpeg is still writing: without the panel reading that file, the
timeline would end up to a minute behind the cameras. The tests share one stack
and run in order (the last one stops camera 2).
"""

import datetime as dt
import re
import sqlite3
import time

import pytest

from e2e_support import api_json, ffprobe_json, poll, running_stack, screenshot, sign_in

pytestmark = pytest.mark.integration

SEGMENT_S = 60
FPS = 15
RANGE_S = 15            # the range that ends 3 s ago
RANGE_END_AGO_S = 3
PLAYS_TO_S = 2          # ... plays to within this of its end
NOW_LAG_S = 3           # the timeline's last run ends this close to now
REWIND_S = 30
RATE = 4                # playback speed while following into newer video
WALL_TOLERANCE_S = 2
RUN_WAIT_S = 90


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """Two cameras recording one-minute segments into the data directory (adopted, as the demo does)."""
    with running_stack(tmp_path_factory.mktemp("playback"), segment_seconds=SEGMENT_S, cameras=2,
                       adopt=True) as st:
        yield st


def runs(stack, page, camera: str) -> list[dict]:
    now = time.time()
    return api_json(stack, page, f"/api/cameras/{camera}/timeline?start={now - 3600:.3f}"
                                 f"&end={now + 60:.3f}")["runs"]


def wait_for_newest_run(stack, page, camera: str, seconds: float) -> dict:
    """The camera's newest run, once it is at least `seconds` long."""
    def long_enough():
        found = runs(stack, page, camera)
        last = found[-1] if found else None
        return last if last and last["end_us"] - last["start_us"] >= seconds * 1e6 else None
    return poll(long_enough, RUN_WAIT_S, 0.5, f"a recorded run of {seconds} s for {camera}")


def newest_indexed_end_s(stack, camera: str) -> float | None:
    """End of the newest segment the recorder indexed (read-only), for the messages."""
    path = stack.paths.default_recordings / "picorder" / "index.db"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        row = db.execute("SELECT MAX(end_us) FROM segment WHERE camera = ? AND stream = 'main'",
                         (camera,)).fetchone()
    return row[0] / 1e6 if row and row[0] else None


def open_recordings(stack, page, camera: str, query: str = "zoom=hour") -> None:
    page.goto(f"{stack.url}/recordings/{camera}?{query}")
    page.locator("[data-runs-loaded]").wait_for()


def wall_ms(page) -> float:
    return float(page.locator("[data-wallclock]").get_attribute("data-wall-ms") or 0)


def video_time(page) -> float:
    return page.evaluate("document.querySelector('[data-video]').currentTime")


def local_input(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds).strftime("%Y-%m-%dT%H:%M:%S")


# ----------------------------------------------------------------- point 4

def test_the_newest_seconds_are_on_the_timeline_and_a_range_ending_3_s_ago_plays_to_its_end(
        stack, browser):
    page = sign_in(stack, browser)
    wait_for_newest_run(stack, page, "cam1", RANGE_S + 5)

    def unindexed_long_enough():
        # A moment when the range lies wholly past the index: in the segment being written.
        indexed = newest_indexed_end_s(stack, "cam1")
        return indexed is None or time.time() - indexed >= RANGE_S + RANGE_END_AGO_S + 2
    poll(unindexed_long_enough, SEGMENT_S + 30, 0.5, "20 s recorded past the index")
    last = runs(stack, page, "cam1")[-1]
    now = time.time()
    indexed = newest_indexed_end_s(stack, "cam1")
    lag = now - last["end_us"] / 1e6
    assert lag <= NOW_LAG_S, (f"the timeline ends {lag:.1f} s before now "
                              f"(the index ends {now - (indexed or 0):.1f} s before now)")

    open_recordings(stack, page, "cam1")
    marker = page.locator("[data-now-marker]")
    assert marker.is_visible() and marker.inner_text() == "now"
    tl_now = page.evaluate("document.querySelector('[data-timeline]').timeline.now")
    assert abs(tl_now / 1000 - time.time()) < 15
    screenshot(stack, page, "recordings-now-desktop")

    end = time.time() - RANGE_END_AGO_S
    start = end - RANGE_S
    url = f"/api/cameras/cam1/recording.mp4?start={start:.3f}&end={end:.3f}"
    head = page.request.head(stack.url + url)
    assert head.ok, head.status
    covered_end = int(head.headers["x-picorder-end-us"]) / 1e6
    assert covered_end >= end - PLAYS_TO_S, (f"the movie ends {end - covered_end:.1f} s early; "
                                             f"the index ended {end - (indexed or 0):.1f} s before")
    assert abs(int(head.headers["x-picorder-recorded-us"]) / 1e6 - (covered_end - start)) < 0.2
    # Chromium plays it to the end.
    played = page.evaluate("""url => new Promise((resolve, reject) => {
        const v = document.createElement('video');
        v.muted = true;
        v.addEventListener('ended', () => resolve(v.currentTime));
        v.addEventListener('error', () => reject(new Error('cannot play: ' + v.error.code)));
        v.src = url;
        document.body.append(v);
        v.play().catch(reject);
    })""", url)
    assert played >= RANGE_S - PLAYS_TO_S, f"played {played:.2f} s of the {RANGE_S} s ending 3 s ago"
    assert page.js_errors == []
    page.context.close()


def test_rewind_on_a_live_tile_plays_the_last_30_s_and_carries_on_into_newer_video(stack, browser):
    page = sign_in(stack, browser)
    wait_for_newest_run(stack, page, "cam1", REWIND_S + 2)
    page.goto(stack.url + "/live")
    link = page.locator('[data-live-tile][data-camera="cam1"] [data-rewind]')
    assert link.is_visible()
    screenshot(stack, page, "live-rewind-desktop")
    clicked = time.time()
    with page.expect_navigation():
        link.click()
    assert re.search(r"/recordings/cam1\?zoom=hour&t=[\d.]+$", page.url), page.url
    t = float(page.url.rsplit("t=", 1)[1])
    assert abs(t - (clicked - REWIND_S)) < 2
    poll(lambda: video_time(page) > 0.2, 15, 0.05, "the recording to play")
    assert abs(wall_ms(page) / 1000 - t) <= WALL_TOLERANCE_S

    # Faster than real time, it reaches the newest video and follows it as it arrives.
    page.evaluate("v => { v.defaultPlaybackRate = v.playbackRate = %d; }" % RATE,
                  page.locator("[data-video]").element_handle())
    seen = []

    def followed():
        seen.append(wall_ms(page) / 1000)
        return seen[-1] >= clicked + 5
    poll(followed, 45, 0.25, "playback to carry on past the moment the rewind was clicked")
    drops = [a - b for a, b in zip(seen, seen[1:]) if b < a - 1]
    assert not drops, f"the wall clock jumped back by {max(drops):.1f} s"
    assert page.locator("#recordings").get_attribute("data-end-of-recordings") is None
    screenshot(stack, page, "recordings-following-desktop")
    assert page.js_errors == []
    page.context.close()


# ----------------------------------------------------------------- point 5

def test_a_download_reaching_past_the_recordings_says_how_much_is_recorded(stack, browser, tmp_path):
    page = sign_in(stack, browser, accept_downloads=True)
    first = runs(stack, page, "cam1")[0]
    run_start = first["start_us"] / 1e6
    a = int(run_start) - 60
    b = int(run_start) + 20
    recorded = b - run_start
    open_recordings(stack, page, "cam1")
    page.fill("[data-range-start]", local_input(a))
    page.fill("[data-range-end]", local_input(b))
    poll(lambda: page.locator("#recordings").get_attribute("data-range-checked") == "1", 10, 0.1,
         "the range to be checked")
    assert page.locator("[data-range-length]").inner_text() == "1 min 20 s"
    note = page.locator("[data-range-note]")
    assert note.is_visible()
    match = re.match(r"Only (\d+) s of this range is recorded \((\d\d:\d\d:\d\d)–", note.inner_text())
    assert match, note.inner_text()
    assert abs(int(match.group(1)) - recorded) <= 1
    assert match.group(2) == dt.datetime.fromtimestamp(run_start).strftime("%H:%M:%S")
    screenshot(stack, page, "recordings-range-clipped-desktop")
    with page.expect_download() as info:
        page.click("[data-download]")
    out = tmp_path / "clipped.mp4"
    info.value.save_as(out)
    duration = float(ffprobe_json(out)["format"]["duration"])
    assert abs(duration - recorded) <= 1, (duration, recorded)

    # A range with nothing recorded in it cannot be downloaded.
    page.fill("[data-range-start]", local_input(a - 600))
    page.fill("[data-range-end]", local_input(a - 300))
    poll(lambda: page.locator("#recordings").get_attribute("data-range-checked") == "1", 10, 0.1,
         "the empty range to be checked")
    assert page.locator("[data-range-error]").inner_text() == "Nothing is recorded in this range."
    assert page.locator("[data-download]").get_attribute("aria-disabled") == "true"
    page.context.close()


def test_switching_camera_keeps_the_time_and_the_zoom(stack, browser):
    page = sign_in(stack, browser)
    starts = [runs(stack, page, cam)[0]["start_us"] / 1000 for cam in ("cam1", "cam2")]
    open_recordings(stack, page, "cam1")
    target = max(starts) + 8000
    page.evaluate("ms => document.querySelector('#recordings').recordings.playAt(ms)", target)
    poll(lambda: video_time(page) > 0.2, 15, 0.05, "cam1 to play")
    with page.expect_navigation():
        page.select_option("[data-camera-select]", label="Camera 2")
    assert "/recordings/cam2?" in page.url and "zoom=hour" in page.url, page.url
    page.locator("[data-runs-loaded]").wait_for()
    poll(lambda: video_time(page) > 0.2, 15, 0.05, "cam2 to play")
    assert page.locator('[data-zoom="hour"]').get_attribute("aria-pressed") == "true"
    assert abs(wall_ms(page) - target) <= (WALL_TOLERANCE_S + 3) * 1000, (wall_ms(page), target)

    # Nothing playing: the same view.
    view = page.evaluate("document.querySelector('[data-timeline]').timeline.viewStart")
    page.evaluate("document.querySelector('[data-video]').removeAttribute('src');"
                  "document.querySelector('#recordings').recordings.state.cur = null")
    with page.expect_navigation():
        page.select_option("[data-camera-select]", label="Front door")
    page.locator("[data-runs-loaded]").wait_for()
    assert "/recordings/cam1?" in page.url and "focus=" in page.url, page.url
    assert page.evaluate("document.querySelector('[data-timeline]').timeline.viewStart") == view
    assert page.locator('[data-zoom="hour"]').get_attribute("aria-pressed") == "true"
    assert page.js_errors == []
    page.context.close()


def test_the_end_of_the_newest_video_says_so_and_never_jumps_back(stack, browser):
    page = sign_in(stack, browser)
    open_recordings(stack, page, "cam2")
    answer = page.evaluate("PC.api('PATCH', '/api/cameras/cam2', {enabled: false})")
    assert answer["ok"], answer

    def stopped():
        found = runs(stack, page, "cam2")
        return found[-1] if found and time.time() - found[-1]["end_us"] / 1e6 > 11 else None
    last = poll(stopped, 60, 1.0, "camera 2's recording to stop")
    open_recordings(stack, page, "cam2")
    end_ms = last["end_us"] / 1000
    page.evaluate("ms => document.querySelector('#recordings').recordings.playAt(ms)", end_ms - 3000)
    poll(lambda: page.locator("#recordings").get_attribute("data-end-of-recordings") == "1", 20, 0.1,
         "the end of the recordings")
    assert page.locator("[data-player-note]").inner_text() == "End of the recordings."
    assert wall_ms(page) >= end_ms - 1500, (wall_ms(page), end_ms)
    screenshot(stack, page, "recordings-end-desktop")
    assert page.js_errors == []
    page.context.close()
