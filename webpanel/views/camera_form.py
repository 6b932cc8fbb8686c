"""The camera form of the cameras page and the wizard: its fields, saving it, the flash after."""

from recorder import config
from recorder.config import Camera, ConfigError, validate_camera
from webpanel.inputs import form_number, url_or_host
from webpanel.recorder_client import reload_best_effort

PROBE_NOTE_MAX = 300                    # longest test outcome the form may send for the flash
CAMERA_TEXT_FIELDS = ("name", "display_name", "main_url", "sub_url", "username", "transport")
RETENTION_FIELDS = ("max_age_days", "min_days")
GIB = 1024 ** 3
MAX_GIB = 1e6


def gib_to_bytes(text: str, errors: dict, key: str = "max_gb") -> int | None:
    """A size typed in GiB, in bytes; None when empty, a field error when bad."""
    gib = form_number(text, key, errors, float, "must be a number of GiB, like 200 or 0.5",
                      lambda v: 0 < v <= MAX_GIB, "must be greater than zero")
    return None if gib is None else int(gib * GIB)


def camera_fields_from_form(form) -> tuple[dict, dict]:
    """Turn the camera form into validate_camera input; return (fields, errors)."""
    errors: dict[str, str] = {}
    fields = {k: form.get(k, "").strip() for k in CAMERA_TEXT_FIELDS if k in form}
    for key in ("main_url", "sub_url"):
        if key in fields:
            fields[key] = url_or_host(fields[key])
    if "main_url" in fields and not fields["main_url"]:
        errors["main_url"] = "a stream URL or the camera's address is required"
        fields.pop("main_url")
    password = form.get("password", "")
    if form.get("clear_password"):
        fields["password"] = None
    elif password:
        fields["password"] = password
    fields["enabled"] = bool(form.get("enabled"))
    fields["activity"] = bool(form.get("activity"))
    for key in RETENTION_FIELDS:
        if key in form:
            fields[key] = form.get(key, "").strip() or None
    if "max_gb" in form:
        fields["max_bytes"] = gib_to_bytes(form.get("max_gb"), errors)
    return fields, errors


def save_camera_form(form, existing: Camera | None) -> tuple[Camera | None, dict]:
    """Validate and store the camera form; nothing is stored when any field is bad."""
    fields, errors = camera_fields_from_form(form)
    try:
        if errors:                      # the form's own: say what else is wrong, store nothing
            validate_camera(fields, partial=existing is not None)
        else:
            cam = config.save_camera(fields, existing)
    except ConfigError as exc:
        errors = {**exc.errors, **errors}
    if "max_bytes" in errors:
        errors["max_gb"] = errors.pop("max_bytes")
    if errors:
        return None, errors
    reload_best_effort()             # the recorder also notices on its own within 2 s
    return cam, {}


def _form_note(form, key: str) -> str:
    """A short line the form's script sent (what the test found): printable, capped."""
    text = "".join(c for c in str(form.get(key, "")) if c.isprintable())
    return text[:PROBE_NOTE_MAX].rstrip(". ")


def saved_message(cam: Camera, form, done: str) -> tuple[str, str]:
    """The flash after a save, by what the camera's test found: (text, category).

    `done` is what happened ("added", "saved; only this camera restarts"). The page's
    script tests the stream before it saves and sends the outcome in probe_result.
    """
    result, detail = form.get("probe_result", ""), _form_note(form, "probe_detail")
    head = f"Camera {cam.name} {done}"
    if not cam.enabled:
        return f"{head}. It is disabled, so it does not record.", "success"
    if result == "ok":
        found = f"; the test found {detail}" if detail else ""
        return f"{head}{found}. Recording starts within a few seconds.", "success"
    if result == "failed":
        why = f" ({detail})" if detail else ""
        return (f"{head}, but its test failed{why}. It records only once the camera answers; "
                "its card on this page says what is wrong.", "warning")
    if result == "unchanged":
        return f"{head}.", "success"
    return (f"{head} without a test. Its card on this page says within a minute whether it "
            "records.", "warning")


def camera_form_values(cam: Camera | None, form=None) -> dict:
    """Values to put back into the form: never the stored password."""
    if form is not None:
        values = {k: v for k, v in form.items() if k != "password"}
        values["enabled"] = bool(form.get("enabled"))
        values["activity"] = bool(form.get("activity"))
    elif cam is not None:
        values = cam.to_public()
        values["max_gb"] = f"{cam.max_bytes / GIB:g}" if cam.max_bytes else ""
    else:
        values = {"enabled": True, "activity": True, "transport": "tcp"}
    values["has_password"] = bool(cam and cam.password)
    return values
