"""kill -9 of the recorder alone: its ffmpeg (which ignores SIGPIPE and would record on)
is stopped by the next recorder before recovery, and the segment it was writing is indexed."""

import time

import pytest

from recorder.sim.launcher import SimCameras
from recorder_helpers import (
    RecorderProcess, add_camera, decode_errors, ffmpeg_pids_for, rows, set_setting,
    wait_for,
)

pytestmark = pytest.mark.integration


def test_orphaned_ffmpeg_stopped_and_its_segment_indexed(tmp_path, ffmpeg_available):
    data = tmp_path / "data"
    data.mkdir()
    pdir = data / "recordings" / "picorder"
    with SimCameras(cameras=1, fps=15, gop=15) as sim:
        add_camera(data, "cam1", sim.url(1))
        set_setting(data, "segment_seconds", "30")
        rec = RecorderProcess(data).start()
        try:
            wait_for(lambda: rec.stream("cam1")["current_segment"], 20, "a segment being written")
            current = rec.stream("cam1")["current_segment"]
            orphans = ffmpeg_pids_for(data)
            assert len(orphans) == 1
            rec.proc.kill()
            rec.proc.wait(5)
            time.sleep(2)
            assert ffmpeg_pids_for(data) == orphans       # still recording without a recorder
        finally:
            rec.kill()
        rec = RecorderProcess(data).start()
        try:
            wait_for(lambda: (rec.stream("cam1") or {}).get("state") == "RUNNING", 20,
                     "recording again")
            pids = ffmpeg_pids_for(data)
            assert len(pids) == 1 and pids != orphans     # one ffmpeg, the new recorder's
            assert "stopping 1 ffmpeg processes left by a previous recorder" in rec.log()
            row = wait_for(lambda: next((r for r in rows(pdir, "cam1") if r.path == current),
                                        None), 10, "the orphan's segment indexed")
            assert row.frames > 0
            assert decode_errors(pdir / current) == ""
            rec.terminate()
        finally:
            rec.kill()
    assert ffmpeg_pids_for(data) == []
