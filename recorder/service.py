"""The recorder service: one main loop that supervises every stream and indexes its segments.

Threads and what they may do:
- main thread: the loop. It drains one queue (signals, ffmpeg pipe lines,
  config reloads, storage events, clock changes), ticks every StreamProcess
  and never touches the recording disk except to create day directories
  before a spawn.
- "ffmpeg-pipes" (recorder.spawner.PipeHub): reads ffmpeg's pipes, enqueues their lines
  and, for the progress pipes, each read's newest report.
- "index-writer" and "activity" (recorder.ingest.Ingest): every index.db and
  segment-file I/O (open, recovery, fsync, probe, insert, re-anchor), and the
  activity analysis. Shutdown waits for them only as long as the budget allows,
  so a hung disk cannot hold shutdown.
- "reachability" (recorder.reachability): connects to cameras that refused ffmpeg.
- "control" (recorder.control): answers the socket; handlers read state or enqueue.
- the storage's own watcher threads, which only enqueue.

What the threads enqueue are the messages of recorder.events; HANDLERS below
says which method handles each.
"""

import logging
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import peewee

from recorder import __version__, config, ffmpeg, ffmpeg_user, limits, sdnotify
from recorder.durability import Flusher, SyncFailed
from recorder.events import (
    SEGMENTS, ClockTrusted, CurrentSegmentFound, CurrentSegmentHint, DiskFailure, Ingested,
    ProgressReport, Reachable, ReloadRequest, RootReady, SegmentClosed, SignalEvent, StreamLines,
)
from recorder.ffmpeg import StreamSpec
from recorder.ingest import Ingest
from recorder.paths import DataPaths
from recorder.power import Power, PowerRequest
from recorder.process import State, StreamProcess, day_dirs, host_wall_us
from recorder.reachability import ReachabilityProbe
from recorder.spawner import FfmpegSpawner, PipeHub, stop_orphans
from recorder.status import ClockStatus, RecorderStatus
from recorder.storage import SYNC_SOURCE, Storage
from recorder.timekeeping import Clock, CpuPressure, RunAnchor, Timekeeper, ntp_synchronized

logger = logging.getLogger(__name__)

SETTING_SEGMENT_SECONDS = "segment_seconds"
# Where ffmpeg's credential lists go (the unit points it at a tmpfs RuntimeDirectory
# that ffmpeg's user can reach); default: DATA/run.
ENV_RUNTIME_DIR = "PICORDER_RUNTIME_DIR"


@dataclass
class _Untrusted:
    camera: str
    stream: str
    anchor: RunAnchor


# ------------------------------------------------------------------ recorder

class Recorder:
    """Keeps every enabled camera stream recording into the current recording root."""

    def __init__(self, paths: DataPaths, storage: Storage, *, clock: Clock | None = None,
                 spawn=None, ntp_check=ntp_synchronized, stall_s: float = limits.STALL_PROGRESS_S,
                 recover: Callable | None = None, cpu_pressure: CpuPressure | None = None):
        self.paths = paths
        # The unprivileged user ffmpeg runs as (recorder.ffmpeg_user); resolved at start.
        self.ffmpeg_user: ffmpeg_user.FfmpegUser | None = None
        self.storage = storage
        self.clock = clock or Clock()
        self.timekeeper = Timekeeper(paths.clock_file, clock=self.clock, ntp_check=ntp_check,
                                     old_clock_file=paths.old_clock_file)
        # A starved box does not restart streams that fall behind (docs/time.md, "Lag").
        self.cpu_pressure = cpu_pressure or CpuPressure()
        self._spawn = spawn
        self.stall_s = stall_s
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.procs: dict[str, StreamProcess] = {}
        self.retiring: list[StreamProcess] = []
        self.untrusted: list[_Untrusted] = []
        self.root: Path | None = None
        self._wanted_root: Path | None = None
        self._opening: Path | None = None
        self._last_ends: dict[str, int] = {}
        self.ingest = Ingest(self.enqueue, recover)      # the index-writer and activity threads
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
        self.ingest.start()
        self.flusher.start()
        self.probe = ReachabilityProbe(self.enqueue)
        self.probe.start()
        self.control = ControlServer(self.paths.control_socket)
        self.control.register("status", lambda: self.status().to_json())
        self.control.register("reload", self._cmd_reload)
        self.control.register("set_clock", self._cmd_set_clock)
        self.control.register("trust_clock", self._cmd_trust_clock)
        # Each thread's kernel id and name, to read per-thread CPU from /proc/PID/task/ID
        # (benchmarks.recorder_threads): the kernel knows every thread as "python".
        self.control.register("threads", lambda: {str(t.native_id): t.name
                                                  for t in threading.enumerate()})
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
            self.ingest.activity_streams = self.activity_streams()
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
                             probe=self.probe, ffmpeg_user=self.ffmpeg_user,
                             starved=self.cpu_pressure.starved)
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
            self.ingest.close_root()          # the disk is gone: let go of its index.db
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
        self.ingest.open_root(root, trusted)

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
        self.ingest.ingest(picorder_dir, seg)

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
        self.ingest.submit(job)

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
        self.ingest.submit(job)

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
            self.ingest.reanchor(jobs)

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
        self.ingest.close(max(0.2, deadline - self.mono() - 0.5))
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
