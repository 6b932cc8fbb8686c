"""Recovery after ffmpeg is killed with SIGKILL mid-segment: the torn file is indexed and plays."""

import signal
import subprocess
import time

import pytest

from helpers.mp4 import MOVFLAGS, decode_errors, require_ffmpeg
from recorder import mp4
from recorder.index import Index, Segment, tables
from recorder.recovery import recover

pytestmark = pytest.mark.integration

SEGMENT_S = 3
KILL_AFTER_S = 4.6


def test_kill_9_mid_segment_loses_at_most_a_second(tmp_path):
    require_ffmpeg()
    pdir = tmp_path / "picorder"
    seg_dir = pdir / "cam1" / "main" / "2026" / "11" / "21"
    seg_dir.mkdir(parents=True)
    proc = subprocess.Popen(
        ["ffmpeg", "-nostdin", "-v", "error", "-re", "-f", "lavfi",
         "-i", "testsrc=size=320x240:rate=15", "-t", "30", "-c:v", "libx264",
         "-preset", "ultrafast", "-tune", "zerolatency", "-g", "15", "-pix_fmt", "yuv420p",
         "-f", "segment", "-segment_time", str(SEGMENT_S), "-reset_timestamps", "1",
         "-segment_format", "mp4", "-segment_format_options", MOVFLAGS,
         "-segment_start_number", "0", str(seg_dir / "12-00-%02d.mp4")])
    started = time.monotonic()
    # Wait until the first frames are out, then measure from there.
    while not any(p.stat().st_size > 1000 for p in seg_dir.glob("*.mp4")):
        assert time.monotonic() - started < 10
        time.sleep(0.01)
    first_data = time.monotonic()
    time.sleep(KILL_AFTER_S)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    recorded_s = time.monotonic() - first_data

    files = sorted(seg_dir.glob("*.mp4"))
    assert len(files) == 2
    torn = files[-1]
    index = Index.open(pdir / "index.db")
    report = recover(index)
    assert sorted(report.indexed) == sorted(str(p.relative_to(pdir)) for p in files)
    assert not report.moved_aside
    for path in files:
        assert decode_errors(path) == "", path
        info = tables.probe_segment(path)
        assert not info.torn
    rows = list(index.select().order_by(Segment.start_us))
    assert rows[1].start_us == rows[0].end_us              # the torn file continues the run
    kept_s = sum(r.duration_us for r in rows) / 1e6
    # At most the fragment being written (<= 1 s) is lost, plus scheduling slack.
    assert kept_s >= recorded_s - 1.0 - 0.3, (kept_s, recorded_s)
    assert report.truncated == [] or report.truncated[0].path == str(torn.relative_to(pdir))
