"""The Storage seam between the recorder service and where recordings go.

The service only talks to a Storage:

    start(enqueue)        begin watching; put events on the service queue
    handle(event) -> bool the main loop hands back each event the storage
                          enqueued; True when recording_root() changed
    recording_root()      where to record now (R; segments go below R/picorder),
                          None -> every stream stops with problem "disk missing"
    state() -> dict       merged into status["storage"]
    report_io_error(errno_, detail, source)   ffmpeg or the indexer (source: the stream's
                          key, or "index") hit ENOSPC/EIO/EROFS: proof of nothing until
                          the disk itself shows a fault (disk_check.py)
    control_commands()    extra control-socket commands (disk_list, disk_adopt ...)
    stop()

DirectoryStorage (directory.py) records into a fixed directory; DiskStorage
(disk_storage.py: adopted disks, udev, retention) onto adopted disks and directories.
Which one the service gets is decided by disk_storage.make_storage().
"""

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

STATE_RECORDING = "recording"
STATE_MISSING = "disk missing"
STATE_NO_DISK = "no disk"
STATE_ERROR = "disk error"


class Storage(Protocol):
    def start(self, enqueue: Callable[[object], None]) -> None: ...
    def handle(self, event: object) -> bool: ...
    def recording_root(self) -> Path | None: ...
    def state(self) -> dict: ...
    def report_io_error(self, errno_: int, detail: str, source: str = "") -> None: ...
    def control_commands(self) -> dict[str, Callable]: ...
    def stop(self) -> None: ...
