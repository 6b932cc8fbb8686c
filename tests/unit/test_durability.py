"""The durability thread: it syncs the recording filesystem every period, and only that one."""

import errno
import os
import time

import fakes
from helpers.waiting import run_until
from recorder import limits
from recorder.durability import Flusher, SyncFailed, _libc_syncfs, sync_period_s
from recorder.process import State
from recorder.service import Recorder


class FakeSyncfs:
    """Records the st_dev of every fd it is asked to sync; can be told to fail."""

    def __init__(self):
        self.devs = []
        self.error: int | None = None

    def __call__(self, fd):
        self.devs.append(os.fstat(fd).st_dev)
        if self.error is not None:
            raise OSError(self.error, os.strerror(self.error))


def test_period_from_the_environment():
    assert sync_period_s({}) == limits.DURABLE_SYNC_S
    assert sync_period_s({"PICORDER_SYNC_S": "0"}) == 0
    assert sync_period_s({"PICORDER_SYNC_S": "2.5"}) == 2.5
    assert sync_period_s({"PICORDER_SYNC_S": "soon"}) == limits.DURABLE_SYNC_S
    assert sync_period_s({"PICORDER_SYNC_S": "-1"}) == limits.DURABLE_SYNC_S
    assert not Flusher(lambda e: None, period_s=0).enabled


def test_syncs_only_the_filesystem_it_was_given(tmp_path):
    fake = FakeSyncfs()
    flusher = Flusher(lambda e: None, period_s=1, syncfs=fake)
    assert not flusher.sync_once()                       # no root yet
    dev = os.stat(tmp_path).st_dev
    flusher.set_root(tmp_path, dev)
    assert flusher.sync_once()
    assert fake.devs == [dev]
    # The disk was pulled: the mount point left behind is another filesystem.
    flusher.set_root(tmp_path, dev + 1)
    assert not flusher.sync_once()
    flusher.set_root(tmp_path / "gone", dev)
    assert not flusher.sync_once()
    flusher.set_root(None)
    assert not flusher.sync_once()
    assert fake.devs == [dev] and flusher.stats.syncs == 1


def test_a_failing_sync_is_reported_once_until_it_works_again(tmp_path):
    events = []
    fake = FakeSyncfs()
    flusher = Flusher(events.append, period_s=1, syncfs=fake)
    flusher.set_root(tmp_path, os.stat(tmp_path).st_dev)
    fake.error = errno.EIO
    assert not flusher.sync_once() and not flusher.sync_once()
    assert len(events) == 1 and isinstance(events[0], SyncFailed)
    assert events[0].errno_ == errno.EIO and str(tmp_path) in events[0].detail
    fake.error = None
    assert flusher.sync_once()
    fake.error = errno.EIO
    flusher.sync_once()
    assert len(events) == 2 and flusher.stats.failures == 3


def test_the_thread_syncs_every_period(tmp_path):
    fake = FakeSyncfs()
    flusher = Flusher(lambda e: None, period_s=0.05, syncfs=fake)
    flusher.set_root(tmp_path, os.stat(tmp_path).st_dev)
    flusher.start()
    try:
        time.sleep(0.6)
    finally:
        flusher.stop()
    count = len(fake.devs)
    # 12 periods; a busy machine may delay some rounds, never add any.
    assert 4 <= count <= 13, count
    time.sleep(0.2)
    assert len(fake.devs) == count, "the thread stopped"


def test_the_real_syncfs(tmp_path):
    syncfs = _libc_syncfs()
    assert syncfs is not None
    (tmp_path / "f").write_bytes(b"x" * 10000)
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        syncfs(fd)
    finally:
        os.close(fd)


def test_the_recorder_syncs_its_recording_root_while_it_has_one(tmp_path):
    paths = fakes.data_with_cam1(tmp_path)
    storage = fakes.FakeStorage(tmp_path / "disk")
    storage.root.mkdir()
    rec = Recorder(paths, storage, spawn=fakes.FakeSpawn(first_pid=50_000, exits_on_stop=True), ntp_check=lambda: None,
                   recover=lambda index, trusted: None)
    fake = FakeSyncfs()
    rec.flusher = Flusher(rec.enqueue, period_s=0.02, syncfs=fake)
    dev = os.stat(storage.root).st_dev
    rec.start()
    try:
        run_until(rec, lambda: rec.procs["cam1/main"].state == State.STARTING)
        run_until(rec, lambda: len(fake.devs) >= 3)
        assert set(fake.devs) == {dev}
        storage.enqueue(fakes.Flip(None))                       # unplugged: nothing to sync
        run_until(rec, lambda: rec.procs["cam1/main"].stopped)
        time.sleep(0.1)
        count = len(fake.devs)
        time.sleep(0.2)
        assert len(fake.devs) == count
        storage.enqueue(fakes.Flip(tmp_path / "disk"))          # back: synced again
        run_until(rec, lambda: len(fake.devs) >= count + 3)
        fake.error = errno.EIO                            # the disk fails: storage is told
        run_until(rec, lambda: storage.io_errors)
        assert storage.io_errors[0][0] == errno.EIO
    finally:
        rec.begin_shutdown("test")
        run_until(rec, lambda: rec._done)
        rec._finish()
