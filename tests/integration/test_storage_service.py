"""The recorder service on DiskStorage: unplug and a disk-confirmed I/O error stop everything at
once, a write error the disk does not show stops nothing (fake udev),
and a real loop disk that fills up while retention keeps the floor (real udev, mount, ffmpeg)."""

import errno
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import fakes
from helpers import PROJECT
from helpers.storage import FIXTURES, sh, stop_gently
from helpers.waiting import poll
from recorder import config
from recorder.storage import disk_ops
from recorder.storage.udev import DriveEvent
from recorder.paths import DataPaths
from recorder.events import DiskFailure, SignalEvent
from recorder.service import Recorder
from recorder.storage import STATE_MISSING, STATE_RECORDING, DiskStorage

pytestmark = pytest.mark.integration


def files_outside(top: Path, root: Path) -> set[str]:
    """Recording-like files anywhere under top except the disk root."""
    found = set()
    for dirpath, _dirs, names in os.walk(top):
        if Path(dirpath) == root or root in Path(dirpath).parents:
            continue
        found.update(os.path.join(dirpath, n) for n in names
                     if n.endswith((".mp4", ".db", ".ts", ".tmp")) and n != "config.db")
    return found


def open_under(root: Path) -> list[str]:
    """Files below root this process (the recorder: index.db and its WAL) holds open."""
    held = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(root) + "/"):
            held.append(target)
    return held


def newest_mtime(root: Path) -> float:
    return max((p.stat().st_mtime for p in root.rglob("*.mp4")), default=0.0)


@pytest.fixture
def fake_disk(tmp_path, monkeypatch):
    """A USB disk as udev would report it, 'mounted' as a plain directory."""
    data = json.loads((FIXTURES / "usb_partition_add.synthetic.json").read_text())
    event = DriveEvent(data["action"], data["properties"], None, data["size_bytes"])
    table: dict[str, str] = {}

    def mount(uuid, target, read_only=False):
        Path(target).mkdir(parents=True, exist_ok=True)
        table[str(target)] = uuid

    monkeypatch.setattr(disk_ops, "mount", mount)
    monkeypatch.setattr(disk_ops, "unmount", lambda target, lazy=False: table.pop(str(target), None))
    monkeypatch.setattr(disk_ops, "remount", lambda target, read_only: None)
    monkeypatch.setattr(disk_ops, "mount_source_uuid", lambda target: table.get(str(target)))
    monkeypatch.setattr(disk_ops, "peek_marker", lambda device: None)
    return event


def test_unplug_and_io_error_stop_recording_within_2_s(tmp_path, fake_disk, sim_cameras,
                                                      ffmpeg_available):
    """The disk is a directory standing in for a mount: the kernel's view of it is faked."""
    sim = sim_cameras(cameras=2)
    paths = DataPaths(tmp_path / "data")
    paths.ensure()
    config.open_config(paths.config_db)
    config.Setting.write("segment_seconds", "2")
    for n in (1, 2):
        config.Camera.create(name=f"cam{n}", main_url=sim.url(n))
    watcher = fakes.FakeWatcher([fake_disk])
    kernel = {"problem": None}
    storage = DiskStorage(paths, mount_base=tmp_path / "disks", watcher=watcher, run_jobs=False,
                          kernel=lambda root, devpath: kernel["problem"])
    uuid = fake_disk.properties["ID_FS_UUID"]
    storage.adopt(uuid)
    root = tmp_path / "disks" / uuid
    rec = Recorder(paths, storage)

    def status() -> dict:
        return rec.status().to_json()
    thread = threading.Thread(target=rec.run, name="recorder", daemon=True)
    thread.start()
    try:
        def recording():
            st = status()
            return (st["storage"]["state"] == STATE_RECORDING and len(st["streams"]) == 2
                    and all(s["last_segment_utc_us"] for s in st["streams"]))
        assert poll(recording, 40), status()
        assert any(p.endswith("index.db") for p in open_under(root))
        before = files_outside(tmp_path, root)

        # udev: the disk is pulled. The observer thread only enqueues.
        t0 = time.monotonic()
        watcher.callback(DriveEvent("remove", fake_disk.properties))

        def stopped():
            st = status()
            return (st["storage"]["state"] == STATE_MISSING and st["storage"]["root"] is None
                    and all(s["state"] == "STOPPED" and s["pid"] is None
                            and s["problem"] == "disk missing" for s in st["streams"]))
        assert poll(stopped, 5), status()
        assert poll(lambda: not open_under(root), 5), open_under(root)
        assert time.monotonic() - t0 < 2.0, "streams stopped and index closed within 2 s"
        settled = newest_mtime(root)
        time.sleep(2.5)
        assert newest_mtime(root) == settled, "something still writes to the pulled disk"
        assert files_outside(tmp_path, root) == before, "recordings went somewhere else"
        rows_before = len(list((root / "picorder").rglob("*.mp4")))

        # Re-plug: recording resumes onto the same disk, old recordings still there.
        t0 = time.monotonic()
        watcher.callback(DriveEvent("add", fake_disk.properties, None, fake_disk.size_bytes))
        assert poll(lambda: all(s["state"] == "RUNNING" for s in status()["streams"])
                        and status()["storage"]["state"] == STATE_RECORDING, 10)
        assert time.monotonic() - t0 < 10
        assert poll(lambda: len(list((root / "picorder").rglob("*.mp4"))) > rows_before + 2, 15)

        # An I/O error one stream reports, which the disk does not show (its write probe
        # passes): the disk stays, and no stream stops.
        pids = {s["camera"]: s["pid"] for s in status()["streams"]}
        rec.enqueue(DiskFailure("cam1/main", errno.EIO, "av_interleaved_write_frame(): I/O error"))
        assert poll(lambda: status()["storage"]["disk_check"]["finding"], 5)
        st = status()
        assert st["storage"]["state"] == STATE_RECORDING, st["storage"]
        assert {s["camera"]: s["pid"] for s in st["streams"]} == pids
        assert all(s["state"] == "RUNNING" for s in st["streams"])

        # An I/O error the kernel confirms (the filesystem went read-only): all stop at once.
        kernel["problem"] = "the kernel made the disk's filesystem read-only (it found errors on it)"
        t0 = time.monotonic()
        rec.enqueue(DiskFailure("cam1/main", errno.EROFS, "Read-only file system"))
        assert poll(stopped, 5), status()
        assert poll(lambda: not open_under(root), 5), open_under(root)
        assert time.monotonic() - t0 < 2.0
        assert "I/O error, and the disk shows it" in status()["storage"]["detail"]
        assert files_outside(tmp_path, root) == before
    finally:
        rec.enqueue(SignalEvent(signal.SIGTERM))
        thread.join(20)
    assert not thread.is_alive()


# ------------------------------------------------------------- a real disk fills up

def picorder(data: Path, base: Path, *args, check=True) -> subprocess.CompletedProcess:
    env = dict(os.environ, PICORDER_ALLOW_LOOP="1", PICORDER_MOUNT_BASE=str(base), TZ="UTC")
    proc = subprocess.run([sys.executable, "-m", "picorder", "--data", str(data), *args],
                          capture_output=True, text=True, env=env, timeout=120)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.mark.root
def test_disk_full_retention_keeps_the_floor(loop_disks, mount_base, tmp_path, sim_cameras,
                                             ffmpeg_available):
    mb = 1024 * 1024
    floor = 40 * mb
    sim = sim_cameras(cameras=2, kbps=8000)
    data = tmp_path / "data"
    dev = loop_disks.create("small", size_mb=300, fs=None)
    picorder(data, mount_base, "disk", "format", dev, "--confirm", dev)
    uuid = loop_disks.uuid(dev)
    picorder(data, mount_base, "disk", "adopt", uuid)
    root = mount_base / uuid
    # Most of the disk is taken by something else: the recordings get what is left.
    filler = root / "filler.bin"
    sh("fallocate", "-l", str(free_bytes(root) - floor - 30 * mb), filler)
    picorder(data, mount_base, "disk", "floor", "--bytes", str(floor))
    for n in (1, 2):
        picorder(data, mount_base, "camera", "add", f"cam{n}", sim.url(n))
    paths = DataPaths(data)
    config.open_config(paths.config_db)
    config.Setting.write("segment_seconds", "3")

    env = dict(os.environ, PICORDER_ALLOW_LOOP="1", PICORDER_MOUNT_BASE=str(mount_base),
               TZ="UTC", PYTHONPATH=str(PROJECT))
    log = open(tmp_path / "recorder.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "picorder", "--data", str(data), "recorder"],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    lowest = free_bytes(root)
    try:
        deadline = time.monotonic() + 90
        deleted = 0
        while time.monotonic() < deadline:
            lowest = min(lowest, free_bytes(root))
            status = status_of(data, mount_base)
            if status:
                deleted = status["storage"]["retention"]["total_deleted"]
                if deleted >= 12:
                    break
            time.sleep(0.25)
        assert deleted >= 12, f"retention never had to work: {status}"
        print("retention working after", round(90 - (deadline - time.monotonic())), "s:",
              status["storage"]["retention"])
        for _ in range(40):                     # keep watching a little longer
            lowest = min(lowest, free_bytes(root))
            time.sleep(0.25)
        status = status_of(data, mount_base)
        assert status["storage"]["state"] == STATE_RECORDING
        for s in status["streams"]:
            assert s["state"] == "RUNNING" and s["restarts"] == 0, s
        assert lowest >= floor, f"free space fell to {lowest} below the floor {floor}"
        assert status["storage"]["retention"]["floor_met"]
        # `picorder disk` talks to the running recorder over the control socket.
        listing = json.loads(picorder(data, mount_base, "disk", "list", "--json").stdout)
        assert listing["state"] == STATE_RECORDING and listing["root"] == str(root)
        assert listing["adopted"][0]["active"] and listing["adopted"][0]["free_bytes"] > 0
        bad = picorder(data, mount_base, "disk", "adopt", "0b1e7f2a-0000-4000-8000-000000000000",
                       check=False)
        assert bad.returncode == 2 and "no attached disk has the filesystem UUID" in bad.stderr
        bad = picorder(data, mount_base, "disk", "format", dev, "--confirm", dev, check=False)
        assert bad.returncode == 2 and "is mounted at" in bad.stderr
    finally:
        stop_gently(proc)
        log.close()
    assert proc.returncode == 0, (tmp_path / "recorder.log").read_text()[-3000:]
    check = picorder(data, mount_base, "check", "--root", str(root), check=False)
    assert check.returncode == 0 and "no problems found" in check.stdout, check.stdout + check.stderr
    assert filler.exists(), "retention must only delete recordings"


def free_bytes(root: Path) -> int:
    st = os.statvfs(root)
    return st.f_bavail * st.f_frsize


def status_of(data: Path, base: Path) -> dict | None:
    proc = picorder(data, base, "status", "--json", check=False)
    return json.loads(proc.stdout) if proc.returncode == 0 else None
