"""Where recordings go: the adopted disk or directory, its mounts and checks, and rotation.

- `disk_storage.py`: DiskStorage, the recording root on an adopted disk or directory
- `directory.py`: the Storage protocol and DirectoryStorage (a fixed directory)
- `disk_ops.py`: markers, formatting, mounting by filesystem UUID
- `udev.py`: block devices from udev, parsed into Drive records
- `disk_check.py`: whether a reported write error is the disk's fault
- `health.py`: SMART health of the recording disk
"""

from recorder.storage.directory import DirectoryStorage, Storage
from recorder.storage.disk_check import SYNC_SOURCE
from recorder.storage.disk_storage import (
    SETTING_DISKS, SETTING_FLOOR, STATE_MISSING, STATE_NO_DISK, STATE_RECORDING, DiskStorage,
    adopt_demo_directory, box_id, configured_root, disk_storage_wanted, load_entries,
    make_storage, set_floor,
)

__all__ = [
    "SETTING_DISKS", "SETTING_FLOOR", "STATE_MISSING", "STATE_NO_DISK", "STATE_RECORDING",
    "SYNC_SOURCE", "DirectoryStorage", "DiskStorage", "Storage", "adopt_demo_directory", "box_id",
    "configured_root", "disk_storage_wanted", "load_entries", "make_storage", "set_floor",
]
