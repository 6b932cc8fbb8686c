"""live.mp4 follows the segment being written (real ffmpeg, -re, the recorder's file layout) across
segment boundaries."""

import os
import subprocess
import threading
import time

import pytest

from helpers.mp4 import MOVFLAGS, require_ffmpeg
from helpers.panel import FakeRecorder, admin_session, make_app, recorder_status, stream_status
from recorder import layout, mp4
from recorder.paths import DataPaths

pytestmark = pytest.mark.integration

LATENCY_S = 0.5


def live_ffmpeg(out_dir, seconds=8, segment_s=2):
    """ffmpeg writing 2 s segments under out_dir in the recorder's layout (names in UTC)."""
    now = time.time()
    for t in (now, now + 86_400):                      # today's and tomorrow's day directories
        (out_dir / time.strftime("%Y/%m/%d", time.gmtime(t))).mkdir(parents=True, exist_ok=True)
    argv = ["ffmpeg", "-nostdin", "-v", "error", "-re", "-f", "lavfi",
            "-i", "testsrc=size=320x240:rate=15", "-t", str(seconds), "-c:v", "libx264",
            "-preset", "ultrafast", "-tune", "zerolatency", "-g", "15", "-bf", "0",
            "-pix_fmt", "yuv420p", "-f", "segment", "-segment_time", str(segment_s),
            "-reset_timestamps", "1", "-segment_format", "mp4", "-strftime", "1",
            "-segment_format_options", MOVFLAGS, str(out_dir / layout.SEGMENT_NAME)]
    return subprocess.Popen(argv, env=dict(os.environ, TZ="UTC"))


class FileWatcher(threading.Thread):
    """Notes when each complete fragment (in order across the files) appears on disk."""

    def __init__(self, directory):
        super().__init__(daemon=True)
        self.directory = directory
        self.seen: list[tuple[float, int]] = []     # (time, mdat size) per fragment
        self.counts: dict = {}
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            for path in sorted(self.directory.glob("*/*/*/*.mp4")):
                try:
                    scan = mp4.scan_segment(path)
                except (OSError, mp4.Mp4Error):
                    continue
                name = str(path.relative_to(self.directory))
                done = self.counts.get(name, 0)
                for frag in scan.fragments[done:]:
                    self.seen.append((time.monotonic(), frag.end - frag.offset - frag.moof_size))
                self.counts[name] = len(scan.fragments)
            time.sleep(0.01)


def received_fragments(chunks_with_times):
    """(arrival time, mdat size) of each moof+mdat in the received byte stream."""
    buf = b""
    out, pos = [], 0
    pending_moof = None
    for when, chunk in chunks_with_times:
        buf += chunk
        while pos + 8 <= len(buf):
            size = int.from_bytes(buf[pos:pos + 4], "big")
            kind = buf[pos + 4:pos + 8]
            if pos + size > len(buf):
                break
            if kind == b"moof":
                pending_moof = size
            elif kind == b"mdat" and pending_moof is not None:
                out.append((when, size))
                pending_moof = None
            pos += size
    return out


def test_live_fragments_arrive_within_half_a_second_across_segments(tmp_path):
    require_ffmpeg()
    root = tmp_path / "root"
    live_dir = root / "picorder" / "cam1" / "main"
    app = make_app(tmp_path, LIVE_IDLE_TIMEOUT_S=2.0)      # end soon after ffmpeg stops
    admin = admin_session(app)
    assert admin.post("/api/cameras", json={"name": "cam1", "main_url": "rtsp://h/1"}
                      ).status_code == 201

    def status():
        files = sorted(live_dir.glob("*/*/*/*.mp4"))
        current = f"cam1/main/{files[-1].relative_to(live_dir)}" if files else None
        return recorder_status(root, [stream_status(current_segment=current)])

    recorder = FakeRecorder(DataPaths(tmp_path / "data").control_socket, status)
    ffmpeg = live_ffmpeg(live_dir)
    watcher = FileWatcher(live_dir)
    watcher.start()
    try:
        deadline = time.monotonic() + 10
        while not watcher.seen and time.monotonic() < deadline:
            time.sleep(0.02)
        assert watcher.seen, "ffmpeg wrote nothing"
        response = admin.client.get("/api/cameras/cam1/live.mp4", buffered=False)
        assert response.status_code == 200 and response.mimetype == "video/mp4"
        chunks = []
        for chunk in response.response:
            now = time.monotonic()
            chunks.append((now, chunk))
        response.close()
    finally:
        ffmpeg.kill()
        ffmpeg.wait()
        watcher.stop.set()
        watcher.join()
        recorder.close()
    data = b"".join(c for _t, c in chunks)
    assert data[4:8] == b"ftyp"
    got = received_fragments(chunks)
    sizes = [s for _t, s in watcher.seen]
    got_sizes = [s for _t, s in got]
    start = next(i for i in range(len(sizes)) if sizes[i:i + len(got_sizes)] == got_sizes)
    assert len(got) >= 6 and len(watcher.counts) >= 3          # crossed segment boundaries
    files_spanned = set()
    index = 0
    for name, count in sorted(watcher.counts.items()):
        for _ in range(count):
            if start <= index < start + len(got):
                files_spanned.add(name)
            index += 1
    assert len(files_spanned) >= 2
    late = [(received - written) for (received, _s), (written, _w)
            in zip(got[1:], watcher.seen[start + 1:])]
    assert max(late) <= LATENCY_S, late
