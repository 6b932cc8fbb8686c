"""Cameras that refused ffmpeg, watched until they accept connections again."""

import socket
import threading
from collections.abc import Callable

from recorder import limits
from recorder.events import Reachable


class ReachabilityProbe:
    """One thread that TCP-connects to cameras which refused ffmpeg, so a camera that
    comes back is recorded again within seconds instead of after a long backoff."""

    def __init__(self, enqueue: Callable[[object], None],
                 interval_s: float = limits.REACHABILITY_PROBE_S):
        self.enqueue = enqueue
        self.interval_s = interval_s
        self._watched: dict[str, tuple[str, int]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="reachability", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def watch(self, key: str, address: tuple[str, int]) -> None:
        with self._lock:
            self._watched[key] = address

    def unwatch(self, key: str) -> None:
        with self._lock:
            self._watched.pop(key, None)

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            with self._lock:
                items = list(self._watched.items())
            for key, address in items:
                try:
                    with socket.create_connection(address, timeout=limits.REACHABILITY_CONNECT_S):
                        pass
                except OSError:
                    continue
                self.unwatch(key)
                self.enqueue(Reachable(key))
