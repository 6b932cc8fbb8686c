"""The recordings index (index.db) and everything that reads or writes it.

This package is the one owner of index.db: its tables and migrations, and the
Index that opens it and is passed to whatever reads or writes the file
(models.py), every SQL statement run on it (queries.py), and what it stores of a
segment file: its summary and its sample tables (tables.py). Nothing else opens
the file or names its tables.
"""

from recorder.index.models import (
    INDEX_MODELS,
    MIGRATIONS,
    Activity,
    Index,
    NoIndex,
    Segment,
    SegmentTables,
)

__all__ = ["INDEX_MODELS", "MIGRATIONS", "Activity", "Index", "NoIndex", "Segment",
           "SegmentTables"]
