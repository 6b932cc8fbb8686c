"""The storage's settings in config.db: adopted disks, the free-space floor, retention defaults.

Every function here reads or writes the open config.db; none opens it (the caller does:
the recorder at start, the panel's app factory, a CLI command).
"""

import json
import logging
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from recorder import config, retention
from recorder.storage.disk_ops import Marker

logger = logging.getLogger(__name__)

SETTING_BOX_ID = "box_id"
SETTING_DISKS = "storage_disks"
SETTING_ACTIVE = "storage_active"
SETTING_FLOOR = "storage_floor_bytes"
SETTING_DEFAULT_AGE = "default_max_age_days"  # written by the panel's retention form
SETTING_ALLOW_LOOP = "storage_allow_loop"     # "1": loop devices count as disks (tests, demo)
SETTING_STORAGE_MODE = "storage_mode"         # "disks": never record outside adopted disks
SETTING_RECORDINGS_DIR = "recordings_dir"     # a fixed recording directory (servers, tests)
ENV_ALLOW_LOOP = "PICORDER_ALLOW_LOOP"
ENV_STORAGE = "PICORDER_STORAGE"              # same as SETTING_STORAGE_MODE, for the unit
ENV_MOUNT_BASE = "PICORDER_MOUNT_BASE"        # tests mount below a temporary directory


@dataclass
class AdoptedEntry:
    """One adopted recording disk or directory, as kept in config.db."""

    kind: str                       # "disk" or "dir"
    disk_id: str                    # the marker's id
    root: str                       # mount point (disk) or the directory
    uuid: str | None = None         # filesystem UUID (disk)
    label: str | None = None
    adopted_utc_us: int = 0


def box_id() -> str:
    """This box's id, generated once and kept in config.db."""
    value = config.Setting.read(SETTING_BOX_ID)
    if not value:
        value = Marker.new("", None).disk_id
        config.Setting.write(SETTING_BOX_ID, value)
    return value


def load_entries() -> list[AdoptedEntry]:
    """The adopted disks and directories; none if the setting is damaged (logged)."""
    text = config.Setting.read(SETTING_DISKS, "[]")
    try:
        return [AdoptedEntry(**e) for e in json.loads(text)]
    except (ValueError, TypeError):
        logger.exception("the adopted disks setting is damaged; ignoring it")
        return []


def save_entries(entries: list[AdoptedEntry]) -> None:
    config.Setting.write(SETTING_DISKS, json.dumps([asdict(e) for e in entries]))


def active_disk_id() -> str | None:
    """The marker id of the disk or directory to record on."""
    return config.Setting.read(SETTING_ACTIVE)


def set_active(disk_id: str | None) -> None:
    """Record onto the adopted disk or directory with this marker id (None: onto none)."""
    if disk_id is None:
        config.Setting.delete().where(config.Setting.key == SETTING_ACTIVE).execute()
    else:
        config.Setting.write(SETTING_ACTIVE, disk_id)


def active_entry(entries: list[AdoptedEntry] | None = None) -> AdoptedEntry | None:
    """The adopted disk or directory to record on (among `entries`, if read already)."""
    active = active_disk_id()
    return next((e for e in (load_entries() if entries is None else entries)
                 if e.disk_id == active), None)


def configured_floor() -> int | None:
    value = config.Setting.read(SETTING_FLOOR)
    if value in (None, ""):
        return None
    try:
        return retention.check_floor(int(value))
    except (ValueError, retention.RetentionError):
        logger.error("ignoring the bad free-space floor setting %r", value)
        return None


def set_floor(floor_bytes: int | None) -> None:
    """Set (or with None clear) the free-space floor; refuses zero or negative."""
    if floor_bytes is None:
        config.Setting.delete().where(config.Setting.key == SETTING_FLOOR).execute()
        return
    config.Setting.write(SETTING_FLOOR, str(retention.check_floor(floor_bytes)))


def default_max_age_days() -> int | None:
    """The panel's default maximum age for cameras without their own."""
    value = config.Setting.read(SETTING_DEFAULT_AGE)
    try:
        days = int(value) if value not in (None, "") else None
        retention.CameraLimits(max_age_days=days)
    except (ValueError, retention.RetentionError):
        logger.error("ignoring the bad %s setting %r", SETTING_DEFAULT_AGE, value)
        return None
    return days


def camera_limits(recorded: Iterable[str] = ()) -> dict[str, retention.CameraLimits]:
    """Limits per camera; cameras no longer configured get the default maximum age."""
    default_age = default_max_age_days()
    result = {}
    for cam in config.Camera.select():
        try:
            result[cam.name] = retention.CameraLimits(cam.max_age_days or default_age,
                                                      cam.max_bytes, cam.min_days)
        except retention.RetentionError as exc:
            logger.error("camera %s: ignoring its retention limits: %s", cam.name, exc)
    for name in recorded:
        if name not in result and default_age:
            result[name] = retention.CameraLimits(max_age_days=default_age)
    return result


def disk_storage_wanted(entries: list[AdoptedEntry] | None = None) -> bool:
    """Use DiskStorage: something is adopted (among `entries`, if read already), or the
    box says so (the appliance always does)."""
    return (bool(load_entries() if entries is None else entries)
            or os.environ.get(ENV_STORAGE) == "disks"
            or config.Setting.read(SETTING_STORAGE_MODE) == "disks")


def loop_devices_allowed() -> bool:
    """Loop devices count as disks (tests, the demo): by the environment or config.db."""
    return (os.environ.get(ENV_ALLOW_LOOP) == "1"
            or config.Setting.read(SETTING_ALLOW_LOOP) == "1")


def recordings_dir() -> Path | None:
    """The fixed recording directory named in config.db, if any (servers, tests)."""
    value = config.Setting.read(SETTING_RECORDINGS_DIR)
    return Path(value).expanduser() if value else None


def recording_root_from_config() -> Path | None:
    """Where the recorder records, as config.db says (for whoever does not ask the recorder).

    The active adopted disk or directory; else None when adopted disks are wanted; else the
    fixed recording directory, if one is named. None: the recorder records nowhere.
    """
    entries = load_entries()
    entry = active_entry(entries)
    if entry is not None:
        return Path(entry.root)
    if disk_storage_wanted(entries):
        return None
    return recordings_dir()
