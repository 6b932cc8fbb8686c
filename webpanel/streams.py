"""Caps on concurrent video responses (live.mp4, recording.mp4): per user, and per worker.

A video response holds one of a worker's threads for as long as the client reads
it (or, behind nginx, until nginx gives up on a client that stops reading). So they
never take a worker's last threads, which pages need, and one user or token cannot
take them all. When a cap is full the answer is 503 with Retry-After, at once:
queueing would hold a thread too.
"""

import hashlib
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from flask import current_app, g, request

from recorder import limits
from webpanel import locks
from webpanel.inputs import json_error

logger = logging.getLogger(__name__)

VIDEO_ENDPOINTS = frozenset({"video.live", "video.recording"})


@dataclass
class Slot:
    """One video response's place: a per-worker count and a per-user lock file."""

    caps: "VideoCaps"
    fd: int
    released: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def release(self) -> None:
        with self.lock:
            if self.released:
                return
            self.released = True
        os.close(self.fd)               # closing drops the flock
        self.caps.worker.release()


class VideoCaps:
    """`per_worker` responses in this process; `per_user` per identity across workers."""

    def __init__(self, lock_dir: Path, per_worker: int, per_user: int):
        self.lock_dir, self.per_worker, self.per_user = lock_dir, per_worker, per_user
        self.worker = threading.BoundedSemaphore(per_worker)

    def acquire(self, who: str) -> tuple[Slot | None, str]:
        """A slot, or (None, why not)."""
        if not self.worker.acquire(blocking=False):
            return None, "the panel is serving as many videos as it can"
        fd = self._user_lock(who)
        if fd is None:
            self.worker.release()
            return None, f"at most {self.per_user} videos at once per user"
        return Slot(self, fd), ""

    def _user_lock(self, who: str) -> int | None:
        # Lock files, so every gunicorn worker counts the same user's responses.
        key = hashlib.sha256(who.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        return locks.try_slot(self.lock_dir, f"video-{key}", self.per_user)


class SlotBody:
    """A streamed body that gives its slot back when it ends or the server closes it."""

    def __init__(self, body, slot: Slot):
        self.body, self.slot = body, slot
        self._iter = iter(body)

    def __iter__(self):
        return self

    def __next__(self):
        try:
            return next(self._iter)
        except StopIteration:
            self.slot.release()
            raise

    def close(self) -> None:
        try:
            close = getattr(self.body, "close", None)
            if close is not None:
                close()
        finally:
            self.slot.release()


def per_worker_cap(threads: int) -> int:
    """Video responses per worker: all threads but those kept for pages (at least one)."""
    return max(1, threads - limits.PANEL_THREADS_FOR_PAGES)


def take_slot():
    """Before a video view: hold a slot, or answer 503 with Retry-After."""
    if request.endpoint not in VIDEO_ENDPOINTS or g.get("identity") is None:
        return
    identity = g.identity
    slot, why = _caps().acquire(f"{identity.via}:{identity.name}")
    if slot is None:
        logger.info("refused a video response to %s: %s", identity.name, why)
        raise json_error(503, f"{why}; try again shortly",
                         {"Retry-After": str(limits.VIDEO_RETRY_AFTER_S)})
    g.video_slot = slot


def hand_over_slot(response):
    """After the view: a streamed body releases the slot when the server closes it."""
    slot = g.pop("video_slot", None)
    if slot is None:
        return response
    if response.direct_passthrough and response.response is not None:
        response.response = SlotBody(response.response, slot)
    else:
        slot.release()
    return response


def release_left_slot(exc) -> None:
    """A view that failed before its response was made gives its slot back."""
    slot = g.pop("video_slot", None)
    if slot is not None:
        slot.release()


def _caps() -> VideoCaps:
    return current_app.extensions["picorder_video_caps"]


def init_app(app) -> None:
    threads = int(app.config.get("THREADS") or limits.PANEL_THREADS)
    per_worker = int(app.config.get("VIDEO_RESPONSES_PER_WORKER") or per_worker_cap(threads))
    per_user = int(app.config.get("VIDEO_RESPONSES_PER_USER") or limits.VIDEO_RESPONSES_PER_USER)
    app.extensions["picorder_video_caps"] = VideoCaps(Path(app.config["DATA_DIR"]) / "locks",
                                                       per_worker, per_user)
    app.before_request(take_slot)
    app.after_request(hand_over_slot)
    app.teardown_request(release_left_slot)
