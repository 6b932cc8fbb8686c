"""DiskStorage with a fake udev watcher and fake mounts: unplug, I/O errors, no space."""

import errno
import json
import queue
import threading
import time
from pathlib import Path

import pytest

import fakes
from recorder import config, limits
from recorder.storage import disk_ops
from recorder.storage.udev import DriveEvent
from recorder.paths import DataPaths
from recorder.storage import STATE_MISSING, STATE_NO_DISK, STATE_RECORDING, DiskStorage

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "udev"


@pytest.fixture
def usb_event():
    data = json.loads((FIXTURES / "usb_partition_add.synthetic.json").read_text())
    return DriveEvent(data["action"], data["properties"], None, data["size_bytes"])


@pytest.fixture
def fake_mounts(monkeypatch):
    """mount/umount without a kernel: a mounted target is a directory in the table."""
    table: dict[str, str] = {}
    calls = []

    def mount(uuid, target, read_only=False):
        Path(target).mkdir(parents=True, exist_ok=True)
        table[str(target)] = uuid
        calls.append(("mount", uuid, read_only))

    def unmount(target, lazy=False):
        table.pop(str(target), None)
        calls.append(("umount", str(target), lazy))

    monkeypatch.setattr(disk_ops, "mount", mount)
    monkeypatch.setattr(disk_ops, "unmount", unmount)
    monkeypatch.setattr(disk_ops, "remount", lambda target, read_only: calls.append(("remount", read_only)))
    monkeypatch.setattr(disk_ops, "mount_source_uuid", lambda target: table.get(str(target)))
    monkeypatch.setattr(disk_ops, "peek_marker", lambda device: None)
    return calls


@pytest.fixture
def disk_kernel():
    """The kernel's view of the disk, as the test sets it (the fake disk has no device)."""
    view = {"problem": None, "asked": []}
    return view


@pytest.fixture
def storage(tmp_path, usb_event, fake_mounts, disk_kernel):
    paths = DataPaths(tmp_path / "data")
    paths.ensure()
    config.open_config(paths.config_db)
    watcher = fakes.FakeWatcher([usb_event])

    def kernel(root, devpath):
        disk_kernel["asked"].append((root, devpath))
        return disk_kernel["problem"]
    st = DiskStorage(paths, mount_base=tmp_path / "disks", watcher=watcher, run_jobs=False,
                     kernel=kernel)
    events = queue.Queue()
    st.start(events.put)
    st.events = events
    st.fake_watcher = watcher
    yield st
    st.stop()


def drain(st) -> bool:
    changed = False
    while not st.events.empty():
        changed |= st.handle(st.events.get())
    return changed


def test_adopted_disk_records_and_its_removal_stops_at_once(storage, usb_event, fake_mounts):
    uuid = usb_event.properties["ID_FS_UUID"]
    assert storage.state()["state"] == STATE_NO_DISK
    storage.adopt(uuid)
    assert drain(storage)
    root = storage.recording_root()
    assert root == storage.mount_base / uuid and storage.state()["state"] == STATE_RECORDING

    # The observer thread only enqueues; the main loop's handle() does the rest.
    storage.fake_watcher.callback(DriveEvent("remove", usb_event.properties))
    assert storage.recording_root() == root
    assert drain(storage)
    assert storage.recording_root() is None
    state = storage.state()
    assert state["state"] == STATE_MISSING and state["root"] is None
    assert ("umount", str(root), True) in fake_mounts

    # The same disk again (another kernel name): mounted by UUID and recording.
    props = dict(usb_event.properties, DEVNAME="/dev/sdb1",
                 DEVPATH=usb_event.properties["DEVPATH"].replace("sda", "sdb"))
    storage.fake_watcher.callback(DriveEvent("add", props, None, usb_event.size_bytes))
    assert drain(storage)
    assert storage.recording_root() == root


def wait_drain(st, predicate, timeout=5.0) -> bool:
    """Drain the queue (the disk check runs on a thread of its own) until predicate()."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        drain(st)
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_a_write_error_the_disk_does_not_show_stops_nothing(storage, usb_event, fake_mounts,
                                                            disk_kernel):
    storage.adopt(usb_event.properties["ID_FS_UUID"])
    drain(storage)
    root = storage.recording_root()
    storage.report_io_error(errno.EIO, "Could not write header", source="cam3/main")
    assert wait_drain(storage, lambda: storage.state()["disk_check"]["finding"])
    state = storage.state()
    assert state["state"] == STATE_RECORDING and storage.recording_root() == root
    assert "not a disk fault" in state["disk_check"]["finding"]
    assert state["disk_check"]["reported_by"] == ["cam3/main"]
    assert state["io_errors"][0]["name"] == "EIO"
    assert not [c for c in fake_mounts if c[0] == "umount"]
    assert not (root / "picorder" / ".picorder-disk-check").exists()   # the probe cleans up


def test_the_kernel_failing_to_write_back_means_disk_missing(storage, usb_event, disk_kernel):
    storage.adopt(usb_event.properties["ID_FS_UUID"])
    drain(storage)
    storage.report_io_error(errno.EIO, "syncing /x: [Errno 5] Input/output error", source="sync")
    assert wait_drain(storage, lambda: storage.recording_root() is None)
    assert "syncfs" in storage.state()["detail"]


def test_recording_goes_on_while_a_slow_disk_is_checked(storage, usb_event, disk_kernel):
    storage.adopt(usb_event.properties["ID_FS_UUID"])
    drain(storage)
    root = storage.recording_root()
    release = threading.Event()
    storage._check.probe = lambda root: release.wait(10) and None
    t0 = time.monotonic()
    storage.report_io_error(errno.EIO, "Input/output error", source="cam1/main")
    assert time.monotonic() - t0 < 0.5                  # the main loop does not wait
    assert storage.state()["disk_check"]["checking"]
    drain(storage)
    assert storage.recording_root() == root and storage.state()["state"] == STATE_RECORDING
    release.set()
    assert wait_drain(storage, lambda: storage.state()["disk_check"]["finding"])
    assert storage.recording_root() == root and not storage.state()["disk_check"]["checking"]


def test_errors_from_several_streams_keep_the_disk_under_check(storage, usb_event, disk_kernel,
                                                             monkeypatch):
    monkeypatch.setattr(limits, "DISK_RECHECK_S", 0.2)
    storage.adopt(usb_event.properties["ID_FS_UUID"])
    drain(storage)
    root = storage.recording_root()
    storage.report_io_error(errno.EIO, "Input/output error", source="cam1/main")
    storage.report_io_error(errno.EIO, "Input/output error", source="cam2/main")
    assert wait_drain(storage, lambda: storage.state()["disk_check"]["finding"])
    state = storage.state()
    assert state["state"] == STATE_RECORDING and storage.recording_root() == root
    assert "checking it again" in state["disk_check"]["finding"]
    assert state["disk_check"]["reported_by"] == ["cam1/main", "cam2/main"]
    # Checked again while the reports are fresh: this time the disk shows the fault.
    asked = len(disk_kernel["asked"])
    disk_kernel["problem"] = "the kernel reports the disk's device as offline"
    assert wait_drain(storage, lambda: storage.recording_root() is None)
    assert len(disk_kernel["asked"]) > asked
    assert "offline" in storage.state()["detail"]


def test_a_write_error_the_kernel_confirms_means_disk_missing(storage, usb_event, fake_mounts,
                                                              disk_kernel):
    uuid = usb_event.properties["ID_FS_UUID"]
    storage.adopt(uuid)
    drain(storage)
    root = storage.recording_root()
    disk_kernel["problem"] = "the kernel made the disk's filesystem read-only (it found errors on it)"
    storage.report_io_error(errno.EROFS, "Read-only file system", source="cam1/main")
    assert wait_drain(storage, lambda: storage.recording_root() is None)
    state = storage.state()
    assert state["state"] == STATE_MISSING and "read-only" in state["detail"]
    assert "cam1/main" in state["detail"]
    assert ("umount", str(root), True) in fake_mounts
    assert disk_kernel["asked"] == [(root, usb_event.properties["DEVPATH"])]
    # A change event of the failed disk does not bring it back; only a re-plug does.
    storage.fake_watcher.callback(DriveEvent("change", usb_event.properties, None,
                                             usb_event.size_bytes))
    assert not drain(storage) and storage.recording_root() is None
    disk_kernel["problem"] = None
    storage.fake_watcher.callback(DriveEvent("remove", usb_event.properties))
    storage.fake_watcher.callback(DriveEvent("add", usb_event.properties, None,
                                             usb_event.size_bytes))
    assert drain(storage) and storage.recording_root() is not None


def test_no_space_runs_retention_instead_of_stopping(storage, usb_event, monkeypatch):
    storage.adopt(usb_event.properties["ID_FS_UUID"])
    drain(storage)
    soon = []
    monkeypatch.setattr(storage, "run_retention_soon", lambda: soon.append(1))
    storage.report_io_error(errno.ENOSPC, "No space left on device")
    assert soon == [1]
    assert not drain(storage) and storage.state()["state"] == STATE_RECORDING


def test_a_disk_that_is_not_adopted_is_ignored(storage, usb_event, fake_mounts):
    storage.fake_watcher.callback(DriveEvent("add", usb_event.properties, None,
                                             usb_event.size_bytes))
    assert not drain(storage)
    assert not [c for c in fake_mounts if c[0] == "mount"]
    assert storage.recording_root() is None


def test_marker_of_another_disk_is_refused(storage, usb_event, fake_mounts):
    uuid = usb_event.properties["ID_FS_UUID"]
    storage.adopt(uuid)
    drain(storage)
    root = storage.recording_root()
    marker = json.loads((root / "picorder" / "marker.json").read_text())
    marker["disk_id"] = "someone-else"
    (root / "picorder" / "marker.json").write_text(json.dumps(marker))
    storage.fake_watcher.callback(DriveEvent("remove", usb_event.properties))
    storage.fake_watcher.callback(DriveEvent("add", usb_event.properties, None,
                                             usb_event.size_bytes))
    drain(storage)
    assert storage.recording_root() is None
    assert "marker" in storage.state()["detail"]


def test_adopted_directory_that_vanishes_and_returns(tmp_path, fake_mounts):
    paths = DataPaths(tmp_path / "data")
    paths.ensure()
    config.open_config(paths.config_db)
    st = DiskStorage(paths, watcher=fakes.FakeWatcher(), run_jobs=False)
    st.events = queue.Queue()
    rec = tmp_path / "nvr"
    rec.mkdir()
    st.start(st.events.put)
    try:
        with pytest.raises(disk_ops.DiskError, match="system disk"):
            st.adopt_dir(str(rec))
        st.adopt_dir(str(rec), allow_root_device=True)
        assert drain(st) and st.recording_root() == rec
        # Its filesystem is unmounted under us (an NFS share, say): the marker is gone.
        marker = rec / "picorder" / "marker.json"
        saved = marker.read_bytes()
        marker.unlink()
        st.watch()
        assert drain(st) and st.recording_root() is None
        assert st.state()["state"] == STATE_MISSING
        marker.write_bytes(saved)
        st.watch()
        assert drain(st) and st.recording_root() == rec
    finally:
        st.stop()


def test_disk_missing_shows_in_the_metrics(storage, usb_event):
    from webpanel.api.metrics import RecorderCollector
    storage.adopt(usb_event.properties["ID_FS_UUID"])
    drain(storage)
    state = storage.state()
    assert state["total_bytes"] > 0 and state["free_bytes"] > 0

    def gauge(storage_state: dict) -> dict:
        collector = RecorderCollector(None, storage_state, None)
        family = next(f for f in collector.disk_metrics() if f.name == "picorder_storage_state")
        return {s.labels["state"]: s.value for s in family.samples}

    assert gauge(state)["recording"] == 1
    storage.fake_watcher.callback(DriveEvent("remove", usb_event.properties))
    drain(storage)
    assert gauge(storage.state()) == {"recording": 0, "disk missing": 1, "no disk": 0}


def test_jobs_are_scheduled_and_failures_logged_with_traceback(tmp_path, fake_mounts, caplog,
                                                               monkeypatch):
    import logging
    import time
    paths = DataPaths(tmp_path / "data")
    paths.ensure()
    config.open_config(paths.config_db)
    st = DiskStorage(paths, watcher=fakes.FakeWatcher(), run_jobs=True)

    def broken():
        raise RuntimeError("retention exploded")

    monkeypatch.setattr(st.rotation, "run", broken)
    monkeypatch.setattr(st, "check_health", lambda: None)
    caplog.set_level(logging.ERROR, logger="recorder.storage")
    st.start(queue.Queue().put)
    try:
        jobs = {j.id: j for j in st.rotation.scheduler.get_jobs()}
        assert set(jobs) == {"retention", "storage-watch", "disk-health"}
        for job in jobs.values():
            assert job.coalesce and job.max_instances == 1 and job.misfire_grace_time
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and "retention exploded" not in caplog.text:
            time.sleep(0.05)
        record = next(r for r in caplog.records if "storage job retention failed" in r.message)
        assert "Traceback" in record.message and "in broken" in record.message
    finally:
        st.stop()


def test_demo_adopts_its_own_directory_once(tmp_path):
    from recorder import storage as storage_mod
    paths = DataPaths(tmp_path / "data")
    paths.ensure()
    config.open_config(paths.config_db)
    assert not storage_mod.disk_storage_wanted()
    storage_mod.adopt_demo_directory(paths)
    storage_mod.adopt_demo_directory(paths)
    entries = storage_mod.load_entries()
    assert [(e.kind, e.root) for e in entries] == [("dir", str(paths.default_recordings))]
    assert storage_mod.disk_storage_wanted()
    assert storage_mod.recording_root_from_config() == paths.default_recordings
    assert (paths.default_recordings / "picorder" / "marker.json").exists()


def test_the_watch_leaves_a_disk_just_adopted_writable(storage, usb_event, fake_mounts):
    """The watch may run between the adoption and the main loop making the disk the root
    (a slow box): it must not remount the disk to record on read-only."""
    uuid = usb_event.properties["ID_FS_UUID"]
    storage.adopt(uuid)
    storage.watch()                                  # before drain(): the root is not set yet
    assert ("remount", True) not in fake_mounts
    assert drain(storage)
    assert storage.state()["state"] == STATE_RECORDING


def test_the_configured_root_is_where_the_recorder_records(tmp_path, monkeypatch):
    """recording_root_from_config() (the CLI, the panel without a recorder) names the root
    that make_storage() records into, however config.db says it, and opens no config.db."""
    import peewee
    from recorder import storage as storage_mod
    from recorder.storage.settings import SETTING_RECORDINGS_DIR, SETTING_STORAGE_MODE
    monkeypatch.delenv("PICORDER_STORAGE", raising=False)
    paths = DataPaths(tmp_path / "data")
    paths.ensure()
    config.open_config(paths.config_db)
    fixed, adopted = tmp_path / "fixed", tmp_path / "adopted"
    fixed.mkdir()
    adopted.mkdir()

    def both():
        st = storage_mod.make_storage(paths, watcher=fakes.FakeWatcher(), run_jobs=False)
        st.start(queue.Queue().put)
        try:
            return storage_mod.recording_root_from_config(), st.recording_root()
        finally:
            st.stop()

    assert both() == (None, None)                       # nothing: record nowhere
    config.Setting.write(SETTING_RECORDINGS_DIR, str(fixed))
    assert both() == (fixed, fixed)                     # a server's fixed directory
    config.Setting.write(SETTING_STORAGE_MODE, "disks")
    assert both() == (None, None)                       # disks only, none adopted
    DiskStorage(paths, watcher=fakes.FakeWatcher(), run_jobs=False).adopt_dir(
        str(adopted), allow_root_device=True)
    assert both() == (adopted, adopted)
    config.db.close()
    config.db.init(None)
    try:
        with pytest.raises(peewee.InterfaceError):
            storage_mod.recording_root_from_config()    # no config.db opened behind the back
    finally:
        config.open_config(paths.config_db)


def adopted_disk_mounted_by_pid1(tmp_path, usb_event):
    """config.db with the USB disk adopted and active, and a mountinfo file showing it mounted
    at its mount point (as PID 1 keeps it across a restart of the recorder)."""
    from recorder.storage.settings import AdoptedEntry, save_entries, set_active
    props = usb_event.properties
    uuid, devnum = props["ID_FS_UUID"], f"{props['MAJOR']}:{props['MINOR']}"
    paths = DataPaths(tmp_path / "data")
    paths.ensure()
    config.open_config(paths.config_db)
    target = tmp_path / "disks" / uuid
    target.mkdir(parents=True)
    marker = disk_ops.Marker.new("box", uuid)
    disk_ops.write_marker(target, marker)          # what the mounted disk holds
    save_entries([AdoptedEntry("disk", marker.disk_id, str(target), uuid, "PICORDER", 1)])
    set_active(marker.disk_id)
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(f"25 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw\n"
                         f"98 25 {devnum} / {target} rw,noatime shared:60 - ext4 "
                         f"{props['DEVNAME']} rw\n")
    return paths, target, mountinfo


def test_a_restarted_recorder_takes_the_mount_pid1_kept(tmp_path, usb_event, monkeypatch):
    """After a restart of the recorder PID 1 still has the disk mounted at its mount point (its
    transient mount unit), findmnt names no UUID for it and a second systemd-mount fails
    ("already loaded"): the recorder takes the mount that mountinfo shows, and records."""
    import subprocess
    paths, target, mountinfo = adopted_disk_mounted_by_pid1(tmp_path, usb_event)
    ran = []

    def run(argv, timeout=None, check=True):
        ran.append(argv)
        if argv[0] == "systemd-mount":
            raise disk_ops.DiskError("systemd-mount failed: Unit srv-picorder-disks.mount was "
                                     "already loaded or has a fragment file.")
        return subprocess.CompletedProcess(argv, 1 if argv[0] == "findmnt" else 0, "", "")
    monkeypatch.setattr(disk_ops, "run", run)
    monkeypatch.setattr(disk_ops, "systemd_manages_mounts", lambda *args: True)
    st = DiskStorage(paths, mount_base=tmp_path / "disks", watcher=fakes.FakeWatcher([usb_event]),
                     run_jobs=False, mountinfo=str(mountinfo))
    st.start(queue.Queue().put)
    try:
        assert st.state()["state"] == STATE_RECORDING and st.recording_root() == target
        assert ["mount", "-o", "remount,rw", str(target)] in ran
        assert not [argv for argv in ran if argv[0] == "systemd-mount"]
    finally:
        st.stop()
    # A mount point with nothing mounted on it is mounted as before.
    mountinfo.write_text("25 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw\n")
    assert disk_ops.mounted_device(target, str(mountinfo)) is None


def test_disk_list_without_a_recorder_sees_the_mount_pid1_kept(tmp_path, usb_event, monkeypatch):
    """`picorder disk list` acting without a recorder counts a mount as the recorder does:
    the disk mounted at its mount point in mountinfo (findmnt naming no UUID for it) shows
    as mounted and recording, not as "not attached"."""
    import subprocess
    paths, target, mountinfo = adopted_disk_mounted_by_pid1(tmp_path, usb_event)

    def run(argv, timeout=None, check=True):        # findmnt names no UUID for the mount
        out = "rw,noatime" if argv[:4] == ["findmnt", "-n", "-o", "OPTIONS"] else ""
        return subprocess.CompletedProcess(argv, 0 if out else 1, out, "")
    monkeypatch.setattr(disk_ops, "run", run)
    st = DiskStorage(paths, mount_base=tmp_path / "disks", watcher=fakes.FakeWatcher([usb_event]),
                     run_jobs=False, mountinfo=str(mountinfo))
    listed = st.cmd_list()                           # not started: no watcher, as the CLI does
    adopted = listed["adopted"][0]
    assert adopted["mounted"] and not adopted["read_only"]
    assert listed["state"] == STATE_RECORDING and listed["root"] == str(target)


def test_the_configured_root_reads_each_setting_once(tmp_path, monkeypatch):
    """recording_root_from_config() (every panel page that needs the root asks it) reads
    the adopted disks, and each setting it needs, once per call."""
    from recorder import storage as storage_mod
    from recorder.storage.settings import SETTING_RECORDINGS_DIR
    monkeypatch.delenv("PICORDER_STORAGE", raising=False)
    paths = DataPaths(tmp_path / "data")
    paths.ensure()
    config.open_config(paths.config_db)
    fixed = tmp_path / "fixed"
    config.Setting.write(SETTING_RECORDINGS_DIR, str(fixed))
    reads = []
    real_read = config.Setting.read.__func__

    def read(cls, key, default=None):
        reads.append(key)
        return real_read(cls, key, default)
    monkeypatch.setattr(config.Setting, "read", classmethod(read))
    assert storage_mod.recording_root_from_config() == fixed
    assert sorted(reads) == sorted(set(reads)), reads


def test_state_asks_the_filesystem_for_its_space_once(tmp_path, monkeypatch):
    """state() (every status call) gives the recording root's free space and each adopted
    root's, with one statvfs per root."""
    import os
    paths = DataPaths(tmp_path / "data")
    paths.ensure()
    config.open_config(paths.config_db)
    adopted = tmp_path / "adopted"
    adopted.mkdir()
    st = DiskStorage(paths, watcher=fakes.FakeWatcher(), run_jobs=False)
    st.adopt_dir(str(adopted), allow_root_device=True)
    st.start(queue.Queue().put)
    calls = []
    real_statvfs = os.statvfs

    def statvfs(path):
        calls.append(str(path))
        return real_statvfs(path)
    monkeypatch.setattr(os, "statvfs", statvfs)
    try:
        state = st.state()
    finally:
        st.stop()
    assert state["root"] == str(adopted) and state["free_bytes"] > 0
    assert state["disks"][0]["free_bytes"] == state["free_bytes"]
    assert calls == [str(adopted)]
