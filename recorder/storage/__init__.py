"""Where recordings go: the adopted disk or directory, its mounts and checks, and rotation.

- `protocol.py`: the Storage seam the recorder service talks to, and its states
- `disk_storage.py`: DiskStorage (adopted disks and directories), and make_storage()
- `rotation.py`: RotationJob, retention's scheduled passes on the recording root
- `directory.py`: DirectoryStorage, a fixed directory
- `settings.py`: what config.db holds for storage, and recording_root_from_config()
- `disk_ops.py`: markers, formatting, mounting by filesystem UUID
- `udev.py`: block devices from udev, parsed into Drive records
- `disk_check.py`: whether a reported write error is the disk's fault
- `health.py`: SMART health of the recording disk
"""

from recorder.storage.directory import DirectoryStorage
from recorder.storage.disk_check import SYNC_SOURCE
from recorder.storage.disk_storage import (
    DiskStorage, adopt_demo_directory, make_disk_storage, make_storage,
)
from recorder.storage.protocol import STATE_MISSING, STATE_NO_DISK, STATE_RECORDING, Storage
from recorder.storage.settings import (
    SETTING_DISKS, SETTING_FLOOR, box_id, disk_storage_wanted, load_entries,
    recording_root_from_config, set_floor,
)

__all__ = [
    "SETTING_DISKS", "SETTING_FLOOR", "STATE_MISSING", "STATE_NO_DISK", "STATE_RECORDING",
    "SYNC_SOURCE", "DirectoryStorage", "DiskStorage", "Storage", "adopt_demo_directory", "box_id",
    "disk_storage_wanted", "load_entries", "make_disk_storage", "make_storage",
    "recording_root_from_config", "set_floor",
]
