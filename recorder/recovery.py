"""Make the recordings index and the segment files agree again after a crash.

recover() runs when the recorder starts (and offline from `picorder check`):

(a) Every segment file without an index row (torn by kill -9 or a power cut)
    is validated and truncated to its last complete fragment, fsynced, and
    indexed. Its wall-clock start comes from its name (UTC, second
    resolution) unless the previous row of the stream ends within about a
    second of that name, in which case the file continues that run: it starts
    exactly where the row ends and shares its run_id and clock flag. Its end
    is the start plus the media duration, clamped so it never overlaps the
    next row. A file that is not continuing a run gets the caller's
    `clock_trusted` (default False: a name written before a crash is not proof
    that the clock was right) and run_id = its start_us.
    A file with a broken init segment or no complete fragment is moved to
    <picorder_dir>/lost+found/<same relative path>, never deleted (an empty
    file holds nothing and is simply removed).
(b) Rows whose file is gone are removed and logged.
(c) Rows marked `deleting` (retention interrupted) are finished: the file is
    unlinked if still present, then the row is deleted.

Files the running recorder is writing are passed in `exclude` and left alone.
"""

import logging
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from recorder import limits, segfiles
from recorder.index import Index, Segment, queries
from recorder.layout import name_start_us  # noqa: F401 (part of this module's API)
from recorder.index.tables import SegmentInfo, probe_segment
from recorder.mp4 import Mp4Error
from recorder.paths import UnsafePath

logger = logging.getLogger(__name__)

LOST_AND_FOUND = "lost+found"
# A torn file continues the previous row's run if that row ends this close to its name.
CONTINUE_BEFORE_US = 1_000_000
CONTINUE_AFTER_US = 2_000_000


@dataclass
class Truncation:
    path: str
    old_size: int
    new_size: int


@dataclass
class MovedAside:
    path: str
    destination: str
    reason: str


@dataclass
class RecoveryReport:
    """What recover() found, and what it did (or, in a dry run, would do)."""

    dry_run: bool = False
    indexed: list[str] = field(default_factory=list)          # unindexed files now indexed
    truncated: list[Truncation] = field(default_factory=list)  # torn files cut to their valid prefix
    moved_aside: list[MovedAside] = field(default_factory=list)
    empty_removed: list[str] = field(default_factory=list)
    rows_removed: list[str] = field(default_factory=list)       # rows whose file was gone
    deletes_finished: list[str] = field(default_factory=list)   # interrupted retention deletes
    unrecognized: list[str] = field(default_factory=list)       # *.mp4 outside the layout, left alone
    errors: list[str] = field(default_factory=list)

    @property
    def problems(self) -> int:
        return (len(self.indexed) + len(self.moved_aside) + len(self.empty_removed)
                + len(self.rows_removed) + len(self.deletes_finished) + len(self.errors))

    def lines(self) -> list[str]:
        """Human-readable lines, one per finding."""
        verb = "would be " if self.dry_run else ""
        out = []
        cuts = {t.path: t for t in self.truncated}
        for path in self.indexed:
            cut = cuts.get(path)
            extra = (f", truncated from {cut.old_size} to {cut.new_size} bytes" if cut else "")
            out.append(f"unindexed segment {path}: {verb}indexed{extra}")
        out += [f"unreadable segment {m.path} ({m.reason}): {verb}moved to {m.destination}"
                for m in self.moved_aside]
        out += [f"empty segment {p}: {verb}removed" for p in self.empty_removed]
        out += [f"index row without file {p}: {verb}removed" for p in self.rows_removed]
        out += [f"interrupted deletion {p}: {verb}finished" for p in self.deletes_finished]
        out += [f"not a segment name, left alone: {p}" for p in self.unrecognized]
        out += [f"error: {e}" for e in self.errors]
        return out


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def recover(index: Index, exclude: set[Path] | None = None, *,
            clock_trusted: bool = False, dry_run: bool = False) -> RecoveryReport:
    """Reconcile the index rows and the files of the picorder directory it lives in.

    One directory walk and one query: no per-row stat, so a month of
    segments of many cameras is checked in well under a second (warm cache).
    """
    picorder_dir = index.dir
    skip = {Path(p) if Path(p).is_absolute() else picorder_dir / p for p in (exclude or set())}
    report = RecoveryReport(dry_run=dry_run)
    rows = queries.all_rows(index)
    files = _segment_files(picorder_dir)
    _finish_deletes(index, [(i, p) for i, p, d in rows if d], report, dry_run)
    _remove_missing(index, [(i, p) for i, p, d in rows if not d and p not in files], report,
                    dry_run)
    known = {p for _, p, _ in rows}
    unindexed = sorted(rel for rel in files - known if picorder_dir / rel not in skip)
    _index_unindexed(index, unindexed, report, clock_trusted, dry_run)
    for line in report.lines():
        logger.warning("recovery: %s", line)
    return report


def _finish_deletes(index: Index, marked: list[tuple[int, str]], report: RecoveryReport,
                    dry_run: bool) -> None:
    """Unlink the files of rows marked `deleting`, then delete the rows: one transaction per
    batch. A crash before a batch's delete leaves its rows marked: the next start finishes them."""
    batch = limits.RETENTION_BATCH
    for start in range(0, len(marked), batch):
        chunk = marked[start:start + batch]
        done = chunk if dry_run else _unlink_marked(index.dir, chunk, report)
        if done and not dry_run:
            queries.delete_segments(index, [row_id for row_id, _ in done])
        report.deletes_finished.extend(rel for _, rel in done)


def _unlink_marked(picorder_dir: Path, chunk: list[tuple[int, str]],
                   report: RecoveryReport) -> list[tuple[int, str]]:
    """Unlink each file (gone already is fine); fsync their directories; the rows that may go."""
    done, dirs = [], set()
    for row_id, rel in chunk:
        try:
            segfiles.unlink(picorder_dir, rel)
            dirs.add((picorder_dir / rel).parent)
        except FileNotFoundError:
            pass
        except UnsafePath as exc:
            # The disk's index names no segment of ours: drop the row, touch no file.
            report.errors.append(f"not deleted: {exc}")
        except OSError as exc:
            report.errors.append(f"cannot unlink {rel}: {exc.strerror}")
            continue
        done.append((row_id, rel))
    unsynced = set()
    for directory in dirs:
        try:
            fsync_dir(directory)    # no row goes before its file's unlink is durable
        except FileNotFoundError:
            pass                    # the directory went with its files
        except OSError as exc:
            unsynced.add(directory)
            report.errors.append(f"cannot sync {directory}: {exc.strerror}")
    if unsynced:                    # their rows stay marked: the next start tries again
        done = [(row_id, rel) for row_id, rel in done
                if (picorder_dir / rel).parent not in unsynced]
    return done


def _remove_missing(index: Index, missing: list[tuple[int, str]], report: RecoveryReport,
                    dry_run: bool) -> None:
    if not dry_run and missing:
        queries.delete_segments(index, [row_id for row_id, _ in missing])
    report.rows_removed.extend(rel for _, rel in missing)


def _segment_files(picorder_dir: Path) -> set[str]:
    """Relative paths of every *.mp4 under picorder_dir, outside lost+found."""
    found = set()
    root = str(picorder_dir)
    for dirpath, dirnames, filenames in os.walk(root):
        if dirpath == root:
            if LOST_AND_FOUND in dirnames:
                dirnames.remove(LOST_AND_FOUND)
            prefix = ""
        else:
            prefix = dirpath[len(root) + 1:].replace(os.sep, "/") + "/"
        found.update(prefix + name for name in filenames if name.endswith(".mp4"))
    return found


def _index_unindexed(index: Index, unindexed: list[str], report: RecoveryReport,
                     clock_trusted: bool, dry_run: bool) -> None:
    for rel in unindexed:
        parsed = name_start_us(rel)
        if parsed is None:
            report.unrecognized.append(rel)
            continue
        try:
            _recover_file(index, rel, parsed, report, clock_trusted, dry_run)
        except OSError as exc:
            logger.exception("recovery of %s failed", rel)
            report.errors.append(f"{rel}: {exc.strerror or exc}")


def _recover_file(index: Index, rel: str, parsed: tuple[str, str, int],
                  report: RecoveryReport, clock_trusted: bool, dry_run: bool) -> None:
    picorder_dir = index.dir
    path = picorder_dir / rel
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode):
        # A link or a device named like a segment: not ours to read, cut or move.
        report.unrecognized.append(rel)
        return
    if st.st_size == 0:
        if not dry_run:
            path.unlink()
            fsync_dir(path.parent)
        report.empty_removed.append(rel)
        return
    try:
        info = probe_segment(path)
        if info.fragments == 0:
            raise Mp4Error("no complete fragment")
    except Mp4Error as exc:
        _move_aside(picorder_dir, rel, str(exc), report, dry_run)
        return
    if info.torn:
        report.truncated.append(Truncation(rel, info.file_size, info.complete_end))
    if not dry_run:
        # Truncate if torn; either way the file is on disk before its row is written.
        truncate_durably(path, info.complete_end)
        _insert_row(index, rel, parsed, info, clock_trusted)
    report.indexed.append(rel)


def truncate_durably(path: Path, size: int) -> None:
    """Cut the file to `size` bytes (if longer) and fsync it and its directory."""
    with os.fdopen(os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC), "r+b") as f:
        if os.fstat(f.fileno()).st_size > size:
            f.truncate(size)
        os.fsync(f.fileno())
    fsync_dir(path.parent)


def _move_aside(picorder_dir: Path, rel: str, reason: str, report: RecoveryReport,
                dry_run: bool) -> None:
    dest = picorder_dir / LOST_AND_FOUND / rel
    n = 0
    while dest.exists():
        n += 1
        dest = picorder_dir / LOST_AND_FOUND / f"{rel}.{n}"
    if not dry_run:
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(picorder_dir / rel, dest)
        fsync_dir(dest.parent)
        fsync_dir((picorder_dir / rel).parent)
    report.moved_aside.append(MovedAside(rel, dest.relative_to(picorder_dir).as_posix(), reason))


@dataclass
class Placement:
    start_us: int
    end_us: int
    run_id: int
    clock_trusted: bool


def place_segment(index: Index, camera: str, stream: str, name_us: int, duration_us: int,
                  clock_trusted: bool) -> Placement:
    """Wall-clock placement of a recovered file among the rows of its stream."""
    prev = (index.select().where((Segment.camera == camera) & (Segment.stream == stream)
                                 & (Segment.start_us < name_us + CONTINUE_AFTER_US))
            .order_by(Segment.start_us.desc()).first())
    if prev and name_us - CONTINUE_BEFORE_US <= prev.end_us < name_us + CONTINUE_AFTER_US:
        start, run_id, trusted = prev.end_us, prev.run_id, prev.clock_trusted
    else:
        start = max(name_us, prev.end_us) if prev else name_us
        run_id, trusted = start, clock_trusted
    end = start + max(duration_us, 1)
    nxt = (index.select().where((Segment.camera == camera) & (Segment.stream == stream)
                                & (Segment.start_us >= start))
           .order_by(Segment.start_us).first())
    if nxt and nxt.start_us < end:
        end = max(nxt.start_us, start + 1)
    return Placement(start, end, run_id, trusted)


def _insert_row(index: Index, rel: str, parsed: tuple[str, str, int], info: SegmentInfo,
                clock_trusted: bool) -> None:
    camera, stream, name_us = parsed
    with index.atomic():
        place = place_segment(index, camera, stream, name_us, info.duration_us, clock_trusted)
        queries.insert_segment(index, info.tables, camera=camera, stream=stream, path=rel,
                               start_us=place.start_us, end_us=place.end_us,
                               duration_us=info.duration_us, bytes=info.complete_end,
                               frames=info.frames, codec=info.codec, width=info.width,
                               height=info.height, clock_trusted=place.clock_trusted,
                               run_id=place.run_id)
    logger.info("indexed recovered segment %s (%d frames, %.1f s)", rel, info.frames,
                info.duration_us / 1e6)
