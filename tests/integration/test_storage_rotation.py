"""Retention on a real index.db: kill -9 in the middle of a rotation, and the next start."""

import os
import queue
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import fakes
from helpers import PROJECT
from recorder import config, storage as storage_mod
from recorder.index import Index, Segment, queries
from recorder.paths import DataPaths
from recorder.storage import DiskStorage

pytestmark = pytest.mark.integration

ROTATE_AND_HANG = r"""
import sys, time
from pathlib import Path
from recorder import retention
from recorder.index import queries
pdir, ready = Path(sys.argv[1]), Path(sys.argv[2])
conn = queries.connect_for_retention(pdir / "index.db")
victims = list(queries.iter_oldest(conn))[:int(sys.argv[3])]

def hang(chunk):
    ready.write_text(str(len(chunk)))
    time.sleep(600)

retention.apply_rotation(conn, pdir, victims, after_mark=hang)
"""


def make_recordings(pdir: Path, n: int) -> list[str]:
    rels = []
    with Index.open(pdir / "index.db") as index, index.atomic():
        for i in range(n):
            rel = f"cam1/main/2026/01/01/00-{i // 60:02d}-{i % 60:02d}.mp4"
            (pdir / rel).parent.mkdir(parents=True, exist_ok=True)
            (pdir / rel).write_bytes(b"\0" * 1000)
            queries.insert_segment(index, camera="cam1", stream="main", path=rel,
                                   start_us=i * 1_000_000, end_us=(i + 1) * 1_000_000,
                                   duration_us=1_000_000, bytes=1000)
            rels.append(rel)
    return rels


def test_kill_9_between_mark_and_delete_is_finished_at_next_start(tmp_path):
    paths = DataPaths(tmp_path / "data")
    paths.ensure()
    config.open_config(paths.config_db)
    root = tmp_path / "recordings"
    root.mkdir()
    st = DiskStorage(paths, watcher=fakes.FakeWatcher(), run_jobs=False)
    st.adopt_dir(str(root), allow_root_device=True)
    pdir = root / "picorder"
    rels = make_recordings(pdir, 40)

    ready = tmp_path / "marked"
    env = dict(os.environ, PYTHONPATH=str(PROJECT))
    proc = subprocess.Popen([sys.executable, "-c", ROTATE_AND_HANG, str(pdir), str(ready), "15"],
                            env=env)
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert proc.poll() is None, "the rotating process died early"
            assert time.monotonic() < deadline, "the rotation never marked its rows"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(10)

    with Index.open(pdir / "index.db", readonly=True) as index:
        marked = [s.path for s in index.select().where(Segment.deleting == True)]  # noqa: E712
    assert marked == rels[:15]
    assert all((pdir / r).exists() for r in marked), "killed before unlinking"

    # The next start completes the interrupted deletion before anything else.
    st2 = DiskStorage(paths, watcher=fakes.FakeWatcher(), run_jobs=False)
    st2.start(queue.Queue().put)
    try:
        assert st2.recording_root() == root
    finally:
        st2.stop()
    with Index.open(pdir / "index.db", readonly=True) as index:
        left = [s.path for s in index.select().order_by(Segment.start_us)]
    assert left == rels[15:]
    assert not any((pdir / r).exists() for r in rels[:15])
    assert all((pdir / r).exists() for r in rels[15:])
    check = subprocess.run([sys.executable, "-m", "picorder", "--data", str(paths.root), "check",
                            "--root", str(root)], capture_output=True, text=True, env=env)
    assert check.returncode == 0 and "no problems found" in check.stdout, check.stdout + check.stderr


def test_retention_keeps_the_floor_and_the_limits_on_a_real_index(tmp_path, monkeypatch):
    paths = DataPaths(tmp_path / "data")
    paths.ensure()
    config.open_config(paths.config_db)
    config.Camera.create(name="cam1", main_url="rtsp://127.0.0.1/x", max_bytes=30_000)
    root = tmp_path / "recordings"
    root.mkdir()
    st = DiskStorage(paths, watcher=fakes.FakeWatcher(), run_jobs=False)
    st.adopt_dir(str(root), allow_root_device=True)
    st.start(queue.Queue().put)
    rels = make_recordings(root / "picorder", 50)
    try:
        result = st.run_retention()
        # 50 x 1000 bytes against a 30,000 byte limit: the 20 oldest go, nothing more.
        assert [s.path for s in result.deleted] == rels[:20]
        assert st.state()["retention"]["last_deleted"] == 20
        # A floor 10,000 bytes above the free space: the oldest go first, at least ten of them
        # (other processes share this filesystem, so its free space moves a little).
        free = os.statvfs(root).f_bavail * os.statvfs(root).f_frsize
        storage_mod.set_floor(free + 10_000)
        result = st.run_retention()
        k = len(result.deleted)
        assert k >= 10 and [s.path for s in result.deleted] == rels[20:20 + k]
        storage_mod.set_floor(None)
        assert not st.run_retention().deleted       # all limits hold: nothing
        with pytest.raises(Exception, match="greater than zero"):
            storage_mod.set_floor(0)
        assert sorted(p.name for p in (root / "picorder" / "cam1/main/2026/01/01").iterdir()) \
            == sorted(Path(r).name for r in rels[20 + k:])
    finally:
        st.stop()
