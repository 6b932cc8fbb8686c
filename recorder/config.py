"""The box's configuration database (config.db): cameras, every table's list, and opening it."""

import logging
import os
import re
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit, unquote

from peewee import (
    BooleanField,
    CharField,
    DateTimeField,
    IntegerField,
    IntegrityError,
    SQL,
    SqliteDatabase,
    TextField,
)

from recorder import accounts, limits
# db, BaseModel and Setting are config.db's own, kept below the account tables; other
# modules reach them here (config.db, config.Setting).
from recorder.configdb import BaseModel, Setting, db
from recorder.db import migrate, open_sqlite

logger = logging.getLogger(__name__)

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9_-]{0,62})$")
URL_SCHEMES = ("rtsp", "rtsps", "http", "https")
TRANSPORTS = ("tcp", "udp")
STREAMS = ("main", "sub")


class ConfigError(ValueError):
    """Bad configuration input; `errors` maps each field to one clear message."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))


class CameraNameTaken(ConfigError):
    """A camera of this name exists already (the API answers 409 Conflict)."""

    def __init__(self, name: str):
        super().__init__({"name": f"a camera named {name!r} already exists"})


class Camera(BaseModel):
    """One camera, with a main stream and an optional sub stream."""

    name = CharField(unique=True)
    display_name = CharField(default="")
    main_url = TextField()
    sub_url = TextField(null=True)
    username = CharField(null=True)
    password = CharField(null=True)
    transport = CharField(default="tcp")
    enabled = BooleanField(default=True)
    # Retention (storage issue): None means "no limit of this kind".
    max_age_days = IntegerField(null=True)
    max_bytes = IntegerField(null=True)
    min_days = IntegerField(null=True)
    # Activity on the timeline (recorder.activity); DEFAULT 1 in the table too, as
    # migration 2 adds it, so a row written without it (by hand, an old tool) has it on.
    activity = BooleanField(default=True, constraints=[SQL("DEFAULT 1")])
    updated_at = DateTimeField(null=True)

    def stream_urls(self) -> dict[str, str]:
        """Stream name -> URL without credentials."""
        urls = {"main": self.main_url}
        if self.sub_url:
            urls["sub"] = self.sub_url
        return urls

    def problem(self) -> str | None:
        """Why this row must not be used, or None.

        The panel's user writes config.db and the root recorder reads it back, so
        the checks of validate_camera run again on every row it uses (docs/design.md
        decision 7).
        """
        if not isinstance(self.name, str) or not SLUG_RE.fullmatch(self.name):
            return "the name is not a camera name (lower-case letters, digits, '-', '_')"
        for stream, url in self.stream_urls().items():
            problem = check_url(url)
            if problem:
                return f"{stream} URL: {problem}"
        if (self.transport or "tcp") not in TRANSPORTS:
            return "the transport must be 'tcp' or 'udp'"
        for label, value in (("user name", self.username), ("password", self.password)):
            if value is not None and (not isinstance(value, str) or len(value) > 256
                                      or any(ord(c) < 32 for c in value)):
                return (f"the {label} is not text of at most 256 characters without "
                        "control characters")
        return None

    def to_public(self) -> dict:
        """A JSON-safe view that never carries the password."""
        return {
            "name": self.name,
            "display_name": self.display_name or self.name,
            "main_url": self.main_url,
            "sub_url": self.sub_url,
            "username": self.username,
            "has_password": bool(self.password),
            "transport": self.transport,
            "enabled": self.enabled,
            "activity": self.activity,
            "max_age_days": self.max_age_days,
            "max_bytes": self.max_bytes,
            "min_days": self.min_days,
        }

    @classmethod
    def get_by_name(cls, name: str) -> "Camera":
        """Return the camera or raise KeyError with a clear message."""
        cam = cls.get_or_none(cls.name == name)
        if cam is None:
            raise KeyError(f"no camera named {name!r}")
        return cam


# Every table of config.db, in one place.
ACCOUNT_MODELS = (accounts.User, accounts.ApiToken, accounts.LoginAttempt,
                  accounts.SessionGeneration)
CONFIG_MODELS = (Camera, Setting, *ACCOUNT_MODELS)


def _m1_initial(database):
    database.create_tables(CONFIG_MODELS, safe=True)


def _m2_camera_activity(database):
    columns = {c.name for c in database.get_columns("camera")}
    if "activity" not in columns:       # a v1 database created before the field existed
        database.execute_sql("ALTER TABLE camera ADD COLUMN activity INTEGER NOT NULL DEFAULT 1")


def _m3_account_tables(database):
    # A config.db that only the CLI or the recorder opened before had no account tables:
    # the panel added them when it first opened the file.
    database.create_tables(ACCOUNT_MODELS, safe=True)


MIGRATIONS = [_m1_initial, _m2_camera_activity, _m3_account_tables]


def open_config(path: Path) -> SqliteDatabase:
    """Open (creating if needed) config.db at `path`, private to its owner."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fresh = not path.exists()
    old_umask = os.umask(0o077)
    try:
        open_sqlite(db, path)
    finally:
        os.umask(old_umask)
    if fresh:
        os.chmod(path, 0o600)
    migrate(db, path, MIGRATIONS)
    return db


def data_version() -> int:
    """SQLite's data_version: changes whenever another connection commits."""
    return db.execute_sql("PRAGMA data_version").fetchone()[0]


# ---------------------------------------------------------------- validation

def split_credentials(url: str) -> tuple[str, str | None, str | None]:
    """Return (url without userinfo, user, password)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None, None
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    clean = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    user = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    return clean, user, password


def check_url(url: str | None) -> str | None:
    """Return an error message for a bad stream URL, or None."""
    if not url or not isinstance(url, str):
        return "a stream URL is required"
    if any(c.isspace() for c in url) or any(ord(c) < 32 for c in url):
        return "the URL must not contain spaces or control characters"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "the URL is malformed (check the host and port)"
    if parts.scheme.lower() not in URL_SCHEMES:
        return f"the URL must start with one of {', '.join(s + '://' for s in URL_SCHEMES)}"
    if not parts.hostname:
        return "the URL has no host"
    if port is not None and not 0 < port < 65536:
        return "the port must be between 1 and 65535"
    if len(url) > 2048:
        return "the URL is too long"
    return None


# Bounds of the retention fields: SQLite's INTEGER, and days a disk could never hold.
RETENTION_MAXIMUM = {"max_bytes": 2**63 - 1, "max_age_days": limits.RETENTION_DAYS_MAX,
                     "min_days": limits.RETENTION_DAYS_MAX}


def _positive_int(value, name: str, errors: dict, maximum: int) -> int | None:
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):     # OverflowError: Infinity
        errors[name] = "must be a whole number"
        return None
    if number > maximum:
        errors[name] = f"must be at most {maximum}"
        return None
    if isinstance(value, float) and value != number:
        errors[name] = "must be a whole number"
        return None
    if number <= 0:
        errors[name] = "must be greater than zero"
        return None
    return number


def validate_camera(data: dict, *, partial: bool = False) -> dict:
    """Check user-given camera fields; return clean values or raise ConfigError.

    Credentials embedded in a URL are moved into username/password so that
    URLs are stored, shown and logged without them.
    """
    errors: dict[str, str] = {}
    clean: dict = {}
    known = {"name", "display_name", "main_url", "sub_url", "username", "password",
             "transport", "enabled", "activity", "max_age_days", "max_bytes", "min_days"}
    for key in data:
        if key not in known:
            errors[key] = "unknown field"
    if "name" in data or not partial:
        name = data.get("name")
        if not isinstance(name, str) or not SLUG_RE.fullmatch(name):
            errors["name"] = ("the name must be 1-63 characters of lower-case letters, "
                              "digits, '-' or '_', starting with a letter or digit")
        else:
            clean["name"] = name
    for key in ("main_url", "sub_url"):
        if key not in data and (partial or key == "sub_url"):
            continue
        value = data.get(key)
        if key == "sub_url" and (value is None or value == ""):
            clean[key] = None
            continue
        problem = check_url(value)
        if problem:
            errors[key] = problem
            continue
        url, user, password = split_credentials(value)
        clean[key] = url
        if user is not None and "username" not in data:
            clean["username"] = user
        if password is not None and "password" not in data:
            clean["password"] = password
    for key in ("username", "password"):
        if key in data:
            value = data[key]
            if value is not None and not isinstance(value, str):
                errors[key] = "must be text"
            elif value is not None and any(ord(c) < 32 for c in value):
                errors[key] = "must not contain control characters"
            elif value is not None and len(value) > 256:
                errors[key] = "is too long"
            else:
                clean[key] = value or None
    if "display_name" in data:
        value = data["display_name"]
        if value is not None and (not isinstance(value, str) or len(value) > 100):
            errors["display_name"] = "must be text of at most 100 characters"
        else:
            clean["display_name"] = value or ""
    if "transport" in data:
        value = data["transport"]
        if value not in TRANSPORTS:
            errors["transport"] = "must be 'tcp' or 'udp'"
        else:
            clean["transport"] = value
    for key in ("enabled", "activity"):
        if key in data:
            value = data[key]
            if not isinstance(value, bool):
                errors[key] = "must be true or false"
            else:
                clean[key] = value
    for key in ("max_age_days", "max_bytes", "min_days"):
        if key in data:
            number = _positive_int(data[key], key, errors, RETENTION_MAXIMUM[key])
            if key not in errors:
                clean[key] = number
    if errors:
        raise ConfigError(errors)
    return clean


# ---------------------------------------------------------------- saving

NAME_IS_FIXED = ("a camera's name cannot change: its recordings are filed under it "
                 "(change its display name instead)")


def save_camera(fields: dict, existing: Camera | None = None) -> Camera:
    """Validate and store a new camera, or a change of `existing`; raise ConfigError.

    The one way every front end (CLI, API, pages, restore, first boot) writes a camera.
    Its name never changes: segment paths and index.db rows on every disk, attached or
    not, are filed under it, so a renamed camera would lose its recordings. The display
    name is the label to change. A change that repeats the current name is accepted.
    """
    errors: dict[str, str] = {}
    try:
        clean = validate_camera(fields, partial=existing is not None)
    except ConfigError as exc:
        clean, errors = {}, dict(exc.errors)
    if existing is not None and "name" in fields and fields["name"] != existing.name:
        errors["name"] = NAME_IS_FIXED
    if errors:
        raise ConfigError(errors)
    clean["updated_at"] = datetime.now(timezone.utc).replace(tzinfo=None)
    if existing is not None:
        clean.pop("name", None)
        with db.atomic():
            for key, value in clean.items():
                setattr(existing, key, value)
            existing.save()
        return existing
    try:
        with db.atomic():
            if Camera.get_or_none(Camera.name == clean["name"]) is not None:
                raise CameraNameTaken(clean["name"])
            return Camera.create(**clean)
    except IntegrityError as exc:       # another process added the name meanwhile
        raise CameraNameTaken(clean["name"]) from exc
