"""Retention: decide which segments go (pure plan) and delete them crash-safely."""

import errno
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from threading import Event
from typing import NamedTuple

from recorder import limits, segfiles
from recorder.index.queries import (
    SegmentRef, camera_totals, delete_rows, has_segment_table, mark_deleting, marked_rows)
from recorder.paths import UnsafePath, inside

logger = logging.getLogger(__name__)

US = 1_000_000
DAY_US = 86_400 * US

REASON_AGE = "age"
REASON_SIZE = "size"
REASON_FLOOR = "floor"

class RetentionError(ValueError):
    """A bad retention limit (zero, negative or not a whole number)."""


def _check_limit(name: str, value) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise RetentionError(f"{name} must be a whole number, got {value!r}")
    if value <= 0:
        raise RetentionError(f"{name} must be greater than zero, got {value}")


@dataclass(frozen=True)
class CameraLimits:
    """One camera's retention limits; None means no limit of that kind."""

    max_age_days: int | None = None
    max_bytes: int | None = None
    min_days: int | None = None

    def __post_init__(self):
        _check_limit("max_age_days", self.max_age_days)
        _check_limit("max_bytes", self.max_bytes)
        _check_limit("min_days", self.min_days)


class Deletion(NamedTuple):
    segment: SegmentRef
    reason: str          # REASON_AGE, REASON_SIZE or REASON_FLOOR


@dataclass(frozen=True)
class RotationPlan:
    """What to delete, oldest first, and whether the limits will hold afterwards."""

    deletions: tuple[Deletion, ...]
    bytes_freed: int
    floor_met: bool
    sizes_met: bool
    scanned: int

    @property
    def segments(self) -> list[SegmentRef]:
        return [d.segment for d in self.deletions]


def check_floor(floor_bytes: int) -> int:
    """Validate a configured free-space floor (bytes > 0)."""
    if isinstance(floor_bytes, bool) or not isinstance(floor_bytes, int) or floor_bytes <= 0:
        raise RetentionError(f"the free-space floor must be a whole number of bytes "
                             f"greater than zero, got {floor_bytes!r}")
    return floor_bytes


def plan_rotation(candidates: Iterable[SegmentRef], *, camera_bytes: Mapping[str, int],
                  limits_by_camera: Mapping[str, CameraLimits], free_bytes: int,
                  floor_bytes: int, now_us: int,
                  protected: Collection[str] = frozenset()) -> RotationPlan:
    """Choose the segments to delete; `candidates` must come oldest first (start_us).

    A segment goes when it began more than its camera's max_age_days ago, when
    its camera is over max_bytes, or while free space is below the floor. The
    oldest goes first, and the walk stops as soon as every limit holds, so a
    lazily fetched candidate list is read only as far as needed. Paths in
    `protected` (segments being written) are never chosen.
    """
    over = {cam: camera_bytes.get(cam, 0) - lim.max_bytes
            for cam, lim in limits_by_camera.items() if lim.max_bytes is not None}
    cutoffs = {cam: now_us - lim.max_age_days * DAY_US
               for cam, lim in limits_by_camera.items() if lim.max_age_days is not None}
    last_cutoff = max(cutoffs.values(), default=None)
    need_free = max(0, floor_bytes - free_bytes)
    cameras_over = sum(1 for v in over.values() if v > 0)
    freed = 0
    scanned = 0
    deletions: list[Deletion] = []
    for seg in candidates:
        if (freed >= need_free and not cameras_over
                and (last_cutoff is None or seg.start_us >= last_cutoff)):
            break
        scanned += 1
        if seg.path in protected:
            continue
        reason = _reason(seg, cutoffs, over, freed < need_free)
        if reason is None:
            continue
        deletions.append(Deletion(seg, reason))
        freed += seg.bytes
        if seg.camera in over:
            left = over[seg.camera]
            over[seg.camera] = left - seg.bytes
            if left > 0 >= left - seg.bytes:
                cameras_over -= 1
    return RotationPlan(tuple(deletions), freed, freed >= need_free, not cameras_over, scanned)


def _reason(seg: SegmentRef, cutoffs: Mapping[str, int], over: Mapping[str, int],
            floor_short: bool) -> str | None:
    cutoff = cutoffs.get(seg.camera)
    if cutoff is not None and seg.start_us < cutoff:
        return REASON_AGE
    if over.get(seg.camera, 0) > 0:
        return REASON_SIZE
    if floor_short:
        return REASON_FLOOR
    return None


def default_floor(total_bytes: int, total_rate_bps: float) -> int:
    """The free-space floor: max(5 % of the disk, 1 h of bitrate, 2 GiB), at most half the disk."""
    floor = max(int(total_bytes * limits.FLOOR_FRACTION),
                int(total_rate_bps * limits.FLOOR_BITRATE_S),
                limits.FLOOR_MIN_BYTES)
    return min(floor, int(total_bytes * limits.FLOOR_MAX_FRACTION))


# ------------------------------------------------------------- predictions

@dataclass(frozen=True)
class CameraForecast:
    camera: str
    rate_bps: float
    days: float | None          # None: nothing recorded recently, no prediction
    limited_by: str | None      # "max_age_days", "max_bytes" or "disk"
    warning: str | None


@dataclass(frozen=True)
class Forecast:
    """Predicted retention at the current bitrate, for the disk and each camera."""

    total_rate_bps: float
    disk_days: float | None
    cameras: tuple[CameraForecast, ...] = field(default_factory=tuple)

    def to_json(self) -> dict:
        return {"total_rate_bps": round(self.total_rate_bps, 1),
                "disk_days": _round_days(self.disk_days),
                "disk_text": days_text(self.disk_days),
                "cameras": {c.camera: {"rate_bps": round(c.rate_bps, 1),
                                       "days": _round_days(c.days),
                                       "text": days_text(c.days),
                                       "limited_by": c.limited_by,
                                       "warning": c.warning} for c in self.cameras}}


def _round_days(days: float | None) -> float | None:
    return None if days is None else round(days, 2)


def days_text(days: float | None) -> str:
    """'about N days at the current bitrate' (or hours when short)."""
    if days is None:
        return "unknown (nothing recorded recently)"
    if days * 24 < 2:
        return f"about {days * 1440:.0f} minutes at the current bitrate"
    if days < 2:
        return f"about {days * 24:.0f} hours at the current bitrate"
    return f"about {days:.0f} days at the current bitrate"


def predict_retention(rates_bps: Mapping[str, float], limits_by_camera: Mapping[str, CameraLimits],
                      *, used_bytes: int, free_bytes: int, floor_bytes: int) -> Forecast:
    """How many days each camera and the whole disk will hold at the current bitrate."""
    total_rate = sum(rates_bps.values())
    usable = max(0, used_bytes + free_bytes - floor_bytes)
    disk_days = usable / total_rate / 86400 if total_rate > 0 else None
    cams = []
    for cam in sorted(set(rates_bps) | set(limits_by_camera)):
        rate = rates_bps.get(cam, 0.0)
        lim = limits_by_camera.get(cam, CameraLimits())
        cams.append(_camera_forecast(cam, rate, lim, disk_days))
    return Forecast(total_rate, disk_days, tuple(cams))


def _camera_forecast(cam: str, rate: float, lim: CameraLimits,
                     disk_days: float | None) -> CameraForecast:
    options = []
    if lim.max_age_days is not None:
        options.append((float(lim.max_age_days), "max_age_days"))
    if rate > 0 and lim.max_bytes is not None:
        options.append((lim.max_bytes / rate / 86400, "max_bytes"))
    if disk_days is not None and rate > 0:
        options.append((disk_days, "disk"))
    if rate <= 0 or not options:
        return CameraForecast(cam, rate, None, None, None)
    days, by = min(options)
    warning = None
    if lim.min_days is not None and days < lim.min_days:
        if by == "max_bytes":
            warning = (f"its size limit holds only {days_text(days)}, less than its "
                       f"minimum of {lim.min_days} days: raise max_bytes")
        else:
            warning = (f"the disk holds only {days_text(days)}, less than its "
                       f"minimum of {lim.min_days} days")
    return CameraForecast(cam, rate, days, by, warning)


class UsageTracker:
    """Bytes per camera on one index, counted once and then kept up incrementally."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._totals: dict[str, int] = {}
        self._last_id = 0
        self._rescanned = None

    def totals(self, conn: sqlite3.Connection) -> dict[str, int]:
        now = self._clock()
        if self._rescanned is None or now - self._rescanned >= limits.USAGE_RESCAN_S:
            self._totals, self._last_id = camera_totals(conn)
            self._rescanned = now
        else:
            new, self._last_id = camera_totals(conn, self._last_id)
            for cam, total in new.items():
                self._totals[cam] = self._totals.get(cam, 0) + total
        return dict(self._totals)

    def forget(self, deleted: Iterable[SegmentRef]) -> None:
        for seg in deleted:
            if seg.id <= self._last_id and seg.camera in self._totals:
                self._totals[seg.camera] -= seg.bytes

    def reset(self) -> None:
        self._rescanned = None


# ------------------------------------------------------------- the deed

@dataclass
class ApplyResult:
    deleted: list[SegmentRef] = field(default_factory=list)
    missing_files: int = 0
    refused: int = 0            # rows naming no segment of ours: row dropped, no file touched
    failed: list[str] = field(default_factory=list)   # paths left marked (unlink failed)
    cancelled: bool = False

    @property
    def bytes(self) -> int:
        return sum(s.bytes for s in self.deleted)


# errno values that mean the disk itself is failing: stop, leave the rest marked.
DISK_GONE_ERRNOS = frozenset({errno.EIO, errno.ENODEV, errno.ENXIO, errno.EROFS,
                              errno.ESTALE, errno.ENOTCONN})


def apply_rotation(conn: sqlite3.Connection, picorder_dir: Path, segments: list[SegmentRef], *,
                   batch: int = limits.RETENTION_BATCH, cancel: Event | None = None,
                   after_mark: Callable[[list[SegmentRef]], None] | None = None) -> ApplyResult:
    """Delete segments crash-safely: mark rows `deleting`, unlink files, delete rows.

    A crash after the mark leaves rows that finish_interrupted() completes at
    the next start; the panel never offers a marked row.
    """
    result = ApplyResult()
    for start in range(0, len(segments), batch):
        if cancel is not None and cancel.is_set():
            result.cancelled = True
            break
        chunk = segments[start:start + batch]
        mark_deleting(conn, chunk)
        if after_mark is not None:
            after_mark(chunk)
        done, stop = _unlink_all(picorder_dir, chunk, result)
        delete_rows(conn, done)
        result.deleted.extend(done)
        if stop:
            break
    return result


def _unlink_all(picorder_dir: Path, chunk: list[SegmentRef],
                result: ApplyResult) -> tuple[list[SegmentRef], bool]:
    """Unlink each file; fsync the directories so no unlink is undone by a power cut."""
    done: list[SegmentRef] = []
    dirs: set[Path] = set()
    for seg in chunk:
        path = picorder_dir / seg.path
        try:
            segfiles.unlink(picorder_dir, seg.path)
        except UnsafePath as exc:
            # The disk's index names something that is not one of our segments:
            # the row goes, nothing is deleted (docs/design.md decision 7).
            logger.error("index row %d not deleted from disk: %s", seg.id, exc)
            result.refused += 1
            done.append(seg)
            continue
        except FileNotFoundError:
            result.missing_files += 1
        except OSError as exc:
            logger.error("cannot delete %s: %s", path, exc.strerror)
            result.failed.append(seg.path)
            if exc.errno in DISK_GONE_ERRNOS:
                return done, True
            continue
        done.append(seg)
        dirs.add(path.parent)
    for directory in dirs:
        _fsync_dir(directory)
    return done, False


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def finish_interrupted(conn: sqlite3.Connection, picorder_dir: Path) -> int:
    """Complete deletions a crash interrupted (rows still marked `deleting`)."""
    if not has_segment_table(conn):
        return 0
    rows = marked_rows(conn)
    if not rows:
        return 0
    result = ApplyResult()
    done, _stop = _unlink_all(picorder_dir, rows, result)
    delete_rows(conn, done)
    logger.info("finished %d interrupted deletions in %s", len(done), picorder_dir)
    return len(done)


def prune_empty_dirs(picorder_dir: Path, segments: Iterable[SegmentRef], today: str) -> None:
    """Remove day/month/year directories emptied by retention, except today's and later."""
    days = {Path(s.path).parent for s in segments if segfiles.is_segment_path(s.path)}
    for day in sorted(days):
        if "/".join(day.parts[-3:]) >= today:
            continue
        for directory in (day, day.parent, day.parent.parent):
            try:
                inside(picorder_dir, *directory.parts).rmdir()
            except (OSError, UnsafePath):
                break
