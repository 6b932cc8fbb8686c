"""Read-only access to the recordings index (index.db), the timeline of runs, and its tail.

The tail is what ffmpeg wrote after the newest indexed segment: the segment
being written (and any closed one not indexed yet), read up to its last
complete fragment. unindexed_tail() places each such file in wall time the
way recovery would index it: right after the previous segment when it
continues that run, otherwise at the time in its name. So the newest seconds
can be shown and played before the recorder indexes them, and a file is placed
the same way by every request (a player's Range requests may reach another
worker, which must build the same bytes) until the recorder indexes it.
"""

import logging
import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from recorder import layout, limits, mp4
from recorder.activity import ActivityPeriod, periods
from recorder.index import Index, queries
from recorder.recovery import CONTINUE_AFTER_US, CONTINUE_BEFORE_US

logger = logging.getLogger(__name__)

def open_readonly(picorder_dir: Path) -> Index:
    """P/index.db opened read-only for this request (NoIndex if there is none); close it
    after (`with`), so no thread keeps reading the index of a disk that was swapped."""
    return Index.open(picorder_dir / "index.db", readonly=True)


@dataclass
class Run:
    """Continuous recording: segments whose gaps are within the tolerance."""

    start_us: int
    end_us: int
    clock_trusted: bool
    segments: int
    frames: int

    def to_json(self) -> dict:
        return asdict(self)


def timeline(index: Index, camera: str, stream: str, start_us: int, end_us: int,
             tolerance_us: int, tail: list["OpenSegment"] = ()) -> list[Run]:
    """Runs of recording overlapping [start_us, end_us), clipped to it.

    A gap longer than the tolerance, or a change of clock trust, starts a new run,
    so each run is wholly trusted or wholly untrusted. `tail` (unindexed_tail())
    adds what is not indexed yet.
    """
    runs: list[Run] = []
    cur = None
    pieces = list(queries.timeline_pieces(index, camera, stream, start_us, end_us,
                                          tolerance_us))
    pieces += [(t.start_us, t.end_us, t.clock_trusted, 1, t.frames) for t in tail
               if t.end_us > start_us and t.start_us < end_us]
    pieces.sort()
    for first, last, trusted, count, frames in pieces:
        if (cur is not None and first - cur.end_us <= tolerance_us
                and trusted == cur.clock_trusted):
            cur.end_us = max(cur.end_us, last)
            cur.segments += count
            cur.frames += frames
            continue
        cur = Run(first, last, trusted, count, frames)
        runs.append(cur)
    for run in runs:
        run.start_us = max(run.start_us, start_us)
        run.end_us = min(run.end_us, end_us)
    return runs


def activity(index: Index, camera: str, start_us: int, end_us: int) -> list[ActivityPeriod]:
    """Periods of activity of a camera overlapping [start_us, end_us), clipped to it."""
    low = start_us - limits.TIMELINE_SEGMENT_MAX_S * 1_000_000
    return periods(queries.activity_tracks(index, camera, low, end_us), start_us, end_us)


# ------------------------------------------------------------------ the tail

@dataclass
class OpenSegment:
    """A segment file not in the index (yet), placed in wall time; read up to `bytes`.

    It has the fields of a Segment row that recorder.export reads.
    """

    camera: str
    stream: str
    path: str
    start_us: int
    end_us: int
    bytes: int                  # end of its complete fragments: nothing after it is read
    frames: int
    clock_trusted: bool
    run_id: int | None = None
    tables: bytes | None = None
    fragments: list = field(default_factory=list, repr=False)   # its complete fragments


class _Scans:
    """This worker's latest scan of each growing file, so a request reads only its new fragments."""

    def __init__(self, items: int):
        self.items = items
        self._lock = threading.Lock()
        self._data: OrderedDict = OrderedDict()

    def scan(self, path: Path) -> mp4.SegmentScan:
        with self._lock:
            earlier = self._data.get(path)
        scan = mp4.rescan_segment(path, earlier)
        with self._lock:
            self._data[path] = scan
            self._data.move_to_end(path)
            while len(self._data) > self.items:
                self._data.popitem(last=False)
        return scan


_scans = _Scans(limits.TAIL_SCAN_CACHE_ITEMS)


def unindexed_tail(index: Index, camera: str, stream: str, now_us: int,
                   clock_trusted: "bool | Callable[[], bool]",
                   reaching_us: int | None = None) -> list[OpenSegment]:
    """The stream's files newer than its newest row, placed after it (see the module docstring).

    `clock_trusted` is the clock's state now (or a function asked only when
    needed), for a file that starts a run of its own. With `reaching_us`,
    nothing unless that time is past the newest row's end.
    """
    picorder_dir = index.dir
    prev = queries.newest_segment(index, camera, stream)
    if prev is not None and reaching_us is not None and reaching_us <= prev.end_us:
        return []
    after = prev.start_us if prev is not None else now_us - limits.TAIL_LOOKBACK_S * 1_000_000
    rels = layout.files_after(picorder_dir, camera, stream, after, now_us, limits.TAIL_MAX_FILES)
    if not rels:
        return []
    known = queries.indexed_paths(index, rels)
    prev_end = prev.end_us if prev is not None else None
    prev_trusted = prev.clock_trusted if prev is not None else clock_trusted
    tail: list[OpenSegment] = []
    for rel in rels:
        if rel in known:
            continue
        try:
            scan = _scans.scan(Path(picorder_dir) / rel)
        except (OSError, mp4.Mp4Error):
            continue                # gone, or its header is not complete yet
        if not scan.fragments:
            continue
        name_us = layout.name_start_us(rel)[2]
        duration = scan.duration_us
        if (prev_end is not None
                and name_us - CONTINUE_BEFORE_US <= prev_end < name_us + CONTINUE_AFTER_US):
            start, trusted = prev_end, prev_trusted
        else:
            start = max(name_us, prev_end or 0)
            trusted = clock_trusted() if callable(clock_trusted) else clock_trusted
        item = OpenSegment(camera, stream, rel, start, start + max(duration, 1), scan.complete_end,
                           scan.frames, trusted, fragments=scan.fragments)
        tail.append(item)
        prev_end, prev_trusted = item.end_us, item.clock_trusted
    return tail
