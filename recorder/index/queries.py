"""Every SQL statement run on index.db, beside the models' own queries.

Two kinds of connection reach the file:
- an Index (recorder.index.models), passed to every function of the first half:
  the recorder's writer thread, recovery, the CLI's export and check, and the
  panel (read-only, one per request);
- retention's own sqlite3 connection (connect_for_retention), autocommit with
  explicit transactions, used from the storage's scheduler thread.
The statements for both live here, so a schema change is made in one package.
"""

import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

from peewee import OperationalError

from recorder import limits
from recorder.index.models import Activity, Index, NoIndex, Segment
from recorder.paths import refuse_links

US = 1_000_000


# ------------------------------------------------------------------ peewee side

def last_ends(index: Index) -> dict[str, int]:
    """End of the newest row of each stream, keyed "camera/stream"."""
    return {f"{c}/{s}": e for c, s, e in index.db.execute_sql(
        "SELECT camera, stream, MAX(end_us) FROM segment GROUP BY camera, stream")}


def all_rows(index: Index) -> list[tuple[int, str, int]]:
    """(id, path, deleting) of every row: recovery's one query."""
    return index.db.execute_sql("SELECT id, path, deleting FROM segment").fetchall()


def reanchor_run(index: Index, camera: str, stream: str, run_id: int, delta_us: int) -> int:
    """Shift the untrusted rows of one run by delta_us and flag them trusted; rows changed."""
    return (Segment.update(start_us=Segment.start_us + delta_us,
                           end_us=Segment.end_us + delta_us, clock_trusted=True)
            .where((Segment.camera == camera) & (Segment.stream == stream)
                   & (Segment.run_id == run_id)
                   & (Segment.clock_trusted == False))  # noqa: E712 (peewee expression)
            .execute(index.db))


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


def _query(index: Index, sql: str, args: tuple = ()):
    try:
        return index.db.execute_sql(sql, args).fetchall()
    except (OperationalError, sqlite3.Error) as exc:
        raise NoIndex(f"cannot read the recordings index: {exc}") from exc


def timeline_pieces(index: Index, camera: str, stream: str, start_us: int, end_us: int,
                    tolerance_us: int):
    """(start, end, trusted, segments, frames) pieces in time order, each gap-free."""
    low = start_us - limits.TIMELINE_SEGMENT_MAX_S * US
    window = (low, end_us, start_us)
    for run_id, trusted, first, last, count, frames, covered in _query(
            index, RUNS_SQL, (camera, stream) + window):
        if (last - first) - covered <= tolerance_us:
            yield first, last, bool(trusted), count, frames
            continue
        rows = _query(index, ROWS_SQL, (camera, stream, run_id, trusted) + window)
        for seg_start, seg_end, seg_trusted, seg_frames in rows:
            yield seg_start, seg_end, bool(seg_trusted), 1, seg_frames


def indexed_paths(index: Index, paths: list[str]) -> set[str]:
    """Which of `paths` have a row."""
    if not paths:
        return set()
    return {row[0] for row in _query(
        index, f"SELECT path FROM segment WHERE path IN ({', '.join('?' * len(paths))})", tuple(paths))}


def oldest_start_us(index: Index) -> int | None:
    """Start of the oldest row not being deleted."""
    return _query(index, "SELECT MIN(start_us) FROM segment WHERE deleting = 0")[0][0]


def newest_segment(index: Index, camera: str, stream: str) -> Segment | None:
    return (index.select()
            .where((Segment.camera == camera) & (Segment.stream == stream)
                   & (Segment.deleting == False))  # noqa: E712
            .order_by(Segment.start_us.desc()).first())


def segment_near(index: Index, camera: str, stream: str, at_us: int) -> Segment | None:
    """The segment covering `at_us`, else the nearest one before or after it."""
    base = index.select().where((Segment.camera == camera) & (Segment.stream == stream)
                                  & (Segment.deleting == False))  # noqa: E712
    before = base.where(Segment.start_us <= at_us).order_by(Segment.start_us.desc()).first()
    if before is not None and before.end_us > at_us:
        return before
    after = base.where(Segment.start_us > at_us).order_by(Segment.start_us).first()
    if before is None or (after is not None and after.start_us - at_us < at_us - before.end_us):
        return after
    return before


def activity_tracks(index: Index, camera: str, start_us: int,
                    end_us: int) -> list[tuple[int, bytes]]:
    """(start_us, levels) of the camera's activity rows overlapping [start_us, end_us),
    oldest first; none on an index.db older than v5 (opened read-only, not migrated)."""
    if not index.db.table_exists(Activity._meta.table_name):
        return []
    rows = _query(index, "SELECT start_us, levels FROM activity WHERE camera = ? AND end_us > ? "
                  "AND start_us < ? ORDER BY start_us", (camera, start_us, end_us))
    return [(start, bytes(levels)) for start, levels in rows]


def store_activity(index: Index, path: str, camera: str, start_us: int, end_us: int,
                   levels: bytes) -> bool:
    """Store a segment's activity levels, unless its row is gone (retention) already."""
    if not index.select().where(Segment.path == path).exists():
        return False
    Activity.replace(path=path, camera=camera, start_us=start_us, end_us=end_us,
                     levels=levels).execute(index.db)
    return True


def insert_segment(index: Index, tables: bytes = b"", *, replace: bool = False,
                   **fields) -> Segment:
    """Insert a segment row (Segment's fields) and its sample tables in one transaction;
    with replace, over a row of the same path. The row, with its id."""
    query = Segment.insert(**fields)
    if replace:
        query = query.on_conflict_replace()
    with index.atomic():
        row_id = query.execute(index.db)
        Segment.store_tables(index, fields["path"], tables)
    return Segment(id=row_id, **fields)


def delete_segments(index: Index, ids: list[int]) -> None:
    """Delete rows by id (one transaction); their tables and activity follow (triggers)."""
    with index.atomic():
        for row_id in ids:
            Segment.delete().where(Segment.id == row_id).execute(index.db)


def segments_at(index: Index, paths: list[str]) -> list[Segment]:
    """The rows of `paths` (those that have one)."""
    rows = []
    for i in range(0, len(paths), limits.RETENTION_BATCH):    # bound the IN (...) list
        rows.extend(index.select().where(Segment.path.in_(paths[i:i + limits.RETENTION_BATCH])))
    return rows


# ------------------------------------------------------------------ retention's side

SEGMENT_COLUMNS = "id, camera, stream, path, start_us, end_us, bytes"


class SegmentRef(NamedTuple):
    """The fields of one index row that retention needs (a tuple: cheap at a million rows)."""

    id: int
    camera: str
    stream: str
    path: str
    start_us: int
    end_us: int
    bytes: int


def connect_for_retention(path: Path) -> sqlite3.Connection:
    """Retention's own connection to an index.db (autocommit; explicit transactions)."""
    refuse_links(path, "-wal", "-shm", "-journal")
    conn = sqlite3.connect(str(path), timeout=limits.BUSY_TIMEOUT_MS / 1000,
                           isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(f"PRAGMA busy_timeout={limits.BUSY_TIMEOUT_MS}")
    return conn


def has_segment_table(conn: sqlite3.Connection) -> bool:
    row = conn.execute("SELECT 1 FROM sqlite_master "
                       "WHERE type = 'table' AND name = 'segment'").fetchone()
    return row is not None


def iter_oldest(conn: sqlite3.Connection) -> Iterator[SegmentRef]:
    """Rows not being deleted, oldest first, fetched lazily."""
    cur = conn.execute(f"SELECT {SEGMENT_COLUMNS} FROM segment "
                       "WHERE deleting = 0 ORDER BY start_us, id")
    make = SegmentRef._make
    try:
        while rows := cur.fetchmany(256):
            yield from map(make, rows)
    finally:
        cur.close()


def marked_rows(conn: sqlite3.Connection) -> list[SegmentRef]:
    """Rows marked `deleting` (a deletion a crash interrupted)."""
    return [SegmentRef(*r) for r in conn.execute(
        f"SELECT {SEGMENT_COLUMNS} FROM segment WHERE deleting = 1")]


def camera_totals(conn: sqlite3.Connection, after_id: int = 0) -> tuple[dict[str, int], int]:
    """Bytes per camera of rows with id > after_id, and the largest id seen."""
    totals: dict[str, int] = {}
    for cam, total in conn.execute(
            # "+camera": walk the rowid range, not the whole camera index.
            "SELECT camera, SUM(bytes) FROM segment WHERE id > ? AND deleting = 0 "
            "GROUP BY +camera", (after_id,)):
        totals[cam] = total
    max_id = conn.execute("SELECT COALESCE(MAX(id), 0) FROM segment").fetchone()[0]
    return totals, max(max_id, after_id)


def stream_rates(conn: sqlite3.Connection, now_us: int,
                 window_s: int = limits.RATE_WINDOW_S) -> dict[str, float]:
    """Current bytes/s per camera, from the segments indexed in the last window."""
    since = now_us - window_s * US
    rates: dict[str, float] = {}
    for cam, _stream, total, first, last in conn.execute(
            "SELECT camera, stream, SUM(bytes), MIN(start_us), MAX(end_us) FROM segment "
            "WHERE start_us >= ? AND deleting = 0 GROUP BY +camera, +stream", (since,)):
        span_s = (last - first) / US
        if span_s > 0:
            rates[cam] = rates.get(cam, 0.0) + total / span_s
    return rates


def _in_transaction(conn: sqlite3.Connection, sql: str, params: Iterable[tuple]) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.executemany(sql, params)
        conn.execute("COMMIT")
    except sqlite3.Error:
        conn.execute("ROLLBACK")
        raise


def mark_deleting(conn: sqlite3.Connection, segments: list[SegmentRef]) -> None:
    """Mark rows `deleting` (one transaction): the panel stops offering them."""
    _in_transaction(conn, "UPDATE segment SET deleting = 1 WHERE id = ?",
                    [(s.id,) for s in segments])


def delete_rows(conn: sqlite3.Connection, segments: list[SegmentRef]) -> None:
    """Delete rows (one transaction); their sample tables follow (trigger)."""
    if segments:
        _in_transaction(conn, "DELETE FROM segment WHERE id = ?", [(s.id,) for s in segments])
