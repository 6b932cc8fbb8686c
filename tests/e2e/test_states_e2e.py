"""States that never lie, and the clock's way out, in a real Chromium (issue 12, points 6 and 7).

The stack of this module: simulated cameras, the real recorder recording into a
directory, the panel under gunicorn. Three cameras: one good, one with a wrong
RTSP path (the server answers 404), one at an address that takes the connection
and never answers. Nothing synchronises the recorder's clock (timedatectl is
kept off its PATH), so it starts untrusted, as a Pi without NTP does.
"""

import socket
import sqlite3
from pathlib import Path

import pytest

from e2e_support import api_json, poll, running_stack, screenshot, sign_in
from recorder import config, limits
from recorder.config import Camera

pytestmark = pytest.mark.integration

BAD = "rgb(207, 34, 46)"                    # --bad in app.css
FAIL_WAIT_S = 60                            # the silent camera fails after ffmpeg's 30 s
RETRIES_WAIT_S = 60
PROBE_WAIT_S = 40


def path_without_timedatectl(base: Path) -> str:
    """A PATH like the system's, minus timedatectl: the recorder cannot learn that NTP syncs."""
    bin_dir = base / "bin"
    bin_dir.mkdir()
    for directory in ("/usr/local/bin", "/usr/bin", "/bin"):
        for entry in Path(directory).iterdir() if Path(directory).is_dir() else []:
            target = bin_dir / entry.name
            if entry.name != "timedatectl" and not target.exists():
                target.symlink_to(entry)
    return f"{bin_dir}:/usr/local/sbin:/usr/sbin:/sbin"


@pytest.fixture(scope="module")
def silent_address():
    """A port that takes TCP connections (the kernel's backlog) and never says a word."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    yield sock.getsockname()
    sock.close()


@pytest.fixture(scope="module")
def states_stack(tmp_path_factory, silent_address):
    base = tmp_path_factory.mktemp("states")
    with running_stack(base, adopt=True, recorder_env={"PATH": path_without_timedatectl(base)}) as st:
        host, silent_port = silent_address
        config.open_config(st.paths.config_db)
        try:                                    # the recorder reloads its cameras within 2 s
            Camera.create(name="badpath", display_name="Garage",
                          main_url=st.sim.url(1).replace("cam1", "nosuch"))
            Camera.create(name="silent", display_name="Yard",
                          main_url=f"rtsp://{host}:{silent_port}/live")
        finally:
            config.db.close()
        yield st


def card(page, name: str):
    return page.locator(f'[data-camera="{name}"]')


def badge(page, name: str) -> str:
    return card(page, name).locator("[data-state]").inner_text()


def since_us(page, name: str) -> str | None:
    since = card(page, name).locator("[data-since] time")
    return since.get_attribute("data-us") if since.count() else None


def restarts(st, page, name: str) -> int:
    return api_json(st, page, f"/api/cameras/{name}")["streams"][0]["restarts"]


def index_rows(st) -> list[tuple[str, int]]:
    """(camera, clock_trusted) of every indexed segment, read-only."""
    db = st.paths.default_recordings / "picorder" / "index.db"
    if not db.exists():
        return []
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
        return conn.execute("SELECT camera, clock_trusted FROM segment").fetchall()


# ------------------------------------------------------------------ point 6

def test_failing_cameras_say_what_is_wrong_since_their_first_failure(states_stack, browser):
    st = states_stack
    page = sign_in(st, browser)
    page.goto(st.url + "/")

    # The wrong path: named, red, an alert, from the first failure on.
    poll(lambda: badge(page, "badpath") == "no stream at this path", 30, 0.5, "the 404 state")
    problem = card(page, "badpath").locator("[data-problem]")
    assert problem.get_attribute("role") == "alert"
    assert problem.evaluate("el => getComputedStyle(el).color") == BAD
    assert "no stream at this path since" in problem.inner_text()
    first_since = since_us(page, "badpath")
    assert first_since
    tries = restarts(st, page, "badpath")
    poll(lambda: restarts(st, page, "badpath") >= tries + 2, RETRIES_WAIT_S, 1, "two more retries")
    page.wait_for_timeout(6000)                     # a refresh of the cards after the retries
    assert badge(page, "badpath") == "no stream at this path"
    assert since_us(page, "badpath") == first_since

    # The camera that never answers: "no answer", and it does not flip back to "starting"
    # while the recorder tries again. The first retry starts about 1 s after the first
    # failure, often before the card shows it: watched from then, well inside the retry's
    # RTSP_IO_TIMEOUT_S of "starting" (waiting for the next retry took 30 s more).
    poll(lambda: badge(page, "silent") == "no answer from the camera", FAIL_WAIT_S, 0.5,
         "the silent camera's state")
    silent_since = since_us(page, "silent")
    seen, states = set(), set()
    def retried():
        seen.add((badge(page, "silent"), since_us(page, "silent")))
        stream = api_json(st, page, "/api/cameras/silent")["streams"][0]
        states.add(stream["state"])
        return stream["restarts"] >= 1
    poll(retried, FAIL_WAIT_S, 0.5, "a retry of the silent camera")
    for _ in range(10):                             # and a while into that retry
        page.wait_for_timeout(1000)
        retried()
    assert seen == {("no answer from the camera", silent_since)}
    assert "STARTING" in states, states             # watched while a retry was under way

    # The good camera records; the summary counts the two others.
    poll(lambda: badge(page, "cam1") == "recording", 30, 0.5, "cam1 recording")
    assert card(page, "cam1").locator("[data-problem]").count() == 0
    summary = page.locator("[data-summary-text]")
    assert summary.inner_text() == "2 of 3 cameras have problems."
    assert summary.get_attribute("role") == "alert"
    assert summary.evaluate("el => getComputedStyle(el).color") == BAD
    page.reload()
    order = page.locator("[data-camera]").evaluate_all("els => els.map(e => e.dataset.camera)")
    assert order.index("cam1") == 2                 # problems first (as the page was loaded)
    status = api_json(st, page, "/api/status")
    words = {s["camera"]: s["health"]["words"] for s in status["streams"]}
    assert words == {"cam1": "recording", "badpath": "no stream at this path",
                     "silent": "no answer from the camera"}
    screenshot(st, page, "dashboard-problems-desktop")
    assert page.js_errors == []
    page.context.close()


def test_a_failed_test_is_an_alert_and_saving_tests_first(states_stack, browser):
    st = states_stack
    page = sign_in(st, browser)

    # Test on the edit page of the camera with the wrong path: red, role=alert.
    page.goto(st.url + "/cameras/badpath/edit")
    page.click("[data-probe-button]")
    box = page.locator("[data-probe]")
    poll(lambda: box.get_attribute("data-probe-state") in ("ok", "failed", "error"), PROBE_WAIT_S,
         0.2, "the stream test")
    status = page.locator("[data-probe-status]")
    assert box.get_attribute("data-probe-state") == "failed"
    assert "no stream at this path" in status.inner_text()
    assert status.get_attribute("role") == "alert"
    assert status.evaluate("el => getComputedStyle(el).color") == BAD
    screenshot(st, page, "camera-test-failed-desktop")

    # A new camera with a wrong path: saving tests it, says what failed, saves nothing yet.
    page.goto(st.url + "/cameras/new")
    page.fill("#f-name", "shed")
    page.fill("#f-main_url", st.sim.url(2).replace("cam2", "wrong"))
    page.click("form[data-camera-form] button[type=submit]")
    anyway = page.locator("[data-save-anyway]")
    anyway.wait_for(state="visible", timeout=PROBE_WAIT_S * 1000)
    assert "no stream at this path" in status.inner_text()
    assert "shed" not in [c.name for c in st.config_rows(Camera)]
    screenshot(st, page, "camera-save-test-failed-desktop")
    with page.expect_navigation():
        anyway.locator("button").click()
    flash = page.locator(".flash").first
    assert "warning" in flash.get_attribute("class") and flash.get_attribute("role") == "alert"
    assert "but its test failed (no stream at this path" in flash.inner_text()
    assert "Recording starts" not in flash.inner_text()
    assert "shed" in [c.name for c in st.config_rows(Camera)]

    # A good camera: the test runs on save and the message says what it found.
    page.goto(st.url + "/cameras/new")
    page.fill("#f-name", "porch")
    page.fill("#f-main_url", st.sim.url(2))
    with page.expect_navigation(timeout=PROBE_WAIT_S * 1000):
        page.click("form[data-camera-form] button[type=submit]")
    flash = page.locator(".flash").first
    assert "success" in flash.get_attribute("class")
    assert "the test found H.264 640 × 360" in flash.inner_text()
    assert "Recording starts within a few seconds" in flash.inner_text()
    assert page.js_errors == []
    page.context.close()


# ------------------------------------------------------------------ point 7

def test_trust_this_time_trusts_the_clock_and_reanchors_the_recordings(states_stack, browser):
    st = states_stack
    page = sign_in(st, browser)
    poll(lambda: sum(1 for cam, trusted in index_rows(st) if cam == "cam1" and not trusted) >= 2,
         60, 1, "two cam1 segments recorded on the untrusted clock")
    page.goto(st.url + "/setup/clock")
    box = page.locator("[data-clock]")
    assert box.get_attribute("data-trusted") == "0"
    poll(lambda: page.locator("[data-clock-diff]").inner_text().startswith("The clocks agree"), 5,
         0.2, "the comparison")
    trust = page.locator("[data-trust-clock]")
    assert trust.is_visible() and not page.locator("[data-set-clock]").is_visible()
    assert "clock not trusted" in page.locator("[data-untrusted-explained]").inner_text()
    screenshot(st, page, "setup-clock-trust-desktop")

    with page.expect_navigation():
        trust.locator("button").click()
    assert "The box's clock is trusted now" in page.locator(".flash").first.inner_text()
    assert page.locator("[data-clock]").get_attribute("data-trusted") == "1"
    assert not page.locator("[data-trust-clock]").is_visible()
    # Another gunicorn worker may answer from its status cache (STATUS_CACHE_S) for a moment.
    def api_clock():
        clock = api_json(st, page, "/api/status")["clock"]
        return clock["trusted"], clock["source"]

    poll(lambda: api_clock() == (True, "panel"), 3 * limits.STATUS_CACHE_S, 0.2,
         "the API to say the clock is trusted")
    poll(lambda: all(trusted for cam, trusted in index_rows(st) if cam == "cam1"), 15, 0.5,
         "the untrusted rows re-anchored")
    assert sum(1 for cam, _ in index_rows(st) if cam == "cam1") >= 2
    assert page.js_errors == []
    page.context.close()
