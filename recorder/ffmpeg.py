"""ffmpeg's command line for one recorded stream, its credentials file, and its log lines.

Credentials never go into argv (process lists are world-readable). The camera
URL with its user and password is written to a small ffconcat list in a
private runtime directory (0700, file 0600; or, when ffmpeg runs as its own
unprivileged user, that user's file in a directory it may pass through but
not list: recorder.ffmpeg_user), and ffmpeg reads the stream
through the concat demuxer (`-f concat -i LIST`). The file is deleted when the
process stops. Every line ffmpeg prints goes through redact() before it is
logged or shown.
"""

import errno
import logging
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from recorder import limits
from recorder.ffmpeg_user import FfmpegUser, give_file, prepare_source_dir
from recorder.layout import SEGMENT_NAME, stream_dir  # noqa: F401 (stream_dir: used by callers)
from recorder.paths import inside
# Problems a user understands: the codes of recorder.status, which has their words.
from recorder.status import (AUTH_FAILED, DISK_ERROR, DISK_MISSING, NO_ANSWER,  # noqa: F401
                             NO_CODEC_PARAMETERS, NOT_FOUND, STALLED, STREAM_ENDED, UNREACHABLE,
                             UNSUPPORTED_CODEC)

logger = logging.getLogger(__name__)

FFMPEG = "ffmpeg"
# What a camera URL may lead ffmpeg to open, and everything below it (an HLS
# playlist's segments): network protocols only, never `file` (security review L1).
CAMERA_PROTOCOLS = "rtsp,rtsps,rtp,tcp,udp,tls,http,https,httpproxy"
# The ffconcat list itself is a local file; each camera input gets CAMERA_PROTOCOLS.
PROTOCOLS = "file," + CAMERA_PROTOCOLS
MOVFLAGS = "movflags=+frag_keyframe+empty_moov+default_base_moof"
REDACTED = "***"


@dataclass(frozen=True)
class StreamSpec:
    """Everything that defines one recorded stream; a change means a restart."""

    camera: str
    stream: str                      # "main" or "sub"
    url: str                         # without credentials
    transport: str = "tcp"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    segment_seconds: int = limits.SEGMENT_SECONDS

    @property
    def key(self) -> str:
        return f"{self.camera}/{self.stream}"

    def secrets(self) -> list[str]:
        """Strings that must never be shown: the password, raw and percent-encoded."""
        if not self.password:
            return []
        return sorted({self.password, quote(self.password, safe="")}, key=len, reverse=True)


def source_url(spec: StreamSpec) -> str:
    """The stream URL with percent-encoded credentials (only ever written to a 0600 file)."""
    if not spec.username and not spec.password:
        return spec.url
    parts = urlsplit(spec.url)
    userinfo = quote(spec.username or "", safe="")
    if spec.password:
        userinfo += ":" + quote(spec.password, safe="")
    netloc = f"{userinfo}@{parts.netloc.rpartition('@')[2]}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _ffconcat_quote(text: str) -> str:
    # av_get_token: inside '...' nothing is special except the closing quote.
    return "'" + text.replace("'", "'\\''") + "'"


def concat_list_text(spec: StreamSpec, io_timeout_s: float = limits.RTSP_IO_TIMEOUT_S) -> str:
    """The ffconcat list that names the camera's stream (it holds the credentials)."""
    lines = ["ffconcat version 1.0", f"file {_ffconcat_quote(source_url(spec))}",
             f"option protocol_whitelist {CAMERA_PROTOCOLS}"]
    if urlsplit(spec.url).scheme.lower() in ("rtsp", "rtsps"):
        lines.append(f"option rtsp_transport {spec.transport}")
        # ffmpeg 5.1: the rtsp demuxer's `timeout` is the socket I/O timeout in µs.
        lines.append(f"option timeout {int(io_timeout_s * 1_000_000)}")
    else:
        lines.append(f"option rw_timeout {int(io_timeout_s * 1_000_000)}")
    return "\n".join(lines) + "\n"


SOURCE_SUFFIX = ".ffconcat"


def write_source_file(runtime_dir: Path, spec: StreamSpec, run_id: int = 0,
                      owner: FfmpegUser | None = None) -> Path:
    """Write one run's ffconcat list, readable only by its owner; return its path.

    `owner`: the unprivileged user ffmpeg runs as, who gets the file (0600) and
    may pass through the runtime directory but not list it (recorder.ffmpeg_user).
    """
    prepare_source_dir(runtime_dir, owner)
    path = inside(runtime_dir, f"{spec.camera}.{spec.stream}.{int(run_id)}{SOURCE_SUFFIX}")
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    return write_concat_list(path, spec, owner=owner)


def write_concat_list(path: Path, spec: StreamSpec, *,
                      io_timeout_s: float = limits.RTSP_IO_TIMEOUT_S,
                      owner: FfmpegUser | None = None) -> Path:
    """Create `path` (new, 0600, never through a link) holding spec's ffconcat list.

    The recorder's runs and the panel's camera test both name their camera this way.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        give_file(fd, owner)
        fh.write(concat_list_text(spec, io_timeout_s))
    return path


def remove_stale_source_files(runtime_dir: Path) -> None:
    """Delete lists left by a recorder that was killed (they hold credentials)."""
    for path in runtime_dir.glob(f"*{SOURCE_SUFFIX}"):
        remove_source_file(path)


def remove_source_file(path: Path | None) -> None:
    if path is None:
        return
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError:
        logger.exception("cannot remove %s", path)


def host_port(url: str) -> tuple[str, int] | None:
    """The (host, port) a stream URL connects to, for reachability probes."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname:
        return None
    defaults = {"rtsp": 554, "rtsps": 322, "http": 80, "https": 443}
    return parts.hostname, port or defaults.get(parts.scheme.lower(), 554)


def files_since(stream: Path, days: list[str], since: float) -> list[tuple[Path, os.stat_result]]:
    """Segment files (regular .mp4, links not followed) of a stream's day directories
    `days` (YYYY/MM/DD) modified at or after `since` (epoch seconds)."""
    found = []
    for day in days:
        try:
            entries = list(os.scandir(stream / day))
        except OSError:
            continue
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if entry.name.endswith(".mp4") and stat.S_ISREG(st.st_mode) and st.st_mtime >= since:
                found.append((Path(entry.path), st))
    return found


def output_pattern(picorder_dir: Path, spec: StreamSpec) -> str:
    """strftime pattern of the segment files (ffmpeg runs with TZ=UTC)."""
    base = str(stream_dir(picorder_dir, spec.camera, spec.stream)).replace("%", "%%")
    return f"{base}/{SEGMENT_NAME}"


def build_argv(spec: StreamSpec, *, source_file: Path, picorder_dir: Path,
               progress_fd: int, segments_fd: int, ffmpeg: str = FFMPEG) -> list[str]:
    """ffmpeg's argv for one stream: copy the video into wall-clock aligned fMP4 segments.

    Only the first video stream is kept (`-map 0:v:0`): cameras' audio is often
    G.711, which MP4 cannot carry without re-encoding.
    """
    return [
        ffmpeg, "-nostdin", "-hide_banner", "-nostats", "-loglevel", "warning",
        # A packet whose timestamp is over DISCONTINUITY_S from where the stream was is
        # reported at once ("DTS ... invalid dropping"): the recorder cuts the run there
        # (docs/time.md). Jumps forward are otherwise only seen in the next progress report.
        "-dts_error_threshold", str(limits.DISCONTINUITY_S),
        "-f", "concat", "-safe", "0", "-protocol_whitelist", PROTOCOLS,
        "-i", str(source_file),
        "-map", "0:v:0", "-c", "copy",
        "-f", "segment",
        "-segment_time", str(int(spec.segment_seconds)),
        "-segment_atclocktime", "1",
        "-reset_timestamps", "1",
        "-strftime", "1",
        "-segment_format", "mp4",
        # flush_packets: each fragment reaches the file when it is complete (live view,
        # power cuts); without it RTSP input sits in ffmpeg's buffer until the segment ends.
        "-segment_format_options", f"{MOVFLAGS}:frag_duration={limits.FRAGMENT_MAX_US}:flush_packets=1",
        "-segment_list", f"pipe:{segments_fd}", "-segment_list_type", "csv",
        "-progress", f"pipe:{progress_fd}", "-stats_period", str(limits.PROGRESS_PERIOD_S),
        output_pattern(picorder_dir, spec),
    ]


def ffmpeg_env() -> dict[str, str]:
    """ffmpeg names segments in UTC; nothing else of ours leaks into its environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PICORDER")}
    env["TZ"] = "UTC"
    return env


# ------------------------------------------------------------------ log lines

_USERINFO_RE = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s'\"@]*@")


def redact(text: str, secrets: list[str] | tuple[str, ...] = ()) -> str:
    """Remove credentials from a line: any user:password@ of a URL, and known secrets."""
    text = _USERINFO_RE.sub(lambda m: m.group(1) + REDACTED + "@", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


@dataclass(frozen=True)
class Failure:
    """What a log line says went wrong."""

    problem: str
    errno_: int = 0
    network: bool = False          # the camera's host:port did not accept a connection
    detail: str | None = None      # the problem in a sentence, with what to do about it


# ffmpeg's names of codecs cameras offer, as a user knows them.
CODEC_NAMES = {"mjpeg": "MJPEG", "mpeg4": "MPEG-4 Part 2", "vp8": "VP8", "vp9": "VP9",
               "av1": "AV1", "jpeg2000": "JPEG 2000", "mpeg2video": "MPEG-2"}


def unsupported_codec(codec: str) -> Failure:
    """The camera sends a codec MP4 cannot carry without re-encoding."""
    name = CODEC_NAMES.get(codec.lower(), codec.upper())
    return Failure(UNSUPPORTED_CODEC, detail=(
        f"the camera sends {name}, which picorder cannot store; "
        "choose H.264 or H.265 in the camera's settings"))


NO_CODEC_PARAMETERS_FAILURE = Failure(NO_CODEC_PARAMETERS, detail=(
    "no codec parameters from the camera: its stream did not describe the video "
    "(picture size, format) before the first frames"))


_PATTERNS: list[tuple[re.Pattern, Failure]] = [
    (re.compile(r"401 Unauthorized|authorization failed|403 Forbidden", re.I), Failure(AUTH_FAILED)),
    (re.compile(r"No space left on device", re.I), Failure(DISK_ERROR, errno.ENOSPC)),
    (re.compile(r"Read-only file system", re.I), Failure(DISK_ERROR, errno.EROFS)),
    (re.compile(r"Input/output error", re.I), Failure(DISK_ERROR, errno.EIO)),
    (re.compile(r"Failed to open segment", re.I), Failure(DISK_ERROR, errno.EIO)),
    (re.compile(r"Permission denied", re.I), Failure(DISK_ERROR, errno.EACCES)),
    # After the errno lines: "Could not write header ... : Input/output error" is the disk's.
    # (Not "Could not find codec parameters": an audio stream we do not record says it too.)
    (re.compile(r"Could not write header|dimensions not set", re.I), NO_CODEC_PARAMETERS_FAILURE),
    (re.compile(r"Connection refused|No route to host|Network is unreachable|"
                r"Host is unreachable", re.I), Failure(UNREACHABLE, network=True)),
    (re.compile(r"404 Not Found", re.I), Failure(NOT_FOUND)),
    # The camera took the connection but did not answer (or not in RTSP).
    (re.compile(r"timed out|Invalid data found when processing input", re.I), Failure(NO_ANSWER)),
    (re.compile(r"Name or service not known|Temporary failure in name resolution|"
                r"Connection reset", re.I), Failure(UNREACHABLE)),
    (re.compile(r"End of file|\bEOF\b", re.I), Failure(STREAM_ENDED)),
]


# Warnings every run prints (the concat demuxer leaves the first packet's timestamps
# unset; the muxer fixes them): logged at debug level only.
BENIGN_RE = re.compile(r"Timestamps are unset in a packet|Non-monotonous DTS in output stream "
                       r"0:0; previous: 0, current: 0")
# The camera's timestamps went back (a burst of these follows each jump).
DISCONTINUITY_RE = re.compile(r"Non-monotonous DTS|DTS \S+ out of order|out of order|"
                              r"invalid dropping", re.I)


# "Could not find tag for codec vp8 in stream #0, codec not currently supported in container"
_CODEC_TAG_RE = re.compile(r"Could not find tag for codec (\w+)", re.I)


def classify(line: str) -> Failure | None:
    """Map an ffmpeg log line to a problem a user understands, or None."""
    match = _CODEC_TAG_RE.search(line)
    if match:
        return unsupported_codec(match.group(1))
    for pattern, failure in _PATTERNS:
        if pattern.search(line):
            return failure
    return None
