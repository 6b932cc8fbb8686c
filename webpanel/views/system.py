"""Storage and system pages: disks and retention, box health, users, tokens, backup."""

import json
import logging
import os
import re
import socket
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

from flask import (Blueprint, Response, abort, current_app, flash, redirect, render_template,
                   request, url_for)
from peewee import IntegrityError

from recorder import __version__, config, limits
from recorder.accounts import ApiToken, User, validate_token, validate_user
from recorder.config import Camera, ConfigError, Setting, validate_camera
from webpanel.auth import current_user, hash_method, login_required
from webpanel.inputs import get_camera
from webpanel.recorder_client import recorder_call, recorder_status
from webpanel.views import storage_forms

logger = logging.getLogger(__name__)

bp = Blueprint("system", __name__)

THROTTLED_FILE = Path("/sys/devices/platform/soc/soc:firmware/get_throttled")
THERMAL_FILE = Path("/sys/class/thermal/thermal_zone0/temp")
LOG_LINES = 60
BACKUP_FORMAT = "picorder-config-backup"
BACKUP_VERSION = 1
SECRET_IN_URL = re.compile(r"(\w+://)[^/@\s]*@")
SECRET_WORDS = re.compile(r"(?i)(password|passwd|pwd|token)([=:]\s*)\S+")
THROTTLE_BITS = {0: "under-voltage now", 1: "ARM frequency capped now", 2: "throttled now",
                 3: "soft temperature limit now", 16: "under-voltage has occurred",
                 17: "frequency capping has occurred", 18: "throttling has occurred",
                 19: "soft temperature limit has occurred"}


# ------------------------------------------------------------------ storage page

@bp.route("/storage", methods=["GET"])
@login_required()
def storage():
    return render_storage()


def render_storage(errors: dict | None = None, status_code: int = 200, forms: dict | None = None):
    return render_template("storage.html", errors=errors or {}, forms=forms or {},
                           cameras=list(Camera.select().order_by(Camera.name)),
                           retention=storage_forms.retention_form_values(),
                           **storage_forms.disk_context()), status_code


@bp.route("/storage/disks", methods=["POST"])
@login_required(role="admin")
def storage_disks():
    message, errors = storage_forms.handle_disk_form(request.form)
    if errors:
        return render_storage({"disk": errors}, 400)
    flash(message, "success")
    return redirect(url_for("system.storage"))


@bp.route("/storage/retention", methods=["POST"])
@login_required(role="admin")
def storage_retention():
    errors = storage_forms.save_retention_defaults(request.form)
    if errors:
        return render_storage({"retention": errors}, 400, {"retention": request.form})
    flash("Retention saved.", "success")
    return redirect(url_for("system.storage"))


@bp.route("/storage/cameras/<name>", methods=["POST"])
@login_required(role="admin")
def storage_camera(name):
    cam = get_camera(name)
    errors = storage_forms.save_camera_retention(cam, request.form)
    if errors:
        return render_storage({f"cam:{name}": errors}, 400, {f"cam:{name}": request.form})
    flash(f"Retention of {name} saved.", "success")
    return redirect(url_for("system.storage"))


# ------------------------------------------------------------------ system facts

def read_text(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


_command_cache: dict[tuple, tuple[float, str | None]] = {}


def run_quiet(argv: list[str]) -> str | None:
    """Output of a small system command, reused for a few seconds (the page stays fast)."""
    key = tuple(argv)
    hit = _command_cache.get(key)
    if hit and time.monotonic() - hit[0] < limits.PAGE_COMMAND_CACHE_S:
        return hit[1]
    output = _run(argv)
    _command_cache[key] = (time.monotonic(), output)
    return output


def _run(argv: list[str]) -> str | None:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True,
                              timeout=limits.PAGE_COMMAND_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout if proc.returncode == 0 else None


def meminfo() -> dict:
    values = {}
    for line in (read_text(Path("/proc/meminfo")) or "").splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts:
            values[key] = int(parts[0]) * 1024
    return values


def throttle_flags() -> list[str] | None:
    """The Pi firmware's throttling flags in words, or None where the kernel has none."""
    text = read_text(THROTTLED_FILE)
    if text is None:
        return None
    try:
        bits = int(text, 16)
    except ValueError:
        return None
    return [words for bit, words in THROTTLE_BITS.items() if bits & (1 << bit)]


def timedate() -> dict:
    out = run_quiet(["timedatectl", "show"]) or ""
    props = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    zone = props.get("Timezone") or read_text(Path("/etc/timezone")) or "UTC"
    ntp = props.get("NTPSynchronized")
    return {"timezone": zone, "ntp_synchronized": None if ntp is None else ntp == "yes"}


def redact(line: str) -> str:
    line = SECRET_IN_URL.sub(r"\1***@", line)
    return SECRET_WORDS.sub(r"\1\2***", line)


def recorder_log() -> list[str]:
    """The recorder's recent log lines, credentials removed."""
    log_file = Path(current_app.config["DATA_DIR"]) / "recorder.log"
    lines = None
    if log_file.is_file():
        with open(log_file, errors="replace") as fh:
            lines = fh.readlines()[-LOG_LINES:]
    else:
        out = run_quiet(["journalctl", "-u", "picorder-recorder", "-n", str(LOG_LINES),
                         "--no-pager", "-o", "short-iso"])
        lines = out.splitlines() if out else []
    return [redact(line.rstrip("\n")) for line in lines]


def system_facts() -> dict:
    uptime = read_text(Path("/proc/uptime"))
    temp = read_text(THERMAL_FILE)
    mem = meminfo()
    return {
        "version": __version__,
        "hostname": socket.gethostname(),
        "uptime_s": float(uptime.split()[0]) if uptime else None,
        "load": os.getloadavg(),
        "cpus": os.cpu_count(),
        "mem_total": mem.get("MemTotal"),
        "mem_available": mem.get("MemAvailable"),
        "temp_c": int(temp) / 1000 if temp and temp.lstrip("-").isdigit() else None,
        "throttled": throttle_flags(),
        **timedate(),
    }


@bp.route("/system")
@login_required()
def system():
    return render_system()


def render_system(errors: dict | None = None, status_code: int = 200, forms: dict | None = None,
                  new_token: str | None = None):
    status, problem = recorder_status()
    return render_template(
        "system.html", facts=system_facts(), status=status, recorder_problem=problem,
        log_lines=recorder_log() if current_user.is_admin else [],
        users=list(User.select().order_by(User.username)),
        tokens=list(ApiToken.select().order_by(ApiToken.name)),
        errors=errors or {}, forms=forms or {}, new_token=new_token), status_code


# ------------------------------------------------------------------ users and tokens

@bp.route("/system/users", methods=["POST"])
@login_required(role="admin")
def user_add():
    form = request.form
    username = form.get("username", "").strip()
    password, role = form.get("password", ""), form.get("role")
    errors = validate_user(username, password, role)
    if not errors:
        try:
            user = User(username=username, role=role)
            user.set_password(password, hash_method())
            user.save()
        except IntegrityError:
            errors["username"] = "this name is taken"
    if errors:
        return render_system({"user": errors}, 400, {"user": {"username": username, "role": role}})
    flash(f"User {username} added.", "success")
    return redirect(url_for("system.system") + "#users")


@bp.route("/system/users/<int:user_id>/delete", methods=["POST"])
@login_required(role="admin")
def user_delete(user_id):
    user = User.get_or_none(User.id == user_id) or abort(404, "no such user")
    if user.id == current_user.user_id:
        flash("You cannot remove yourself.", "error")
    elif user.is_admin and User.select().where(User.role == "admin").count() <= 1:
        flash("The last admin cannot be removed.", "error")
    else:
        user.delete_instance()
        flash(f"User {user.username} removed.", "success")
    return redirect(url_for("system.system") + "#users")


@bp.route("/system/tokens", methods=["POST"])
@login_required(role="admin")
def token_add():
    name, role = request.form.get("name", "").strip(), request.form.get("role")
    errors = validate_token(name, role)
    if not errors:
        try:
            _, token = ApiToken.issue(name, role)
        except IntegrityError:
            errors["name"] = "a token with this name exists"
    if errors:
        return render_system({"token": errors}, 400, {"token": {"name": name, "role": role}})
    return render_system(new_token=token)


@bp.route("/system/tokens/<int:token_id>/delete", methods=["POST"])
@login_required(role="admin")
def token_delete(token_id):
    token = ApiToken.get_or_none(ApiToken.id == token_id) or abort(404, "no such token")
    token.delete_instance()
    flash(f"Token {token.name} revoked.", "success")
    return redirect(url_for("system.system") + "#tokens")


# ------------------------------------------------------------------ backup and restore

@bp.route("/system/backup.json")
@login_required(role="admin")
def backup():
    """Cameras (with their passwords), users (hashed passwords) and settings."""
    doc = {
        "format": BACKUP_FORMAT, "version": BACKUP_VERSION, "picorder": __version__,
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cameras": [{**{k: v for k, v in c.to_public().items() if k != "has_password"},
                     "password": c.password} for c in Camera.select().order_by(Camera.name)],
        "users": [{"username": u.username, "role": u.role, "password_hash": u.password_hash}
                  for u in User.select().order_by(User.username)],
        "settings": {s.key: s.value for s in Setting.select()},
    }
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return Response(json.dumps(doc, indent=2), mimetype="application/json", headers={
        "Content-Disposition": f'attachment; filename="picorder-config-{stamp}.json"',
        "Cache-Control": "no-store"})


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
                or user.get("role") not in ("admin", "viewer")
                or not isinstance(user.get("password_hash"), str)):
            return None, "a user entry is malformed"
        problem = validate_user(user["username"], None, user["role"]).get("username")
        if problem:
            return None, f"user {user['username']!r}: {problem}"
    if not any(u["role"] == "admin" for u in users):
        return None, "the backup has no admin user; restoring it would lock you out"
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in settings.items()):
        return None, "a setting is malformed"
    return doc, None


@bp.route("/system/restore", methods=["POST"])
@login_required(role="admin")
def restore():
    upload = request.files.get("backup")
    if upload is None or not upload.filename:
        return render_system({"restore": {"backup": "choose a backup file"}}, 400)
    doc, error = parse_backup(upload.read())
    if error:
        return render_system({"restore": {"backup": error}}, 400)
    try:
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
    except ConfigError as exc:          # two cameras of one name: the transaction is undone
        return render_system({"restore": {"backup": f"nothing restored: {exc}"}}, 400)
    recorder_call("reload")
    flash(f"Restored {len(doc['cameras'])} cameras, {len(doc['users'])} users and "
          f"{len(doc['settings'])} settings.", "success")
    return redirect(url_for("system.system"))


# ------------------------------------------------------------------ power

@bp.route("/system/power", methods=["POST"])
@login_required(role="admin")
def power():
    action = request.form.get("action")
    if action not in ("reboot", "poweroff"):
        return render_system({"power": {"action": "choose reboot or shut down"}}, 400)
    if request.form.get("confirm") != "yes":
        return render_system({"power": {"confirm": "tick the box to confirm"}}, 400)
    _, error = recorder_call(action)
    if error:
        flash(f"The box cannot {action} now: {error}", "error")
    else:
        flash("The box is going down; this page stops answering in a few seconds.", "success")
    return redirect(url_for("system.system"))
