"""The camera Test button's probe: measuring a stream, warnings, and credential hygiene."""

import os
import stat
import subprocess

import pytest

from recorder import limits
from recorder.ffmpeg import StreamSpec
from webpanel import probe


def packets(n, fps=15.0, gop=15, size=1000):
    return [{"pts_time": f"{i / fps:.6f}", "flags": "K_" if i % gop == 0 else "__", "size": str(size)}
            for i in range(n)]


def test_describe_measures_fps_bitrate_and_keyframe_interval():
    info = {"streams": [{"codec_name": "h264", "width": 1920, "height": 1080}],
            "packets": packets(75, fps=15, gop=30, size=2000)}
    result = probe.describe(info)
    assert result.ok and result.codec == "h264" and (result.width, result.height) == (1920, 1080)
    assert result.fps == pytest.approx(15, abs=0.01)
    assert result.bitrate_kbps == pytest.approx(2000 * 8 * 15 / 1000, rel=0.01)
    assert result.keyframe_interval_s == pytest.approx(2.0)
    assert result.warnings == []


def test_warns_about_h265_and_long_keyframe_interval():
    info = {"streams": [{"codec_name": "hevc", "width": 640, "height": 360}],
            "packets": packets(100, fps=10, gop=50)}
    result = probe.describe(info)
    assert result.keyframe_interval_s == pytest.approx(5.0)
    text = " ".join(result.warnings)
    assert "H.265" in text and "5.0 s" in text


def test_warns_when_the_capture_holds_one_keyframe():
    info = {"streams": [{"codec_name": "h264", "width": 640, "height": 360}],
            "packets": packets(75, fps=15, gop=1000)}
    result = probe.describe(info)
    assert result.keyframe_interval_s is None
    assert any("longer than" in w for w in result.warnings)


def test_no_video_is_an_error():
    assert probe.describe({"streams": [], "packets": []}).ok is False


def test_input_list_is_private_and_holds_the_quoted_credentials(tmp_path):
    spec = StreamSpec(camera="probe", stream="test", url="rtsp://cam.lan:554/it's",
                      transport="udp", username="ad min", password="p@ss:w/rd")
    path = probe.write_input_list(tmp_path, spec)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    text = path.read_text()
    assert "file 'rtsp://ad%20min:p%40ss%3Aw%2Frd@cam.lan:554/it'\\''s'" in text
    assert "option rtsp_transport udp" in text
    assert f"option timeout {int(limits.PROBE_IO_TIMEOUT_S * 1_000_000)}" in text


@pytest.mark.parametrize("stderr, words", [
    ("method DESCRIBE failed: 401 Unauthorized", "auth failed"),
    ("Connection to tcp://10.0.0.9:554 failed: Connection refused", "camera unreachable"),
    ("method DESCRIBE failed: 404 Not Found", "no stream at this path"),
    ("rtsp://10.255.255.1:554/x: Invalid data found when processing input", "no answer from the camera"),
    ("tcp://10.0.0.9:554: Connection timed out", "no answer from the camera"),
])
def test_errors_in_words(stderr, words):
    assert words in probe.classify_error(stderr)


def test_snapshot_tokens_are_checked(tmp_path):
    assert probe.snapshot_path(tmp_path, "../../etc/passwd") is None
    assert probe.snapshot_path(tmp_path, "g" * 32) is None
    assert probe.snapshot_path(tmp_path, "a" * 32) is None     # well-formed but never made


@pytest.mark.integration
def test_probe_a_real_stream_without_the_password_in_argv(tmp_path, sim_cameras, monkeypatch):
    sim = sim_cameras(cameras=1, user="admin", password="Sekr1t-pw", fps=15, gop=15)
    seen = []
    real_run = subprocess.run

    def spy(argv, *args, **kwargs):
        seen.append(list(argv))
        return real_run(argv, *args, **kwargs)

    monkeypatch.setattr(probe.subprocess, "run", spy)
    result = probe.probe_stream(sim.url(1), "admin", "Sekr1t-pw", "tcp", tmp_path)
    assert result.ok, result.error
    assert result.codec == "h264" and (result.width, result.height) == (640, 360)
    assert result.fps == pytest.approx(15, rel=0.1)
    assert result.keyframe_interval_s == pytest.approx(1.0, rel=0.15)
    assert probe.snapshot_path(tmp_path, result.snapshot).read_bytes()[:2] == b"\xff\xd8"
    assert seen and not any("Sekr1t-pw" in " ".join(argv) for argv in seen)

    wrong = probe.probe_stream(sim.url(1), "admin", "wrong", "tcp", tmp_path)
    assert not wrong.ok and "auth failed" in wrong.error and "wrong" not in wrong.error


def test_one_probe_at_a_time(tmp_path, monkeypatch):
    import fcntl

    monkeypatch.setattr(probe.limits, "PROBE_TIMEOUT_S", 0.5)
    holder = os.open(tmp_path / "probe.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(holder, fcntl.LOCK_EX)
    try:
        result = probe.probe_stream("rtsp://127.0.0.1:1/x", None, None, "tcp", tmp_path)
    finally:
        os.close(holder)
    assert not result.ok and "another test is running" in result.error
