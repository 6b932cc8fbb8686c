"""The panel's pages in a real Chromium against the real recorder, gunicorn and simulated cameras.

The tests share one stack and run in order: the wizard adopts the recording
directory, so recording (and the clock for the recordings tests) starts there.
"""

import datetime as dt
import re
import time

import pytest

from e2e_support import (ADMIN, DESKTOP, PHONE, api_json, ffprobe_json, poll,
                          screenshot, sign_in)
from helpers.mp4 import range_media_s
from helpers.recorder import rows
from recorder.accounts import ApiToken, User
from recorder.config import Camera, Setting

pytestmark = pytest.mark.integration

PROBE_TIMEOUT_S = 30
LIVE_WINDOW_S = 6
LIVE_MIN_ADVANCE_S = 3
CLICK_INTO_RUN_S = 30        # the click lands in the run's sixth 6 s segment
WALL_TOLERANCE_S = 2
DOWNLOAD_S = 45
FPS = 15
RUN_WAIT_S = 200


def field_error(page, field: str) -> str:
    """The message shown next to a form field (inside its .field block)."""
    box = page.locator(f'.field[data-field="{field}"] .error, .field:has([name="{field}"]) .error').first
    box.wait_for(timeout=5000)
    return box.inner_text()


def longest_run(stack, page, camera="cam1") -> dict | None:
    now = time.time()
    data = api_json(stack, page, f"/api/cameras/{camera}/timeline?start={now - 3600:.0f}&end={now + 60:.0f}")
    runs = data["runs"]
    return max(runs, key=lambda r: r["end_us"] - r["start_us"]) if runs else None


def wait_for_run(stack, page, seconds: float) -> dict:
    """Wait until cam1 has one continuous run at least this long; return it."""
    def long_enough():
        run = longest_run(stack, page)
        return run if run and run["end_us"] - run["start_us"] >= seconds * 1e6 else None
    return poll(long_enough, RUN_WAIT_S, 1.0, f"a recorded run of {seconds} s")


def timeline_point(page, ms: float) -> tuple[float, float]:
    page.locator("[data-timeline]").scroll_into_view_if_needed()
    x = page.evaluate("ms => document.querySelector('[data-timeline]').timeline.xOf(ms)", ms)
    box = page.locator("[data-timeline]").bounding_box()
    return x, box["y"] + box["height"] / 2


def open_hour_view(stack, page, ms: float) -> None:
    """The recordings page zoomed to the local hour holding `ms` (the page's own view is
    the hour of now, which a run that began before the hour turned does not start in)."""
    page.goto(stack.url + f"/recordings/cam1?zoom=hour&focus={ms / 1000:.3f}")
    page.locator("[data-runs-loaded]").wait_for()


def span_in_one_hour(stack, page, seconds: float) -> float:
    """Wait until cam1 has a run holding `seconds` (2 s in from its start, 4 s before its
    end) inside one local hour, the most the hour view shows; return the earliest start
    of such a span (ms)."""
    length_ms = seconds * 1000

    def found():
        run = longest_run(stack, page)
        if run is None:
            return None
        lo, hi = run["start_us"] / 1000 + 2000, run["end_us"] / 1000 - 4000
        hour = dt.datetime.fromtimestamp(lo / 1000).replace(minute=0, second=0, microsecond=0)
        next_hour_ms = (hour + dt.timedelta(hours=1)).timestamp() * 1000
        start = lo if lo + length_ms < next_hour_ms else next_hour_ms + 2000
        return start if start + length_ms <= hi else None
    return poll(found, RUN_WAIT_S + seconds, 1.0, f"a recorded run of {seconds} s in one hour")


def video_time(page) -> float:
    return page.evaluate("document.querySelector('[data-video]').currentTime")


# ----------------------------------------------------------------------- wizard

def test_first_run_wizard(stack, browser):
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.goto(stack.url + "/")
    assert page.locator("h1").inner_text() == "Welcome to picorder"
    screenshot(stack, page, "setup-admin-desktop")

    # 1. The admin account; a short password is refused next to its field.
    page.fill("#username", ADMIN[0])
    page.fill("#password", "short")
    page.fill("#confirm", "short")
    page.click("main button[type=submit]")
    assert "at least 8 characters" in field_error(page, "password")
    assert stack.config_rows(User) == []
    page.fill("#password", ADMIN[1])
    page.fill("#confirm", ADMIN[1])
    page.click("main button[type=submit]")
    page.wait_for_url(stack.url + "/setup/clock")

    # 2. Clock: the box's clock next to the browser's; they agree, so nothing is offered.
    page.locator("[data-clock-diff]").wait_for()
    poll(lambda: page.locator("[data-clock-diff]").inner_text(), 5, what="the clock comparison")
    assert page.locator("[data-clock]").get_attribute("data-offer") == "0"
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", page.locator("[data-box-time]").inner_text())
    screenshot(stack, page, "setup-clock-desktop")
    page.click("[data-next]")

    # 3. Disk: adopt the data directory's recordings directory, as the demo does.
    page.wait_for_url(stack.url + "/setup/disk")
    recordings = stack.paths.default_recordings
    recordings.mkdir(exist_ok=True)
    page.fill("#adopt-path", str(recordings))
    page.check("input[name=allow_root_device]")
    page.click("[data-adopt-dir] button[type=submit]")
    page.locator(".flash").first.wait_for()
    assert page.locator(".flash.success").count() == 1, page.locator(".flash").first.inner_text()
    poll(lambda: (page.reload() or True) and page.locator("[data-storage-root]").inner_text() == str(recordings),
         15, 0.5, "the recorder to record into the adopted directory")
    assert page.locator("[data-adopted]").count() == 1
    screenshot(stack, page, "setup-disk-desktop")
    page.click("[data-next]")

    # 4. First camera, tested before it is saved.
    page.wait_for_url(stack.url + "/setup/camera")
    page.fill("#f-name", "porch")
    page.fill("#f-main_url", stack.sim.url(2))
    page.click("[data-probe-button]")
    box = page.locator("[data-probe]")
    poll(lambda: box.get_attribute("data-probe-state") in ("ok", "failed", "error"), PROBE_TIMEOUT_S,
         0.2, "the stream test")
    assert box.get_attribute("data-probe-state") == "ok", box.inner_text()
    assert page.locator("[data-probe-codec]").inner_text() == "H.264"
    assert page.locator("[data-probe-resolution]").inner_text() == "640 × 360"
    fps = float(page.locator("[data-probe-fps]").inner_text().split()[0])
    assert abs(fps - FPS) < 1.5
    assert float(page.locator("[data-probe-bitrate]").inner_text().split()[0]) > 100
    assert float(page.locator("[data-probe-gop]").inner_text().split()[0]) == pytest.approx(1.0, abs=0.2)
    assert page.locator("[data-probe-warning]").count() == 0
    snapshot = page.locator("[data-probe-snapshot]")
    poll(lambda: page.evaluate("img => img.complete && img.naturalWidth", snapshot.element_handle()),
         10, what="the probe snapshot")
    assert page.evaluate("img => [img.naturalWidth, img.naturalHeight]", snapshot.element_handle()) == [640, 360]
    screenshot(stack, page, "setup-camera-desktop")
    page.click("form[data-camera-form] button[type=submit]")

    # 5. Retention, 6. done.
    page.wait_for_url(stack.url + "/setup/retention")
    page.fill("#f-default_max_age_days", "30")
    page.click("main button[type=submit]")
    page.wait_for_url(stack.url + "/setup/done")
    screenshot(stack, page, "setup-done-desktop")
    page.click("[data-finish]")
    page.wait_for_url(stack.url + "/")
    cards = page.locator("[data-camera]")
    assert sorted(cards.evaluate_all("els => els.map(e => e.dataset.camera)")) == ["cam1", "porch"]

    cams = {c.name: c for c in stack.config_rows(Camera)}
    assert cams["porch"].main_url == stack.sim.url(2) and cams["porch"].max_age_days == 30
    settings = {s.key: s.value for s in stack.config_rows(Setting)}
    assert settings["setup_wizard"] == "done"
    assert [(u.username, u.role) for u in stack.config_rows(User)] == [(ADMIN[0], "admin")]
    context.close()


def test_clock_step_offers_the_browser_time_when_the_box_is_unsynchronised(stack, browser):
    """A browser one hour ahead: the offer appears exactly when the box's clock is untrusted.

    The button is not pressed: set_clock would really step this machine's clock.
    """
    page = sign_in(stack, browser)
    page.clock.install(time=dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1))
    page.goto(stack.url + "/setup/clock")
    box = page.locator("[data-clock]")
    poll(lambda: "behind" in page.locator("[data-clock-diff]").inner_text(), 5, 0.2, "the comparison")
    assert "1 h 0 min" in page.locator("[data-clock-diff]").inner_text()
    untrusted = box.get_attribute("data-trusted") == "0"
    assert page.locator("[data-set-clock]").is_visible() == untrusted
    assert box.get_attribute("data-offer") == ("1" if untrusted else "0")
    if untrusted:
        screenshot(stack, page, "setup-clock-offer-desktop")
    page.context.close()


# ----------------------------------------------------------------------- bad input

def test_bad_input_is_shown_by_the_field_and_nothing_is_saved(stack, browser):
    page = sign_in(stack, browser)
    before = [(c.name, c.main_url, c.max_age_days, c.min_days) for c in stack.config_rows(Camera)]
    settings = {s.key: s.value for s in stack.config_rows(Setting)}

    page.goto(stack.url + "/cameras/new")
    page.fill("#f-name", "Bad Name!")
    page.fill("#f-main_url", "ftp://camera.lan/stream")
    page.fill("#f-max_age_days", "-2")
    page.click("form[data-camera-form] button[type=submit]")
    assert "lower-case letters" in field_error(page, "name")
    assert "rtsp://" in field_error(page, "main_url")
    assert "greater than zero" in field_error(page, "max_age_days")
    screenshot(stack, page, "bad-input-camera-desktop")

    page.goto(stack.url + "/cameras/porch/edit")
    page.fill("#f-main_url", "rtsp://camera.lan:99999/x")
    page.click("form[data-camera-form] button[type=submit]")
    assert "port" in field_error(page, "main_url")

    page.goto(stack.url + "/storage")
    page.fill("#floor_gb", "-5")
    page.click("form[data-form=retention] button[type=submit]")
    assert "greater than zero" in field_error(page, "floor_gb")
    page.fill("#age-cam1", "3")
    page.fill("#min-cam1", "7")
    page.click("form[data-form=cam-cam1] button[type=submit]")
    assert "maximum age" in field_error(page, "min_days")
    if not page.locator("#adopt-path").is_visible():
        page.locator("[data-adopt-dir] summary").click()
    page.fill("#adopt-path", "not/absolute")
    page.click("[data-adopt-dir] button[type=submit]")
    assert "full path" in field_error(page, "path")

    page.goto(stack.url + "/system")
    users_before = len(stack.config_rows(User))
    page.fill("#new-username", "vera")
    page.fill("#new-password", "short")
    page.click("form[data-form=user] button[type=submit]")
    assert "at least 8" in field_error(page, "password")
    page.fill("#token-name", "")
    page.click("form[data-form=token] button[type=submit]")
    assert "name" in field_error(page, "name")
    page.set_input_files("#backup-file", files=[{"name": "b.json", "mimeType": "application/json",
                                                 "buffer": b'{"format": "something else"}'}])
    page.once("dialog", lambda d: d.accept())
    page.click("form[data-form=restore] button[type=submit]")
    assert "not a picorder backup" in field_error(page, "backup")
    page.click("form[data-form=power] button[type=submit]")
    assert "confirm" in field_error(page, "confirm")

    assert [(c.name, c.main_url, c.max_age_days, c.min_days) for c in stack.config_rows(Camera)] == before
    assert {s.key: s.value for s in stack.config_rows(Setting)} == settings
    assert len(stack.config_rows(User)) == users_before
    assert stack.config_rows(ApiToken) == []
    assert page.js_errors == []

    anonymous = browser.new_context(viewport=PHONE).new_page()
    anonymous.goto(stack.url + "/auth/login")
    anonymous.fill("#username", ADMIN[0])
    anonymous.fill("#password", "wrong password")
    anonymous.click("main button[type=submit]")
    assert "wrong user name or password" in field_error(anonymous, "password")
    screenshot(stack, anonymous, "login-error-phone")
    anonymous.context.close()
    page.context.close()


# ----------------------------------------------------------------------- live

def test_live_tile_plays_moving_video(stack, browser):
    page = sign_in(stack, browser)
    page.goto(stack.url + "/live")
    tile = page.locator('[data-live-tile][data-camera="cam1"]')
    assert tile.get_attribute("data-grid-stream") == "sub"
    video = tile.locator("video").element_handle()
    poll(lambda: tile.get_attribute("data-live-mode") == "mse"
         and page.evaluate("v => v.currentTime > 0 && !v.paused", video), 20, 0.2, "the live stream to start")
    start = page.evaluate("v => v.currentTime", video)
    time.sleep(LIVE_WINDOW_S)
    advanced = page.evaluate("v => v.currentTime", video) - start
    assert advanced >= LIVE_MIN_ADVANCE_S, f"currentTime advanced only {advanced:.2f} s in {LIVE_WINDOW_S} s"
    screenshot(stack, page, "live-desktop")

    tile.click()
    assert "enlarged" in tile.get_attribute("class")
    poll(lambda: page.evaluate("t => t.player.stream", tile.element_handle()) == "main"
         and tile.get_attribute("data-live-mode") == "mse"
         and page.evaluate("v => v.currentTime > 0 && !v.paused", tile.locator("video").element_handle()),
         20, 0.2, "the enlarged tile to play the main stream")
    screenshot(stack, page, "live-enlarged-desktop")
    page.keyboard.press("Escape")
    assert "enlarged" not in tile.get_attribute("class")
    assert page.js_errors == []
    page.context.close()


def test_live_uses_managed_media_source_or_falls_back_to_snapshots(stack, browser):
    # iPhone: ManagedMediaSource and no MediaSource (Chromium's MediaSource stands in for it).
    page = sign_in(stack, browser, PHONE)
    page.add_init_script("window.ManagedMediaSource = class extends MediaSource {};"
                         "delete window.MediaSource;")
    page.goto(stack.url + "/live")
    tile = page.locator('[data-live-tile][data-camera="cam1"]')
    video = tile.locator("video").element_handle()
    poll(lambda: tile.get_attribute("data-live-mode") == "mse"
         and page.evaluate("v => v.currentTime > 1 && v.disableRemotePlayback", video),
         20, 0.2, "playback through ManagedMediaSource")
    screenshot(stack, page, "live-phone-mms")
    page.context.close()

    # No MSE at all: JPEG snapshots, refreshed.
    page = sign_in(stack, browser, PHONE)
    page.add_init_script("delete window.MediaSource; delete window.ManagedMediaSource;")
    page.goto(stack.url + "/live")
    tile = page.locator('[data-live-tile][data-camera="cam1"]')
    img = tile.locator("img").element_handle()
    poll(lambda: tile.get_attribute("data-live-mode") == "snapshots"
         and page.evaluate("i => i.complete && i.naturalWidth > 0", img), 20, 0.2, "a snapshot")
    first = page.evaluate("i => i.src", img)
    poll(lambda: page.evaluate("i => i.src", img) != first, 10, 0.2, "the snapshot to refresh")
    assert page.evaluate("i => i.naturalWidth", img) == 320         # the sub stream
    page.context.close()


# ----------------------------------------------------------------------- recordings

def test_click_on_the_timeline_plays_from_that_time_and_seeking_works(stack, browser):
    page = sign_in(stack, browser)
    run = wait_for_run(stack, page, CLICK_INTO_RUN_S + 20)
    target_ms = run["start_us"] / 1000 + CLICK_INTO_RUN_S * 1000
    open_hour_view(stack, page, target_ms)
    x, y = timeline_point(page, target_ms)
    clicked_ms = page.evaluate("x => document.querySelector('[data-timeline]').timeline.timeAt(x)", x)
    page.mouse.click(x, y)
    poll(lambda: video_time(page) > 0.3, 15, 0.05, "the video to play")
    shown_ms, text = page.evaluate("() => { const c = document.querySelector('[data-wallclock]');"
                                   " return [Number(c.dataset.wallMs), c.textContent]; }")
    assert abs(shown_ms - clicked_ms) <= WALL_TOLERANCE_S * 1000, (shown_ms, clicked_ms)
    assert text == dt.datetime.fromtimestamp(shown_ms / 1000).strftime("%H:%M:%S")
    assert not page.evaluate("document.querySelector('[data-video]').paused")

    # A seek inside the video (what the native controls do) moves the wall clock with it.
    page.evaluate("document.querySelector('[data-video]').currentTime = 12")
    poll(lambda: 12 <= video_time(page) < 14, 10, 0.05, "the seek")
    poll(lambda: video_time(page) > 12.5, 10, 0.05, "playback after the seek")
    media = video_time(page)
    shown_ms = int(page.locator("[data-wallclock]").get_attribute("data-wall-ms"))
    assert abs(shown_ms - (clicked_ms + media * 1000)) <= WALL_TOLERANCE_S * 1000
    head = page.evaluate("document.querySelector('[data-timeline]').timeline.playhead")
    assert abs(head - shown_ms) < 1000
    screenshot(stack, page, "recordings-playing-desktop")
    assert page.js_errors == []
    page.context.close()


def test_download_a_selected_range(stack, browser, tmp_path):
    page = sign_in(stack, browser, accept_downloads=True)
    a_ms = span_in_one_hour(stack, page, DOWNLOAD_S)
    open_hour_view(stack, page, a_ms)
    page.click("[data-select-mode]")
    x1, y = timeline_point(page, a_ms)
    x2, _ = timeline_point(page, a_ms + DOWNLOAD_S * 1000)
    page.mouse.move(x1, y)
    page.mouse.down()
    page.mouse.move((x1 + x2) / 2, y, steps=4)
    page.mouse.move(x2, y, steps=4)
    page.mouse.up()
    start_text = page.input_value("[data-range-start]")
    assert start_text and page.input_value("[data-range-end]")
    start = dt.datetime.fromisoformat(start_text)   # Chromium leaves out ":00" seconds
    # Make it exactly DOWNLOAD_S by typing the end, as a user would.
    page.fill("[data-range-end]", (start + dt.timedelta(seconds=DOWNLOAD_S)).strftime("%Y-%m-%dT%H:%M:%S"))
    assert page.locator("[data-range-length]").inner_text() == "45 s"
    screenshot(stack, page, "recordings-range-desktop")
    with page.expect_download() as info:
        page.click("[data-download]")
    out = tmp_path / "range.mp4"
    info.value.save_as(out)
    probe = ffprobe_json(out)
    assert probe["streams"][0]["codec_name"] == "h264"
    # The selected 45 s of wall time, as the index maps them to the camera's time: the
    # recorder's drift correction may move a run's segments by up to 1 % of their length
    # (docs/time.md), so the file can hold a little more or less than 45 s of frames.
    start_us = int(start.timestamp() * 1e6)
    media_s = range_media_s(rows(stack.paths.default_recordings / "picorder", "cam1"),
                            start_us, start_us + DOWNLOAD_S * 1_000_000)
    assert abs(media_s - DOWNLOAD_S) <= 0.01 * DOWNLOAD_S, media_s
    duration = float(probe["format"]["duration"])
    assert abs(duration - media_s) <= 1 / FPS + 1e-3, (duration, media_s)
    assert abs(int(probe["streams"][0]["nb_read_frames"]) - media_s * FPS) <= 1
    page.context.close()


# ----------------------------------------------------------------------- screenshots

SCREENSHOT_PAGES = [("dashboard", "/"), ("live", "/live"), ("recordings", "/recordings/cam1"),
                    ("storage", "/storage"), ("system", "/system"), ("camera", "/cameras/porch/edit")]


@pytest.mark.parametrize("viewport, suffix", [(DESKTOP, "desktop"), (PHONE, "phone")])
def test_screenshots_of_every_page(stack, browser, viewport, suffix):
    page = sign_in(stack, browser, viewport)
    for name, path in SCREENSHOT_PAGES:
        page.goto(stack.url + path)
        if name == "live":
            page.wait_for_timeout(3000)            # live.mp4 never goes idle
        else:
            page.wait_for_load_state("networkidle")
        if name == "recordings":
            page.locator("[data-runs-loaded]").wait_for()
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"{path} is wider than the {viewport['width']} px screen by {overflow} px"
        shot = screenshot(stack, page, f"{name}-{suffix}")
        assert shot.stat().st_size > 5000
    assert page.js_errors == []
    page.context.close()
