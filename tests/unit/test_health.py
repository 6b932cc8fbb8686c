"""SMART parsing (smartctl --json) and the health report."""

import shutil

import pytest

from recorder.storage import health

# The shape of `smartctl --json -H -A` for a SATA disk behind a USB bridge (trimmed).
ATA = {
    "smartctl": {"exit_status": 0},
    "device": {"name": "/dev/sda", "type": "sat"},
    "smart_status": {"passed": True},
    "ata_smart_attributes": {"revision": 16, "table": [
        {"id": 1, "name": "Raw_Read_Error_Rate", "raw": {"value": 0, "string": "0"}},
        {"id": 5, "name": "Reallocated_Sector_Ct", "raw": {"value": 8, "string": "8"}},
        {"id": 9, "name": "Power_On_Hours", "raw": {"value": 1234, "string": "1234"}},
        {"id": 187, "name": "Reported_Uncorrect", "raw": {"value": 0, "string": "0"}},
        {"id": 197, "name": "Current_Pending_Sector", "raw": {"value": 0, "string": "0"}},
        {"id": 198, "name": "Offline_Uncorrectable", "raw": {"value": 0, "string": "0"}},
    ]},
}

NVME = {
    "smart_status": {"passed": False},
    "nvme_smart_health_information_log": {"critical_warning": 0, "media_errors": 3,
                                          "num_err_log_entries": 12},
}


def test_ata_attributes_that_predict_failure():
    passed, attrs = health.parse_smartctl(ATA)
    assert passed is True
    by_id = {a.id: a for a in attrs}
    assert sorted(by_id) == [5, 187, 197, 198]
    assert by_id[5].raw == 8 and by_id[5].worrying
    assert not by_id[197].worrying


def test_nvme_log():
    passed, attrs = health.parse_smartctl(NVME)
    assert passed is False
    by_name = {a.name: a for a in attrs}
    assert by_name["media_errors"].worrying and not by_name["num_err_log_entries"].worrying


def test_report_verdicts(monkeypatch):
    monkeypatch.setattr(health.shutil, "which", lambda name: "/usr/sbin/smartctl")
    monkeypatch.setattr(health, "smartctl", lambda device: ATA)
    report = health.check("/dev/sda", [{"errno_": 5, "name": "EIO"}])
    assert report.smart_available and report.passed
    assert report.message == "warning: Reallocated_Sector_Ct"
    assert report.to_json()["io_errors"] == [{"errno_": 5, "name": "EIO"}]
    monkeypatch.setattr(health, "smartctl", lambda device: NVME)
    assert health.check("/dev/nvme0n1", []).message == "SMART failed: replace the disk"
    monkeypatch.setattr(health, "smartctl", lambda device: None)
    assert "does not answer SMART" in health.check("/dev/sda", []).message
    assert health.check(None, []).message == "no recording disk"


def test_real_smartctl_on_a_device_without_smart():
    if shutil.which("smartctl") is None:
        pytest.fail("smartmontools is missing: run `make test`, which installs it")
    # /dev/null is no disk: smartctl answers, picorder reports "no SMART" instead of failing.
    report = health.check("/dev/null", [])
    assert not report.smart_available and report.passed is None
