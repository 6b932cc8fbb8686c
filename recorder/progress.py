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


def block_from_values(values: dict[str, str], progress: str) -> ProgressBlock:
    """The report made of one block's key=value pairs; `progress` is its last line's value."""
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
        end=progress.strip() == "end",
    )


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
        return block_from_values(values, value)


MAX_PENDING_BYTES = 64 * 1024       # a report is a few hundred bytes; more without one is garbage


def _line_start(buffer: bytes, key: bytes, end: int) -> int:
    """Where the last line starting with `key` begins in buffer[:end]; -1 if none."""
    while end > 0:
        i = buffer.rfind(key, 0, end)
        if i <= 0 or buffer[i - 1] == 0x0A:
            return i
        end = i
    return -1


class ProgressFramer:
    """The bytes of a `-progress` pipe in, the newest complete report of each read out.

    Every report of one read arrived at the same moment, and the newest one says
    the most (the highest frame count and stream time), so the older ones are
    not parsed at all. This is the recorder's busiest path: one read per stream
    per second, so it works on bytes with `rfind` and splits one block only.
    """

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, data: bytes) -> ProgressBlock | None:
        buffer = self._pending + data if self._pending else data
        complete = buffer.rfind(b"\n") + 1          # bytes up to the last whole line
        last = _line_start(buffer, b"progress=", complete)
        if last < 0:                                # no complete report yet
            self._pending = buffer[-MAX_PENDING_BYTES:]
            return None
        last_end = buffer.index(b"\n", last)
        self._pending = buffer[last_end + 1:]
        previous = _line_start(buffer, b"progress=", last)
        start = buffer.index(b"\n", previous) + 1 if previous >= 0 else 0
        values = {}
        for line in buffer[start:last].split(b"\n"):
            key, sep, value = line.partition(b"=")
            if sep:
                values[key.strip().decode("ascii", "replace")] = value.decode("ascii", "replace")
        return block_from_values(values, buffer[last + 9:last_end].decode("ascii", "replace"))


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
