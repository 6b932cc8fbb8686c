"""One supervised ffmpeg per camera stream: states, backoff, stall watchdog, graceful stop.

StreamProcess is driven by the service's main loop only: start(), stop(),
tick(now) and feed(...) for each line ffmpeg wrote to one of its pipes (the
lines are read by PipeHub's thread and put on the service queue). Two things
are injected: `spawn` (recorder.spawner.FfmpegSpawner in production, a fake in
unit tests) and the clock (recorder.timekeeping.Clock).
"""

import errno
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from enum import Enum
from functools import partial
from pathlib import Path

from recorder import ffmpeg, ffmpeg_user, limits
from recorder.events import (PROGRESS, SEGMENTS, STDERR, CurrentSegmentHint, DiskFailure,
                             ProgressReport, SegmentClosed, StreamLines)
from recorder.ffmpeg import Failure, StreamSpec
from recorder.ffmpeg_user import FfmpegUser
from recorder.paths import UnsafePath
from recorder.progress import ProgressBlock, ProgressParser, StreamMetrics, parse_segment_line
from recorder.reachability import ReachabilityProbe
from recorder.spawner import Child, Spawn
from recorder.status import StreamStatus
from recorder.timekeeping import RunAnchor, Timekeeper
from recorder.wallclock import now_us as host_wall_us  # what ffmpeg names its files by (TZ=UTC)

logger = logging.getLogger(__name__)


class State(str, Enum):
    STOPPED = "STOPPED"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    BACKOFF = "BACKOFF"
    STOPPING = "STOPPING"
    FATAL = "FATAL"


def backoff_delay(failures: int, rand: Callable[[], float] = random.random, *,
                  initial_s: float = limits.BACKOFF_INITIAL_S,
                  cap_s: float = limits.BACKOFF_CAP_S) -> float:
    """Seconds before retry number `failures` (1, 2, 4 ... capped), with +/- jitter."""
    base = min(cap_s, initial_s * 2 ** max(0, failures - 1))
    return base * (1 + limits.BACKOFF_JITTER * (2 * rand() - 1))


# Streams the MP4 muxer refused: retrying soon cannot help until the camera changes.
REFUSED = frozenset({ffmpeg.UNSUPPORTED_CODEC, ffmpeg.NO_CODEC_PARAMETERS})


@dataclass
class _Run:
    """One spawned ffmpeg and what belongs to it."""

    run_id: int
    child: Child | None
    source_file: Path | None
    anchor: RunAnchor
    spawned: float
    parser: ProgressParser = field(default_factory=ProgressParser)
    last_progress: float = 0.0
    last_segment: float = 0.0
    last_frame: int = -1
    last_out_time: int = -1
    failure: Failure | None = None
    exited: bool = False
    stderr_closed: bool = False             # its last words (why it failed) are read
    segments_closed: bool = False           # its segment list is read to the end
    exit_seen: float | None = None          # when its exit was first seen, still unjudged
    # Segments listed before the anchor settled: (entry, wall us, loop time when listed).
    unplaced: list = field(default_factory=list)
    stop_asked: float | None = None         # a run cut at a discontinuity: asked to stop then
    killed: bool = False
    # Wall time by which ffmpeg had opened its newest file (None: not known yet). A new run
    # must not open a file in that second: it would have the same name (HH-MM-SS.mp4).
    opened_wall_us: int | None = None
    first_name: str | None = None           # the name of the run's first listed segment


class StreamProcess:
    """Supervises the ffmpeg of one stream (Supervisor's process model)."""

    def __init__(self, spec: StreamSpec, *, picorder_dir: Path, runtime_dir: Path,
                 spawn: Spawn, timekeeper: Timekeeper, emit: Callable[[object], None],
                 stall_s: float = limits.STALL_PROGRESS_S,
                 rand: Callable[[], float] = random.random,
                 probe: ReachabilityProbe | None = None,
                 ffmpeg_user: FfmpegUser | None = None,
                 starved: Callable[[], bool] = lambda: False):
        self.spec = spec
        self.starved = starved              # the box is short of CPU (timekeeping.CpuPressure)
        self.ffmpeg_user = ffmpeg_user      # None: ffmpeg runs as the recorder's user
        self.picorder_dir = picorder_dir
        self.runtime_dir = runtime_dir
        self.spawn = spawn
        self.timekeeper = timekeeper
        self.emit = emit
        self.stall_s = stall_s
        self.rand = rand
        self.probe = probe
        self.state = State.STOPPED
        self.problem: str | None = None
        self.problem_detail: str | None = None   # the problem in a sentence (refused streams)
        self.since_utc_us = timekeeper.clock.wall_us()
        # The first failure since a segment last landed, and the newest failure's problem.
        self.failing_since_utc_us: int | None = None
        self.failure: str | None = None
        self.last_arrival_utc_us: int | None = None    # when the newest segment was placed
        self.discontinuity_utc_us: int | None = None   # the stream's timestamps jumped here
        self.restarts = 0
        self.spawns = 0
        self.failures = 0
        self.refusals = 0                        # refused runs in a row (their own backoff)
        self.retry_at = 0.0
        self.running_since: float | None = None
        self.last_error: str | None = None
        self.last_end_us: int | None = None      # end of this stream's newest row
        self.current_segment: str | None = None
        self.metrics = StreamMetrics()
        self.run: _Run | None = None
        self.runs: dict[int, _Run] = {}          # runs with a pipe still open (list, stderr)
        self.cut_runs: list[_Run] = []           # cut at a discontinuity, still finishing
        self.respawn_at: float | None = None     # the run after a cut starts then
        self.untrusted: list[RunAnchor] = []     # runs placed on an untrusted clock
        self._after_stop = "stop"
        self._stop_started = 0.0
        self._killed = False
        self._log_window = (0.0, 0)

    @property
    def key(self) -> str:
        return self.spec.key

    @property
    def pid(self) -> int | None:
        run = self.run
        return run.child.pid if run and run.child and not run.exited else None

    def now(self) -> float:
        return self.timekeeper.clock.mono_us() / 1e6

    # ------------------------------------------------------------- transitions

    def set_state(self, state: State, problem: str | None = None,
                  detail: str | None = None) -> None:
        """The one place where the state changes; every change is logged."""
        # A retry (STARTING) keeps the sentence of the failure it retries after.
        keep = state == State.STARTING and self.failure is not None
        if state == self.state and problem == self.problem:
            self.problem_detail = detail if problem else self.problem_detail if keep else None
            return
        level = logging.WARNING if problem else logging.INFO
        logger.log(level, "%s: %s -> %s%s", self.key, self.state.value, state.value,
                   f" ({detail or problem})" if problem else "")
        self.state = state
        self.problem = problem
        self.problem_detail = detail if problem else self.problem_detail if keep else None
        self.since_utc_us = self.timekeeper.clock.wall_us()
        if problem or state in (State.BACKOFF, State.FATAL):
            if self.failing_since_utc_us is None:
                self.failing_since_utc_us = self.since_utc_us
            self.failure = problem or self.failure
        elif state == State.STOPPED:
            self.failing_since_utc_us = self.failure = None     # stopped on purpose

    def start(self) -> None:
        """Start recording now (a pending backoff is cut short; a stopping ffmpeg restarts)."""
        if self.state in (State.STOPPED, State.FATAL, State.BACKOFF):
            self._spawn(self.now())
        elif self.state == State.STOPPING:
            self._after_stop = "restart"

    def stop(self, problem: str | None = None) -> None:
        """Stop recording: ask ffmpeg to finish its segment, kill it after the grace time."""
        if self.probe is not None:
            self.probe.unwatch(self.key)
        self.respawn_at = None
        if self.state in (State.STARTING, State.RUNNING):
            self._begin_stop("stop", problem)
        elif self.state == State.STOPPING:
            self._after_stop = "stop"
            self.problem = problem
        else:
            self.set_state(State.STOPPED, problem)

    @property
    def stopped(self) -> bool:
        """Stopped, with its ffmpeg reaped and every pipe read to the end."""
        return self.state in (State.STOPPED, State.FATAL) and not self.runs

    def _spawn(self, now: float) -> None:
        if self.probe is not None:
            self.probe.unwatch(self.key)
        run_id = self.timekeeper.clock.wall_us()
        anchor = RunAnchor(run_id, self.timekeeper.offset_us(), self.timekeeper.trusted,
                           self.last_end_us, starved=self.starved)
        try:
            self._make_day_dirs()
            source = ffmpeg.write_source_file(self.runtime_dir, self.spec, run_id,
                                              owner=self.ffmpeg_user)
        except UnsafePath as exc:
            # desired_specs() refuses such names; this is the last line of defence.
            logger.error("%s: %s", self.key, exc)
            self.last_error = f"cannot prepare the recording: {exc}"
            self.set_state(State.FATAL, None)
            return
        except OSError as exc:
            logger.exception("%s: cannot prepare the recording", self.key)
            self.last_error = f"cannot prepare the recording: {exc.strerror or exc}"
            self._backoff(ffmpeg.DISK_ERROR, now)
            self.emit(DiskFailure(self.key, exc.errno or errno.EIO, self.last_error))
            return
        if not self._ffmpeg_can_reach(source, now):
            ffmpeg.remove_source_file(source)
            return
        argv_fn = partial(ffmpeg.build_argv, self.spec, source_file=source,
                          picorder_dir=self.picorder_dir)
        sink = partial(self._sink, run_id)
        try:
            child = self.spawn(argv_fn, sink)
        except FileNotFoundError:
            ffmpeg.remove_source_file(source)
            self.last_error = "ffmpeg is not installed (apt install ffmpeg)"
            logger.error("%s: %s", self.key, self.last_error)
            self.set_state(State.FATAL, None)
            return
        except OSError as exc:
            ffmpeg.remove_source_file(source)
            logger.exception("%s: cannot start ffmpeg", self.key)
            self.last_error = f"cannot start ffmpeg: {exc.strerror or exc}"
            self._backoff(None, now)
            return
        if self.spawns:
            self.restarts += 1
        self.spawns += 1
        self.run = _Run(run_id, child, source, anchor, spawned=now, last_progress=now,
                        last_segment=now)
        self.runs[run_id] = self.run
        if not anchor.trusted:
            self.untrusted.append(anchor)
        self._killed = False
        logger.info("%s: started ffmpeg pid %d (run %d)", self.key, child.pid, run_id)
        self.set_state(State.STARTING, None)

    def _sink(self, run_id: int, kind: str, payload) -> None:
        # Called on the reader thread: only enqueue.
        if kind == PROGRESS and payload is not None:
            block, mono_us = payload
            self.emit(ProgressReport(self.key, run_id, block, mono_us))
        else:
            self.emit(StreamLines(self.key, run_id, kind, None if payload is None else tuple(payload)))

    def _make_day_dirs(self) -> None:
        ffmpeg_user.make_day_dirs(self.picorder_dir, self.spec.camera, self.spec.stream,
                                  day_dirs(host_wall_us()), self.ffmpeg_user)

    def _ffmpeg_can_reach(self, source: Path, now: float) -> bool:
        """ffmpeg's user can pass through to its list and its day directory (else: a clear error)."""
        user = self.ffmpeg_user
        day = ffmpeg.stream_dir(self.picorder_dir, self.spec.camera, self.spec.stream) \
            / day_dirs(host_wall_us())[0]
        for target in (source, day):
            blocked = ffmpeg_user.unreachable(target, user)
            if blocked is not None:
                self.last_error = (f"ffmpeg's user {user.name} may not pass through {blocked} "
                                   f"(chmod o+x {blocked}, or move it)")
                logger.error("%s: %s", self.key, self.last_error)
                self._backoff(ffmpeg.DISK_ERROR, now)
                return False
        return True

    def _begin_stop(self, after: str, problem: str | None) -> None:
        self._after_stop = after
        self._stop_started = self.now()
        self.set_state(State.STOPPING, problem)
        run = self.run
        if run and run.child and not run.exited:
            try:
                run.child.request_stop()
            except ProcessLookupError:
                pass

    def _backoff(self, problem: str | None, now: float) -> None:
        self.failures += 1
        delay = backoff_delay(self.failures, self.rand)
        self.retry_at = now + delay
        logger.info("%s: retrying in %.1f s", self.key, delay)
        self.set_state(State.BACKOFF, problem)

    def _refused(self, failure: Failure, now: float) -> None:
        """The muxer refused the camera's stream: a state of its own, and a slower retry."""
        self.refusals += 1
        delay = backoff_delay(self.refusals, self.rand, initial_s=limits.REFUSED_BACKOFF_INITIAL_S,
                              cap_s=limits.REFUSED_BACKOFF_CAP_S)
        self.retry_at = now + delay
        logger.info("%s: retrying in %.1f s", self.key, delay)
        self.set_state(State.BACKOFF, failure.problem, failure.detail)

    def _remove_empty_segments(self, run: _Run, now: float) -> None:
        """Remove the empty file ffmpeg opened before the muxer refused the stream (one per try)."""
        since = host_wall_us() / 1e6 - (now - run.spawned) - 2
        base = ffmpeg.stream_dir(self.picorder_dir, self.spec.camera, self.spec.stream)
        for path, st in ffmpeg.files_since(base, day_dirs(int(since * 1e6)), since):
            if st.st_size == 0:
                try:
                    path.unlink()
                except OSError:
                    logger.exception("%s: cannot remove the empty %s", self.key, path)

    # -------------------------------------------------------------------- tick

    def tick(self, now: float) -> None:
        """Reap, watch and retry: called by the main loop a few times a second."""
        for held in list(self.runs.values()):
            if held.unplaced and now - held.unplaced[0][2] > limits.ANCHOR_SETTLE_MAX_S:
                self._place_segments(held)
        for cut in list(self.cut_runs):
            self._reap_cut_run(cut, now)
        if self.respawn_at is not None and now >= self.respawn_at:
            self.respawn_at = None
            if self.state == State.STARTING and self.run is None:
                self._spawn(now)
        run = self.run
        if run and run.child and not run.exited:
            rc = run.child.poll()
            if rc is not None and self._last_words_read(run, rc, now):
                self._on_exit(run, rc, now)
        if self.state == State.BACKOFF and now >= self.retry_at:
            self._spawn(now)
        elif self.state in (State.STARTING, State.RUNNING):
            self._watchdog(now)
        elif self.state == State.STOPPING:
            self._escalate(now)

    def _reap_cut_run(self, run: _Run, now: float) -> None:
        """A run cut at a discontinuity, still finishing beside its successor: reap it,
        or kill it after STOP_GRACE_S."""
        rc = run.child.poll()
        if rc is not None:
            self.cut_runs.remove(run)
            run.exited = True
            ffmpeg.remove_source_file(run.source_file)
            run.source_file = None
            logger.info("%s: ffmpeg pid %d (cut run) exited with %d", self.key, run.child.pid, rc)
        elif not run.killed and now - run.stop_asked > limits.STOP_GRACE_S:
            run.killed = True
            self._kill_late(run)

    def _last_words_read(self, run: _Run, rc: int, now: float) -> bool:
        """A failed ffmpeg is judged by what it said, which the pipe reader may not have passed
        on yet (its exit is seen first): wait for its stderr to close, at most EXIT_LINES_WAIT_S."""
        if rc == 0 or run.failure is not None or run.stderr_closed or self.state == State.STOPPING:
            return True
        if run.exit_seen is None:
            run.exit_seen = now
        return now - run.exit_seen >= limits.EXIT_LINES_WAIT_S

    def _on_exit(self, run: _Run, rc: int, now: float) -> None:
        run.exited = True
        self.metrics.end_run()
        self.running_since = None
        self.current_segment = None
        ffmpeg.remove_source_file(run.source_file)
        run.source_file = None
        logger.info("%s: ffmpeg pid %d exited with %d", self.key, run.child.pid, rc)
        if self.state == State.STOPPING:
            after = self._after_stop
            if after == "restart":
                self._spawn(now)
            elif after == "backoff":
                self._backoff(self.problem, now)
            else:
                self.set_state(State.STOPPED, self.problem)
            return
        failure = run.failure or Failure(ffmpeg.STREAM_ENDED if rc == 0 else ffmpeg.UNREACHABLE)
        if failure.problem in REFUSED:
            self._remove_empty_segments(run, now)
            self._refused(failure, now)
            return
        if failure.problem == ffmpeg.DISK_ERROR:
            self.emit(DiskFailure(self.key, failure.errno_, self.last_error or "write error"))
        self._backoff(failure.problem, now)
        address = ffmpeg.host_port(self.spec.url)
        if failure.network and self.probe is not None and address is not None:
            self.probe.watch(self.key, address)

    def retry_soon(self, now: float) -> None:
        """The camera is reachable again: end the backoff now (it was a connection failure).
        The backoff starts afresh too: a camera that is booting takes connections before
        its stream is ready, and its first refusal must cost a second, not the minute the
        outage built up."""
        if self.state == State.BACKOFF and self.retry_at > now:
            logger.info("%s: camera reachable again: retrying now", self.key)
            self.retry_at = now
            self.failures = 0

    def _watchdog(self, now: float) -> None:
        run = self.run
        if run is None:                         # a new run starts at respawn_at
            return
        if self.state == State.STARTING:
            if now - run.spawned > max(self.stall_s, limits.STARTING_TIMEOUT_S):
                self._restart(ffmpeg.NO_ANSWER, "no video arrived")
            return
        if now - run.last_progress > self.stall_s:
            self._restart(ffmpeg.STALLED, f"no progress for {now - run.last_progress:.0f} s")
        elif now - run.last_segment > limits.segment_watchdog_s(self.spec.segment_seconds):
            self._restart(ffmpeg.STALLED, f"no new segment for {now - run.last_segment:.0f} s")
        elif self.running_since is not None and now - self.running_since >= limits.HEALTHY_RESET_S:
            self.failures = self.refusals = 0

    def _restart(self, problem: str, why: str) -> None:
        logger.warning("%s: %s: restarting ffmpeg", self.key, why)
        self.last_error = why
        self._begin_stop("backoff", problem)

    def _escalate(self, now: float) -> None:
        run = self.run
        if run is None or run.exited:
            self.set_state(State.STOPPED, self.problem)
            return
        if not self._killed and now - self._stop_started > limits.STOP_GRACE_S:
            self._killed = True
            self._kill_late(run)

    def _kill_late(self, run: _Run) -> None:
        """SIGKILL an ffmpeg that did not stop within STOP_GRACE_S of being asked."""
        logger.warning("%s: ffmpeg pid %d did not stop in %.0f s: killing it",
                       self.key, run.child.pid, limits.STOP_GRACE_S)
        try:
            run.child.kill()
        except ProcessLookupError:
            pass

    def kill_now(self) -> None:
        """Immediate exit (second signal): SIGKILL without waiting (a cut run still
        finishing too)."""
        for run in [r for r in (self.run, *self.cut_runs) if r is not None]:
            if run.child and not run.exited:
                try:
                    run.child.kill()
                except ProcessLookupError:
                    pass

    # ------------------------------------------------------------------ lines

    def feed(self, run_id: int, kind: str, line: str | None, now: float) -> None:
        """One line (None: end of file) from a pipe of run `run_id`."""
        run = self.runs.get(run_id)
        if run is None:
            return
        if kind == SEGMENTS:
            if line is None:
                self._place_segments(run)
                run.segments_closed = True
                self._forget_when_read(run)
                waiting = self.run
                if run.stop_asked is not None and waiting and waiting.unplaced \
                        and waiting.anchor.settled:
                    self._place_segments(waiting)     # it waited for this list to close
                if run is self.run and self.state == State.STOPPING and not run.exited:
                    # ffmpeg closes its list as it exits: reap it now, not at the next
                    # tick, so that a run cut at a discontinuity restarts sooner.
                    rc = run.child.poll()
                    if rc is not None:
                        self._on_exit(run, rc, now)
            else:
                self._on_segment_line(run, line, now)
        elif kind == PROGRESS and line is not None:
            block = run.parser.feed(line)
            if block is not None:
                self._on_progress(run, block, self.timekeeper.clock.mono_us(), now)
        elif kind == STDERR:
            if line is None:
                run.stderr_closed = True
                self._forget_when_read(run)
            else:
                self._on_stderr(run, line, now)

    def progress(self, run_id: int, block: ProgressBlock, mono_us: int, now: float) -> None:
        """A report of run `run_id`, read from its pipe at `mono_us`."""
        run = self.runs.get(run_id)
        if run is not None:
            self._on_progress(run, block, mono_us, now)

    def _forget_when_read(self, run: _Run) -> None:
        """The pipes close in any order: a run is forgotten once its segment list and its
        stderr are both read, so that its last words still count after its list closed."""
        if run.segments_closed and run.stderr_closed:
            self.runs.pop(run.run_id, None)

    def _on_progress(self, run: _Run, block: ProgressBlock, mono_us: int, now: float) -> None:
        why = run.anchor.observe(mono_us, block.out_time_us, report=True)
        if why is not None:
            self._discontinuity(run, why)
        if run.unplaced and run.anchor.settled:
            self._place_segments(run)
        out_time = block.out_time_us if block.out_time_us is not None else -1
        if block.frame > run.last_frame or out_time > run.last_out_time:
            if block.frame > 0:
                run.last_progress = now
            run.last_frame, run.last_out_time = block.frame, out_time
        if run is not self.run:
            return
        self.metrics.update(block)
        if self.state == State.STARTING and block.frame > 0:
            self.running_since = now
            run.last_segment = now
            run.opened_wall_us = run.opened_wall_us or host_wall_us()
            self.set_state(State.RUNNING, None)
            self.emit(CurrentSegmentHint(self.key, run.run_id, host_wall_us()))

    def _discontinuity(self, run: _Run, why: str) -> None:
        """The stream's time left the box's clock: the run is cut there (RunAnchor), and
        a new ffmpeg starts a new run, anchored afresh (docs/time.md)."""
        if run is not self.run or run.exited or self.state not in (State.STARTING,
                                                                   State.RUNNING):
            return
        self.note_discontinuity()
        self.last_error = f"timestamps jumped: {why}"
        logger.warning("%s: %s: a new run starts", self.key, self.last_error)
        self._hand_over(run)

    def _hand_over(self, run: _Run) -> None:
        """Ask the cut run's ffmpeg to finish and start its successor at once, without
        waiting for the exit: every moment of the restart is video lost (docs/time.md).
        The old run is reaped, and its last segment placed, while the new one connects."""
        now = self.now()
        run.stop_asked = now
        try:
            run.child.request_stop()
        except ProcessLookupError:
            pass
        self.cut_runs.append(run)
        self.metrics.end_run()
        self.running_since = None
        self.current_segment = None
        self.run = None
        wait_s = self._same_second_wait(run)
        if wait_s <= 0:
            self._spawn(now)
            return
        logger.info("%s: the new run starts in %.2f s (not in the second of the cut run's "
                    "newest file, whose name it would take)", self.key, wait_s)
        self.respawn_at = now + wait_s
        self.set_state(State.STARTING, None)

    def _same_second_wait(self, run: _Run) -> float:
        """Seconds until a new ffmpeg may start beside `run`: its first file is named by
        the second it opens it in, so not in the second `run` opened its newest file.
        That second is known from the segment list, and taken to be now when the run
        has not listed or reported one yet, or a wall-clock cut passed under a second ago
        (its list line may still be on its way)."""
        wall = host_wall_us()
        opened = run.opened_wall_us
        since_cut_us = wall % (int(self.spec.segment_seconds) * 1_000_000)
        if opened is None or since_cut_us < 1_000_000:
            opened = wall
        if opened // 1_000_000 < wall // 1_000_000:
            return 0.0
        return (1_000_000 - wall % 1_000_000) / 1e6 + limits.NEW_SECOND_MARGIN_S

    def _on_segment_line(self, run: _Run, line: str, now: float) -> None:
        entry = parse_segment_line(line)
        if entry is None:
            return
        # The muxer lists a segment when the packet that starts the next one arrives, so
        # the line is one more sample of the anchor.
        why = run.anchor.observe(self.timekeeper.clock.mono_us(), entry.end_us)
        if why is not None:
            self._discontinuity(run, why)
        run.last_segment = now
        run.first_name = run.first_name or entry.name
        wall = host_wall_us()
        run.opened_wall_us = wall           # the muxer opened the next file just before
        run.unplaced.append((entry, wall, now))
        if run.anchor.settled:
            self._place_segments(run)
        if run is self.run and not run.exited:
            # The next file was opened just now: found by its name, so not held back.
            self.emit(CurrentSegmentHint(self.key, run.run_id, wall))

    def _place_segments(self, run: _Run) -> None:
        """Emit the run's listed segments with their wall-clock times (freezes the anchor).

        A new run's first segments wait while the list of the run cut before it is open:
        that one may still list a segment, whose end is the new run's "not before"."""
        if not run.anchor.frozen and any(r.stop_asked is not None and r.run_id < run.run_id
                                         and not r.segments_closed
                                         for r in self.runs.values()):
            return
        unplaced, run.unplaced = run.unplaced, []
        mono_us = self.timekeeper.clock.mono_us()
        if not run.anchor.frozen and self.last_end_us is not None:
            # The previous run's last segments may have been placed after this one started.
            run.anchor.not_before_us = max(run.anchor.not_before_us or 0, self.last_end_us)
        for entry, wall, _ in unplaced:
            placed = run.anchor.wall_range(entry.start_us, entry.end_us, mono_us)
            if placed is None:
                logger.warning("%s: %s lies after the run's timestamps jumped: not indexed "
                               "(%s)", self.key, entry.name, "left to recovery at the next start")
                continue
            start_us, end_us = placed
            self.last_end_us = max(self.last_end_us or end_us, end_us)
            self.metrics.last_segment_utc_us = end_us
            self.last_arrival_utc_us = self.timekeeper.clock.wall_us()
            self.failing_since_utc_us = self.failure = None
            self.emit(SegmentClosed(self.spec.camera, self.spec.stream, entry.name, start_us,
                                    end_us, run.run_id, run.anchor.trusted, wall,
                                    cut=run.anchor.cut_us is not None,
                                    first=entry.name == run.first_name))

    def note_discontinuity(self, wall_us: int | None = None) -> None:
        """The stream's timestamps jumped at `wall_us` (default: now); one burst is one jump."""
        wall_us = wall_us or self.timekeeper.clock.wall_us()
        last = self.discontinuity_utc_us
        if last is None or wall_us - last > limits.DISCONTINUITY_BURST_S * 1e6:
            self.discontinuity_utc_us = wall_us
            logger.warning("%s: the camera's timestamps jumped", self.key)

    def _on_stderr(self, run: _Run, line: str, now: float) -> None:
        text = ffmpeg.redact(line.strip(), self.spec.secrets())
        if not text:
            return
        if ffmpeg.BENIGN_RE.search(text):
            logger.debug("%s: ffmpeg: %s", self.key, text)
            return
        if ffmpeg.DISCONTINUITY_RE.search(text) and not run.segments_closed:
            self.note_discontinuity()
            if run.anchor.cut_us is None:
                run.anchor.cut(self.timekeeper.clock.mono_us())
                self._discontinuity(run, "the camera's timestamps jumped (ffmpeg: "
                                         f"{text[:120]})")
        failure = ffmpeg.classify(text)
        if failure is not None:
            if run.failure is None or run.failure.problem == ffmpeg.STREAM_ENDED:
                run.failure = failure
            self.last_error = text[:500]
        start, count = self._log_window
        if now - start >= 60:
            if count > limits.STDERR_LINES_PER_MIN:
                logger.warning("%s: %d more ffmpeg lines not logged", self.key,
                               count - limits.STDERR_LINES_PER_MIN)
            start, count = now, 0
        count += 1
        self._log_window = (start, count)
        if count <= limits.STDERR_LINES_PER_MIN:
            logger.warning("%s: ffmpeg: %s", self.key, text)

    # ------------------------------------------------------------------ status

    def status(self, now: float) -> StreamStatus:
        """This stream's entry of the "status" answer (recorder.status)."""
        m = self.metrics
        uptime = now - self.running_since if self.running_since is not None else 0.0
        return StreamStatus(
            camera=self.spec.camera, stream=self.spec.stream,
            state=self.state.value, problem=self.problem, problem_detail=self.problem_detail,
            since_utc_us=self.since_utc_us, pid=self.pid,
            uptime_s=round(uptime, 3), restarts=self.restarts,
            frames=m.frames, fps=m.fps, bitrate_kbps=m.bitrate_kbps,
            dropped=m.dropped, duplicated=m.duplicated,
            bytes_written=m.bytes_written, last_segment_utc_us=m.last_segment_utc_us,
            last_error=self.last_error,
            current_segment=self.current_segment if self.state == State.RUNNING else None,
            failing_since_utc_us=self.failing_since_utc_us, failure=self.failure,
            last_arrival_utc_us=self.last_arrival_utc_us,
            segment_seconds=self.spec.segment_seconds,
            discontinuity_utc_us=self.discontinuity_utc_us,
        )


def day_dirs(wall_us: int) -> list[str]:
    """Relative day directories (YYYY/MM/DD, UTC) of today and tomorrow."""
    today = datetime.fromtimestamp(wall_us / 1e6, timezone.utc).date()
    days = [today, today + timedelta(days=1)]
    return [d.strftime("%Y/%m/%d") for d in days]
