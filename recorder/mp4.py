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
import sys
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterator, NamedTuple

from recorder.limits import MP4_MAX_HEADER_BOX

logger = logging.getLogger(__name__)

# Boxes whose payload is a list of boxes (containers we descend into).
CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"mvex", b"moof", b"traf",
              b"dinf", b"edts", b"udta", b"mfra"}
# Top-level boxes allowed after the init segment; anything else ends the valid prefix.
TOP_LEVEL_AFTER_INIT = {b"moof", b"mdat", b"mfra", b"free", b"skip", b"sidx", b"styp",
                        b"prft", b"emsg", b"udta", b"meta"}
CODECS = {b"avc1": "h264", b"avc3": "h264", b"hvc1": "hevc", b"hev1": "hevc"}

# Bytes read at once at a fragment's start: its moof and the mdat header, usually.
FRAGMENT_PREFETCH = 4096

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


class Box(NamedTuple):
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

    @property
    def rfc6381(self) -> str:
        """The codecs= string for MediaSource/MSE, e.g. avc1.64001f or hvc1.1.6.L93.B0."""
        return codec_string(self.sample_entry)

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

def read_init(f: BinaryIO, file_size: int | None = None,
              previous: InitSegment | None = None) -> InitSegment:
    """Read and parse the init segment (ftyp + moov) at the start of the file.

    `previous` (another file's init) is returned as is if the bytes are the same.
    """
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
    if previous is not None and previous.data == data:
        return previous
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


def codec_string(sample_entry: bytes) -> str:
    """RFC 6381 codec string of an avc1/avc3/hvc1/hev1 sample entry (ISO/IEC 14496-15 annex E)."""
    fourcc = sample_entry[4:8].decode("ascii", "replace")
    entry = parse_box_header(sample_entry, 0, len(sample_entry))
    for child in iter_boxes(sample_entry, entry.payload + 78, entry.end):
        body = sample_entry[child.payload:child.end]
        if child.type == b"avcC" and len(body) >= 4:
            return f"{fourcc}.{body[1]:02x}{body[2]:02x}{body[3]:02x}"
        if child.type == b"hvcC" and len(body) >= 13:
            return f"{fourcc}.{_hevc_codec_fields(body)}"
    return fourcc


def _hevc_codec_fields(hvcc: bytes) -> str:
    space = ("", "A", "B", "C")[hvcc[1] >> 6]
    tier = "H" if hvcc[1] & 0x20 else "L"
    profile = hvcc[1] & 0x1F
    compat = int(f"{struct.unpack_from('>I', hvcc, 2)[0]:032b}"[::-1], 2)
    constraints = list(hvcc[6:12])
    while constraints and constraints[-1] == 0:
        constraints.pop()
    parts = [f"{space}{profile}", f"{compat:X}", f"{tier}{hvcc[12]}"]
    parts += [f"{b:X}" for b in constraints]
    return ".".join(parts)


# ---------------------------------------------------------------- fragments

_HEADER = struct.Struct(">I4s")
_U32 = struct.Struct(">I")


def _box_at(data: bytes, pos: int, end: int) -> tuple[bytes, int, int]:
    """(type, payload offset, end) of the box at data[pos:end] (a hot path: no objects)."""
    if end - pos < 8:
        raise Mp4Error(f"truncated box header at {pos}")
    size, typ = _HEADER.unpack_from(data, pos)
    header = 8
    if size == 1:
        if end - pos < 16:
            raise Mp4Error(f"truncated largesize header at {pos}")
        size, header = struct.unpack_from(">Q", data, pos + 8)[0], 16
    elif size == 0:
        size = end - pos
    if size < header or pos + size > end:
        raise Mp4Error(f"box {typ!r} at {pos} has a bad size {size}")
    return typ, pos + header, pos + size


_SIMPLE_HEAD = struct.Struct(">I4sI4sII I4s I4sII")   # moof, mfhd, traf, tfhd(flags, id)


def _parse_simple_moof(data: bytes, moof_offset: int, init: InitSegment) -> Fragment | None:
    """The usual layout (moof: mfhd, traf: tfhd tfdt trun) in one pass; None otherwise."""
    if len(data) < 60:
        return None
    (moof_size, moof_t, mfhd_size, mfhd_t, _, _, traf_size, traf_t, tfhd_size, tfhd_t,
     tfhd_flags, track_id) = _SIMPLE_HEAD.unpack_from(data, 0)
    if (moof_t != b"moof" or mfhd_t != b"mfhd" or mfhd_size != 16 or traf_t != b"traf"
            or tfhd_t != b"tfhd" or moof_size != len(data) or traf_size != moof_size - 24
            or track_id != init.track_id or tfhd_flags & TFHD_BASE_DATA_OFFSET
            or tfhd_size < 16 or 32 + tfhd_size + 16 > moof_size):
        return None
    _, base, (def_dur, def_size, def_flags) = _parse_tfhd(data, 40, 32 + tfhd_size,
                                                          moof_offset, init)
    pos = 32 + tfhd_size
    tfdt_size, tfdt_t, word = _HEADER_WORD.unpack_from(data, pos)
    if tfdt_t != b"tfdt" or pos + tfdt_size + 16 > moof_size:
        return None
    if word >> 24 == 1:
        base_dts = _U64.unpack_from(data, pos + 12)[0] if tfdt_size >= 20 else None
    else:
        base_dts = _U32.unpack_from(data, pos + 12)[0] if tfdt_size >= 16 else None
    trun_at = pos + tfdt_size
    trun_size, trun_t = _HEADER.unpack_from(data, trun_at)
    if base_dts is None or trun_t != b"trun" or trun_at + trun_size != moof_size:
        return None
    frag = Fragment(offset=moof_offset, moof_size=moof_size, end=0, base_dts=base_dts,
                    tfdt_offset=pos)
    _parse_trun(data, trun_at, trun_at + 8, moof_size, frag, base, base,
                def_dur, def_size, def_flags)
    return frag


def parse_moof(moof_data: bytes, moof_offset: int, init: InitSegment) -> Fragment:
    """Parse an in-memory moof (starting at data[0]) located at `moof_offset` in the file."""
    frag = _parse_simple_moof(moof_data, moof_offset, init)
    if frag is not None:
        return frag
    typ, pos, moof_end = _box_at(moof_data, 0, len(moof_data))
    if typ != b"moof":
        raise Mp4Error(f"expected moof at {moof_offset}")
    frag = None
    while pos < moof_end:
        typ, payload, end = _box_at(moof_data, pos, moof_end)
        if typ == b"traf":
            frag = _parse_traf(moof_data, payload, end, moof_offset, init) or frag
        pos = end
    if frag is None:
        raise Mp4Error(f"moof at {moof_offset} has no fragment of the video track")
    frag.moof_size = moof_end
    return frag


def _parse_tfhd(data: bytes, payload: int, end: int, moof_offset: int, init: InitSegment):
    """(track_id, base data offset, default duration, size, flags)."""
    if end - payload < 8:
        raise Mp4Error("tfhd too short")
    flags, track_id = _TWO_U32.unpack_from(data, payload)
    flags &= 0xFFFFFF
    pos = payload + 8
    base = moof_offset
    if flags & TFHD_BASE_DATA_OFFSET:
        base = struct.unpack_from(">Q", data, pos)[0]
        pos += 8
    if flags & TFHD_SAMPLE_DESCRIPTION_INDEX:
        pos += 4
    defaults = [init.default_duration, init.default_size, init.default_flags]
    for i, bit in enumerate((TFHD_DEFAULT_DURATION, TFHD_DEFAULT_SIZE, TFHD_DEFAULT_FLAGS)):
        if flags & bit:
            defaults[i] = _U32.unpack_from(data, pos)[0]
            pos += 4
    if pos > end:
        raise Mp4Error("tfhd too short for its flags")
    return track_id, base, defaults


def _parse_traf(data: bytes, pos: int, traf_end: int, moof_offset: int,
                init: InitSegment) -> Fragment | None:
    """The fragment of the video track in this traf; None if the traf is another track's.

    tfhd must be the traf's first box (ISO/IEC 14496-12), which lets this be one pass.
    """
    typ, payload, end = _box_at(data, pos, traf_end)
    if typ != b"tfhd":
        raise Mp4Error(f"traf without a leading tfhd in moof at {moof_offset}")
    track_id, base, (def_dur, def_size, def_flags) = _parse_tfhd(data, payload, end,
                                                                 moof_offset, init)
    if track_id != init.track_id:
        return None
    frag = Fragment(offset=moof_offset, moof_size=0, end=0, base_dts=0)
    next_data = base
    pos = end
    while pos < traf_end:
        box_offset = pos
        typ, payload, pos = _box_at(data, pos, traf_end)
        if typ == b"trun":
            next_data = _parse_trun(data, box_offset, payload, pos, frag, base, next_data,
                                    def_dur, def_size, def_flags)
        elif typ == b"tfdt":
            version = data[payload]
            if payload + (12 if version == 1 else 8) > pos:
                raise Mp4Error("tfdt too short")
            frag.base_dts = (_U64.unpack_from(data, payload + 4)[0] if version == 1
                             else _U32.unpack_from(data, payload + 4)[0])
            frag.tfdt_offset = box_offset
    return frag


_TWO_U32 = struct.Struct(">II")
_HEADER_WORD = struct.Struct(">I4sI")
_U64 = struct.Struct(">Q")
_SAMPLE_FIELDS = (TRUN_DURATION, TRUN_SIZE, TRUN_FLAGS, TRUN_CTO)


def _parse_trun(data: bytes, box_offset: int, payload: int, end: int, frag: Fragment,
                base: int, next_data: int, def_dur: int, def_size: int, def_flags: int) -> int:
    """Append a trun's samples to frag; return where the next trun's data starts."""
    if end - payload < 8:
        raise Mp4Error(f"trun at {box_offset} too short")
    word, count = _TWO_U32.unpack_from(data, payload)
    flags = word & 0xFFFFFF
    pos = payload + 8
    start = next_data
    if flags & TRUN_DATA_OFFSET:
        start = base + struct.unpack_from(">i", data, pos)[0]
        pos += 4
    first_flags = None
    if flags & TRUN_FIRST_SAMPLE_FLAGS:
        first_flags = _U32.unpack_from(data, pos)[0]
        pos += 4
    present = [bit for bit in _SAMPLE_FIELDS if flags & bit]
    stride = 4 * len(present)
    if pos + stride * count > end:
        raise Mp4Error(f"trun at {box_offset} claims {count} samples but is too short")
    block = bytes(data[pos:pos + stride * count])
    columns = _columns(block, present)
    sizes = columns.get(TRUN_SIZE) or array("I", [def_size]) * count
    frag.sizes.extend(sizes)
    frag.durations.extend(columns.get(TRUN_DURATION) or array("I", [def_dur]) * count)
    frag.ctos.extend(_signed(columns[TRUN_CTO]) if TRUN_CTO in columns
                     else array("i", [0]) * count)
    frag.sync.extend(_sync_column(block, present, count, def_flags, first_flags))
    if count:
        frag.runs.append((start, count))
    return start + sum(sizes)


def _columns(block: bytes, present: list[int]) -> dict[int, array]:
    """Split the per-sample records of a trun into one array per field (in C, not per sample)."""
    if not present:
        return {}
    words = array("I")
    if words.itemsize != 4:
        raise RuntimeError("array('I') is not 32-bit on this platform")
    words.frombytes(block)
    if sys.byteorder == "little":
        words.byteswap()
    n = len(present)
    return {bit: words[k::n] for k, bit in enumerate(present)}


def _signed(column: array) -> array:
    """Reinterpret 32-bit composition offsets as signed (trun v1; v0 values stay below 2**31)."""
    out = array("i")
    out.frombytes(column.tobytes())
    return out


# byte 1 of big-endian sample flags holds sample_is_non_sync_sample in its lowest bit
_SYNC_FROM_FLAGS_BYTE = bytes((0 if b & 1 else 1) for b in range(256))


def _sync_column(block: bytes, present: list[int], count: int, def_flags: int,
                 first_flags: int | None) -> bytes:
    """1 for each keyframe, 0 otherwise."""
    if TRUN_FLAGS in present:
        stride = 4 * len(present)
        byte1 = block[4 * present.index(TRUN_FLAGS) + 1::stride]
        sync = bytearray(byte1.translate(_SYNC_FROM_FLAGS_BYTE))
    else:
        sync = bytearray([0 if def_flags & SAMPLE_NON_SYNC else 1]) * count
    if first_flags is not None and count:
        sync[0] = 0 if first_flags & SAMPLE_NON_SYNC else 1
    return sync


def _head_box(head: bytes, at: int, offset: int) -> Box | None:
    """Header of the box at head[at:] (file offset `offset`); None if head is too short."""
    if len(head) - at < 8:
        return None
    size, typ = struct.unpack_from(">I4s", head, at)
    header = 8
    if size == 1:
        if len(head) - at < 16:
            return None
        size, header = struct.unpack_from(">Q", head, at + 8)[0], 16
    elif size == 0:
        raise Mp4Error(f"box {typ!r} at {offset} extends to the end of the file")
    if size < header:
        raise Mp4Error(f"box {typ!r} at {offset} has a bad size {size}")
    return Box(typ, offset, size, header)


def read_fragment(f: BinaryIO, offset: int, file_size: int, init: InitSegment,
                  head: bytes | None = None) -> Fragment | None:
    """The complete moof + mdat at `offset`, None if it is not all in the file yet.

    `head` may hold bytes already read from `offset`. Raises Mp4Error if the
    bytes there are not a valid fragment.
    """
    fd = f.fileno()
    if head is None:
        head = os.pread(fd, min(FRAGMENT_PREFETCH, max(file_size - offset, 0)), offset)
    moof = _head_box(head, 0, offset)
    if moof is None:
        return None
    if moof.type != b"moof":
        raise Mp4Error(f"expected moof at {offset}, found {moof.type!r}")
    if moof.size > MP4_MAX_HEADER_BOX:
        raise Mp4Error(f"moof at {offset} is implausibly large ({moof.size} bytes)")
    if moof.end + 8 > file_size:
        return None
    if len(head) < moof.size + 16:
        head = os.pread(fd, min(moof.size + 16, file_size - offset), offset)
    mdat = _head_box(head, moof.size, moof.end)
    if mdat is None:
        return None
    if mdat.type != b"mdat":
        raise Mp4Error(f"moof at {offset} is not followed by an mdat")
    if mdat.end > file_size:
        return None
    frag = parse_moof(head[:moof.size], offset, init)
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

    @property
    def duration_us(self) -> int:
        """Media duration of the complete fragments."""
        return sum(f.duration for f in self.fragments) * 1_000_000 // self.init.timescale

    @property
    def frames(self) -> int:
        return sum(f.count for f in self.fragments)


def iter_segment_fragments(f: BinaryIO, init: InitSegment, file_size: int,
                           state: dict | None = None, start: int | None = None) -> Iterator[Fragment]:
    """Yield complete fragments in file order; stop at the end of the valid prefix.

    `state` (optional) receives "complete_end" and "problem". `start`: the
    offset to begin at (a box boundary, such as an earlier scan's complete_end)
    instead of the end of the init segment.
    """
    state = {} if state is None else state
    pos = init.end if start is None else start
    state["complete_end"], state["problem"] = pos, None
    fd = f.fileno()
    while pos < file_size:
        try:
            head = os.pread(fd, min(FRAGMENT_PREFETCH, file_size - pos), pos)
            box = _head_box(head, 0, pos)
            if box is None or box.end > file_size:
                state["problem"] = f"incomplete box at {pos}"
                return
            if box.type not in TOP_LEVEL_AFTER_INIT:
                state["problem"] = f"unexpected box {box.type!r} at {pos}"
                return
            if box.type == b"moof":
                frag = read_fragment(f, pos, file_size, init, head)
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
    """Parse the whole segment (init + every complete fragment).

    Safe on a file ffmpeg is still writing: its size is read once, and only
    fragments wholly inside it are returned (a moov not yet complete raises
    Mp4Error, like a broken one).
    """
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        init = read_init(f, size)
        state: dict = {}
        fragments = list(iter_segment_fragments(f, init, size, state))
    return SegmentScan(init, fragments, state["complete_end"], size, state["problem"])


def rescan_segment(path: Path, earlier: SegmentScan | None) -> SegmentScan:
    """scan_segment() of a file that only grows (the segment ffmpeg is writing).

    With an earlier scan of the same file (no shorter now), only what follows
    its valid prefix is read.
    """
    if earlier is not None:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size >= earlier.file_size:
                state: dict = {}
                more = list(iter_segment_fragments(f, earlier.init, size, state,
                                                   earlier.complete_end))
                return SegmentScan(earlier.init, earlier.fragments + more, state["complete_end"],
                                   size, state["problem"])
    return scan_segment(path)


def presentation_offsets(frag: Fragment) -> Iterator[int]:
    """Each sample's presentation time relative to the fragment's base_dts."""
    dts = 0
    for duration, cto in zip(frag.durations, frag.ctos):
        yield dts + cto
        dts += duration
