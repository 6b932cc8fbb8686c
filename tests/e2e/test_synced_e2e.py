"""Every camera at one moment, playback speed, stills, the dark theme and the phone's menu,
in a real Chromium against the real recorder.

The two simulated cameras burn each frame's wall time into the picture (a QR code), so
the synced view is checked from what the players show, not from what the page says.
The tests share one stack; the first ones need no recordings and run while it records.
"""

import base64
import datetime as dt
import re
import time
from pathlib import Path

import pytest

from e2e_support import DESKTOP, PHONE, api_json, ffprobe_json, poll, running_stack, screenshot, sign_in
from integration.stamps import CROP_SIZE, QrReader, stamped_frames

pytestmark = pytest.mark.integration

RUN_S = 40              # both cameras have recorded this long before the synced view's tests
PLAY_RUN_S = 10         # ... this long before a test that plays from 5 s into the run
SPEED_RUN_S = 40        # ... and this long before the speed test (about 25-30 s of media at 0.5-16x)
RUN_WAIT_S = 120
SYNC_TOLERANCE_MS = 500
SAMPLES = 3             # frames compared in the synced view, SAMPLE_GAP_S apart
SAMPLE_GAP_S = 2
DISTURBANCES_S = [0.8, 3.0]   # cam2's player is pushed ahead this far ...
RECOVER_S = 4                 # ... and is back with cam1 this much later
CLICK_AFTER_S = 15            # the timeline is clicked this long after both cameras' start
SYNC_RATE = 4
SETTLE_S = 3            # the synced view plays this long before the first sample
SPEEDS = [(0.5, 0.4, 0.6, 2.0), (4, 3.0, 4.5, 2.0), (16, 10, 17, 1.0)]   # rate, min, max ratio, seconds
PAGES = {"Cameras": "dashboard", "Live": "live", "Recordings": "recordings", "Storage": "storage",
         "System": "system"}

# Draws the stamp's corner of each shown player into a canvas (the crop and size of
# stamps.CROP_FILTER) and returns its grey levels, every player in the same instant.
CAPTURE_JS = """([w, h]) => Array.from(document.querySelectorAll('[data-sync-tile]:not([hidden]) video'))
  .map((v) => {
    const c = document.createElement('canvas');
    c.width = w; c.height = h;
    const g = c.getContext('2d', {willReadFrequently: true});
    g.drawImage(v, 0, v.videoHeight * 0.1, v.videoWidth / 2, v.videoHeight * 0.8, 0, 0, w, h);
    const d = g.getImageData(0, 0, w, h).data;
    let bin = '';
    for (let i = 0; i < w * h; i++) bin += String.fromCharCode(d[i * 4 + 1]);
    return {camera: v.closest('[data-sync-tile]').dataset.camera, gray: btoa(bin), paused: v.paused};
  })"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """Two stamped cameras recording short segments into the adopted data directory."""
    with running_stack(tmp_path_factory.mktemp("synced"), cameras=2, adopt=True, stamp=True) as st:
        yield st


def background(page) -> tuple[int, ...]:
    text = page.evaluate("getComputedStyle(document.body).backgroundColor")
    return tuple(int(v) for v in re.findall(r"\d+", text)[:3])


def is_dark(rgb) -> bool:
    return sum(rgb) < 150


def common_run(stack, page, seconds: float = RUN_S) -> tuple[float, float]:
    """[start, end) in s that both cameras recorded, once it is `seconds` long."""
    def both():
        now = time.time()
        spans = []
        for cam in ("cam1", "cam2"):
            runs = api_json(stack, page, f"/api/cameras/{cam}/timeline?start={now - 3600:.3f}"
                                         f"&end={now + 60:.3f}")["runs"]
            if not runs:
                return None
            spans.append((runs[-1]["start_us"] / 1e6, runs[-1]["end_us"] / 1e6))
        start, end = max(s for s, _ in spans), min(e for _, e in spans)
        return (start, end) if end - start >= seconds else None
    return poll(both, RUN_WAIT_S, 1, f"{seconds} s recorded by both cameras")


def wall_ms(page) -> float:
    return float(page.locator("[data-wallclock]").get_attribute("data-wall-ms") or 0)


def test_every_page_is_reachable_from_the_menu_at_390_px(stack, browser):
    page = sign_in(stack, browser, PHONE, has_touch=True, is_mobile=True)
    page.goto(stack.url + "/")
    assert not page.locator("nav.nav a", has_text="System").is_visible()
    for name, page_id in PAGES.items():
        page.locator("[data-menu-button]").click()
        link = page.locator("nav.nav a", has_text=name)
        box = link.bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], (name, box)
        with page.expect_navigation():
            link.click()
        assert page.locator(f"body[data-page={page_id}]").count() == 1, (name, page.url)
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.goto(stack.url + "/")
    page.locator("[data-menu-button]").click()
    screenshot(stack, page, "menu-phone")
    page.keyboard.press("Escape")
    assert page.locator("[data-menu-button]").get_attribute("aria-expanded") == "false"
    assert not page.js_errors, page.js_errors
    page.context.close()


def test_an_enlarged_live_tile_closes_with_its_button(stack, browser):
    page = sign_in(stack, browser, PHONE, has_touch=True, is_mobile=True)
    page.goto(stack.url + "/live")
    tile = page.locator("[data-live-tile]").first
    close = tile.locator("[data-close]")
    assert not close.is_visible()
    tile.click()
    assert "enlarged" in tile.get_attribute("class")
    close.click()
    assert "enlarged" not in tile.get_attribute("class")
    assert tile.bounding_box()["width"] <= PHONE["width"]
    page.context.close()


def touch(cdp, kind: str, xs: list[float], y: float) -> None:
    cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": [
        {"x": x, "y": y, "id": i} for i, x in enumerate(xs)]})


def view(page) -> tuple[float, float]:
    return tuple(page.evaluate("(() => { const t = document.querySelector('[data-timeline]').timeline;"
                               " return [t.viewStart, t.span]; })()"))


def test_two_fingers_pinch_to_zoom_and_drag_to_pan_the_timeline(stack, browser):
    page = sign_in(stack, browser, PHONE, has_touch=True, is_mobile=True)
    page.goto(stack.url + "/recordings/cam1?zoom=hour")
    page.locator("[data-runs-loaded]").wait_for()
    box = page.locator("[data-timeline]").bounding_box()
    y, mid = box["y"] + box["height"] / 2, box["x"] + box["width"] / 2
    start0, span0 = view(page)
    under_mid = start0 + (mid - box["x"]) / box["width"] * span0
    cdp = page.context.new_cdp_session(page)
    touch(cdp, "touchStart", [mid - 40, mid + 40], y)
    for step in range(1, 6):                       # fingers apart to twice their distance
        touch(cdp, "touchMove", [mid - 40 - 8 * step, mid + 40 + 8 * step], y)
    touch(cdp, "touchEnd", [], y)
    start1, span1 = view(page)
    assert span1 == pytest.approx(span0 / 2, rel=0.05), (span0, span1)
    assert start1 + (mid - box["x"]) / box["width"] * span1 == pytest.approx(under_mid, abs=span0 / 100)

    touch(cdp, "touchStart", [mid - 60, mid + 60], y)
    for step in range(1, 6):                       # both fingers 100 px to the right
        touch(cdp, "touchMove", [mid - 60 + 20 * step, mid + 60 + 20 * step], y)
    touch(cdp, "touchEnd", [], y)
    start2, span2 = view(page)
    assert span2 == pytest.approx(span1, rel=0.01)
    assert start2 == pytest.approx(start1 - 100 / box["width"] * span1, abs=span1 / 100)
    assert page.evaluate("document.querySelector('[data-video]').currentSrc") == "", "a pinch played"

    start, _end = common_run(stack, page, PLAY_RUN_S)
    page.goto(f"{stack.url}/recordings/cam1?zoom=hour&t={start + 5:.3f}")
    poll(lambda: wall_ms(page) > 0, 20, what="playback")
    screenshot(stack, page, "recordings-playing-phone")
    assert not page.js_errors, page.js_errors
    page.context.close()


def test_the_dark_theme_follows_the_system_and_the_switch_is_remembered(stack, browser):
    light = sign_in(stack, browser, DESKTOP, color_scheme="light")
    assert not is_dark(background(light))
    light.context.close()

    page = sign_in(stack, browser, DESKTOP, color_scheme="dark")
    start, _end = common_run(stack, page, PLAY_RUN_S)
    page.goto(f"{stack.url}/recordings/cam1?zoom=hour&t={start + 5:.3f}")
    assert is_dark(background(page)), background(page)
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    card = page.evaluate("getComputedStyle(document.querySelector('.timeline')).backgroundColor")
    assert is_dark(tuple(int(v) for v in re.findall(r"\d+", card)[:3])), card
    page.locator("[data-runs-loaded]").wait_for()
    poll(lambda: wall_ms(page) > 0, 20, what="playback")
    screenshot(stack, page, "recordings-dark-desktop")
    switch = page.locator("[data-theme-switch]")
    assert switch.get_attribute("aria-pressed") == "true"
    switch.click()
    assert not is_dark(background(page))
    page.reload()
    assert not is_dark(background(page)), "the switch's choice is not remembered"
    page.locator("[data-theme-switch]").click()
    page.goto(stack.url + "/storage")
    assert is_dark(background(page))
    assert not page.js_errors, page.js_errors
    page.context.close()


def test_playback_speed_and_a_full_size_still(stack, browser, tmp_path):
    page = sign_in(stack, browser, DESKTOP, accept_downloads=True)
    start, _end = common_run(stack, page, SPEED_RUN_S)
    page.goto(f"{stack.url}/recordings/cam2?zoom=hour&t={start + 1:.3f}")
    poll(lambda: page.evaluate("document.querySelector('[data-video]').currentTime") > 0.3, 20,
         what="playback")
    for rate, low, high, seconds in SPEEDS:
        page.select_option("[data-speed]", str(rate))
        a = page.evaluate("[document.querySelector('[data-video]').currentTime, performance.now()]")
        time.sleep(seconds)
        b = page.evaluate("[document.querySelector('[data-video]').currentTime, performance.now()]")
        ratio = (b[0] - a[0]) / ((b[1] - a[1]) / 1000)
        print(f"recordings page at {rate}x: media time ran {ratio:.2f}x")
        assert low <= ratio <= high, f"at {rate}x the media time advanced {ratio:.2f} s per second"
    page.select_option("[data-speed]", "1")

    with page.expect_download() as info:
        page.click("[data-save-still]")
    download = info.value
    shown = wall_ms(page) / 1000
    assert page.evaluate("document.querySelector('[data-video]').paused")
    name = download.suggested_filename
    stem = dt.datetime.fromtimestamp(int(shown), dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    assert name == f"cam2-{stem}.jpg", (name, shown)
    path = tmp_path / name
    download.save_as(path)
    stream = ffprobe_json(path)["streams"][0]
    assert stream["codec_name"] == "mjpeg"
    size = poll(lambda: page.evaluate("[document.querySelector('[data-video]').videoWidth,"
                                      " document.querySelector('[data-video]').videoHeight]"), 2)
    assert size == [640, 360]
    stamp = stamped_frames(path)[0].stamp_us
    assert stamp is not None, "the still has no readable stamp"
    assert abs(stamp / 1e6 - shown) < 1.0, (stamp / 1e6, shown)
    assert not page.js_errors, page.js_errors
    page.context.close()


def decode(frames: list[dict]) -> dict[str, int | None]:
    reader, (w, h) = QrReader(), CROP_SIZE
    out = {}
    for f in frames:
        text = reader.read(base64.b64decode(f["gray"]), w, h)
        out[f["camera"]] = None if text is None else int(re.search(r'"TIMESTAMP"\s*:\s*(\d+)', text)[1]) // 1_000_000
    return out


def test_the_synced_view_plays_both_cameras_within_half_a_second(stack, browser):
    page = sign_in(stack, browser, DESKTOP)
    start, _end = common_run(stack, page)
    chosen = start + 5
    page.goto(f"{stack.url}/recordings/cam1?zoom=hour&t={chosen:.3f}")
    poll(lambda: wall_ms(page) > 0, 20, what="playback on the recordings page")
    with page.expect_navigation():
        page.click("[data-synced-link]")
    t = float(re.search(r"[?&]t=([\d.]+)", page.url)[1])
    assert chosen - 1 <= t <= chosen + 10, (t, chosen)
    opened = time.time()
    poll(lambda: page.locator("#synced").get_attribute("data-playing") == "true"
         and page.locator("#synced").get_attribute("data-spread-ms"), 30, what="both players playing")
    time.sleep(SETTLE_S)
    screenshot(stack, page, "synced-desktop")
    gaps = []
    for _ in range(SAMPLES):
        frames = page.evaluate(CAPTURE_JS, list(CROP_SIZE))
        assert [f["camera"] for f in frames] == ["cam1", "cam2"]
        assert not any(f["paused"] for f in frames)
        stamps = decode(frames)
        assert None not in stamps.values(), f"unreadable stamp: {stamps}"
        gaps.append(abs(stamps["cam1"] - stamps["cam2"]))
        elapsed = time.time() - opened
        for stamp in stamps.values():
            assert t - 1.5 <= stamp / 1000 <= t + elapsed + 1.5, (stamp / 1000, t, elapsed)
        time.sleep(SAMPLE_GAP_S)
    print(f"synced view: burnt-in times of the two players differ by {gaps} ms")
    assert max(gaps) <= SYNC_TOLERANCE_MS, gaps

    # Knocked off: a small drift is taken back by a nudge of the speed, a large one by a seek.
    for jump_s in DISTURBANCES_S:
        page.evaluate("(s) => { document.querySelector('[data-camera=cam2] video').currentTime += s; }", jump_s)
        time.sleep(RECOVER_S)
        stamps = decode(page.evaluate(CAPTURE_JS, list(CROP_SIZE)))
        gap = abs(stamps["cam1"] - stamps["cam2"])
        print(f"synced view: {RECOVER_S} s after cam2 jumped {jump_s} s the players differ by {gap} ms")
        assert gap <= SYNC_TOLERANCE_MS, (jump_s, stamps)

    page.click("[data-sync-play]")                     # one pause for both
    before = page.evaluate("Array.from(document.querySelectorAll('#synced video')).map((v) => v.paused && v.currentTime)")
    assert all(before), before
    time.sleep(1)
    after = page.evaluate("Array.from(document.querySelectorAll('#synced video')).map((v) => v.paused && v.currentTime)")
    assert after == before, (before, after)

    # One timeline: a click plays every camera from there, together.
    target = start + CLICK_AFTER_S
    box = page.locator("#synced [data-timeline]").bounding_box()
    x = page.evaluate("(ms) => document.querySelector('#synced [data-timeline]').timeline.xOf(ms)", target * 1000)
    page.mouse.click(x, box["y"] + box["height"] / 2)
    clicked = time.time()
    time.sleep(SETTLE_S)
    stamps = decode(page.evaluate(CAPTURE_JS, list(CROP_SIZE)))
    assert None not in stamps.values(), stamps
    assert abs(stamps["cam1"] - stamps["cam2"]) <= SYNC_TOLERANCE_MS, stamps
    for stamp in stamps.values():
        assert target - 1.5 <= stamp / 1000 <= target + time.time() - clicked + 1.5, (stamp / 1000, target)

    # Faster than real time, still together.
    page.select_option("#synced [data-speed]", str(SYNC_RATE))
    a = (wall_ms(page), time.time())
    time.sleep(SETTLE_S)
    stamps = decode(page.evaluate(CAPTURE_JS, list(CROP_SIZE)))
    b = (wall_ms(page), time.time())
    rate = (b[0] - a[0]) / 1000 / (b[1] - a[1])
    print(f"synced view at {SYNC_RATE}x: the clock ran {rate:.2f}x, the players differ by "
          f"{abs(stamps['cam1'] - stamps['cam2'])} ms")
    assert SYNC_RATE * 0.75 <= rate <= SYNC_RATE * 1.1, rate
    assert None not in stamps.values() and abs(stamps["cam1"] - stamps["cam2"]) <= SYNC_TOLERANCE_MS, stamps
    assert not page.js_errors, page.js_errors
    page.context.close()


def test_the_synced_view_plays_the_chosen_cameras_and_says_where_one_has_nothing(stack, browser):
    page = sign_in(stack, browser, DESKTOP)
    start, _end = common_run(stack, page)
    page.goto(f"{stack.url}/synced?t={start + 5:.3f}")
    synced = page.locator("#synced")
    poll(lambda: synced.get_attribute("data-playing") == "true", 30, what="the players to play")
    page.uncheck("[data-sync-choose][value=cam2]")
    assert page.locator("[data-sync-tile][data-camera=cam2]").is_hidden()
    assert page.evaluate("document.querySelector('[data-camera=cam2] video').getAttribute('src')") is None
    poll(lambda: "camera=cam1" in page.url and "cam2" not in page.url, 5, what="the choice in the address")
    played = page.evaluate("document.querySelector('[data-camera=cam1] video').currentTime")
    poll(lambda: page.evaluate("document.querySelector('[data-camera=cam1] video').currentTime") > played + 1,
         10, what="cam1 to play on alone")

    page.reload()                                          # the address keeps the choice
    assert not page.is_checked("[data-sync-choose][value=cam2]")
    assert page.locator("[data-sync-tile][data-camera=cam2]").is_hidden()
    page.check("[data-sync-choose][value=cam2]")
    page.evaluate("(ms) => document.getElementById('synced').synced.seekAll(ms, true)", (start - 120) * 1000)
    for cam in ("cam1", "cam2"):
        note = page.locator(f"[data-sync-tile][data-camera={cam}] [data-sync-note]")
        poll(lambda: note.text_content() == "Not recorded at this time.", 10, what=f"{cam}'s note")
    assert not page.js_errors, page.js_errors
    page.context.close()
