"""The pure parts of recorder.ffmpeg: argv, credentials file, redaction, classification."""

import os
import stat
from pathlib import Path

from recorder import ffmpeg, limits
from recorder.ffmpeg import StreamSpec

SPEC = StreamSpec("cam1", "main", "rtsp://10.0.0.5:554/stream1", "tcp", "admin", "p@ss:w/rd'x",
                  segment_seconds=60)


def argv(spec=SPEC, tmp=Path("/rec/picorder")):
    return ffmpeg.build_argv(spec, source_file=Path("/run/x.ffconcat"), picorder_dir=tmp,
                             progress_fd=7, segments_fd=9)


def opt(args, name):
    return args[args.index(name) + 1]


def test_copy_only_no_decoding():
    args = argv()
    assert opt(args, "-c") == "copy"
    assert opt(args, "-map") == "0:v:0"
    for forbidden in ("-vf", "-filter_complex", "-c:v", "-vcodec", "-r", "-s"):
        assert forbidden not in args


def test_segment_muxer_fragmented_mp4_aligned_to_wall_clock():
    args = argv()
    assert opt(args, "-f") == "concat"
    assert args[args.index("-f", args.index("-c")) + 1] == "segment"
    assert opt(args, "-segment_time") == "60"
    assert opt(args, "-segment_atclocktime") == "1"
    assert opt(args, "-reset_timestamps") == "1"
    assert opt(args, "-strftime") == "1"
    assert opt(args, "-segment_format") == "mp4"
    fmt = opt(args, "-segment_format_options")
    assert "+frag_keyframe" in fmt and "+empty_moov" in fmt and "+default_base_moof" in fmt
    assert f"frag_duration={limits.FRAGMENT_MAX_US}" in fmt
    assert "flush_packets=1" in fmt
    assert limits.FRAGMENT_MAX_US <= 1_000_000
    assert args[-1] == "/rec/picorder/cam1/main/%Y/%m/%d/%H-%M-%S.mp4"


def test_events_come_from_pipes():
    args = argv()
    assert opt(args, "-segment_list") == "pipe:9"
    assert opt(args, "-segment_list_type") == "csv"
    assert opt(args, "-progress") == "pipe:7"
    assert "-nostdin" in args


def test_segment_length_setting_and_percent_in_paths_escaped():
    spec = StreamSpec("cam2", "sub", "rtsp://h/s", segment_seconds=5)
    args = argv(spec, Path("/data/100%/picorder"))
    assert opt(args, "-segment_time") == "5"
    assert args[-1].startswith("/data/100%%/picorder/cam2/sub/")


def test_password_never_in_argv():
    joined = " ".join(argv())
    for secret in SPEC.secrets() + ["admin"]:
        assert secret not in joined
    assert "p%40ss" not in joined


def test_source_file_private_and_holds_encoded_credentials(tmp_path):
    run = tmp_path / "run"
    path = ffmpeg.write_source_file(run, SPEC, 7)
    assert path.name == "cam1.main.7.ffconcat"
    assert stat.S_IMODE(os.stat(run).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    text = path.read_text()
    assert text.startswith("ffconcat version 1.0\n")
    assert "rtsp://admin:p%40ss%3Aw%2Frd%27x@10.0.0.5:554/stream1" in text
    assert "option rtsp_transport tcp" in text
    assert f"option timeout {int(limits.RTSP_IO_TIMEOUT_S * 1e6)}" in text
    # Written again (restart): replaced, still private.
    path2 = ffmpeg.write_source_file(run, SPEC, 7)
    assert path2 == path and stat.S_IMODE(os.stat(path).st_mode) == 0o600
    ffmpeg.write_source_file(run, SPEC, 8)
    ffmpeg.remove_source_file(path)
    assert not path.exists()
    ffmpeg.remove_stale_source_files(run)            # what a kill -9 left behind
    assert list(run.iterdir()) == []


def test_no_credentials_plain_url():
    spec = StreamSpec("c", "main", "rtsp://h:554/a", "udp")
    assert ffmpeg.source_url(spec) == "rtsp://h:554/a"
    assert "option rtsp_transport udp" in ffmpeg.concat_list_text(spec)


def test_redact_urls_and_secrets():
    line = "[concat @ 0x1] Impossible to open 'rtsp://admin:p%40ss%3Aw%2Frd%27x@10.0.0.5/stream1'"
    out = ffmpeg.redact(line, SPEC.secrets())
    assert "p%40ss" not in out and "admin" not in out
    assert "rtsp://***@10.0.0.5/stream1" in out
    assert ffmpeg.redact("raw p@ss:w/rd'x here", SPEC.secrets()) == "raw *** here"


def test_classify_failures():
    c = ffmpeg.classify
    assert c("[rtsp @ 0x1] method DESCRIBE failed: 401 Unauthorized").problem == "auth failed"
    assert c("x: Server returned 401 Unauthorized (authorization failed)").problem == "auth failed"
    assert c("Connection to tcp://1.2.3.4:554 failed: Connection refused").problem == "unreachable"
    assert c("list.ffconcat: Connection timed out").problem == "no answer"
    assert c("rtsp://127.0.0.1:9/x: Invalid data found when processing input").problem == "no answer"
    assert c("[rtsp @ 0x1] method DESCRIBE failed: 404 Not Found").problem == "not found"
    assert c("No route to host").problem == "unreachable"
    assert c("av_interleaved_write_frame(): No space left on device").problem == "disk error"
    assert c("Read-only file system").errno_ == 30
    assert c("error reading: End of file").problem == "stream ended"
    assert c("frame=  10 fps") is None


def test_a_stream_the_muxer_refuses_is_the_cameras_fault_not_the_disks():
    c = ffmpeg.classify
    # What ffmpeg 5.1 prints for a camera sending VP8 (the simulated camera, --codec vp8).
    vp8 = c("[mp4 @ 0x55] Could not find tag for codec vp8 in stream #0, codec not currently "
            "supported in container")
    assert vp8.problem == ffmpeg.UNSUPPORTED_CODEC and vp8.errno_ == 0
    assert vp8.detail == ("the camera sends VP8, which picorder cannot store; "
                          "choose H.264 or H.265 in the camera's settings")
    assert "MJPEG" in c("Could not find tag for codec mjpeg in stream #0").detail
    header = c("Could not write header for output file #0 (incorrect codec parameters ?): "
               "Invalid argument")
    assert header.problem == ffmpeg.NO_CODEC_PARAMETERS and header.errno_ == 0
    assert header.detail.startswith("no codec parameters from the camera")
    assert c("[mp4 @ 0x55] dimensions not set").problem == ffmpeg.NO_CODEC_PARAMETERS
    # The same line with an errno the disk gave stays a disk error.
    eio = c("Could not write header for output file #0 (incorrect codec parameters ?): "
            "Input/output error")
    assert (eio.problem, eio.errno_) == (ffmpeg.DISK_ERROR, 5)
