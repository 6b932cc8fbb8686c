"""The recorder's life: reload (add, remove, SIGHUP) without touching other cameras,
kill -9 mid-segment and recovery at the next start, graceful SIGTERM."""

import os
import signal
import time

import pytest

from recorder.sim.launcher import SimCameras
from helpers.mp4 import decode_errors
from helpers.recorder import (RecorderProcess, add_camera, ffmpeg_pids_for, is_zombie, picorder,
                              rows, set_setting, wait_for)

pytestmark = pytest.mark.integration

SEGMENT_S = 6


def alive(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}") and not is_zombie(pid)


def test_reload_kill9_recovery_and_sigterm(tmp_path, ffmpeg_available):
    data = tmp_path / "data"
    data.mkdir()
    pdir = data / "recordings" / "picorder"
    with SimCameras(cameras=2, fps=15, gop=15) as sim:
        add_camera(data, "cam1", sim.url(1))
        set_setting(data, "segment_seconds", str(SEGMENT_S))
        rec = RecorderProcess(data).start()
        try:
            wait_for(lambda: rec.stream("cam1")["state"] == "RUNNING", 20, "cam1 running")
            pid1 = rec.stream("cam1")["pid"]

            # Reload: a camera added through the CLI starts within 2 s.
            add_camera(data, "cam2", sim.url(2))
            added = time.monotonic()
            wait_for(lambda: (rec.stream("cam2") or {}).get("pid"), 2.5, "cam2's ffmpeg")
            assert time.monotonic() - added <= 2.5
            pid2 = rec.stream("cam2")["pid"]
            assert rec.stream("cam1")["pid"] == pid1

            # A changed camera restarts within 2 s; the others keep their ffmpeg.
            wait_for(lambda: rec.stream("cam2")["state"] == "RUNNING", 15, "cam2 running")
            picorder(data, "camera", "set", "cam2", "--display-name", "Yard", "--user", "guest")
            changed = time.monotonic()
            wait_for(lambda: rec.stream("cam2")["pid"] not in (None, pid2), 2.5, "cam2 restarted")
            assert time.monotonic() - changed <= 2.5
            assert rec.stream("cam1")["pid"] == pid1
            pid2 = rec.stream("cam2")["pid"]

            # A camera removed stops within 2 s; the others keep their ffmpeg.
            wait_for(lambda: rec.stream("cam2")["state"] == "RUNNING", 15, "cam2 running")
            picorder(data, "camera", "remove", "cam2")
            removed = time.monotonic()
            wait_for(lambda: rec.stream("cam2") is None and not alive(pid2), 2.5,
                     "cam2 stopped")
            assert time.monotonic() - removed <= 2.5
            assert rec.stream("cam1")["pid"] == pid1

            # SIGHUP reloads too, and leaves unchanged cameras alone.
            rec.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: "reloading cameras (SIGHUP)" in rec.log(), 3, "SIGHUP reload")
            assert rec.stream("cam1")["pid"] == pid1

            # kill -9 of the recorder and its ffmpeg in the middle of a segment.
            wait_for(lambda: len(rows(pdir, "cam1")) >= 2, 30, "two segments")
            wait_for(lambda: 3.0 <= time.time() % SEGMENT_S <= 4.5, SEGMENT_S + 1, "mid-segment",
                     interval=0.05)
            torn = rec.stream("cam1")["current_segment"]
            assert torn, "status names the segment being written"
            rec.proc.kill()
            for pid in ffmpeg_pids_for(data):
                os.kill(pid, signal.SIGKILL)
            killed = time.time()
            rec.proc.wait(5)
        finally:
            rec.kill()
        assert torn not in {r.path for r in rows(pdir, "cam1")}
        time.sleep(1)
        assert ffmpeg_pids_for(data) == []

        # The next start indexes the torn file; at most 2 s of video are lost.
        rec = RecorderProcess(data).start()
        try:
            row = wait_for(lambda: next((r for r in rows(pdir, "cam1") if r.path == torn), None),
                           15, "the torn segment indexed")
            lost = killed - row.end_us / 1e6
            assert lost <= 2.0, f"{lost:.2f} s lost"
            assert decode_errors(pdir / torn) == ""
            previous = [r for r in rows(pdir, "cam1") if r.end_us <= row.start_us]
            assert previous and row.start_us >= previous[-1].end_us

            # SIGTERM: graceful within 10 s, the segment being written is indexed.
            wait_for(lambda: rec.stream("cam1")["state"] == "RUNNING", 20, "recording again")
            wait_for(lambda: rec.stream("cam1")["current_segment"], 10, "a current segment")
            current = rec.stream("cam1")["current_segment"]
            children = rec.children()
            took = rec.terminate()
        finally:
            rec.kill()
    assert took <= 10, f"shutdown took {took:.1f} s"
    assert rec.proc.returncode == 0
    assert current in {r.path for r in rows(pdir, "cam1")}
    assert not [pid for pid in children if alive(pid)]
    assert ffmpeg_pids_for(data) == []
    assert not (data / "recorder.sock").exists()
    print(f"\nreload/kill: {lost:.2f} s lost at kill -9, SIGTERM took {took:.2f} s")
