"""Whether the recording disk failed: a reported write error is a suspicion until the disk shows it.

docs/design.md decision 7: a fault of one camera stays that camera's. A write error that ffmpeg
or the indexer reports proves nothing by itself (a camera whose stream the MP4
muxer refused once looked like one, and stopped every camera). So a report only
starts a check, run off the main loop while every stream keeps recording:

- the kernel's view: the recording root can still be reached, its filesystem is
  not read-only (ext4 remounts itself read-only when it finds errors), its block
  device still exists and is not offline;
- a write-and-fsync probe of a small file on the disk, with a time limit (a disk
  that does not answer has failed as surely as one that answers EIO);
- the kernel's own report: syncfs of the recording filesystem (recorder.durability,
  source "sync") failing with EIO means writing data back to the disk failed.

The disk is declared failed only when one of these shows the fault (judge()).
When they pass, a report from one stream is not a disk fault; reports
from more than one stream keep the suspicion open, and the disk is checked again
while they keep coming.
"""

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

PROBE_NAME = ".picorder-disk-check"
SYNC_SOURCE = "sync"            # who reports recorder.durability's syncfs failures
NOSPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})   # a full disk still answers


@dataclass(frozen=True)
class DiskEvidence:
    """What one check found out about the recording disk."""

    kernel_problem: str | None      # None: the kernel sees nothing wrong
    probe_error: str | None         # None: the write-and-fsync probe passed
    sources: tuple[str, ...]        # who reported write errors within the window
    writeback_failed: bool = False  # syncfs said EIO within the window


@dataclass(frozen=True)
class Verdict:
    failed: bool
    reason: str
    recheck: bool = False           # not failed, but check again while reports come


def judge(evidence: DiskEvidence) -> Verdict:
    """Failed only on what the disk itself shows; several reporters keep the suspicion open."""
    if evidence.kernel_problem:
        return Verdict(True, evidence.kernel_problem)
    if evidence.writeback_failed:
        return Verdict(True, "the kernel could not write recorded data back to the disk "
                             "(syncfs: Input/output error)")
    if evidence.probe_error:
        return Verdict(True, f"the disk failed a write check: {evidence.probe_error}")
    who = ", ".join(evidence.sources) or "a stream"
    if len(evidence.sources) >= limits.DISK_SUSPECT_SOURCES:
        return Verdict(False, f"write errors from {who}, but the disk passed its check: "
                              "checking it again while they continue", recheck=True)
    return Verdict(False, f"write error from {who}, but the disk passed its check: "
                          "not a disk fault")


def probe_write(root: Path) -> str | None:
    """Write, fsync and remove a small file below root; None if the disk did all of it."""
    directory = root / "picorder"
    path = directory / PROBE_NAME
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600)
        try:
            os.write(fd, b"\0" * limits.DISK_PROBE_BYTES)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.unlink(path)
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        if exc.errno in NOSPACE_ERRNOS:
            return None
        return f"{exc.strerror} ({errno.errorcode.get(exc.errno, exc.errno)})"
    return None


def kernel_view(root: Path, devpath: str | None, sys_root: Path = Path("/sys")) -> str | None:
    """What the kernel says is wrong with the recording root and its device, or None."""
    try:
        st = os.statvfs(root)
    except OSError as exc:
        return f"{root} cannot be reached: {exc.strerror}"
    if st.f_flag & os.ST_RDONLY:
        return "the kernel made the disk's filesystem read-only (it found errors on it)"
    if devpath:
        node = sys_root / devpath.lstrip("/")
        if not node.exists():
            return "the kernel no longer has the disk's device"
        # SCSI/USB disks: device/state is "running" unless the kernel took the disk offline
        # (a partition's lives in its disk's directory).
        for directory in (node, node.parent):
            state_file = directory / "device" / "state"
            try:
                state = state_file.read_text().strip()
            except OSError:
                continue
            if state != "running":
                return f"the kernel reports the disk's device as {state}"
            break
    return None


@dataclass(frozen=True)
class DiskCheckDone:
    """A check's evidence, put on the service queue for the storage's handle()."""

    root: Path
    evidence: DiskEvidence


class DiskCheck:
    """Write-error reports and the checks they start: one at a time, on a thread of its own."""

    def __init__(self, enqueue: Callable[[object], None], *,
                 probe: Callable[[Path], str | None] = probe_write,
                 kernel: Callable[[Path, str | None], str | None] = kernel_view,
                 timeout_s: float = limits.DISK_PROBE_TIMEOUT_S,
                 clock: Callable[[], float] = time.monotonic):
        self.enqueue = enqueue
        self.probe = probe
        self.kernel = kernel
        self.timeout_s = timeout_s
        self.clock = clock
        self._lock = threading.Lock()
        self._reports: dict[str, float] = {}
        self._writeback_failed_at: float | None = None
        self._running = False

    def report(self, source: str, errno_: int = errno.EIO) -> None:
        """Note a write error reported by `source` (a stream's key, "index" or "sync")."""
        with self._lock:
            now = self.clock()
            self._reports[source or "unknown"] = now
            if source == SYNC_SOURCE and errno_ == errno.EIO:
                self._writeback_failed_at = now

    def writeback_failed(self) -> bool:
        """syncfs failed with EIO within the window."""
        with self._lock:
            at = self._writeback_failed_at
            return at is not None and at >= self.clock() - limits.DISK_REPORT_WINDOW_S

    def sources(self) -> tuple[str, ...]:
        """Who reported write errors within the window, in order."""
        with self._lock:
            horizon = self.clock() - limits.DISK_REPORT_WINDOW_S
            self._reports = {k: t for k, t in self._reports.items() if t >= horizon}
            return tuple(sorted(self._reports))

    @property
    def running(self) -> bool:
        with self._lock:
            return self._running

    def start(self, root: Path, devpath: str | None) -> bool:
        """Check the disk at root now, unless a check runs already; True if one started."""
        with self._lock:
            if self._running:
                return False
            self._running = True
        threading.Thread(target=self._run, args=(root, devpath), name="disk-check",
                         daemon=True).start()
        return True

    def _run(self, root: Path, devpath: str | None) -> None:
        try:
            evidence = DiskEvidence(self._kernel(root, devpath), self._probe(root), self.sources(),
                                    self.writeback_failed())
        finally:
            with self._lock:
                self._running = False
        self.enqueue(DiskCheckDone(root, evidence))

    def _kernel(self, root: Path, devpath: str | None) -> str | None:
        try:
            return self.kernel(root, devpath)
        except OSError as exc:
            logger.exception("asking the kernel about %s failed", root)
            return f"the kernel's view of the disk could not be read: {exc.strerror}"

    def _probe(self, root: Path) -> str | None:
        """The probe, bounded: a write that hangs past the limit counts as failed."""
        result: list[str | None] = []
        worker = threading.Thread(target=lambda: result.append(self.probe(root)),
                                  name="disk-probe", daemon=True)
        worker.start()
        worker.join(self.timeout_s)
        if not result:
            return f"a write did not complete within {self.timeout_s:g} s"
        return result[0]
