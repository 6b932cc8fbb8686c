"""The configuration backup: the document the system page offers, its checks, and restoring it."""

import json
from datetime import datetime, timezone

from recorder import __version__, config
from recorder.accounts import ROLES, User, validate_user
from recorder.config import Camera, ConfigError, Setting, validate_camera

BACKUP_FORMAT = "picorder-config-backup"
BACKUP_VERSION = 1


def document() -> dict:
    """Cameras (with their passwords), users (hashed passwords) and settings."""
    return {
        "format": BACKUP_FORMAT, "version": BACKUP_VERSION, "picorder": __version__,
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cameras": [{**{k: v for k, v in c.to_public().items() if k != "has_password"},
                     "password": c.password} for c in Camera.select().order_by(Camera.name)],
        "users": [{"username": u.username, "role": u.role, "password_hash": u.password_hash}
                  for u in User.select().order_by(User.username)],
        "settings": {s.key: s.value for s in Setting.select()},
    }


def backup_camera_fields(cam: dict) -> dict:
    """A camera of the backup as save_camera takes it (an empty display name: the name)."""
    return {k: v for k, v in cam.items() if k != "display_name" or v}


def parse_backup(raw: bytes) -> tuple[dict | None, str | None]:
    """Read and check a backup file; return (document, error)."""
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None, "this is not a picorder backup (not JSON)"
    if not isinstance(doc, dict) or doc.get("format") != BACKUP_FORMAT:
        return None, "this is not a picorder backup"
    if doc.get("version") != BACKUP_VERSION:
        return None, f"backup version {doc.get('version')!r} is not supported"
    cams, users, settings = doc.get("cameras"), doc.get("users"), doc.get("settings")
    if not isinstance(cams, list) or not isinstance(users, list) or not isinstance(settings, dict):
        return None, "the backup is incomplete (cameras, users or settings missing)"
    for cam in cams:
        if not isinstance(cam, dict):
            return None, "a camera entry is malformed"
        try:
            validate_camera(backup_camera_fields(cam))
        except ConfigError as exc:
            return None, f"camera {cam.get('name')!r}: {exc}"
    for user in users:
        if (not isinstance(user, dict) or not isinstance(user.get("username"), str)
                or user.get("role") not in ROLES
                or not isinstance(user.get("password_hash"), str)):
            return None, "a user entry is malformed"
        problem = validate_user(user["username"], None, user["role"]).get("username")
        if problem:
            return None, f"user {user['username']!r}: {problem}"
    if len({u["username"] for u in users}) != len(users):
        return None, "a user name appears twice in the backup"
    if not any(u["role"] == "admin" for u in users):
        return None, "the backup has no admin user; restoring it would lock you out"
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in settings.items()):
        return None, "a setting is malformed"
    return doc, None


def restore(doc: dict) -> None:
    """Replace every camera, user and setting by those of a checked backup (parse_backup),
    all or nothing: ConfigError (two cameras of one name) leaves config.db as it was."""
    with config.db.atomic():
        Camera.delete().execute()
        for cam in doc["cameras"]:
            config.save_camera(backup_camera_fields(cam))
        User.delete().execute()
        for user in doc["users"]:
            User.create(username=user["username"], role=user["role"],
                        password_hash=user["password_hash"])
        Setting.delete().execute()
        for key, value in doc["settings"].items():
            Setting.write(key, value)
