"""Time with real ffmpeg and an injected clock: segments recorded while the clock was
3 h behind are flagged, then re-anchored when the clock is set from the panel."""

import time
from datetime import datetime, timezone

import pytest

from recorder import control
from recorder.paths import DataPaths
from recorder.service import Recorder
from recorder.sim.launcher import SimCameras
from recorder.storage.directory import DirectoryStorage
from recorder.timekeeping import Clock
from helpers.recorder import add_camera, recorder_thread, rows, set_setting, wait_for

pytestmark = pytest.mark.integration

HOUR_US = 3600 * 1_000_000


class SteppableClock(Clock):
    """The host's clocks, except that the wall clock is `offset_us` off and can be set."""

    def __init__(self, offset_us: int):
        self.offset_us = offset_us

    def wall_us(self) -> int:
        return time.time_ns() // 1000 + self.offset_us

    def set_wall_us(self, utc_us: int) -> None:
        self.offset_us = utc_us - time.time_ns() // 1000


def name_time_us(path: str) -> int:
    """The UTC time ffmpeg (on the real clock) put in the file name."""
    stamp = datetime.strptime("/".join(path.split("/")[2:]), "%Y/%m/%d/%H-%M-%S.mp4")
    return int(stamp.replace(tzinfo=timezone.utc).timestamp()) * 1_000_000


def test_untrusted_segments_reanchored_when_clock_set(tmp_path, ffmpeg_available):
    paths = DataPaths(tmp_path / "data")
    paths.ensure()
    pdir = paths.default_recordings / "picorder"
    clock = SteppableClock(-3 * HOUR_US)             # a Pi without RTC, 3 h behind
    with SimCameras(cameras=1, fps=15, gop=15) as sim:
        add_camera(paths.root, "cam1", sim.url(1))
        set_setting(paths.root, "segment_seconds", "3")
        rec = Recorder(paths, DirectoryStorage(paths.default_recordings, create=True),
                       clock=clock, ntp_check=lambda: None)
        with recorder_thread(rec):
            wait_for(lambda: len(rows(pdir, "cam1")) >= 2, 30, "two segments")
            before = rows(pdir, "cam1")
            assert not any(r.clock_trusted for r in before)
            for r in before:                          # placed on the 3 h slow clock
                assert abs(r.start_us + 3 * HOUR_US - name_time_us(r.path)) < 3e6
            status = control.request(paths.control_socket, "status")
            assert status["clock"] == {**status["clock"], "trusted": False, "source": "untrusted"}
            with pytest.raises(control.ControlError, match="integer"):
                control.request(paths.control_socket, "set_clock", utc_us="noon")
            with pytest.raises(control.ControlError, match="plausible"):
                control.request(paths.control_socket, "set_clock", utc_us=5)
            answer = control.request(paths.control_socket, "set_clock",
                                     utc_us=time.time_ns() // 1000)
            assert answer == {"trusted": True, "source": "panel"}
            wait_for(lambda: all(r.clock_trusted for r in rows(pdir, "cam1")), 10, "re-anchored")
            n = len(rows(pdir, "cam1"))
            wait_for(lambda: len(rows(pdir, "cam1")) >= n + 2, 15, "more segments")
    after = rows(pdir, "cam1")
    assert all(r.clock_trusted for r in after)
    for r in after:                                   # true time now, within the naming slack
        assert abs(r.start_us - name_time_us(r.path)) < 3e6, r
    for a, b in zip(after, after[1:]):               # one run: contiguous, no overlap
        assert b.start_us >= a.end_us and b.start_us - a.end_us <= 70_000
    assert {r.path for r in before} <= {r.path for r in after}
