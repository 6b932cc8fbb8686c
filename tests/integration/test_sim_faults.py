"""The simulated camera: a second client leaves the first one's timeline alone, and the
fault options change the timestamps a client sees (read with real ffmpeg)."""

import signal
import subprocess
import time

import pytest

from stamps import frame_times

pytestmark = pytest.mark.integration

FRAME_US = 1_000_000 // 15


def record(url: str, out, seconds: float, while_recording=None) -> str:
    """Copy the stream to an MPEG-TS file for `seconds` of real time; ffmpeg's warnings."""
    proc = subprocess.Popen(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "warning",
                             "-rtsp_transport", "tcp", "-i", url, "-c", "copy",
                             "-f", "mpegts", "-y", str(out)],
                            stderr=subprocess.PIPE, text=True)
    started = time.monotonic()
    if while_recording is not None:
        while_recording()
    time.sleep(max(0.0, seconds - (time.monotonic() - started)))
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    return err


def jumps_back(err: str) -> list[str]:
    """ffmpeg's reports of timestamps going back (not the usual one at the start)."""
    return [line for line in err.splitlines()
            if "Non-monotonous DTS" in line and "previous: 0, current: 0" not in line]


def steps(path) -> list[int]:
    times = frame_times(path)
    return [b - a for a, b in zip(times, times[1:])]


def test_second_client_keeps_the_first_clients_timeline(tmp_path, sim_cameras,
                                                        ffmpeg_available):
    sim = sim_cameras(cameras=1)

    def second_client():
        time.sleep(3)
        subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-rtsp_transport", "tcp",
                        "-i", sim.url(1), "-frames:v", "1", "-f", "null", "-"],
                       check=True, timeout=30)
    err = record(sim.url(1), tmp_path / "a.ts", 8, second_client)
    assert not jumps_back(err)
    gaps = steps(tmp_path / "a.ts")[5:]
    assert len(gaps) > 60 and all(0 < g < 3 * FRAME_US for g in gaps), gaps


def test_jumps_and_a_fast_clock_reach_the_client(tmp_path, sim_cameras, ffmpeg_available):
    sim = sim_cameras(cameras=1, jumps=[(-4.0, 3.0), (30.0, 5.0)], clock_rate=1.5)
    err = record(sim.url(1), tmp_path / "a.ts", 9)
    assert jumps_back(err)                                                      # the jump back
    gaps = steps(tmp_path / "a.ts")[5:]
    assert any(g > 25_000_000 for g in gaps)                                    # the jump forward
    usual = sorted(gaps)[len(gaps) // 2]
    assert abs(usual - 1.5 * FRAME_US) < 2_000                                  # 1.5 x real time
