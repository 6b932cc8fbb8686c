"""Wall time is the truth (docs/time.md): the real recorder records a simulated camera
that misbehaves (timestamps jumping back and forward, a clock running fast or slow, a
freeze with the connection up, a resolution change), and every frame's indexed wall
time is checked against the capture time the camera burnt into it (a QR code).

The promises: each frame within 1 s of when it arrived, each row's duration matching
its frames (+/- 5 %, plus one frame: N frames span N - 1 intervals to ffmpeg), no two
rows of the stream overlapping, at most 2 s lost per discontinuity (see
LOST_PER_DISCONTINUITY_US).
"""

import subprocess
import time
from dataclasses import dataclass

import pytest

from recorder import limits
from recorder.paths import DataPaths
from recorder.service import Recorder
from recorder.storage.directory import DirectoryStorage
from helpers.recorder import add_camera, recorder_thread, rows, set_setting
from stamps import QrReader, stamped_frames

pytestmark = pytest.mark.integration

FPS = 15
FRAME_US = 1_000_000 // FPS
SEGMENT_S = 5
ARRIVAL_TOLERANCE_US = 1_000_000
# The bound. A discontinuity loses the new run's start: finding the jump, a new
# ffmpeg and connection, then the camera's next keyframe (every second here): 0.67-0.93 s
# measured (docs/time.md).
LOST_PER_DISCONTINUITY_US = 2_000_000
# A clock 2 % off, corrected at 4 % within 7.5 s windows, settles within two segments.
DRIFT_RECORD_S = 40


@dataclass
class Placed:
    """One indexed row and the stamps (capture times) of the frames it covers."""

    row: object
    stamps: list[tuple[int, int]]          # (indexed wall time, burnt-in capture time)


def record(tmp_path, sim, seconds: float, stall_s: float = limits.STALL_PROGRESS_S):
    """Run the real recorder on camera 1 of `sim` for `seconds`; its index rows."""
    paths = DataPaths(tmp_path / "data")
    paths.ensure()
    pdir = paths.default_recordings / "picorder"
    add_camera(paths.root, "cam1", sim.url(1))
    set_setting(paths.root, "segment_seconds", str(SEGMENT_S))
    rec = Recorder(paths, DirectoryStorage(paths.default_recordings, create=True),
                   ntp_check=lambda: True, stall_s=stall_s)
    with recorder_thread(rec):
        time.sleep(seconds)
    return pdir, rows(pdir, "cam1")


def placed_frames(pdir, found) -> list[Placed]:
    """Each row's frames at their indexed wall time: the row's start plus the frame's time
    in the file, scaled by the drift correction (the row's length over the file's). A
    row cut at a discontinuity covers the frames before the file's timestamps break (a
    frame lasting over 1 s, or under 1 ms: crammed by ffmpeg after a jump back), or
    before its own end."""
    reader = QrReader()
    placed = []
    for row in found:
        frames = stamped_frames(pdir / row.path, reader)
        media_us = row.duration_us
        for i, (a, b) in enumerate(zip(frames, frames[1:])):
            if not 1_000 <= b.pts_us - a.pts_us <= 1_000_000 and i > 0:   # ffmpeg crams
                # the second frame of every file it starts (the first comes untimed)
                frames, media_us = frames[:i], a.pts_us
                break
        length = row.end_us - row.start_us
        scale = length / media_us if media_us else 1.0
        if scale < 0.95:
            # Cut where the recorder saw the jump, before the file ends (ffmpeg gives the
            # packets after a jump it drops the timestamps of continuing ones).
            frames, scale = [f for f in frames if f.pts_us < length], 1.0
        placed.append(Placed(row, [(row.start_us + round(f.pts_us * scale), f.stamp_us)
                                   for f in frames if f.stamp_us is not None]))
        assert len(placed[-1].stamps) >= 0.9 * len(frames), row    # the stamps are readable
    return placed


def check_wall_time_is_the_truth(placed: list[Placed], discontinuities: int) -> None:
    assert placed, "nothing was indexed"
    for p in placed:
        for indexed, captured in p.stamps:
            assert abs(indexed - captured) < ARRIVAL_TOLERANCE_US, (p.row, indexed - captured)
        length = p.row.end_us - p.row.start_us
        frames_us = len(p.stamps) * FRAME_US
        assert abs(frames_us - length) <= 0.05 * length + FRAME_US, (p.row, len(p.stamps))
    for a, b in zip(placed, placed[1:]):
        assert b.row.start_us >= a.row.end_us, (a.row, b.row)            # no overlap
    lost = [b.stamps[0][1] - a.stamps[-1][1] - FRAME_US for a, b in zip(placed, placed[1:])
            if a.stamps and b.stamps]
    big = [x for x in lost if x > FRAME_US]
    assert len(big) <= discontinuities, lost
    assert all(x <= LOST_PER_DISCONTINUITY_US for x in lost), lost


def test_timestamps_jumping_back_and_forward(tmp_path, sim_cameras, ffmpeg_available):
    sim = sim_cameras(cameras=1, fps=FPS, gop=FPS, patterns="picture", stamp=True,
                      jumps=[(-20.0, 10.0), (300.0, 22.0)])
    pdir, found = record(tmp_path, sim, 36)
    assert len({r.run_id for r in found}) == 3                  # a new run at each jump
    check_wall_time_is_the_truth(placed_frames(pdir, found), discontinuities=2)


@pytest.mark.parametrize("rate", [1.02, 0.98])
def test_a_camera_clock_2_percent_off(tmp_path, sim_cameras, ffmpeg_available, monkeypatch,
                                      rate):
    """4 times the issue's 0.5 % against 4 times the correction rate and a 4 times
    shorter window: the same race, in DRIFT_RECORD_S instead of an hour (the hour itself
    is tests/unit/test_timekeeping.py, with a fake clock). Uncorrected, the last frames
    would be filed 0.8 s off, twice the bound checked on the last two rows."""
    monkeypatch.setattr(limits, "DRIFT_MAX_RATE", 4 * limits.DRIFT_MAX_RATE)
    monkeypatch.setattr(limits, "DRIFT_WINDOW_S", limits.DRIFT_WINDOW_S / 4)
    sim = sim_cameras(cameras=1, fps=FPS, gop=FPS, patterns="picture", stamp=True,
                      clock_rate=rate)
    pdir, found = record(tmp_path, sim, DRIFT_RECORD_S)
    assert len({r.run_id for r in found}) == 1                  # corrected, never cut
    placed = placed_frames(pdir, found)
    check_wall_time_is_the_truth(placed, discontinuities=0)
    late = [abs(indexed - captured) for p in placed[-2:] for indexed, captured in p.stamps]
    assert max(late) < 400_000                                   # not adding up


def test_a_freeze_and_a_resolution_change(tmp_path, sim_cameras, ffmpeg_available):
    """The picture stops for 8 s with the connection up, then shrinks to 320x180. The
    stall watchdog (here 4 s) restarts ffmpeg, which is stuck in its read until it is
    killed (STOP_GRACE_S later), and the new one waits for the camera."""
    sim = sim_cameras(cameras=1, fps=FPS, gop=FPS, patterns="picture", stamp=True,
                      freezes=[(8.0, 10.0)], resizes=[((320, 180), 26.0)])
    pdir, found = record(tmp_path, sim, 40, stall_s=4)
    placed = placed_frames(pdir, found)
    for p in placed:
        for indexed, captured in p.stamps:
            assert abs(indexed - captured) < ARRIVAL_TOLERANCE_US, (p.row, indexed - captured)
    for a, b in zip(found, found[1:]):
        assert b.start_us >= a.end_us
    gaps = [b.stamps[0][1] - a.stamps[-1][1] for a, b in zip(placed, placed[1:])
            if a.stamps and b.stamps and b.stamps[0][1] - a.stamps[-1][1] > 2_000_000]
    assert len(gaps) == 1
    assert gaps[0] < 8_000_000 + limits.STOP_GRACE_S * 1e6 + LOST_PER_DISCONTINUITY_US
    widths = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0",
                             "-show_entries", "frame=width", "-of", "csv=p=0",
                             str(pdir / found[-1].path)], capture_output=True, text=True,
                            check=True).stdout.split()
    assert widths and set(widths) == {"320"}                    # the new size is recorded
