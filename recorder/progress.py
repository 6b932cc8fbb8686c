"""Parsing ffmpeg's pipes: `-progress` key=value blocks and segment-list lines; stream metrics."""

import csv
import logging
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProgressBlock:
    """One `-progress` report (ffmpeg writes one per -stats_period)."""

    frame: int = 0
    fps: float = 0.0
    bitrate_kbps: float = 0.0
    total_size: int = 0
    out_time_us: int | None = None
    dup: int = 0
    drop: int = 0
    speed: float = 0.0
    end: bool = False


def _number(value: str, kind=float, default=0):
    value = value.strip().rstrip("x")
    if value.endswith("kbits/s"):
        value = value[:-len("kbits/s")]
    try:
        return kind(value)
    except ValueError:
        return default


class ProgressParser:
    """Collect key=value lines until `progress=continue|end` completes a block."""

    def __init__(self) -> None:
        self._values: dict[str, str] = {}

    def feed(self, line: str) -> ProgressBlock | None:
        key, sep, value = line.strip().partition("=")
        if not sep:
            return None
        if key != "progress":
            self._values[key] = value
            return None
        values, self._values = self._values, {}
        out_time = values.get("out_time_us")
        return ProgressBlock(
            frame=_number(values.get("frame", "0"), int),
            fps=_number(values.get("fps", "0")),
            bitrate_kbps=_number(values.get("bitrate", "0")),
            total_size=_number(values.get("total_size", "0"), int),
            out_time_us=_number(out_time, int, None) if out_time else None,
            dup=_number(values.get("dup_frames", "0"), int),
            drop=_number(values.get("drop_frames", "0"), int),
            speed=_number(values.get("speed", "0")),
            end=value.strip() == "end",
        )


@dataclass(frozen=True)
class SegmentEntry:
    """A closed segment as the segment muxer lists it: file name and stream times."""

    name: str
    start_us: int
    end_us: int


def parse_segment_line(line: str) -> SegmentEntry | None:
    """Parse one `-segment_list_type csv` line ("name,start,end"); None if malformed."""
    try:
        row = next(csv.reader([line.strip()]))
        name, start, end = row
        entry = SegmentEntry(name, round(float(start) * 1e6), round(float(end) * 1e6))
    except (StopIteration, ValueError):
        logger.error("malformed segment list line (its file is left to recovery at the next "
                     "start): %r", line[:200])
        return None
    if not name or "/" in name or entry.end_us < entry.start_us:
        logger.error("malformed segment list line (its file is left to recovery at the next "
                     "start): %r", line[:200])
        return None
    return entry


@dataclass
class StreamMetrics:
    """Counters of one stream since the recorder started (cameraleech's set and more)."""

    frames: int = 0
    fps: float = 0.0
    bitrate_kbps: float = 0.0
    dropped: int = 0
    duplicated: int = 0
    bytes_written: int = 0
    last_segment_utc_us: int | None = None
    # Totals of finished runs, so counters do not fall back to zero on a restart.
    _base_frames: int = 0
    _base_dropped: int = 0
    _base_duplicated: int = 0
    _run: tuple[int, int, int] = (0, 0, 0)

    def update(self, block: ProgressBlock) -> None:
        self._run = (block.frame, block.drop, block.dup)
        self.frames = self._base_frames + block.frame
        self.dropped = self._base_dropped + block.drop
        self.duplicated = self._base_duplicated + block.dup
        self.fps = block.fps
        if block.bitrate_kbps > 0:      # N/A with the segment muxer: then from segments
            self.bitrate_kbps = block.bitrate_kbps

    def end_run(self) -> None:
        frames, drop, dup = self._run
        self._base_frames += frames
        self._base_dropped += drop
        self._base_duplicated += dup
        self._run = (0, 0, 0)
        self.fps = 0.0
        self.bitrate_kbps = 0.0
