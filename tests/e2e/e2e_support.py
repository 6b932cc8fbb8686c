"""Helpers of the end-to-end tests: the stack of real parts, signing in, polling, screenshots."""

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from helpers import PROJECT
from helpers.front import stop as stop_process
from helpers.waiting import wait_for
from recorder import config, storage
from recorder.config import Camera, Setting
from recorder.paths import DataPaths
from recorder.sim.launcher import SimCameras, free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--autoplay-policy=no-user-gesture-required"]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
SEGMENT_SECONDS = 6
FLOOR_BYTES = 512 * 1024 ** 2
START_TIMEOUT_S = 30
ADMIN = ("admin", "e2e-admin-password")
SCREENSHOT_ENV = "PICORDER_E2E_SCREENSHOTS"     # also copy screenshots into this directory


@dataclass
class Stack:
    """The running parts: cameras, recorder, panel."""

    url: str
    paths: DataPaths
    sim: SimCameras
    shots: Path
    procs: list = field(default_factory=list)
    logs: dict = field(default_factory=dict)

    def config_rows(self, model):
        """Rows of a config.db table, read with a fresh connection."""
        config.db.connect(reuse_if_open=True)
        try:
            return list(model.select())
        finally:
            config.db.close()

    def log_tail(self, name: str, chars: int = 3000) -> str:
        path = self.logs.get(name)
        return path.read_text(errors="replace")[-chars:] if path and path.exists() else ""


def wait_http(url: str, proc: subprocess.Popen, what: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited with {proc.returncode}: {log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return                      # it answers (401 before sign-in is fine)
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"{what} did not answer within {START_TIMEOUT_S} s: {log.read_text()[-3000:]}")


def wait_socket(path: Path, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"the recorder did not open its control socket: {log.read_text()[-3000:]}")
        time.sleep(0.1)


def seed_config(paths: DataPaths, sim: SimCameras, segment_seconds: int = SEGMENT_SECONDS,
                cameras: int = 1, adopt: bool = False) -> None:
    """What `picorder demo` puts into a fresh box: short segments and one camera with a sub stream.

    More cameras (main stream only) and the data directory's recordings directory
    adopted (instead of adopting it through the wizard) when asked.
    """
    config.open_config(paths.config_db)
    try:
        Setting.write("segment_seconds", str(segment_seconds))
        # A fixed free-space floor: the default follows how fast free space shrinks, and on
        # a build machine other jobs' writes would make retention delete these recordings.
        Setting.write("storage_floor_bytes", str(FLOOR_BYTES))
        Camera.create(name="cam1", display_name="Front door", main_url=sim.url(1),
                      sub_url=sim.url(1, sub=True))
        for n in range(2, cameras + 1):
            Camera.create(name=f"cam{n}", display_name=f"Camera {n}", main_url=sim.url(n))
        if adopt:
            storage.adopt_demo_directory(paths)
    finally:
        config.db.close()


@contextmanager
def running_stack(base: Path, *, segment_seconds: int = SEGMENT_SECONDS, cameras: int = 1,
                  adopt: bool = False, recorder_env: dict | None = None, stamp: bool = False,
                  scenes: tuple = ()):
    """Simulated cameras + `picorder recorder` + the panel under gunicorn, on a fresh box in base.

    `recorder_env`: more of the recorder's environment (for instance its PATH); `stamp`:
    the cameras burn each frame's wall time into the picture (tests/integration/stamps.py);
    `scenes`: camera N plays scripted scene N (recorder/sim/scenes.py), whose start times
    go to base/truth.jsonl.
    """
    if not shutil.which("ffmpeg"):
        pytest.fail("ffmpeg is not installed: run `make test`, which installs it")
    paths = DataPaths(base / "data")
    paths.ensure()
    shots = base / "screenshots"
    shots.mkdir()
    sim = SimCameras(cameras=2, fps=15, gop=15, kbps=600, width=640, height=360,
                     patterns="picture", stamp=stamp, scenes=list(scenes),
                     scene_truth=base / "truth.jsonl" if scenes else None).start()
    port = free_port()
    st = Stack(f"http://127.0.0.1:{port}", paths, sim, shots)
    env = dict(os.environ, PICORDER_DATA=str(paths.root), PICORDER_PANEL_BIND=f"127.0.0.1:{port}",
               PYTHONUNBUFFERED="1")
    try:
        seed_config(paths, sim, segment_seconds, cameras, adopt)
        st.logs["recorder"] = base / "recorder.log"
        # Like the appliance: record only onto what is adopted (by the wizard, or above).
        recorder = spawn([sys.executable, "-m", "picorder", "recorder", "--data", str(paths.root)],
                         dict(env, PICORDER_STORAGE="disks", **(recorder_env or {})),
                         st.logs["recorder"])
        st.procs.append(recorder)
        wait_socket(paths.control_socket, recorder, st.logs["recorder"])
        st.logs["panel"] = base / "panel.log"
        panel = spawn([sys.executable, "-m", "gunicorn", "-c", str(PROJECT / "gunicorn.conf.py"),
                       "webpanel:create_app()"], env, st.logs["panel"])
        st.procs.append(panel)
        wait_http(st.url + "/static/css/app.css", panel, "the panel", st.logs["panel"])
        yield st
    finally:
        for proc in reversed(st.procs):
            stop_process(proc)
        sim.stop()


def spawn(argv, env, log: Path) -> subprocess.Popen:
    out = open(log, "wb")
    try:
        return subprocess.Popen(argv, cwd=PROJECT, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    finally:
        out.close()




def api_json(stack: Stack, page, path: str) -> dict:
    """GET a JSON API route with the page's session."""
    response = page.request.get(stack.url + path)
    assert response.ok, f"{path}: {response.status} {response.text()[:300]}"
    return response.json()


def sign_in(stack: Stack, browser, viewport=DESKTOP, **context_args):
    """A new page signed in as the admin (created through the first-run form if needed)."""
    context = browser.new_context(viewport=viewport, **context_args)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.js_errors = errors
    page.goto(stack.url + "/system")
    if page.locator("#confirm").count():
        page.fill("#username", ADMIN[0])
        page.fill("#password", ADMIN[1])
        page.fill("#confirm", ADMIN[1])
        with page.expect_navigation():
            page.click("main button[type=submit]")
        page.goto(stack.url + "/setup/done")
        with page.expect_navigation():
            page.click("[data-finish]")
    elif page.locator("#password").count():
        page.fill("#username", ADMIN[0])
        page.fill("#password", ADMIN[1])
        with page.expect_navigation():
            page.click("main button[type=submit]")
    assert page.locator("[data-page=system]").count() or page.url.endswith("/"), page.url
    return page


def poll(fn, timeout: float, interval: float = 0.1, what: str = "condition"):
    """helpers.waiting.wait_for, in the argument order of the e2e tests."""
    return wait_for(fn, timeout, what, interval)


def screenshot(stack: Stack, page, name: str) -> Path:
    """Save a screenshot into the stack's directory (and $PICORDER_E2E_SCREENSHOTS)."""
    path = stack.shots / f"{name}.png"
    page.evaluate("window.scrollTo(0, 0)")         # the sticky header stays on top of the image
    page.screenshot(path=str(path), full_page=True)
    extra = os.environ.get(SCREENSHOT_ENV)
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, Path(extra) / path.name)
    return path


def ffprobe_json(path: Path) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-show_entries",
                          "format=duration:stream=codec_name,nb_read_frames,r_frame_rate",
                          "-of", "json", str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)
