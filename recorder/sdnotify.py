"""systemd's sd_notify protocol without libsystemd: READY=1, WATCHDOG=1, STOPPING=1, STATUS=."""

import logging
import os
import socket

logger = logging.getLogger(__name__)


def _address() -> str | None:
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return None
    # A leading '@' names a socket in the abstract namespace.
    return "\0" + path[1:] if path.startswith("@") else path


def notify(message: str) -> bool:
    """Send one notification; False when not run by systemd (no NOTIFY_SOCKET) or on error."""
    address = _address()
    if address is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError:
        logger.exception("sd_notify %r failed", message.split("=", 1)[0])
        return False
    return True


def ready(status: str | None = None) -> bool:
    """Tell systemd the service is up (Type=notify)."""
    return notify("READY=1" + (f"\nSTATUS={status}" if status else ""))


def watchdog() -> bool:
    """Pet the service watchdog (WatchdogSec=); call at least every watchdog_interval_s()."""
    return notify("WATCHDOG=1")


def stopping() -> bool:
    return notify("STOPPING=1")


def status(text: str) -> bool:
    return notify(f"STATUS={text}")


def watchdog_interval_s() -> float | None:
    """Half the WatchdogSec= systemd asked for, or None when no watchdog is set for us."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid.isdigit() and int(pid) != os.getpid()):
        return None
    try:
        return int(usec) / 2_000_000
    except ValueError:
        return None
