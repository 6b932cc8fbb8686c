"""Drive manager: block devices and partitions from udev, parsed into Drive records."""

import logging
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

logger = logging.getLogger(__name__)

BUSES = ("usb", "ata", "nvme")           # what a real box considers
LOOP_BUS = "loop"                        # only when allow_loop (tests, demo)
SYSTEM_MOUNTPOINTS = ("/", "/boot", "/boot/firmware")
SECTOR = 512
MOUNTINFO = "/proc/self/mountinfo"     # the mounts of this mount namespace


@dataclass(frozen=True)
class DriveEvent:
    """One udev event (or one device found at start-up), as the observer saw it."""

    action: str                          # "add", "change", "remove"
    properties: dict[str, str]
    sys_path: str | None = None
    size_bytes: int | None = None        # when known without sysfs (recorded fixtures)


@dataclass(frozen=True)
class MountEntry:
    devnum: str                          # "major:minor"
    mount_point: str
    fs_type: str
    source: str
    options: str


@dataclass(frozen=True)
class Drive:
    """A block device (whole disk or partition) as picorder reports it."""

    device: str                          # /dev/sdb1
    devpath: str                         # kernel devpath, stable while plugged in
    devtype: str                         # "disk" or "partition"
    devnum: str                          # "major:minor"
    disk_devpath: str                    # the whole disk holding it
    size_bytes: int
    fs_type: str | None
    fs_uuid: str | None
    fs_label: str | None
    model: str | None
    serial: str | None
    bus: str | None                      # usb, ata, nvme (loop in tests)
    read_only: bool = False
    mounted: bool = False
    mount_points: tuple[str, ...] = ()
    system: bool = False                 # holds / or /boot: never a candidate
    has_partitions: bool = False
    marker_disk_id: str | None = None
    marker_box_id: str | None = None
    candidate: bool = False
    not_candidate_reason: str | None = None

    def to_json(self) -> dict:
        data = asdict(self)
        data["mount_points"] = list(self.mount_points)
        return data

    def with_marker(self, disk_id: str | None, box_id: str | None) -> "Drive":
        return replace(self, marker_disk_id=disk_id, marker_box_id=box_id)


def _unescape_mountinfo(text: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal."""
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 3 < len(text) and text[i + 1:i + 4].isdigit():
            out.append(chr(int(text[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[MountEntry]:
    """Parse /proc/self/mountinfo."""
    entries = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields = left.split()
        tail = right.split()
        if not sep or len(fields) < 6 or len(tail) < 2:
            continue
        entries.append(MountEntry(fields[2], _unescape_mountinfo(fields[4]), tail[0],
                                  _unescape_mountinfo(tail[1]),
                                  fields[5] + ("," + tail[2] if len(tail) > 2 else "")))
    return entries


def read_mounts(path: str = MOUNTINFO) -> list[MountEntry]:
    with open(path, encoding="utf-8", errors="replace") as fh:
        return parse_mountinfo(fh.read())


def mounts_by_devnum(mounts: Iterable[MountEntry]) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {}
    for m in mounts:
        result.setdefault(m.devnum, []).append(m.mount_point)
    return result


def devnum_of_mount(entry: MountEntry) -> str | None:
    """The block device behind a mount; btrfs and friends show 0:N, so use the source."""
    if not entry.devnum.startswith("0:"):
        return entry.devnum
    if entry.source.startswith("/dev/"):
        try:
            rdev = os.stat(entry.source).st_rdev
        except OSError:
            return None
        return f"{os.major(rdev)}:{os.minor(rdev)}"
    return None


def disk_devpath_of(devnum: str, sysfs: str = "/sys") -> str | None:
    """Kernel devpath of the whole disk holding block device `devnum`."""
    link = Path(sysfs) / "dev" / "block" / devnum
    try:
        real = link.resolve(strict=True)
    except OSError:
        return None
    if (real / "partition").exists():
        real = real.parent
    return str(real)[len(str(Path(sysfs).resolve())):]


def system_disks(mounts: Iterable[MountEntry], sysfs: str = "/sys") -> set[str]:
    """Devpaths of the disks holding /, /boot or /boot/firmware."""
    disks = set()
    for m in mounts:
        if m.mount_point not in SYSTEM_MOUNTPOINTS:
            continue
        devnum = devnum_of_mount(m)
        if devnum is None:
            continue
        devpath = disk_devpath_of(devnum, sysfs)
        if devpath:
            disks.add(devpath)
    return disks


def _bus(props: Mapping[str, str]) -> str | None:
    bus = props.get("ID_BUS")
    if bus in BUSES:
        return bus
    name = os.path.basename(props.get("DEVNAME", ""))
    if name.startswith("nvme"):
        return "nvme"
    if name.startswith("loop"):
        return LOOP_BUS
    id_path = props.get("ID_PATH", "")
    for candidate in ("usb", "ata", "nvme"):
        if f"-{candidate}-" in id_path or id_path.startswith(candidate):
            return candidate
    return bus or None


def parse_drive(props: Mapping[str, str], *, size_bytes: int | None = None,
                mounts: Mapping[str, list[str]] | None = None,
                system: Iterable[str] = (), allow_loop: bool = False,
                read_only: bool = False, has_partitions: bool = False) -> Drive:
    """Turn one device's udev properties into a Drive, with its candidate verdict."""
    devtype = props.get("DEVTYPE", "")
    devpath = props.get("DEVPATH", "")
    disk_devpath = devpath if devtype == "disk" else os.path.dirname(devpath)
    devnum = f"{props.get('MAJOR', '')}:{props.get('MINOR', '')}"
    points = tuple((mounts or {}).get(devnum, ()))
    drive = Drive(
        device=props.get("DEVNAME", ""),
        devpath=devpath,
        devtype=devtype,
        devnum=devnum,
        disk_devpath=disk_devpath,
        size_bytes=size_bytes or 0,
        fs_type=props.get("ID_FS_TYPE") or None,
        fs_uuid=props.get("ID_FS_UUID") or None,
        fs_label=props.get("ID_FS_LABEL") or None,
        model=(props.get("ID_MODEL") or "").replace("_", " ") or None,
        serial=props.get("ID_SERIAL_SHORT") or props.get("ID_SERIAL") or None,
        bus=_bus(props),
        read_only=read_only,
        mounted=bool(points),
        mount_points=points,
        system=disk_devpath in set(system),
        has_partitions=has_partitions,
    )
    reason = _not_candidate(drive, allow_loop)
    return replace(drive, candidate=reason is None, not_candidate_reason=reason)


def _not_candidate(drive: Drive, allow_loop: bool) -> str | None:
    if drive.devtype not in ("disk", "partition"):
        return "not a disk or partition"
    if drive.system:
        return "holds the system (root or boot filesystem)"
    allowed = BUSES + ((LOOP_BUS,) if allow_loop else ())
    if drive.bus not in allowed:
        return f"not on a USB, SATA or NVMe bus ({drive.bus or 'unknown bus'})"
    if drive.size_bytes <= 0:
        return "empty (no medium)"
    return None


def read_sys_attr(sys_path: str | None, name: str) -> str | None:
    if not sys_path:
        return None
    try:
        return (Path(sys_path) / name).read_text().strip()
    except OSError:
        return None


def drive_from_event(event: DriveEvent, *, mounts: Mapping[str, list[str]],
                     system: Iterable[str], allow_loop: bool) -> Drive:
    """Parse an event, reading size and read-only flag from sysfs when it is still there."""
    sectors = read_sys_attr(event.sys_path, "size")
    ro = read_sys_attr(event.sys_path, "ro")
    parts = False
    if event.sys_path and event.properties.get("DEVTYPE") == "disk":
        name = os.path.basename(event.sys_path)
        try:
            parts = any(p.name.startswith(name) for p in Path(event.sys_path).iterdir()
                        if (p / "partition").exists())
        except OSError:
            parts = False
    size = int(sectors) * SECTOR if sectors and sectors.isdigit() else (event.size_bytes or 0)
    return parse_drive(event.properties, size_bytes=size, mounts=mounts, system=system,
                       allow_loop=allow_loop, read_only=ro == "1", has_partitions=parts)


# ------------------------------------------------------------- watching

def event_from_device(action: str, device) -> DriveEvent:
    """Copy what we need from a pyudev Device (its properties are in memory: no I/O)."""
    return DriveEvent(action, dict(device.properties), device.sys_path)


@dataclass
class PyudevWatcher:
    """Enumerates block devices, then follows udev through a Monitor observer thread."""

    observer: object = field(default=None, init=False, repr=False)
    context: object = field(default=None, init=False, repr=False)

    def enumerate(self) -> list[DriveEvent]:
        import pyudev
        if self.context is None:
            self.context = pyudev.Context()
        return [event_from_device("add", d) for d in self.context.list_devices(subsystem="block")]

    def start(self, callback: Callable[[DriveEvent], None]) -> None:
        """Start watching; `callback` runs in the observer thread and must only enqueue."""
        import pyudev
        if self.context is None:
            self.context = pyudev.Context()
        monitor = pyudev.Monitor.from_netlink(self.context)
        monitor.filter_by("block")

        def on_event(device):
            callback(event_from_device(device.action or "change", device))

        self.observer = pyudev.MonitorObserver(monitor, callback=on_event, name="picorder-udev")
        self.observer.start()

    def stop(self) -> None:
        if self.observer is not None:
            self.observer.stop()
            self.observer = None


def list_drives(events: Iterable[DriveEvent], *, allow_loop: bool = False,
                mountinfo: str = MOUNTINFO, sysfs: str = "/sys") -> list[Drive]:
    """Parse a batch of events (e.g. the start-up enumeration) into Drives."""
    mounts = read_mounts(mountinfo)
    system = system_disks(mounts, sysfs)
    by_devnum = mounts_by_devnum(mounts)
    return [drive_from_event(e, mounts=by_devnum, system=system, allow_loop=allow_loop)
            for e in events if e.properties.get("SUBSYSTEM", "block") == "block"]
