"""A camera's fault stays that camera's (docs/design.md decision 7), on a real loop disk with real ffmpeg.

Two good cameras and one that sends VP8 (which the MP4 muxer refuses: ffmpeg fails
"writing the header", once taken for a disk error that stopped every camera) record
side by side: the good ones never stop, the disk stays adopted and mounted, and the
odd one's state says what is wrong. Then the disk itself fails (ext4 finds an error
and remounts itself read-only): that does stop every stream.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import PROJECT
from helpers.recorder import rows, set_setting, wait_for
from helpers.storage import sh, stop_gently
from recorder import control
from recorder.paths import DataPaths

pytestmark = [pytest.mark.integration, pytest.mark.root]

# Side by side until the odd camera's third try has failed (backoff 10 s, 20 s, ... with
# +/- 20 % jitter: about 30-45 s), at least WATCH_MIN_S, at most WATCH_MAX_S.
WATCH_MIN_S = 30
WATCH_MAX_S = 90
ODD_TRIES = 3
VP8_WORDS = ("the camera sends VP8, which picorder cannot store; "
             "choose H.264 or H.265 in the camera's settings")


def picorder(data: Path, base: Path, *args) -> subprocess.CompletedProcess:
    env = dict(os.environ, PICORDER_ALLOW_LOOP="1", PICORDER_MOUNT_BASE=str(base), TZ="UTC")
    proc = subprocess.run([sys.executable, "-m", "picorder", "--data", str(data), *args],
                          capture_output=True, text=True, env=env, timeout=120, cwd=PROJECT)
    assert proc.returncode == 0, proc.stderr
    return proc


def status(data: Path) -> dict | None:
    try:
        return control.request(DataPaths(data).control_socket, "status", timeout=5)
    except control.RecorderUnavailable:
        return None


def streams(st: dict) -> dict[str, dict]:
    return {s["camera"]: s for s in st["streams"] if s["stream"] == "main"}


def test_an_unstorable_camera_stops_nothing_and_a_real_disk_fault_stops_all(
        loop_disks, mount_base, tmp_path, sim_cameras, ffmpeg_available):
    good = sim_cameras(cameras=2, kbps=300, width=320, height=180)
    odd = sim_cameras(cameras=1, kbps=300, width=320, height=180, codec="vp8")
    data = tmp_path / "data"
    dev = loop_disks.create("disk", size_mb=200, fs=None)
    picorder(data, mount_base, "disk", "format", dev, "--confirm", dev)
    sh("tune2fs", "-e", "remount-ro", dev)       # what the kernel does when ext4 finds an error
    uuid = loop_disks.uuid(dev)
    picorder(data, mount_base, "disk", "adopt", uuid)
    root = mount_base / uuid
    for name, url in (("cam1", good.url(1)), ("cam2", good.url(2)), ("cam3", odd.url(1))):
        picorder(data, mount_base, "camera", "add", name, url)
    set_setting(data, "segment_seconds", "5")

    env = dict(os.environ, PICORDER_ALLOW_LOOP="1", PICORDER_MOUNT_BASE=str(mount_base),
               TZ="UTC", PYTHONPATH=str(PROJECT))
    log_path = tmp_path / "recorder.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "picorder", "--data", str(data),
                                 "recorder"], env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, cwd=PROJECT)
    try:
        def running_both():
            st = status(data)
            return st if st and all(streams(st).get(c, {}).get("state") == "RUNNING"
                                    for c in ("cam1", "cam2")) else None
        st = wait_for(running_both, 40, "the good cameras recording")
        pids = {c: streams(st)[c]["pid"] for c in ("cam1", "cam2")}

        # Side by side for a while: watched twice a second.
        odd_states = set()
        watch_started = time.monotonic()
        while True:
            watched = time.monotonic() - watch_started
            st = status(data)
            assert st is not None, log_path.read_text()[-3000:]
            by_cam = streams(st)
            for cam in ("cam1", "cam2"):
                s = by_cam[cam]
                assert (s["state"], s["problem"], s["pid"], s["restarts"]) == \
                    ("RUNNING", None, pids[cam], 0), s
            assert st["storage"]["state"] == "recording", st["storage"]
            assert st["storage"]["root"] == str(root) and os.path.ismount(root)
            cam3 = by_cam["cam3"]
            odd_states.add((cam3["state"], cam3["problem"]))
            third_failed = (cam3["restarts"] >= ODD_TRIES - 1 and cam3["state"] == "BACKOFF"
                            and cam3["problem"] == "unsupported codec")
            if watched >= WATCH_MAX_S or (watched >= WATCH_MIN_S and third_failed):
                break
            time.sleep(0.5)

        cam3 = streams(status(data))["cam3"]
        assert cam3["problem"] == "unsupported codec", cam3
        assert cam3["problem_detail"] == VP8_WORDS
        assert cam3["restarts"] >= ODD_TRIES - 1  # it was tried again, on its own backoff
        assert ("RUNNING", None) not in odd_states
        assert ("BACKOFF", "unsupported codec") in odd_states
        assert {p for _, p in odd_states} <= {None, "unsupported codec"}, odd_states
        pdir = root / "picorder"
        for cam in ("cam1", "cam2"):
            indexed = rows(pdir, cam)
            # 5 s segments over the watch: none missing (the first and last may be open).
            assert len(indexed) >= watched // 5 - 2, (cam, len(indexed), watched)
        assert rows(pdir, "cam3") == []
        assert list((pdir / "cam3").rglob("*.mp4")) == []   # no empty file per try left behind
        text = log_path.read_text()
        assert "the recording disk failed" not in text and "disk error" not in text

        # Now the disk itself fails: ext4 finds an error and goes read-only.
        fs = os.path.basename(os.path.realpath(dev))
        Path(f"/sys/fs/ext4/{fs}/trigger_fs_error").write_text("1")
        t0 = time.monotonic()

        def all_stopped():
            st = status(data)
            by_cam = streams(st)
            return st if (st["storage"]["state"] == "disk missing"
                          and all(by_cam[c]["state"] == "STOPPED"
                                  and by_cam[c]["problem"] == "disk missing"
                                  for c in ("cam1", "cam2"))) else None
        st = wait_for(all_stopped, 20, "every stream stopped by the disk's fault")
        print(f"disk fault to every stream stopped: {time.monotonic() - t0:.1f} s")
        # Kernels since 6.6 keep the mount's read-only flag clear after an ext4 error (it
        # refuses writes with EROFS): the write probe, or a failed syncfs, shows it.
        detail = st["storage"]["detail"]
        assert "the disk shows it" in detail, st["storage"]
        assert "read-only" in detail.lower() or "syncfs" in detail, st["storage"]
        assert os.path.ismount(root) is False         # detached, as after an unplug
    finally:
        stop_gently(proc)
    assert proc.returncode == 0, log_path.read_text()[-3000:]
