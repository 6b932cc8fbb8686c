"""Disk operations: markers, formatting, mounting by UUID, guarded mount points."""

import errno
import json
import logging
import os
import re
import stat
import subprocess
import uuid as uuidlib
from dataclasses import asdict, dataclass
from pathlib import Path

from recorder import limits
from recorder.storage.udev import MOUNTINFO, devnum_of_mount, read_mounts
from recorder.wallclock import now_us

logger = logging.getLogger(__name__)

PICORDER_DIR = "picorder"
MARKER_NAME = "marker.json"
MARKER_VERSION = 1
MARKER_MAX_BYTES = 64 * 1024
FORMAT_LABEL = "PICORDER"
MOUNT_OPTIONS = "noatime,nodev,nosuid,noexec"
RECORDING_FILESYSTEMS = ("ext4", "ext3", "ext2", "xfs", "btrfs", "f2fs")
UUID_RE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z-]{1,63}$")


class DiskError(ValueError):
    """A disk operation was refused or failed; the message is for the user."""


@dataclass(frozen=True)
class Marker:
    """The file on each recording disk that says whose it is."""

    disk_id: str
    box_id: str
    fs_uuid: str | None
    created_utc_us: int
    version: int = MARKER_VERSION

    @classmethod
    def new(cls, box_id: str, fs_uuid: str | None) -> "Marker":
        return cls(str(uuidlib.uuid4()), box_id, fs_uuid, now_us())

    @classmethod
    def from_json(cls, text: str) -> "Marker":
        try:
            data = json.loads(text)
            return cls(str(data["disk_id"]), str(data["box_id"]), data.get("fs_uuid"),
                       int(data.get("created_utc_us", 0)), int(data.get("version", 1)))
        except (ValueError, KeyError, TypeError) as exc:
            raise DiskError(f"the picorder marker is damaged: {exc}") from exc


def marker_path(root: Path) -> Path:
    return root / PICORDER_DIR / MARKER_NAME


DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _open_picorder_dir(root: Path, *, create: bool) -> int:
    """Descriptor of root/picorder, refusing a link there (a disk is data, never
    instructions: docs/design.md decision 7). FileNotFoundError if it is missing."""
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if create:
            try:
                os.mkdir(PICORDER_DIR, 0o755, dir_fd=root_fd)
            except FileExistsError:
                pass
        try:
            return os.open(PICORDER_DIR, DIR_FLAGS, dir_fd=root_fd)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise DiskError(f"{root / PICORDER_DIR} is not a directory of the disk "
                                "(a link or a file): not using it") from exc
            raise
    finally:
        os.close(root_fd)


def read_marker(root: Path) -> Marker | None:
    """The marker of a mounted disk or adopted directory; None if there is none."""
    try:
        dir_fd = _open_picorder_dir(root, create=False)
    except FileNotFoundError:
        return None
    try:
        fd = os.open(MARKER_NAME, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                     dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise DiskError(f"the picorder marker under {root} is not a plain file") from exc
    finally:
        os.close(dir_fd)
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise DiskError(f"the picorder marker under {root} is not a plain file")
        text = fh.read(MARKER_MAX_BYTES + 1)
    if len(text) > MARKER_MAX_BYTES:
        raise DiskError(f"the picorder marker under {root} is too large")
    return Marker.from_json(text.decode("utf-8", errors="replace"))


def write_marker(root: Path, marker: Marker) -> None:
    """Write the marker durably (temporary file, fsync, rename, fsync the directory).

    The temporary file is created afresh (O_EXCL, no link followed) in a
    picorder directory that is not a link: whatever the disk carries is only removed.
    """
    dir_fd = _open_picorder_dir(root, create=True)
    tmp = MARKER_NAME + ".tmp"
    try:
        try:
            os.unlink(tmp, dir_fd=dir_fd)
        except FileNotFoundError:
            pass
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o644, dir_fd=dir_fd)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(asdict(marker), fh, indent=1)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, MARKER_NAME, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def run(argv: list[str], timeout: float = limits.PROBE_CMD_TIMEOUT_S,
        check: bool = True) -> subprocess.CompletedProcess:
    """Run a system tool; a failure becomes a DiskError carrying its own message."""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError as exc:
        raise DiskError(f"{argv[0]} is not installed") from exc
    except subprocess.TimeoutExpired as exc:
        raise DiskError(f"{argv[0]} did not finish within {timeout:.0f} s") from exc
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        last = detail[-1] if detail else f"exit status {proc.returncode}"
        raise DiskError(f"{os.path.basename(argv[0])} failed: {last}")
    return proc


def peek_marker(device: str) -> Marker | None:
    """Read the marker of an unmounted ext2/3/4 filesystem without mounting it (debugfs)."""
    try:
        proc = run(["debugfs", "-R", f"cat /{PICORDER_DIR}/{MARKER_NAME}", device], check=False)
    except DiskError:
        logger.debug("cannot peek at %s", device, exc_info=True)
        return None
    if proc.returncode != 0 or not proc.stdout.strip():
        return None
    try:
        return Marker.from_json(proc.stdout)
    except DiskError:
        logger.warning("%s carries a damaged picorder marker", device)
        return None


def check_uuid(fs_uuid: str) -> str:
    if not isinstance(fs_uuid, str) or not UUID_RE.match(fs_uuid):
        raise DiskError(f"{fs_uuid!r} is not a filesystem UUID (see `picorder disk list`)")
    return fs_uuid


# ------------------------------------------------------------- mount points

def is_immutable(path: Path) -> bool:
    proc = run(["lsattr", "-d", str(path)], check=False)
    flags = proc.stdout.split()[0] if proc.returncode == 0 and proc.stdout.split() else ""
    return "i" in flags


def guard_mount_point(path: Path) -> str:
    """Create the mount point and make it refuse writes while nothing is mounted on it.

    chattr +i on the empty directory stops even root from creating files in
    it; where the filesystem has no such flag, mode 000 stops everyone else.
    Returns the mechanism used.
    """
    path.mkdir(parents=True, exist_ok=True, mode=0o755)
    if os.path.ismount(path):
        return "mounted"
    if is_immutable(path):
        return "immutable"
    if any(path.iterdir()):
        raise DiskError(f"the mount point {path} is not empty: something was written to it "
                        "while no disk was mounted; move those files away first")
    try:
        run(["chattr", "+i", str(path)])
        return "immutable"
    except DiskError as exc:
        logger.warning("cannot make %s immutable (%s); using mode 000", path, exc)
        os.chmod(path, 0)
        return "mode 000"


def systemd_manages_mounts(run_dir: Path = Path("/run/systemd/system")) -> bool:
    """PID 1 is systemd (sd_booted): mounts go through it, so that the recorder's own
    sandbox (a mount namespace of its own) does not hide them from the rest of the box."""
    return run_dir.is_dir()


def mount_argv(fs_uuid: str, target: Path, options: str, *, via_pid1: bool) -> list[str]:
    """The command that mounts the filesystem with this UUID at target.

    Through PID 1, the mount is a transient mount unit: bound to its device (systemd
    unmounts it when the disk goes), collected when it stops, no fsck (as before).
    """
    if not via_pid1:
        return ["mount", "-o", options, f"UUID={fs_uuid}", str(target)]
    return ["systemd-mount", "--no-ask-password", "--fsck=no", "--collect",
            f"--options={options}", f"/dev/disk/by-uuid/{fs_uuid}", str(target)]


def unmount_argv(target: Path, *, lazy: bool, via_pid1: bool) -> list[str]:
    """The command that unmounts target; lazy detaches it even while files are open."""
    if not via_pid1:
        return ["umount"] + (["-l"] if lazy else []) + [str(target)]
    if not lazy:
        return ["systemd-umount", "--no-ask-password", str(target)]
    # A mount unit cannot be stopped lazily on request: PID 1 runs umount -l itself.
    return ["systemd-run", "--no-ask-password", "--wait", "--quiet", "--collect",
            "--service-type=exec", "--description=picorder: detach a removed disk",
            "umount", "-l", str(target)]


def mount(fs_uuid: str, target: Path, *, read_only: bool = False) -> None:
    """Mount the filesystem with this UUID at target (MOUNT_OPTIONS)."""
    check_uuid(fs_uuid)
    guard_mount_point(target)
    options = MOUNT_OPTIONS + (",ro" if read_only else "")
    run(mount_argv(fs_uuid, target, options, via_pid1=systemd_manages_mounts()),
        timeout=limits.MOUNT_TIMEOUT_S)
    logger.info("mounted %s at %s%s", fs_uuid, target, " read-only" if read_only else "")


def remount(target: Path, *, read_only: bool) -> None:
    # A remount changes the filesystem itself (its superblock), so it needs no PID 1:
    # every namespace sees the new state.
    options = "remount," + ("ro" if read_only else "rw")
    run(["mount", "-o", options, str(target)], timeout=limits.MOUNT_TIMEOUT_S)


def unmount(target: Path, *, lazy: bool = False) -> None:
    """Unmount; lazy detaches a disk that is already gone without waiting for it."""
    via_pid1 = systemd_manages_mounts()
    if via_pid1 and lazy and not os.path.ismount(target):
        logger.info("%s is already unmounted (systemd did it when the disk went)", target)
        return
    run(unmount_argv(target, lazy=lazy, via_pid1=via_pid1), timeout=limits.MOUNT_TIMEOUT_S)
    logger.info("unmounted %s%s", target, " (lazy)" if lazy else "")


def free_space(root: Path) -> dict:
    """{"total_bytes", "free_bytes"} of the filesystem holding root; {} when it is gone."""
    try:
        st = os.statvfs(root)
    except OSError:
        return {}
    return {"total_bytes": st.f_blocks * st.f_frsize, "free_bytes": st.f_bavail * st.f_frsize}


def mounted_device(target: Path, mountinfo: str = MOUNTINFO) -> str | None:
    """"major:minor" of the filesystem mounted at target (the top one), from mountinfo; None
    when nothing is. Unlike findmnt's UUID it needs no udev database."""
    found = [m for m in read_mounts(mountinfo) if m.mount_point == str(target)]
    return devnum_of_mount(found[-1]) if found else None


def mount_source_uuid(target: Path) -> str | None:
    """UUID of the filesystem mounted at target (findmnt), or None."""
    proc = run(["findmnt", "-n", "-o", "UUID", "--mountpoint", str(target)], check=False)
    return proc.stdout.strip() or None if proc.returncode == 0 else None


# ------------------------------------------------------------- formatting

def signatures(device: str) -> list[str]:
    """Filesystem/partition-table signatures on a device (wipefs -n), e.g. ['ext4', 'dos']."""
    proc = run(["wipefs", "-n", "-J", device])
    if not proc.stdout.strip():
        return []
    try:
        data = json.loads(proc.stdout)
    except ValueError as exc:
        raise DiskError(f"cannot read wipefs output for {device}") from exc
    return [s.get("type", "?") for s in data.get("signatures", [])]


def make_ext4(device: str, *, wipe: bool) -> None:
    """mkfs.ext4 with large-file settings and the label PICORDER."""
    if wipe:
        run(["wipefs", "-a", device])
    run(["mkfs.ext4", "-F", "-q", "-T", "largefile", "-m", "0", "-L", FORMAT_LABEL, device],
        timeout=limits.MKFS_TIMEOUT_S)
    logger.info("formatted %s as ext4 (label %s)", device, FORMAT_LABEL)


def fs_uuid_of(device: str) -> str | None:
    proc = run(["blkid", "-p", "-s", "UUID", "-o", "value", device], check=False)
    return proc.stdout.strip() or None


def udev_settle() -> None:
    run(["udevadm", "settle", f"--timeout={int(limits.UDEV_SETTLE_S)}"],
        timeout=limits.UDEV_SETTLE_S + 5, check=False)
