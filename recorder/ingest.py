"""The recorder's disk work, off its main loop: every index.db and segment-file I/O.

The main loop (recorder.service) hands work to Ingest and goes on. On the
"index-writer" thread (IndexWriter), in order: open a recording root's index
and recover it after a crash, fsync, probe and index each segment ffmpeg closed,
re-anchor runs once the clock is trusted, let go of a pulled disk's index, and
the loop's other disk jobs (Ingest.submit). Activity analysis runs on an
"activity" thread of its own, so that it never holds up indexing, and hands its
rows back to the writer. Jobs report to the main loop through its queue
(recorder.events). Shutdown waits for the writer only as long as the budget
allows, so a hung disk cannot hold shutdown.
"""

import errno
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import peewee

from recorder import activity, ffmpeg, layout, limits
from recorder.events import DiskFailure, Ingested, RootReady, SegmentClosed
from recorder.index import Index, queries, tables
from recorder.mp4 import Mp4Error

logger = logging.getLogger(__name__)

NAME_SLACK_US = 5_000_000      # ffmpeg names a file when it opens it; the list line comes later
LEFT_TO_RECOVERY = "the file stays and is indexed by recovery at the next start"
REUSED_NAME_SLACK_US = 1_000_000   # a listed segment's file holding this much less is another one


class IndexWriter:
    """A thread that runs disk and index jobs in order; abandonable at shutdown."""

    _STOP = object()

    def __init__(self, name: str = "index-writer") -> None:
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._idle = threading.Event()
        self._idle.set()
        self._pending = 0
        self._lock = threading.Lock()

    def start(self) -> None:
        self._thread.start()

    def submit(self, job: Callable[[], None]) -> None:
        with self._lock:
            self._pending += 1
            self._idle.clear()
        self._jobs.put(job)

    @property
    def busy(self) -> bool:
        return not self._idle.is_set()

    def _loop(self) -> None:
        while True:
            job = self._jobs.get()
            if job is self._STOP:
                return
            try:
                job()
            except Exception:  # noqa: BLE001 - one failed job must not end indexing
                logger.exception("index job failed")
            finally:
                with self._lock:
                    self._pending -= 1
                    if self._pending == 0:
                        self._idle.set()

    def close(self, timeout: float) -> bool:
        """Finish queued jobs within `timeout`; False if the thread had to be abandoned."""
        self._jobs.put(self._STOP)
        self._thread.join(max(0.0, timeout))
        if self._thread.is_alive():
            logger.error("index writes did not finish in %.1f s (disk hung?): abandoned", timeout)
            return False
        return True


def fsync_path(path: Path, directory: bool = False) -> None:
    fd = os.open(path, (os.O_RDONLY | os.O_DIRECTORY) if directory else os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def continuous_media_us(info) -> int:
    """How much of a segment's video follows on without a jump: up to the first frame
    that lasts over DISCONTINUITY_S (the stream's time jumped forward after it) or under
    1 ms (ffmpeg crams the frames after a jump back one tick after it). That frame and
    those after it are left out: they would show for an hour, or not at all."""
    try:
        fragments = tables.decode_tables(info.tables).fragments
    except tables.StaleTables:
        return info.duration_us
    scale = info.timescale
    total = 0
    first = True
    for frag in fragments:
        for duration in frag.durations:
            # Not the first frame: ffmpeg crams the second one at every start (its first
            # packet comes without a timestamp).
            crammed = duration * 1000 < scale and not first
            if duration > limits.DISCONTINUITY_S * scale or crammed:
                return total * 1_000_000 // scale
            total += duration
            first = False
    return total * 1_000_000 // scale


def find_segment_file(stream_dir: Path, name: str, arrived_wall_us: int) -> Path | None:
    """The file `name` (HH-MM-SS.mp4) that ffmpeg closed at about `arrived_wall_us`.

    ffmpeg's list gives the bare file name; its day directory is the newest
    day whose HH:MM:SS is not after the list line (so yesterday's file of the
    same name is never picked).
    """
    try:
        hms = datetime.strptime(name, "%H-%M-%S.mp4").time()
    except ValueError:
        return None
    latest = datetime.fromtimestamp((arrived_wall_us + NAME_SLACK_US) / 1e6, timezone.utc)
    for back in range(3):
        day = latest.date() - timedelta(days=back)
        when = datetime.combine(day, hms, timezone.utc)
        if when > latest:
            continue
        path = stream_dir / day.strftime(layout.DAY_DIR) / name
        if path.exists():
            return path
    return None


class Ingest:
    """The index-writer and activity threads, the root's open Index, and their jobs."""

    def __init__(self, enqueue: Callable[[object], None], recover: Callable | None = None):
        self.enqueue = enqueue
        self._recover = recover or _default_recover
        self.writer = IndexWriter()
        self.activity = IndexWriter("activity")
        self.activity_streams: set[str] = set()     # keys of streams analysed (set by the loop)
        self._index: Index | None = None            # the root's open index.db: writer thread only
        self._activity_state: dict[str, activity.StreamActivity] = {}  # activity thread only
        self._activity_last: dict[str, tuple] = {}  # key -> (rel, seg, levels) analysed last

    def start(self) -> None:
        self.writer.start()
        self.activity.start()

    @property
    def busy(self) -> bool:
        """Writer jobs are queued or running."""
        return self.writer.busy

    def submit(self, job: Callable[[], None]) -> None:
        """Run another disk job on the writer thread, in order with the index's."""
        self.writer.submit(job)

    def open_root(self, root: Path, trusted: bool) -> None:
        """Open root's index and recover it; RootReady (or DiskFailure) says how it went."""
        self.writer.submit(lambda: self._open_root_job(root, trusted))

    def close_root(self) -> None:
        """Let go of the index (the disk is gone), after the jobs queued before."""
        self.writer.submit(self._close_index_job)

    def ingest(self, picorder_dir: Path, seg: SegmentClosed) -> None:
        """Index a segment ffmpeg closed (and analyse it, if its stream is analysed)."""
        self.writer.submit(lambda: self._ingest_job(picorder_dir, seg))

    def reanchor(self, jobs: list[tuple[str, str, int, int]]) -> None:
        """Shift the untrusted rows of (camera, stream, run_id, delta_us) runs."""
        self.writer.submit(lambda: self._reanchor_job(jobs))

    def close(self, timeout: float) -> bool:
        """Finish queued jobs within `timeout` (analysis left undone only leaves a hole in
        the activity band); False if the writer had to be abandoned."""
        started = time.monotonic()
        self.activity.close(min(0.1, timeout))
        return self.writer.close(timeout - (time.monotonic() - started))

    def _open_root_job(self, root: Path, trusted: bool) -> None:
        """Writer thread: open the root's index, repair it after a crash, report the ends."""
        picorder_dir = root / "picorder"
        self._close_index_job()
        try:
            picorder_dir.mkdir(parents=True, exist_ok=True)
            self._index = index = Index.open(picorder_dir / "index.db")
            report = self._recover(index, trusted)
            last_ends = queries.last_ends(index)
            dev = os.stat(picorder_dir).st_dev
        except Exception as exc:  # noqa: BLE001 - reported to storage, retried on the next change
            logger.exception("cannot open the recordings in %s", root)
            self._close_index_job()
            self.enqueue(DiskFailure("index", getattr(exc, "errno", None) or errno.EIO,
                                     f"cannot open the index in {root}: {exc}"))
            self.enqueue(RootReady(root, {}, error=str(exc)))
            return
        self.enqueue(RootReady(root, last_ends, dev=dev))
        self._analyse_recovered(index, getattr(report, "indexed", None) or [])

    def _close_index_job(self) -> None:
        """Writer thread: close the index (after the jobs queued before); never reopened."""
        index, self._index = self._index, None
        if index is not None:
            index.close()

    def _analyse_recovered(self, index: Index, rels: list[str]) -> None:
        """Writer thread: hand the segments recovery indexed to the activity analysis."""
        if not self.activity_streams:
            return
        rows = [row for row in queries.segments_at(index, rels)
                if f"{row.camera}/{row.stream}" in self.activity_streams]
        for row in sorted(rows, key=lambda r: (r.camera, r.stream, r.start_us)):
            path = index.dir / row.path
            seg = SegmentClosed(row.camera, row.stream, path.name, row.start_us, row.end_us,
                                row.run_id, row.clock_trusted, 0)
            self.activity.submit(lambda path=path, rel=row.path, seg=seg:
                                 self._recovered_activity_job(path, rel, seg))

    def _recovered_activity_job(self, path: Path, rel: str, seg: SegmentClosed) -> None:
        try:
            info = tables.probe_segment(path)
        except (OSError, Mp4Error):
            logger.exception("%s/%s: no activity for %s", seg.camera, seg.stream, rel)
            return
        self._activity_job(path, rel, seg, info)

    def _ingest_job(self, picorder_dir: Path, seg: SegmentClosed) -> None:
        """Writer thread: fsync the file and its directory, probe it, insert its row."""
        key = f"{seg.camera}/{seg.stream}"
        base = ffmpeg.stream_dir(picorder_dir, seg.camera, seg.stream)
        path = find_segment_file(base, seg.name, seg.arrived_wall_us)
        if path is None:
            logger.error("%s: ffmpeg listed %s but the file is not there", key, seg.name)
            return
        rel = str(path.relative_to(picorder_dir))
        try:
            fsync_path(path)
            fsync_path(path.parent, directory=True)
            info = tables.probe_segment(path)
        except (OSError, Mp4Error) as exc:
            logger.exception("%s: cannot index %s: %s", key, rel, LEFT_TO_RECOVERY)
            if isinstance(exc, OSError):
                self.enqueue(DiskFailure(key, exc.errno or errno.EIO, f"indexing {rel}: {exc}"))
            return
        lead_us = seg.end_us - seg.start_us - info.duration_us
        if seg.first and info.frames and 0 < lead_us <= limits.FIRST_KEYFRAME_MAX_US:
            # The run's first file starts at the camera's first keyframe: ffmpeg lists it
            # from the packet it read first, but keeps none before that keyframe.
            seg = replace(seg, start_us=seg.start_us + lead_us)
        if seg.cut:
            seg = replace(seg, end_us=seg.start_us + min(seg.end_us - seg.start_us,
                                                         continuous_media_us(info)))
        listed_us = seg.end_us - seg.start_us
        if info.frames == 0 and listed_us <= REUSED_NAME_SLACK_US:
            logger.warning("%s: %s holds no video: not indexed (left to recovery at the "
                           "next start)", key, rel)
            return
        if info.frames == 0 or info.duration_us < listed_us - REUSED_NAME_SLACK_US:
            # Not the segment ffmpeg listed: ffmpeg names files by time() (whole seconds),
            # so a cut in the second the file was opened reopens (truncates) the same name,
            # and the file is now the next segment, still being written. Never delete it
            # here: it is listed again when it closes, or recovered at the next start.
            logger.error("%s: %s holds %.2f s of video where ffmpeg listed %.2f s: its name "
                         "was reused by the next segment; not indexed now (%s)", key, rel,
                         info.duration_us / 1e6, listed_us / 1e6, LEFT_TO_RECOVERY)
            return
        index = self._index
        if index is None or index.dir != picorder_dir:
            logger.error("%s: %s closed after its disk's index: %s", key, rel, LEFT_TO_RECOVERY)
            return
        try:
            queries.insert_segment(
                index, info.tables, replace=True, camera=seg.camera, stream=seg.stream,
                path=rel, start_us=seg.start_us, end_us=seg.end_us,
                duration_us=info.duration_us, bytes=info.file_size, frames=info.frames,
                codec=info.codec, width=info.width, height=info.height,
                clock_trusted=seg.clock_trusted, run_id=seg.run_id)
        except peewee.DatabaseError:
            logger.exception("%s: cannot index %s: %s", key, rel, LEFT_TO_RECOVERY)
            return
        logger.debug("%s: indexed %s (%.2f s)", key, rel, info.duration_us / 1e6)
        self.enqueue(Ingested(key, rel, info.file_size, info.duration_us))
        if key in self.activity_streams:
            self.activity.submit(lambda: self._activity_job(path, rel, seg, info))

    def _activity_job(self, path: Path, rel: str, seg: SegmentClosed, info) -> None:
        """Activity thread: the levels of one segment, handed to the writer to store."""
        key = f"{seg.camera}/{seg.stream}"
        state = self._activity_state.setdefault(key, activity.StreamActivity())
        try:
            fragments = tables.decode_tables(info.tables).fragments
        except tables.StaleTables:
            logger.exception("%s: no activity for %s", key, rel)
            return
        levels = activity.analyse(path, fragments, info.timescale, state)
        jobs = [(rel, seg, levels)]
        previous = self._activity_last.get(key)
        if state.amend is not None and previous is not None:    # motion began in it
            jobs.append((previous[0], previous[1], activity.amended(previous[2], state.amend)))
        self._activity_last[key] = jobs[0]

        def store():
            index = self._index
            if index is None or index.dir not in path.parents:    # the disk went meanwhile
                logger.info("%s: activity of %s not stored: its disk is gone", key, rel)
                return
            for path_, seg_, levels_ in jobs:
                queries.store_activity(index, path_, seg_.camera, seg_.start_us, seg_.end_us,
                                       levels_)
        self.writer.submit(store)

    def _reanchor_job(self, jobs: list[tuple[str, str, int, int]]) -> None:
        """Writer thread: shift untrusted rows of re-anchored runs and flag them trusted."""
        index = self._index
        if index is None:
            logger.error("runs re-anchored while no index is open: recovery places them")
            return
        with index.atomic():
            for camera, stream, run_id, delta in jobs:
                count = queries.reanchor_run(index, camera, stream, run_id, delta)
                logger.info("%s/%s run %d: %d rows re-anchored by %+.3f s",
                            camera, stream, run_id, count, delta / 1e6)


def _default_recover(index: Index, trusted: bool):
    from recorder.recovery import recover
    return recover(index, clock_trusted=trusted)
