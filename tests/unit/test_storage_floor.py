"""DiskStorage's free-space floor follows what the recorder itself records, not how fast the
disk fills (other writers on a shared disk), and its retention warnings are rate-limited."""

import errno
import logging
import time

import pytest

import fakes
from recorder import config, limits, retention
from recorder.storage import disk_ops
from recorder.paths import DataPaths
from recorder.storage import DiskStorage

GIB = 1024**3
TOTAL = 100 * GIB


class FakeDisk:
    """statvfs of a disk that other processes fill at `rate` bytes per call."""

    def __init__(self, free: int, rate: int):
        self.free = free
        self.rate = rate

    def __call__(self, root):
        self.free -= self.rate
        return {"total_bytes": TOTAL, "free_bytes": self.free}


@pytest.fixture
def st(tmp_path, monkeypatch):
    paths = DataPaths(tmp_path / "data")
    paths.ensure()
    config.open_config(paths.config_db)
    s = DiskStorage(paths, watcher=fakes.FakeWatcher(), run_jobs=False)
    s.soon = []
    monkeypatch.setattr(s.rotation, "run_soon", lambda: s.soon.append(1))
    return s


def test_other_writers_do_not_raise_the_floor(st, tmp_path, monkeypatch):
    own_rate = 250_000                         # 2 Mbit/s recorded by this recorder
    job = st.rotation
    job._rate, job._rate_at = own_rate, time.monotonic()    # as a retention run leaves them
    floor = retention.default_floor(TOTAL, own_rate)
    assert floor == int(TOTAL * limits.FLOOR_FRACTION)
    # 1 GiB above the floor; someone else writes 200 MB/s to the same disk.
    monkeypatch.setattr(disk_ops, "free_space", FakeDisk(floor + GIB, 200_000_000))
    for _ in range(4):
        st.rotation.watch_free_space(tmp_path)
    assert st.soon == []                       # nothing of ours is deleted for their writes
    # Below the floor the recorder does rotate (the floor itself still holds).
    monkeypatch.setattr(disk_ops, "free_space", FakeDisk(floor - GIB, 0))
    st.rotation.watch_free_space(tmp_path)
    assert st.soon == [1]


def test_unknown_rate_near_the_floor_asks_for_a_run_now_and_then(st, tmp_path, monkeypatch):
    floor = retention.default_floor(TOTAL, 0)
    monkeypatch.setattr(disk_ops, "free_space", FakeDisk(floor + floor // 2, 0))
    st.rotation.watch_free_space(tmp_path)      # no rate yet: a run computes it (and the headroom)
    assert st.soon == [1]
    st.rotation._rate_at = time.monotonic()     # what that run leaves behind
    st.rotation.watch_free_space(tmp_path)
    assert st.soon == [1]                      # not again until the rate is stale
    st.rotation._rate_at -= limits.RATE_REFRESH_S + 1
    st.rotation.watch_free_space(tmp_path)
    assert st.soon == [1, 1]


def test_retention_warnings_are_rate_limited(st, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(disk_ops, "free_space", FakeDisk(GIB, 0))      # below any floor
    with caplog.at_level(logging.INFO, logger="recorder.storage"):
        for _ in range(30):                    # 30 watch ticks, 30 ENOSPC reports
            st.rotation.watch_free_space(tmp_path)
            st.report_io_error(errno.ENOSPC, "No space left on device")
        assert len(st.soon) == 60              # retention is still asked for every time ...
        said = [r.getMessage() for r in caplog.records]
        assert sum("close to the floor" in m for m in said) == 1      # ... but said once
        assert sum("no space left" in m for m in said) == 1
        st.rotation.say.last = {k: v - limits.STORAGE_LOG_EVERY_S
                                for k, v in st.rotation.say.last.items()}
        st.rotation.watch_free_space(tmp_path)  # a minute later it is said again
        assert sum("close to the floor" in r.getMessage() for r in caplog.records) == 2
