"""live.mp4: a client gets each fragment within 500 ms of ffmpeg writing it, across segments."""

import os
import subprocess
import threading
import time

import pytest

from helpers.mp4 import MOVFLAGS, decode_errors, ffprobe_packets, require_ffmpeg
from recorder import live, mp4

pytestmark = pytest.mark.integration

SEGMENT_S = 3
RECORD_S = 7
LATENCY_S = 0.5


class SizeWatcher(threading.Thread):
    """Polls the sizes of the segment files finely: when did each byte count appear?"""

    def __init__(self, directory):
        super().__init__(daemon=True)
        self.directory = directory
        self.history: dict[str, list[tuple[float, int]]] = {}
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            for name in os.listdir(self.directory):
                try:
                    size = os.stat(self.directory / name).st_size
                except FileNotFoundError:
                    continue
                seen = self.history.setdefault(name, [])
                if not seen or seen[-1][1] != size:
                    seen.append((time.monotonic(), size))
            time.sleep(0.002)

    def time_reached(self, name: str, size: int) -> float:
        return next(t for t, s in self.history[name] if s >= size)


def test_live_fragments_arrive_within_500ms_across_segments(tmp_path):
    require_ffmpeg()
    pdir = tmp_path / "picorder"
    seg_dir = pdir / "cam1" / "main"
    seg_dir.mkdir(parents=True)
    watcher = SizeWatcher(seg_dir)
    watcher.start()

    def current_segment():            # what the recorder's status reports as current_segment
        names = sorted(n for n in os.listdir(seg_dir) if n.endswith(".mp4"))
        return f"cam1/main/{names[-1]}" if names else None

    received: list[tuple[float, bytes]] = []

    def client():
        for piece in live.follow(pdir, "cam1", "main", current_segment, poll=0.05,
                                 idle_timeout=2.0):
            received.append((time.monotonic(), piece))

    reader = threading.Thread(target=client, daemon=True)
    reader.start()
    writer = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-re", "-f", "lavfi",
         "-i", "testsrc=size=320x240:rate=15", "-t", str(RECORD_S), "-c:v", "libx264",
         "-preset", "ultrafast", "-tune", "zerolatency", "-g", "15", "-pix_fmt", "yuv420p",
         "-f", "segment", "-segment_time", str(SEGMENT_S), "-reset_timestamps", "1",
         "-segment_format", "mp4", "-segment_format_options", MOVFLAGS,
         str(seg_dir / "s%03d.mp4")], capture_output=True, text=True, timeout=60)
    assert writer.returncode == 0, writer.stderr
    reader.join(timeout=15)
    watcher.stop.set()
    watcher.join()
    assert not reader.is_alive()

    # Where each fragment of the files ended, keyed by its sample bytes.
    sources = {}
    files = sorted(seg_dir.glob("*.mp4"))
    assert len(files) >= 3
    for path in files:
        data = path.read_bytes()
        for frag in mp4.scan_segment(path).fragments:
            sources[data[frag.offset + frag.moof_size:frag.end]] = (path.name, frag.end)

    latencies, names = [], set()
    stream = b""
    for t, piece in received:
        stream += piece
        top = list(mp4.iter_boxes(piece))
        if top[0].type != b"moof":
            continue
        name, end = sources[piece[top[1].offset:]]
        names.add(name)
        latencies.append(t - watcher.time_reached(name, end))
    assert names == {p.name for p in files}, "every segment file was followed"
    assert len(latencies) == len(sources)
    assert max(latencies) < LATENCY_S, sorted(latencies)[-5:]

    out = tmp_path / "live.mp4"
    out.write_bytes(stream)
    assert decode_errors(out) == ""
    dts = [int(p["dts"]) for p in ffprobe_packets(out)]
    assert all(b > a for a, b in zip(dts, dts[1:]))
    print(f"live latency: max {max(latencies) * 1000:.0f} ms, "
          f"median {sorted(latencies)[len(latencies) // 2] * 1000:.0f} ms")


MSE_PAGE = """
async (args) => {
  const bytes = Uint8Array.from(atob(args.data), c => c.charCodeAt(0));
  const mime = 'video/mp4; codecs="' + args.codec + '"';
  if (!MediaSource.isTypeSupported(mime)) return {error: 'unsupported ' + mime};
  const video = document.createElement('video');
  video.muted = true;
  document.body.appendChild(video);
  const ms = new MediaSource();
  video.src = URL.createObjectURL(ms);
  await new Promise(r => ms.addEventListener('sourceopen', r, {once: true}));
  const sb = ms.addSourceBuffer(mime);
  for (const [a, b] of args.pieces) {
    sb.appendBuffer(bytes.subarray(a, b));
    await new Promise((r, j) => { sb.onupdateend = r; sb.onerror = j; });
  }
  const ranges = [];
  for (let i = 0; i < sb.buffered.length; i++) ranges.push([sb.buffered.start(i), sb.buffered.end(i)]);
  video.currentTime = args.boundary - 0.3;
  await new Promise(r => video.addEventListener('seeked', r, {once: true}));
  await video.play();
  await new Promise(r => setTimeout(r, 900));
  return {ranges, time: video.currentTime, error: video.error && video.error.message,
          frames: video.getVideoPlaybackQuality().totalVideoFrames};
}
"""


def test_live_stream_plays_in_chromium_mse(tmp_path):
    """The rebased stream is one continuous MSE timeline that plays across the boundary."""
    require_ffmpeg()
    import base64
    from playwright.sync_api import sync_playwright
    from helpers.mp4 import ffmpeg_segments
    files = ffmpeg_segments(tmp_path / "src", seconds=4, segment_s=2)
    pdir = tmp_path / "picorder"
    rels = []
    for n, src in enumerate(files[:2]):
        rel = f"cam1/main/s{n}.mp4"
        (pdir / rel).parent.mkdir(parents=True, exist_ok=True)
        (pdir / rel).write_bytes(src.read_bytes())
        rels.append(rel)
    calls, now = [0], [0.0]

    def current():
        calls[0] += 1
        return rels[0] if calls[0] < 3 else rels[1]

    def sleep(s):
        now[0] += s
    pieces = list(live.follow(pdir, "cam1", "main", current, idle_timeout=1,
                              clock=lambda: now[0], sleep=sleep))
    data = b"".join(pieces)
    bounds, pos = [], 0
    for piece in pieces:
        bounds.append((pos, pos + len(piece)))
        pos += len(piece)
    with open(pdir / rels[0], "rb") as f:
        init = mp4.read_init(f)
    scan_a = mp4.scan_segment(pdir / rels[0])
    boundary = (scan_a.fragments[-1].base_dts + scan_a.fragments[-1].duration) / init.timescale
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium",
                                    args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"])
        try:
            page = browser.new_page()
            page.set_content("<html><body></body></html>")
            result = page.evaluate(MSE_PAGE, {"data": base64.b64encode(data).decode(),
                                              "codec": init.rfc6381, "pieces": bounds,
                                              "boundary": boundary})
        finally:
            browser.close()
    assert result.get("error") is None, result
    assert len(result["ranges"]) == 1, result               # no hole at the boundary
    start, end = result["ranges"][0]
    assert start <= boundary - 0.9 and end >= boundary + 1.9
    assert result["time"] > boundary + 0.3, result
