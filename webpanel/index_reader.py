"""Read-only access to the recordings index (index.db), and the timeline of runs."""

import logging
import sqlite3
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

from peewee import OperationalError

from recorder import limits
from recorder.index import Segment, index_db

logger = logging.getLogger(__name__)

_init_lock = threading.Lock()


class NoIndex(Exception):
    """There is no index.db (nothing recorded yet, or no disk)."""


def open_readonly(picorder_dir: Path) -> None:
    """Point recorder.index's database at P/index.db, read-only, for this thread."""
    path = picorder_dir / "index.db"
    if not path.is_file():
        raise NoIndex(f"no recordings index at {path}")
    uri = f"file:{path}?mode=ro"
    with _init_lock:
        if index_db.database != uri:
            index_db.init(uri, uri=True, pragmas={"busy_timeout": limits.BUSY_TIMEOUT_MS},
                          timeout=limits.BUSY_TIMEOUT_MS / 1000)
    try:
        index_db.connect(reuse_if_open=True)
    except (OperationalError, sqlite3.Error) as exc:
        raise NoIndex(f"cannot open {path}: {exc}") from exc


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


TIMELINE_SQL = (
    "SELECT start_us, end_us, clock_trusted, frames FROM segment "
    "WHERE camera = ? AND stream = ? AND deleting = 0 "
    "AND start_us >= ? AND start_us < ? AND end_us > ? ORDER BY start_us")


def timeline(camera: str, stream: str, start_us: int, end_us: int,
             tolerance_us: int) -> list[Run]:
    """Runs of recording overlapping [start_us, end_us), clipped to it.

    A gap longer than the tolerance, or a change of clock trust, starts a new run,
    so each run is wholly trusted or wholly untrusted.
    """
    low = start_us - limits.TIMELINE_SEGMENT_MAX_S * 1_000_000
    try:
        rows = index_db.execute_sql(TIMELINE_SQL, (camera, stream, low, end_us, start_us))
    except (OperationalError, sqlite3.Error) as exc:
        raise NoIndex(f"cannot read the recordings index: {exc}") from exc
    runs: list[Run] = []
    cur = None
    for seg_start, seg_end, trusted, frames in rows:
        trusted = bool(trusted)
        if (cur is not None and seg_start - cur.end_us <= tolerance_us
                and trusted == cur.clock_trusted):
            cur.end_us = max(cur.end_us, seg_end)
            cur.segments += 1
            cur.frames += frames
            continue
        cur = Run(seg_start, seg_end, trusted, 1, frames)
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
