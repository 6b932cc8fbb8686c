"""How the recorder mounts disks: through PID 1 when systemd runs the box, so that its
own sandbox (a mount namespace) does not hide them (docs/design.md decision 7)."""

from pathlib import Path

from recorder.storage import disk_ops

UUID = "0b2e9a3c-5f41-4c6e-9d7a-2f1e3b4c5d6e"
TARGET = Path("/srv/picorder/disks") / UUID


def test_through_pid1_a_mount_is_a_transient_unit_with_the_safe_options():
    argv = disk_ops.mount_argv(UUID, TARGET, disk_ops.MOUNT_OPTIONS, via_pid1=True)
    assert argv[0] == "systemd-mount"
    assert f"--options={disk_ops.MOUNT_OPTIONS}" in argv
    assert {"nodev", "nosuid", "noexec"} <= set(disk_ops.MOUNT_OPTIONS.split(","))
    assert "--fsck=no" in argv and "--collect" in argv
    assert argv[-2:] == [f"/dev/disk/by-uuid/{UUID}", str(TARGET)]


def test_through_pid1_an_unmount_is_run_by_pid1_lazy_or_not():
    assert disk_ops.unmount_argv(TARGET, lazy=False, via_pid1=True)[0] == "systemd-umount"
    lazy = disk_ops.unmount_argv(TARGET, lazy=True, via_pid1=True)
    assert lazy[0] == "systemd-run" and "--wait" in lazy
    assert lazy[-3:] == ["umount", "-l", str(TARGET)]


def test_without_systemd_the_recorder_mounts_itself():
    assert disk_ops.mount_argv(UUID, TARGET, "ro", via_pid1=False) == [
        "mount", "-o", "ro", f"UUID={UUID}", str(TARGET)]
    assert disk_ops.unmount_argv(TARGET, lazy=True, via_pid1=False) == ["umount", "-l", str(TARGET)]


def test_systemd_is_recognised_by_its_runtime_directory(tmp_path):
    assert not disk_ops.systemd_manages_mounts(tmp_path / "system")
    (tmp_path / "system").mkdir()
    assert disk_ops.systemd_manages_mounts(tmp_path / "system")
