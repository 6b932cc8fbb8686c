"""Checking request input: times, streams, cameras; one clear error per field."""

from decimal import Decimal, InvalidOperation
from datetime import datetime, timezone

from flask import request
from werkzeug.exceptions import BadRequest, HTTPException, NotFound, default_exceptions

from recorder.config import STREAMS, Camera

# Accepted wall-clock times: 2000-01-01 .. 2100-01-01 UTC.
MIN_TIME_US = 946_684_800_000_000
MAX_TIME_US = 4_102_444_800_000_000


def wants_json() -> bool:
    """True for API clients: /api/ and /metrics always answer JSON (or metrics text)."""
    return request.path.startswith(("/api/", "/metrics")) or request.path == "/api"


class FieldErrors(BadRequest):
    """400 with {"errors": {field: message}} for API clients."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.json_body = {"errors": errors}


def json_error(code: int, message: str, headers: dict | None = None) -> HTTPException:
    """An HTTP error (to raise) whose JSON body is {"error": message}."""
    exc = default_exceptions[code](message)
    exc.json_body = {"error": message}
    exc.extra_headers = headers or {}
    return exc


def json_body() -> dict:
    """The request's JSON object, or 400."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise FieldErrors({"body": "send a JSON object with Content-Type: application/json"})
    return body


def url_or_host(text: str) -> str:
    """Accept a bare address ("192.168.1.20", "cam.lan:8554/live") as an RTSP URL."""
    text = text.strip()
    if text and "://" not in text:
        return "rtsp://" + text
    return text


def form_number(text: str | None, key: str, errors: dict, parse, not_a_number: str,
                in_range, out_of_range: str):
    """A number typed in a form: None when empty; a field error (and None) when parse()
    fails or in_range() refuses it."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        value = parse(text)
    except ValueError:
        errors[key] = not_a_number
        return None
    if not in_range(value):
        errors[key] = out_of_range
        return None
    return value


def parse_time(value: str | None, field: str, errors: dict) -> int | None:
    """Parse ISO 8601 (UTC when no offset is given) or epoch seconds into epoch µs."""
    if value is None or value == "":
        errors[field] = "is required (ISO 8601 or epoch seconds)"
        return None
    text = value.strip()
    us = None
    try:
        seconds = Decimal(text)         # exact: no float rounding of the microseconds
    except InvalidOperation:
        seconds = None
    if seconds is not None:
        # adjusted() is the exponent of the first digit: no arithmetic, so no Overflow
        # on 1e999999999, and anything beyond 10^12 s is outside the range anyway.
        if seconds.is_finite() and seconds.adjusted() < 12:
            us = int((seconds * 1_000_000).to_integral_value())
    else:
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            errors[field] = "is not a time: use ISO 8601 (2026-11-21T12:00:00Z) or epoch seconds"
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone.utc)
        us = _datetime_us(parsed)
    if us is None or not MIN_TIME_US <= us <= MAX_TIME_US:
        errors[field] = "must be between 2000-01-01 and 2100-01-01"
        return None
    return us


def _datetime_us(when: datetime) -> int | None:
    try:
        delta = when - datetime(1970, 1, 1, tzinfo=timezone.utc)
    except OverflowError:
        return None
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def time_range(max_span_s: float, *, start_field="start", end_field="end") -> tuple[int, int]:
    """Read ?start=&end= from the query string; abort 400 with field errors."""
    errors: dict[str, str] = {}
    start = parse_time(request.args.get(start_field), start_field, errors)
    end = parse_time(request.args.get(end_field), end_field, errors)
    if not errors:
        if end <= start:
            errors[end_field] = "must be after start"
        elif end - start > max_span_s * 1_000_000:
            errors[end_field] = f"the range must be at most {max_span_s / 3600:g} hours long"
    if errors:
        raise FieldErrors(errors)
    return start, end


def stream_arg() -> str:
    """?stream=main|sub, main by default."""
    value = request.args.get("stream", "main")
    if value not in STREAMS:
        raise FieldErrors({"stream": "must be 'main' or 'sub'"})
    return value


def get_camera(name: str) -> Camera:
    """The camera named in the URL, or 404 in JSON."""
    cam = Camera.get_or_none(Camera.name == name)
    if cam is None:
        exc = NotFound(f"no camera named {name!r}")
        exc.json_body = {"error": exc.description}
        raise exc
    return cam


def camera_range(name: str, max_span_s: float) -> tuple[int, int, str]:
    """The URL's camera (or 404), then ?start&end (at most max_span_s apart) and ?stream."""
    get_camera(name)
    start_us, end_us = time_range(max_span_s)
    return start_us, end_us, stream_arg()


def iso(us: int | None) -> str | None:
    """Epoch µs as ISO 8601 UTC with a Z."""
    if us is None:
        return None
    when = datetime.fromtimestamp(us / 1_000_000, tz=timezone.utc)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
