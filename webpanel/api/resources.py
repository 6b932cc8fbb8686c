"""The JSON API under /api: status, cameras, timeline, users and tokens."""

import logging
from dataclasses import asdict

from flask import Blueprint, jsonify, request, url_for

from recorder import config, limits
from recorder.accounts import ROLE_ERROR, ROLES, ApiToken, User, validate_user
from recorder.config import Camera, CameraNameTaken, ConfigError
from recorder.index import NoIndex
from recorder.wallclock import now_us
from webpanel import index_reader, recorder_client
from webpanel.api import openapi, video
from webpanel.api.status import status_json, stream_json
from webpanel.auth import (add_user, current_user, for_role, hash_method, issue_token,
                           login_required)
from webpanel.inputs import (FieldErrors, camera_range, get_camera, iso, json_body, json_error,
                             time_range)

logger = logging.getLogger(__name__)

bp = Blueprint("api", __name__, url_prefix="/api")


# ---------------------------------------------------------------------- status

@bp.get("/status")
@login_required()
def status():
    return jsonify(for_role(status_json()))


@bp.get("/me")
@login_required()
def me():
    from flask_wtf.csrf import generate_csrf

    return jsonify({"name": current_user.name, "role": current_user.role, "via": current_user.via,
                    "csrf_token": generate_csrf() if current_user.via == "session" else None})


# --------------------------------------------------------------------- cameras

def camera_json(cam: Camera, state=None) -> dict:
    state = state or recorder_client.get_state()
    data = cam.to_public()
    now = state.status.clock.now_utc_us if state.status else None
    data["streams"] = [stream_json(s, now or now_us()) for s in state.streams()
                       if s.camera == cam.name]
    return for_role(data)


@bp.get("/cameras")
@login_required()
def cameras():
    state = recorder_client.get_state()
    return jsonify([camera_json(c, state) for c in Camera.select().order_by(Camera.name)])


@bp.get("/cameras/<name>")
@login_required()
def camera(name):
    return jsonify(camera_json(get_camera(name)))


def save_camera(body: dict, existing: Camera | None = None) -> Camera:
    """config.save_camera, its errors as the API answers them (a taken name: 409)."""
    try:
        return config.save_camera(body, existing)
    except CameraNameTaken as exc:
        error = json_error(409, exc.errors["name"])
        error.json_body = {"errors": exc.errors}
        raise error from exc
    except ConfigError as exc:
        raise FieldErrors(exc.errors) from exc


@bp.post("/cameras")
@login_required(role="admin")
def camera_create():
    cam = save_camera(json_body())
    logger.info("%s added camera %s", current_user.name, cam.name)
    recorder_client.reload_best_effort()
    response = jsonify(camera_json(cam))
    response.status_code = 201
    response.headers["Location"] = url_for("api.camera", name=cam.name)
    return response


@bp.patch("/cameras/<name>")
@login_required(role="admin")
def camera_update(name):
    cam = get_camera(name)
    body = json_body()
    if not body:
        raise FieldErrors({"body": "nothing to change"})
    save_camera(body, cam)
    logger.info("%s changed camera %s (%s)", current_user.name, name, ", ".join(body))
    recorder_client.reload_best_effort()
    return jsonify(camera_json(cam))


@bp.delete("/cameras/<name>")
@login_required(role="admin")
def camera_delete(name):
    cam = get_camera(name)
    cam.delete_instance()
    logger.info("%s removed camera %s", current_user.name, name)
    recorder_client.reload_best_effort()
    return jsonify({"deleted": name,
                    "note": "its recordings stay until retention deletes them"})


# -------------------------------------------------------------------- timeline

def _gap_tolerance_us() -> int:
    raw = request.args.get("gap")
    if raw is None or raw == "":
        return int(limits.TIMELINE_GAP_TOLERANCE_S * 1_000_000)
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 3600:
        raise FieldErrors({"gap": "must be a number of seconds between 0 and 3600"})
    return int(value * 1_000_000)


@bp.get("/cameras/<name>/timeline")
@login_required()
def timeline(name):
    start_us, end_us, stream = camera_range(name, limits.TIMELINE_MAX_S)
    tolerance = _gap_tolerance_us()
    result = {"camera": name, "stream": stream, "start": iso(start_us), "end": iso(end_us),
              "start_us": start_us, "end_us": end_us, "gap_tolerance_s": tolerance / 1e6,
              "runs": [], "message": None}
    runs = _from_index(result, lambda index: index_reader.timeline(
        index, name, stream, start_us, end_us, tolerance,
        video.tail_for(index, name, stream, end_us)))
    result["runs"] = [dict(r.to_json(), start=iso(r.start_us), end=iso(r.end_us)) for r in runs]
    return jsonify(result)


def _from_index(result: dict, read) -> list:
    """read(index) on the recording disk's index, or [] with result["message"]
    saying why there is nothing to read (no disk, no index)."""
    pdir = recorder_client.picorder_dir()
    if pdir is None:
        result["message"] = "no recording disk"
        return []
    try:
        with index_reader.open_readonly(pdir) as index:
            return read(index)
    except NoIndex as exc:
        result["message"] = str(exc)
        return []


@bp.get("/cameras/<name>/activity")
@login_required()
def activity(name):
    """Periods of activity (recorder.activity) of a camera in ?start&end."""
    get_camera(name)
    start_us, end_us = time_range(limits.TIMELINE_MAX_S)
    result = {"camera": name, "start": iso(start_us), "end": iso(end_us),
              "start_us": start_us, "end_us": end_us, "periods": [], "count": 0,
              "message": None}
    found = _from_index(result, lambda index: index_reader.activity(index, name, start_us,
                                                                     end_us))
    result["periods"] = [dict(asdict(p), start=iso(p.start_us), end=iso(p.end_us))
                         for p in found]
    result["count"] = len(found)
    return jsonify(result)


# ------------------------------------------------------------ users and tokens

@bp.get("/users")
@login_required(role="admin")
def users():
    return jsonify([u.to_public() for u in User.select().order_by(User.username)])


@bp.post("/users")
@login_required(role="admin")
def user_create():
    body = json_body()
    user = add_user(body.get("username"), body.get("password"), body.get("role"))
    logger.info("%s added user %s (%s)", current_user.name, user.username, user.role)
    return jsonify(user.to_public()), 201


MAX_ID = 2 ** 63 - 1


def _by_id(model, row_id: int, what: str):
    """The row (a user, a token) of the URL's id, or 404."""
    row = model.get_or_none(model.id == row_id) if row_id <= MAX_ID else None
    if row is None:
        raise json_error(404, f"no {what} with id {row_id}")
    return row


@bp.patch("/users/<int:user_id>")
@login_required(role="admin")
def user_update(user_id):
    user = _by_id(User, user_id, "user")
    body = json_body()
    errors = {k: "unknown field" for k in body if k not in ("password", "role")}
    if "password" in body:
        errors.update({k: v for k, v in validate_user(user.username, body["password"],
                                                      user.role).items() if k == "password"})
    role = body.get("role", user.role)
    if role not in ROLES:
        errors["role"] = ROLE_ERROR
    elif role != "admin" and user.is_last_admin():
        errors["role"] = "the last admin cannot become a viewer"
    if errors:
        raise FieldErrors(errors)
    if "password" in body:
        user.set_password(body["password"], hash_method())
    user.role = role
    user.save()
    logger.info("%s changed user %s", current_user.name, user.username)
    return jsonify(user.to_public())


@bp.delete("/users/<int:user_id>")
@login_required(role="admin")
def user_delete(user_id):
    user = _by_id(User, user_id, "user")
    if user.is_last_admin():
        raise json_error(409, "the last admin cannot be removed")
    user.delete_instance()
    logger.info("%s removed user %s", current_user.name, user.username)
    return jsonify({"deleted": user.username})


@bp.get("/tokens")
@login_required(role="admin")
def tokens():
    return jsonify([t.to_public() for t in ApiToken.select().order_by(ApiToken.name)])


@bp.post("/tokens")
@login_required(role="admin")
def token_create():
    body = json_body()
    row, token = issue_token(body.get("name"), body.get("role", "viewer"))
    logger.info("%s created API token %s (%s)", current_user.name, row.name, row.role)
    return jsonify(dict(row.to_public(), token=token)), 201


@bp.delete("/tokens/<int:token_id>")
@login_required(role="admin")
def token_delete(token_id):
    row = _by_id(ApiToken, token_id, "token")
    row.delete_instance()
    return jsonify({"deleted": row.name})


@bp.get("/openapi.json")
@login_required()
def openapi_document():
    return jsonify(openapi.document())
