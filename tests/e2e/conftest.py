"""End-to-end fixtures: simulated cameras, the real recorder and the panel under gunicorn, Chromium.

One stack is shared by every test of a module (recordings need minutes of video),
with short segments so that the index follows closely behind the cameras.
"""

import os
import shutil
import sys
from pathlib import Path

import pytest

from e2e_support import (CHROMIUM, CHROMIUM_ARGS, PROJECT_ROOT, SimCameras, Stack, spawn, stop_process,
                         wait_http, wait_socket, seed_config)
from recorder.paths import DataPaths
from recorder.sim.launcher import free_port


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """Simulated cameras + `picorder recorder` + the panel under gunicorn, on a fresh box."""
    if not shutil.which("ffmpeg"):
        pytest.fail("ffmpeg is not installed: run `make test`, which installs it")
    base = tmp_path_factory.mktemp("e2e")
    paths = DataPaths(base / "data")
    paths.ensure()
    shots = base / "screenshots"
    shots.mkdir()
    sim = SimCameras(cameras=2, fps=15, gop=15, kbps=600, width=640, height=360,
                     patterns="picture").start()
    port = free_port()
    st = Stack(f"http://127.0.0.1:{port}", paths, sim, shots)
    env = dict(os.environ, PICORDER_DATA=str(paths.root), PICORDER_PANEL_BIND=f"127.0.0.1:{port}",
               PYTHONUNBUFFERED="1")
    try:
        seed_config(paths, sim)
        st.logs["recorder"] = base / "recorder.log"
        # Like the appliance: record only onto what the wizard adopts.
        recorder = spawn([sys.executable, "-m", "recorder", "recorder", "--data", str(paths.root)],
                          dict(env, PICORDER_STORAGE="disks"), st.logs["recorder"])
        st.procs.append(recorder)
        wait_socket(paths.control_socket, recorder, st.logs["recorder"])
        st.logs["panel"] = base / "panel.log"
        panel = spawn([sys.executable, "-m", "gunicorn", "-c", str(PROJECT_ROOT / "gunicorn.conf.py"),
                        "webpanel:create_app()"], env, st.logs["panel"])
        st.procs.append(panel)
        wait_http(st.url + "/static/css/app.css", panel, "the panel", st.logs["panel"])
        yield st
    finally:
        for proc in reversed(st.procs):
            stop_process(proc)
        sim.stop()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed: run `make test`, which installs it")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


