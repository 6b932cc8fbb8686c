"""The messages the recorder's threads put on the main loop's queue.

The main loop (recorder.service.Recorder) hands each to its handler through
recorder.service.HANDLERS; the storage's own messages are its own
(recorder.storage), and so are PowerRequest (recorder.power) and SyncFailed
(recorder.durability).
"""

from dataclasses import dataclass
from pathlib import Path

from recorder.progress import ProgressBlock

# What an ffmpeg pipe carries (StreamLines.kind).
PROGRESS = "progress"
SEGMENTS = "segments"
STDERR = "stderr"


# ------------------------------------------------------------------ ffmpeg and the streams

@dataclass(frozen=True)
class StreamLines:
    """Lines from one read of an ffmpeg pipe, put on the service queue by the reader thread.

    `lines` is None at end of file. One event per read, not per line: a
    progress report is a dozen lines written at once.
    """

    key: str
    run_id: int
    kind: str
    lines: tuple[str, ...] | None


@dataclass(frozen=True)
class ProgressReport:
    """The newest `-progress` report of one read, and when it was read (monotonic us)."""

    key: str
    run_id: int
    block: ProgressBlock
    mono_us: int


@dataclass(frozen=True)
class SegmentClosed:
    """ffmpeg closed a segment: the service fsyncs, probes and indexes it."""

    camera: str
    stream: str
    name: str                      # HH-MM-SS.mp4 (the day directory is found at ingest)
    start_us: int                  # wall clock
    end_us: int
    run_id: int
    clock_trusted: bool
    arrived_wall_us: int           # host time when the list line arrived
    # The run was cut at a discontinuity (docs/time.md): `end_us` is only a bound, and
    # the row ends where the file's frames stop following on.
    cut: bool = False
    # The run's first segment: ffmpeg lists it from the first packet it read, but the
    # file starts at the first keyframe (a camera joined mid-GOP), so `start_us` is only
    # a bound and the row starts where the file's frames do (docs/time.md).
    first: bool = False


@dataclass(frozen=True)
class DiskFailure:
    """ffmpeg failed writing a segment (ENOSPC, EIO, read-only): the storage is told."""

    key: str
    errno_: int
    detail: str


@dataclass(frozen=True)
class Reachable:
    """A camera that refused connections accepts them again: retry without waiting."""

    key: str


@dataclass(frozen=True)
class CurrentSegmentHint:
    """ffmpeg opened a new segment at about `wall_us`: the service finds its file name."""

    key: str
    run_id: int
    wall_us: int


# ------------------------------------------------------------------ signals, clock, writer

@dataclass(frozen=True)
class SignalEvent:
    signum: int


@dataclass(frozen=True)
class ReloadRequest:
    reason: str


@dataclass(frozen=True)
class ClockTrusted:
    pass


@dataclass(frozen=True)
class RootReady:
    """The index of a new recording root is open and recovered."""

    root: Path
    last_ends: dict
    error: str | None = None
    dev: int | None = None          # st_dev of its picorder directory (what is synced)


@dataclass(frozen=True)
class Ingested:
    key: str
    path: str
    bytes: int
    duration_us: int


@dataclass(frozen=True)
class CurrentSegmentFound:
    key: str
    run_id: int
    path: str
