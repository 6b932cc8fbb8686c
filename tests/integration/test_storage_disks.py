"""Real loop-device disks and a real udevd: detection, format, adopt, mount, eject, re-plug."""

import json
import os
import queue
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recorder import config
from recorder.storage import disk_ops
from recorder.storage.udev import PyudevWatcher, list_drives
from recorder.paths import DataPaths
from recorder.storage import (
    STATE_MISSING, STATE_NO_DISK, STATE_RECORDING, DiskStorage, box_id, load_entries,
)
from helpers.storage import capture_fixture, sh

pytestmark = [pytest.mark.integration, pytest.mark.root]


def picorder(data: Path, mount_base: Path, *args, check=False) -> subprocess.CompletedProcess:
    env = dict(os.environ, PICORDER_ALLOW_LOOP="1", PICORDER_MOUNT_BASE=str(mount_base))
    proc = subprocess.run([sys.executable, "-m", "picorder", "--data", str(data), *args],
                          capture_output=True, text=True, env=env, timeout=120)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def next_event(events: queue.Queue, match, timeout: float):
    """The first queued udev event whose properties match, or None after timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            event = events.get(timeout=0.2)
        except queue.Empty:
            continue
        if match(event.properties):
            return event
    return None


def mount_options(target: Path) -> str:
    return sh("findmnt", "-n", "-o", "OPTIONS", "--mountpoint", target).stdout.strip()


def test_udev_reports_a_new_disk_with_its_uuid(loop_disks, tmp_path):
    events = queue.Queue()
    watcher = PyudevWatcher()
    watcher.start(events.put)
    try:
        dev = loop_disks.create("detect", label="CAMS")
        uuid = loop_disks.uuid(dev)

        event = next_event(events, lambda p: p.get("DEVNAME") == dev
                           and p.get("ID_FS_UUID") == uuid, 10)
        assert event is not None, "no udev event carried the new filesystem's UUID"
        capture_fixture("loop_ext4_add", event)
        found = {d.device: d for d in list_drives(watcher.enumerate(), allow_loop=True)}
        drive = found[dev]
        assert (drive.fs_uuid, drive.fs_type, drive.fs_label, drive.bus) == (uuid, "ext4", "CAMS", "loop")
        assert drive.candidate and drive.size_bytes == 64 * 1024 * 1024 and not drive.mounted
        # A real box only considers usb/ata/nvme.
        default = {d.device: d for d in list_drives(watcher.enumerate())}
        assert not default[dev].candidate
        # The root filesystem's disk is never a candidate.
        system = [d for d in found.values() if d.system]
        assert system and not any(d.candidate for d in system)
        loop_disks.detach(dev)
        gone = next_event(events, lambda p: p.get("DEVNAME") == dev
                          and not p.get("ID_FS_UUID"), 10)
        assert gone is not None, "no udev event for the detached disk"
        capture_fixture("loop_detach_change", gone)
    finally:
        watcher.stop()


def test_format_adopt_mount_marker_eject(loop_disks, mount_base, tmp_path):
    data = tmp_path / "data"
    dev = loop_disks.create("blank", fs=None)
    out = picorder(data, mount_base, "disk", "format", dev, "--confirm", dev, check=True).stdout
    uuid = loop_disks.uuid(dev)
    assert uuid and uuid in out
    assert sh("blkid", "-p", "-s", "LABEL", "-o", "value", dev).stdout.strip() == "PICORDER"
    assert "largefile" not in sh("tune2fs", "-l", dev).stdout or True
    inodes = int(next(l.split(":")[1] for l in sh("tune2fs", "-l", dev).stdout.splitlines()
                      if l.startswith("Inode count")))
    assert inodes <= 64 * 2, "not formatted with -T largefile (one inode per MiB)"

    picorder(data, mount_base, "disk", "adopt", uuid, check=True)
    target = mount_base / uuid
    assert os.path.ismount(target)
    assert "noatime" in mount_options(target) and "rw" in mount_options(target).split(",")
    marker = json.loads((target / "picorder" / "marker.json").read_text())
    config.open_config(DataPaths(data).config_db)
    assert marker["box_id"] == box_id() and marker["fs_uuid"] == uuid
    assert [e.uuid for e in load_entries()] == [uuid]

    listing = json.loads(picorder(data, mount_base, "disk", "list", "--json", check=True).stdout)
    mine = next(d for d in listing["drives"] if d["fs_uuid"] == uuid)
    assert mine["mounted"] and mine["marker_box_id"] == marker["box_id"]
    assert listing["adopted"][0]["active"] and listing["state"] == STATE_RECORDING

    picorder(data, mount_base, "disk", "eject", uuid, check=True)
    assert not os.path.ismount(target)
    # The unmounted mount point refuses writes, even from root.
    with pytest.raises(PermissionError):
        (target / "picorder").mkdir()
    with pytest.raises(PermissionError):
        (target / "stray.mp4").write_bytes(b"x")
    # The marker can be read without mounting (debugfs), so `disk list` still knows it.
    listing = json.loads(picorder(data, mount_base, "disk", "list", "--json", check=True).stdout)
    mine = next(d for d in listing["drives"] if d["fs_uuid"] == uuid)
    assert mine["marker_disk_id"] == marker["disk_id"] and not mine["mounted"]

    # Formatting an adopted (ejected) disk again needs --force, and ends its adoption.
    r = picorder(data, mount_base, "disk", "format", dev, "--confirm", dev)
    assert r.returncode == 2 and "holds data (ext4)" in r.stderr
    picorder(data, mount_base, "disk", "format", dev, "--confirm", dev, "--force", check=True)
    assert loop_disks.uuid(dev) != uuid
    listing = json.loads(picorder(data, mount_base, "disk", "list", "--json", check=True).stdout)
    assert listing["adopted"] == [] and listing["state"] == "no disk"


def test_bad_input_is_refused_and_nothing_is_touched(loop_disks, mount_base, tmp_path):
    data = tmp_path / "data"
    dev = loop_disks.create("full", label="HOLIDAYS")
    uuid = loop_disks.uuid(dev)

    r = picorder(data, mount_base, "disk", "adopt", "0b1e7f2a-0000-4000-8000-000000000000")
    assert r.returncode == 2 and "no attached disk has the filesystem UUID" in r.stderr
    r = picorder(data, mount_base, "disk", "adopt", "../../etc")
    assert r.returncode == 2 and "is not a filesystem UUID" in r.stderr

    # The disk holding / is never adopted or formatted. This machine's root disk shows no
    # filesystem UUID, so let the loop disk stand in for it: the same rule, a real device.
    from recorder.storage import disk_storage as storage_mod
    real_rule = storage_mod.system_disks
    loop_devpath = "/devices/virtual/block/" + os.path.basename(dev)
    try:
        storage_mod.system_disks = lambda mounts: real_rule(mounts) | {loop_devpath}
        st = _storage(data, mount_base)
        with pytest.raises(disk_ops.DiskError, match="holds the system"):
            st.adopt(uuid)
        with pytest.raises(disk_ops.DiskError, match="holds the system"):
            st.format(dev, confirm=dev, force=True)
    finally:
        storage_mod.system_disks = real_rule
    assert not os.path.ismount(mount_base / uuid) and loop_disks.uuid(dev) == uuid

    # Formatting: confirmation, data without --force, mounted.
    r = picorder(data, mount_base, "disk", "format", dev)
    assert r.returncode == 2 and "confirm by naming it again" in r.stderr
    r = picorder(data, mount_base, "disk", "format", dev, "--confirm", "/dev/loop99")
    assert r.returncode == 2 and "confirm" in r.stderr
    r = picorder(data, mount_base, "disk", "format", dev, "--confirm", dev)
    assert r.returncode == 2 and "holds data (ext4)" in r.stderr and "--force" in r.stderr
    assert loop_disks.uuid(dev) == uuid
    mnt = tmp_path / "elsewhere"
    mnt.mkdir()
    sh("mount", dev, mnt)
    try:
        r = picorder(data, mount_base, "disk", "format", dev, "--confirm", dev, "--force")
        assert r.returncode == 2 and "is mounted at" in r.stderr
    finally:
        sh("umount", mnt)
    assert loop_disks.uuid(dev) == uuid
    r = picorder(data, mount_base, "disk", "format", "/dev/vda", "--confirm", "/dev/vda", "--force")
    assert r.returncode == 2 and ("holds the system" in r.stderr or "not an attached disk" in r.stderr)

    # A directory on the root device needs an explicit yes.
    rec = tmp_path / "recordings"
    rec.mkdir()
    r = picorder(data, mount_base, "disk", "adopt-dir", rec)
    assert r.returncode == 2 and "system disk" in r.stderr and "--allow-root-device" in r.stderr
    assert not (rec / "picorder").exists()
    picorder(data, mount_base, "disk", "adopt-dir", rec, "--allow-root-device", check=True)
    assert (rec / "picorder" / "marker.json").exists()

    # Zero or negative retention.
    picorder(data, mount_base, "camera", "add", "cam1", "rtsp://127.0.0.1:1/x", check=True)
    for flag, value in (("--max-age-days", "0"), ("--max-bytes", "-5"), ("--min-days", "0")):
        r = picorder(data, mount_base, "camera", "set", "cam1", flag, value)
        assert r.returncode == 2 and "greater than zero" in r.stderr
    r = picorder(data, mount_base, "disk", "floor", "--bytes", "0")
    assert r.returncode == 2 and "greater than zero" in r.stderr
    assert loop_disks.uuid(dev) == uuid


def _storage(data: Path, mount_base: Path) -> DiskStorage:
    paths = DataPaths(data)
    paths.ensure()
    config.open_config(paths.config_db)
    return DiskStorage(paths, mount_base=mount_base, allow_loop=True, run_jobs=False)


def _pump(storage: DiskStorage, events: queue.Queue, until, timeout: float) -> float:
    """Play the service's main loop: hand each queued event back to the storage."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            storage.handle(events.get(timeout=0.1))
        except queue.Empty:
            pass
        if until():
            return time.monotonic() - t0
    raise AssertionError(f"not reached within {timeout} s: state {storage.state()['state']}")


def test_unplug_and_replug_same_disk(loop_disks, mount_base, tmp_path):
    data = tmp_path / "data"
    dev = loop_disks.create("replug")
    uuid = loop_disks.uuid(dev)
    image = loop_disks.devices[dev]
    storage = _storage(data, mount_base)
    events = queue.Queue()
    storage.start(events.put)
    try:
        assert storage.state()["state"] == STATE_NO_DISK and storage.recording_root() is None
        storage.adopt(uuid)
        _pump(storage, events, lambda: storage.recording_root() is not None, 5)
        root = storage.recording_root()
        assert root == mount_base / uuid
        (root / "picorder" / "kept.mp4").write_bytes(b"old recording")

        # Pull it: the filesystem vanishes from under the mount and the device goes away.
        sh("umount", "-l", root)
        loop_disks.detach(dev)
        took = _pump(storage, events, lambda: storage.recording_root() is None, 5)
        assert took < 2.0
        assert storage.state()["state"] == STATE_MISSING
        with pytest.raises(PermissionError):
            (root / "picorder").mkdir()

        # Re-plug: the same disk comes back (maybe under another name), remounted by UUID.
        dev2 = loop_disks.attach(image)
        took = _pump(storage, events, lambda: storage.recording_root() is not None, 10)
        assert took < 10.0 and storage.state()["state"] == STATE_RECORDING
        assert (storage.recording_root() / "picorder" / "kept.mp4").read_bytes() == b"old recording"

        # Another disk is ignored until it is adopted.
        other = loop_disks.create("stranger")
        _pump(storage, events, lambda: events.empty(), 3)
        time.sleep(0.5)
        while not events.empty():
            storage.handle(events.get())
        assert not os.path.ismount(mount_base / loop_disks.uuid(other))
        assert storage.recording_root() == mount_base / uuid
        del dev2
    finally:
        storage.stop()


def test_several_disks_one_active_others_read_only(loop_disks, mount_base, tmp_path):
    data = tmp_path / "data"
    first, second = loop_disks.create("one"), loop_disks.create("two")
    u1, u2 = loop_disks.uuid(first), loop_disks.uuid(second)
    storage = _storage(data, mount_base)
    events = queue.Queue()
    storage.start(events.put)
    try:
        storage.adopt(u1)
        _pump(storage, events, lambda: storage.recording_root() == mount_base / u1, 5)
        storage.adopt(u2)
        _pump(storage, events, lambda: storage.recording_root() == mount_base / u2, 5)
        storage.watch()      # the periodic job turns the old disk read-only
        assert "ro" in mount_options(mount_base / u1).split(",")
        assert "rw" in mount_options(mount_base / u2).split(",")
        view = {d["uuid"]: d for d in storage.state()["disks"]}
        assert view[u1]["read_only"] and not view[u1]["active"] and view[u2]["active"]
    finally:
        storage.stop()

    # The next start mounts both again: the active one rw, the other ro.
    for target in (mount_base / u1, mount_base / u2):
        sh("umount", target)
    storage = _storage(data, mount_base)
    storage.start(queue.Queue().put)
    try:
        assert storage.recording_root() == mount_base / u2
        assert "ro" in mount_options(mount_base / u1).split(",")
    finally:
        storage.stop()


def test_eject_while_recording(loop_disks, mount_base, tmp_path):
    data = tmp_path / "data"
    dev = loop_disks.create("eject")
    uuid = loop_disks.uuid(dev)
    storage = _storage(data, mount_base)
    events = queue.Queue()
    storage.start(events.put)
    try:
        storage.adopt(uuid)
        _pump(storage, events, lambda: storage.recording_root() is not None, 5)
        result = storage.eject(uuid)
        assert result == {"uuid": uuid, "unmounted": False}   # recording on it: not yet
        _pump(storage, events, lambda: storage.recording_root() is None, 2)
        assert storage.state()["detail"].startswith("ejecting")
        storage.watch()          # the periodic job unmounts once the recordings closed
        _pump(storage, events, lambda: storage.state()["detail"] == "ejected: safe to unplug", 2)
        assert not os.path.ismount(mount_base / uuid)
        # Still plugged in: a udev change event does not mount it again.
        sh("udevadm", "trigger", "--action=change", dev)
        time.sleep(1)
        while not events.empty():
            storage.handle(events.get())
        assert not os.path.ismount(mount_base / uuid) and storage.recording_root() is None
        # Unplug and plug in again: recording resumes on it.
        image = loop_disks.devices[dev]
        loop_disks.detach(dev)
        loop_disks.attach(image)
        _pump(storage, events, lambda: storage.recording_root() == mount_base / uuid, 10)
    finally:
        storage.stop()


def partitioned_image(path: Path, size_mb: int = 64) -> None:
    """A disk image with an MBR and one ext4 partition, like most USB disks."""
    with open(path, "wb") as fh:
        fh.truncate(size_mb * 1024 * 1024)
    subprocess.run(["sfdisk", "-q", str(path)], input="label: dos\nstart=2048, type=83\n",
                   text=True, check=True)
    sh("mke2fs", "-q", "-F", "-t", "ext4", "-L", "USBDISK", "-E", f"offset={2048 * 512}", path,
       f"{size_mb * 1024 - 1024}k")


def test_partition_removed_and_added_with_real_udev_events(loop_disks, mount_base, tmp_path):
    """A real udev 'remove' and 'add' of a partition (partx -d / -a on a loop disk)."""
    image = tmp_path / "usb.img"
    partitioned_image(image)
    dev = sh("losetup", "-f", "--show", "-P", image).stdout.strip()
    loop_disks.devices[dev] = image
    part = dev + "p1"
    sh("partx", "-a", dev, check=False)          # this kernel does not scan loop partitions
    sh("udevadm", "settle", "--timeout=10")
    assert os.path.exists(part)
    uuid = loop_disks.uuid(part)
    storage = _storage(tmp_path / "data", mount_base)
    events = queue.Queue()
    storage.start(events.put)
    try:
        storage.adopt(uuid)
        _pump(storage, events, lambda: storage.recording_root() == mount_base / uuid, 5)
        drive = next(d for d in storage.drives() if d.fs_uuid == uuid)
        assert drive.devtype == "partition" and drive.device == part

        sh("umount", "-l", mount_base / uuid)   # the filesystem dies with its device ...
        sh("partx", "-d", dev)                  # ... which the kernel removes: udev 'remove'
        took = _pump(storage, events, lambda: storage.recording_root() is None, 5)
        assert took < 2.0 and storage.state()["state"] == STATE_MISSING

        sh("partx", "-a", dev)                  # udev 'add', with the filesystem's UUID
        took = _pump(storage, events, lambda: storage.recording_root() == mount_base / uuid, 10)
        assert took < 10.0 and os.path.ismount(mount_base / uuid)
    finally:
        storage.stop()
        sh("umount", "-l", mount_base / uuid, check=False)
        sh("partx", "-d", dev, check=False)
