"""DirectoryStorage: record into one fixed directory, checked every few seconds.

The trivial Storage (protocol.py): the directory config.db names (servers, tests), there
and writable, or not.
"""

import errno
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from recorder import limits
from recorder.storage.protocol import STATE_ERROR, STATE_MISSING, STATE_NO_DISK, STATE_RECORDING

logger = logging.getLogger(__name__)

WRITE_PROBE = ".picorder-write-check"


@dataclass(frozen=True)
class DirectoryCheck:
    """Put on the queue by DirectoryStorage's watcher when the directory's usability changed."""

    usable: bool
    state: str
    detail: str | None


def check_directory(root: Path, *, create: bool) -> DirectoryCheck:
    """Is `root` there and writable? (Tried by writing: root ignores permission bits.)"""
    if create:
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            return DirectoryCheck(False, STATE_ERROR,
                                  f"cannot create the recording directory {root}: {exc.strerror}")
    if not root.is_dir():
        return DirectoryCheck(False, STATE_MISSING,
                              f"the recording directory {root} does not exist (is the disk mounted?)")
    probe = root / WRITE_PROBE
    try:
        (root / "picorder").mkdir(exist_ok=True)
        # A file of its own (O_EXCL, no link followed): whoever else writes the directory
        # could have planted a link at the probe's name for root to truncate through.
        probe.unlink(missing_ok=True)       # a link itself, never its target
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        os.close(fd)
        probe.unlink()
    except OSError as exc:
        what = "read-only" if exc.errno == errno.EROFS else f"not writable ({exc.strerror})"
        return DirectoryCheck(False, STATE_ERROR, f"the recording directory {root} is {what}")
    return DirectoryCheck(True, STATE_RECORDING, None)


class DirectoryStorage:
    """Record into one fixed directory (demo, servers, and until a disk is adopted)."""

    def __init__(self, root: Path, *, create: bool = False,
                 interval_s: float = limits.STORAGE_CHECK_S):
        self.root = Path(root)
        self.create = create
        self.interval_s = interval_s
        self._check = DirectoryCheck(False, STATE_NO_DISK, "not checked yet")
        self._enqueue: Callable[[object], None] = lambda event: None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._io_errors: list[str] = []

    def start(self, enqueue: Callable[[object], None]) -> None:
        self._enqueue = enqueue
        self._apply(check_directory(self.root, create=self.create))
        self._thread = threading.Thread(target=self._watch, name="storage-dir", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        last = self._check
        while not self._stop.wait(self.interval_s):
            try:
                now = check_directory(self.root, create=self.create)
            except OSError:
                logger.exception("checking %s failed", self.root)
                continue
            if now != last:
                last = now
                self._enqueue(now)

    def _apply(self, check: DirectoryCheck) -> bool:
        was = self.recording_root()
        self._check = check
        if check.usable:
            logger.info("recording into %s", self.root)
        else:
            logger.error("%s", check.detail)
        return was != self.recording_root()

    def handle(self, event: object) -> bool:
        if isinstance(event, DirectoryCheck):
            return self._apply(event)
        return False

    def recording_root(self) -> Path | None:
        return self.root if self._check.usable else None

    def state(self) -> dict:
        return {"state": self._check.state,
                "root": str(self.root) if self._check.usable else None,
                "directory": str(self.root),
                "detail": self._check.detail,
                "io_errors": list(self._io_errors)}

    def report_io_error(self, errno_: int, detail: str, source: str = "") -> None:
        name = errno.errorcode.get(errno_, str(errno_))
        logger.error("I/O error in %s (%s): %s", self.root, name, detail)
        self._io_errors = (self._io_errors + [f"{name}: {detail[:200]}"])[-10:]
        # Look again now rather than at the next interval.
        self._enqueue(check_directory(self.root, create=self.create))

    def control_commands(self) -> dict[str, Callable]:
        return {}

    def stop(self) -> None:
        self._stop.set()
