"""JSON routes the pages need beyond the video API: stream probe (Test button) and clock."""

import logging
import time
from dataclasses import asdict
from pathlib import Path

from flask import Blueprint, current_app, jsonify, request, send_file

from recorder.config import TRANSPORTS, Camera, check_url, split_credentials
from recorder.wallclock import now_us
from webpanel import probe
from webpanel.auth import login_required
from webpanel.inputs import FieldErrors, json_error, url_or_host
from webpanel.recorder_client import recorder_status

logger = logging.getLogger(__name__)

bp = Blueprint("pages_api", __name__, url_prefix="/api")


def _text(body: dict, key: str, errors: dict) -> str | None:
    value = body.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 2048 or any(ord(c) < 32 for c in value):
        errors[key] = "must be text without control characters"
        return None
    return value


@bp.route("/probe", methods=["POST"])
@login_required(role="admin")
def probe_route():
    """Probe a stream: {url, username?, password?, transport?, camera?} -> ProbeResult.

    With "camera" and no password, the stored password of that camera is used, so
    the edit form can test without ever showing the password.
    """
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise FieldErrors({"url": "send a JSON object"})
    errors: dict[str, str] = {}
    url = url_or_host(_text(body, "url", errors) or "")
    username, password = _text(body, "username", errors), _text(body, "password", errors)
    transport = body.get("transport") or "tcp"
    if transport not in TRANSPORTS:
        errors["transport"] = "must be 'tcp' or 'udp'"
    problem = check_url(url)
    if problem:
        errors["url"] = problem
    if errors:
        raise FieldErrors(errors)
    url, url_user, url_password = split_credentials(url)
    username, password = username or url_user, password or url_password
    camera = body.get("camera")
    if isinstance(camera, str) and camera and password is None:
        cam = Camera.get_or_none(Camera.name == camera)
        if cam is not None:
            password = cam.password
            username = username or cam.username
    started = time.monotonic()
    result = probe.probe_stream(url, username, password, transport,
                                Path(current_app.config["DATA_DIR"]))
    logger.info("probed a stream in %.1f s: %s", time.monotonic() - started,
                "ok" if result.ok else result.error)
    data = result.to_json()
    if result.snapshot:
        data["snapshot_url"] = f"/api/probe/{result.snapshot}.jpg"
    return jsonify(data)


@bp.route("/probe/<token>.jpg")
@login_required(role="admin")
def probe_snapshot(token):
    path = probe.snapshot_path(Path(current_app.config["DATA_DIR"]), token)
    if path is None:
        raise json_error(404, "no such probe snapshot (they expire after a few minutes)")
    return send_file(path, mimetype="image/jpeg", max_age=0)


@bp.route("/clock")
@login_required()
def clock():
    """The box's clock as the recorder sees it, and the panel's own time."""
    status, problem = recorder_status()
    return jsonify({"panel_utc_us": now_us(),
                    "recorder": asdict(status.clock) if status else None,
                    "recorder_problem": problem})
