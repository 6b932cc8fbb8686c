"""Helpers for the mp4/recovery/export/live tests: real ffmpeg segments and an index."""

import json
import shutil
import subprocess
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest

from recorder.index import Index, queries
from recorder.index.tables import probe_segment

# The recorder's segment options; flush_packets=1 makes each fragment reach the file
# as soon as it is complete (without it, ffmpeg's 32 KiB buffer delays live view).
MOVFLAGS = ("movflags=+frag_keyframe+empty_moov+default_base_moof:frag_duration=1000000"
            ":flush_packets=1")


def ffmpeg_segments(out_dir: Path, *, seconds: float, segment_s: float, fps: int = 15,
                    gop: int = 15, bframes: int = 0, size: str = "320x240",
                    codec: str = "libx264", pattern: str = "s%03d.mp4",
                    filters: str = "") -> list[Path]:
    """Encode lavfi testsrc into fMP4 segments the way the recorder's ffmpeg writes them."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if codec == "libx265":
        encode = ["-c:v", codec, "-preset", "ultrafast", "-tag:v", "hvc1",
                  "-x265-params", f"keyint={gop}:min-keyint={gop}:bframes={bframes}:log-level=error"]
    else:
        encode = ["-c:v", codec, "-preset", "ultrafast", "-g", str(gop), "-bf", str(bframes)]
    argv = ["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi",
            "-i", f"testsrc=size={size}:rate={fps}{filters}", "-t", str(seconds), *encode,
            "-pix_fmt", "yuv420p", "-f", "segment", "-segment_time", str(segment_s),
            "-reset_timestamps", "1", "-segment_format", "mp4",
            "-segment_format_options", MOVFLAGS, str(out_dir / pattern)]
    subprocess.run(argv, check=True, timeout=60)
    return sorted(out_dir.glob("s*.mp4"))


def utc_name(start_us: int) -> str:
    """YYYY/MM/DD/HH-MM-SS.mp4 for a UTC epoch µs."""
    return datetime.fromtimestamp(start_us / 1e6, tz=timezone.utc).strftime("%Y/%m/%d/%H-%M-%S.mp4")


@dataclass
class Recorded:
    picorder_dir: Path
    camera: str
    stream: str
    rows: list
    index: Index            # open (writable) on picorder_dir/index.db


def install_segments(picorder_dir: Path, sources: list[Path], *, camera: str = "cam1",
                     stream: str = "main", start_us: int = 1_795_000_000_000_000,
                     gap_after: dict | None = None, run_id: int = 1,
                     tables: bool = True) -> Recorded:
    """Copy segment files into the layout and index them as contiguous rows.

    Rows carry the stored sample tables (as the recorder's ingest writes them)
    unless tables=False. The index stays open: Recorded.index.
    """
    picorder_dir.mkdir(parents=True, exist_ok=True)
    index = Index.open(picorder_dir / "index.db")
    rows = []
    t = start_us
    for i, src in enumerate(sources):
        info = probe_segment(src)
        rel = f"{camera}/{stream}/{utc_name(t)}"
        dest = picorder_dir / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
        rows.append(queries.insert_segment(
            index, info.tables if tables else b"", camera=camera, stream=stream, path=rel,
            start_us=t, end_us=t + info.duration_us, duration_us=info.duration_us,
            bytes=info.file_size, frames=info.frames, codec=info.codec, width=info.width,
            height=info.height, clock_trusted=True, run_id=run_id))
        t += info.duration_us
        if gap_after and i in gap_after:
            t += gap_after[i]
            run_id += 1
    return Recorded(picorder_dir, camera, stream, rows, index)


def ffprobe_packets(path: Path) -> list[dict]:
    """Video packets (pts_time, dts_time, flags, size) in decode order."""
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0",
                          "-show_entries", "packet=pts,dts,duration,flags,size",
                          "-of", "json", str(path)],
                         check=True, capture_output=True, text=True, timeout=60).stdout
    return json.loads(out).get("packets", [])


def ffprobe_stream(path: Path) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_packets",
                          "-show_entries", "stream=nb_read_packets,nb_frames,duration,time_base,"
                          "start_time,codec_name,width,height:format=duration",
                          "-of", "json", str(path)],
                         check=True, capture_output=True, text=True, timeout=60).stdout
    data = json.loads(out)
    stream = data["streams"][0]
    stream["format_duration"] = data["format"].get("duration")
    return stream


def expected_packets(segments, start_us: int, end_us: int, fps: int) -> int:
    """Independent oracle from ffprobe: how many packets a range movie holds, from the keyframe
    at or before start to the last one (decode order) presented before end.

    `segments`: (file, start_us, end_us) of each indexed segment, in time order.
    """
    count, started = 0, False
    for path, seg_start_us, seg_end_us in segments:
        if seg_end_us <= start_us or seg_start_us >= end_us:
            continue                      # not covering the range
        pkts = ffprobe_packets(path)
        first_pts = min(int(p["pts"]) for p in pkts[:fps * 2])
        tb = probe_segment(path).timescale
        walls = [seg_start_us + (int(p["pts"]) - first_pts) * 1_000_000 // tb for p in pkts]
        lo = 0
        if not started:
            keys = [i for i, p in enumerate(pkts) if "K" in p["flags"] and walls[i] <= start_us]
            lo = keys[-1] if keys else 0
            if walls[lo] >= end_us:
                continue
            started = True
        hi = max((i for i in range(lo, len(pkts)) if walls[i] < end_us), default=lo - 1)
        count += hi - lo + 1
    return count


def range_media_s(segments, start_us: int, end_us: int) -> float:
    """Seconds of camera time a range movie holds for the wall-clock range [start, end), from
    the index rows alone (each with start_us, end_us, duration_us; in time order).

    Inside a segment, media time runs with wall time from the row's start; the recorder's
    drift correction (docs/time.md) may make a row's wall length differ from its media
    duration by up to 1 %, and the movie keeps every frame of the segments it spans."""
    total = 0
    for row in segments:
        if row.end_us <= start_us or row.start_us >= end_us:
            continue
        lo = max(start_us, row.start_us) - row.start_us
        hi = min(end_us - row.start_us, row.duration_us)
        total += hi - lo
    return total / 1e6


def decode_errors(path: Path) -> str:
    """What `ffmpeg -v error -i path -f null -` prints (empty when it decodes cleanly)."""
    proc = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-f", "null", "-"],
                          capture_output=True, text=True, timeout=120)
    return (proc.stderr + ("" if proc.returncode == 0 else f"\nexit {proc.returncode}")).strip()


def require_ffmpeg() -> None:
    if not shutil.which("ffmpeg") or not shutil.which("ffprobe"):
        pytest.fail("ffmpeg is not installed: run `make test`, which installs it")
