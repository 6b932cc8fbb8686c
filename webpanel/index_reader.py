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
import os
import sqlite3
import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from peewee import OperationalError

from recorder import layout, limits, mp4
from recorder.index import Segment, index_db
from recorder.recovery import CONTINUE_AFTER_US, CONTINUE_BEFORE_US

logger = logging.getLogger(__name__)

_init_lock = threading.Lock()


class NoIndex(Exception):
    """There is no index.db (nothing recorded yet, or no disk)."""


def open_readonly(picorder_dir: Path) -> None:
    """Point recorder.index's database at P/index.db, read-only, for this thread."""
    path = picorder_dir / "index.db"
    if not path.is_file():
        raise NoIndex(f"no recordings index at {path}")
    uri = _readonly_uri(path)
    with _init_lock:
        if index_db.database != uri:
            index_db.init(uri, uri=True, pragmas={"busy_timeout": limits.BUSY_TIMEOUT_MS},
                          timeout=limits.BUSY_TIMEOUT_MS / 1000)
    try:
        index_db.connect(reuse_if_open=True)
    except (OperationalError, sqlite3.Error) as exc:
        raise NoIndex(f"cannot open {path}: {exc}") from exc


def _readonly_uri(path: Path) -> str:
    """SQLite URI to read index.db without ever writing to its directory.

    A read-only reader of a WAL database needs the -wal and -shm files. They
    exist while the recorder has the index open; after it closed cleanly SQLite
    removed them, and a reader that may not write in the (root-owned) directory
    cannot create them. Nothing writes the index then, so it is read as immutable.
    """
    wal = path.with_name(path.name + "-wal")
    if not wal.exists() and not os.access(path.parent, os.W_OK):
        return f"file:{path}?mode=ro&immutable=1"
    return f"file:{path}?mode=ro"


def close() -> None:
    if not index_db.is_closed():
        index_db.close()


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


# Segments of one ffmpeg run are contiguous, so SQLite can fold each run into one
# row; only a run whose segments leave gaps is read row by row.
RUNS_SQL = (
    "SELECT run_id, clock_trusted, MIN(start_us), MAX(end_us), COUNT(*), SUM(frames), "
    "SUM(end_us - start_us) FROM segment "
    "WHERE camera = ? AND stream = ? AND deleting = 0 "
    "AND start_us >= ? AND start_us < ? AND end_us > ? "
    "GROUP BY run_id, clock_trusted ORDER BY 3")
ROWS_SQL = (
    "SELECT start_us, end_us, clock_trusted, frames FROM segment "
    "WHERE camera = ? AND stream = ? AND deleting = 0 AND run_id = ? AND clock_trusted = ? "
    "AND start_us >= ? AND start_us < ? AND end_us > ? ORDER BY start_us")


def _query(sql: str, args: tuple):
    try:
        return index_db.execute_sql(sql, args).fetchall()
    except (OperationalError, sqlite3.Error) as exc:
        raise NoIndex(f"cannot read the recordings index: {exc}") from exc


def _pieces(camera: str, stream: str, start_us: int, end_us: int, tolerance_us: int):
    """(start, end, trusted, segments, frames) pieces in time order, each gap-free."""
    low = start_us - limits.TIMELINE_SEGMENT_MAX_S * 1_000_000
    window = (low, end_us, start_us)
    for run_id, trusted, first, last, count, frames, covered in _query(
            RUNS_SQL, (camera, stream) + window):
        if (last - first) - covered <= tolerance_us:
            yield first, last, bool(trusted), count, frames
            continue
        rows = _query(ROWS_SQL, (camera, stream, run_id, trusted) + window)
        for seg_start, seg_end, seg_trusted, seg_frames in rows:
            yield seg_start, seg_end, bool(seg_trusted), 1, seg_frames


def timeline(camera: str, stream: str, start_us: int, end_us: int,
             tolerance_us: int, tail: list["OpenSegment"] = ()) -> list[Run]:
    """Runs of recording overlapping [start_us, end_us), clipped to it.

    A gap longer than the tolerance, or a change of clock trust, starts a new run,
    so each run is wholly trusted or wholly untrusted. `tail` (unindexed_tail())
    adds what is not indexed yet.
    """
    runs: list[Run] = []
    cur = None
    pieces = list(_pieces(camera, stream, start_us, end_us, tolerance_us))
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


def newest_segment(camera: str, stream: str) -> Segment | None:
    return (Segment.select()
            .where((Segment.camera == camera) & (Segment.stream == stream)
                   & (Segment.deleting == False))  # noqa: E712
            .order_by(Segment.start_us.desc()).first())


def segment_near(camera: str, stream: str, at_us: int) -> Segment | None:
    """The segment covering `at_us`, else the nearest one before or after it."""
    base = Segment.select().where((Segment.camera == camera) & (Segment.stream == stream)
                                  & (Segment.deleting == False))  # noqa: E712
    before = base.where(Segment.start_us <= at_us).order_by(Segment.start_us.desc()).first()
    if before is not None and before.end_us > at_us:
        return before
    after = base.where(Segment.start_us > at_us).order_by(Segment.start_us).first()
    if before is None or (after is not None and after.start_us - at_us < at_us - before.end_us):
        return after
    return before


def oldest_start_us() -> int | None:
    """Start of the oldest recording on the disk (for "retention days")."""
    try:
        row = index_db.execute_sql("SELECT MIN(start_us) FROM segment WHERE deleting = 0")
        return row.fetchone()[0]
    except (OperationalError, sqlite3.Error) as exc:
        raise NoIndex(f"cannot read the recordings index: {exc}") from exc


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


def unindexed_tail(picorder_dir: Path, camera: str, stream: str, now_us: int,
                   clock_trusted: "bool | Callable[[], bool]",
                   reaching_us: int | None = None) -> list[OpenSegment]:
    """The stream's files newer than its newest row, placed after it (see the module docstring).

    `clock_trusted` is the clock's state now (or a function asked only when
    needed), for a file that starts a run of its own. With `reaching_us`,
    nothing unless that time is past the newest row's end.
    """
    prev = newest_segment(camera, stream)
    if prev is not None and reaching_us is not None and reaching_us <= prev.end_us:
        return []
    after = prev.start_us if prev is not None else now_us - limits.TAIL_LOOKBACK_S * 1_000_000
    rels = layout.files_after(picorder_dir, camera, stream, after, now_us, limits.TAIL_MAX_FILES)
    if not rels:
        return []
    known = {row[0] for row in _query(
        f"SELECT path FROM segment WHERE path IN ({', '.join('?' * len(rels))})", tuple(rels))}
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
