"""`picorder check` beside a running recorder: the segment being written is not a problem,
a real one still is."""

import os
import shutil
import time

import pytest

from recorder.sim.launcher import SimCameras
from helpers.recorder import RecorderProcess, add_camera, picorder, rows, set_setting, wait_for

pytestmark = pytest.mark.integration

SEGMENT_S = 2
CHECK_FOR_S = 7          # several segment boundaries (and the first seconds of the run)


def test_check_beside_a_running_recorder(tmp_path, ffmpeg_available):
    data = tmp_path / "data"
    data.mkdir()
    pdir = data / "recordings" / "picorder"
    with SimCameras(cameras=1, fps=10, gop=10) as sim:
        add_camera(data, "cam1", sim.url(1))
        set_setting(data, "segment_seconds", str(SEGMENT_S))
        rec = RecorderProcess(data).start()
        try:
            wait_for(lambda: (pdir / "index.db").exists(), 20, "the index")
            end = time.monotonic() + CHECK_FOR_S
            runs = 0
            while time.monotonic() < end:
                out = picorder(data, "check", check=False)
                assert out.returncode == 0, out.stdout + out.stderr
                assert "no problems found" in out.stdout
                runs += 1
            wait_for(lambda: len(rows(pdir, "cam1")) >= 2, 20, "two indexed segments")
            out = picorder(data, "check", check=False)
            assert out.returncode == 0, out.stdout
            assert "being written by the recorder, not checked: cam1/main/" in out.stdout

            # A file the recorder knows nothing about is still reported.
            old = pdir / rows(pdir, "cam1")[0].path
            stray = old.with_name("00-00-00.mp4")
            shutil.copyfile(old, stray)
            os.utime(stray, (time.time() - 3600, time.time() - 3600))
            out = picorder(data, "check", check=False)
            assert out.returncode == 1
            assert f"unindexed segment cam1/main/{stray.parent.relative_to(pdir / 'cam1/main')}" \
                   f"/00-00-00.mp4: would be indexed" in out.stdout
            assert "1 problem(s) found" in out.stdout
            print(f"{runs} checks beside the recorder, all clean")
        finally:
            rec.terminate()
