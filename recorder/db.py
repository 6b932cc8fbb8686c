"""Opening SQLite databases through peewee with the pragmas picorder relies on."""

import logging
from pathlib import Path

from peewee import SqliteDatabase

from recorder.limits import BUSY_TIMEOUT_MS

logger = logging.getLogger(__name__)

PRAGMAS = {
    "journal_mode": "wal",
    "foreign_keys": 1,
    "synchronous": "normal",
    "busy_timeout": BUSY_TIMEOUT_MS,
}


def open_sqlite(db: SqliteDatabase, path: Path, *, pragmas: dict | None = None) -> SqliteDatabase:
    """Initialise a deferred SqliteDatabase at `path` with picorder's pragmas."""
    db.init(str(path), pragmas=dict(PRAGMAS, **(pragmas or {})), timeout=BUSY_TIMEOUT_MS / 1000)
    db.connect(reuse_if_open=True)
    return db


def schema_version(db: SqliteDatabase) -> int:
    return db.execute_sql("PRAGMA user_version").fetchone()[0]


def migrate(db: SqliteDatabase, path: Path, migrations: list) -> int:
    """Apply numbered migrations (index + 1 = version), copying the file first.

    Each migration is a callable taking the database. The copy
    (`<name>.bak-v<old>`) is taken only when an existing schema is upgraded.
    """
    current = schema_version(db)
    target = len(migrations)
    if current > target:
        raise RuntimeError(
            f"{path} has schema version {current}, newer than this picorder ({target})"
        )
    if current == target:
        return current
    if current > 0 and path.exists():
        backup = path.with_name(f"{path.name}.bak-v{current}")
        backup_db = SqliteDatabase(str(backup))
        db.connection().backup(backup_db.connection())
        backup_db.close()
        logger.info("copied %s to %s before migrating", path, backup)
    for version in range(current + 1, target + 1):
        with db.atomic():
            migrations[version - 1](db)
            db.execute_sql(f"PRAGMA user_version = {version}")
        logger.info("migrated %s to schema version %d", path, version)
    return target


