"""Reboot and power-off of the box: control commands "reboot" and "poweroff".

The command is checked at once (root? systemd as PID 1?) and refused with a
clear error otherwise. When accepted, the recorder shuts down gracefully
(streams stopped, last segments closed and indexed) and only then runs
`systemctl reboot|poweroff` through an injectable runner.
"""

import logging
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from recorder import limits
from recorder.control import ControlError

logger = logging.getLogger(__name__)

ACTIONS = ("reboot", "poweroff")
NOT_SYSTEMD = "this machine is not managed by systemd; reboot it yourself"
NOT_ROOT = "the recorder does not run as root, so it cannot reboot or shut down the box"


class PowerError(ControlError):
    """The box cannot be rebooted or powered off by the recorder; message for the user."""


@dataclass(frozen=True)
class PowerRequest:
    """Event for the recorder's main loop: shut down, then run the action."""

    action: str


def systemd_is_pid1(proc_root: Path = Path("/proc")) -> bool:
    """True when PID 1 is systemd (its comm is "systemd")."""
    try:
        return (proc_root / "1" / "comm").read_text().strip() == "systemd"
    except OSError:
        return False


def run_systemctl(argv: list[str]) -> None:
    """The real runner: systemctl returns once the job is queued."""
    subprocess.run(argv, check=True, timeout=limits.POWER_CMD_TIMEOUT_S,
                   stdin=subprocess.DEVNULL, capture_output=True)


class Power:
    """Checks, remembers and finally carries out a reboot/poweroff request."""

    def __init__(self, enqueue: Callable[[object], None], *,
                 runner: Callable[[list[str]], None] = run_systemctl,
                 is_root: Callable[[], bool] = lambda: os.geteuid() == 0,
                 systemd: Callable[[], bool] = systemd_is_pid1):
        self._enqueue = enqueue
        self._runner = runner
        self._is_root = is_root
        self._systemd = systemd
        self.pending: str | None = None

    def check(self) -> None:
        """Raise PowerError unless this process could run systemctl reboot/poweroff."""
        if not self._systemd():
            raise PowerError(NOT_SYSTEMD)
        if not self._is_root():
            raise PowerError(NOT_ROOT)

    def commands(self) -> dict[str, Callable]:
        return {action: (lambda a=action: self.request(a)) for action in ACTIONS}

    def request(self, action: str) -> dict:
        """Control handler: refuse at once, or queue a graceful shutdown then `action`."""
        if action not in ACTIONS:
            raise PowerError(f"unknown power action {action!r}")
        self.check()
        logger.warning("%s requested: stopping the recorder first", action)
        self._enqueue(PowerRequest(action))
        return {"action": action, "queued": True}

    def accept(self, event: PowerRequest) -> None:
        """Main loop: remember what to do once shutdown finished."""
        self.pending = event.action

    def finish(self) -> bool:
        """After the recorder stopped: run the pending action; False if it failed."""
        if self.pending is None:
            return True
        argv = ["systemctl", self.pending]
        try:
            self.check()
            self._runner(argv)
        except (PowerError, OSError, subprocess.SubprocessError):
            logger.exception("%s failed", " ".join(argv))
            return False
        logger.info("%s started", " ".join(argv))
        return True
