"""Camera "Test" button: capture a few seconds of a stream and describe it.

The stream is copied (never decoded) into a private temporary file by one
ffmpeg, which reads the camera URL from an ffconcat list file so that the
password never appears in a process's argv. ffprobe then reads the packets of
that local file, and a one-shot ffmpeg decodes its first keyframe to JPEG.
"""

import fcntl
import json
import logging
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from recorder import limits
from recorder.ffmpeg import PROTOCOLS, StreamSpec, write_concat_list

logger = logging.getLogger(__name__)

TOKEN_CHARS = set("0123456789abcdef")


@dataclass
class ProbeResult:
    """What the Test button shows about one stream."""

    ok: bool
    error: str | None = None
    codec: str | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    bitrate_kbps: float | None = None
    keyframe_interval_s: float | None = None
    snapshot: str | None = None          # token of the JPEG, served by api/tools.py
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)


def write_input_list(directory: Path, spec: StreamSpec) -> Path:
    """Write the 0600 ffconcat file naming the stream (recorder.ffmpeg's); return its path."""
    return write_concat_list(directory / "input.ffconcat", spec,
                             io_timeout_s=limits.PROBE_IO_TIMEOUT_S)


def classify_error(stderr: str) -> str:
    """Turn ffmpeg's error output into words a user understands (never the URL)."""
    text = stderr.lower()
    if "401" in text or "unauthorized" in text:
        return "auth failed: the camera refused the user name or password"
    if "404" in text or "not found" in text:
        return "no stream at this path: the camera answers, but not for this path (404 not found)"
    if "connection refused" in text:
        return "camera unreachable: it refused the connection (wrong host or port?)"
    if "no route" in text or "unreachable" in text:
        return "camera unreachable: no route to this address"
    if "name or service not known" in text or "resolve" in text:
        return "camera unreachable: the host name cannot be resolved"
    if "timed out" in text or "timeout" in text or "invalid data found" in text:
        return ("no answer from the camera: something takes the connection at this address "
                "and port but does not answer as an RTSP camera")
    return "the stream could not be read"


def capture(list_file: Path, out: Path) -> str | None:
    """Copy PROBE_CAPTURE_S seconds of the stream into `out`; return an error or None."""
    argv = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-f", "concat",
            "-safe", "0", "-protocol_whitelist", PROTOCOLS, "-i", str(list_file),
            "-t", str(limits.PROBE_CAPTURE_S), "-map", "0:v:0", "-c", "copy",
            "-f", "matroska", str(out)]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=limits.PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return "no answer from the camera: no video within %d s" % limits.PROBE_TIMEOUT_S
    if proc.returncode != 0 or not out.exists() or out.stat().st_size == 0:
        logger.info("probe capture failed: %s", classify_error(proc.stderr))
        return classify_error(proc.stderr)
    return None


def _ffprobe(path: Path) -> dict:
    argv = ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_streams",
            "-show_entries", "packet=pts_time,dts_time,flags,size", "-of", "json", str(path)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=limits.PROBE_TIMEOUT_S)
    return json.loads(proc.stdout or "{}")


def describe(info: dict) -> ProbeResult:
    """Compute codec, size, fps, bitrate and keyframe interval from ffprobe's JSON."""
    streams = info.get("streams") or []
    packets = [p for p in info.get("packets") or [] if p.get("pts_time") not in (None, "N/A")]
    if not streams or len(packets) < 2:
        return ProbeResult(ok=False, error="the camera sent no video")
    stream = streams[0]
    times = sorted(float(p["pts_time"]) for p in packets)
    span = times[-1] - times[0]
    frame_s = span / (len(times) - 1) if span > 0 else 0
    duration = span + frame_s
    keys = sorted(float(p["pts_time"]) for p in packets if "K" in p.get("flags", ""))
    result = ProbeResult(
        ok=True, codec=stream.get("codec_name"), width=stream.get("width"),
        height=stream.get("height"),
        fps=round((len(times) - 1) / span, 2) if span > 0 else None,
        bitrate_kbps=round(sum(int(p.get("size", 0)) for p in packets) * 8 / duration / 1000, 1)
        if duration > 0 else None)
    if len(keys) >= 2:
        result.keyframe_interval_s = round((keys[-1] - keys[0]) / (len(keys) - 1), 2)
    result.warnings = warnings_for(result, captured_s=duration, keyframes=len(keys))
    return result


def warnings_for(result: ProbeResult, *, captured_s: float, keyframes: int) -> list[str]:
    """The H.265 and keyframe-interval warnings of the Test button."""
    warnings = []
    if result.codec in ("hevc", "h265"):
        warnings.append("H.265: some browsers cannot play it (Firefox, and Chrome without "
                        "hardware support). Set the camera to H.264 if you can.")
    interval = result.keyframe_interval_s
    if interval is None and keyframes < 2:
        warnings.append(f"Keyframe interval is longer than {captured_s:.0f} s: seeking and "
                        "live view will start slowly. Set the camera's I-frame interval "
                        f"(GOP) to at most {limits.PROBE_MAX_KEYFRAME_S:.0f} s.")
    elif interval is not None and interval > limits.PROBE_MAX_KEYFRAME_S:
        warnings.append(f"Keyframe interval is {interval:.1f} s (more than "
                        f"{limits.PROBE_MAX_KEYFRAME_S:.0f} s): seeking and live view will "
                        "start slowly. Set the camera's I-frame interval (GOP) lower.")
    return warnings


def snapshot_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "probe-snapshots"


def _expire_snapshots(directory: Path) -> None:
    cutoff = time.time() - limits.PROBE_SNAPSHOT_TTL_S
    for old in directory.glob("*.jpg"):
        try:
            if old.stat().st_mtime < cutoff:
                old.unlink()
        except FileNotFoundError:
            pass


def make_snapshot(capture_file: Path, data_dir: Path) -> str | None:
    """Decode the first keyframe of the capture to a JPEG; return its token."""
    directory = snapshot_dir(data_dir)
    directory.mkdir(mode=0o700, exist_ok=True)
    _expire_snapshots(directory)
    token = secrets.token_hex(16)
    out = directory / f"{token}.jpg"
    argv = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-i", str(capture_file),
            "-frames:v", "1", "-q:v", "4", "-f", "image2", str(out)]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=limits.PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return None
    return token if proc.returncode == 0 and out.exists() else None


def snapshot_path(data_dir: Path, token: str) -> Path | None:
    """The JPEG of a probe token, or None for anything that is not a token we made."""
    if len(token) != 32 or not set(token) <= TOKEN_CHARS:
        return None
    path = snapshot_dir(data_dir) / f"{token}.jpg"
    return path if path.is_file() else None


def _take_probe_lock(data_dir: Path):
    """One probe at a time across all panel workers; None when busy for too long."""
    fd = os.open(Path(data_dir) / "probe.lock", os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + limits.PROBE_TIMEOUT_S
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(fd)
                return None
            time.sleep(0.2)


def probe_stream(url: str, username: str | None, password: str | None,
                 transport: str, data_dir: Path) -> ProbeResult:
    """Capture, describe and snapshot one stream (takes PROBE_CAPTURE_S seconds)."""
    lock = _take_probe_lock(data_dir)
    if lock is None:
        return ProbeResult(ok=False, error="another test is running; try again in a moment")
    try:
        return _probe(url, username, password, transport, data_dir)
    finally:
        os.close(lock)


def _probe(url: str, username: str | None, password: str | None,
           transport: str, data_dir: Path) -> ProbeResult:
    work = Path(tempfile.mkdtemp(prefix="picorder-probe-"))
    try:
        spec = StreamSpec(camera="probe", stream="test", url=url, transport=transport,
                          username=username, password=password)
        list_file = write_input_list(work, spec)
        cap = work / "capture.mkv"
        error = capture(list_file, cap)
        if error:
            return ProbeResult(ok=False, error=error)
        result = describe(_ffprobe(cap))
        if result.ok:
            result.snapshot = make_snapshot(cap, data_dir)
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)
