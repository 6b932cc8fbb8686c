"""`picorder disk ...`: list, adopt, format and eject recording disks.

When the recorder runs, each command is sent to it over the control socket
(it owns the mounts and the recording root); otherwise the command acts
directly on the system and config.db, and the recorder picks the result up
when it starts.
"""

import json
import logging
import sys
import time

from picorder.cli.common import UserError, add_command, add_group, open_config_from_args
from recorder import control, limits
from recorder.storage.disk_ops import DiskError
from recorder.paths import DataPaths
from recorder.retention import RetentionError

logger = logging.getLogger(__name__)

EJECT_WAIT_S = 30.0
TIMEOUTS = {"disk_format": limits.MKFS_TIMEOUT_S + 30, "disk_adopt": limits.MOUNT_TIMEOUT_S + 10}


def _remote(paths: DataPaths, cmd: str, **args):
    """Send to the running recorder; raise LookupError when none runs."""
    if not paths.control_socket.exists():
        raise LookupError
    try:
        return control.request(paths.control_socket, cmd,
                               timeout=TIMEOUTS.get(cmd, limits.CONTROL_TIMEOUT_S), **args)
    except control.RecorderUnavailable:
        raise LookupError from None
    except control.ControlError as exc:
        if str(exc).startswith("unknown command"):
            # The running recorder records into a fixed directory (nothing adopted yet).
            print("note: the running recorder does not manage disks yet; acting directly. "
                  "Restart the recorder to record onto adopted disks.", file=sys.stderr)
            raise LookupError from None
        raise UserError(str(exc)) from exc


def _direct(paths: DataPaths, method: str, **args):
    from recorder.storage import make_disk_storage
    storage = make_disk_storage(paths, run_jobs=False)
    try:
        return getattr(storage, method)(**args)
    except (DiskError, RetentionError) as exc:
        raise UserError(str(exc)) from exc


def call(args, cmd: str, method: str, **kwargs):
    """Run a storage command in the recorder if it runs, else here."""
    paths = open_config_from_args(args)
    try:
        return _remote(paths, cmd, **kwargs)
    except LookupError:
        logger.debug("no recorder running: acting directly")
    return _direct(paths, method, **kwargs)


def _size(n: int | None) -> str:
    if not n:
        return "-"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def cmd_list(args) -> int:
    result = call(args, "disk_list", "cmd_list")
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()
        return 0
    print(f"storage: {result['state']}" + (f" at {result['root']}" if result["root"] else ""))
    if result["adopted"]:
        print("adopted:")
    for a in result["adopted"]:
        flags = [f for f in ("active", "read_only", "ejected") if a.get(f)]
        where = a["uuid"] if a["kind"] == "disk" else a["root"]
        print(f"  {a['kind']:<4} {where:<38} {'mounted' if a['mounted'] else 'unmounted':<9} "
              f"{' '.join(flags)}{'  problem: ' + a['problem'] if a.get('problem') else ''}")
    print("drives:")
    if not result["drives"]:
        print("  no USB, SATA or NVMe disks found")
    for d in result["drives"]:
        note = "system disk" if d["system"] else ("picorder disk" if d["marker_disk_id"] else "")
        print(f"  {d['device']:<14} {_size(d['size_bytes']):>9} {d['bus'] or '?':<5} "
              f"{d['fs_type'] or '-':<6} {d['fs_uuid'] or '-':<38} {d['fs_label'] or '':<10} "
              f"{(d['model'] or '')[:20]:<20} {'mounted' if d['mounted'] else ''} {note}")
    return 0


def cmd_adopt(args) -> int:
    entry = call(args, "disk_adopt", "adopt", uuid=args.uuid)
    print(f"adopted disk {args.uuid}: recording at {entry['root']}")
    return 0


def cmd_adopt_dir(args) -> int:
    entry = call(args, "disk_adopt_dir", "adopt_dir", path=args.path,
                 allow_root_device=args.allow_root_device)
    print(f"adopted directory {entry['root']} as the recording root")
    return 0


def cmd_format(args) -> int:
    result = call(args, "disk_format", "format", device=args.device, confirm=args.confirm,
                  force=args.force)
    print(f"formatted {result['device']}: ext4, label {result['label']}, UUID {result['uuid']}")
    if args.adopt and result["uuid"]:
        entry = call(args, "disk_adopt", "adopt", uuid=result["uuid"])
        print(f"adopted it: recording at {entry['root']}")
    elif result["uuid"]:
        print(f"adopt it with: picorder disk adopt {result['uuid']}")
    return 0


def cmd_eject(args) -> int:
    result = call(args, "disk_eject", "eject", uuid=args.uuid)
    deadline = time.monotonic() + EJECT_WAIT_S
    while not result.get("unmounted") and time.monotonic() < deadline:
        time.sleep(0.5)
        listing = call(args, "disk_list", "cmd_list")
        mine = [a for a in listing["adopted"] if a.get("uuid") == args.uuid]
        result["unmounted"] = not mine or not mine[0]["mounted"]
    if not result.get("unmounted"):
        raise UserError(f"disk {args.uuid} is still busy; try again in a moment")
    print(f"disk {args.uuid} is unmounted: safe to unplug")
    return 0


def cmd_floor(args) -> int:
    from recorder import storage
    open_config_from_args(args)
    try:
        storage.set_floor(None if args.clear else args.bytes)
    except RetentionError as exc:
        raise UserError(str(exc)) from exc
    print("free-space floor: " + ("default" if args.clear else f"{args.bytes} bytes"))
    return 0


def register(sub) -> None:
    disk_sub = add_group(sub, "disk", "list, adopt, format and eject recording disks")
    add_command(disk_sub, "list", cmd_list, "list disks and the adopted recording disks"
                ).add_argument("--json", action="store_true")
    add_command(disk_sub, "adopt", cmd_adopt, "record onto the disk with this filesystem UUID",
                "uuid")
    add_command(disk_sub, "adopt-dir", cmd_adopt_dir, "record into a directory (servers, demo)",
                "path").add_argument("--allow-root-device", action="store_true",
                                     help="accept a directory on the system disk")
    p = add_command(disk_sub, "format", cmd_format, "create an ext4 filesystem labelled PICORDER",
                    "device")
    p.add_argument("--confirm", metavar="DEVICE", help="the device again, to confirm")
    p.add_argument("--force", action="store_true", help="erase a disk that holds data")
    p.add_argument("--adopt", action="store_true", help="adopt it afterwards")
    add_command(disk_sub, "eject", cmd_eject, "stop recording onto a disk and unmount it", "uuid")
    p = add_command(disk_sub, "floor", cmd_floor, "set the free-space floor retention keeps")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--bytes", type=int, metavar="N")
    group.add_argument("--clear", action="store_true", help="back to the default")
