"""Recording with real ffmpeg from the simulated RTSP cameras: steady recording, outage,
stall and wrong password. The scenarios are independent and run side by side in one test,
each with its own recorder process, data directory and camera server."""

import json
import os
import stat
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from recorder.sim.launcher import SimCameras
from helpers.mp4 import decode_errors
from helpers.recorder import (RecorderProcess, add_camera, descendants, is_zombie, rows,
                              set_setting, wait_for)

pytestmark = pytest.mark.integration

FPS = 15
FRAME_US = 1_000_000 // FPS
PASSWORD = "S3cret pw'x@"
STEADY_S = 60
STEADY_SEGMENT_S = 6


def picorder_dir(data: Path) -> Path:
    return data / "recordings" / "picorder"


def scenario_dir(tmp_path: Path, name: str) -> Path:
    data = tmp_path / name / "data"
    data.mkdir(parents=True)
    return data


def check_private_credentials(rec: RecorderProcess) -> None:
    """The password is in no child's argv, and its file is private."""
    for pid in rec.children():
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        assert PASSWORD not in cmdline and "S3cret" not in cmdline, cmdline
    run = rec.data / "run"
    assert stat.S_IMODE(os.stat(run).st_mode) == 0o700
    files = list(run.iterdir())
    assert files
    for f in files:
        assert stat.S_IMODE(os.stat(f).st_mode) == 0o600


def steady(tmp_path: Path) -> dict:
    """Two cameras for a minute: every segment plays, durations add up, runs are contiguous."""
    data = scenario_dir(tmp_path, "steady")
    with SimCameras(cameras=2, fps=FPS, gop=FPS, user="viewer", password=PASSWORD) as sim:
        for n in (1, 2):
            add_camera(data, f"cam{n}", sim.url(n), user="viewer", password=PASSWORD)
        set_setting(data, "segment_seconds", str(STEADY_SEGMENT_S))
        rec = RecorderProcess(data).start()
        try:
            wait_for(lambda: all(s["state"] == "RUNNING" for s in rec.status()["streams"]),
                     20, "both cameras running")
            running_seen = time.time()
            check_private_credentials(rec)
            time.sleep(STEADY_S - (time.time() - rec.started))
            status_text = json.dumps(rec.status())
            pids = rec.children()
            took = rec.terminate()
            stopped_at = time.time()
        finally:
            rec.kill()
    assert took < 10, f"SIGTERM took {took:.1f} s"
    assert not any(os.path.exists(f"/proc/{pid}") and not is_zombie(pid) for pid in pids)
    assert list((data / "run").iterdir()) == []              # credentials file removed
    for text in (status_text, rec.log()):
        assert "S3cret" not in text
    figures = {}
    for cam in ("cam1", "cam2"):
        segs = rows(picorder_dir(data), cam)
        assert len(segs) >= STEADY_S // STEADY_SEGMENT_S - 2, [s.path for s in segs]
        # Every file ffmpeg wrote is indexed: nothing is left for recovery, nothing deleted.
        files = sorted(str(f.relative_to(picorder_dir(data)))
                       for f in picorder_dir(data).glob(f"{cam}/main/*/*/*/*.mp4"))
        assert files == sorted(s.path for s in segs)
        for seg in segs:
            errors = decode_errors(picorder_dir(data) / seg.path)
            assert errors == "", f"{seg.path}: {errors}"
            assert abs(seg.duration_us - (seg.end_us - seg.start_us)) <= FRAME_US, seg
        for a, b in zip(segs, segs[1:]):
            assert b.start_us >= a.end_us, f"overlap {a.path} {b.path}"
            if a.run_id == b.run_id:
                assert b.start_us - a.end_us <= FRAME_US, f"gap {a.path} {b.path}"
        assert len({s.run_id for s in segs}) == 1
        wall = segs[-1].end_us - segs[0].start_us
        media = sum(s.duration_us for s in segs)
        assert abs(media - wall) <= 0.02 * wall
        # Wall-clock placement: the first frame arrived after the recorder started and before
        # the report that made the stream RUNNING (however long a loaded box took to connect),
        # the last at the stop.
        problems = [line for line in rec.log().splitlines() if " ERROR " in line]
        assert rec.started * 1e6 - 1e6 <= segs[0].start_us <= running_seen * 1e6 + 0.5e6, \
            (segs[0], rec.started, running_seen, problems)
        assert abs(segs[-1].end_us - stopped_at * 1e6) <= 1.5e6
        figures[cam] = {"segments": len(segs), "wall_s": wall / 1e6, "media_s": media / 1e6,
                        "first_after_start_s": segs[0].start_us / 1e6 - rec.started,
                        "running_after_start_s": running_seen - rec.started}
    return figures


def outage(tmp_path: Path) -> dict:
    """cam1's server is killed for 20 s: cam1 resumes within 10 s, cam2's ffmpeg is untouched."""
    data = scenario_dir(tmp_path, "outage")
    sim_a = SimCameras(cameras=1, fps=FPS, gop=FPS).start()
    sim_b = SimCameras(cameras=1, fps=FPS, gop=FPS).start()
    try:
        add_camera(data, "cam1", sim_a.url(1))
        add_camera(data, "cam2", sim_b.url(1))
        set_setting(data, "segment_seconds", "4")
        rec = RecorderProcess(data).start()
        try:
            wait_for(lambda: len(rows(picorder_dir(data), "cam1")) >= 1
                     and len(rows(picorder_dir(data), "cam2")) >= 1, 30, "first segments")
            pid_b = rec.stream("cam2")["pid"]
            sim_a.kill()
            killed = time.time()
            time.sleep(20)
            sim_a = SimCameras(cameras=1, fps=FPS, gop=FPS, port=sim_a.port).start()
            back = time.time()
            try:
                wait_for(lambda: rec.stream("cam1")["state"] == "RUNNING", 10,
                         "cam1 recording again")
            except AssertionError as exc:          # say what the recorder did meanwhile
                said = [line for line in rec.log().splitlines()
                        if "cam1/" in line and " DEBUG " not in line]
                raise AssertionError("\n".join([str(exc), *said[-30:]])) from None
            resumed = time.time() - back
            wait_for(lambda: any(r.start_us > back * 1e6 for r in rows(picorder_dir(data), "cam1")),
                     15, "a segment after the outage")
            status_b = rec.stream("cam2")
            problem_seen = rec.log()
            rec.terminate()
        finally:
            rec.kill()
    finally:
        sim_a.stop()
        sim_b.stop()
    assert status_b["pid"] == pid_b and status_b["restarts"] == 0
    assert "cam1/main: RUNNING -> BACKOFF" in problem_seen
    segs = rows(picorder_dir(data), "cam1")
    gaps = [(b.start_us - a.end_us) / 1e6 for a, b in zip(segs, segs[1:])]
    assert max(gaps) >= 15, gaps                            # the outage shows in the index
    before = [r for r in segs if r.end_us <= killed * 1e6 + 2e6]
    after = [r for r in segs if r.start_us >= back * 1e6 - 1e6]
    assert before and after and before[-1].run_id != after[0].run_id
    return {"resumed_s": round(resumed, 1), "gap_s": round(max(gaps), 1)}


def stall(tmp_path: Path) -> dict:
    """The server freezes (SIGSTOP): the watchdog restarts ffmpeg; it records again after."""
    data = scenario_dir(tmp_path, "stall")
    with SimCameras(cameras=1, fps=FPS, gop=FPS) as sim:
        add_camera(data, "cam1", sim.url(1))
        set_setting(data, "segment_seconds", "4")
        rec = RecorderProcess(data, stall_s=4).start()
        try:
            wait_for(lambda: rec.stream("cam1")["state"] == "RUNNING", 20, "running")
            pid = rec.stream("cam1")["pid"]
            sim.freeze()
            frozen = time.time()
            try:
                wait_for(lambda: rec.stream("cam1")["problem"] == "stalled", 10, "stalled")
                detected = time.time() - frozen
                wait_for(lambda: rec.stream("cam1")["pid"] not in (None, pid), 15,
                         "a new ffmpeg")
            finally:
                sim.thaw()
            wait_for(lambda: rec.stream("cam1")["state"] == "RUNNING", 40, "running again")
            log = rec.log()
            rec.terminate()
        finally:
            rec.kill()
    assert "no progress for" in log
    return {"stall_detected_s": round(detected, 1)}


def wrong_password(tmp_path: Path) -> dict:
    """A wrong password shows as "auth failed", backs off and never loops tightly."""
    data = scenario_dir(tmp_path, "auth")
    with SimCameras(cameras=1, fps=FPS, gop=FPS, user="viewer", password=PASSWORD) as sim:
        add_camera(data, "cam1", sim.url(1), user="viewer", password="Wr0ngPass")
        rec = RecorderProcess(data).start()
        try:
            time.sleep(25)
            status = rec.stream("cam1")
            log = rec.log()
            rec.terminate()
        finally:
            rec.kill()
    assert status["problem"] == "auth failed"
    assert status["state"] in ("BACKOFF", "STARTING")
    assert "401" in status["last_error"] and "Wr0ngPass" not in status["last_error"]
    assert "Wr0ngPass" not in log
    spawns = log.count("started ffmpeg pid")
    # Backoff 1, 2, 4, 8, 16 s: at most 5-6 tries in 25 s, never a tight loop.
    assert 3 <= spawns <= 6, spawns
    return {"spawns_in_25s": spawns}


def test_recording_steady_outage_stall_wrong_password(tmp_path, ffmpeg_available):
    scenarios = [steady, outage, stall, wrong_password]
    with ThreadPoolExecutor(len(scenarios)) as pool:
        futures = {f.__name__: pool.submit(f, tmp_path) for f in scenarios}
        results = {name: fut.result() for name, fut in futures.items()}
    print(json.dumps(results, indent=2))
