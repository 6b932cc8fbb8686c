"""recording.mp4 / picorder export on real recordings from the simulated RTSP camera."""

import os
import random
import signal
import subprocess
import time
from datetime import datetime, timedelta, timezone

import pytest

from helpers.mp4 import (MOVFLAGS, decode_errors, expected_packets, ffprobe_stream,
                         require_ffmpeg)
from recorder import export, mp4
from recorder.index import Index, Segment
from recorder.recovery import recover

pytestmark = pytest.mark.integration

SEGMENT_S = 3
RECORD_S = 11
FPS = 15


def record_rtsp(url: str, pdir, seconds: float) -> None:
    """Record like the recorder does: -c copy into clock-aligned fMP4 segments, names in UTC."""
    now = datetime.now(timezone.utc)
    for day in (now, now + timedelta(days=1)):        # ffmpeg does not create directories
        (pdir / "cam1" / "main" / day.strftime("%Y/%m/%d")).mkdir(parents=True, exist_ok=True)
    argv = ["ffmpeg", "-nostdin", "-v", "error", "-rtsp_transport", "tcp", "-i", url,
            "-map", "0:v", "-c", "copy", "-f", "segment", "-segment_time", str(SEGMENT_S),
            "-segment_atclocktime", "1", "-reset_timestamps", "1", "-strftime", "1",
            "-segment_format", "mp4", "-segment_format_options", MOVFLAGS,
            str(pdir / "cam1" / "main" / "%Y" / "%m" / "%d" / "%H-%M-%S.mp4")]
    proc = subprocess.Popen(argv, env=dict(os.environ, TZ="UTC"), stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + 30          # RTSP set-up can be slow on a busy machine
        while not any(p.stat().st_size > 0 for p in pdir.rglob("*.mp4")):
            assert proc.poll() is None and time.monotonic() < deadline, "ffmpeg wrote nothing"
            time.sleep(0.05)
        time.sleep(seconds)
        proc.send_signal(signal.SIGINT)          # graceful: the last segment is finalised
        _, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode in (0, 255), err


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    require_ffmpeg()
    from recorder.sim.launcher import SimCameras
    pdir = tmp_path_factory.mktemp("rtsp") / "picorder"
    pdir.mkdir()
    with SimCameras(cameras=1, fps=FPS, gop=FPS) as sim:
        record_rtsp(sim.url(1), pdir, RECORD_S)
    with Index.open(pdir / "index.db") as index:
        report = recover(index, clock_trusted=True)   # index the files the way a restart would
        rows = list(index.select().order_by(Segment.start_us))
    assert report.indexed and not report.moved_aside
    assert len(rows) >= 4
    return pdir, rows


def _reopen(pdir):
    """The recording's index, open, and its rows."""
    index = Index.open(pdir / "index.db")
    return index, list(index.select().order_by(Segment.start_us))


def test_range_over_recorded_segments(recording, tmp_path):
    pdir, _ = recording
    index, rows = _reopen(pdir)
    # every recorded segment plays on its own
    for row in rows:
        assert decode_errors(pdir / row.path) == "", row.path
    # from the middle of the 2nd segment to the middle of the 4th or later: >= 3 segments
    start = rows[1].start_us + (rows[1].end_us - rows[1].start_us) // 2 + 123_456
    end = rows[-1].start_us + (rows[-1].end_us - rows[-1].start_us) // 2
    spanned = [r for r in rows if r.end_us > start and r.start_us < end]
    assert len(spanned) >= 3
    movie = export.build_range(index, "cam1", "main", start, end)
    out = tmp_path / "range.mp4"
    with open(out, "wb") as f:
        for piece in movie.iter_bytes():
            f.write(piece)
    full = out.read_bytes()
    assert len(full) == movie.size
    assert decode_errors(out) == ""
    assert [b.type for b in mp4.iter_boxes(full)] == [b"ftyp", b"moov", b"mdat"]
    info = ffprobe_stream(out)
    assert abs(float(info["format_duration"]) - (end - start) / 1e6) <= 1 / FPS
    assert int(info["nb_read_packets"]) == movie.frames == expected_packets(
        [(pdir / r.path, r.start_us, r.end_us) for r in rows], start, end, FPS)
    rnd = random.Random(50)
    for _ in range(50):
        a = rnd.randrange(movie.size)
        b = min(movie.size - 1, a + rnd.choice([0, 1, 1000, 300_000, movie.size]))
        assert b"".join(movie.iter_bytes(a, b)) == full[a:b + 1]


def test_picorder_export_of_the_recording(recording, tmp_path):
    from picorder.cli import main
    pdir, _ = recording
    index, rows = _reopen(pdir)
    start, end = rows[0].start_us + 500_000, rows[-1].end_us - 500_000
    movie = export.build_range(index, "cam1", "main", start, end)
    expected = b"".join(movie.iter_bytes())
    out = tmp_path / "export.mp4"
    assert main(["--data", str(tmp_path / "data"), "export", "cam1", str(start / 1e6),
                 str(end / 1e6), str(out), "--root", str(pdir.parent)]) == 0
    assert out.read_bytes() == expected
    assert decode_errors(out) == ""


def test_range_plays_and_seeks_in_chromium(recording, tmp_path):
    """A browser's native <video> plays the movie from exactly `start` and seeks in it."""
    from playwright.sync_api import sync_playwright
    pdir, _ = recording
    index, rows = _reopen(pdir)
    start, end = rows[1].start_us + 400_000, rows[-1].start_us + 300_000
    movie = export.build_range(index, "cam1", "main", start, end)
    out = tmp_path / "play.mp4"
    with open(out, "wb") as f:
        for piece in movie.iter_bytes():
            f.write(piece)
    (tmp_path / "page.html").write_text('<video id="v" src="play.mp4" muted></video>')
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium",
                                    args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"])
        try:
            page = browser.new_page()
            page.goto((tmp_path / "page.html").as_uri())
            page.wait_for_function("document.getElementById('v').readyState >= 2", timeout=30_000)
            duration = page.evaluate("document.getElementById('v').duration")
            page.evaluate("() => { const v = document.getElementById('v');"
                          " v.currentTime = v.duration - 1.0; }")
            page.wait_for_function("document.getElementById('v').readyState >= 2 &&"
                                   " !document.getElementById('v').seeking", timeout=30_000)
            page.evaluate("document.getElementById('v').play()")
            page.wait_for_function("document.getElementById('v').ended", timeout=30_000)
            error = page.evaluate("document.getElementById('v').error")
        finally:
            browser.close()
    assert error is None
    assert abs(duration - (end - start) / 1e6) <= 1 / FPS


def test_stored_tables_of_real_recordings_give_the_same_movie(recording):
    """Recovery stored each file's sample tables; the movie from them is the one from the files."""
    from recorder.index import SegmentTables

    pdir, _ = recording
    index, rows = _reopen(pdir)
    assert index.select(SegmentTables).count() == len(rows)
    start = rows[0].start_us + 700_000
    end = rows[-1].end_us - 300_000
    stored = export.build_range(index, "cam1", "main", start, end)
    saved = [(t.path, t.tables) for t in index.select(SegmentTables)]
    SegmentTables.delete().execute(index.db)
    try:
        parsed = export.build_range(index, "cam1", "main", start, end)
    finally:
        for path, blob in saved:
            Segment.store_tables(index, path, blob)
    assert (stored.size, stored.etag, stored.frames) == (parsed.size, parsed.etag, parsed.frames)
    assert b"".join(stored.iter_bytes()) == b"".join(parsed.iter_bytes())
