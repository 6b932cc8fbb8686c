"""Helpers for the recorder's integration tests: a recorder subprocess, status, the index."""

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from helpers import PROJECT
from helpers.waiting import wait_for
from recorder import control
from recorder.paths import DataPaths


# Runs the real service in its own process; only the stall threshold is injected.
LAUNCHER = """
import logging, sys
from picorder.cli import setup_logging
from picorder.cli.service import open_paths, run_recorder
import argparse
setup_logging(True)
logging.getLogger("peewee").setLevel(logging.INFO)
args = argparse.Namespace(data=sys.argv[1])
from recorder import config, storage
paths = open_paths(args)
# Say explicitly where to record, as a server's admin would; a recorder with
# nothing adopted and nothing named records nothing.
if not storage.load_entries() and not config.Setting.read("recordings_dir"):
    config.Setting.write("recordings_dir", str(paths.default_recordings))
kwargs = {"stall_s": float(sys.argv[2])} if sys.argv[2] != "-" else {}
sys.exit(run_recorder(paths, **kwargs))
"""


def picorder(data: Path, *args: str, input: str | None = None, check: bool = True):
    """Run the `picorder` CLI against a data directory."""
    argv = [sys.executable, "-m", "picorder", "--data", str(data), *args]
    return subprocess.run(argv, input=input, capture_output=True, text=True, check=check,
                          timeout=60, cwd=PROJECT)


def add_camera(data: Path, name: str, url: str, *, user: str | None = None,
               password: str | None = None) -> None:
    args = ["camera", "add", name, url]
    if user:
        args += ["--user", user]
    if password is not None:
        args += ["--password-file", "-"]
    picorder(data, *args, input=(password or "") + "\n")


def set_setting(data: Path, key: str, value: str) -> None:
    with sqlite3.connect(data / "config.db") as db:
        db.execute("INSERT OR REPLACE INTO setting(key, value) VALUES (?, ?)", (key, value))


@dataclass
class RecorderProcess:
    """`picorder recorder` as a child process, logging to a file."""

    data: Path
    stall_s: float | None = None
    proc: subprocess.Popen | None = None
    log_path: Path | None = None
    started: float = 0.0
    _logs: list = field(default_factory=list)
    popen_kwargs: dict = field(default_factory=dict)     # e.g. group/umask as in the systemd unit

    @property
    def paths(self) -> DataPaths:
        return DataPaths(self.data)

    def start(self) -> "RecorderProcess":
        n = len(list(self.data.parent.glob("recorder-*.log")))
        self.log_path = self.data.parent / f"recorder-{n}.log"
        self._logs.append(self.log_path)
        log = open(self.log_path, "w")
        stall = "-" if self.stall_s is None else str(self.stall_s)
        self.proc = subprocess.Popen([sys.executable, "-c", LAUNCHER, str(self.data), stall],
                                     stdout=log, stderr=subprocess.STDOUT, cwd=PROJECT,
                                     **self.popen_kwargs)
        log.close()
        self.started = time.time()
        wait_for(lambda: self.try_status() is not None, 15, "the recorder's control socket")
        wait_for(lambda: " running (pid " in self.log(), 15, "the recorder's start-up")
        return self

    def try_status(self) -> dict | None:
        if self.proc.poll() is not None:
            raise AssertionError(f"the recorder exited with {self.proc.returncode}:\n{self.log()}")
        try:
            return control.request(self.paths.control_socket, "status", timeout=5)
        except control.RecorderUnavailable:
            return None

    def status(self) -> dict:
        status = self.try_status()
        assert status is not None, "the recorder does not answer"
        return status

    def stream(self, camera: str, stream: str = "main") -> dict | None:
        for s in self.status()["streams"]:
            if (s["camera"], s["stream"]) == (camera, stream):
                return s
        return None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def terminate(self, timeout: float = 15) -> float:
        """SIGTERM; return how long the recorder took to exit."""
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout)
        return time.monotonic() - t0

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def children(self) -> list[int]:
        return descendants(self.proc.pid)


def descendants(pid: int) -> list[int]:
    """PIDs of every process below `pid` (from /proc)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def ffmpeg_pids_for(data: Path) -> list[int]:
    """ffmpeg processes recording below this data directory (also orphans)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmdline and cmdline[0].endswith(b"ffmpeg") and str(data).encode() in b" ".join(cmdline):
            pids.append(int(entry))
    return pids


def is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False


@dataclass
class Row:
    camera: str
    stream: str
    path: str
    start_us: int
    end_us: int
    duration_us: int
    frames: int
    bytes: int
    clock_trusted: int
    run_id: int


def rows(picorder_dir: Path, camera: str | None = None, stream: str = "main") -> list[Row]:
    """Index rows (read-only), oldest first."""
    db_path = picorder_dir / "index.db"
    if not db_path.exists():
        return []
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5) as db:
        sql = ("SELECT camera, stream, path, start_us, end_us, duration_us, frames, bytes, "
               "clock_trusted, run_id FROM segment")
        args: tuple = ()
        if camera:
            sql += " WHERE camera = ? AND stream = ?"
            args = (camera, stream)
        try:
            found = db.execute(sql + " ORDER BY camera, stream, start_us", args).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):      # the recorder is creating index.db right now
                return []
            raise
        return [Row(*r) for r in found]


@contextmanager
def recorder_thread(rec):
    """Run an in-process Recorder's loop in a thread for the block, then shut it down."""
    stop = threading.Event()

    def loop():
        rec.start()
        while not rec._done:
            rec.step()
            if stop.is_set():
                rec.begin_shutdown("test over")
        rec._finish()
    thread = threading.Thread(target=loop)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()
