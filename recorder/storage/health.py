"""Disk health: SMART status and the failure-predicting attributes, plus I/O errors seen."""

import json
import logging
import shutil
import subprocess
from dataclasses import asdict, dataclass, field

from recorder import limits

logger = logging.getLogger(__name__)

# Reallocated sectors, reported uncorrectable, command timeouts, pending, offline uncorrectable.
WATCHED_ATTRIBUTES = {5: "Reallocated_Sector_Ct", 187: "Reported_Uncorrect",
                      188: "Command_Timeout", 197: "Current_Pending_Sector",
                      198: "Offline_Uncorrectable"}


@dataclass
class Attribute:
    id: int
    name: str
    raw: int
    worrying: bool


@dataclass
class HealthReport:
    device: str | None
    smart_available: bool
    passed: bool | None = None
    attributes: list[Attribute] = field(default_factory=list)
    message: str = ""
    io_errors: list = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)


def parse_smartctl(data: dict) -> tuple[bool | None, list[Attribute]]:
    """SMART verdict and watched attributes from `smartctl --json -H -A` output."""
    passed = data.get("smart_status", {}).get("passed")
    attrs = []
    for row in data.get("ata_smart_attributes", {}).get("table", []):
        if row.get("id") in WATCHED_ATTRIBUTES:
            raw = int(row.get("raw", {}).get("value", 0))
            attrs.append(Attribute(row["id"], row.get("name") or WATCHED_ATTRIBUTES[row["id"]],
                                   raw, raw > 0))
    nvme = data.get("nvme_smart_health_information_log")
    if nvme:
        for key in ("media_errors", "critical_warning", "num_err_log_entries"):
            if key in nvme:
                attrs.append(Attribute(0, key, int(nvme[key]), key != "num_err_log_entries"
                                       and int(nvme[key]) > 0))
    return passed, attrs


def smartctl(device: str) -> dict | None:
    """Run smartctl (trying the SAT passthrough USB bridges need); None when it has no answer."""
    for extra in ([], ["-d", "sat"]):
        try:
            proc = subprocess.run(["smartctl", "--json", "-H", "-A", *extra, device],
                                  capture_output=True, text=True,
                                  timeout=limits.PROBE_CMD_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired):
            logger.exception("smartctl on %s failed", device)
            return None
        try:
            data = json.loads(proc.stdout)
        except ValueError:
            continue
        # Bits 0-1 of the exit status: command line / device open failed.
        if proc.returncode & 0b11 == 0 and "smart_status" in data:
            return data
    return None


def check(device: str | None, io_errors: list) -> HealthReport:
    """The health of the recording disk; `io_errors` are the recorder's own records."""
    errors = [asdict(e) if hasattr(e, "__dataclass_fields__") else e for e in io_errors]
    if device is None:
        return HealthReport(None, False, message="no recording disk", io_errors=errors)
    if shutil.which("smartctl") is None:
        return HealthReport(device, False, message="smartmontools is not installed",
                            io_errors=errors)
    data = smartctl(device)
    if data is None:
        return HealthReport(device, False, message="the disk (or its USB bridge) does not "
                            "answer SMART queries", io_errors=errors)
    passed, attrs = parse_smartctl(data)
    worrying = [a.name for a in attrs if a.worrying]
    message = "SMART failed: replace the disk" if passed is False else (
        f"warning: {', '.join(worrying)}" if worrying else "ok")
    return HealthReport(device, True, passed, attrs, message, errors)
