"""Slots shared by every gunicorn worker: numbered lock files held with flock."""

import fcntl
import os
from pathlib import Path


def try_slot(lock_dir: Path, name: str, total: int) -> int | None:
    """Hold the first free one of `total` slots named `name`: its fd (close to free it), or None."""
    lock_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    for slot in range(total):
        fd = os.open(lock_dir / f"{name}-{slot}.lock",
                     os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return fd
    return None
