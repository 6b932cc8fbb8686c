"""The OpenAPI 3 document of the panel's JSON and video API (served at /api/openapi.json)."""

from recorder import __version__, limits
from recorder.storage.disk_ops import UUID_RE

TIME_DOC = ("ISO 8601 (e.g. 2026-11-21T12:00:00Z; UTC when no offset is given) "
            "or epoch seconds (e.g. 1795348800.5)")


def _error(description: str) -> dict:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


ERRORS = {
    "400": {"description": "bad input: one message per field",
            "content": {"application/json": {"schema": {
                "$ref": "#/components/schemas/FieldErrors"}}}},
    "401": _error("not signed in, or a bad token"),
    "403": _error("needs the admin role"),
    "404": _error("no such camera, user, token or recording"),
}


def _query(name: str, description: str, required: bool = False, schema=None) -> dict:
    return {"name": name, "in": "query", "required": required, "description": description,
            "schema": schema or {"type": "string"}}


CAMERA_NAME = {"name": "name", "in": "path", "required": True,
               "description": "the camera's name", "schema": {"type": "string"}}
START = _query("start", "start of the range: " + TIME_DOC, True)
END = _query("end", "end of the range (after start): " + TIME_DOC, True)
STREAM = _query("stream", "main (default) or sub", schema={"type": "string",
                                                           "enum": ["main", "sub"]})


def _json(schema_ref: str, description: str = "OK") -> dict:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": schema_ref}}}}


def _op(summary: str, responses: dict, *, params=None, body=None, admin=False, tag="api") -> dict:
    op = {"summary": summary + (" (admin)" if admin else ""), "tags": [tag],
          "responses": dict(ERRORS, **responses)}
    if params:
        op["parameters"] = params
    if body:
        op["requestBody"] = {"required": True, "content": {"application/json": {
            "schema": {"$ref": body}}}}
    return op


CAMERA_FIELDS = {
    "name": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,62}$"},
    "display_name": {"type": "string", "maxLength": 100},
    "main_url": {"type": "string", "description": "rtsp://, rtsps://, http:// or https:// URL; "
                 "credentials in it are moved to username/password"},
    "sub_url": {"type": ["string", "null"]},
    "username": {"type": ["string", "null"]},
    "password": {"type": ["string", "null"], "writeOnly": True},
    "transport": {"type": "string", "enum": ["tcp", "udp"]},
    "enabled": {"type": "boolean"},
    "activity": {"type": "boolean", "description": "find activity at ingest (default true)"},
    "max_age_days": {"type": ["integer", "null"], "minimum": 1},
    "max_bytes": {"type": ["integer", "null"], "minimum": 1},
    "min_days": {"type": ["integer", "null"], "minimum": 1},
}

FS_UUID = {"type": "string", "pattern": UUID_RE.pattern,
           "description": "the filesystem UUID (GET /api/disks)"}

SCHEMAS = {
    "Error": {"type": "object", "properties": {"error": {"type": "string"}},
              "required": ["error"]},
    "FieldErrors": {"type": "object", "description": "{field: message}",
                    "properties": {"errors": {"type": "object",
                                              "additionalProperties": {"type": "string"}},
                                   "error": {"type": "string"}}},
    "CameraInput": {"type": "object", "properties": CAMERA_FIELDS,
                    "required": ["name", "main_url"], "additionalProperties": False},
    "CameraPatch": {"type": "object", "properties": CAMERA_FIELDS, "minProperties": 1,
                    "additionalProperties": False},
    "Camera": {"type": "object", "properties": {
        **{k: v for k, v in CAMERA_FIELDS.items() if k != "password"},
        "has_password": {"type": "boolean"},
        "streams": {"type": "array", "items": {"type": "object"},
                    "description": "the recorder's status of each stream"}}},
    "CameraList": {"type": "array", "items": {"$ref": "#/components/schemas/Camera"}},
    "Status": {"type": "object", "properties": {
        "recorder": {"type": "object", "description": "running, message (why not), version, pid"},
        "clock": {"type": "object"}, "storage": {"type": "object"},
        "streams": {"type": "array", "items": {"type": "object"}},
        "cameras": {"type": "integer"}}},
    "Run": {"type": "object", "properties": {
        "start_us": {"type": "integer"}, "end_us": {"type": "integer"},
        "start": {"type": "string"}, "end": {"type": "string"},
        "clock_trusted": {"type": "boolean",
                          "description": "false: recorded while the clock was not trustworthy"},
        "segments": {"type": "integer"}, "frames": {"type": "integer"}}},
    "Timeline": {"type": "object", "properties": {
        "camera": {"type": "string"}, "stream": {"type": "string"},
        "start_us": {"type": "integer"}, "end_us": {"type": "integer"},
        "gap_tolerance_s": {"type": "number"},
        "runs": {"type": "array", "items": {"$ref": "#/components/schemas/Run"}},
        "message": {"type": ["string", "null"]}}},
    "ActivityPeriod": {"type": "object", "properties": {
        "start_us": {"type": "integer"}, "end_us": {"type": "integer"},
        "start": {"type": "string"}, "end": {"type": "string"},
        "peak": {"type": "integer", "description": "highest level (100: at the threshold)"}}},
    "Activity": {"type": "object", "properties": {
        "camera": {"type": "string"}, "start_us": {"type": "integer"},
        "end_us": {"type": "integer"}, "start": {"type": "string"}, "end": {"type": "string"},
        "count": {"type": "integer"},
        "periods": {"type": "array", "items": {"$ref": "#/components/schemas/ActivityPeriod"}},
        "message": {"type": ["string", "null"]}}},
    "UserInput": {"type": "object", "required": ["username", "password", "role"], "properties": {
        "username": {"type": "string"}, "password": {"type": "string", "minLength": 8},
        "role": {"type": "string", "enum": ["admin", "viewer"]}}},
    "UserPatch": {"type": "object", "properties": {
        "password": {"type": "string", "minLength": 8},
        "role": {"type": "string", "enum": ["admin", "viewer"]}}},
    "TokenInput": {"type": "object", "required": ["name"], "properties": {
        "name": {"type": "string"}, "role": {"type": "string", "enum": ["admin", "viewer"]}}},
    "Object": {"type": "object"},
    "ProbeInput": {"type": "object", "required": ["url"], "properties": {
        "url": {"type": "string", "maxLength": 2048,
                "description": "stream URL, or a bare address (taken as rtsp://address)"},
        "username": {"type": ["string", "null"], "maxLength": 2048},
        "password": {"type": ["string", "null"], "maxLength": 2048, "writeOnly": True},
        "transport": {"type": "string", "enum": ["tcp", "udp"]},
        "camera": {"type": ["string", "null"],
                   "description": "with no password given, use this camera's stored one"}}},
    "ProbeResult": {"type": "object", "required": ["ok"], "properties": {
        "ok": {"type": "boolean"}, "error": {"type": ["string", "null"]},
        "codec": {"type": ["string", "null"]}, "width": {"type": ["integer", "null"]},
        "height": {"type": ["integer", "null"]}, "fps": {"type": ["number", "null"]},
        "bitrate_kbps": {"type": ["number", "null"]},
        "keyframe_interval_s": {"type": ["number", "null"]},
        "snapshot": {"type": ["string", "null"]},
        "snapshot_url": {"type": "string", "description": "the first keyframe as JPEG"},
        "warnings": {"type": "array", "items": {"type": "string"}}}},
    "Clock": {"type": "object", "properties": {
        "panel_utc_us": {"type": "integer", "description": "the panel's own time"},
        "recorder": {"type": ["object", "null"],
                     "description": "trusted, source, now_utc_us (null: no recorder)"},
        "recorder_problem": {"type": ["string", "null"]}}},
    "DiskList": {"type": "object", "properties": {
        "drives": {"type": "array", "items": {"type": "object"}, "description":
                   "block devices: device, size, filesystem type/UUID/label, model, serial, bus, "
                   "mounted, picorder marker and box, candidate or system"},
        "adopted": {"type": "array", "items": {"type": "object"},
                    "description": "adopted disks and directories; one is active"},
        "storage": {"type": "object", "description": "the recorder's storage state (state, "
                    "root, active, retention, io_errors, health)"}}},
    "DiskAdopt": {"oneOf": [
        {"type": "object", "title": "a disk", "required": ["uuid"],
         "additionalProperties": False,
         "properties": {"uuid": FS_UUID}},
        {"type": "object", "title": "a directory", "required": ["path"],
         "additionalProperties": False,
         "properties": {"path": {"type": "string", "pattern": "^/[^\\x00-\\x1f\\x7f]*$",
                                 "maxLength": 4096, "description": "full path of a directory"},
                        "allow_root_device": {"type": "boolean", "description":
                                              "allow a directory on the system disk"}}}]},
    "DiskFormat": {"type": "object", "required": ["device", "confirm"],
                   "additionalProperties": False, "properties": {
                       "device": {"type": "string", "pattern": "^/dev/[^\\x00-\\x1f\\x7f]+$",
                                  "maxLength": 4096, "description": "e.g. /dev/sda"},
                       "confirm": {"type": "string", "description": "the device again"},
                       "force": {"type": "boolean",
                                 "description": "erase a disk that holds data"},
                       "adopt": {"type": "boolean",
                                 "description": "adopt the new filesystem at once"}}},
    "DiskEject": {"type": "object", "required": ["uuid"], "additionalProperties": False,
                  "properties": {"uuid": FS_UUID}},
}

ID = {"in": "path", "required": True, "schema": {"type": "integer"}}
VIDEO_NOTE = (
    "A progressive MP4 built on the fly from the recorded segments (the one being written "
    "included, up to its last complete fragment), without re-encoding: "
    "moov first; it starts at the keyframe at or before start with an edit list so that "
    "playback begins exactly at start, and ends at end. Range requests are answered 206; "
    "the ETag changes when the underlying segments change. Across a gap in the recording "
    "the media time runs on without the gap: the X-Picorder-Runs header lists "
    "'wall_start_us-wall_end_us@media_start_us' for each run (at most 50; the timeline "
    "API lists them all); X-Picorder-Start-Us/End-Us say what it covers and "
    "X-Picorder-Recorded-Us how much of that is recorded. "
    f"At most {limits.EXPORT_MAX_S // 3600} hours per request.")


NO_RECORDER = _error("the recorder is not running")


def _paths() -> dict:
    cam = [CAMERA_NAME]
    return {
        "/api/status": {"get": _op("recorder, camera and disk state, clock",
                                   {"200": _json("#/components/schemas/Status")})},
        "/api/openapi.json": {"get": _op("this document",
                                         {"200": _json("#/components/schemas/Object")})},
        "/api/me": {"get": _op("who is signed in, and the CSRF token for this session",
                               {"200": _json("#/components/schemas/Object")})},
        "/api/cameras": {
            "get": _op("list cameras", {"200": _json("#/components/schemas/CameraList")}),
            "post": _op("add a camera; the recorder starts it without a restart",
                        {"201": _json("#/components/schemas/Camera", "created"),
                         "409": _error("the name is taken")},
                        body="#/components/schemas/CameraInput", admin=True)},
        "/api/cameras/{name}": {
            "get": _op("one camera", {"200": _json("#/components/schemas/Camera")}, params=cam),
            "patch": _op("change a camera; only that camera restarts. Its name cannot "
                         "change (its recordings are filed under it): a different name is a "
                         "field error; change display_name instead",
                         {"200": _json("#/components/schemas/Camera")},
                         params=cam, body="#/components/schemas/CameraPatch", admin=True),
            "delete": _op("remove a camera (its recordings stay until retention)",
                          {"200": _json("#/components/schemas/Object")}, params=cam,
                          admin=True)},
        "/api/cameras/{name}/timeline": {"get": _op(
            "runs of continuous recording; gaps up to 'gap' seconds are merged, and each run "
            "says whether its clock was trusted",
            {"200": _json("#/components/schemas/Timeline")},
            params=cam + [START, END, STREAM,
                          _query("gap", "gap tolerance in seconds (default "
                                 f"{limits.TIMELINE_GAP_TOLERANCE_S:g})",
                                 schema={"type": "string"})])},
        "/api/cameras/{name}/activity": {"get": _op(
            "periods of activity (motion) found at ingest, merged over gaps of "
            f"{limits.ACTIVITY_MERGE_GAP_S} s or less",
            {"200": _json("#/components/schemas/Activity")}, params=cam + [START, END])},
        "/api/cameras/{name}/recording.mp4": {"get": _op(
            "any time range as an MP4",
            {"200": {"description": VIDEO_NOTE, "content": {"video/mp4": {}}},
             "206": {"description": "part of it (Range)", "content": {"video/mp4": {}}},
             "304": {"description": "not modified (If-None-Match)"},
             "416": _error("the Range lies outside the movie"),
             "503": _error("no recording disk")},
            params=cam + [START, END, STREAM,
                          _query("download", "1: as an attachment",
                                 schema={"type": "string", "enum": ["0", "1"]})])},
        "/api/cameras/{name}/live.mp4": {"get": _op(
            "live fragmented MP4 for MSE, following the segment being written",
            {"200": {"description": "an endless fMP4 stream", "content": {"video/mp4": {}}},
             "503": _error("the recorder is not running or the stream is not recording")},
            params=cam + [STREAM])},
        "/api/cameras/{name}/snapshot.jpg": {"get": _op(
            "the newest keyframe, or the one at or before 'at', as JPEG",
            {"200": {"description": "JPEG", "content": {"image/jpeg": {}}},
             "503": _error("no disk, or every decoder is busy")},
            params=cam + [STREAM, _query("at", "time of the picture: " + TIME_DOC)])},
        "/api/users": {
            "get": _op("list users", {"200": _json("#/components/schemas/Object")}, admin=True),
            "post": _op("add a user", {"201": _json("#/components/schemas/Object")},
                        body="#/components/schemas/UserInput", admin=True)},
        "/api/users/{user_id}": {
            "patch": _op("change a user's password or role",
                         {"200": _json("#/components/schemas/Object")},
                         params=[dict(ID, name="user_id")],
                         body="#/components/schemas/UserPatch", admin=True),
            "delete": _op("remove a user", {"200": _json("#/components/schemas/Object"),
                                            "409": _error("the last admin")},
                          params=[dict(ID, name="user_id")], admin=True)},
        "/api/tokens": {
            "get": _op("list API tokens", {"200": _json("#/components/schemas/Object")},
                       admin=True),
            "post": _op("create an API token (shown once, in 'token')",
                        {"201": _json("#/components/schemas/Object")},
                        body="#/components/schemas/TokenInput", admin=True)},
        "/api/tokens/{token_id}": {"delete": _op(
            "revoke an API token", {"200": _json("#/components/schemas/Object")},
            params=[dict(ID, name="token_id")], admin=True)},
        "/api/probe": {"post": _op(
            f"test a stream: capture about {limits.PROBE_CAPTURE_S} s and describe it "
            "(codec, size, fps, bitrate, keyframe interval, a snapshot); one test at a time",
            {"200": _json("#/components/schemas/ProbeResult",
                          "the result; ok false with 'error' when the stream cannot be read")},
            body="#/components/schemas/ProbeInput", admin=True)},
        "/api/probe/{token}.jpg": {"get": _op(
            "a probe's snapshot (expires after a few minutes)",
            {"200": {"description": "JPEG", "content": {"image/jpeg": {}}}},
            params=[{"name": "token", "in": "path", "required": True,
                     "schema": {"type": "string"}}], admin=True)},
        "/api/clock": {"get": _op("the recorder's clock and the panel's own time",
                                  {"200": _json("#/components/schemas/Clock")})},
        "/api/zabbix/cameras.json": {"get": _op(
            "Zabbix low-level discovery of cameras (cameraleech format)",
            {"200": _json("#/components/schemas/Object")}, tag="monitoring")},
        "/api/zabbix/camera/{name}/{metric}": {"get": _op(
            "one value of the camera's main stream, as plain text (cameraleech)",
            {"200": {"description": "the value", "content": {"text/plain": {}}}},
            params=cam + [{"name": "metric", "in": "path", "required": True,
                           "schema": {"type": "string", "enum": [
                               "frame", "fps", "bitrate", "outtime", "dupframes",
                               "dropframes", "restarts"]}}],
            tag="monitoring")},
        "/api/disks": {"get": _op(
            "drives, adopted disks and directories, and the storage state",
            {"200": _json("#/components/schemas/DiskList"), "503": NO_RECORDER}, tag="disks")},
        "/api/disks/adopt": {"post": _op(
            "adopt a disk by filesystem UUID, or a directory; it becomes the recording root",
            {"200": _json("#/components/schemas/Object"), "503": NO_RECORDER},
            body="#/components/schemas/DiskAdopt", admin=True, tag="disks")},
        "/api/disks/format": {"post": _op(
            "make ext4 (label PICORDER) on a device, confirmed by naming it again; a disk "
            "holding data needs force",
            {"200": _json("#/components/schemas/Object"), "503": NO_RECORDER},
            body="#/components/schemas/DiskFormat", admin=True, tag="disks")},
        "/api/disks/eject": {"post": _op(
            "stop recording onto a disk and unmount it for safe removal",
            {"200": _json("#/components/schemas/Object"), "503": NO_RECORDER},
            body="#/components/schemas/DiskEject", admin=True, tag="disks")},
        "/metrics": {"get": _op("Prometheus metrics",
                                {"200": {"description": "text format",
                                         "content": {"text/plain": {}}}}, tag="monitoring")},
    }


def document() -> dict:
    """The OpenAPI 3.1 document."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "picorder panel API", "version": __version__,
                 "description": "Sign in with a session (browser; state-changing requests "
                                "need the X-CSRFToken header, see /api/me) or send an API "
                                "token as 'Authorization: Bearer ...'."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}, {"session": []}],
        "paths": _paths(),
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": "picorder_session"}},
        },
    }
