"""Activity at ingest: which seconds of a camera's recording show motion, for little CPU.

Two signals were measured on a finished segment of the camera's activity stream
(its sub stream if it has one, else its main stream); docs/activity.md says what
each one does per scene, and why only the second one is used:

- frame sizes: the median size of the predicted frames of each second against a
  baseline of the stream's recent seconds. Read from the sample tables the index
  stores anyway; no decoding. Works for VBR streams, sees nothing in CBR ones.
- keyframes: only the keyframes are decoded, in this process (PyAV), scaled down
  to a grey grid of 16 x 9 block means, normalised for brightness and contrast (so a light switched
  on, clouds or a day/night switch change nothing) and compared block by block
  with the keyframe before. Works for CBR and VBR, costs one small decode per
  keyframe.

Each second gets one level byte: 0 for nothing, ACTIVE_LEVEL where a signal
reaches its threshold, more above it (capped at 255).
"""

import logging
import subprocess
from collections import deque
from dataclasses import dataclass, field
from itertools import accumulate
from math import ceil
from pathlib import Path

from recorder import limits
from recorder.mp4 import Fragment, InitSegment, iter_boxes, parse_box_header, read_init

try:        # PyAV (python3-av): decodes in this process, without an ffmpeg per segment
    import av
except ImportError:     # pragma: no cover - then each segment's keyframes cost one ffmpeg
    av = None

logger = logging.getLogger(__name__)

ACTIVE_LEVEL = 100          # a second at or above this level is active
MAX_LEVEL = 255


@dataclass
class StreamActivity:
    """What one stream's analysis carries from one segment to the next."""

    sizes: deque = field(default_factory=lambda: deque(maxlen=limits.ACTIVITY_BASELINE_S))
    last_thumb: list | None = None
    last_over: bool = False     # the last pair of keyframes changed past the threshold
    held: tuple | None = None   # (first second, end, score) of a last pair held back
    amend: tuple | None = None  # the held pair of the segment before, to be marked after all


@dataclass
class Frames:
    """Per-frame columns of a segment: seconds from its first frame, size, keyframe."""

    times: list
    sizes: list
    keys: list

    @property
    def seconds(self) -> int:
        return max(1, ceil(self.times[-1] + 1e-9)) if self.times else 0


def segment_frames(fragments: list[Fragment], timescale: int) -> Frames:
    """The frames of decoded sample tables (recorder.index.tables.decode_tables), in decode order."""
    times, sizes, keys = [], [], []
    if not fragments:
        return Frames(times, sizes, keys)
    origin = fragments[0].base_dts
    for frag in fragments:
        starts = accumulate(frag.durations, initial=frag.base_dts - origin)
        for start, size, key in zip(starts, frag.sizes, frag.sync):
            times.append(start / timescale)
            sizes.append(size)
            keys.append(bool(key))
    return Frames(times, sizes, keys)


def _median(values: list) -> float:
    ordered = sorted(values)
    n = len(ordered)
    return (ordered[n // 2] + ordered[(n - 1) // 2]) / 2


def size_scores(frames: Frames, state: StreamActivity) -> list[float]:
    """Per second: median predicted-frame size over the baseline, divided by the threshold.

    The baseline is a low quantile of the per-second medians of the stream's last
    ACTIVITY_BASELINE_S seconds (this segment's included), so that it follows slow
    changes (clouds, noise at night) and motion in part of the window does not lift it.
    """
    n = frames.seconds
    per_second: list[list[int]] = [[] for _ in range(n)]
    for t, size, key in zip(frames.times, frames.sizes, frames.keys):
        if not key:
            per_second[min(int(t), n - 1)].append(size)
    medians = [_median(sizes) if sizes else None for sizes in per_second]
    known = [m for m in medians if m is not None]
    state.sizes.extend(known)
    if len(state.sizes) < limits.ACTIVITY_MIN_BASELINE_S:
        return [0.0] * n
    ordered = sorted(state.sizes)
    baseline = max(1.0, ordered[int(len(ordered) * limits.ACTIVITY_BASELINE_QUANTILE)])
    return [0.0 if m is None else (m / baseline - 1) / (limits.ACTIVITY_SIZE_RATIO - 1)
            for m in medians]


THUMB_W, THUMB_H = 16, 9   # keyframes are compared as this grid of block means


def keyframe_argv(path: Path, ffmpeg: str = "ffmpeg") -> list[str]:
    """ffmpeg decoding only the keyframes of `path` to raw grey THUMB_W x THUMB_H frames."""
    return [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-threads", "1",
            "-skip_frame", "nokey", "-i", str(path), "-map", "0:v:0", "-an", "-sn",
            "-vf", f"scale={THUMB_W}:{THUMB_H}:flags=area,format=gray",
            "-fps_mode", "passthrough", "-f", "rawvideo", "pipe:1"]


def decode_keyframes(path: Path, ffmpeg: str = "ffmpeg") -> list[bytes]:
    """The keyframes of a segment file as small grey pictures (empty if ffmpeg fails)."""
    try:
        out = subprocess.run(keyframe_argv(path, ffmpeg), capture_output=True, check=True,
                             timeout=limits.ACTIVITY_DECODE_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError) as exc:
        logger.warning("activity: cannot decode the keyframes of %s: %s", path, exc)
        return []
    size = THUMB_W * THUMB_H
    data = out.stdout
    return [data[i:i + size] for i in range(0, len(data) - size + 1, size)]


CONFIG_BOXES = {b"avcC": "h264", b"hvcC": "hevc"}   # decoder configuration -> decoder name


def decoder_config(init: InitSegment) -> tuple[str, bytes] | None:
    """(decoder name, its extradata) from the sample entry, or None for another codec."""
    entry = init.sample_entry
    box = parse_box_header(entry, 0, len(entry))
    for child in iter_boxes(entry, box.payload + 78, box.end):
        if child.type in CONFIG_BOXES:
            return CONFIG_BOXES[child.type], bytes(entry[child.payload:child.end])
    return None


def keyframe_samples(fragments: list[Fragment]) -> list[tuple[int, int]]:
    """(file offset, size) of each keyframe, in decode order."""
    out = []
    for frag in fragments:
        for offset, size, key in zip(frag.sample_offsets(), frag.sizes, frag.sync):
            if key:
                out.append((offset, size))
    return out


def thumbnails(path: Path, fragments: list[Fragment], ffmpeg: str = "ffmpeg") -> list[bytes]:
    """The keyframes of a segment as small grey pictures: each keyframe alone is read
    and decoded in this process (PyAV), or by one ffmpeg for the file without PyAV."""
    if av is None:
        return decode_keyframes(path, ffmpeg)
    with open(path, "rb") as f:
        init = read_init(f)
        config = decoder_config(init)
        if config is None:
            return decode_keyframes(path, ffmpeg)
        ctx = av.CodecContext.create(config[0], "r")
        ctx.extradata = config[1]
        ctx.thread_count = 1
        ctx.options = {"skip_loop_filter": "all"}     # blocks are averaged away anyway
        out = []
        for offset, size in keyframe_samples(fragments):
            f.seek(offset)
            try:
                frames = ctx.decode(av.Packet(f.read(size)))
            except av.AVError as exc:   # one bad keyframe: compare across it
                logger.warning("activity: a keyframe of %s does not decode: %s", path, exc)
                continue
            out.extend(_thumb(frame) for frame in frames)
    return out


def _thumb(frame) -> bytes:
    small = frame.reformat(width=THUMB_W, height=THUMB_H, format="gray", interpolation="AREA")
    plane = small.planes[0]
    data, stride = bytes(plane), plane.line_size
    return b"".join(data[y * stride:y * stride + THUMB_W] for y in range(THUMB_H))


def _normalised(thumb: bytes) -> list[float]:
    n = len(thumb)
    mean = sum(thumb) / n
    std = (sum((v - mean) ** 2 for v in thumb) / n) ** 0.5 or 1.0
    return [(v - mean) / std for v in thumb]


def changed_blocks(a: list[float], b: list[float]) -> int:
    """Blocks of two normalised grids whose difference is past the threshold."""
    limit = limits.ACTIVITY_BLOCK_DIFF
    return sum(1 for x, y in zip(a, b) if abs(x - y) > limit)


def keyframe_scores(frames: Frames, thumbs: list[bytes], state: StreamActivity) -> list[float]:
    """Per second: changed blocks between consecutive keyframes, divided by the threshold.

    The change between two keyframes counts for the seconds between them (to the
    nearest second); the first keyframe of a segment is compared with the last one of
    the segment before. A change past the threshold between one pair of keyframes
    only, with none before or after it, is a step (a light switched, the day/night
    switch), not motion: it is left out. A segment's last pair with no change before it
    is held: if the next segment's first pair changed too, state.amend says which
    seconds at the end of this segment (its levels in state.previous) become active.
    """
    n = frames.seconds
    scores = [0.0] * n
    key_times = [t for t, key in zip(frames.times, frames.keys) if key]
    if len(key_times) != len(thumbs):
        logger.warning("activity: %d keyframes decoded where the tables list %d",
                       len(thumbs), len(key_times))
        key_times = key_times[:len(thumbs)]
    pairs = []                  # (from second, to second, score)
    previous, previous_t = state.last_thumb, 0.0
    for t, thumb in zip(key_times, thumbs):
        current = _normalised(thumb)
        if previous is not None:
            score = changed_blocks(previous, current) / limits.ACTIVITY_BLOCKS
            first = min(n - 1, round(previous_t))
            pairs.append((first, min(n, max(first + 1, round(t))), score))
        previous, previous_t = current, t
    over = [score >= 1.0 for _, _, score in pairs]
    held, state.amend = None, None
    if state.held is not None and over and over[0]:
        state.amend = state.held         # the motion began at the end of the segment before
    for i, (first, end, score) in enumerate(pairs):
        before = over[i - 1] if i > 0 else state.last_over
        if over[i] and not before and i + 1 == len(pairs):
            held = (first, end, score)
            continue
        after = over[i + 1] if i + 1 < len(pairs) else False
        if over[i] and not (before or after):
            continue
        for second in range(first, end):
            scores[second] = max(scores[second], score)
    state.last_thumb = previous
    if pairs:
        state.last_over, state.held = over[-1], held
    return scores


def levels(*scores: list[float]) -> bytes:
    """One level byte per second from scores where 1.0 is a signal's threshold."""
    n = max((len(s) for s in scores), default=0)
    out = bytearray(n)
    for i in range(n):
        best = max((s[i] for s in scores if i < len(s)), default=0.0)
        out[i] = max(0, min(MAX_LEVEL, round(best * ACTIVE_LEVEL)))
    return bytes(out)


def analyse(path: Path, fragments: list[Fragment], timescale: int, state: StreamActivity,
            ffmpeg: str = "ffmpeg") -> bytes:
    """The level of each second of one segment file.

    The keyframe signal alone decides: the frame-size signal is fooled by clouds in
    a VBR stream and blind in a CBR one (docs/activity.md has the figures), so it is
    only measured (benchmarks/activity.py), not used.
    """
    frames = segment_frames(fragments, timescale)
    if not frames.times:
        return b""
    return levels(keyframe_scores(frames, thumbnails(path, fragments, ffmpeg), state))


def amended(previous: bytes, amend: tuple) -> bytes:
    """`previous` levels with a held pair of keyframes (StreamActivity.amend) marked."""
    first, end, score = amend
    out = bytearray(previous)
    level = max(0, min(MAX_LEVEL, round(score * ACTIVE_LEVEL)))
    for second in range(first, min(end, len(out))):
        out[second] = max(out[second], level)
    return bytes(out)


@dataclass
class ActivityPeriod:
    """A stretch of activity; UTC epoch microseconds."""

    start_us: int
    end_us: int
    peak: int


def periods(tracks, start_us: int, end_us: int,
            gap_us: int = limits.ACTIVITY_MERGE_GAP_S * 1_000_000) -> list[ActivityPeriod]:
    """Active stretches of (start_us, levels) tracks overlapping [start_us, end_us), merged
    over gaps shorter than gap_us, then clipped to it; tracks ordered by start.

    Merging comes first, over every second the tracks hold (also those before start_us):
    a period in progress at start_us then starts at start_us, not at its first active
    second after a quiet one inside it (which made "next activity" land mid-period).
    """
    out: list[ActivityPeriod] = []
    for track_start, track_levels in tracks:
        for i, level in enumerate(track_levels):
            a = track_start + i * 1_000_000
            if level < ACTIVE_LEVEL or a >= end_us:
                continue
            b = a + 1_000_000
            if out and a - out[-1].end_us <= gap_us:
                out[-1].end_us = max(out[-1].end_us, b)
                out[-1].peak = max(out[-1].peak, level)
            else:
                out.append(ActivityPeriod(a, b, level))
    return [ActivityPeriod(max(p.start_us, start_us), min(p.end_us, end_us), p.peak)
            for p in out if p.end_us > start_us]
