"""Shutdown finishes within its budget even when index writes hang (a dying disk)."""

import signal
import threading
import time

import pytest

from recorder import limits
from recorder.index import tables
from recorder.paths import DataPaths
from recorder.events import SignalEvent
from recorder.service import Recorder
from recorder.sim.launcher import SimCameras
from recorder.storage.directory import DirectoryStorage
from helpers.recorder import add_camera, ffmpeg_pids_for, set_setting, wait_for

pytestmark = pytest.mark.integration


def test_shutdown_within_budget_when_disk_writes_hang(tmp_path, monkeypatch, caplog,
                                                     ffmpeg_available):
    paths = DataPaths(tmp_path / "data")
    paths.ensure()
    caplog.set_level("INFO")
    hung = threading.Event()
    release = threading.Event()

    def hanging_probe(path):
        hung.set()
        release.wait(120)                  # the disk does not answer
        raise OSError(5, "Input/output error")
    monkeypatch.setattr(tables, "probe_segment", hanging_probe)
    with SimCameras(cameras=1, fps=15, gop=15) as sim:
        add_camera(paths.root, "cam1", sim.url(1))
        set_setting(paths.root, "segment_seconds", "3")
        rec = Recorder(paths, DirectoryStorage(paths.default_recordings, create=True))
        done = threading.Event()

        def loop():
            rec.start()
            while not rec._done:
                rec.step()
            rec._finish()
            done.set()
        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        try:
            assert hung.wait(30), "no segment reached the index writer"
            pids = ffmpeg_pids_for(paths.root)
            assert pids
            t0 = time.monotonic()
            rec.enqueue(SignalEvent(signal.SIGTERM))
            assert done.wait(limits.SHUTDOWN_BUDGET_S + 2), "shutdown did not finish"
            took = time.monotonic() - t0
        finally:
            release.set()
            thread.join(10)
    assert took <= limits.SHUTDOWN_BUDGET_S
    assert "index writes did not finish" in caplog.text
    wait_for(lambda: ffmpeg_pids_for(paths.root) == [], 3, "ffmpeg gone")
