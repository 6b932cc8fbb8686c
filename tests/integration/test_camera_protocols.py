"""L1: an http:// camera URL serving an HLS playlist that names a local file does not make
ffmpeg read that file, neither in the panel's probe nor in the recorder (real ffmpeg, a real
playlist over a real HTTP server; security review 2026-12)."""

import functools
import os
import subprocess
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from recorder import ffmpeg, ffmpeg_user
from recorder.ffmpeg import StreamSpec
from recorder.process import day_dirs, host_wall_us
from webpanel import probe

CLIP_S = 2


def _make_ts(path: Path, size: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i",
                    f"testsrc=size={size}:rate=10:duration={CLIP_S}", "-c:v", "libx264",
                    "-g", "10", "-pix_fmt", "yuv420p", "-f", "mpegts", str(path)],
                   check=True, timeout=60)


def _playlist(segment_url: str) -> str:
    return ("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n"
            f"#EXTINF:{CLIP_S}.0,\n{segment_url}\n#EXT-X-ENDLIST\n")


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def camera_site(tmp_path_factory):
    """An HTTP "camera": local.m3u8 names a file on this machine, remote.m3u8 a served one."""
    root = tmp_path_factory.mktemp("site")
    secret = tmp_path_factory.mktemp("private") / "secret.ts"
    _make_ts(secret, "176x144")
    _make_ts(root / "served.ts", "160x120")
    server = ThreadingHTTPServer(("127.0.0.1", 0),
                                 functools.partial(_Quiet, directory=str(root)))
    base = f"http://127.0.0.1:{server.server_address[1]}"
    (root / "local.m3u8").write_text(_playlist(f"file://{secret}"))
    (root / "remote.m3u8").write_text(_playlist(f"{base}/served.ts"))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield base
    server.shutdown()
    server.server_close()


def _probe_capture(tmp_path: Path, url: str) -> str | None:
    work = tmp_path / url.rsplit("/", 1)[1]
    work.mkdir()
    listing = probe.write_input_list(work, StreamSpec(camera="probe", stream="test", url=url))
    return probe.capture(listing, work / "capture.mkv")


def test_the_probe_reads_no_local_file_named_by_a_playlist(tmp_path, camera_site):
    assert _probe_capture(tmp_path, f"{camera_site}/local.m3u8") is not None
    assert not (tmp_path / "local.m3u8" / "capture.mkv").exists() or \
        (tmp_path / "local.m3u8" / "capture.mkv").stat().st_size == 0
    # An HLS camera whose segments are on the network still works.
    assert _probe_capture(tmp_path, f"{camera_site}/remote.m3u8") is None


def _record(tmp_path: Path, url: str) -> tuple[list[Path], str]:
    """Run the recorder's own ffmpeg argv on `url` until the playlist ends."""
    spec = StreamSpec(camera="cam1", stream="main", url=url, segment_seconds=1)
    name = url.rsplit("/", 1)[1].split(".")[0]
    pdir = tmp_path / name / "picorder"
    ffmpeg_days = pdir / "cam1" / "main"
    ffmpeg_user.make_day_dirs(pdir, "cam1", "main", day_dirs(host_wall_us()), None)
    source = ffmpeg.write_source_file(tmp_path / name / "run", spec, 1)
    progress_r, progress_w = os.pipe()
    segments_r, segments_w = os.pipe()
    argv = ffmpeg.build_argv(spec, source_file=source, picorder_dir=pdir,
                             progress_fd=progress_w, segments_fd=segments_w)
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                              pass_fds=(progress_w, segments_w), env=ffmpeg.ffmpeg_env())
    finally:
        for fd in (progress_w, segments_w, progress_r, segments_r):
            os.close(fd)
    return sorted(ffmpeg_days.rglob("*.mp4")), proc.stderr


def test_the_recorder_reads_no_local_file_named_by_a_playlist(tmp_path, camera_site):
    written, stderr = _record(tmp_path, f"{camera_site}/local.m3u8")
    assert written == [] or all(p.stat().st_size == 0 for p in written), stderr
    assert "file" in stderr and "whitelist" in stderr, stderr
    written, stderr = _record(tmp_path, f"{camera_site}/remote.m3u8")
    assert written and sum(p.stat().st_size for p in written) > 1000, stderr
