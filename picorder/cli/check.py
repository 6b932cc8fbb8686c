"""`picorder check [--repair]`: compare the recordings index with the segment files offline."""

import errno
import logging
import socket
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from peewee import DatabaseError

from picorder.cli.common import (UserError, add_command, add_root_option, paths_from_args,
                                 reason, recordings_dir)
from recorder import control
from recorder.ffmpeg import files_since
from recorder.index import Index
from recorder.limits import CHECK_IN_FLIGHT_S, CONTROL_TIMEOUT_S
from recorder.paths import DataPaths
from recorder.recovery import recover

logger = logging.getLogger(__name__)


def register(sub) -> None:
    parser = add_command(
        sub, "check", run_check, "check the recordings index against the segment files",
        description="Find segment files without an index row (torn by a crash), rows whose "
                    "file is gone and interrupted deletions. Without --repair only report "
                    "(exit status 1 if anything is wrong); with --repair truncate torn files "
                    "to their last complete fragment and index them, move unreadable files "
                    "to picorder/lost+found, and drop rows of missing files.")
    parser.add_argument("--repair", action="store_true", help="fix what is found")
    add_root_option(parser)


def recorder_running(paths: DataPaths) -> bool:
    """True if a recorder answers on the control socket of this data directory."""
    if not paths.control_socket.exists():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(CONTROL_TIMEOUT_S)
        try:
            sock.connect(str(paths.control_socket))
        except OSError as exc:
            return exc.errno not in (errno.ECONNREFUSED, errno.ENOENT)
    return True


def recorder_status(paths: DataPaths) -> dict | None:
    """The running recorder's status, or None if none answers."""
    if not paths.control_socket.exists():
        return None
    try:
        status = control.request(paths.control_socket, "status", timeout=CONTROL_TIMEOUT_S)
    except (control.RecorderUnavailable, control.ControlError):
        return None
    return status if isinstance(status, dict) else None


def _same_dir(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def files_in_flight(picorder_dir: Path, status: dict | None,
                    now: float | None = None) -> set[Path]:
    """Segment files the running recorder (its `status`) is writing or about to index.

    The segment of each stream being written, and every file of its streams
    changed within limits.CHECK_IN_FLIGHT_S: a segment that closed a moment ago
    is indexed once it is synced and probed, and a new one holds no complete
    fragment during its first second.
    """
    root = (status or {}).get("storage", {}).get("root")
    if not root or not _same_dir(Path(root) / "picorder", picorder_dir):
        return set()
    now = time.time() if now is None else now
    today = datetime.fromtimestamp(now, timezone.utc).date()
    days = [(today - timedelta(days=n)).strftime("%Y/%m/%d") for n in (1, 0)]
    found = set()
    for stream in status.get("streams") or []:
        base = picorder_dir / str(stream.get("camera")) / str(stream.get("stream"))
        if stream.get("current_segment"):
            found.add(picorder_dir / stream["current_segment"])
        found.update(path for path, _ in files_since(base, days, now - CHECK_IN_FLIGHT_S))
    return found


def run_check(args) -> int:
    paths = paths_from_args(args)
    picorder_dir = recordings_dir(args, paths)
    status = recorder_status(paths)
    if args.repair and (status is not None or recorder_running(paths)):
        raise UserError("the recorder is running (it repairs the index itself when it starts); "
                        "stop it before `picorder check --repair`")
    in_flight = files_in_flight(picorder_dir, status)
    if not getattr(args, "verbose", False):
        # The findings are printed below; the same lines in the log would only repeat them.
        logging.getLogger("recorder.recovery").setLevel(logging.ERROR)
    try:
        with Index.open(picorder_dir / "index.db", readonly=not args.repair) as index:
            report = recover(index, in_flight, dry_run=not args.repair)
    except (OSError, DatabaseError) as exc:
        raise UserError(f"cannot check {picorder_dir}: {reason(exc)}") from exc
    for line in report.lines():
        print(line)
    for path in sorted(in_flight):
        if path.exists():
            print(f"being written by the recorder, not checked: {path.relative_to(picorder_dir)}")
    if args.repair:
        print(f"{report.problems} problem(s) found and repaired, {len(report.errors)} error(s)"
              if report.problems else "no problems found")
        return 1 if report.errors else 0
    print(f"{report.problems} problem(s) found; run `picorder check --repair` to fix them"
          if report.problems else "no problems found")
    return 1 if report.problems else 0
