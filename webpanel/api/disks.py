"""The JSON API's disk routes: list, adopt, format and eject, through the recorder's control socket."""

import logging

from flask import Blueprint, jsonify
from werkzeug.exceptions import HTTPException

from recorder import limits
from recorder.storage.disk_ops import UUID_RE
from webpanel import recorder_client
from webpanel.auth import current_user, for_role, login_required
from webpanel.inputs import FieldErrors, json_body, json_error

logger = logging.getLogger(__name__)

bp = Blueprint("disks", __name__, url_prefix="/api")

MAX_PATH = 4096
TIMEOUTS = {"disk_format": limits.MKFS_TIMEOUT_S + 30, "disk_adopt": limits.MOUNT_TIMEOUT_S + 10}


def _recorder(cmd: str, field: str, **args):
    """Run a disk command; its refusal becomes a 400 on `field`, no recorder a 503."""
    try:
        return recorder_client.call(cmd, timeout=TIMEOUTS.get(cmd, limits.CONTROL_TIMEOUT_S),
                                    **args)
    except recorder_client.Unavailable as exc:
        raise json_error(503, f"{exc}: disks are managed by the recorder; start it "
                              "(systemctl start picorder-recorder)") from exc
    except recorder_client.Refused as exc:
        raise FieldErrors({field: str(exc)}) from exc
    except (OSError, ValueError) as exc:
        logger.warning("disk command %s failed: %s", cmd, exc)
        raise json_error(503, f"the recorder did not answer properly: {exc}") from exc


def _unknown_fields(body: dict, allowed: tuple[str, ...], errors: dict) -> None:
    for key in body:
        if key not in allowed:
            errors[str(key)[:64]] = f"unknown field; expected {', '.join(allowed)}"


def _text(body: dict, key: str, errors: dict, what: str) -> str | None:
    """A required non-empty string without control characters."""
    value = body.get(key)
    if value is None or value == "":
        errors[key] = f"is required: {what}"
    elif not isinstance(value, str):
        errors[key] = f"must be a string: {what}"
    elif len(value) > MAX_PATH or any(ord(c) < 32 or ord(c) == 127 for c in value):
        errors[key] = f"is not valid: {what}"
    else:
        return value
    return None


def _flag(body: dict, key: str, errors: dict) -> bool:
    value = body.get(key, False)
    if not isinstance(value, bool):
        errors[key] = "must be true or false"
        return False
    return value


def _uuid(body: dict, errors: dict) -> str | None:
    value = _text(body, "uuid", errors, "the disk's filesystem UUID (GET /api/disks)")
    if value is not None and not UUID_RE.match(value):
        errors["uuid"] = "is not a filesystem UUID (see GET /api/disks)"
        return None
    return value


def _only_uuid(body: dict) -> str:
    """The uuid of a body that holds nothing else, or 400."""
    errors: dict[str, str] = {}
    _unknown_fields(body, ("uuid",), errors)
    uuid = _uuid(body, errors)
    if errors:
        raise FieldErrors(errors)
    return uuid


@bp.get("/disks")
@login_required()
def disks():
    listing = _recorder("disk_list", "disks")
    if not isinstance(listing, dict):
        raise json_error(503, "the recorder gave no disk list")
    storage = recorder_client.get_state(max_age=0).storage()
    return jsonify(for_role({"drives": listing.get("drives") or [],
                             "adopted": listing.get("adopted") or [],
                             "storage": storage or {"state": listing.get("state"),
                                                    "root": listing.get("root")}}))


@bp.post("/disks/adopt")
@login_required(role="admin")
def disk_adopt():
    body = json_body()
    if ("uuid" in body) == ("path" in body):
        raise FieldErrors({"uuid": "send either uuid (a disk) or path (a directory)"})
    if "uuid" in body:
        uuid = _only_uuid(body)
        entry = _recorder("disk_adopt", "uuid", uuid=uuid)
        logger.info("%s adopted disk %s", current_user.name, uuid)
        return jsonify({"adopted": entry})
    errors: dict[str, str] = {}
    _unknown_fields(body, ("path", "allow_root_device"), errors)
    path = _text(body, "path", errors, "the directory's full path")
    if path is not None and not path.startswith("/"):
        errors["path"] = "must be a full path starting with /"
    allow = _flag(body, "allow_root_device", errors)
    if errors:
        raise FieldErrors(errors)
    entry = _recorder("disk_adopt_dir", "path", path=path, allow_root_device=allow)
    logger.info("%s adopted directory %s", current_user.name, path)
    return jsonify({"adopted": entry})


@bp.post("/disks/format")
@login_required(role="admin")
def disk_format():
    body = json_body()
    errors: dict[str, str] = {}
    _unknown_fields(body, ("device", "confirm", "force", "adopt"), errors)
    device = _text(body, "device", errors, "the device to format, e.g. /dev/sda")
    if device is not None and not device.startswith("/dev/"):
        errors["device"] = "must be a device path under /dev/ (see GET /api/disks)"
    confirm = _text(body, "confirm", errors, "the device name again; formatting erases it")
    if device and confirm and "device" not in errors and confirm != device:
        errors["confirm"] = f"type the device name {device} exactly to confirm; " \
                            "formatting erases everything on it"
    force = _flag(body, "force", errors)
    adopt = _flag(body, "adopt", errors)
    if errors:
        raise FieldErrors(errors)
    result = _recorder("disk_format", "device", device=device, confirm=confirm, force=force)
    logger.info("%s formatted %s", current_user.name, device)
    answer = {"formatted": result, "adopted": None, "adopt_error": None}
    uuid = result.get("uuid") if isinstance(result, dict) else None
    if adopt and not uuid:
        answer["adopt_error"] = "the new filesystem shows no UUID yet; adopt it from the list"
    elif adopt:
        try:
            answer["adopted"] = _recorder("disk_adopt", "uuid", uuid=uuid)
        except FieldErrors as exc:
            answer["adopt_error"] = exc.errors["uuid"]
        except HTTPException as exc:    # 503 after a successful format: say so, keep the 200
            answer["adopt_error"] = getattr(exc, "json_body", {}).get("error") or exc.description
    return jsonify(answer)


@bp.post("/disks/eject")
@login_required(role="admin")
def disk_eject():
    uuid = _only_uuid(json_body())
    result = _recorder("disk_eject", "uuid", uuid=uuid)
    logger.info("%s ejected disk %s", current_user.name, uuid)
    return jsonify(result)
