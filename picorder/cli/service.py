"""`picorder recorder`, `picorder status` and `picorder demo`."""

import argparse
import json
import logging
import logging.handlers
import os
import signal
import socket
import sqlite3
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from picorder.cli.common import UserError, add_command, open_config_from_args, paths_from_args
from recorder import config, control, limits
from recorder.children import die_with_parent
from recorder.paths import DEMO_MARKER, ROOT_DATA_DIR, DataPaths, default_demo_dir
from recorder.status import RecorderStatus, stream_health
from recorder.storage import make_storage, recording_root_from_config
from recorder.wallclock import now_us

logger = logging.getLogger(__name__)

DEMO_PANEL_PORT = 8080
DEMO_LOG_NAME = "recorder.log"      # the System page shows its last lines


def open_paths(args) -> DataPaths:
    """The data directory with config.db open (as every camera command does)."""
    return open_config_from_args(args)


def run_recorder(paths: DataPaths, **kwargs) -> int:
    from recorder.service import Recorder
    recorder = Recorder(paths, make_storage(paths), **kwargs)
    recorder.install_signal_handlers()
    try:
        return recorder.run()
    except RuntimeError as exc:           # another recorder owns the control socket
        raise UserError(str(exc)) from exc


def cmd_recorder(args) -> int:
    return run_recorder(open_paths(args))


# ------------------------------------------------------------------ status

def _ago(utc_us: int | None) -> str:
    if not utc_us:
        return "-"
    return datetime.fromtimestamp(utc_us / 1e6, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def format_status(data: dict) -> str:
    status = RecorderStatus.from_json(data)
    clock, storage = status.clock, status.storage
    now = clock.now_utc_us or now_us()
    lines = [
        f"recorder {status.version} pid {status.pid}, clock "
        f"{'trusted' if clock.trusted else 'NOT trusted'} ({clock.source})",
        f"storage: {storage.get('state')} {storage.get('root') or ''}"
        + (f" - {storage['detail']}" if storage.get("detail") else ""),
    ]
    if not status.streams:
        lines.append("no cameras configured")
    for s in status.streams:
        health = stream_health(s, now)
        since = f" since {_ago(health.since_utc_us)}" if health.since_utc_us and health.problem else ""
        lines.append(f"{s.key:<24} {health.words + since:<44} "
                     f"pid {s.pid or '-':<7} {s.fps or 0:5.1f} fps {s.bitrate_kbps or 0:7.0f} kb/s "
                     f"restarts {s.restarts:<3} last segment {_ago(s.last_segment_utc_us)}")
        if s.last_error and s.state != "RUNNING":
            lines.append(f"    last error: {s.last_error}")
    return "\n".join(lines)


def cmd_status(args) -> int:
    paths = paths_from_args(args)
    try:
        status = control.request(paths.control_socket, "status")
    except control.RecorderUnavailable as exc:
        raise UserError(str(exc)) from exc
    except control.ControlError as exc:
        raise UserError(f"the recorder refused: {exc}") from exc
    if args.json:
        json.dump(status, sys.stdout, indent=2)
        print()
    else:
        print(format_status(status))
    return 0


# ------------------------------------------------------------------ demo

@dataclass
class ChildService:
    """A process `picorder demo` runs next to the recorder (cameras, panel, ...)."""

    name: str
    start_fn: object
    stop_fn: object
    where: list[str] = field(default_factory=list)

    def start(self) -> None:
        self.start_fn()

    def stop(self) -> None:
        try:
            self.stop_fn()
        except (OSError, subprocess.SubprocessError):
            logger.exception("stopping %s failed", self.name)


def demo_cameras(paths: DataPaths, cameras: int, port: int):
    """Start the simulated cameras and make config.db point at them."""
    from recorder.sim.launcher import SimCameras
    sim = SimCameras(cameras=cameras, port=port, patterns="picture")

    def start():
        sim.start()
        with config.db.atomic():
            for n in range(1, cameras + 1):
                name = f"cam{n}"
                fields = {"name": name, "main_url": sim.url(n), "sub_url": sim.url(n, sub=True),
                          "display_name": f"Demo camera {n}", "enabled": True}
                cam = config.Camera.get_or_none(config.Camera.name == name)
                if cam is None or (cam.main_url, cam.sub_url) != (fields["main_url"],
                                                                  fields["sub_url"]):
                    config.save_camera(fields, cam)
    child = ChildService("simulated cameras", start, sim.stop)
    child.sim = sim
    return child


def demo_panel(paths: DataPaths, port: int, verbose: bool) -> ChildService:
    """The web panel under gunicorn."""
    proc: list[subprocess.Popen] = []
    bind = f"127.0.0.1:{port}"

    def start():
        argv = [sys.executable, "-m", "picorder", "panel", "--data", str(paths.root),
                "--bind", bind]
        env, out = None, None
        if not verbose:          # gunicorn's warnings and errors only
            env, out = dict(os.environ, PICORDER_PANEL_LOGLEVEL="warning"), subprocess.DEVNULL
        # When the demo dies, even by SIGKILL, so does gunicorn (its shutdowns take about
        # 2 s; nothing of the panel's needs one), and its workers with it (gunicorn.conf.py).
        proc.append(subprocess.Popen(argv, start_new_session=True, env=env, stdout=out,
                                     preexec_fn=die_with_parent(signal.SIGKILL)))

    def stop():
        for p in proc:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(limits.STOP_GRACE_S)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(limits.KILL_WAIT_S)
    return ChildService("web panel", start, stop, [f"web panel:        http://{bind}/"])


class RedactFilter(logging.Filter):
    """Strip credentials from every record (lines are redacted already; this is a backstop)."""

    def filter(self, record: logging.LogRecord) -> bool:
        from recorder.ffmpeg import redact
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def demo_log_file(paths: DataPaths) -> logging.Handler | None:
    """Log to DATA/recorder.log as well (rotated, small), as the appliance's journal would."""
    try:
        handler = logging.handlers.RotatingFileHandler(
            paths.root / DEMO_LOG_NAME, maxBytes=limits.DEMO_LOG_BYTES,
            backupCount=limits.DEMO_LOG_BACKUPS, encoding="utf-8")
    except OSError:
        logger.exception("cannot write %s: logging to the terminal only",
                         paths.root / DEMO_LOG_NAME)
        return None
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactFilter())
    logging.getLogger().addHandler(handler)
    return handler


def installed_recorder_reason(root: Path) -> str | None:
    """Why the data directory belongs to an installed recorder, or None if the demo may use it.

    It does when it is the appliance's, when a recorder runs on it, or when its config.db
    (read without changing it) has cameras or adopted storage and the demo did not make it.
    """
    if root.resolve() == ROOT_DATA_DIR.resolve():
        return "it is the appliance's state directory"
    paths = DataPaths(root)
    with socket.socket(socket.AF_UNIX) as sock:
        try:
            sock.connect(str(paths.control_socket))
            return "a recorder is running on it"
        except OSError:
            pass
    if (root / DEMO_MARKER).exists() or not paths.config_db.exists():
        return None
    from recorder.storage import SETTING_DISKS
    try:
        with sqlite3.connect(f"file:{paths.config_db}?mode=ro", uri=True) as db:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
            cameras = db.execute("SELECT count(*) FROM camera").fetchone()[0] \
                if "camera" in tables else 0
            disks = db.execute("SELECT value FROM setting WHERE key = ?", (SETTING_DISKS,)) \
                .fetchone() if "setting" in tables else None
    except sqlite3.Error as exc:
        return f"its config.db cannot be read ({exc})"
    if cameras:
        return f"its config.db has {cameras} camera(s)"
    if disks and disks[0] not in ("", "[]"):
        return "its config.db has adopted storage"
    return None


def demo_paths(args) -> DataPaths:
    """The demo's data directory, opened: --data (checked) or its own directory."""
    given = getattr(args, "data", None)
    root = Path(given).expanduser().absolute() if given else default_demo_dir()
    reason = installed_recorder_reason(root)
    if reason and not args.force:
        raise UserError(f"{root} belongs to an installed recorder ({reason}); the demo "
                        f"records into a directory of its own: leave out --data, or add "
                        f"--force to use this one anyway")
    args.data = str(root)
    paths = open_paths(args)
    (paths.root / DEMO_MARKER).touch()
    return paths


def quiet_terminal() -> None:
    """Show only warnings and errors on the terminal; the log file keeps everything."""
    for handler in logging.getLogger().handlers:
        if not isinstance(handler, logging.FileHandler):
            handler.setLevel(logging.WARNING)


def print_summary(paths: DataPaths, cams, started: list[ChildService], cameras: int) -> None:
    """What the demo does and where to look: the last lines it prints unless something fails."""
    picorder = Path(sys.argv[0]) if Path(sys.argv[0]).name == "picorder" else Path("picorder")
    lines = ["picorder demo is running:"]
    for child in started[1:]:
        lines += [f"  {line}" for line in child.where]
    lines += [f"  recordings:       {recording_root_from_config() / 'picorder'}",
              f"  cameras:          rtsp://127.0.0.1:{cams.sim.port}/cam1 ... "
              f"/cam{cameras} (and /camN/sub)",
              f"  data directory:   {paths.root} (full log: {paths.root / DEMO_LOG_NAME})",
              f"  status:           {picorder} status --data {paths.root}",
              "Stop it with Ctrl-C. From here on only warnings and errors show (-v: the full log)."]
    print("\n".join(lines), flush=True)


def cmd_demo(args) -> int:
    from recorder.sim.launcher import free_port
    if not 1 <= args.cameras <= 64:
        raise UserError("--cameras must be between 1 and 64")
    if args.port and not 1 <= args.port <= 65535:
        raise UserError("--port must be between 1 and 65535")
    if not args.verbose:
        quiet_terminal()
    paths = demo_paths(args)
    demo_log_file(paths)
    from recorder import storage
    storage.adopt_demo_directory(paths)      # recordings (and retention) in the data directory
    port = args.port or free_port()
    cams = demo_cameras(paths, args.cameras, port)
    children = [cams, demo_panel(paths, args.panel_port, args.verbose)]
    started = []
    try:
        for child in children:
            child.start()
            started.append(child)
        print_summary(paths, cams, started, args.cameras)
        return run_recorder(paths)
    except RuntimeError as exc:
        raise UserError(str(exc)) from exc
    finally:
        for child in reversed(started):
            child.stop()


def register(sub) -> None:
    add_command(sub, "recorder", cmd_recorder, "run the recorder service in the foreground")
    add_command(sub, "status", cmd_status, "show what the running recorder is doing").add_argument(
        "--json", action="store_true", help="the control socket's status as JSON")

    p = sub.add_parser("demo", help="record simulated cameras (no real camera or disk needed)")
    p.add_argument("--cameras", type=int, default=2, metavar="N", help="simulated cameras (2)")
    p.add_argument("--port", type=int, default=0, metavar="P",
                   help="RTSP port of the simulated cameras (default: a free port)")
    p.add_argument("--panel-port", type=int, default=DEMO_PANEL_PORT, metavar="P",
                   help=f"port of the web panel on 127.0.0.1 ({DEMO_PANEL_PORT})")
    p.add_argument("--force", action="store_true",
                   help="use --data even if it belongs to an installed recorder")
    p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                   help="show the full log, not only warnings and errors")
    p.add_argument("--data", metavar="DIR", default=argparse.SUPPRESS,
                   help="data directory (default: a directory of the demo's own, "
                        "/var/tmp/picorder-demo as root, else ~/.local/state/picorder-demo)")
    p.set_defaults(func=cmd_demo)
