"""No orphans: kill -9 of `picorder recorder` or `picorder demo` leaves no child running
(recorder.children), the segment a killed recorder's ffmpeg was writing is indexed by the
next recorder, and an ffmpeg left by some other way is stopped before recovery."""

import os
import signal
import subprocess
import sys
import time

import pytest

from recorder.ffmpeg_user import ENV_FFMPEG_USER
from recorder.spawner import pid_alive, wait_gone
from recorder.service import ENV_RUNTIME_DIR
from recorder.sim.launcher import SimCameras, free_port
from helpers.mp4 import decode_errors
from helpers.recorder import (PROJECT, RecorderProcess, add_camera, descendants, ffmpeg_pids_for,
                              rows, set_setting, wait_for)
from test_recorder_ffmpeg_user import accounts, base  # noqa: F401

pytestmark = pytest.mark.integration

GONE_S = 2.0            # every child ends within this long after its parent is killed


def command(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace")[:120]
    except OSError:
        return "?"


def test_recorder_killed_takes_its_ffmpeg_along_and_its_segment_is_indexed(
        tmp_path, ffmpeg_available):
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
            children = rec.children()
            assert len(ffmpeg_pids_for(data)) == 1 and ffmpeg_pids_for(data)[0] in children
            t0 = time.monotonic()
            rec.proc.kill()
            rec.proc.wait(5)
            left = wait_gone(children, GONE_S - (time.monotonic() - t0))
            assert left == [], [command(p) for p in left]
            assert sim.proc.poll() is None       # not the recorder's child: still serving
        finally:
            rec.kill()
        rec = RecorderProcess(data).start()
        try:
            wait_for(lambda: (rec.stream("cam1") or {}).get("state") == "RUNNING", 20,
                     "recording again")
            assert "left by a previous recorder" not in rec.log()
            row = wait_for(lambda: next((r for r in rows(pdir, "cam1") if r.path == current),
                                        None), 10, "the killed run's segment indexed")
            assert row.frames > 0
            assert decode_errors(pdir / current) == ""
            rec.terminate()
        finally:
            rec.kill()
    assert ffmpeg_pids_for(data) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (CI runs as root)")
def test_ffmpeg_as_its_own_user_ends_with_a_killed_recorder(accounts, base, sim_cameras,
                                                           monkeypatch, ffmpeg_available):
    """The death signal is set after the switch to ffmpeg's user (which clears it)."""
    user, _ = accounts
    data, recordings = base / "data", base / "rec"
    data.mkdir(mode=0o700)
    recordings.mkdir(mode=0o755)
    sim = sim_cameras(cameras=1)
    add_camera(data, "cam1", sim.url(1))
    set_setting(data, "recordings_dir", str(recordings))
    monkeypatch.setenv(ENV_FFMPEG_USER, user.pw_name)
    monkeypatch.setenv(ENV_RUNTIME_DIR, str(base / "run"))
    rec = RecorderProcess(data).start()
    try:
        wait_for(lambda: (rec.stream("cam1") or {}).get("state") == "RUNNING", 20, "recording")
        ffmpegs = [p for p in ffmpeg_pids_for(recordings) if p in rec.children()]
        assert len(ffmpegs) == 1
        assert os.stat(f"/proc/{ffmpegs[0]}").st_uid == user.pw_uid
        t0 = time.monotonic()
        rec.proc.kill()
        rec.proc.wait(5)
        left = wait_gone(ffmpegs, GONE_S - (time.monotonic() - t0))
        assert left == [], [command(p) for p in left]
    finally:
        rec.kill()


def test_an_ffmpeg_left_behind_is_stopped_before_recovery(tmp_path, ffmpeg_available):
    """The backstop for an ffmpeg that outlived its recorder some other way (an older
    version, a recorder whose spawning thread is gone): found by its list file."""
    data = tmp_path / "data"
    data.mkdir()
    run = data / "run"
    run.mkdir(mode=0o700)
    with SimCameras(cameras=1) as sim:
        listing = run / "cam1.main.1.ffconcat"
        listing.write_text(f"ffconcat version 1.0\nfile '{sim.url(1)}'\n")
        stray = subprocess.Popen(
            ["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "concat", "-safe", "0",
             "-protocol_whitelist", "file,rtsp,rtp,tcp,udp", "-i", str(listing),
             "-c", "copy", "-f", "null", "-"], start_new_session=True)
        try:
            time.sleep(1)
            assert stray.poll() is None
            rec = RecorderProcess(data).start()
            try:
                assert stray.wait(10) is not None
                assert "stopping 1 ffmpeg processes left by a previous recorder" in rec.log()
                rec.terminate()
            finally:
                rec.kill()
        finally:
            if stray.poll() is None:
                stray.kill()
                stray.wait(5)


def test_demo_killed_leaves_no_child(tmp_path, ffmpeg_available):
    data = tmp_path / "data"
    data.mkdir()
    out = tmp_path / "demo.out"
    with open(out, "w") as sink:
        demo = subprocess.Popen(
            [sys.executable, "-m", "picorder", "demo", "--data", str(data), "--cameras", "1",
             "--panel-port", str(free_port())],
            stdout=sink, stderr=subprocess.STDOUT, cwd=PROJECT, start_new_session=True)
    children: list[int] = []
    try:
        def everyone_up():
            kids = descendants(demo.pid)
            commands = [command(p) for p in kids]
            # The simulated cameras, gunicorn's master and workers, an ffmpeg per stream.
            ready = (sum("recorder.sim.rtsp_server" in c for c in commands) == 1
                     and sum("gunicorn" in c for c in commands) >= 3
                     and len(set(ffmpeg_pids_for(data)) & set(kids)) == 2)
            return kids if ready else None
        children = wait_for(everyone_up, 40, "the demo's cameras, panel and ffmpeg")
        t0 = time.monotonic()
        demo.kill()
        demo.wait(5)
        left = wait_gone(children, GONE_S - (time.monotonic() - t0))
        print(f"{len(children)} children of the killed demo ended within "
              f"{time.monotonic() - t0:.2f} s")
        assert left == [], [command(p) for p in left]
        assert ffmpeg_pids_for(data) == []
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait(5)
        for pid in children:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
