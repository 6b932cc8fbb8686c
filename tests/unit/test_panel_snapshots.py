"""Snapshot decoders are bounded across processes by lock files."""

import subprocess
import sys
import time

import pytest

from webpanel import snapshots

HOLDER = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


def test_a_slot_held_by_another_worker_is_waited_for_then_refused(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path / "snapshot-0.lock"),
                               "1.5"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(snapshots.Busy):
            with snapshots.decoder_slot(tmp_path, total=1, wait_s=0.3):
                pass
        with snapshots.decoder_slot(tmp_path, total=2, wait_s=0.3):  # a second slot is free
            pass
        started = time.monotonic()
        with snapshots.decoder_slot(tmp_path, total=1, wait_s=10):   # freed when it exits
            waited = time.monotonic() - started
        assert 0.2 < waited < 5
    finally:
        holder.kill()
        holder.wait()
