"""The recorder's status as the API shows it (GET /api/status, the cameras, /metrics)."""

import shutil
from dataclasses import asdict

from recorder.config import Camera
from recorder.status import ClockStatus, RecorderStatus, StreamStatus, stream_health
from recorder.wallclock import now_us
from webpanel import recorder_client


def disk_usage(root) -> dict:
    """Size, free and used bytes of the filesystem holding root ({} when it cannot be read)."""
    try:
        usage = shutil.disk_usage(root)
    except OSError:
        return {}
    return {"total_bytes": usage.total, "free_bytes": usage.free, "used_bytes": usage.used}


def status_json() -> dict:
    """The recorder (or why it does not answer), the clock, the storage and every stream."""
    state = recorder_client.get_state()
    status = state.status or RecorderStatus(clock=ClockStatus(now_utc_us=now_us()))
    storage = state.storage()
    root = recorder_client.recording_root()
    if root is not None:
        storage.setdefault("root", str(root))
        storage.update(disk_usage(root))
    recorder = {"running": state.running, "message": state.message, "version": status.version
                or None, "pid": status.pid, "started_utc_us": status.started_utc_us}
    now = status.clock.now_utc_us or now_us()
    return {"recorder": recorder, "clock": asdict(status.clock), "storage": storage,
            "streams": [stream_json(s, now) for s in state.streams()],
            "cameras": Camera.select().count()}


def stream_json(stream: StreamStatus, now_utc_us: int) -> dict:
    """A stream's status as the API shows it, with its state in words ("health")."""
    return {**stream.to_json(), "health": stream_health(stream, now_utc_us).to_json()}
