"""The recorder service: one main loop that supervises every stream and indexes its segments.

Threads and what they may do:
- main thread: the loop. It drains one queue (signals, ffmpeg pipe lines,
  config reloads, storage events, clock changes), ticks every StreamProcess
  and never touches the recording disk except to create day directories
  before a spawn.
- "ffmpeg-pipes" (recorder.spawner.PipeHub): reads ffmpeg's pipes, enqueues their lines
  and, for the progress pipes, each read's newest report.
- "index-writer" (IndexWriter): every index.db and segment-file I/O (open,
  recovery, fsync, probe, insert, re-anchor). Shutdown waits for it only as
  long as the budget allows, so a hung disk cannot hold shutdown.
- "control" (recorder.control): answers the socket; handlers read state or enqueue.
- the storage's own watcher threads, which only enqueue.
"""

import errno
import logging
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import peewee

from recorder import __version__, activity, config, ffmpeg, ffmpeg_user, limits, sdnotify
from recorder.durability import Flusher, SyncFailed
from recorder.events import (
    SEGMENTS, ClockTrusted, CurrentSegmentFound, CurrentSegmentHint, DiskFailure, Ingested,
    ProgressReport, Reachable, ReloadRequest, RootReady, SegmentClosed, SignalEvent, StreamLines,
)
from recorder.ffmpeg import StreamSpec
from recorder.index import Index, queries, tables
from recorder.mp4 import Mp4Error
from recorder.paths import DataPaths
from recorder.power import Power, PowerRequest
from recorder.process import State, StreamProcess, day_dirs, host_wall_us
from recorder.reachability import ReachabilityProbe
from recorder.spawner import FfmpegSpawner, PipeHub, stop_orphans
from recorder.status import ClockStatus, RecorderStatus
from recorder.storage import SYNC_SOURCE, Storage
from recorder.timekeeping import Clock, RunAnchor, Timekeeper, ntp_synchronized

logger = logging.getLogger(__name__)

SETTING_SEGMENT_SECONDS = "segment_seconds"
# Where ffmpeg's credential lists go (the unit points it at a tmpfs RuntimeDirectory
# that ffmpeg's user can reach); default: DATA/run.
ENV_RUNTIME_DIR = "PICORDER_RUNTIME_DIR"
NAME_SLACK_US = 5_000_000      # ffmpeg names a file when it opens it; the list line comes later
LEFT_TO_RECOVERY = "the file stays and is indexed by recovery at the next start"
REUSED_NAME_SLACK_US = 1_000_000   # a listed segment's file holding this much less is another one


@dataclass
class _Untrusted:
    camera: str
    stream: str
    anchor: RunAnchor


# ------------------------------------------------------------------ writer

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
        path = stream_dir / day.strftime("%Y/%m/%d") / name
        if path.exists():
            return path
    return None


# ------------------------------------------------------------------ recorder

class Recorder:
    """Keeps every enabled camera stream recording into the current recording root."""

    def __init__(self, paths: DataPaths, storage: Storage, *, clock: Clock | None = None,
                 spawn=None, ntp_check=ntp_synchronized, stall_s: float = limits.STALL_PROGRESS_S,
                 recover: Callable | None = None):
        self.paths = paths
        # The unprivileged user ffmpeg runs as (recorder.ffmpeg_user); resolved at start.
        self.ffmpeg_user: ffmpeg_user.FfmpegUser | None = None
        self.storage = storage
        self.clock = clock or Clock()
        self.timekeeper = Timekeeper(paths.clock_file, clock=self.clock, ntp_check=ntp_check,
                                     old_clock_file=paths.old_clock_file)
        self._spawn = spawn
        self.stall_s = stall_s
        self._recover = recover
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.procs: dict[str, StreamProcess] = {}
        self.retiring: list[StreamProcess] = []
        self.untrusted: list[_Untrusted] = []
        self.root: Path | None = None
        self._wanted_root: Path | None = None
        self._opening: Path | None = None
        self._last_ends: dict[str, int] = {}
        self.writer = IndexWriter()
        self._index: Index | None = None      # the root's open index.db: the writer thread's only
        # Activity analysis decodes keyframes: on a thread of its own, so that it never
        # holds up indexing; it hands its rows to the writer.
        self.activity = IndexWriter("activity")
        self._activity_streams: set[str] = set()        # keys of streams analysed
        self._activity_state: dict[str, activity.StreamActivity] = {}  # activity thread only
        self._activity_last: dict[str, tuple] = {}      # key -> (rel, seg, levels) analysed last
        self.flusher = Flusher(self.enqueue)     # syncs the recording disk (power cuts)
        self.control = None
        self.probe: ReachabilityProbe | None = None
        self.started_utc_us = 0
        self._data_version: int | None = None
        self._shutdown_deadline: float | None = None
        self._signals = 0
        self._done = False
        self._timers: dict[str, float] = {}
        self._reanchored: dict[tuple[str, str, int], int] = {}
        self._watchdog_s = sdnotify.watchdog_interval_s()
        self.power = Power(self.enqueue)     # "reboot"/"poweroff"; tests swap its runner

    @property
    def picorder_dir(self) -> Path | None:
        return self.root / "picorder" if self.root else None

    def enqueue(self, event: object) -> None:
        """Thread-safe (and signal-safe: SimpleQueue.put is reentrant)."""
        self.queue.put(event)

    def mono(self) -> float:
        return self.clock.mono_us() / 1e6

    # ------------------------------------------------------------ start / run

    def start(self) -> None:
        """Open config, start the clock, threads, storage and the control socket."""
        from recorder.control import ControlServer
        self.paths.ensure()
        self.paths.recorder_state.mkdir(parents=True, exist_ok=True, mode=0o700)
        config.open_config(self.paths.config_db)
        self.started_utc_us = self.clock.wall_us()
        self.timekeeper.start()
        self.ffmpeg_user = ffmpeg_user.resolve()
        self.runtime_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self._spawn is None:
            hub = PipeHub(self.clock.mono_us)
            hub.start()
            self._spawn = FfmpegSpawner(hub, self.ffmpeg_user)
        self.writer.start()
        self.activity.start()
        self.flusher.start()
        self.probe = ReachabilityProbe(self.enqueue)
        self.probe.start()
        self.control = ControlServer(self.paths.control_socket)
        self.control.register("status", lambda: self.status().to_json())
        self.control.register("reload", self._cmd_reload)
        self.control.register("set_clock", self._cmd_set_clock)
        self.control.register("trust_clock", self._cmd_trust_clock)
        for name, handler in self.power.commands().items():
            self.control.register(name, handler)
        for name, handler in self.storage.control_commands().items():
            self.control.register(name, handler)
        self.control.start()            # refuses to start beside a running recorder ...
        self.storage.start(self.enqueue)
        self._wanted_root = self.storage.recording_root()
        self._apply_config()
        stop_orphans(self.runtime_dir)  # ... so these ffmpeg are a dead recorder's
        ffmpeg.remove_stale_source_files(self.runtime_dir)
        self._root_changed()

    @property
    def runtime_dir(self) -> Path:
        env = os.environ.get(ENV_RUNTIME_DIR)
        return Path(env) if env else self.paths.root / "run"

    def install_signal_handlers(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum, frame) -> None:
        if signum != signal.SIGHUP:
            self._signals += 1
            if self._signals >= 2:
                self._exit_now()
        self.enqueue(SignalEvent(signum))

    def _exit_now(self) -> None:
        """Second SIGTERM/SIGINT: kill every ffmpeg and leave without waiting for anything."""
        for proc in list(self.procs.values()) + list(self.retiring):
            proc.kill_now()
        os._exit(1)

    def run(self) -> int:
        """Run until shut down; return the exit status."""
        self.start()
        logger.info("recorder %s running (pid %d)", __version__, os.getpid())
        sdnotify.ready(f"recording {len(self.procs)} streams")
        try:
            while not self._done:
                self.step()
        finally:
            self._finish()
        self.power.finish()             # systemctl reboot/poweroff once everything stopped
        return 0

    def step(self, max_wait: float = limits.TICK_S) -> None:
        """Wait for events (at most one tick), handle them, tick if due."""
        try:
            event = self.queue.get(timeout=max_wait)
        except queue.Empty:
            event = None
        handled = 0
        while event is not None:
            self.dispatch(event)
            handled += 1
            if handled >= limits.EVENTS_PER_STEP:     # let the tick run under a flood
                break
            try:
                event = self.queue.get_nowait()
            except queue.Empty:
                event = None
        now = self.mono()
        if now >= self._timers.get("tick", 0):
            self._timers["tick"] = now + limits.TICK_S
            self.tick(now)

    # ------------------------------------------------------------ dispatch

    def dispatch(self, event: object) -> None:
        """Hand one queue message to its handler (HANDLERS); the rest are the storage's events."""
        name = HANDLERS.get(type(event))
        if name is not None:
            getattr(self, name)(event)
        elif self.storage.handle(event):
            self._root_changed()

    def _on_disk_failure(self, event: DiskFailure) -> None:
        self.storage.report_io_error(event.errno_, f"{event.key}: {event.detail}",
                                     source=event.key)

    def _on_sync_failed(self, event: SyncFailed) -> None:
        self.storage.report_io_error(event.errno_, event.detail, source=SYNC_SOURCE)

    def _on_clock_trusted(self, _event: ClockTrusted) -> None:
        self._reanchor()

    def _on_progress(self, event: ProgressReport) -> None:
        proc = self._proc_for_run(event.key, event.run_id)
        if proc is not None:
            proc.progress(event.run_id, event.block, event.mono_us, self.mono())

    def _on_lines(self, event: StreamLines) -> None:
        proc = self._proc_for_run(event.key, event.run_id)
        if proc is not None:
            now = self.mono()
            for line in event.lines if event.lines is not None else (None,):
                proc.feed(event.run_id, event.kind, line, now)
        elif event.kind == SEGMENTS and event.lines:
            logger.error("%s: segments listed by an ffmpeg run (%d) no stream owns: "
                         "not indexed now, left to recovery at the next start: %s",
                         event.key, event.run_id, "; ".join(event.lines)[:300])

    def _on_current_found(self, event: CurrentSegmentFound) -> None:
        proc = self.procs.get(event.key)
        if proc is not None and proc.run and proc.run.run_id == event.run_id:
            proc.current_segment = event.path

    def _on_reachable(self, event: Reachable) -> None:
        proc = self.procs.get(event.key)
        if proc is not None and self._shutdown_deadline is None:
            proc.retry_soon(self.mono())

    def _on_reload_request(self, event: ReloadRequest) -> None:
        logger.info("reloading cameras (%s)", event.reason)
        self._apply_config()

    def _on_power_request(self, event: PowerRequest) -> None:
        self.power.accept(event)
        self.begin_shutdown(f"{event.action} requested")

    def _proc_for_run(self, key: str, run_id: int) -> StreamProcess | None:
        proc = self.procs.get(key)
        if proc is not None and run_id in proc.runs:
            return proc
        for old in self.retiring:
            if old.key == key and run_id in old.runs:
                return old
        return None

    def _on_signal_event(self, event: SignalEvent) -> None:
        if event.signum == signal.SIGHUP:
            self.enqueue(ReloadRequest("SIGHUP"))
            return
        self.begin_shutdown(f"signal {signal.Signals(event.signum).name}")

    # ------------------------------------------------------------ tick

    def tick(self, now: float) -> None:
        for proc in list(self.procs.values()) + self.retiring:
            proc.tick(now)
        for proc in [p for p in self.retiring if p.stopped]:
            self.retiring.remove(proc)
        if self._watchdog_s and self._due("sd_watchdog", now, self._watchdog_s):
            sdnotify.watchdog()
        if self._shutdown_deadline is not None:
            self._check_shutdown(now)
            return
        if self._due("config", now, limits.RELOAD_POLL_S):
            self._poll_config()
        if self._due("clock", now, limits.CLOCK_POLL_S):
            if self.timekeeper.poll():
                self.enqueue(ClockTrusted())
        if self._due("clock_save", now, limits.CLOCK_SAVE_S):
            self.timekeeper.save()
        if self._due("day_dirs", now, limits.DAY_DIRS_S):
            self._submit_day_dirs()
        if self._wanted_root != self.root and self._opening is None:
            self._open_root_when_stopped()
        elif self.root is None and self._opening is None \
                and self._due("root_retry", now, limits.ROOT_RETRY_S):
            self._root_changed()

    def _due(self, name: str, now: float, every: float) -> bool:
        if now < self._timers.get(name, 0):
            return False
        self._timers[name] = now + every
        return True

    # ------------------------------------------------------------ config

    def _poll_config(self) -> None:
        try:
            version = config.data_version()
        except peewee.DatabaseError:
            logger.exception("cannot read config.db")
            return
        if self._data_version is not None and version != self._data_version:
            self.enqueue(ReloadRequest("config.db changed"))
        self._data_version = version

    def desired_specs(self) -> dict[str, StreamSpec]:
        """The streams config.db asks for, by key."""
        seconds = segment_seconds_setting()
        specs = {}
        for cam in config.Camera.select().where(config.Camera.enabled == True):  # noqa: E712
            problem = cam.problem()
            if problem:
                logger.error("config.db: camera %r is not recorded: %s", str(cam.name)[:80], problem)
                continue
            for stream, url in cam.stream_urls().items():
                spec = StreamSpec(cam.name, stream, url, cam.transport or "tcp",
                                  cam.username, cam.password, seconds)
                specs[spec.key] = spec
        return specs

    def activity_streams(self) -> set[str]:
        """Keys of the streams whose activity is analysed: each camera's sub stream if it
        has one (cheaper to decode), else its main stream; none where it is switched off."""
        keys = set()
        for cam in config.Camera.select().where(config.Camera.enabled == True):  # noqa: E712
            if cam.activity:
                keys.add(f"{cam.name}/{'sub' if cam.sub_url else 'main'}")
        return keys

    def _apply_config(self) -> None:
        try:
            self._data_version = config.data_version()
            desired = self.desired_specs()
            self._activity_streams = self.activity_streams()
        except Exception:  # noqa: BLE001 - a broken config must not stop recording
            logger.exception("cannot read the cameras from config.db; keeping the current ones")
            return
        for key, proc in list(self.procs.items()):
            if desired.get(key) != proc.spec:
                logger.info("%s: %s", key, "changed" if key in desired else "removed")
                self._retire(proc)
        for key, spec in desired.items():
            if key not in self.procs:
                self.procs[key] = proc = self._new_proc(spec)
                if self.root is not None and self._shutdown_deadline is None:
                    proc.start()
                elif self._wanted_root is None:
                    proc.set_state(State.STOPPED, ffmpeg.DISK_MISSING)

    def _retire(self, proc: StreamProcess) -> None:
        del self.procs[proc.key]
        proc.stop()
        self._keep_untrusted(proc)
        if not proc.stopped:
            self.retiring.append(proc)

    def _new_proc(self, spec: StreamSpec) -> StreamProcess:
        proc = StreamProcess(spec, picorder_dir=self.picorder_dir or Path("/nonexistent"),
                             runtime_dir=self.runtime_dir, spawn=self._spawn,
                             timekeeper=self.timekeeper, emit=self.enqueue, stall_s=self.stall_s,
                             probe=self.probe, ffmpeg_user=self.ffmpeg_user)
        proc.last_end_us = self._last_ends.get(spec.key)
        return proc

    def _cmd_reload(self) -> dict:
        self.enqueue(ReloadRequest("control command"))
        return {"queued": True}

    # ------------------------------------------------------------ storage

    def _root_changed(self) -> None:
        """The storage's root changed: stop streams; the new root opens once they stopped."""
        self._wanted_root = self.storage.recording_root()
        if self._wanted_root == self.root:
            return
        logger.info("recording root: %s -> %s", self.root, self._wanted_root)
        problem = ffmpeg.DISK_MISSING if self._wanted_root is None else None
        self.root = None
        self.flusher.set_root(None)
        if self._wanted_root is None:
            self.writer.submit(self._close_index_job)   # the disk is gone: let go of its index.db
        for proc in self.procs.values():
            proc.stop(problem)
        self._open_root_when_stopped()

    def _open_root_when_stopped(self) -> None:
        if self._opening is not None or self._shutdown_deadline is not None:
            return
        if not all(p.stopped for p in list(self.procs.values()) + self.retiring):
            return
        root = self._wanted_root
        if root is None:
            return
        self._opening = root
        trusted = self.timekeeper.trusted
        self.writer.submit(lambda: self._open_root_job(root, trusted))

    def _open_root_job(self, root: Path, trusted: bool) -> None:
        """Writer thread: open the root's index, repair it after a crash, report the ends."""
        picorder_dir = root / "picorder"
        self._close_index_job()
        try:
            picorder_dir.mkdir(parents=True, exist_ok=True)
            self._index = index = Index.open(picorder_dir / "index.db")
            recover = self._recover or _default_recover
            report = recover(index, trusted)
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
        rows = [row for row in queries.segments_at(index, rels)
                if f"{row.camera}/{row.stream}" in self._activity_streams]
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

    def _on_root_ready(self, event: RootReady) -> None:
        opening, self._opening = self._opening, None
        if event.error is not None:
            # Not retried in a loop: the storage was told and reports the next change.
            self._wanted_root = None
            for proc in self.procs.values():
                proc.set_state(State.STOPPED, ffmpeg.DISK_ERROR)
                proc.last_error = f"cannot open the recordings index: {event.error}"
            return
        if event.root != self._wanted_root or event.root != opening:
            return
        self.root = event.root
        self.flusher.set_root(self.picorder_dir, event.dev)
        self._last_ends = dict(event.last_ends)
        if self._shutdown_deadline is not None:
            return
        for proc in self.procs.values():
            proc.picorder_dir = self.picorder_dir
            proc.last_end_us = max(proc.last_end_us or 0, self._last_ends.get(proc.key) or 0) or None
            proc.start()

    # ------------------------------------------------------------ segments

    def _submit_ingest(self, seg: SegmentClosed) -> None:
        picorder_dir = self.picorder_dir
        delta = self._reanchored.get((seg.camera, seg.stream, seg.run_id))
        if delta is not None and not seg.clock_trusted:
            # Placed before the clock became trusted, indexed after: shift it like its run.
            seg = replace(seg, start_us=seg.start_us + delta, end_us=seg.end_us + delta,
                          clock_trusted=True)
        if picorder_dir is None:
            logger.error("segment %s closed with no recording root: left to recovery", seg.name)
            return
        self.writer.submit(lambda: self._ingest_job(picorder_dir, seg))

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
        if key in self._activity_streams:
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

    def _on_ingested(self, event: Ingested) -> None:
        proc = self.procs.get(event.key)
        if proc is None:
            return
        proc.metrics.bytes_written += event.bytes
        if proc.metrics.fps == 0 or proc.metrics.bitrate_kbps == 0:
            if event.duration_us > 0:
                proc.metrics.bitrate_kbps = round(event.bytes * 8 / event.duration_us * 1000, 1)

    def _submit_current(self, hint: CurrentSegmentHint) -> None:
        picorder_dir = self.picorder_dir
        proc = self.procs.get(hint.key)
        if picorder_dir is None or proc is None:
            return
        base = ffmpeg.stream_dir(picorder_dir, proc.spec.camera, proc.spec.stream)

        def job():
            for delta_s in (0, -1, 1, -2, -3, 2):
                when = datetime.fromtimestamp(hint.wall_us / 1e6 + delta_s, timezone.utc)
                path = base / when.strftime(ffmpeg.SEGMENT_NAME)
                if path.exists():
                    self.enqueue(CurrentSegmentFound(hint.key, hint.run_id,
                                                     str(path.relative_to(picorder_dir))))
                    return
        self.writer.submit(job)

    def _submit_day_dirs(self) -> None:
        picorder_dir = self.picorder_dir
        if picorder_dir is None:
            return
        streams = [(p.spec.camera, p.spec.stream) for p in self.procs.values()]
        days = day_dirs(host_wall_us())
        user = self.ffmpeg_user

        def job():
            for camera, stream in streams:
                ffmpeg_user.make_day_dirs(picorder_dir, camera, stream, days, user)
        self.writer.submit(job)

    # ------------------------------------------------------------ clock

    def _cmd_set_clock(self, utc_us=None) -> dict:
        if self.timekeeper.set_from_panel(utc_us):
            self.enqueue(ClockTrusted())
        return {"trusted": self.timekeeper.trusted, "source": self.timekeeper.source}

    def _cmd_trust_clock(self, utc_us=None) -> dict:
        """The panel's "Trust this time": the clock agrees with the user's browser."""
        if self.timekeeper.trust_from_panel(utc_us):
            self.enqueue(ClockTrusted())
        return {"trusted": self.timekeeper.trusted, "source": self.timekeeper.source}

    def _keep_untrusted(self, proc: StreamProcess) -> None:
        for anchor in proc.untrusted:
            self.untrusted.append(_Untrusted(proc.spec.camera, proc.spec.stream, anchor))
        proc.untrusted = []

    def _reanchor(self) -> None:
        """The clock became trusted: shift this process's untrusted runs to the true time."""
        for proc in self.procs.values():
            self._keep_untrusted(proc)
        offset = self.timekeeper.offset_us()
        jobs = []
        for item in self.untrusted:
            delta = item.anchor.reanchor(offset)
            jobs.append((item.camera, item.stream, item.anchor.run_id, delta))
            self._reanchored[(item.camera, item.stream, item.anchor.run_id)] = delta
            proc = self.procs.get(f"{item.camera}/{item.stream}")
            if proc is not None and proc.last_end_us is not None and proc.run \
                    and proc.run.anchor is item.anchor:
                proc.last_end_us += delta
        self.untrusted = []
        if jobs and self.picorder_dir is not None:
            self.writer.submit(lambda: self._reanchor_job(jobs))

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

    # ------------------------------------------------------------ status

    def status(self) -> RecorderStatus:
        """The "status" answer of the control socket (recorder.status)."""
        clock = self.timekeeper.state()
        now = self.mono()
        storage = dict(self.storage.state())
        storage.setdefault("root", str(self.root) if self.root else None)
        procs = sorted(self.procs.values(), key=lambda p: (p.spec.camera, p.spec.stream))
        return RecorderStatus(
            version=__version__, pid=os.getpid(), started_utc_us=self.started_utc_us,
            clock=ClockStatus(clock.trusted, clock.source, clock.now_utc_us),
            storage=storage, streams=[p.status(now) for p in procs])

    # ------------------------------------------------------------ shutdown

    def begin_shutdown(self, reason: str) -> None:
        if self._shutdown_deadline is not None:
            return
        logger.info("shutting down (%s)", reason)
        sdnotify.stopping()
        self._shutdown_deadline = self.mono() + limits.SHUTDOWN_BUDGET_S
        for proc in self.procs.values():
            proc.stop()

    def _check_shutdown(self, now: float) -> None:
        remaining = self._shutdown_deadline - now
        procs = list(self.procs.values()) + self.retiring
        settled = all(p.stopped for p in procs) and self.queue.empty()
        if settled or remaining < limits.WRITER_JOIN_S + 1:
            self._done = True

    def _finish(self) -> None:
        deadline = self._shutdown_deadline or (self.mono() + limits.SHUTDOWN_BUDGET_S)
        for proc in list(self.procs.values()) + self.retiring:
            if not proc.stopped:
                logger.error("%s: still running at shutdown: killed", proc.key)
                proc.kill_now()
        self._reap(min(limits.KILL_WAIT_S, max(0.1, deadline - self.mono() - 0.5)))
        self.activity.close(0.1)        # analysis left undone only leaves a hole in the band
        self.writer.close(max(0.1, deadline - self.mono() - 0.5))
        self.flusher.stop(0.1)
        self.timekeeper.save()
        if self.probe is not None:
            self.probe.stop()
        stops = [self.storage.stop] + ([self.control.stop] if self.control else [])
        thread = threading.Thread(target=_run_all, args=(stops,), name="stopping", daemon=True)
        thread.start()
        thread.join(max(0.5, deadline - self.mono()))
        if thread.is_alive():
            logger.error("storage or control did not stop within the shutdown budget: leaving")
        logger.info("recorder stopped")

    def _reap(self, timeout: float) -> None:
        end = time.monotonic() + timeout
        procs = list(self.procs.values()) + self.retiring
        while time.monotonic() < end:
            alive = [p for p in procs if p.run and p.run.child and p.run.child.poll() is None]
            if not alive:
                return
            time.sleep(0.05)


# The main loop's handler (a Recorder method) of each message its threads enqueue. Messages
# not listed are the storage's own (DiskStorage.handle).
HANDLERS: dict[type, str] = {
    ProgressReport: "_on_progress",
    StreamLines: "_on_lines",
    SegmentClosed: "_submit_ingest",
    CurrentSegmentHint: "_submit_current",
    CurrentSegmentFound: "_on_current_found",
    Reachable: "_on_reachable",
    Ingested: "_on_ingested",
    DiskFailure: "_on_disk_failure",
    SyncFailed: "_on_sync_failed",
    SignalEvent: "_on_signal_event",
    ReloadRequest: "_on_reload_request",
    ClockTrusted: "_on_clock_trusted",
    RootReady: "_on_root_ready",
    PowerRequest: "_on_power_request",
}


def _run_all(stops: list[Callable[[], None]]) -> None:
    for stop in stops:
        try:
            stop()
        except Exception:  # noqa: BLE001 - shutdown goes on
            logger.exception("stopping %s failed", stop)


def _default_recover(index: Index, trusted: bool):
    from recorder.recovery import recover
    return recover(index, clock_trusted=trusted)


def segment_seconds_setting() -> int:
    """Setting "segment_seconds" (tests use short segments), default limits.SEGMENT_SECONDS."""
    raw = config.Setting.read(SETTING_SEGMENT_SECONDS)
    try:
        value = int(raw) if raw else limits.SEGMENT_SECONDS
    except ValueError:
        logger.error("setting segment_seconds=%r is not a number: using %d", raw,
                     limits.SEGMENT_SECONDS)
        return limits.SEGMENT_SECONDS
    return min(max(value, 2), 3600)
