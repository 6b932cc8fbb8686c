"""What index.db stores of a segment file: its summary (probe_segment) and its sample tables.

The sample tables are stored at ingest (SegmentTables), so that a range movie
need not read every moof again (recorder.export); the fMP4 reading itself is
recorder.mp4's.
"""

import hashlib
import os
import struct
import sys
import zlib
from array import array
from dataclasses import dataclass, field
from itertools import accumulate
from pathlib import Path
from typing import NamedTuple

from recorder.mp4 import (Fragment, InitSegment, iter_segment_fragments, presentation_offsets,
                          read_init)


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
    tables: bytes = field(default=b"", repr=False)      # encode_tables() of the valid prefix

    @property
    def torn(self) -> bool:
        return self.complete_end < self.file_size


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
        writer = TablesWriter()
        for frag in iter_segment_fragments(f, init, size, state):
            writer.add(frag)
            if first_pts is None and frag.count:
                first_pts = frag.base_dts + min(presentation_offsets(frag))
            total += frag.duration
            frames += frag.count
            count += 1
    scale = init.timescale
    return SegmentInfo(duration_us=total * 1_000_000 // scale, frames=frames, codec=init.codec,
                       width=init.width, height=init.height, timescale=scale,
                       complete_end=state["complete_end"], file_size=size,
                       first_pts_us=(first_pts or 0) * 1_000_000 // scale, fragments=count,
                       tables=writer.encode(init, size, state["complete_end"]))


# A segment's sample tables, stored in its index row at ingest so that a range MP4
# can be built without reading every moof again. Layout (little-endian):
#   header  TABLES_HEADER: magic, version, init key (8 bytes), file size, valid prefix,
#           counts of fragments, samples, trun runs, duration and composition-offset entries
#   per fragment: moof offset Q, end Q, tfdt base Q, moof size I, tfdt offset i, runs I
#   per run: absolute file offset Q, samples I
#   per sample: size I
#   durations and composition offsets run-length coded: (count I, value I / i) columns
#   per sample: 1 byte, 1 = keyframe
#   CRC-32 of all of the above (I)
# Everything after the header is stored deflated (zlib), which makes it about 2.5x smaller.
TABLES_MAGIC = b"PCST"
TABLES_VERSION = 1
TABLES_HEADER = struct.Struct("<4sHH8sQQIIIII")
_CRC = struct.Struct("<I")
TABLES_ZLIB_LEVEL = 1           # level 6 saves 2 % more and takes 3x longer


class StaleTables(ValueError):
    """Stored sample tables that are corrupt, of another version, or not of this file."""


@dataclass
class StoredTables:
    """Decoded sample tables of a segment (see decode_tables)."""

    init_key: bytes
    file_size: int
    complete_end: int
    fragments: list


def init_key(init: InitSegment) -> bytes:
    """8 bytes identifying what the samples depend on: sample entry, timescale, track, trex."""
    h = hashlib.sha256(init.sample_entry)
    h.update(struct.pack("<6I", init.timescale, init.track_id, init.default_duration,
                         init.default_size, init.default_flags, init.width << 16 | init.height))
    return h.digest()[:8]


def _le(arr: array) -> bytes:
    if sys.byteorder == "big":
        arr = array(arr.typecode, arr)
        arr.byteswap()
    return arr.tobytes()


class TablesWriter:
    """Accumulates the fragments of a segment and encodes them (encode_tables)."""

    def __init__(self):
        self.frag_offset, self.frag_end, self.frag_dts = array("Q"), array("Q"), array("Q")
        self.frag_moof, self.frag_tfdt, self.frag_runs = array("I"), array("i"), array("I")
        self.run_start, self.run_count = array("Q"), array("I")
        self.sizes = array("I")
        self.durations = RunLengths("I")
        self.ctos = RunLengths("i")
        self.sync = bytearray()

    def add(self, frag: Fragment) -> None:
        self.frag_offset.append(frag.offset)
        self.frag_end.append(frag.end)
        self.frag_dts.append(frag.base_dts)
        self.frag_moof.append(frag.moof_size)
        self.frag_tfdt.append(frag.tfdt_offset)
        self.frag_runs.append(len(frag.runs))
        for start, count in frag.runs:
            self.run_start.append(start)
            self.run_count.append(count)
        self.sizes.extend(frag.sizes)
        self.durations.extend(frag.durations)
        self.ctos.extend(frag.ctos)
        self.sync.extend(frag.sync)

    def encode(self, init: InitSegment, file_size: int, complete_end: int) -> bytes:
        head = TABLES_HEADER.pack(TABLES_MAGIC, TABLES_VERSION, 0, init_key(init), file_size,
                                  complete_end, len(self.frag_offset), len(self.sizes),
                                  len(self.run_start), len(self.durations.counts),
                                  len(self.ctos.counts))
        body = b"".join([head] + [_le(a) for a in (
            self.frag_offset, self.frag_end, self.frag_dts, self.frag_moof, self.frag_tfdt,
            self.frag_runs, self.run_start, self.run_count, self.sizes,
            self.durations.counts, self.durations.values, self.ctos.counts,
            self.ctos.values)] + [bytes(self.sync)])
        body += _CRC.pack(zlib.crc32(body))
        return head + zlib.compress(body[len(head):], TABLES_ZLIB_LEVEL)


class RunLengths:
    """(count, value) pairs of a per-sample column (stts/ctts-like), in two flat arrays."""

    def __init__(self, typecode: str):
        self.counts, self.values = array("I"), array(typecode)

    def __len__(self) -> int:
        return len(self.counts)

    def extend(self, values: array) -> None:
        if not values:
            return
        if values.count(values[0]) == len(values):
            self._add(len(values), values[0])
            return
        for value in values:
            self._add(1, value)

    def _add(self, count: int, value: int) -> None:
        if self.values and self.values[-1] == value:
            self.counts[-1] += count
        else:
            self.counts.append(count)
            self.values.append(value)

    def expand(self) -> array:
        out = array(self.values.typecode)
        for count, value in zip(self.counts, self.values):
            out.extend(array(self.values.typecode, [value]) * count)
        return out


def encode_tables(init: InitSegment, fragments: list, file_size: int, complete_end: int) -> bytes:
    """The stored form of a segment's sample tables (for Segment.tables)."""
    writer = TablesWriter()
    for frag in fragments:
        writer.add(frag)
    return writer.encode(init, file_size, complete_end)


def _columns_le(blob: bytes, pos: int, spec: list[tuple[str, int]]) -> tuple[list, int]:
    out = []
    for typecode, n in spec:
        arr = array(typecode)
        end = pos + arr.itemsize * n
        if end > len(blob):
            raise StaleTables("stored sample tables are truncated")
        arr.frombytes(blob[pos:end])
        if sys.byteorder == "big":
            arr.byteswap()
        out.append(arr)
        pos = end
    return out, pos


def decode_tables(blob: bytes, *, join: bool = False) -> StoredTables:
    """Decode stored sample tables; StaleTables if corrupt or of another version.

    With join=True, fragments after the first whose decode times follow on
    without a gap are merged into one Fragment (runs kept apart), which is
    all a range export needs and much cheaper to walk; the first fragment
    stays on its own. Offsets and ends of a merged Fragment are its first
    moof's and its last mdat's.
    """
    if len(blob) < TABLES_HEADER.size + _CRC.size:
        raise StaleTables("stored sample tables are too short")
    (magic, version, _flags, key, file_size, complete_end, n_frags, n_samples, n_runs,
     n_dur, n_cto) = TABLES_HEADER.unpack_from(blob, 0)
    if magic != TABLES_MAGIC or version != TABLES_VERSION:
        raise StaleTables(f"stored sample tables of another format ({magic!r} v{version})")
    try:
        blob = blob[:TABLES_HEADER.size] + zlib.decompress(blob[TABLES_HEADER.size:])
    except zlib.error as exc:
        raise StaleTables(f"stored sample tables do not inflate: {exc}") from exc
    if _CRC.unpack_from(blob, len(blob) - 4)[0] != zlib.crc32(memoryview(blob)[:-4]):
        raise StaleTables("stored sample tables fail their checksum")
    (offsets, ends, dts, moofs, tfdts, nruns, run_start, run_count, sizes, dur_n, dur_v,
     cto_n, cto_v), pos = _columns_le(blob, TABLES_HEADER.size, [
         ("Q", n_frags), ("Q", n_frags), ("Q", n_frags), ("I", n_frags), ("i", n_frags),
         ("I", n_frags), ("Q", n_runs), ("I", n_runs), ("I", n_samples),
         ("I", n_dur), ("I", n_dur), ("I", n_cto), ("i", n_cto)])
    sync = blob[pos:pos + n_samples]
    durations = RunLengths("I")
    durations.counts, durations.values = dur_n, dur_v
    ctos = RunLengths("i")
    ctos.counts, ctos.values = cto_n, cto_v
    durations, ctos = durations.expand(), ctos.expand()
    if (pos + n_samples + 4 != len(blob) or sum(nruns) != n_runs
            or sum(run_count) != n_samples or len(durations) != n_samples
            or len(ctos) != n_samples):
        raise StaleTables("stored sample tables are inconsistent")
    cols = _Columns(offsets, ends, dts, moofs, tfdts, nruns, run_start, run_count, sizes,
                    durations, ctos, sync)
    return StoredTables(key, file_size, complete_end, _fragments(cols, join))


class _Columns(NamedTuple):
    offsets: array
    ends: array
    dts: array
    moofs: array
    tfdts: array
    nruns: array
    run_start: array
    run_count: array
    sizes: array
    durations: array
    ctos: array
    sync: bytes


def _fragments(c: _Columns, join: bool) -> list:
    """Fragments (or, with join, gapless stretches of fragments) of decoded columns."""
    out = []
    runs_before = list(accumulate(c.nruns, initial=0))              # per fragment
    samples_before = list(accumulate(c.run_count, initial=0))       # per run
    time_before = list(accumulate(c.durations, initial=0))          # per sample
    groups = []                 # [first, last, run, run end, sample, sample end]
    for i in range(len(c.offsets)):
        run, run_end = runs_before[i], runs_before[i + 1]
        sample, sample_end = samples_before[run], samples_before[run_end]
        if join and i > 1:
            prev = groups[-1]
            previous_start = samples_before[runs_before[i - 1]]
            if c.dts[i - 1] + time_before[sample] - time_before[previous_start] == c.dts[i]:
                prev[1], prev[3], prev[5] = i, run_end, sample_end
                continue
        groups.append([i, i, run, run_end, sample, sample_end])
    for first, last, r0, r1, s0, s1 in groups:
        out.append(Fragment(offset=c.offsets[first], moof_size=c.moofs[first],
                            end=c.ends[last], base_dts=c.dts[first], sizes=c.sizes[s0:s1],
                            durations=c.durations[s0:s1], ctos=c.ctos[s0:s1],
                            sync=bytearray(c.sync[s0:s1]),
                            runs=list(zip(c.run_start[r0:r1], c.run_count[r0:r1])),
                            tfdt_offset=c.tfdts[first]))
    return out
