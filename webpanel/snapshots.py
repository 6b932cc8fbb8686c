"""JPEG snapshots: one keyframe decoded by a one-shot ffmpeg, cached, with bounded decoders.

The keyframe's fragment (moof + mdat) is cut out of the segment and appended to
the segment's init segment, so ffmpeg decodes one small, valid fMP4 from a pipe
and never sees a file path from the request.
"""

import logging
import os
import subprocess
import threading
import time
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from recorder import layout, limits, mp4
from recorder.index import Index, NoIndex, queries
from recorder.wallclock import now_us
from webpanel import index_reader, locks

logger = logging.getLogger(__name__)


class NoPicture(Exception):
    """Nothing recorded to take a picture from."""


class Busy(Exception):
    """Every decoder stayed busy for too long."""


@dataclass(frozen=True)
class Snapshot:
    jpeg: bytes
    time_us: int


@dataclass(frozen=True)
class Keyframe:
    """A fragment starting with a keyframe, and where to find it."""

    path: Path
    init: mp4.InitSegment
    fragment: mp4.Fragment
    time_us: int

    @property
    def key(self) -> tuple:
        return (str(self.path), self.fragment.offset, self.fragment.end)


class _Cache:
    def __init__(self, items: int):
        self.items = items
        self.lock = threading.Lock()
        self.data: OrderedDict = OrderedDict()

    def get(self, key):
        with self.lock:
            hit = self.data.get(key)
            if hit is None or (hit[0] is not None and time.monotonic() > hit[0]):
                self.data.pop(key, None)
                return None
            self.data.move_to_end(key)
            return hit[1]

    def put(self, key, value, ttl_s: float | None = None) -> None:
        with self.lock:
            self.data[key] = (None if ttl_s is None else time.monotonic() + ttl_s, value)
            self.data.move_to_end(key)
            while len(self.data) > self.items:
                self.data.popitem(last=False)


cache = _Cache(limits.SNAPSHOT_CACHE_ITEMS)
_process_slots = threading.BoundedSemaphore(limits.SNAPSHOT_DECODERS_PER_PROCESS)


# ------------------------------------------------------------ finding keyframes

def file_start_us(relative: str) -> int | None:
    """Wall-clock start from a segment's name (YYYY/MM/DD/HH-MM-SS.mp4, UTC)."""
    parsed = layout.name_start_us(relative)
    return parsed[2] if parsed else None


def keyframes(path: Path, start_us: int) -> tuple[mp4.InitSegment, list]:
    """The init and the keyframe-led complete fragments of a (possibly growing) segment."""
    try:
        scan = mp4.scan_segment(path)
    except (OSError, mp4.Mp4Error) as exc:
        logger.info("cannot read %s for a snapshot: %s", path, exc)
        return None, []
    frags = [f for f in scan.fragments if f.count and f.sync[0]]
    if not frags:
        return scan.init, []
    first_dts = scan.fragments[0].base_dts
    scale = scan.init.timescale
    timed = [(start_us + (f.base_dts - first_dts) * 1_000_000 // scale, f) for f in frags]
    return scan.init, timed


def newest_keyframe(pdir: Path, camera: str, stream: str, current: str | None) -> Keyframe:
    """The newest keyframe: in the segment being written, else the newest indexed one."""
    candidates = []
    if current and ".." not in current:
        candidates.append((pdir / current, file_start_us(current)))
    try:
        with index_reader.open_readonly(pdir) as index:
            seg = queries.newest_segment(index, camera, stream)
    except NoIndex:
        seg = None
    if seg is not None:
        candidates.append((pdir / seg.path, seg.start_us))
    for path, start_us in candidates:
        init, timed = keyframes(path, start_us or 0)
        if timed:
            time_us, frag = timed[-1]
            return Keyframe(path, init, frag, time_us)
    raise NoPicture(f"no recording of {camera}/{stream} yet")


def keyframe_near(pdir: Path, camera: str, stream: str, at_us: int) -> Keyframe:
    """The keyframe at or before `at_us` (or the first after it, in a later segment)."""
    try:
        with index_reader.open_readonly(pdir) as index:
            seg = queries.segment_near(index, camera, stream, at_us)
            if seg is None or at_us >= seg.end_us:
                seg = _unindexed_near(index, camera, stream, at_us) or seg
    except NoIndex:
        seg = None
    if seg is None:
        raise NoPicture(f"no recording of {camera}/{stream}")
    init, timed = keyframes(pdir / seg.path, seg.start_us)
    if not timed:
        raise NoPicture(f"the recording of {camera}/{stream} near that time cannot be read")
    best = timed[0]
    for item in timed:
        if item[0] <= at_us:
            best = item
    return Keyframe(pdir / seg.path, init, best[1], best[0])


def _unindexed_near(index: Index, camera: str, stream: str, at_us: int):
    """The file not indexed yet (the newest seconds) that holds `at_us`, if any."""
    tail = index_reader.unindexed_tail(index, camera, stream, now_us(),
                                       clock_trusted=False)
    before = [t for t in tail if t.start_us <= at_us]
    return before[-1] if before else None


# --------------------------------------------------------------------- decoding

@contextmanager
def decoder_slot(lock_dir: Path, total: int, wait_s: float):
    """Hold one of `total` decoder slots shared by every worker process (flock)."""
    deadline = time.monotonic() + wait_s
    if not _process_slots.acquire(timeout=wait_s):
        raise Busy("every snapshot decoder is busy; try again")
    fd = None
    try:
        while fd is None:
            fd = locks.try_slot(lock_dir, "snapshot", total)
            if fd is None:
                if time.monotonic() > deadline:
                    raise Busy("every snapshot decoder is busy; try again")
                time.sleep(0.02)
        yield
    finally:
        if fd is not None:
            os.close(fd)          # closing releases the flock
        _process_slots.release()


def read_fragment_bytes(kf: Keyframe) -> bytes:
    with open(kf.path, "rb") as fh:
        fh.seek(kf.fragment.offset)
        return kf.init.data + fh.read(kf.fragment.end - kf.fragment.offset)


def decode(ffmpeg: str, data: bytes) -> bytes:
    """Decode the first frame of a small fMP4 to JPEG."""
    argv = [ffmpeg, "-hide_banner", "-loglevel", "error", "-f", "mp4", "-i", "pipe:0",
            "-frames:v", "1", "-an", "-f", "image2pipe", "-c:v", "mjpeg", "-q:v", "4", "pipe:1"]
    try:
        done = subprocess.run(argv, input=data, capture_output=True,
                              timeout=limits.SNAPSHOT_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise NoPicture("decoding the snapshot took too long") from exc
    if done.returncode != 0 or not done.stdout.startswith(b"\xff\xd8"):
        logger.warning("snapshot decoder failed (%s): %s", done.returncode,
                       done.stderr.decode(errors="replace")[-300:])
        raise NoPicture("the keyframe could not be decoded")
    return done.stdout


def snapshot(app_config, pdir: Path, camera: str, stream: str, at_us: int | None,
             current: str | None) -> Snapshot:
    """A JPEG of the newest keyframe, or of the one at or before `at_us`."""
    newest_key = ("newest", str(pdir), camera, stream)
    if at_us is None:
        hit = cache.get(newest_key)
        if hit is not None:
            return hit
        kf = newest_keyframe(pdir, camera, stream, current)
    else:
        kf = keyframe_near(pdir, camera, stream, at_us)
    shot = cache.get(kf.key)
    if shot is None:
        lock_dir = Path(app_config["DATA_DIR"]) / "locks"
        wait_s = app_config.get("SNAPSHOT_WAIT_S") or limits.SNAPSHOT_WAIT_S
        with decoder_slot(lock_dir, limits.SNAPSHOT_DECODERS_TOTAL, wait_s):
            shot = cache.get(kf.key)        # another request may have decoded it meanwhile
            if shot is None:
                jpeg = decode(app_config.get("FFMPEG", "ffmpeg"), read_fragment_bytes(kf))
                shot = Snapshot(jpeg, kf.time_us)
                cache.put(kf.key, shot)
    if at_us is None:
        cache.put(newest_key, shot, limits.SNAPSHOT_NEWEST_TTL_S)
    return shot
