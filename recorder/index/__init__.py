"""The recordings index (index.db) and everything that reads or writes it.

This package is the one owner of index.db: its tables and migrations
(models.py) and every SQL statement run on it (queries.py). Nothing else
opens the file or names its tables.
"""

from recorder.index.models import (
    INDEX_MODELS,
    MIGRATIONS,
    Activity,
    NoIndex,
    Segment,
    SegmentTables,
    close_index,
    index_db,
    open_index,
)

__all__ = ["INDEX_MODELS", "MIGRATIONS", "Activity", "NoIndex", "Segment", "SegmentTables",
           "close_index", "index_db", "open_index"]
