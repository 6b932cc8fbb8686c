"""The panel's view of the recorder: its status over the control socket, and the recording root."""

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from flask import current_app
from peewee import DatabaseError

from recorder import control, limits, storage
from recorder.paths import DataPaths
from recorder.status import RecorderStatus, StreamStatus

logger = logging.getLogger(__name__)

NOT_RUNNING = "the recorder is not running"


class Unavailable(Exception):
    """The recorder cannot be reached (not running, socket missing, timeout)."""


class Refused(Exception):
    """The recorder answered with an error; the message is for the user."""


@dataclass(frozen=True)
class RecorderState:
    """The recorder's status, or why there is none."""

    running: bool
    status: RecorderStatus | None
    message: str | None = None

    def streams(self) -> list[StreamStatus]:
        return list(self.status.streams) if self.status else []

    def stream(self, camera: str, stream: str) -> StreamStatus | None:
        return self.status.stream(camera, stream) if self.status else None

    def storage(self) -> dict:
        return dict(self.status.storage) if self.status else {}


_cache_lock = threading.Lock()
_cache: dict[str, tuple[float, RecorderState]] = {}


def data_paths() -> DataPaths:
    return DataPaths(Path(current_app.config["DATA_DIR"]))


def call(cmd: str, *, timeout: float = limits.CONTROL_TIMEOUT_S, **args):
    """Send one command to the recorder; raise Unavailable or Refused."""
    socket_path = data_paths().control_socket
    try:
        return control.request(socket_path, cmd, timeout=timeout, **args)
    except control.RecorderUnavailable as exc:
        raise Unavailable(str(exc) or NOT_RUNNING) from exc
    except control.ControlError as exc:
        raise Refused(str(exc)) from exc
    finally:
        if cmd != "status":
            forget_state()       # a command may change what the status says


def get_state(max_age: float = limits.STATUS_CACHE_S) -> RecorderState:
    """The recorder's status, reused for `max_age` seconds; never raises."""
    key = str(data_paths().control_socket)
    now = time.monotonic()
    with _cache_lock:
        hit = _cache.get(key)
        if hit and now - hit[0] < max_age:
            return hit[1]
    try:
        state = RecorderState(True, RecorderStatus.from_json(call("status")))
    except Unavailable as exc:
        state = RecorderState(False, None, str(exc))
    except (Refused, OSError, ValueError, TypeError, AttributeError) as exc:
        logger.warning("recorder status failed: %s", exc)
        state = RecorderState(False, None, f"the recorder did not answer properly: {exc}")
    with _cache_lock:
        _cache[key] = (time.monotonic(), state)
    return state


def forget_state() -> None:
    """Drop the cached status (after a change the next page should see)."""
    with _cache_lock:
        _cache.clear()


def reload_best_effort() -> bool:
    """Ask the recorder to reload cameras now; it also notices by polling config.db, so a
    recorder that is not running is no error for the page (its status says so)."""
    try:
        call("reload")                  # which drops the cached status
    except (Unavailable, Refused) as exc:
        logger.info("reload not sent (%s); the recorder will notice the change itself", exc)
        return False
    return True


def recorder_call(cmd: str, **args):
    """Ask the recorder over its control socket; return (result, error text)."""
    try:
        return call(cmd, **args), None
    except (Unavailable, Refused) as exc:
        return None, str(exc)


def recorder_status(max_age: float = limits.STATUS_CACHE_S
                    ) -> tuple[RecorderStatus | None, str | None]:
    """The recorder's status (briefly cached), or (None, why not)."""
    state = get_state(max_age)
    if state.running:
        return state.status, None
    return None, state.message or NOT_RUNNING


def recording_root() -> Path | None:
    """Where recordings are: the running recorder's root, else the configured one."""
    override = current_app.config.get("RECORDING_ROOT")
    if override:
        return Path(override)
    state = get_state()
    if state.running:
        root = state.storage().get("root")
        return Path(root) if root else None
    try:
        root = storage.recording_root_from_config()
    except (OSError, DatabaseError):
        logger.exception("cannot find the configured recording root")
        return None
    return Path(root) if root else None


def picorder_dir() -> Path | None:
    """R/picorder of the current recording root, or None without one."""
    root = recording_root()
    return root / "picorder" if root else None
