"""The panel on the real recorder recording a simulated RTSP camera: status, live, range, snapshot."""

from pathlib import Path

import pytest

from helpers.mp4 import range_media_s
from helpers.panel import admin_session, check_range_movie, make_app
from helpers.recorder import RecorderProcess, add_camera, rows, set_setting, wait_for

pytestmark = pytest.mark.integration

FPS = 15


def test_panel_serves_what_the_real_recorder_records(tmp_path, sim_cameras, ffmpeg_available):
    sim = sim_cameras(cameras=1, fps=FPS, gop=FPS)
    data = tmp_path / "data"
    app = make_app(tmp_path)
    admin = admin_session(app)
    add_camera(data, "cam1", sim.url(1))
    set_setting(data, "segment_seconds", "2")
    rec = RecorderProcess(data).start()
    try:
        status = wait_for(lambda: (s := admin.get("/api/status").get_json())["streams"]
                          and s["streams"][0]["state"] == "RUNNING" and s, 30, "cam1 running")
        assert status["recorder"]["running"] and status["storage"]["root"]
        pdir = Path(status["storage"]["root"]) / "picorder"
        segs = wait_for(lambda: len(r := rows(pdir, "cam1")) >= 4 and r, 40, "4 segments")

        live = admin.client.get("/api/cameras/cam1/live.mp4", buffered=False)
        assert live.status_code == 200
        received = b""
        for chunk in live.response:
            received += chunk
            if b"moof" in received and b"mdat" in received:
                break
        live.close()
        assert received[4:8] == b"ftyp"

        start, end = segs[0].start_us + 700_000, segs[3].start_us + 1_300_000
        movie = admin.get(f"/api/cameras/cam1/recording.mp4?start={start / 1e6}&end={end / 1e6}")
        assert movie.status_code == 200, movie.get_data()[:300]
        body = movie.get_data()
        # The range's camera time, as the index maps it (drift correction may move a run's
        # segments by up to 1 % of their length: docs/time.md).
        media_s = range_media_s(segs, start, end)
        measured = check_range_movie(body, tmp_path / "range.mp4", media_s, FPS)
        used = segs[:4]
        rate = sum(s.frames for s in used) / (sum(s.duration_us for s in used) / 1e6)
        assert abs(measured["frames"] - media_s * rate) <= 1

        timeline = admin.get(f"/api/cameras/cam1/timeline?start={segs[0].start_us / 1e6}"
                             f"&end={segs[3].end_us / 1e6}").get_json()
        assert [(r["start_us"], r["end_us"]) for r in timeline["runs"]] == [
            (segs[0].start_us, segs[3].end_us)]
        shot = admin.get("/api/cameras/cam1/snapshot.jpg")
        assert shot.status_code == 200 and shot.get_data()[:2] == b"\xff\xd8"
        assert int(shot.headers["X-Picorder-Time-Us"]) >= segs[3].start_us

        assert admin.patch("/api/cameras/cam1", json={"enabled": False}).status_code == 200
        def stopped():                # one status read: the stream may leave between two
            streams = admin.get("/api/status").get_json()["streams"]
            return not streams or streams[0]["state"] == "STOPPED"
        wait_for(stopped, 15, "the recorder to stop the disabled camera")
    finally:
        rec.terminate()
        rec.kill()
