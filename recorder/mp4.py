"""A pure-Python ISO-BMFF reader for picorder's fragmented MP4 segments.

The segments come from ffmpeg's segment muxer with
``movflags=+frag_keyframe+empty_moov+default_base_moof``: an init segment
(``ftyp`` + an empty ``moov`` with ``mvex``/``trex``), then ``moof`` + ``mdat``
pairs, and on a clean close an ``mfra`` index. Only the video track is read.

The reader never loads a whole file: the init segment and each ``moof`` are
small and read into memory, ``mdat`` payloads are only located (absolute file
offsets per sample run), so callers can stream them by byte ranges.
"""

import logging
import os
import struct
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterator

from recorder.limits import MP4_MAX_HEADER_BOX

logger = logging.getLogger(__name__)

# Boxes whose payload is a list of boxes (containers we descend into).
CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"mvex", b"moof", b"traf",
              b"dinf", b"edts", b"udta", b"mfra"}
# Top-level boxes allowed after the init segment; anything else ends the valid prefix.
TOP_LEVEL_AFTER_INIT = {b"moof", b"mdat", b"mfra", b"free", b"skip", b"sidx", b"styp",
                        b"prft", b"emsg", b"udta", b"meta"}
CODECS = {b"avc1": "h264", b"avc3": "h264", b"hvc1": "hevc", b"hev1": "hevc"}

# tfhd flags
TFHD_BASE_DATA_OFFSET = 0x000001
TFHD_SAMPLE_DESCRIPTION_INDEX = 0x000002
TFHD_DEFAULT_DURATION = 0x000008
TFHD_DEFAULT_SIZE = 0x000010
TFHD_DEFAULT_FLAGS = 0x000020
TFHD_DEFAULT_BASE_IS_MOOF = 0x020000
# trun flags
TRUN_DATA_OFFSET = 0x000001
TRUN_FIRST_SAMPLE_FLAGS = 0x000004
TRUN_DURATION = 0x000100
TRUN_SIZE = 0x000200
TRUN_FLAGS = 0x000400
TRUN_CTO = 0x000800
# sample flags: sample_is_non_sync_sample
SAMPLE_NON_SYNC = 0x00010000


class Mp4Error(ValueError):
    """The file is not a valid picorder fMP4 segment (or this part of it is not)."""


@dataclass(frozen=True)
class Box:
    """One box: its type, where it starts, its total size and header length."""

    type: bytes
    offset: int
    size: int
    header: int

    @property
    def end(self) -> int:
        return self.offset + self.size

    @property
    def payload(self) -> int:
        return self.offset + self.header


@dataclass
class InitSegment:
    """What the init segment (ftyp + moov) says about the video track."""

    data: bytes                 # ftyp + moov exactly as in the file (for MSE)
    end: int                    # file offset just after the moov
    track_id: int
    timescale: int
    codec: str                  # "h264", "hevc"
    fourcc: str                 # "avc1", "hvc1", ...
    width: int
    height: int
    sample_entry: bytes         # the whole stsd entry box (avc1 + avcC ...)
    default_duration: int = 0   # from trex
    default_size: int = 0
    default_flags: int = 0

    def same_format(self, other: "InitSegment") -> bool:
        """True if samples of `other` can continue a track made from this one."""
        return (self.sample_entry == other.sample_entry
                and self.timescale == other.timescale)


@dataclass
class Fragment:
    """One complete moof + mdat: its samples, located by absolute file offsets."""

    offset: int                 # moof start
    moof_size: int
    end: int                    # just after the mdat
    base_dts: int               # tfdt, in the track timescale
    sizes: array = field(default_factory=lambda: array("I"))
    durations: array = field(default_factory=lambda: array("I"))
    ctos: array = field(default_factory=lambda: array("i"))     # composition offsets
    sync: bytearray = field(default_factory=bytearray)           # 1 = keyframe
    runs: list = field(default_factory=list)                     # [(abs offset, n samples)]
    tfdt_offset: int = -1       # offset of the tfdt box inside the moof (for live)

    @property
    def count(self) -> int:
        return len(self.sizes)

    @property
    def duration(self) -> int:
        return sum(self.durations)

    def sample_offsets(self) -> Iterator[int]:
        """Absolute file offset of each sample, in decode order."""
        index = 0
        for start, count in self.runs:
            pos = start
            for _ in range(count):
                yield pos
                pos += self.sizes[index]
                index += 1


@dataclass
class SegmentInfo:
    """Summary of a segment file, as the recorder stores it in the index."""

    duration_us: int
    frames: int
    codec: str
    width: int
    height: int
    timescale: int
    complete_end: int           # end of the valid prefix (last complete fragment, or a trailing mfra)
    file_size: int
    first_pts_us: int
    fragments: int = 0

    @property
    def torn(self) -> bool:
        return self.complete_end < self.file_size


# ---------------------------------------------------------------- box reading

def parse_box_header(data: bytes | memoryview, offset: int, limit: int) -> Box:
    """Parse the box header at `offset` of an in-memory buffer ending at `limit`."""
    if limit - offset < 8:
        raise Mp4Error(f"truncated box header at {offset}")
    size, typ = struct.unpack_from(">I4s", data, offset)
    header = 8
    if size == 1:
        if limit - offset < 16:
            raise Mp4Error(f"truncated largesize header at {offset}")
        size = struct.unpack_from(">Q", data, offset + 8)[0]
        header = 16
    elif size == 0:
        size = limit - offset
    if size < header or offset + size > limit:
        raise Mp4Error(f"box {typ!r} at {offset} has a bad size {size}")
    return Box(typ, offset, size, header)


def iter_boxes(data: bytes | memoryview, start: int = 0, end: int | None = None) -> Iterator[Box]:
    """The boxes laid end to end in data[start:end]."""
    end = len(data) if end is None else end
    pos = start
    while pos < end:
        box = parse_box_header(data, pos, end)
        yield box
        pos = box.end


def find_child(data, parent: Box, typ: bytes, skip: int = 0) -> Box | None:
    """The first child of `parent` with type `typ` (`skip`: bytes before the children)."""
    for box in iter_boxes(data, parent.payload + skip, parent.end):
        if box.type == typ:
            return box
    return None


def find_path(data, parent: Box, *types: bytes) -> Box | None:
    """Descend through children by type: find_path(d, moov, b'trak', b'mdia')."""
    box = parent
    for typ in types:
        box = find_child(data, box, typ)
        if box is None:
            return None
    return box


def read_file_box(f: BinaryIO, offset: int, file_size: int) -> Box | None:
    """Read the top-level box header at `offset`; None if the header is not all there."""
    f.seek(offset)
    head = f.read(16)
    if len(head) < 8 or offset + 8 > file_size:
        return None
    size, typ = struct.unpack_from(">I4s", head)
    header = 8
    if size == 1:
        if len(head) < 16:
            return None
        size = struct.unpack_from(">Q", head, 8)[0]
        header = 16
    elif size == 0:
        raise Mp4Error(f"box {typ!r} at {offset} extends to the end of the file")
    if size < header:
        raise Mp4Error(f"box {typ!r} at {offset} has a bad size {size}")
    return Box(typ, offset, size, header)


def full_box(data, box: Box) -> tuple[int, int]:
    """(version, flags) of a FullBox."""
    if box.size - box.header < 4:
        raise Mp4Error(f"{box.type!r} box too short")
    word = struct.unpack_from(">I", data, box.payload)[0]
    return word >> 24, word & 0xFFFFFF


# ---------------------------------------------------------------- init segment

def read_init(f: BinaryIO, file_size: int | None = None) -> InitSegment:
    """Read and parse the init segment (ftyp + moov) at the start of the file."""
    if file_size is None:
        file_size = os.fstat(f.fileno()).st_size
    ftyp = read_file_box(f, 0, file_size)
    if ftyp is None or ftyp.type != b"ftyp" or ftyp.end > file_size:
        raise Mp4Error("no ftyp box at the start")
    moov = read_file_box(f, ftyp.end, file_size)
    if moov is None or moov.type != b"moov":
        raise Mp4Error("no moov box after ftyp")
    if moov.end > file_size:
        raise Mp4Error("the moov box is truncated")
    if moov.end > MP4_MAX_HEADER_BOX:
        raise Mp4Error("the init segment is implausibly large")
    f.seek(0)
    data = f.read(moov.end)
    moov = parse_box_header(data, ftyp.end, len(data))
    return parse_moov(data, moov)


def parse_moov(data: bytes, moov: Box) -> InitSegment:
    """Parse the video track of an (empty, fragmented) moov."""
    for trak in iter_boxes(data, moov.payload, moov.end):
        if trak.type != b"trak":
            continue
        hdlr = find_path(data, trak, b"mdia", b"hdlr")
        if hdlr is None or data[hdlr.payload + 8:hdlr.payload + 12] != b"vide":
            continue
        init = _parse_video_trak(data, trak, moov.end)
        _apply_trex(data, moov, init)
        return init
    raise Mp4Error("no video track in the moov")


def _parse_video_trak(data: bytes, trak: Box, end: int) -> InitSegment:
    tkhd = find_child(data, trak, b"tkhd")
    mdhd = find_path(data, trak, b"mdia", b"mdhd")
    stsd = find_path(data, trak, b"mdia", b"minf", b"stbl", b"stsd")
    if tkhd is None or mdhd is None or stsd is None:
        raise Mp4Error("video track lacks tkhd, mdhd or stsd")
    version, _ = full_box(data, tkhd)
    track_id = struct.unpack_from(">I", data, tkhd.payload + (20 if version == 1 else 12))[0]
    version, _ = full_box(data, mdhd)
    timescale = struct.unpack_from(">I", data, mdhd.payload + (20 if version == 1 else 12))[0]
    if timescale == 0:
        raise Mp4Error("mdhd timescale is 0")
    entries = list(iter_boxes(data, stsd.payload + 8, stsd.end))
    if not entries:
        raise Mp4Error("stsd has no sample entry")
    entry = entries[0]
    codec = CODECS.get(entry.type)
    if codec is None:
        raise Mp4Error(f"unsupported video codec {entry.type!r}")
    if entry.size < entry.header + 78:
        raise Mp4Error("visual sample entry too short")
    width, height = struct.unpack_from(">HH", data, entry.payload + 24)
    return InitSegment(data=data[:end], end=end, track_id=track_id, timescale=timescale,
                       codec=codec, fourcc=entry.type.decode("ascii"), width=width,
                       height=height, sample_entry=bytes(data[entry.offset:entry.end]))


def _apply_trex(data: bytes, moov: Box, init: InitSegment) -> None:
    mvex = find_child(data, moov, b"mvex")
    if mvex is None:
        raise Mp4Error("moov has no mvex: not a fragmented MP4")
    for trex in iter_boxes(data, mvex.payload, mvex.end):
        if trex.type != b"trex" or trex.size < trex.header + 24:
            continue
        track_id, _sdi, dur, size, flags = struct.unpack_from(">5I", data, trex.payload + 4)
        if track_id == init.track_id:
            init.default_duration, init.default_size, init.default_flags = dur, size, flags
            return


# ---------------------------------------------------------------- fragments

def parse_moof(moof_data: bytes, moof_offset: int, init: InitSegment) -> Fragment:
    """Parse an in-memory moof (starting at data[0]) located at `moof_offset` in the file."""
    moof = parse_box_header(moof_data, 0, len(moof_data))
    if moof.type != b"moof":
        raise Mp4Error(f"expected moof at {moof_offset}")
    frag = None
    for traf in iter_boxes(moof_data, moof.payload, moof.end):
        if traf.type != b"traf":
            continue
        tfhd = find_child(moof_data, traf, b"tfhd")
        if tfhd is None:
            raise Mp4Error(f"traf without tfhd in moof at {moof_offset}")
        if struct.unpack_from(">I", moof_data, tfhd.payload + 4)[0] != init.track_id:
            continue
        frag = _parse_traf(moof_data, traf, tfhd, moof_offset, init)
    if frag is None:
        raise Mp4Error(f"moof at {moof_offset} has no fragment of the video track")
    frag.moof_size = moof.size
    return frag


def _parse_tfhd(data: bytes, tfhd: Box, moof_offset: int, init: InitSegment):
    _, flags = full_box(data, tfhd)
    pos = tfhd.payload + 8
    base = moof_offset
    if flags & TFHD_BASE_DATA_OFFSET:
        base = struct.unpack_from(">Q", data, pos)[0]
        pos += 8
    if flags & TFHD_SAMPLE_DESCRIPTION_INDEX:
        pos += 4
    defaults = [init.default_duration, init.default_size, init.default_flags]
    for i, bit in enumerate((TFHD_DEFAULT_DURATION, TFHD_DEFAULT_SIZE, TFHD_DEFAULT_FLAGS)):
        if flags & bit:
            defaults[i] = struct.unpack_from(">I", data, pos)[0]
            pos += 4
    if pos > tfhd.end:
        raise Mp4Error("tfhd too short for its flags")
    return base, defaults


def _parse_traf(data: bytes, traf: Box, tfhd: Box, moof_offset: int,
                init: InitSegment) -> Fragment:
    base, (def_dur, def_size, def_flags) = _parse_tfhd(data, tfhd, moof_offset, init)
    frag = Fragment(offset=moof_offset, moof_size=0, end=0, base_dts=0)
    next_data = base
    for box in iter_boxes(data, traf.payload, traf.end):
        if box.type == b"tfdt":
            version, _ = full_box(data, box)
            fmt = ">Q" if version == 1 else ">I"
            frag.base_dts = struct.unpack_from(fmt, data, box.payload + 4)[0]
            frag.tfdt_offset = box.offset
        elif box.type == b"trun":
            next_data = _parse_trun(data, box, frag, base, next_data,
                                    def_dur, def_size, def_flags)
    return frag


def _parse_trun(data: bytes, box: Box, frag: Fragment, base: int, next_data: int,
                def_dur: int, def_size: int, def_flags: int) -> int:
    version, flags = full_box(data, box)
    pos = box.payload + 4
    count = struct.unpack_from(">I", data, pos)[0]
    pos += 4
    start = next_data
    if flags & TRUN_DATA_OFFSET:
        start = base + struct.unpack_from(">i", data, pos)[0]
        pos += 4
    first_flags = None
    if flags & TRUN_FIRST_SAMPLE_FLAGS:
        first_flags = struct.unpack_from(">I", data, pos)[0]
        pos += 4
    fields = [(TRUN_DURATION, "I"), (TRUN_SIZE, "I"), (TRUN_FLAGS, "I"),
              (TRUN_CTO, "i" if version == 1 else "I")]
    present = [(bit, code) for bit, code in fields if flags & bit]
    per_sample = 4 * len(present)
    if pos + per_sample * count > box.end:
        raise Mp4Error(f"trun at {box.offset} claims {count} samples but is too short")
    fmt = ">" + "".join(code for _, code in present)
    total = 0
    for i in range(count):
        values = dict(zip((bit for bit, _ in present),
                          struct.unpack_from(fmt, data, pos + i * per_sample)))
        size = values.get(TRUN_SIZE, def_size)
        if i == 0 and first_flags is not None:
            sflags = first_flags
        else:
            sflags = values.get(TRUN_FLAGS, def_flags)
        cto = values.get(TRUN_CTO, 0)
        if cto >= 0x80000000:           # version 0 is unsigned; keep it as a Python int
            cto -= 0x100000000
        frag.sizes.append(size)
        frag.durations.append(values.get(TRUN_DURATION, def_dur))
        frag.ctos.append(cto)
        frag.sync.append(0 if sflags & SAMPLE_NON_SYNC else 1)
        total += size
    if count:
        frag.runs.append((start, count))
    return start + total


def read_fragment(f: BinaryIO, offset: int, file_size: int, init: InitSegment) -> Fragment | None:
    """The complete moof + mdat at `offset`, None if it is not all in the file yet.

    Raises Mp4Error if the bytes there are not a valid fragment.
    """
    moof = read_file_box(f, offset, file_size)
    if moof is None:
        return None
    if moof.type != b"moof":
        raise Mp4Error(f"expected moof at {offset}, found {moof.type!r}")
    if moof.size > MP4_MAX_HEADER_BOX:
        raise Mp4Error(f"moof at {offset} is implausibly large ({moof.size} bytes)")
    if moof.end + 8 > file_size:
        return None
    f.seek(offset)
    data = f.read(moof.size + 16)
    if len(data) < moof.size + 8:
        return None
    mdat = read_file_box(f, moof.end, file_size)
    if mdat is None:
        return None
    if mdat.type != b"mdat":
        raise Mp4Error(f"moof at {offset} is not followed by an mdat")
    if mdat.end > file_size:
        return None
    frag = parse_moof(data[:moof.size], offset, init)
    frag.end = mdat.end
    _check_sample_bounds(frag, mdat)
    return frag


def _check_sample_bounds(frag: Fragment, mdat: Box) -> None:
    index = 0
    for start, count in frag.runs:
        size = sum(frag.sizes[index:index + count])
        index += count
        if start < mdat.payload or start + size > mdat.end:
            raise Mp4Error(f"samples of the fragment at {frag.offset} lie outside its mdat")


@dataclass
class SegmentScan:
    """A parsed segment: its init, its complete fragments and its valid prefix."""

    init: InitSegment
    fragments: list
    complete_end: int
    file_size: int
    problem: str | None = None      # why the scan stopped before the end of the file


def iter_segment_fragments(f: BinaryIO, init: InitSegment, file_size: int,
                           state: dict | None = None) -> Iterator[Fragment]:
    """Yield complete fragments in file order; stop at the end of the valid prefix.

    `state` (optional) receives "complete_end" and "problem".
    """
    state = {} if state is None else state
    pos = init.end
    state["complete_end"], state["problem"] = pos, None
    while pos < file_size:
        try:
            box = read_file_box(f, pos, file_size)
            if box is None or box.end > file_size:
                state["problem"] = f"incomplete box at {pos}"
                return
            if box.type not in TOP_LEVEL_AFTER_INIT:
                state["problem"] = f"unexpected box {box.type!r} at {pos}"
                return
            if box.type == b"moof":
                frag = read_fragment(f, pos, file_size, init)
                if frag is None:
                    state["problem"] = f"incomplete fragment at {pos}"
                    return
                pos = frag.end
                state["complete_end"] = pos
                yield frag
                continue
            if box.type == b"mdat":
                state["problem"] = f"mdat without moof at {pos}"
                return
        except (Mp4Error, struct.error) as exc:
            state["problem"] = str(exc)
            return
        pos = box.end
        state["complete_end"] = pos


def scan_segment(path: Path) -> SegmentScan:
    """Parse the whole segment (init + every complete fragment)."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        init = read_init(f, size)
        state: dict = {}
        fragments = list(iter_segment_fragments(f, init, size, state))
    return SegmentScan(init, fragments, state["complete_end"], size, state["problem"])


def probe_segment(path: Path) -> SegmentInfo:
    """Summarise a segment for the index; raises Mp4Error if its init segment is broken.

    complete_end is the end of the valid prefix: after the last complete
    fragment, or after a complete trailing box such as the mfra ffmpeg writes
    on a clean close. A file is torn when complete_end < file_size.
    """
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        init = read_init(f, size)
        state: dict = {}
        total = frames = count = 0
        first_pts = None
        for frag in iter_segment_fragments(f, init, size, state):
            if first_pts is None and frag.count:
                first_pts = frag.base_dts + min(presentation_offsets(frag))
            total += frag.duration
            frames += frag.count
            count += 1
    scale = init.timescale
    return SegmentInfo(duration_us=total * 1_000_000 // scale, frames=frames, codec=init.codec,
                       width=init.width, height=init.height, timescale=scale,
                       complete_end=state["complete_end"], file_size=size,
                       first_pts_us=(first_pts or 0) * 1_000_000 // scale, fragments=count)


def presentation_offsets(frag: Fragment) -> Iterator[int]:
    """Each sample's presentation time relative to the fragment's base_dts."""
    dts = 0
    for duration, cto in zip(frag.durations, frag.ctos):
        yield dts + cto
        dts += duration
