"""udev property parsing with recorded events, mountinfo, and the system-disk rule."""

import json
from pathlib import Path

import pytest

from recorder.storage.udev import (
    DriveEvent, MountEntry, drive_from_event, mounts_by_devnum, parse_drive, parse_mountinfo,
    system_disks,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "udev"


def load(name: str) -> DriveEvent:
    data = json.loads((FIXTURES / f"{name}.json").read_text())
    return DriveEvent(data["action"], data["properties"], None, data["size_bytes"])


def test_recorded_loop_disk_event():
    event = load("loop_ext4_add")
    drive = drive_from_event(event, mounts={}, system=(), allow_loop=True)
    assert drive.device == "/dev/loop0" and drive.devtype == "disk"
    assert (drive.fs_type, drive.fs_label) == ("ext4", "CAMS")
    assert drive.fs_uuid == event.properties["ID_FS_UUID"]
    assert drive.size_bytes == 64 * 1024 * 1024
    assert drive.bus == "loop" and drive.candidate
    # By default a box only considers USB, SATA and NVMe disks.
    default = drive_from_event(event, mounts={}, system=(), allow_loop=False)
    assert not default.candidate and "USB, SATA or NVMe" in default.not_candidate_reason


def test_recorded_detach_has_no_filesystem_and_no_size():
    drive = drive_from_event(load("loop_detach_change"), mounts={}, system=(), allow_loop=True)
    assert drive.fs_uuid is None and drive.size_bytes == 0
    assert not drive.candidate and drive.not_candidate_reason == "empty (no medium)"


def test_usb_partition():
    event = load("usb_partition_add.synthetic")
    drive = drive_from_event(event, mounts={"8:1": ["/srv/picorder/disks/x"]}, system=(),
                             allow_loop=False)
    assert drive.bus == "usb" and drive.candidate
    assert drive.model == "Elements 25A3" and drive.serial == "57584E314533"
    assert drive.devnum == "8:1" and drive.mounted
    assert drive.mount_points == ("/srv/picorder/disks/x",)
    assert drive.disk_devpath.endswith("/block/sda")
    assert drive.to_json()["fs_label"] == "PICORDER"


def test_partition_of_the_system_disk_is_never_a_candidate():
    event = load("usb_partition_add.synthetic")
    disk = event.properties["DEVPATH"].rsplit("/", 1)[0]
    drive = drive_from_event(event, mounts={}, system={disk}, allow_loop=False)
    assert drive.system and not drive.candidate
    assert "system" in drive.not_candidate_reason


@pytest.mark.parametrize("props,bus", [
    ({"ID_BUS": "ata", "DEVNAME": "/dev/sdb"}, "ata"),
    ({"DEVNAME": "/dev/nvme0n1p1"}, "nvme"),
    ({"DEVNAME": "/dev/sdc", "ID_PATH": "pci-0000:00:14.0-usb-0:2:1.0-scsi-0:0:0:0"}, "usb"),
    ({"DEVNAME": "/dev/mmcblk0p2", "ID_PATH": "platform-fe340000.mmc"}, None),
    ({"DEVNAME": "/dev/vda"}, None),
])
def test_bus_inference(props, bus):
    props = dict(props, DEVTYPE="disk", DEVPATH="/devices/x/" + props["DEVNAME"][5:],
                 MAJOR="8", MINOR="0")
    drive = parse_drive(props, size_bytes=10**9)
    assert drive.bus == bus
    assert drive.candidate == (bus is not None)


def test_mountinfo_parsing_with_escapes():
    text = ("27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard\n"
            "90 27 7:0 / /srv/picorder/disks/ab\\040c rw,noatime shared:5 - ext4 /dev/loop0 rw\n"
            "garbage line\n")
    entries = parse_mountinfo(text)
    assert entries[0] == MountEntry("254:0", "/", "ext4", "/dev/vda", "rw,relatime,rw,discard")
    assert entries[1].mount_point == "/srv/picorder/disks/ab c"
    assert mounts_by_devnum(entries) == {"254:0": ["/"], "7:0": ["/srv/picorder/disks/ab c"]}
    assert len(entries) == 2


def test_system_disks_from_a_sysfs_tree(tmp_path):
    # /sys/dev/block/179:2 -> ../../devices/.../mmcblk0/mmcblk0p2 (a partition)
    sysfs = tmp_path / "sys"
    part = sysfs / "devices" / "platform" / "mmc" / "block" / "mmcblk0" / "mmcblk0p2"
    part.mkdir(parents=True)
    (part / "partition").write_text("2\n")
    (sysfs / "dev" / "block").mkdir(parents=True)
    (sysfs / "dev" / "block" / "179:2").symlink_to(part)
    mounts = [MountEntry("179:2", "/", "ext4", "/dev/mmcblk0p2", "rw"),
              MountEntry("8:1", "/srv/picorder/disks/u", "ext4", "/dev/sda1", "rw")]
    assert system_disks(mounts, str(sysfs)) == {"/devices/platform/mmc/block/mmcblk0"}
