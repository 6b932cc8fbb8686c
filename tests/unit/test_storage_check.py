"""The disk-suspicion logic: a reported write error fails the disk only when the disk shows it."""

import errno
import queue
import threading

from recorder import limits
from recorder.storage.disk_check import (
    DiskCheck, DiskCheckDone, DiskEvidence, judge, kernel_view, probe_write,
)


def test_judge_fails_the_disk_only_on_what_the_disk_shows():
    one = ("cam3/main",)
    two = ("cam1/main", "cam2/main")
    passed = judge(DiskEvidence(None, None, one))
    assert not passed.failed and not passed.recheck
    assert "cam3/main" in passed.reason and "not a disk fault" in passed.reason
    several = judge(DiskEvidence(None, None, two))
    assert not several.failed and several.recheck
    kernel = judge(DiskEvidence("the kernel no longer has the disk's device", None, one))
    assert kernel.failed and kernel.reason == "the kernel no longer has the disk's device"
    probe = judge(DiskEvidence(None, "Input/output error (EIO)", one))
    assert probe.failed and "Input/output error (EIO)" in probe.reason
    # However many streams report, a disk that passes both checks is not failed.
    many = tuple(f"cam{n}/main" for n in range(8))
    assert not judge(DiskEvidence(None, None, many)).failed
    # The kernel itself failing to write data back (syncfs EIO) is the disk's fault.
    writeback = judge(DiskEvidence(None, None, ("sync",), writeback_failed=True))
    assert writeback.failed and "syncfs" in writeback.reason


def test_probe_writes_fsyncs_and_removes_its_file(tmp_path):
    (tmp_path / "picorder").mkdir()
    assert probe_write(tmp_path) is None
    assert list((tmp_path / "picorder").iterdir()) == []
    # A recording root whose picorder directory cannot take a file fails the probe.
    other = tmp_path / "other"
    other.mkdir()
    (other / "picorder").write_text("not a directory")
    assert "ENOTDIR" in probe_write(other)


def test_kernel_view_of_the_device(tmp_path):
    sys_root = tmp_path / "sys"
    disk = sys_root / "devices" / "usb1" / "block" / "sda"
    (disk / "sda1").mkdir(parents=True)
    (disk / "device").mkdir()
    (disk / "device" / "state").write_text("running\n")
    root = tmp_path / "root"
    root.mkdir()
    devpath = "/devices/usb1/block/sda/sda1"
    assert kernel_view(root, devpath, sys_root) is None
    assert kernel_view(root, None, sys_root) is None
    (disk / "device" / "state").write_text("offline\n")
    assert kernel_view(root, devpath, sys_root) == "the kernel reports the disk's device as offline"
    assert kernel_view(root, "/devices/usb1/block/sdb/sdb1", sys_root) == \
        "the kernel no longer has the disk's device"
    assert "cannot be reached" in kernel_view(tmp_path / "gone", devpath, sys_root)


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_reports_count_within_their_window():
    clock = FakeClock()
    check = DiskCheck(lambda e: None, clock=clock)
    check.report("cam1/main")
    clock.now += limits.DISK_REPORT_WINDOW_S / 2
    check.report("cam2/main")
    check.report("cam1/main")
    assert check.sources() == ("cam1/main", "cam2/main")
    clock.now += limits.DISK_REPORT_WINDOW_S * 0.75
    check.report("index")
    assert check.sources() == ("cam1/main", "cam2/main", "index")
    clock.now += limits.DISK_REPORT_WINDOW_S * 0.6
    assert check.sources() == ("index",)
    # Only syncfs's own EIO counts as the kernel's word on the disk.
    check.report("sync", errno.EACCES)
    check.report("cam1/main", errno.EIO)
    assert not check.writeback_failed()
    check.report("sync", errno.EIO)
    assert check.writeback_failed()
    clock.now += limits.DISK_REPORT_WINDOW_S + 1
    assert not check.writeback_failed()


def test_one_check_at_a_time_and_a_hanging_probe_is_a_failed_disk(tmp_path):
    events = queue.Queue()
    release = threading.Event()
    kernel_asked = []

    def hanging_probe(root):
        release.wait(10)
        return None

    def kernel(root, devpath):
        kernel_asked.append(devpath)
        return None

    check = DiskCheck(events.put, probe=hanging_probe, kernel=kernel, timeout_s=0.3)
    check.report("cam1/main")
    assert check.start(tmp_path, "/devices/x/sda1")
    assert check.running
    assert not check.start(tmp_path, "/devices/x/sda1")     # the running check will do
    done = events.get(timeout=5)
    release.set()
    assert isinstance(done, DiskCheckDone) and done.root == tmp_path
    assert done.evidence == DiskEvidence(None, "a write did not complete within 0.3 s",
                                         ("cam1/main",))
    assert judge(done.evidence).failed
    assert kernel_asked == ["/devices/x/sda1"] and not check.running
    # The next report starts a new check.
    check.probe = lambda root: None
    assert check.start(tmp_path, None)
    assert not judge(events.get(timeout=5).evidence).failed
