"""Keep the segments being written durable: one syncfs(2) of the recording filesystem a period.

ffmpeg writes each fragment (at most limits.FRAGMENT_MAX_US of video) when it is
complete, but the kernel keeps it in the page cache for up to 30 s (ext4 with
delayed allocation, Debian's dirty-page defaults), so a power cut used to take the
last half minute of every camera. Once a period this thread asks the kernel to
write back and commit everything dirty on the recording filesystem: the open
segments, their directory entries and index.db's WAL. One syncfs covers every
stream with one journal commit and one cache flush, where an fdatasync per open
file would cost a commit per stream. A power cut then loses the fragment being
filled plus at most one period (README: "Power cuts").

The thread never touches a file by name, so nothing on the disk can point it
elsewhere; it checks that the root is still the filesystem it was given (an
unplugged disk leaves the empty mount point on the root filesystem behind), and
a disk that hangs blocks only this thread.
"""

import ctypes
import errno
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from recorder import limits

logger = logging.getLogger(__name__)

ENV_SYNC_S = "PICORDER_SYNC_S"      # seconds between syncs; 0 turns them off (today's kernel default)


def sync_period_s(environ: dict | None = None) -> float:
    """The sync period: $PICORDER_SYNC_S if it is a number >= 0, else limits.DURABLE_SYNC_S."""
    raw = (os.environ if environ is None else environ).get(ENV_SYNC_S)
    if raw is None or raw == "":
        return limits.DURABLE_SYNC_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:
        logger.error("%s=%r is not a number of seconds >= 0: using %.1f", ENV_SYNC_S, raw,
                     limits.DURABLE_SYNC_S)
        return limits.DURABLE_SYNC_S
    return value


def _libc_syncfs() -> Callable[[int], None] | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        func = libc.syncfs
    except (OSError, AttributeError):
        return None
    func.argtypes = [ctypes.c_int]
    func.restype = ctypes.c_int

    def syncfs(fd: int) -> None:
        if func(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
    return syncfs


@dataclass(frozen=True)
class SyncFailed:
    """Event for the main loop: syncing the recording filesystem failed (EIO, ...)."""

    root: Path
    errno_: int
    detail: str


@dataclass
class SyncStats:
    """What the thread did, for status and the benchmark."""

    syncs: int = 0
    failures: int = 0
    last_s: float = 0.0          # duration of the last sync
    max_s: float = 0.0           # longest sync since start


class Flusher:
    """A thread that syncs the current recording filesystem every `period_s`."""

    def __init__(self, emit: Callable[[object], None], *, period_s: float | None = None,
                 syncfs: Callable[[int], None] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self._emit = emit
        self.period_s = sync_period_s() if period_s is None else period_s
        self._syncfs = syncfs
        self._clock = clock
        self._root: tuple[Path, int] | None = None      # (directory, st_dev)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False
        self.stats = SyncStats()

    @property
    def enabled(self) -> bool:
        return self.period_s > 0

    def start(self) -> None:
        if not self.enabled:
            logger.warning("the recording disk is not synced (%s=0): a power cut can lose "
                           "up to 30 s of video", ENV_SYNC_S)
            return
        if self._syncfs is None:
            self._syncfs = _libc_syncfs()
        if self._syncfs is None:
            logger.error("syncfs() is not available: a power cut can lose up to 30 s of video")
            return
        self._thread = threading.Thread(target=self._loop, name="durability", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        """Stop the thread; a sync stuck on a hung disk is left behind (daemon thread)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def set_root(self, root: Path | None, dev: int | None = None) -> None:
        """Sync the filesystem `dev` holding directory `root` from now on (None: nothing).

        `dev` is the st_dev the caller saw when it opened the root (no I/O here).
        """
        entry = (root, dev) if root is not None and dev is not None else None
        with self._lock:
            self._root = entry
            self._failing = False

    def sync_once(self) -> bool:
        """Sync the current root now; False if there is none or it failed."""
        with self._lock:
            entry = self._root
        if entry is None:
            return False
        root, dev = entry
        try:
            fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            logger.debug("cannot open %s to sync it: %s", root, exc)
            return False
        try:
            if os.fstat(fd).st_dev != dev:
                return False                # unmounted: the mount point is on another fs
            started = self._clock()
            self._syncfs(fd)
        except OSError as exc:
            self._failed(root, exc)
            return False
        finally:
            os.close(fd)
        took = self._clock() - started
        self.stats.syncs += 1
        self.stats.last_s = took
        self.stats.max_s = max(self.stats.max_s, took)
        if took > max(1.0, 4 * self.period_s):
            logger.warning("syncing %s took %.1f s (slow or busy disk)", root, took)
        self._failing = False
        return True

    def _failed(self, root: Path, exc: OSError) -> None:
        self.stats.failures += 1
        if self._failing:
            return                          # reported once until a sync succeeds again
        self._failing = True
        logger.error("cannot sync the recordings in %s: %s", root, exc.strerror or exc)
        self._emit(SyncFailed(root, exc.errno or errno.EIO, f"syncing {root}: {exc}"))

    def _loop(self) -> None:
        next_at = self._clock()
        while not self._stop.is_set():
            self.sync_once()
            next_at += self.period_s
            now = self._clock()
            if next_at < now:               # a slow sync: start the next period from now
                next_at = now
            self._stop.wait(next_at - now)
