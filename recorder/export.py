"""Any time range of a stream as a progressive MP4, built on the fly from the segments.

build_range() reads the index rows and each segment's sample tables, and builds a
`moov` (sample tables of the whole range) in memory. A segment's tables come
from its SegmentTables row (stored at ingest and by recovery, see
recorder.index.tables.encode_tables) when they still describe the file (checksum,
init segment, size, a moof where they put the last fragment); otherwise from
reading the file's moof boxes. Both give the same bytes. The sample data is never
copied: the single `mdat` that follows is streamed straight from the segment
files by byte ranges (RangeMovie.iter_bytes), so memory stays bounded by the
sample tables (about 4-12 bytes per frame) plus one read buffer.

Decisions (documented for the API and `picorder export`):

* The movie starts at the keyframe at or before `start` and has one edit
  (elst) so that playback begins exactly at `start`; it ends at `end` (the
  edit's duration is end - start unless the recording ends earlier).
  If `start` or `end` fall where nothing is recorded, the movie begins at the
  first recorded frame after `start` / ends after the last recorded frame
  before `end`; RangeMovie.start_us/end_us say what is covered.
* Gaps between runs (camera outage, restart) are squashed: media time keeps
  running, and RangeMovie.runs lists (wall_start_us, wall_end_us,
  media_start_us) for each stretch of continuous recording, media_start_us
  being the player's currentTime (in µs) at wall_start_us. The panel sends it
  as the X-Picorder-Runs header.
* If the codec parameters change between segments (a new resolution, or a
  different avcC/hvcC or timescale), the movie stops before the first segment
  in the new format, because browsers do not reliably switch sample
  descriptions inside one progressive MP4; end_us says where it stopped, and
  a second request from there gets the rest.
* A recording that begins without a keyframe (ffmpeg -c copy joining a
  stream mid-GOP) starts the movie at its first keyframe instead.
* Segments are read only up to the size recorded in their index row, so a
  movie's bytes (and ETag) stay stable while it is served.
* A range may cover at most limits.EXPORT_MAX_S (24 hours): the sample
  tables of a day of 30 fps video are about 20 MB, the most we hold per
  request; longer exports are made of several ranges.
"""

import bisect
import hashlib
import logging
import os
import struct
import sys
from array import array
from dataclasses import dataclass, field
from datetime import datetime, timezone
from itertools import accumulate
from pathlib import Path
from typing import Iterator

from recorder import segfiles
from recorder.index import Index, Segment
from recorder.index.tables import RunLengths, StaleTables, decode_tables, init_key
from recorder.limits import EXPORT_GAP_TOLERANCE_US, EXPORT_MAX_S, MP4_READ_CHUNK
from recorder.mp4 import Fragment, InitSegment, Mp4Error, iter_segment_fragments, read_init
from recorder.paths import UnsafePath

logger = logging.getLogger(__name__)

FORMAT_VERSION = "1"        # part of the ETag: bump when the layout of the output changes
U32 = 0xFFFFFFFF


class NoRecording(LookupError):
    """Nothing is recorded for the requested camera, stream and time range."""


# ---------------------------------------------------------------- sample tables

class PackedRunLengths(RunLengths):
    """stts/ctts entries (count, value): 8 bytes per entry, packed for the moov."""

    def __init__(self, signed: bool = False):
        super().__init__("i" if signed else "I")

    def nonzero(self) -> bool:
        return any(self.values)

    def packed(self) -> bytes:
        """Big-endian (count, value) pairs, values as 32-bit two's complement."""
        flat = array("I", bytes(8 * len(self.counts)))
        flat[0::2] = self.counts
        flat[1::2] = array("I", self.values.tobytes())
        if sys.byteorder == "little":
            flat.byteswap()
        return flat.tobytes()


@dataclass
class SampleTables:
    """The moov's sample tables, accumulated compactly while segments are read."""

    sizes: array = field(default_factory=lambda: array("I"))
    stts: PackedRunLengths = field(default_factory=PackedRunLengths)
    ctts: PackedRunLengths = field(default_factory=lambda: PackedRunLengths(signed=True))
    sync: array = field(default_factory=lambda: array("I"))   # 1-based sample numbers
    chunk_file: array = field(default_factory=lambda: array("I"))
    chunk_offset: array = field(default_factory=lambda: array("Q"))
    chunk_size: array = field(default_factory=lambda: array("Q"))
    chunk_samples: array = field(default_factory=lambda: array("I"))
    files: list = field(default_factory=list)       # relative paths, indexed by chunk_file
    dts: int = 0                                    # decode time of the next sample
    pts_end: int = 0                                # max presentation end so far
    negative_cto: bool = False

    def add(self, frag: Fragment, first: int, last: int, file_index: int) -> None:
        """Append samples first..last (inclusive, decode order) of a fragment."""
        if first == 0 and last == frag.count - 1 and len(frag.runs) > 1:
            self._add_whole_runs(frag, file_index)
            self._add_samples(frag, first, last + 1)
            return
        index = 0
        if len(frag.runs) == 1:
            ends = None
        else:
            ends = list(accumulate(frag.sizes, initial=0))     # bytes before each sample
        for run_start, count in frag.runs:
            lo, hi = max(first, index), min(last, index + count - 1)
            if lo <= hi:
                if ends is None:
                    offset = run_start + sum(frag.sizes[index:lo])
                    size = sum(frag.sizes[lo:hi + 1])
                else:
                    offset, size = run_start + ends[lo] - ends[index], ends[hi + 1] - ends[lo]
                self._add_chunk(file_index, offset, size, hi - lo + 1)
            index += count
        self._add_samples(frag, first, last + 1)

    def _add_whole_runs(self, frag: Fragment, file_index: int) -> None:
        """One chunk per run of the fragment, all of it (the same as add() would make)."""
        starts, counts = zip(*frag.runs)
        ends = list(accumulate(frag.sizes, initial=0))
        bounds = list(accumulate(counts, initial=0))
        self.chunk_file.extend(array("I", [file_index]) * len(counts))
        self.chunk_offset.extend(starts)
        self.chunk_size.extend(ends[b] - ends[a] for a, b in zip(bounds, bounds[1:]))
        self.chunk_samples.extend(counts)

    def _add_chunk(self, file_index: int, offset: int, size: int, samples: int) -> None:
        self.chunk_file.append(file_index)
        self.chunk_offset.append(offset)
        self.chunk_size.append(size)
        self.chunk_samples.append(samples)

    def _add_samples(self, frag: Fragment, lo: int, hi: int) -> None:
        """Append samples lo..hi-1; the common constant-duration, no-reordering case in C."""
        base = len(self.sizes)
        self.sizes.extend(frag.sizes[lo:hi])
        sync = frag.sync[lo:hi]
        at = sync.find(1)
        while at != -1:
            self.sync.append(base + at + 1)
            at = sync.find(1, at + 1)
        durations, ctos = frag.durations[lo:hi], frag.ctos[lo:hi]
        self.stts.extend(durations)
        self.ctts.extend(ctos)
        self.negative_cto |= min(ctos) < 0
        if ctos.count(ctos[0]) == len(ctos):
            self.dts += sum(durations)
            self.pts_end = max(self.pts_end, self.dts + ctos[0])
            return
        for duration, cto in zip(durations, ctos):
            self.pts_end = max(self.pts_end, self.dts + cto + duration)
            self.dts += duration

    @property
    def count(self) -> int:
        return len(self.sizes)


# ---------------------------------------------------------------- the movie

@dataclass
class Chunks:
    """Where the mdat's pieces come from: one chunk per (part of a) fragment."""

    files: list                 # relative paths, indexed by file_index
    file_index: array           # per chunk
    offset: array               # per chunk: offset in its segment file
    ends: array                 # per chunk: end offset in the output movie


@dataclass
class RangeMovie:
    """A progressive MP4 of a time range: exact size, ETag, and byte ranges on demand."""

    picorder_dir: Path
    header: bytes               # ftyp + moov + mdat header
    chunks: Chunks = field(repr=False)
    size: int
    etag: str
    start_us: int
    end_us: int
    runs: list                  # [(wall_start_us, wall_end_us, media_start_us)]
    frames: int

    def iter_bytes(self, first: int = 0, last: int | None = None) -> Iterator[bytes]:
        """Bytes first..last (inclusive) of the movie, read in bounded pieces."""
        last = self.size - 1 if last is None else last
        if not 0 <= first <= last < self.size:
            raise ValueError(f"byte range {first}-{last} outside the movie's {self.size} bytes")
        pos = first
        if pos < len(self.header):
            piece = self.header[pos:min(last + 1, len(self.header))]
            pos += len(piece)
            yield piece
        if pos > last:
            return
        yield from self._iter_chunks(pos, last)

    def _iter_chunks(self, pos: int, last: int) -> Iterator[bytes]:
        c = self.chunks
        chunk = bisect.bisect_right(c.ends, pos)
        handle, handle_index = None, -1
        try:
            while pos <= last:
                file_index = c.file_index[chunk]
                if file_index != handle_index:
                    if handle:
                        handle.close()
                    handle = segfiles.open_for_reading(self.picorder_dir, c.files[file_index])
                    handle_index = file_index
                chunk_start = c.ends[chunk - 1] if chunk else len(self.header)
                stop = min(last + 1, c.ends[chunk])
                yield from _read_span(handle, c.offset[chunk] + pos - chunk_start,
                                      stop - pos, c.files[file_index])
                pos = stop
                chunk += 1
        finally:
            if handle:
                handle.close()


def _read_span(handle, offset: int, length: int, name: str) -> Iterator[bytes]:
    handle.seek(offset)
    while length > 0:
        data = handle.read(min(length, MP4_READ_CHUNK))
        if not data:
            raise OSError(f"segment {name} is shorter than its index row says")
        length -= len(data)
        yield data


# ---------------------------------------------------------------- building

@dataclass
class _SegmentMap:
    """How one segment's media time maps to wall time and to output time."""

    row: Segment
    first_pts: int              # segment media time of its first presented frame
    shift: int = 0              # output time = segment time + shift
    timescale: int = 1

    def wall(self, t_seg: int) -> int:
        return self.row.start_us + (t_seg - self.first_pts) * 1_000_000 // self.timescale

    def seg_time(self, wall_us: int) -> int:
        return self.first_pts + (wall_us - self.row.start_us) * self.timescale // 1_000_000


@dataclass
class _Build:
    picorder_dir: Path
    start_us: int
    end_us: int
    init: InitSegment | None = None
    tables: SampleTables = field(default_factory=SampleTables)
    maps: list = field(default_factory=list)        # _SegmentMap of each used segment
    media_start: int | None = None                  # elst media_time (output timescale)
    media_end: int | None = None
    movie_start_us: int = 0
    movie_end_us: int = 0
    stopped_for_format: bool = False
    rows: list = field(default_factory=list)
    last_init: InitSegment | None = None            # parsed once while the files share it


MAX_TIME_US = 2 ** 62             # far beyond any real date; keeps SQLite integers in range


def validate_range(start_us: int, end_us: int) -> None:
    """ValueError unless start < end, both plausible, and the span within EXPORT_MAX_S."""
    if not (0 <= start_us < MAX_TIME_US and 0 <= end_us < MAX_TIME_US):
        raise ValueError("times must lie between 1970 and the far future")
    if end_us <= start_us:
        raise ValueError("the end of the range must be after its start")
    if end_us - start_us > EXPORT_MAX_S * 1_000_000:
        raise ValueError(f"the range is longer than the {EXPORT_MAX_S // 3600} hours allowed")


def build_range(index: Index, camera: str, stream: str, start_us: int,
                end_us: int, tail: list = ()) -> RangeMovie:
    """The progressive MP4 of camera/stream between start_us and end_us, from `index`
    and the segment files of its picorder directory.

    `tail`: segments not indexed yet, after the indexed ones, each with the
    fields of a Segment row and its parsed `fragments`, which end at its
    `bytes` (webpanel.index_reader.unindexed_tail()).
    """
    validate_range(start_us, end_us)
    build = _Build(index.dir, start_us, end_us)
    with_tables = Segment.tables_available(index)
    rows = list(Segment.covering(index, camera, stream, start_us, end_us,
                                 with_tables=with_tables))
    indexed = {row.path for row in rows}
    rows += [t for t in tail
             if t.path not in indexed and t.end_us > start_us and t.start_us < end_us]
    for row in rows:
        if not _add_segment(build, row):
            break
    if (build.tables.count == 0 or build.media_start is None
            or build.media_end <= build.media_start):
        raise NoRecording(f"no recording of {camera} ({stream}) between "
                          f"{_fmt(start_us)} and {_fmt(end_us)}")
    return _finish(build)


def _fmt(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _open_segment(build: _Build, row: Segment):
    """(file, init, readable size) of a row's segment, or None if it cannot be used."""
    try:
        f = segfiles.open_for_reading(build.picorder_dir, row.path)
    except FileNotFoundError:
        logger.warning("segment %s is in the index but missing; skipped", row.path)
        return None
    except UnsafePath as exc:
        logger.error("index row not read: %s", exc)
        return None
    try:
        size = min(os.fstat(f.fileno()).st_size, row.bytes)
        build.last_init = read_init(f, size, build.last_init)
        return f, build.last_init, size
    except (Mp4Error, OSError):
        logger.exception("segment %s is unreadable; skipped", row.path)
        f.close()
        return None


def _add_segment(build: _Build, row: Segment) -> bool:
    """Add the samples of one segment that fall in the range; False to stop here."""
    opened = _open_segment(build, row)
    if opened is None:
        return True
    f, init, size = opened
    with f:
        if build.init is not None and not build.init.same_format(init):
            logger.info("format of %s/%s changes at %s; range stops there",
                        row.camera, row.stream, row.path)
            build.stopped_for_format = True
            return False
        fragments = getattr(row, "fragments", None) or _stored_fragments(f, init, size, row)
        if fragments is None:
            fragments = list(iter_segment_fragments(f, init, size))
    if not fragments:
        return True
    _add_fragments(build, row, fragments, init)
    return True


def _stored_fragments(f, init: InitSegment, size: int, row: Segment) -> list | None:
    """The row's stored sample tables if they describe this file as read; None otherwise.

    They must decode cleanly (version, checksum), be of this init segment,
    cover the same valid prefix as reading the file up to `size` would, and
    the last fragment must be a moof of the stored size where the tables say.
    """
    blob = getattr(row, "tables", None)
    row.tables = None           # the rows of a range are kept until it is built
    if not blob:
        return None
    try:
        stored = decode_tables(bytes(blob), join=True)
        if stored.init_key != init_key(init):
            raise StaleTables("stored sample tables are of another init segment")
        if size != row.bytes or stored.complete_end > size or size not in (
                stored.file_size, stored.complete_end):
            raise StaleTables(f"stored sample tables are of a {stored.file_size}-byte file, "
                              f"the file has {size}")
        _check_last_moof(f, stored.fragments)
    except StaleTables as exc:
        logger.info("segment %s: %s; reading the file instead", row.path, exc)
        return None
    return stored.fragments


def _check_last_moof(f, fragments: list) -> None:
    """StaleTables unless the file has a moof of the stored size at the last fragment."""
    if not fragments:
        return
    last = fragments[-1]
    head = os.pread(f.fileno(), 8, last.offset)
    if len(head) < 8 or head[4:8] != b"moof" or struct.unpack(">I", head[:4])[0] != last.moof_size:
        raise StaleTables(f"no moof of {last.moof_size} bytes at {last.offset}")


def _first_pts(frag: Fragment) -> int:
    dts, best = frag.base_dts, None
    for duration, cto in zip(frag.durations, frag.ctos):
        best = dts + cto if best is None else min(best, dts + cto)
        dts += duration
    return best


def _pts_list(frag: Fragment) -> list[int]:
    """Presentation time of each sample of a fragment (segment media time)."""
    out, dts = [], frag.base_dts
    for duration, cto in zip(frag.durations, frag.ctos):
        out.append(dts + cto)
        dts += duration
    return out


def _add_fragments(build: _Build, row: Segment, fragments: list[Fragment],
                   init: InitSegment) -> None:
    seg = _SegmentMap(row, _first_pts(fragments[0]), timescale=init.timescale)
    first = _first_position(build, seg, fragments) if build.media_start is None else (0, 0)
    last = _last_position(build, seg, fragments)
    if first is None or last is None or last < first:
        return
    (fi0, i0), (fi_last, i_last) = first, last
    frag0 = fragments[fi0]
    dts0 = frag0.base_dts + sum(frag0.durations[:i0])
    seg.shift = build.tables.dts - dts0
    if build.media_start is None:
        pts0 = dts0 + frag0.ctos[i0]
        start_wall = max(build.start_us, seg.wall(pts0))
        build.media_start = seg.seg_time(start_wall) + seg.shift
        build.movie_start_us = start_wall
    build.init = build.init or init
    build.rows.append(row)
    file_index = len(build.tables.files)
    build.tables.files.append(row.path)
    for fi in range(fi0, fi_last + 1):
        lo = i0 if fi == fi0 else 0
        hi = i_last if fi == fi_last else fragments[fi].count - 1
        build.tables.add(fragments[fi], lo, hi, file_index)
    build.maps.append(seg)
    _update_end(build, seg)


def _first_position(build: _Build, seg: _SegmentMap,
                    fragments: list[Fragment]) -> tuple[int, int] | None:
    """(fragment, sample) of the keyframe at or before the range's start (decode order).

    If the segment has none that early (a recording that began without a
    keyframe), its first keyframe; None if it has no keyframe at all.
    """
    chosen = None
    for fi, frag in enumerate(fragments):
        pts = _pts_list(frag)
        at = frag.sync.find(1)
        while at != -1:
            if seg.wall(pts[at]) > build.start_us:
                return chosen or (fi, at)
            chosen = (fi, at)
            at = frag.sync.find(1, at + 1)
    return chosen


def _last_position(build: _Build, seg: _SegmentMap,
                   fragments: list[Fragment]) -> tuple[int, int] | None:
    """(fragment, sample) of the last sample in decode order presented before the range's end.

    Every sample up to it is needed: later-presented frames it depends on come first.
    """
    tail = fragments[-1]
    bound = tail.base_dts + tail.duration + max(tail.ctos)
    if seg.wall(bound) < build.end_us:
        return len(fragments) - 1, tail.count - 1
    for fi in range(len(fragments) - 1, -1, -1):
        pts = _pts_list(fragments[fi])
        for i in range(len(pts) - 1, -1, -1):
            if seg.wall(pts[i]) < build.end_us:
                return fi, i
    return None


def _update_end(build: _Build, seg: _SegmentMap) -> None:
    t = build.tables
    seg_end_wall = seg.wall(t.pts_end - seg.shift)
    if seg_end_wall >= build.end_us:
        build.movie_end_us = build.end_us
        build.media_end = seg.seg_time(build.end_us) + seg.shift
    else:
        build.movie_end_us = seg_end_wall
        build.media_end = t.pts_end


def _runs(build: _Build) -> list[tuple[int, int, int]]:
    """Stretches of continuous recording: (wall_start_us, wall_end_us, media_start_us)."""
    runs: list[list[int]] = []
    ts = build.init.timescale
    prev = None
    for seg in build.maps:
        wall_start = max(build.movie_start_us, seg.row.start_us)
        wall_end = min(build.movie_end_us, seg.row.end_us)
        if prev is not None and seg.row.start_us - prev.row.end_us <= EXPORT_GAP_TOLERANCE_US:
            runs[-1][1] = max(runs[-1][1], wall_end)
        else:
            out = seg.seg_time(wall_start) + seg.shift
            runs.append([wall_start, wall_end, (out - build.media_start) * 1_000_000 // ts])
        prev = seg
    if runs:
        runs[-1][1] = build.movie_end_us
    return [tuple(r) for r in runs]


def _finish(build: _Build) -> RangeMovie:
    init, t = build.init, build.tables
    edit = max(build.media_end - build.media_start, 1)
    payload = sum(t.chunk_size)
    # The chunk offsets are the moov's last bytes and have a fixed width, so the moov is
    # built once with placeholders, sized, and then given its real offsets.
    moov = _moov(init, t, edit, build.media_start, co64=False)
    large = len(FTYP) + moov.nbytes + 8 + payload > U32
    mdat_header_size = 16 if large else 8
    if len(FTYP) + moov.nbytes + mdat_header_size + payload > U32:
        moov = _moov(init, t, edit, build.media_start, co64=True)
    base = len(FTYP) + moov.nbytes + mdat_header_size
    offsets = _chunk_offsets(t, base, co64=moov.co64)
    if len(offsets) != len(moov[-1]):
        raise RuntimeError("chunk offset table changed size")
    moov[-1] = offsets
    if large:
        mdat = struct.pack(">I4sQ", 1, b"mdat", 16 + payload)
    else:
        mdat = struct.pack(">I4s", 8 + payload, b"mdat")
    header = b"".join([FTYP, *moov, mdat])
    del moov
    ends = array("Q")
    total = len(header)
    for size in t.chunk_size:
        total += size
        ends.append(total)
    chunks = Chunks(t.files, t.chunk_file, t.chunk_offset, ends)
    return RangeMovie(picorder_dir=build.picorder_dir, header=header, chunks=chunks,
                      size=total, etag=_etag(build, total),
                      start_us=build.movie_start_us, end_us=build.movie_end_us,
                      runs=_runs(build), frames=t.count)


def _etag(build: _Build, size: int) -> str:
    h = hashlib.sha256(f"{FORMAT_VERSION}:{build.start_us}:{build.end_us}:{size}".encode())
    for row in build.rows:
        h.update(f"|{row.path}:{row.bytes}:{row.start_us}:{row.end_us}".encode())
    return h.hexdigest()[:32]


# ---------------------------------------------------------------- boxes

class Parts(list):
    """A box as a list of byte strings (joined once at the end, not at every level)."""

    nbytes: int = 0
    co64: bool = False


def box(typ: bytes, *children: "bytes | Parts") -> Parts:
    out = Parts([b""])
    payload = 0
    for child in children:
        if isinstance(child, Parts):
            out.extend(child)
            payload += child.nbytes
        else:
            out.append(child)
            payload += len(child)
    if payload + 8 > U32:
        out[0] = struct.pack(">I4sQ", 1, typ, payload + 16)
    else:
        out[0] = struct.pack(">I4s", payload + 8, typ)
    out.nbytes = payload + len(out[0])
    return out


def full(typ: bytes, version: int, flags: int, *children: "bytes | Parts") -> Parts:
    return box(typ, struct.pack(">I", (version << 24) | flags), *children)


FTYP = b"".join(box(b"ftyp", b"isom", struct.pack(">I", 0x200), b"isom", b"iso2", b"avc1",
                    b"mp41"))
MATRIX = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)


def _big_endian(arr: array) -> bytes:
    """The array's items as big-endian bytes (arrays are in host order)."""
    if sys.byteorder == "little":
        arr = array(arr.typecode, arr)
        arr.byteswap()
    return arr.tobytes()


def _be32(values) -> bytes:
    arr = values if isinstance(values, array) and values.typecode == "I" else array("I", values)
    if arr.itemsize != 4:
        raise RuntimeError("array('I') is not 32-bit on this platform")
    return _big_endian(arr)


def _moov(init: InitSegment, t: SampleTables, edit: int, media_time: int, *,
          co64: bool) -> Parts:
    """The moov, its last part being the chunk offset entries (zeros, filled in later)."""
    ts = init.timescale
    big = max(edit, t.dts) > U32
    version = 1 if big else 0
    times = ">QQI" if big else ">III"
    duration = ">Q" if big else ">I"
    mvhd = full(b"mvhd", version, 0, struct.pack(times, 0, 0, ts), struct.pack(duration, edit),
                struct.pack(">IH", 0x10000, 0x100), bytes(10), MATRIX, bytes(24),
                struct.pack(">I", 2))
    tkhd = full(b"tkhd", version, 3, struct.pack(times, 0, 0, 1), bytes(4),
                struct.pack(duration, edit), bytes(8), struct.pack(">HHHH", 0, 0, 0, 0), MATRIX,
                struct.pack(">II", init.width << 16, init.height << 16))
    elst_v1 = big or media_time > 0x7FFFFFFF
    elst = full(b"elst", 1 if elst_v1 else 0, 0,
                struct.pack(">IQqhh" if elst_v1 else ">IIihh", 1, edit, media_time, 1, 0))
    mdhd = full(b"mdhd", version, 0, struct.pack(times, 0, 0, ts), struct.pack(duration, t.dts),
                struct.pack(">HH", 0x55C4, 0))
    hdlr = full(b"hdlr", 0, 0, bytes(4), b"vide", bytes(12), b"VideoHandler\x00")
    minf = box(b"minf", full(b"vmhd", 0, 1, bytes(8)),
               box(b"dinf", full(b"dref", 0, 0, struct.pack(">I", 1), full(b"url ", 0, 1))),
               _stbl(init, t, co64))
    trak = box(b"trak", tkhd, box(b"edts", elst), box(b"mdia", mdhd, hdlr, minf))
    moov = box(b"moov", mvhd, trak)
    moov.co64 = co64
    return moov


def _stbl(init: InitSegment, t: SampleTables, co64: bool) -> Parts:
    stsd = full(b"stsd", 0, 0, struct.pack(">I", 1), init.sample_entry)
    stts = full(b"stts", 0, 0, struct.pack(">I", len(t.stts)), t.stts.packed())
    parts = [stsd, stts]
    if t.ctts.nonzero():
        parts.append(full(b"ctts", 1 if t.negative_cto else 0, 0,
                          struct.pack(">I", len(t.ctts)), t.ctts.packed()))
    if len(t.sync) < t.count:
        parts.append(full(b"stss", 0, 0, struct.pack(">I", len(t.sync)), _be32(t.sync)))
    parts.append(_stsc(t))
    parts.append(full(b"stsz", 0, 0, struct.pack(">II", 0, t.count), _be32(t.sizes)))
    chunks = len(t.chunk_size)
    # Last, so that the entries are the moov's last part (see _finish).
    parts.append(full(b"co64" if co64 else b"stco", 0, 0, struct.pack(">I", chunks),
                      bytes((8 if co64 else 4) * chunks)))
    return box(b"stbl", *parts)


def _stsc(t: SampleTables) -> Parts:
    entries = array("I")
    last = None
    for n, samples in enumerate(t.chunk_samples, start=1):
        if samples != last:
            entries.extend((n, samples, 1))
            last = samples
    return full(b"stsc", 0, 0, struct.pack(">I", len(entries) // 3), _be32(entries))


def _chunk_offsets(t: SampleTables, base: int, co64: bool) -> bytes:
    """Big-endian absolute offset of each chunk in the output."""
    offsets = array("Q")
    pos = base
    for size in t.chunk_size:
        offsets.append(pos)
        pos += size
    if not co64:
        offsets = array("I", offsets)
    return _big_endian(offsets)
