"""recording.mp4 and snapshot.jpg on real ffmpeg segments, through Flask and a real gunicorn."""

import json
import os
import random
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from helpers.mp4 import ffmpeg_segments, install_segments, require_ffmpeg
from helpers.panel import admin_session, check_range_movie, issue_token, make_app
from recorder import limits
from recorder.sim.launcher import PROJECT_ROOT, free_port

pytestmark = pytest.mark.integration

T0 = 1_795_000_000_000_000
FPS = 15
SEGMENT_S = 6


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """Four 6-second segments of one camera, indexed from T0."""
    require_ffmpeg()
    base = tmp_path_factory.mktemp("rec")
    sources = ffmpeg_segments(base / "src", seconds=4 * SEGMENT_S, segment_s=SEGMENT_S, fps=FPS,
                              gop=FPS)
    assert len(sources) == 4
    root = base / "root"
    rec = install_segments(root / "picorder", sources, camera="cam1", start_us=T0)
    rec.index.close()
    return root, rec.rows


@pytest.fixture
def admin(tmp_path, recorded):
    app = make_app(tmp_path, RECORDING_ROOT=str(recorded[0]))
    session = admin_session(app)
    assert session.post("/api/cameras", json={"name": "cam1", "main_url": "rtsp://h/1"}
                        ).status_code == 201
    return session


def test_range_across_segments_plays_exactly_and_answers_range_requests(admin, recorded, tmp_path):
    _root, rows = recorded
    start, end = T0 + 2_500_000, T0 + 20_300_000            # mid-segment, 4 segments
    url = f"/api/cameras/cam1/recording.mp4?start={start / 1e6}&end={end / 1e6}&download=1"
    full = admin.get(url)
    assert full.status_code == 200, full.get_data()[:300]
    body = full.get_data()
    assert int(full.headers["Content-Length"]) == len(body)
    assert full.headers["Accept-Ranges"] == "bytes" and full.headers["ETag"]
    assert full.headers["Content-Disposition"].startswith("attachment; filename=\"cam1-")
    measured = check_range_movie(body, tmp_path / "range.mp4", (end - start) / 1e6, FPS)
    index_rate = sum(r.frames for r in rows) / (sum(r.duration_us for r in rows) / 1e6)
    assert abs(measured["frames"] - (end - start) / 1e6 * index_rate) <= 1
    wall, media = full.headers["X-Picorder-Runs"].split("@")
    assert wall == f"{start}-{end}" and media == "0"

    rng = random.Random(4)
    for _ in range(50):
        first = rng.randrange(len(body))
        last = min(len(body) - 1, first + rng.choice([0, 1, 100, 65_536, 10 ** 6]))
        part = admin.get(url, headers={"Range": f"bytes={first}-{last}"})
        assert part.status_code == 206
        assert part.headers["Content-Range"] == f"bytes {first}-{last}/{len(body)}"
        assert part.get_data() == body[first:last + 1]
    suffix = admin.get(url, headers={"Range": "bytes=-1000"})
    assert suffix.status_code == 206 and suffix.get_data() == body[-1000:]
    beyond = admin.get(url, headers={"Range": f"bytes={len(body) + 5}-"})
    assert beyond.status_code == 416
    assert beyond.headers["Content-Range"] == f"bytes */{len(body)}"
    cached = admin.get(url, headers={"If-None-Match": full.headers["ETag"]})
    assert cached.status_code == 304
    stale = admin.get(url, headers={"Range": "bytes=0-9", "If-Range": '"other"'})
    assert stale.status_code == 200 and len(stale.get_data()) == len(body)


@pytest.mark.parametrize("query,status", [
    ("start=1795000100&end=1795000200", 404),                 # nothing recorded then
    ("start=1795000010&end=1795000005", 400),                 # end < start
    ("start=1795000000&end=1795999999", 400),                 # longer than 24 h
    ("start=-1&end=1795000005", 400),
    ("start=1795000000&end=1795000005&stream=sub", 404),
    ("start=1795000000&end=1795000005&download=yes", 400),
])
def test_bad_ranges_get_clear_errors(admin, query, status):
    response = admin.get("/api/cameras/cam1/recording.mp4?" + query)
    assert response.status_code == status and response.get_json()


def jpeg_size(data: bytes, tmp_path: Path) -> tuple[int, int]:
    path = tmp_path / "shot.jpg"
    path.write_bytes(data)
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=width,height",
                          "-of", "csv=p=0", str(path)], capture_output=True, text=True, check=True)
    width, height = out.stdout.strip().split(",")
    return int(width), int(height)


def test_snapshots_of_the_newest_and_a_given_keyframe(admin, tmp_path):
    newest = admin.get("/api/cameras/cam1/snapshot.jpg")
    assert newest.status_code == 200 and newest.mimetype == "image/jpeg"
    assert jpeg_size(newest.get_data(), tmp_path) == (320, 240)
    assert int(newest.headers["X-Picorder-Time-Us"]) == T0 + 23_000_000
    at = admin.get(f"/api/cameras/cam1/snapshot.jpg?at={(T0 + 7_400_000) / 1e6}")
    assert at.status_code == 200 and int(at.headers["X-Picorder-Time-Us"]) == T0 + 7_000_000
    assert at.get_data() != newest.get_data()
    assert admin.get("/api/cameras/cam1/snapshot.jpg?at=garbage").status_code == 400


# ----------------------------------------------------------------- real gunicorn

DECODER = """#!/bin/sh
echo "start $(date +%s.%N)" >> {log}
ffmpeg "$@"
rc=$?
echo "end $(date +%s.%N)" >> {log}
exit $rc
"""


def max_overlap(log: Path) -> int:
    events = []
    for line in log.read_text().split("\n"):
        if line:
            kind, when = line.split()
            events.append((float(when), 1 if kind == "start" else -1))
    level = peak = 0
    for _when, step in sorted(events, key=lambda e: (e[0], e[1])):
        level += step
        peak = max(peak, level)
    return peak


@pytest.fixture
def gunicorn(tmp_path, recorded):
    data = tmp_path / "data"
    app = make_app(tmp_path)
    token = issue_token(app, "tests", "admin")
    log = tmp_path / "decoders.log"
    decoder = tmp_path / "decoder.sh"
    decoder.write_text(DECODER.format(log=log))
    decoder.chmod(0o755)
    port = free_port()
    env = dict(os.environ, PICORDER_DATA=str(data), PICORDER_PANEL_BIND=f"127.0.0.1:{port}",
               PICORDER_PANEL_WORKERS="2", PICORDER_PANEL_RECORDING_ROOT=str(recorded[0]),
               PICORDER_PANEL_FFMPEG=str(decoder),
               PICORDER_PANEL_SNAPSHOT_WAIT_S="60")   # a busy test machine must not turn into 503s
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c",
                             str(PROJECT_ROOT / "gunicorn.conf.py"), "webpanel:create_app()"],
                            cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            urllib.request.urlopen(base + "/auth/login", timeout=1)
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail("gunicorn did not start: " + proc.stderr.read()[-2000:])
            time.sleep(0.2)
    yield base, {"Authorization": f"Bearer {token}"}, log
    proc.terminate()
    proc.wait(10)
    proc.stderr.close()


def fetch(url: str, headers: dict) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, dict(response.headers), response.read()


def test_through_gunicorn_ranges_and_bounded_snapshot_decoders(gunicorn, admin):
    base, auth, log = gunicorn
    status, _h, _b = fetch(base + "/api/cameras", auth)
    assert status == 200
    fetch_req = urllib.request.Request(base + "/api/cameras", method="POST", headers=dict(
        auth, **{"Content-Type": "application/json"}), data=json.dumps(
        {"name": "cam2", "main_url": "rtsp://h/2"}).encode())
    with urllib.request.urlopen(fetch_req, timeout=10) as response:
        assert response.status == 201
    query = f"start={(T0 + 1_000_000) / 1e6}&end={(T0 + 17_000_000) / 1e6}"
    url = f"{base}/api/cameras/cam1/recording.mp4?{query}"
    status, headers, body = fetch(url, auth)
    assert status == 200 and int(headers["Content-Length"]) == len(body)
    assert body == admin.get(f"/api/cameras/cam1/recording.mp4?{query}").get_data()
    rng = random.Random(7)
    for _ in range(10):
        first = rng.randrange(len(body))
        last = min(len(body) - 1, first + rng.randrange(200_000))
        status, headers, part = fetch(url, dict(auth, Range=f"bytes={first}-{last}"))
        assert status == 206 and part == body[first:last + 1]

    def snap(i):
        at = (T0 + i * 1_000_000 + 500_000) / 1e6
        return fetch(f"{base}/api/cameras/cam1/snapshot.jpg?at={at}", auth)

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(snap, range(20)))
    assert all(status == 200 and data[:2] == b"\xff\xd8" for status, _h, data in results)
    assert len({h["X-Picorder-Time-Us"] for _s, h, _d in results}) == 20
    assert log.read_text().count("start") == 20          # 20 different keyframes decoded
    # ... by 2 workers x 16 threads, yet never more decoders at once than the bound.
    assert 1 <= max_overlap(log) <= limits.SNAPSHOT_DECODERS_TOTAL


def test_the_panel_serves_the_same_bytes_as_picorder_export(admin, recorded, tmp_path):
    root, _rows = recorded
    start, end = "1795000003.333333", "2026-11-18T11:06:55.5Z"
    served = admin.get(f"/api/cameras/cam1/recording.mp4?start={start}&end={end}")
    assert served.status_code == 200
    out = tmp_path / "export.mp4"
    subprocess.run([sys.executable, "-m", "picorder", "--data", str(tmp_path / "data"), "export",
                    "cam1", start, end, str(out), "--root", str(root)], check=True,
                   capture_output=True, timeout=60, cwd=PROJECT_ROOT)
    assert out.read_bytes() == served.get_data()
