"""The recordings index (index.db): one row per finished segment file, and the Index that opens it."""

import logging
import os
import sqlite3
from pathlib import Path

from peewee import (
    BigIntegerField,
    BlobField,
    BooleanField,
    CharField,
    JOIN,
    IntegerField,
    Model,
    OperationalError,
    SchemaManager,
    SqliteDatabase,
)

from recorder.db import migrate, open_sqlite
from recorder.limits import BUSY_TIMEOUT_MS
from recorder.paths import refuse_links

logger = logging.getLogger(__name__)


class Segment(Model):
    """A finished fMP4 segment; times are UTC epoch microseconds."""

    camera = CharField()
    stream = CharField()                      # "main" or "sub"
    path = CharField(unique=True)             # relative to the recording root
    start_us = BigIntegerField()              # wall clock of the first frame
    end_us = BigIntegerField()                # wall clock just after the last frame
    duration_us = BigIntegerField()           # media duration from the file itself
    bytes = BigIntegerField()
    frames = IntegerField(default=0)
    codec = CharField(default="")             # "h264", "hevc"
    width = IntegerField(default=0)
    height = IntegerField(default=0)
    clock_trusted = BooleanField(default=True)
    run_id = BigIntegerField(default=0)       # one ffmpeg run: segments of a run are contiguous
    deleting = BooleanField(default=False)    # retention: marked, file being unlinked

    class Meta:
        # Bound to no database: every query names the Index it runs on (Index.select,
        # or .execute(index.db)), so no thread reaches another disk's index by accident.
        database = None
        table_name = "segment"
        indexes = ((("camera", "stream", "start_us"), False),)

    @classmethod
    def covering(cls, index: "Index", camera: str, stream: str, start_us: int, end_us: int, *,
                 with_tables: bool = False):
        """Segments of one stream that overlap [start_us, end_us), oldest first.

        with_tables: each row also gets `.tables`, its SegmentTables blob or None.
        """
        query = (index.select(cls)
                 .where((cls.camera == camera) & (cls.stream == stream)
                        & (cls.end_us > start_us) & (cls.start_us < end_us)
                        & (cls.deleting == False))  # noqa: E712 (peewee expression)
                 .order_by(cls.start_us))
        if with_tables:
            query = (query.select_extend(SegmentTables.tables)
                     .join(SegmentTables, JOIN.LEFT_OUTER, on=(SegmentTables.path == cls.path))
                     .objects())
        return query

    @staticmethod
    def tables_available(index: "Index") -> bool:
        """False on a v1 index.db the recorder has not migrated yet (opened read-only)."""
        return index.db.table_exists(SegmentTables._meta.table_name)

    @staticmethod
    def store_tables(index: "Index", path: str, tables: bytes) -> None:
        """Store (or replace) the sample tables of the segment file at `path`."""
        if tables:
            SegmentTables.replace(path=path, tables=tables).execute(index.db)


class SegmentTables(Model):
    """recorder.index.tables.encode_tables() of a segment file, so that an export need not re-read
    every moof. A table of its own (schema v2): several KB per segment in the segment
    table would make every scan of it (timeline, retention) several times slower.
    Deleting a segment row deletes its tables (trigger), whichever connection deletes it.
    """

    path = CharField(primary_key=True)       # Segment.path
    tables = BlobField()

    class Meta:
        database = None             # as Segment's
        table_name = "segment_tables"


class Activity(Model):
    """The activity levels of one segment of a camera's activity stream (schema v5): one
    byte per second from start_us (recorder.activity). Deleting the segment row deletes
    it (trigger)."""

    path = CharField(primary_key=True)       # Segment.path
    camera = CharField()
    start_us = BigIntegerField()
    end_us = BigIntegerField()
    levels = BlobField()

    class Meta:
        database = None             # as Segment's
        table_name = "activity"
        indexes = ((("camera", "start_us"), False),)


INDEX_MODELS = [Segment]


def _create_tables(database, models: list) -> None:
    """CREATE TABLE (and its indexes) IF NOT EXISTS of each model, on `database`."""
    for model in models:
        SchemaManager(model, database).create_all(safe=True)


def _m1_initial(database):
    _create_tables(database, INDEX_MODELS)


def _m2_segment_tables(database):
    _create_tables(database, [SegmentTables])
    database.execute_sql(
        "CREATE TRIGGER IF NOT EXISTS segment_tables_follow_delete AFTER DELETE ON segment "
        "BEGIN DELETE FROM segment_tables WHERE path = OLD.path; END")


def _m3_timeline_index(database):
    # Covers the panel's timeline query, so 30 days of a camera fold without
    # visiting the table rows (measured 1.4x faster at 43,200 segments).
    database.execute_sql(
        "CREATE INDEX IF NOT EXISTS segment_timeline ON segment "
        "(camera, stream, start_us, end_us, run_id, clock_trusted, deleting, frames)")


def _m4_start_index(database):
    # Retention walks rows by start time across cameras (queries.iter_oldest). Its
    # connection created this index itself before schema 4: IF NOT EXISTS keeps those.
    database.execute_sql("CREATE INDEX IF NOT EXISTS segment_start_us ON segment(start_us)")


def _m5_activity(database):
    _create_tables(database, [Activity])
    database.execute_sql(
        "CREATE TRIGGER IF NOT EXISTS activity_follow_delete AFTER DELETE ON segment "
        "BEGIN DELETE FROM activity WHERE path = OLD.path; END")


MIGRATIONS = [_m1_initial, _m2_segment_tables, _m3_timeline_index, _m4_start_index,
              _m5_activity]


class NoIndex(Exception):
    """There is no index.db (nothing recorded yet, or no disk), or it cannot be read."""


class Index:
    """An open index.db, handed to whatever reads or writes it.

    It owns a peewee database of its own (the models are bound to none) and belongs
    to the thread that opened it: the connection is that thread's. Once closed it
    stays closed: nothing reconnects it (autoconnect is off), so a job that comes
    late never opens a pulled disk's index again.
    """

    def __init__(self, path: Path, db: SqliteDatabase) -> None:
        self.path = path
        self.db = db

    @classmethod
    def open(cls, path: Path, *, readonly: bool = False) -> "Index":
        """Open the index.db at `path`; UnsafePath if it (or its -wal, -shm) is a link.

        Writable: created if needed and migrated. Read-only (the panel, `picorder
        export`): NoIndex if it is absent or cannot be opened; it never writes to
        the file's directory (see _readonly_uri).
        """
        path = Path(path)
        refuse_links(path, "-wal", "-shm", "-journal")
        db = _open_readonly(path) if readonly else _open_writable(path)
        return cls(path, db)

    @property
    def dir(self) -> Path:
        """The picorder directory whose segment files it indexes (it lives in it)."""
        return self.path.parent

    def select(self, model: type[Model] = Segment):
        """SELECT of `model`'s rows on this index (refine it with .where() and so on)."""
        return model.select().bind(self.db)

    def atomic(self):
        """A transaction (a savepoint inside one)."""
        return self.db.atomic()

    def close(self) -> None:
        """Close the connection; the Index cannot be used after it."""
        if not self.db.is_closed():
            self.db.close()

    def __enter__(self) -> "Index":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _open_writable(path: Path) -> SqliteDatabase:
    db = SqliteDatabase(None, autoconnect=False)
    open_sqlite(db, path)
    try:
        migrate(db, path, MIGRATIONS)
    except BaseException:
        db.close()
        raise
    return db


def _open_readonly(path: Path) -> SqliteDatabase:
    if not path.is_file():
        raise NoIndex(f"no recordings index at {path}")
    uri = _readonly_uri(path)
    db = SqliteDatabase(uri, uri=True, pragmas={"busy_timeout": BUSY_TIMEOUT_MS},
                        timeout=BUSY_TIMEOUT_MS / 1000, autoconnect=False)
    try:
        db.connect()
    except (OperationalError, sqlite3.Error) as exc:
        raise NoIndex(f"cannot open {path}: {exc}") from exc
    return db


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
