"""RotationJob: retention on the recording root, run by APScheduler in the recorder.

A pass (every RETENTION_INTERVAL_S, or at once when free space nears the floor or a
writer hits ENOSPC) plans with the pure recorder.retention.plan_rotation and deletes
through the disk index's own connection, in retention's crash-safe order. The floor and
the headroom above it follow what this recorder records, never how fast the disk fills.
"""

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from recorder import limits, retention
from recorder.index import queries
from recorder.storage import disk_ops
from recorder.storage.settings import camera_limits, configured_floor
from recorder.wallclock import now_us

logger = logging.getLogger(__name__)


@dataclass
class RetentionState:
    """What the last pass did and saw (the storage state's "retention")."""

    last_run_utc_us: int | None = None
    last_deleted: int = 0
    last_deleted_bytes: int = 0
    total_deleted: int = 0
    floor_bytes: int | None = None
    floor_met: bool = True
    free_bytes: int | None = None
    total_bytes: int | None = None
    forecast: dict = field(default_factory=dict)
    last_error: str | None = None


@dataclass(frozen=True)
class _Pass:
    """What one pass read before it deleted: the forecast is made from it afterwards."""

    root: Path
    floor: int
    rates: Mapping[str, float]                       # bytes/s per stream
    limits_by_camera: Mapping[str, retention.CameraLimits]
    totals: Mapping[str, int]                        # bytes per camera before deleting


class Throttle:
    """True at most once per `every_s` for each kind of message (repeated warnings)."""

    def __init__(self, every_s: float = limits.STORAGE_LOG_EVERY_S):
        self.every_s = every_s
        self.last: dict[str, float] = {}

    def __call__(self, what: str) -> bool:
        now = time.monotonic()
        last = self.last.get(what)
        if last is not None and now - last < self.every_s:
            return False
        self.last[what] = now
        return True


def _log_job_error(event) -> None:
    logger.error("storage job %s failed: %r\nTraceback (most recent call last):\n%s",
                 event.job_id, event.exception, (event.traceback or "").rstrip())


class RotationJob:
    """Retention on whatever `root_of()` names: passes, the free-space trigger, the scheduler."""

    def __init__(self, root_of: Callable[[], Path | None], *, floor_override: int | None = None):
        self.root_of = root_of
        self.floor_override = floor_override
        self.state = RetentionState()
        self.say = Throttle()
        self.cancel = threading.Event()        # set: a running pass stops deleting
        self.scheduler = None
        self._lock = threading.Lock()          # one pass (and its connection) at a time
        self._tracker = retention.UsageTracker()
        self._conn = None
        self._conn_root: Path | None = None
        self._generation = 0                   # the root changed: reconnect
        self._conn_generation = -1
        self._headroom = 0
        # bytes/s this recorder records (sum of its streams, from the index). The floor and
        # headroom use it, never how fast the disk's free space shrinks: other writers on
        # a shared disk must not make retention delete the recordings.
        self._rate = 0.0
        self._rate_at = float("-inf")          # monotonic time _rate was last computed
        self._floor_setting: int | None = None   # the configured floor, as the watch saw it
        self._floor_read_at = float("-inf")

    def start(self, *, watch: Callable[[], None], check_health: Callable[[], None]) -> None:
        """Schedule the passes, and the storage's own watch and health jobs beside them."""
        from apscheduler.events import EVENT_JOB_ERROR
        from apscheduler.schedulers.background import BackgroundScheduler
        sched = BackgroundScheduler(timezone=timezone.utc, job_defaults={
            "coalesce": True, "max_instances": 1,
            "misfire_grace_time": limits.RETENTION_MISFIRE_GRACE_S})
        sched.add_listener(_log_job_error, EVENT_JOB_ERROR)
        # APScheduler logs every run at INFO: once a second is noise in the journal.
        logging.getLogger("apscheduler.executors").setLevel(logging.WARNING)
        now = datetime.now(timezone.utc)
        sched.add_job(self.run, "interval", seconds=limits.RETENTION_INTERVAL_S,
                      id="retention", name="retention", next_run_time=now)
        sched.add_job(watch, "interval", seconds=limits.FREE_SPACE_CHECK_S,
                      id="storage-watch", name="storage watch")
        sched.add_job(check_health, "interval", seconds=limits.HEALTH_INTERVAL_S,
                      id="disk-health", name="disk health", next_run_time=now)
        sched.start()
        self.scheduler = sched

    def stop(self) -> None:
        """Stop the jobs and close the index connection (after a running pass)."""
        self.cancel.set()
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
            self.scheduler = None
        with self._lock:
            self._close_conn()

    def run_soon(self) -> None:
        """Run a pass at once (free space below the floor, ENOSPC)."""
        if self.scheduler is not None:
            self.scheduler.modify_job("retention", next_run_time=datetime.now(timezone.utc))

    def root_changed(self) -> None:
        """Recording moved or stopped: a running pass stops, the next one reconnects."""
        self.cancel.set()
        self._generation += 1

    def finish_interrupted(self, root: Path) -> None:
        """At start: complete the deletions a crash interrupted on this root."""
        with self._lock:
            self._connection(root)

    def close_idle(self) -> None:
        """Without a root nothing of the missing disk stays open (unless a pass runs now)."""
        if self._conn is not None and self._lock.acquire(timeout=0):
            try:
                self._close_conn()
            finally:
                self._lock.release()

    def watch_free_space(self, root: Path) -> None:
        """Run a pass at once when free space comes within reach of the floor."""
        space = disk_ops.free_space(root)
        if not space:
            return
        now = time.monotonic()
        # The setting is reread once in a while, not every second: the query is most of
        # the watch's cost (a pass rereads it every time).
        if now - self._floor_read_at > limits.FLOOR_SETTING_REFRESH_S:
            self._read_floor_setting(now)
        floor = self._floor(space["total_bytes"], self._rate)
        free = space["free_bytes"]
        # Within twice the floor, refresh the recorded bitrate (and so the headroom) now
        # and then: a headroom of zero, before the first run, lets writes overshoot the floor.
        stale = now - self._rate_at > limits.RATE_REFRESH_S
        if free < floor + self._headroom or (free < 2 * floor and stale):
            if self.say("close_to_floor"):
                logger.info("free space %d close to the floor %d: running retention now",
                            free, floor)
            self.run_soon()

    def run(self) -> retention.ApplyResult | None:
        """One pass on the current root: plan, then delete."""
        with self._lock:
            self.cancel.clear()
            root = self.root_of()
            if root is None:
                self._close_conn()
                return None
            conn = self._connection(root)
            if conn is None:
                return None
            return self._rotate(conn, root)

    def _read_floor_setting(self, now: float) -> None:
        self._floor_setting, self._floor_read_at = configured_floor(), now

    def _floor(self, total_bytes: int, rate_bps: float) -> int:
        """The floor in force: the override, else the setting as last read, else the default."""
        return (self.floor_override or self._floor_setting
                or retention.default_floor(total_bytes, rate_bps))

    def _connection(self, root: Path):
        if (self._conn is not None and self._conn_root == root
                and self._conn_generation == self._generation):
            return self._conn
        self._close_conn()
        path = root / disk_ops.PICORDER_DIR / "index.db"
        if not path.exists():
            return None
        conn = queries.connect_for_retention(path)
        if not queries.has_segment_table(conn):
            conn.close()
            return None
        retention.finish_interrupted(conn, root / disk_ops.PICORDER_DIR)
        self._conn, self._conn_root = conn, root
        self._conn_generation = self._generation
        self._tracker.reset()
        return conn

    def _close_conn(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = self._conn_root = None

    def _rotate(self, conn, root: Path) -> retention.ApplyResult:
        now = now_us()
        pdir = root / disk_ops.PICORDER_DIR
        space = disk_ops.free_space(root)
        if not space:
            return retention.ApplyResult()
        rates = queries.stream_rates(conn, now)
        self._rate = sum(rates.values())
        self._rate_at = time.monotonic()
        self._read_floor_setting(self._rate_at)
        floor = self._floor(space["total_bytes"], self._rate)
        totals = self._tracker.totals(conn)
        lims = camera_limits(totals)
        # Free a little more than the floor, so that what is written until the next
        # free-space check cannot take the disk below the floor.
        self._headroom = int(self._rate * limits.FLOOR_HEADROOM_S)
        plan = retention.plan_rotation(
            queries.iter_oldest(conn), camera_bytes=totals, limits_by_camera=lims,
            free_bytes=space["free_bytes"], floor_bytes=floor + 2 * self._headroom, now_us=now)
        result = retention.apply_rotation(conn, pdir, plan.segments, cancel=self.cancel)
        self._tracker.forget(result.deleted)
        retention.prune_empty_dirs(pdir, result.deleted,
                                   datetime.now(timezone.utc).strftime("%Y/%m/%d"))
        if result.deleted:
            logger.info("retention deleted %d segments (%d bytes) from %s",
                        len(result.deleted), result.bytes, root)
        if not plan.floor_met and self.say("floor_not_met"):
            logger.warning("cannot reach the free-space floor of %d bytes on %s", floor, root)
        self._record(result, plan, _Pass(root, floor, rates, lims, totals))
        return result

    def _record(self, result: retention.ApplyResult, plan: retention.RotationPlan,
                seen: _Pass) -> None:
        space = disk_ops.free_space(seen.root) or {"free_bytes": 0, "total_bytes": 0}  # gone
        used = sum(seen.totals.values()) - result.bytes
        forecast = retention.predict_retention(seen.rates, seen.limits_by_camera, used_bytes=used,
                                               free_bytes=space["free_bytes"],
                                               floor_bytes=seen.floor)
        state = self.state
        state.last_run_utc_us = now_us()
        state.last_deleted, state.last_deleted_bytes = len(result.deleted), result.bytes
        state.total_deleted += len(result.deleted)
        state.floor_bytes, state.floor_met = seen.floor, plan.floor_met
        state.free_bytes, state.total_bytes = space["free_bytes"], space["total_bytes"]
        state.forecast = forecast.to_json()
        state.last_error = "; ".join(result.failed[:3]) or None
