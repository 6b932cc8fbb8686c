"""The box for the system page: load, memory, heat, throttling, time, the recorder's log."""

import os
import re
import socket
import subprocess
import time
from pathlib import Path

from recorder import __version__, limits

THROTTLED_FILE = Path("/sys/devices/platform/soc/soc:firmware/get_throttled")
THERMAL_FILE = Path("/sys/class/thermal/thermal_zone0/temp")
LOG_LINES = 60
SECRET_IN_URL = re.compile(r"(\w+://)[^/@\s]*@")
SECRET_WORDS = re.compile(r"(?i)(password|passwd|pwd|token)([=:]\s*)\S+")
THROTTLE_BITS = {0: "under-voltage now", 1: "ARM frequency capped now", 2: "throttled now",
                 3: "soft temperature limit now", 16: "under-voltage has occurred",
                 17: "frequency capping has occurred", 18: "throttling has occurred",
                 19: "soft temperature limit has occurred"}


def read_text(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


_command_cache: dict[tuple, tuple[float, str | None]] = {}


def run_quiet(argv: list[str]) -> str | None:
    """Output of a small system command, reused for a few seconds (the page stays fast)."""
    key = tuple(argv)
    hit = _command_cache.get(key)
    if hit and time.monotonic() - hit[0] < limits.PAGE_COMMAND_CACHE_S:
        return hit[1]
    output = _run(argv)
    _command_cache[key] = (time.monotonic(), output)
    return output


def _run(argv: list[str]) -> str | None:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True,
                              timeout=limits.PAGE_COMMAND_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout if proc.returncode == 0 else None


def meminfo() -> dict:
    """/proc/meminfo in bytes."""
    values = {}
    for line in (read_text(Path("/proc/meminfo")) or "").splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts:
            values[key] = int(parts[0]) * 1024
    return values


def throttle_flags() -> list[str] | None:
    """The Pi firmware's throttling flags in words, or None where the kernel has none."""
    text = read_text(THROTTLED_FILE)
    if text is None:
        return None
    try:
        bits = int(text, 16)
    except ValueError:
        return None
    return [words for bit, words in THROTTLE_BITS.items() if bits & (1 << bit)]


def timedate() -> dict:
    """The time zone and whether NTP is synchronised, from timedatectl."""
    out = run_quiet(["timedatectl", "show"]) or ""
    props = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    zone = props.get("Timezone") or read_text(Path("/etc/timezone")) or "UTC"
    ntp = props.get("NTPSynchronized")
    return {"timezone": zone, "ntp_synchronized": None if ntp is None else ntp == "yes"}


def redact(line: str) -> str:
    """A log line without the passwords of URLs and password=/token= words."""
    line = SECRET_IN_URL.sub(r"\1***@", line)
    return SECRET_WORDS.sub(r"\1\2***", line)


def recorder_log(data_dir: Path) -> list[str]:
    """The recorder's recent log lines (the demo's log file in data_dir, else the journal),
    credentials removed."""
    log_file = data_dir / "recorder.log"
    lines = None
    if log_file.is_file():
        with open(log_file, errors="replace") as fh:
            lines = fh.readlines()[-LOG_LINES:]
    else:
        out = run_quiet(["journalctl", "-u", "picorder-recorder", "-n", str(LOG_LINES),
                         "--no-pager", "-o", "short-iso"])
        lines = out.splitlines() if out else []
    return [redact(line.rstrip("\n")) for line in lines]


def system_facts() -> dict:
    """What the system page shows about the box: version, host, load, memory, heat, time."""
    uptime = read_text(Path("/proc/uptime"))
    temp = read_text(THERMAL_FILE)
    mem = meminfo()
    return {
        "version": __version__,
        "hostname": socket.gethostname(),
        "uptime_s": float(uptime.split()[0]) if uptime else None,
        "load": os.getloadavg(),
        "cpus": os.cpu_count(),
        "mem_total": mem.get("MemTotal"),
        "mem_available": mem.get("MemAvailable"),
        "temp_c": int(temp) / 1000 if temp and temp.lstrip("-").isdigit() else None,
        "throttled": throttle_flags(),
        **timedate(),
    }
