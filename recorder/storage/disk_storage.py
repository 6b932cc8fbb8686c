"""DiskStorage: the recording root on an adopted disk (or directory), watched and rotated.

It mounts the adopted disks (udev.py, disk_ops.py), picks the root to record on, checks
reported write errors (disk_check.py) and hands retention to its RotationJob (rotation.py).
"""

import errno
import logging
import os
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from recorder import limits, retention
from recorder.paths import DataPaths
from recorder.storage import disk_ops, health
from recorder.storage.directory import DirectoryStorage
from recorder.storage.disk_check import DiskCheck, DiskCheckDone, judge, kernel_view, probe_write
from recorder.storage.disk_ops import DiskError, Marker
from recorder.storage.protocol import STATE_MISSING, STATE_NO_DISK, STATE_RECORDING, Storage
from recorder.storage.rotation import RotationJob
from recorder.storage.settings import (
    ENV_MOUNT_BASE, AdoptedEntry, active_disk_id, active_entry, box_id, disk_storage_wanted,
    load_entries, loop_devices_allowed, recordings_dir, save_entries, set_active,
)
from recorder.storage.udev import (
    MOUNTINFO, Drive, DriveEvent, PyudevWatcher, disk_devpath_of, drive_from_event,
    mounts_by_devnum, read_mounts, system_disks,
)
from recorder.wallclock import now_us

logger = logging.getLogger(__name__)

NOSPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
EXT_FS = ("ext2", "ext3", "ext4")         # debugfs can read their marker unmounted


@dataclass(frozen=True)
class StorageNudge:
    """Put on the service queue by commands and I/O errors; handled in the main loop."""

    reason: str
    errno_: int = 0
    detail: str = ""


@dataclass
class IoErrorRecord:
    utc_us: int
    errno_: int
    name: str
    detail: str


def make_disk_storage(paths: DataPaths, **kwargs) -> "DiskStorage":
    """A DiskStorage configured from config.db and the environment (config.db must be open)."""
    kwargs.setdefault("allow_loop", loop_devices_allowed())
    kwargs.setdefault("mount_base", Path(os.environ.get(ENV_MOUNT_BASE) or limits.DISK_MOUNT_BASE))
    return DiskStorage(paths, **kwargs)


def make_storage(paths: DataPaths, **disk_kwargs) -> Storage:
    """The Storage the recorder records into, as config.db says (config.db must be open).

    It records where recording_root_from_config() says: adopted disks and directories, or
    the fixed directory config.db names. With neither it records nothing rather than fill
    whatever disk holds the data directory (docs/design.md decision 3): "no disk" until one
    is adopted. `disk_kwargs` go to the DiskStorage (tests: a fake watcher).
    """
    if not disk_storage_wanted():
        directory = recordings_dir()
        if directory is not None:
            return DirectoryStorage(directory, create=directory == paths.default_recordings)
    return make_disk_storage(paths, **disk_kwargs)


def adopt_demo_directory(paths: DataPaths) -> None:
    """`picorder demo`: record into its own data directory, adopted explicitly (docs/design.md decision 3)."""
    if load_entries():
        return
    root = paths.default_recordings
    root.mkdir(parents=True, exist_ok=True)
    DiskStorage(paths, run_jobs=False).adopt_dir(str(root), allow_root_device=True)


def _device_of_path(path: Path) -> str:
    st = os.stat(path)
    return f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}"


def on_system_disk(path: Path) -> bool:
    """True if path lives on the disk holding / or /boot (the SD card on a Pi)."""
    mounts = read_mounts()
    devnum = _device_of_path(path)
    if devnum.startswith("0:"):
        # No block device of its own (tmpfs, overlay...): treat like the root device.
        return True
    disk = disk_devpath_of(devnum)
    return disk is None or disk in system_disks(mounts)


# ------------------------------------------------------------- the storage

@dataclass
class _Mounted:
    uuid: str
    target: Path
    devpath: str
    read_only: bool


class DiskStorage:
    """The Storage (protocol.py): records only onto an adopted, mounted disk or directory."""

    def __init__(self, paths: DataPaths, *, mount_base: Path | None = None,
                 allow_loop: bool = False, watcher=None, run_jobs: bool = True,
                 floor_bytes: int | None = None, probe=probe_write, kernel=kernel_view,
                 mountinfo: str = MOUNTINFO):
        self.paths = paths
        self.mountinfo = mountinfo
        self.mount_base = Path(mount_base or limits.DISK_MOUNT_BASE)
        self.allow_loop = allow_loop
        self.watcher = watcher if watcher is not None else PyudevWatcher()
        self.run_jobs = run_jobs
        self.rotation = RotationJob(self.recording_root, floor_override=(
            retention.check_floor(floor_bytes) if floor_bytes else None))
        self._lock = threading.RLock()
        self._enqueue: Callable[[object], None] = lambda event: None
        self._drives: dict[str, Drive] = {}
        self._mounted: dict[str, _Mounted] = {}
        self._ejected: set[str] = set()
        self._formatting: set[str] = set()
        self._started = False                  # start() ran: a service owns the streams
        self._failed: dict[str, str] = {}
        self._root: Path | None = None
        self._state = STATE_NO_DISK
        self._detail: str | None = None
        self._io_errors: deque[IoErrorRecord] = deque(maxlen=limits.IO_ERRORS_KEPT)
        self._health: dict = {}
        self._box_id: str | None = None
        # A reported write error is checked on the disk before it counts (disk_check.py).
        self._check = DiskCheck(lambda event: self._enqueue(event), probe=probe, kernel=kernel)
        self._check_finding: str | None = None
        self._recheck: threading.Timer | None = None

    # ---- Storage protocol

    def start(self, enqueue: Callable[[object], None]) -> None:
        """Enumerate drives, mount the adopted ones, then follow udev and start the jobs."""
        self._enqueue = enqueue
        self._started = True
        self._box_id = box_id()
        self.watcher.start(self._enqueue)     # netlink first, so nothing is missed
        with self._lock:
            for event in self.watcher.enumerate():
                self._on_drive_event(event)
            self._refresh_root()
        root = self.recording_root()
        if root is not None:
            self.rotation.finish_interrupted(root)
        if self.run_jobs:
            self.rotation.start(watch=self.watch, check_health=self.check_health)

    def handle(self, event: object) -> bool:
        """Apply one event from the queue; True if the recording root changed."""
        with self._lock:
            if isinstance(event, DriveEvent):
                self._on_drive_event(event)
            elif isinstance(event, StorageNudge):
                self._on_nudge(event)
            elif isinstance(event, DiskCheckDone):
                self._on_disk_checked(event)
            else:
                return False
            return self._refresh_root()

    def recording_root(self) -> Path | None:
        with self._lock:
            return self._root

    def report_io_error(self, errno_: int, detail: str, source: str = "") -> None:
        """ffmpeg (or the indexer: `source`) hit an error writing to the disk.

        Not proof that the disk failed: it is checked first (disk_check.py), while
        every stream keeps recording.
        """
        name = errno.errorcode.get(errno_, str(errno_))
        self._io_errors.append(IoErrorRecord(now_us(), errno_, name, detail[:300]))
        if errno_ in NOSPACE_ERRNOS:
            if self.rotation.say("enospc"):
                logger.warning("no space left on the recording disk: running retention now")
            self.run_retention_soon()
            return
        self._check.report(source, errno_)
        with self._lock:
            root, devpath = self._root, self._active_devpath()
        if root is None:
            return
        logger.error("write error reported by %s (%s): %s; checking the disk",
                     source or "a writer", name, detail)
        self._check.start(root, devpath)

    def _active_devpath(self) -> str | None:
        active = active_entry()
        if active is None or active.kind != "disk" or active.uuid not in self._mounted:
            return None
        return self._mounted[active.uuid].devpath

    def _on_disk_checked(self, done: DiskCheckDone) -> None:
        if done.root != self._root:
            return                              # recording moved elsewhere meanwhile
        verdict = judge(done.evidence)
        if verdict.failed:
            reporters = ", ".join(done.evidence.sources) or "a writer"
            self._fail_active(f"I/O error, and the disk shows it: {verdict.reason} "
                              f"(reported by {reporters})")
            return
        logger.warning("storage: %s", verdict.reason)
        self._check_finding = verdict.reason
        if verdict.recheck and self._recheck is None:
            def again():
                self._recheck = None
                self._enqueue(StorageNudge("disk_recheck"))
            self._recheck = threading.Timer(limits.DISK_RECHECK_S, again)
            self._recheck.daemon = True
            self._recheck.start()

    def control_commands(self) -> dict[str, Callable]:
        return {
            "disk_list": self.cmd_list,
            "disk_adopt": self.adopt,
            "disk_adopt_dir": self.adopt_dir,
            "disk_format": self.format,
            "disk_eject": self.eject,
            "disk_retention": self.cmd_retention,
        }

    def stop(self) -> None:
        if self._recheck is not None:
            self._recheck.cancel()
        self.rotation.stop()
        self.watcher.stop()

    def state(self) -> dict:
        with self._lock:
            active = active_entry()
            spaces: dict[str, dict] = {}
            result = {
                "state": self._state,
                "root": str(self._root) if self._root else None,
                "detail": self._detail,
                "active": asdict(active) if active else None,
                "disks": self._adopted_view(spaces),
                "retention": asdict(self.rotation.state),
                "io_errors": [asdict(e) for e in self._io_errors],
                "disk_check": {"checking": self._check.running,
                               "reported_by": list(self._check.sources()),
                               "finding": self._check_finding},
                "health": self._health,
            }
            if self._root is not None:                      # total_bytes, free_bytes
                root = str(self._root)
                result.update(spaces[root] if root in spaces else disk_ops.free_space(self._root))
        return result

    # ---- drives and mounts

    def _drive(self, event: DriveEvent) -> Drive:
        mounts = read_mounts(self.mountinfo)
        return drive_from_event(event, mounts=mounts_by_devnum(mounts),
                                system=system_disks(mounts), allow_loop=self.allow_loop)

    def _on_drive_event(self, event: DriveEvent) -> None:
        devpath = event.properties.get("DEVPATH", "")
        if event.action == "remove":
            gone = [p for p in self._drives if p == devpath or p.startswith(devpath + "/")]
            for uuid in {self._drives.pop(p).fs_uuid for p in gone} - {None}:
                # Unplugged: a failed or ejected disk may come back when plugged in again.
                self._ejected.discard(uuid)
                self._failed.pop(uuid, None)
            self._on_remove(devpath)
            return
        drive = self._drive(event)
        previous = self._drives.get(devpath)
        self._drives[devpath] = drive
        if previous is not None and previous.fs_uuid and previous.fs_uuid != drive.fs_uuid:
            # The medium is gone (a loop device detached, a card reader emptied): like a
            # removal, a failed or ejected disk may come back when it returns.
            self._ejected.discard(previous.fs_uuid)
            self._failed.pop(previous.fs_uuid, None)
        for uuid, m in list(self._mounted.items()):
            gone = m.devpath == devpath and drive.fs_uuid != uuid
            moved = uuid == drive.fs_uuid and m.devpath != devpath
            if gone or moved or (uuid == drive.fs_uuid and not os.path.ismount(m.target)):
                # The medium changed (a loop device detached, a card reader emptied) or
                # the same disk came back under another name: the old mount is dead.
                self._on_remove(m.devpath)
        if drive.candidate and drive.fs_uuid:
            self._maybe_mount(drive)

    def _on_remove(self, devpath: str) -> None:
        for uuid, m in list(self._mounted.items()):
            if m.devpath == devpath or m.devpath.startswith(devpath + "/"):
                logger.warning("disk %s was removed", uuid)
                self._forget_mount(uuid, lazy=True)
                self._ejected.discard(uuid)
                self._failed.pop(uuid, None)

    def _forget_mount(self, uuid: str, *, lazy: bool) -> None:
        m = self._mounted.pop(uuid, None)
        if m is None:
            return
        self.rotation.cancel.set()
        try:
            disk_ops.unmount(m.target, lazy=lazy)
        except DiskError as exc:
            logger.error("cannot unmount %s: %s", m.target, exc)
            if not lazy:
                self._mounted[uuid] = m
                raise

    def _entry_for_uuid(self, uuid: str) -> AdoptedEntry | None:
        return next((e for e in load_entries() if e.kind == "disk" and e.uuid == uuid), None)

    def _maybe_mount(self, drive: Drive) -> None:
        uuid = drive.fs_uuid
        if (uuid in self._mounted or uuid in self._ejected or uuid in self._failed
                or drive.device in self._formatting):
            return
        entry = self._entry_for_uuid(uuid)
        if entry is None:
            marker = disk_ops.peek_marker(drive.device) if drive.fs_type in EXT_FS else None
            if marker is None or marker.box_id != self._box_id:
                return
            logger.info("disk %s carries this box's marker: adopting it again", uuid)
            entry = self._register_disk(drive, marker, make_active=active_entry() is None)
        self._mount_entry(entry, drive)

    def _mount_entry(self, entry: AdoptedEntry, drive: Drive) -> None:
        active = active_entry()
        read_only = not (active and active.disk_id == entry.disk_id)
        target = Path(entry.root)
        try:
            if self._mounted_at(target, drive):
                logger.info("disk %s is mounted at %s already: using that mount", entry.uuid, target)
                disk_ops.remount(target, read_only=read_only)
            else:
                disk_ops.mount(entry.uuid, target, read_only=read_only)
        except DiskError as exc:
            logger.error("cannot mount disk %s: %s", entry.uuid, exc)
            self._detail = f"cannot mount disk {entry.uuid}: {exc}"
            return
        self._mounted[entry.uuid] = _Mounted(entry.uuid, target, drive.devpath, read_only)
        marker = self._read_marker_logged(target)
        if marker is None or marker.disk_id != entry.disk_id:
            logger.error("disk %s at %s does not carry its picorder marker %s: not using it",
                         entry.uuid, target, entry.disk_id)
            self._failed[entry.uuid] = "its picorder marker is missing or different"
            self._forget_mount(entry.uuid, lazy=True)

    def _mounted_at(self, target: Path, drive: Drive) -> bool:
        """The drive's filesystem is mounted at target already: taken as it is, not mounted
        again. After a restart of the recorder PID 1 still holds the transient mount unit it
        made, findmnt may name no UUID for it, and a second systemd-mount fails ("already
        loaded"): this namespace's mountinfo shows the mount by its device."""
        return (disk_ops.mounted_device(target, self.mountinfo) == drive.devnum
                or disk_ops.mount_source_uuid(target) == drive.fs_uuid)

    @staticmethod
    def _read_marker_logged(root: Path) -> Marker | None:
        try:
            return disk_ops.read_marker(root)
        except (DiskError, OSError) as exc:
            logger.error("cannot read the marker under %s: %s", root, exc)
            return None

    def _register_disk(self, drive: Drive, marker: Marker, *, make_active: bool) -> AdoptedEntry:
        entries = [e for e in load_entries() if not (e.kind == "disk" and e.uuid == drive.fs_uuid)]
        entry = AdoptedEntry("disk", marker.disk_id, str(self.mount_base / drive.fs_uuid),
                             drive.fs_uuid, drive.fs_label, now_us())
        entries.append(entry)
        save_entries(entries)
        if make_active:
            set_active(entry.disk_id)
        return entry

    # ---- the recording root

    def _on_nudge(self, nudge: StorageNudge) -> None:
        if nudge.reason == "marker_gone":
            self._detail = nudge.detail         # _desired_root() sees the missing marker
            return
        if nudge.reason == "disk_recheck" and self._root is not None and self._check.sources():
            self._check.start(self._root, self._active_devpath())

    def _fail_active(self, reason: str) -> None:
        """The active disk showed a fault: stop recording onto it until it is re-plugged."""
        active = active_entry()
        if active is None or self._root is None:
            return
        logger.error("storage: the recording disk failed: %s", reason)
        if active.kind == "disk":
            self._failed[active.uuid] = reason
            self._forget_mount(active.uuid, lazy=True)
        else:
            self._failed[active.disk_id] = reason

    def _refresh_root(self) -> bool:
        root, state, detail = self._desired_root()
        changed = root != self._root
        if changed or state != self._state:
            logger.info("storage: %s%s%s", state, f" at {root}" if root else "",
                        f" ({detail})" if detail else "")
        if changed:
            self.rotation.root_changed()
            self._check_finding = None
        self._root, self._state, self._detail = root, state, detail
        return changed

    def _desired_root(self) -> tuple[Path | None, str, str | None]:
        active = active_entry()
        if active is None:
            return None, STATE_NO_DISK, "no recording disk is adopted"
        key = active.uuid if active.kind == "disk" else active.disk_id
        if key in self._failed:
            return None, STATE_MISSING, self._failed[key]
        if active.kind == "disk" and active.uuid in self._ejected:
            if active.uuid in self._mounted:
                return None, STATE_MISSING, "ejecting: waiting for the recordings to close"
            return None, STATE_MISSING, "ejected: safe to unplug"
        root = Path(active.root)
        if active.kind == "disk":
            m = self._mounted.get(active.uuid)
            if m is None or m.read_only:
                return None, STATE_MISSING, f"disk {active.label or active.uuid} is not attached"
        marker = self._read_marker_logged(root)
        if marker is None or marker.disk_id != active.disk_id:
            return None, STATE_MISSING, f"{root} does not carry its picorder marker"
        return root, STATE_RECORDING, None

    def _adopted_view(self, spaces: dict[str, dict] | None = None) -> list[dict]:
        """The adopted disks and directories; each mounted root's free space goes in
        `spaces` too (by root), so state() asks the filesystem once."""
        spaces = {} if spaces is None else spaces
        result = []
        active = active_disk_id()
        for e in load_entries():
            m = self._mounted.get(e.uuid) if e.uuid else None
            item = dict(asdict(e), active=e.disk_id == active,
                        mounted=m is not None or e.kind == "dir",
                        read_only=m.read_only if m else False,
                        ejected=e.uuid in self._ejected if e.uuid else False,
                        problem=self._failed.get(e.uuid or e.disk_id))
            if item["mounted"]:
                spaces[e.root] = disk_ops.free_space(Path(e.root))
                item.update(spaces[e.root])
            result.append(item)
        return result

    # ---- commands (control socket, or called directly by `picorder disk`)

    def refresh_drives(self) -> list[Drive]:
        """Enumerate now (used when no watcher has run, e.g. the CLI acting directly)."""
        with self._lock:
            self._drives = {}
            for event in self.watcher.enumerate():
                self._drives[event.properties.get("DEVPATH", "")] = self._drive(event)
            return list(self._drives.values())

    def drives(self) -> list[Drive]:
        with self._lock:
            return list(self._drives.values()) or self.refresh_drives()

    def cmd_list(self) -> dict:
        """Drives (with markers) and adopted disks/directories."""
        self.refresh_drives()               # fresh mount state for every drive
        if not self._started:
            self._note_existing_mounts()
        with self._lock:
            result = []
            for drive in sorted(self._drives.values(), key=lambda d: d.device):
                if not (drive.candidate or drive.system):
                    continue
                result.append(self._with_marker(drive).to_json())
            return {"drives": result, "adopted": self._adopted_view(),
                    "state": self._state, "root": str(self._root) if self._root else None}

    def _note_existing_mounts(self) -> None:
        """Acting without a running watcher: take the adopted disks' mounts as found."""
        with self._lock:
            by_uuid = {d.fs_uuid: d for d in self._drives.values() if d.fs_uuid}
            for e in load_entries():
                drive = by_uuid.get(e.uuid)
                if e.kind != "disk" or drive is None or e.uuid in self._mounted:
                    continue
                if self._mounted_at(Path(e.root), drive):
                    options = disk_ops.run(["findmnt", "-n", "-o", "OPTIONS", "--mountpoint",
                                            e.root], check=False).stdout
                    self._mounted[e.uuid] = _Mounted(e.uuid, Path(e.root), drive.devpath,
                                                     "ro" in options.strip().split(","))
            self._refresh_root()

    def _with_marker(self, drive: Drive) -> Drive:
        marker = None
        for point in drive.mount_points:
            marker = self._read_marker_logged(Path(point)) or marker
        if marker is None and drive.fs_type in EXT_FS and drive.candidate:
            marker = disk_ops.peek_marker(drive.device)
        return drive.with_marker(marker.disk_id, marker.box_id) if marker else drive

    def _find_drive(self, fs_uuid: str) -> Drive:
        disk_ops.check_uuid(fs_uuid)
        self.refresh_drives()
        matches = [d for d in self._drives.values() if d.fs_uuid == fs_uuid]
        if not matches:
            raise DiskError(f"no attached disk has the filesystem UUID {fs_uuid} "
                            "(see `picorder disk list`)")
        drive = matches[0]
        if drive.system:
            raise DiskError(f"{drive.device} holds the system (root or boot filesystem): "
                            "it can never be a recording disk")
        if not drive.candidate:
            raise DiskError(f"{drive.device} cannot be a recording disk: "
                            f"{drive.not_candidate_reason}")
        return drive

    def adopt(self, uuid: str) -> dict:
        """Adopt the disk with this filesystem UUID and record onto it."""
        with self._lock:
            drive = self._find_drive(uuid)
            if drive.fs_type not in disk_ops.RECORDING_FILESYSTEMS:
                raise DiskError(f"{drive.device} holds {drive.fs_type or 'no filesystem'}, which "
                                "cannot hold recordings; format it first with "
                                f"`picorder disk format {drive.device} --confirm {drive.device}`")
            self._box_id = self._box_id or box_id()
            target = self.mount_base / uuid
            if self._mounted_at(target, drive):
                disk_ops.remount(target, read_only=False)
            else:
                disk_ops.mount(uuid, target)
            self._ejected.discard(uuid)
            self._failed.pop(uuid, None)
            marker = self._read_marker_logged(target)
            if marker is not None and marker.box_id != self._box_id:
                logger.warning("disk %s belonged to box %s; taking it over", uuid, marker.box_id)
            if marker is None or marker.box_id != self._box_id:
                marker = Marker(marker.disk_id if marker else Marker.new("", None).disk_id,
                                self._box_id, uuid, now_us())
                disk_ops.write_marker(target, marker)
            entry = self._register_disk(drive, marker, make_active=True)
            self._mounted[uuid] = _Mounted(uuid, target, drive.devpath, False)
            logger.info("adopted disk %s (%s) as the recording disk", uuid, drive.device)
        self._enqueue(StorageNudge("adopted"))
        return asdict(entry)

    def adopt_dir(self, path: str, allow_root_device: bool = False) -> dict:
        """Adopt a directory (servers, the demo); refused on the system disk unless allowed."""
        if not isinstance(path, str) or not path or not isinstance(allow_root_device, bool):
            raise DiskError("adopt-dir needs a directory path and allow_root_device true or false")
        root = Path(path).expanduser().absolute()
        if not root.is_dir():
            raise DiskError(f"{root} is not an existing directory")
        if not os.access(root, os.W_OK):
            raise DiskError(f"{root} is not writable")
        if on_system_disk(root) and not allow_root_device:
            raise DiskError(f"{root} is on the system disk (the one holding /): recordings would "
                            "fill it; pass --allow-root-device if this is really wanted")
        with self._lock:
            self._box_id = self._box_id or box_id()
            marker = self._read_marker_logged(root)
            if marker is None or marker.box_id != self._box_id:
                marker = Marker(marker.disk_id if marker else Marker.new("", None).disk_id,
                                self._box_id, None, now_us())
                disk_ops.write_marker(root, marker)
            entries = [e for e in load_entries() if not (e.kind == "dir" and e.root == str(root))]
            entry = AdoptedEntry("dir", marker.disk_id, str(root), None, root.name, now_us())
            entries.append(entry)
            save_entries(entries)
            set_active(entry.disk_id)
            self._failed.pop(entry.disk_id, None)
            logger.info("adopted directory %s as the recording root", root)
        self._enqueue(StorageNudge("adopted"))
        return asdict(entry)

    def format(self, device: str, confirm: str | None = None, force: bool = False) -> dict:
        """mkfs.ext4 -T largefile -L PICORDER, confirmed by naming the device again."""
        if not isinstance(device, str) or not isinstance(force, bool):
            raise DiskError("format needs a device name and force true or false")
        real = os.path.realpath(device)
        if not confirm or os.path.realpath(confirm) != real:
            raise DiskError(f"formatting erases {device}: confirm by naming it again "
                            f"(--confirm {device})")
        with self._lock:
            drives = self.refresh_drives()
            drive = next((d for d in drives if d.device == real), None)
            if drive is None:
                raise DiskError(f"{device} is not an attached disk (see `picorder disk list`)")
            if real in self._formatting:
                raise DiskError(f"{device} is being formatted already")
            self._check_formattable(drive, drives, force)
            self._formatting.add(real)
        try:
            # Without the lock: mkfs may take a while, and the main loop must not wait.
            disk_ops.make_ext4(real, wipe=force)
            disk_ops.udev_settle()
            uuid = disk_ops.fs_uuid_of(real)
        finally:
            with self._lock:
                self._formatting.discard(real)
        if drive.fs_uuid:
            self._forget_adoption(drive.fs_uuid)
        return {"device": real, "uuid": uuid, "label": disk_ops.FORMAT_LABEL}

    def _forget_adoption(self, fs_uuid: str) -> None:
        """The filesystem was formatted away: drop its adoption (it no longer exists)."""
        with self._lock:
            entries = load_entries()
            gone = [e for e in entries if e.kind == "disk" and e.uuid == fs_uuid]
            if not gone:
                return
            save_entries([e for e in entries if e not in gone])
            if active_disk_id() in {e.disk_id for e in gone}:
                set_active(None)
            logger.info("disk %s was formatted: no longer adopted", fs_uuid)
        self._enqueue(StorageNudge("formatted"))

    @staticmethod
    def _check_formattable(drive: Drive, drives: list[Drive], force: bool) -> None:
        if drive.system:
            raise DiskError(f"{drive.device} holds the system (root or boot filesystem): refusing")
        if not drive.candidate:
            raise DiskError(f"{drive.device} cannot be a recording disk: "
                            f"{drive.not_candidate_reason}")
        family = [d for d in drives if d.disk_devpath == drive.disk_devpath
                  and (d.devpath == drive.devpath or drive.devtype == "disk")]
        busy = [p for d in family for p in d.mount_points]
        if busy:
            raise DiskError(f"{drive.device} is mounted at {', '.join(busy)}: eject or unmount "
                            "it first")
        found = disk_ops.signatures(drive.device)
        if drive.has_partitions:
            found.append("partitions")
        if found and not force:
            raise DiskError(f"{drive.device} holds data ({', '.join(found)}); formatting would "
                            "erase it: add --force if that is what you want")

    def eject(self, uuid: str) -> dict:
        """Stop recording onto the disk and unmount it so it can be unplugged."""
        disk_ops.check_uuid(uuid)
        with self._lock:
            entry = self._entry_for_uuid(uuid)
            if entry is None and uuid not in self._mounted:
                raise DiskError(f"no adopted disk has the filesystem UUID {uuid}")
            self._ejected.add(uuid)
            recording_on_it = self._root is not None and entry is not None \
                and Path(entry.root) == self._root
            if not recording_on_it or not self._started:
                self._try_unmount(uuid)
        self._enqueue(StorageNudge("ejected"))
        return {"uuid": uuid, "unmounted": uuid not in self._mounted}

    def _try_unmount(self, uuid: str) -> bool:
        if uuid not in self._mounted:
            target = self.mount_base / uuid
            if os.path.ismount(target):
                disk_ops.unmount(target)
            return True
        try:
            self._forget_mount(uuid, lazy=False)
        except DiskError:
            return False
        return True

    def cmd_retention(self) -> dict:
        return asdict(self.rotation.state)

    # ---- jobs

    def run_retention(self) -> retention.ApplyResult | None:
        """One retention pass now, on the current root (rotation.py)."""
        return self.rotation.run()

    def run_retention_soon(self) -> None:
        """Run the retention job at once (free space below the floor, ENOSPC)."""
        self.rotation.run_soon()

    def watch(self) -> None:
        """Every second: free space against the floor, pending read-only remounts and ejects."""
        with self._lock:
            root = self._root
            pending_ro = [m for m in self._mounted.values()
                          if not m.read_only and m.target != root]
            if pending_ro:
                # A disk adopted a moment ago is mounted before the main loop makes it the
                # root: it is the one to record on, not one to leave read-only.
                active = active_entry()
                wanted = (active.uuid if active and active.kind == "disk"
                          and active.uuid not in self._failed else None)
                pending_ro = [m for m in pending_ro if m.uuid != wanted]
            ejects = [u for u in self._ejected if u in self._mounted and
                      self._mounted[u].target != root]
        if root is None:
            self.rotation.close_idle()
        for m in pending_ro:
            self._remount_read_only(m)
        for uuid in ejects:
            with self._lock:
                if self._try_unmount(uuid):
                    self._enqueue(StorageNudge("ejected"))
        if root is not None:
            self.rotation.watch_free_space(root)
        self._check_dir_still_there()

    def _remount_read_only(self, m: _Mounted) -> None:
        try:
            disk_ops.remount(m.target, read_only=True)
        except DiskError as exc:
            logger.info("disk %s still busy, read-only later: %s", m.uuid, exc)
            return
        m.read_only = True

    def _check_dir_still_there(self) -> None:
        """The root must keep its marker; an adopted directory that comes back is used again."""
        with self._lock:
            root = self._root
            if root is None:
                active = active_entry()
                if (active is not None and active.kind == "dir"
                        and active.disk_id not in self._failed
                        and self._read_marker_logged(Path(active.root)) is not None):
                    self._enqueue(StorageNudge("recheck"))
                return
            if self._read_marker_logged(root) is None:
                logger.error("the marker under %s vanished: stopping recording there", root)
                self._enqueue(StorageNudge("marker_gone", errno.ENOENT, f"{root}: marker vanished"))

    def check_health(self) -> None:
        """The disk-health job: SMART of the active disk, with the I/O errors seen."""
        with self._lock:
            active = active_entry()
            drive = None
            if active is not None and active.kind == "disk" and active.uuid in self._mounted:
                devpath = self._mounted[active.uuid].devpath
                drive = self._drives.get(devpath)
        report = health.check(drive.device if drive else None, list(self._io_errors))
        self._health = report.to_json()

