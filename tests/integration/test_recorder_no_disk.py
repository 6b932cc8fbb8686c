"""With nothing adopted, the recorder records nothing anywhere and says why."""

import subprocess
import sys
import time

import pytest

from recorder import control
from recorder.paths import DataPaths
from helpers.recorder import PROJECT, add_camera, wait_for

pytestmark = pytest.mark.integration


def test_nothing_adopted_means_nothing_recorded(tmp_path, sim_cameras):
    sim = sim_cameras(cameras=1)
    data = tmp_path / "data"
    add_camera(data, "cam1", sim.url(1))
    proc = subprocess.Popen([sys.executable, "-m", "picorder", "--data", str(data), "recorder"],
                            cwd=PROJECT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sock = DataPaths(data).control_socket
    try:
        status = wait_for(lambda: _status(sock), 15, "the recorder's control socket")
        time.sleep(5)                  # long enough for ffmpeg to have written a fragment
        status = _status(sock)
    finally:
        proc.terminate()
        proc.wait(15)
    assert status["storage"]["state"] == "no disk"
    assert [s["pid"] for s in status["streams"] if s["pid"]] == []
    assert all(s["problem"] == "disk missing" for s in status["streams"]), status["streams"]
    assert list(tmp_path.rglob("*.mp4")) == []
    assert not DataPaths(data).default_recordings.exists()


def _status(sock):
    try:
        return control.request(sock, "status", timeout=5)
    except control.RecorderUnavailable:
        return None
