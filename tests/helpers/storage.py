"""Helpers for the storage tests: commands, stopping a process, capturing udev fixtures."""

import json
import os
import signal
import subprocess
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "udev"


def sh(*argv, check=True, timeout=60) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True,
                          check=check, timeout=timeout)


def stop_gently(proc: subprocess.Popen, timeout: float = 20) -> int:
    """SIGTERM, then SIGKILL after `timeout`; the exit status."""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(5)


def capture_fixture(name: str, event) -> None:
    """With PICORDER_CAPTURE_UDEV=1, save a real udev event as a unit-test fixture."""
    if os.environ.get("PICORDER_CAPTURE_UDEV") != "1":
        return
    FIXTURES.mkdir(parents=True, exist_ok=True)
    size = None
    if event.sys_path and os.path.exists(os.path.join(event.sys_path, "size")):
        size = int(Path(event.sys_path, "size").read_text()) * 512
    (FIXTURES / f"{name}.json").write_text(json.dumps(
        {"action": event.action, "properties": event.properties, "size_bytes": size},
        indent=1, sort_keys=True) + "\n")
