"""Disk and retention forms shared by the setup wizard and the storage page."""

import logging

from pathlib import Path

from flask import current_app

from recorder import config
from recorder.config import Camera, Setting
from recorder.paths import DataPaths
from recorder.storage import SETTING_FLOOR
from webpanel.auth import for_role
from webpanel.inputs import form_number
from webpanel.recorder_client import recorder_call, recorder_status, reload_best_effort
from webpanel.views.camera_form import GIB, gib_to_bytes

logger = logging.getLogger(__name__)

FLOOR_KEY = SETTING_FLOOR                  # read by the storage part's retention
DEFAULT_AGE_KEY = "default_max_age_days"   # applied to cameras without their own maximum age
DISK_ACTIONS = ("adopt", "adopt_dir", "format", "eject")
MAX_DAYS = 36500


def list_disks() -> tuple[dict, str | None]:
    """The recorder's disk_list: {"drives": [...], "adopted": [...]}, or ({}, error)."""
    result, error = recorder_call("disk_list")
    if error or not isinstance(result, dict):
        return {"drives": [], "adopted": []}, error or "the recorder gave no disk list"
    return result, None


def disk_context() -> dict:
    listing, disk_error = list_disks()
    status, status_error = recorder_status()
    listing = for_role(listing or {})
    storage = dict(for_role(dict(status.storage))) if status else {}
    retention = storage.get("retention") or {}
    return {"drives": listing.get("drives") or [], "adopted": listing.get("adopted") or [],
            "disk_error": disk_error or status_error, "storage": storage,
            "retention_state": retention, "forecast": retention.get("forecast") or {},
            "suggested_dir": str(DataPaths(Path(current_app.config["DATA_DIR"]))
                                 .default_recordings)}


def handle_disk_form(form) -> tuple[str, dict]:
    """Adopt, adopt a directory, format or eject; return (success message, field errors)."""
    action = form.get("action")
    target = (form.get("target") or "").strip()
    if action not in DISK_ACTIONS:
        return "", {"action": "choose adopt, format or eject"}
    if action == "adopt_dir":
        return adopt_directory(form)
    if not target:
        return "", {"target": "choose a disk"}
    if action == "format":
        typed = (form.get("confirm_device") or "").strip()
        if typed != target:
            return "", {"confirm_device": f"type the device name {target} exactly to confirm; "
                                          "formatting erases everything on it"}
        _, error = recorder_call("disk_format", device=target, confirm=typed)
        return (f"{target} was formatted; adopt it to record onto it.",
                {"target": error} if error else {})
    if action == "adopt":
        _, error = recorder_call("disk_adopt", uuid=target)
        return (f"The disk {target} is now the recording disk.", {"target": error} if error else {})
    _, error = recorder_call("disk_eject", uuid=target)
    return (f"The disk {target} was ejected; it is safe to unplug.",
            {"target": error} if error else {})


def adopt_directory(form) -> tuple[str, dict]:
    path = (form.get("path") or "").strip()
    if not path:
        return "", {"path": "enter the directory's full path"}
    if not path.startswith("/") or any(ord(c) < 32 for c in path) or len(path) > 4096:
        return "", {"path": "enter a full path starting with /"}
    allow = form.get("allow_root_device") == "1"
    _, error = recorder_call("disk_adopt_dir", path=path, allow_root_device=allow)
    if error:
        return "", {"path": error}
    return f"The directory {path} is now the recording root.", {}


# ------------------------------------------------------------------ retention

def _days(text: str, key: str, errors: dict) -> int | None:
    return form_number(text, key, errors, int, "must be a whole number of days",
                       lambda v: 0 < v <= MAX_DAYS, f"must be between 1 and {MAX_DAYS} days")


def retention_form_values() -> dict:
    floor = Setting.read(FLOOR_KEY)
    return {"floor_gb": f"{int(floor) / GIB:g}" if floor else "",
            "default_max_age_days": Setting.read(DEFAULT_AGE_KEY) or ""}


def retention_context() -> dict:
    status, _ = recorder_status()
    storage = status.storage if status else {}
    return {"storage": storage, "forecast": (storage.get("retention") or {}).get("forecast") or {}}


def save_retention_defaults(form) -> dict:
    """Store the free-space floor and the default maximum age; nothing on any error."""
    errors: dict[str, str] = {}
    floor = gib_to_bytes(form.get("floor_gb"), errors, key="floor_gb")
    days = _days(form.get("default_max_age_days"), "default_max_age_days", errors)
    if errors:
        return errors
    with config.db.atomic():
        if floor is None:
            Setting.delete().where(Setting.key == FLOOR_KEY).execute()
        else:
            Setting.write(FLOOR_KEY, str(floor))
        if days is None:
            Setting.delete().where(Setting.key == DEFAULT_AGE_KEY).execute()
        else:
            Setting.write(DEFAULT_AGE_KEY, str(days))
            Camera.update(max_age_days=days).where(Camera.max_age_days.is_null()).execute()
    reload_best_effort()
    return {}


def save_camera_retention(cam: Camera, form) -> dict:
    """Per-camera maximum age, maximum size and minimum days from the storage page."""
    errors: dict[str, str] = {}
    age = _days(form.get("max_age_days"), "max_age_days", errors)
    min_days = _days(form.get("min_days"), "min_days", errors)
    max_bytes = gib_to_bytes(form.get("max_gb"), errors)
    if not errors and age and min_days and min_days > age:
        errors["min_days"] = "cannot be more than the maximum age"
    if errors:
        return errors
    cam.max_age_days, cam.min_days, cam.max_bytes = age, min_days, max_bytes
    cam.save()
    reload_best_effort()
    return {}
