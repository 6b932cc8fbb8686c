"""Live view: follow the segment being written and stream it as one fMP4 for MSE.

follow() yields the init segment (ftyp + moov) of the file being written, then
every moof + mdat as soon as the whole fragment is in the file, and carries on
into the next segment file when the recorder reports a new current segment.

Across segment boundaries the stream stays one continuous MSE timeline: ffmpeg
starts every segment's decode times at 0 (-reset_timestamps), so the tfdt of
each fragment of a later file is rewritten (in the in-memory moof; tfdt is
made 64-bit if it has to grow, fixing the moof/traf sizes and trun data
offsets) to continue where the previous fragment ended. The init segment is
sent again only if the new file's format differs (resolution, codec
parameters, timescale); MSE accepts a new init segment mid-stream.

Playback starts at the newest fragment that begins with a keyframe, so the
picture appears at once. A fragment is sent when its last byte is in the file;
ffmpeg puts it there at once only with `flush_packets=1` in the segment
muxer's -segment_format_options (otherwise its 32 KiB output buffer holds the
tail of each fragment until more video arrives). The stream ends when nothing new arrives for
limits.LIVE_IDLE_TIMEOUT_S (recording stopped); the client reconnects.
"""

import logging
import os
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

from recorder.limits import LIVE_IDLE_TIMEOUT_S, LIVE_POLL_S
from recorder.mp4 import (TRUN_DATA_OFFSET, InitSegment, Mp4Error, find_child, full_box,
                          iter_boxes, parse_box_header, read_file_box, read_fragment, read_init)

logger = logging.getLogger(__name__)


@dataclass
class _Followed:
    """The segment file being followed."""

    rel: str
    handle: BinaryIO
    init: InitSegment
    pos: int                    # next byte to look at
    shift: int | None = None    # added to this file's decode times
    broken: bool = False        # unparseable from pos on: wait for the next segment


@dataclass
class _Timeline:
    """Where the output stream's decode time stands."""

    init: InitSegment | None = None
    next_dts: int = 0
    last_progress: float = field(default_factory=time.monotonic)


def follow(picorder_dir: Path, camera: str, stream: str,
           current_segment_fn: Callable[[], str | None], poll: float = LIVE_POLL_S,
           idle_timeout: float = LIVE_IDLE_TIMEOUT_S,
           clock: Callable[[], float] = time.monotonic,
           sleep: Callable[[float], None] = time.sleep) -> Iterator[bytes]:
    """Bytes of a live fMP4 stream of camera/stream (see the module docstring)."""
    picorder_dir = Path(picorder_dir)
    line = _Timeline(last_progress=clock())
    current: _Followed | None = None
    try:
        while clock() - line.last_progress < idle_timeout:
            rel = current_segment_fn()
            if rel and (current is None or rel != current.rel):
                opened = _open(picorder_dir, rel, live_start=current is None)
                if opened is not None:
                    if current is not None:
                        yield from _drain(current, line)     # the old file is complete now
                        current.handle.close()
                    current = opened
                    yield from _start_file(current, line)
                    line.last_progress = clock()
            if current is not None:
                sent = False
                for piece in _drain(current, line):
                    sent = True
                    yield piece
                if sent:
                    line.last_progress = clock()
                    continue
            sleep(poll)
        logger.info("live %s/%s: nothing new for %.0f s, ending the stream", camera, stream,
                    idle_timeout)
    finally:
        if current is not None:
            current.handle.close()


def _open(picorder_dir: Path, rel: str, live_start: bool) -> _Followed | None:
    """Open a segment once its init segment is complete; None to retry later."""
    path = picorder_dir / rel
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        return None
    try:
        size = os.fstat(handle.fileno()).st_size
        init = read_init(handle, size)
    except Mp4Error:
        handle.close()
        return None
    pos = _live_start_offset(handle, init, size) if live_start else init.end
    return _Followed(rel, handle, init, pos)


def _live_start_offset(handle: BinaryIO, init: InitSegment, size: int) -> int:
    """Offset of the newest complete fragment that starts with a keyframe."""
    pos, start = init.end, init.end
    while True:
        try:
            frag = read_fragment(handle, pos, size, init)
        except Mp4Error:
            return start
        if frag is None:
            return start
        if frag.count and frag.sync[0]:
            start = pos
        pos = frag.end


def _start_file(current: _Followed, line: _Timeline) -> Iterator[bytes]:
    """Send the init segment if the format is new; convert the timeline's scale."""
    if line.init is None or not line.init.same_format(current.init):
        if line.init is not None and line.init.timescale != current.init.timescale:
            line.next_dts = line.next_dts * current.init.timescale // line.init.timescale
        first = line.init is None
        line.init = current.init
        yield current.init.data
        if first:
            return
    logger.debug("live: following %s", current.rel)


def _drain(current: _Followed, line: _Timeline) -> Iterator[bytes]:
    """Yield every complete fragment after current.pos (and skip other complete boxes)."""
    handle = current.handle
    size = os.fstat(handle.fileno()).st_size
    while current.pos < size and not current.broken:
        try:
            box = read_file_box(handle, current.pos, size)
            if box is None or box.end > size:
                return
            if box.type != b"moof":
                current.pos = box.end
                continue
            frag = read_fragment(handle, current.pos, size, current.init)
        except Mp4Error:
            logger.warning("live: %s is damaged at %d; waiting for the next segment",
                           current.rel, current.pos)
            current.broken = True
            return
        if frag is None:
            return
        handle.seek(frag.offset)
        data = handle.read(frag.end - frag.offset)
        if current.shift is None:
            current.shift = (line.next_dts - frag.base_dts) if line.next_dts else 0
        if current.shift:
            data = set_tfdt(data, frag.base_dts + current.shift)
        line.next_dts = frag.base_dts + current.shift + frag.duration
        current.pos = frag.end
        yield data


def set_tfdt(fragment: bytes, base_dts: int) -> bytes:
    """A copy of moof+mdat with the video traf's tfdt set to base_dts (64-bit if needed)."""
    data = bytearray(fragment)
    moof = parse_box_header(data, 0, len(data))
    if moof.header != 8:
        raise Mp4Error("moof with a 64-bit size")
    for traf in iter_boxes(data, moof.payload, moof.end):
        if traf.type != b"traf":
            continue
        tfdt = find_child(data, traf, b"tfdt")
        if tfdt is None:
            continue
        version, flags = full_box(data, tfdt)
        if version == 1:
            struct.pack_into(">Q", data, tfdt.payload + 4, base_dts)
        elif base_dts <= 0xFFFFFFFF:
            struct.pack_into(">I", data, tfdt.payload + 4, base_dts)
        else:
            return set_tfdt(_widen_tfdt(data, moof, traf, tfdt, flags), base_dts)
    return bytes(data)


def _widen_tfdt(data: bytearray, moof, traf, tfdt, flags: int) -> bytes:
    """Turn a version-0 tfdt into version 1 (4 bytes longer), keeping data offsets right."""
    for trun in iter_boxes(data, traf.payload, traf.end):
        if trun.type == b"trun" and full_box(data, trun)[1] & TRUN_DATA_OFFSET:
            pos = trun.payload + 8
            struct.pack_into(">i", data, pos, struct.unpack_from(">i", data, pos)[0] + 4)
    old = struct.unpack_from(">I", data, tfdt.payload + 4)[0]
    wide = struct.pack(">I4sIQ", 20, b"tfdt", (1 << 24) | flags, old)
    struct.pack_into(">I", data, traf.offset, traf.size + 4)
    struct.pack_into(">I", data, moof.offset, moof.size + 4)
    return bytes(data[:tfdt.offset]) + wide + bytes(data[tfdt.end:])
