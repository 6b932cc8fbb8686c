"""Bad input to the recorder: a missing or read-only recording directory, an unreachable
camera, bad control requests, no recorder running. Clear errors; nothing crashes."""

import os
import subprocess
import time

import pytest

from recorder import control
from recorder.sim.launcher import SimCameras, free_port
from helpers.recorder import RecorderProcess, add_camera, picorder, set_setting, wait_for

pytestmark = pytest.mark.integration


def read_only_dir(path):
    """A directory this process cannot write, even as root (a read-only tmpfs)."""
    path.mkdir()
    if os.geteuid() == 0:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(path)], check=True)
        return lambda: subprocess.run(["umount", str(path)], check=False)
    path.chmod(0o555)
    return lambda: path.chmod(0o755)


def test_missing_and_read_only_directories(tmp_path, ffmpeg_available):
    missing = tmp_path / "disk" / "nvr"
    ro = tmp_path / "readonly"
    undo = read_only_dir(ro)
    recs = []
    try:
        with SimCameras(cameras=1, fps=15, gop=15) as sim:
            for name, where in (("missing", missing), ("ro", ro)):
                data = tmp_path / f"rec-{name}" / "data"
                data.mkdir(parents=True)
                add_camera(data, "cam1", sim.url(1))
                add_camera(data, "gone", f"rtsp://127.0.0.1:{free_port()}/x")
                set_setting(data, "recordings_dir", str(where))
                set_setting(data, "segment_seconds", "4")
                recs.append(RecorderProcess(data).start())
            rec_missing, rec_ro = recs

            status = rec_missing.status()
            assert status["storage"]["state"] == "disk missing"
            assert str(missing) in status["storage"]["detail"]
            assert "does not exist" in status["storage"]["detail"]
            assert {(s["state"], s["problem"]) for s in status["streams"]} == {
                ("STOPPED", "disk missing")}

            status = rec_ro.status()
            assert status["storage"]["state"] == "disk error"
            assert "read-only" in status["storage"]["detail"] \
                or "not writable" in status["storage"]["detail"]
            assert all(s["problem"] == "disk missing" and s["pid"] is None
                       for s in status["streams"])
            assert not (ro / "picorder").exists()

            # The directory appears (the disk was mounted): recording starts by itself.
            missing.mkdir(parents=True)
            wait_for(lambda: rec_missing.stream("cam1")["state"] == "RUNNING", 20, "recording")
            assert rec_missing.status()["storage"]["state"] == "recording"
            gone = wait_for(lambda: (rec_missing.stream("gone") or {}).get("problem"), 15,
                            "the unreachable camera's problem")
            assert gone == "unreachable" and rec_missing.stream("gone")["state"] in (
                "BACKOFF", "STARTING")

            # Bad control requests get clear answers and the recorder stays up.
            sock = rec_missing.paths.control_socket
            with pytest.raises(control.ControlError, match="unknown command"):
                control.request(sock, "format_everything")
            with pytest.raises(control.ControlError, match="bad arguments"):
                control.request(sock, "reload", now=True)
            with pytest.raises(control.ControlError, match="utc_us"):
                control.request(sock, "set_clock")
            assert control.request(sock, "reload") == {"queued": True}
            time.sleep(1)
            for rec in recs:
                assert rec.proc.poll() is None
                assert rec.terminate() < 10
                assert "Traceback" not in rec.log()
    finally:
        for rec in recs:
            rec.kill()
        undo()


def test_status_without_recorder(tmp_path):
    out = picorder(tmp_path / "data", "status", check=False)
    assert out.returncode == 2
    assert "the recorder is not running" in out.stderr
    out = picorder(tmp_path / "data", "demo", "--cameras", "0", check=False)
    assert out.returncode == 2 and "--cameras" in out.stderr
