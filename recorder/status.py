"""The recorder's status (the control socket's "status" answer), typed, and what it means for a user.

The recorder builds it (StreamProcess.status, Recorder.status) and sends it as
JSON; readers (the panel, `picorder status`) turn the JSON back into these
classes with from_json, which ignores keys it does not know and fills missing
ones with their defaults, so that either side may be newer.

stream_health() turns one stream's status into the words a user reads: a
stream is "recording" only while segments with sane times land; otherwise it
says what is wrong, since when.
"""

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from recorder import limits

# Problem codes (StreamStatus.problem / .failure) and their words on the pages.
UNREACHABLE = "unreachable"
NOT_FOUND = "not found"
NO_ANSWER = "no answer"
AUTH_FAILED = "auth failed"
STREAM_ENDED = "stream ended"
STALLED = "stalled"
DISK_ERROR = "disk error"
DISK_MISSING = "disk missing"
UNSUPPORTED_CODEC = "unsupported codec"         # the MP4 muxer refused the camera's stream
NO_CODEC_PARAMETERS = "no codec parameters"

PROBLEM_WORDS = {
    UNREACHABLE: "camera unreachable",
    NOT_FOUND: "no stream at this path",
    NO_ANSWER: "no answer from the camera",
    AUTH_FAILED: "wrong user or password",
    STREAM_ENDED: "the camera ended the stream",
    STALLED: "no video from the camera",
    DISK_ERROR: "disk error",
    DISK_MISSING: "no recording disk",
    UNSUPPORTED_CODEC: "video format not storable",
    NO_CODEC_PARAMETERS: "no codec parameters from the camera",
}

# StreamHealth.level
OK = "ok"
WARN = "warn"
BAD = "bad"
OFF = "off"


def _from_json(cls, data: dict[str, Any]):
    known = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in (data or {}).items() if k in known})


@dataclass
class StreamStatus:
    """One stream's entry: its supervisor state, counters and the times that tell its health."""

    camera: str
    stream: str
    state: str = "UNKNOWN"                  # recorder.process.State
    problem: str | None = None              # why it is not recording now (a problem code)
    problem_detail: str | None = None       # the problem in a sentence, where it needs one
    since_utc_us: int | None = None         # when `state` was entered
    pid: int | None = None
    uptime_s: float = 0.0
    restarts: int = 0
    frames: int = 0
    fps: float | None = None
    bitrate_kbps: float | None = None
    dropped: int = 0
    duplicated: int = 0
    bytes_written: int = 0
    last_segment_utc_us: int | None = None  # end of the newest indexed segment
    last_error: str | None = None
    current_segment: str | None = None
    # Since the first failure after the last segment landed (kept across retries); None
    # while segments land. `failure` is the newest failure's problem code.
    failing_since_utc_us: int | None = None
    failure: str | None = None
    # When the newest segment was listed by ffmpeg (the box's clock): its indexed end
    # should be close to this.
    last_arrival_utc_us: int | None = None
    segment_seconds: int = limits.SEGMENT_SECONDS
    # The stream's timestamps jumped here and a new run started (None: never).
    discontinuity_utc_us: int | None = None

    @property
    def key(self) -> str:
        return f"{self.camera}/{self.stream}"

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "StreamStatus":
        return _from_json(cls, data)


@dataclass
class ClockStatus:
    trusted: bool | None = None
    source: str | None = None
    now_utc_us: int | None = None

    @classmethod
    def from_json(cls, data: dict | None) -> "ClockStatus":
        return _from_json(cls, data or {})


@dataclass
class RecorderStatus:
    """The whole answer. `storage` stays a mapping: the Storage's state() (recorder.storage)."""

    version: str = ""
    pid: int | None = None
    started_utc_us: int | None = None
    clock: ClockStatus = field(default_factory=ClockStatus)
    storage: dict = field(default_factory=dict)
    streams: list[StreamStatus] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict | None) -> "RecorderStatus":
        data = data or {}
        status = _from_json(cls, {k: v for k, v in data.items() if k not in ("clock", "streams")})
        status.clock = ClockStatus.from_json(data.get("clock"))
        status.storage = dict(data.get("storage") or {})
        status.streams = [StreamStatus.from_json(s) for s in data.get("streams") or []]
        return status

    def stream(self, camera: str, stream: str) -> StreamStatus | None:
        return next((s for s in self.streams if s.camera == camera and s.stream == stream), None)


# ------------------------------------------------------------------ health

@dataclass(frozen=True)
class StreamHealth:
    """What a user should read about one stream.

    `words` is the badge. The line under it is built from the times: "`words` since
    `since_utc_us`" for a failure, "recording stopped N min ago" (`stopped_ago_s`),
    "timestamps jumped (new run at `at_utc_us`)".
    """

    level: str                          # OK, WARN, BAD or OFF
    words: str
    since_utc_us: int | None = None     # the first failure
    stopped_ago_s: float | None = None  # the newest recording ended this long ago
    at_utc_us: int | None = None        # the time in the words' parenthesis
    detail: str | None = None           # what to do about it, in a sentence

    @property
    def problem(self) -> bool:
        return self.level == BAD

    def to_json(self) -> dict:
        return {**asdict(self), "problem": self.problem}


def problem_words(code: str | None) -> str:
    return PROBLEM_WORDS.get(code or "", code or "not recording")


def stale_after_s(segment_seconds: float) -> float:
    """No segment for this long while "running": recording has stopped in effect."""
    return segment_seconds * limits.STALE_SEGMENTS + limits.STALE_GRACE_S


def _stopped_ago(s: StreamStatus, now_utc_us: int) -> float | None:
    return None if not s.last_segment_utc_us else max(0.0, (now_utc_us - s.last_segment_utc_us) / 1e6)


def stream_health(s: StreamStatus, now_utc_us: int) -> StreamHealth:
    """Derive the user's view of one stream from its status at `now_utc_us` (the box's clock)."""
    failing = s.problem or (s.failure if s.failing_since_utc_us else None)
    jumped = bool(s.discontinuity_utc_us) and 0 <= (now_utc_us - s.discontinuity_utc_us) / 1e6 \
        <= limits.DISCONTINUITY_SHOWN_S
    if jumped and s.state in ("STOPPING", "STARTING") and not failing:
        # A jump closes the run and starts a new one at once (docs/time.md).
        return StreamHealth(WARN, "timestamps jumped", at_utc_us=s.discontinuity_utc_us)
    if s.state in ("STOPPED", "STOPPING") and not s.problem:
        return StreamHealth(OFF, "stopped" if s.state == "STOPPED" else "stopping")
    if failing and s.state != "RUNNING" or s.state in ("BACKOFF", "FATAL"):
        return StreamHealth(BAD, problem_words(failing) if failing else "failed",
                            s.failing_since_utc_us or s.since_utc_us,
                            _stopped_ago(s, now_utc_us), detail=s.problem_detail)
    if s.state == "STARTING":
        return StreamHealth(WARN, "starting", stopped_ago_s=None)
    if s.state != "RUNNING":
        return StreamHealth(WARN, s.state.lower())
    newest = max(s.last_arrival_utc_us or 0, s.since_utc_us or 0)
    if newest and (now_utc_us - newest) / 1e6 > stale_after_s(s.segment_seconds):
        return StreamHealth(BAD, "recording stopped", s.last_arrival_utc_us or s.since_utc_us,
                            _stopped_ago(s, now_utc_us) or (now_utc_us - newest) / 1e6)
    if s.last_arrival_utc_us and s.last_segment_utc_us and \
            abs(s.last_arrival_utc_us - s.last_segment_utc_us) / 1e6 > limits.SANE_TIME_TOLERANCE_S:
        return StreamHealth(BAD, "timestamps jumped", s.last_arrival_utc_us,
                            at_utc_us=s.last_segment_utc_us)
    if jumped:
        return StreamHealth(WARN, "timestamps jumped", at_utc_us=s.discontinuity_utc_us)
    return StreamHealth(OK, "recording")


@dataclass(frozen=True)
class Summary:
    """The dashboard's line: "2 of 8 cameras have problems"."""

    cameras: int
    problems: int
    warnings: int
    disabled: int = 0

    @property
    def text(self) -> str:
        if not self.cameras:
            return "No cameras yet."
        if self.problems and self.cameras == 1:
            return "The camera has a problem."
        if self.problems:
            verb = "has a problem" if self.problems == 1 else "have problems"
            return f"{self.problems} of {self.cameras} cameras {verb}."
        off = f"; {self.disabled} disabled" if self.disabled else ""
        if self.warnings:
            verb = "needs" if self.warnings == 1 else "need"
            return f"No problems; {self.warnings} of {self.cameras} cameras {verb} a look{off}."
        recording = self.cameras - self.disabled
        if recording == self.cameras:
            return "The camera is recording." if recording == 1 else \
                f"All {recording} cameras are recording."
        return f"{recording} of {self.cameras} cameras are recording{off}."


def summarize(levels: list[str]) -> Summary:
    """Count the cameras by their worst stream's level."""
    return Summary(len(levels), levels.count(BAD), levels.count(WARN), levels.count(OFF))
