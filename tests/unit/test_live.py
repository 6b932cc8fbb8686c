"""recorder.live: following growing segment files with a deterministic fake writer."""

import struct

import pytest

from helpers.mp4 import decode_errors, ffmpeg_segments, ffprobe_packets, require_ffmpeg
from recorder import live, mp4
from recorder.index import tables


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    require_ffmpeg()
    root = tmp_path_factory.mktemp("livesrc")
    return {
        "a": ffmpeg_segments(root / "a", seconds=6, segment_s=3, bframes=2),
        "big": ffmpeg_segments(root / "big", seconds=2, segment_s=2, size="640x360"),
    }


class FakeWriter:
    """Writes segment files piece by piece, one step per follow() sleep."""

    def __init__(self, pdir, files, piece=5000):
        self.pdir, self.piece = pdir, piece
        self.queue = [(f"cam1/main/2026/11/21/12-00-{3 * n:02d}.mp4", src.read_bytes())
                      for n, src in enumerate(files)]
        self.current = None
        self.written = 0
        self.now = 0.0
        self.steps = 0

    def current_segment(self):
        return self.current

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds
        self.steps += 1
        if not self.queue:
            return
        rel, data = self.queue[0]
        if self.current != rel:
            (self.pdir / rel).parent.mkdir(parents=True, exist_ok=True)
            (self.pdir / rel).write_bytes(b"")
            self.current, self.written = rel, 0
        self.written = min(len(data), self.written + self.piece)
        with open(self.pdir / rel, "r+b") as f:
            f.seek(0)
            f.write(data[:self.written])
        if self.written == len(data):
            self.queue.pop(0)


def run_follow(tmp_path, files, piece=5000, idle=2.0):
    writer = FakeWriter(tmp_path, files, piece)
    out = b"".join(live.follow(tmp_path, "cam1", "main", writer.current_segment, poll=0.05,
                               idle_timeout=idle, clock=writer.clock, sleep=writer.sleep))
    return out, writer


def test_follows_across_a_segment_boundary(tmp_path, sources):
    files = sources["a"]
    out, _ = run_follow(tmp_path, files)
    stream = tmp_path / "live.mp4"
    stream.write_bytes(out)
    assert decode_errors(stream) == ""
    types = [b.type for b in mp4.iter_boxes(out)]
    assert types[:2] == [b"ftyp", b"moov"] and types.count(b"moov") == 1
    packets = ffprobe_packets(stream)
    expected = sum(tables.probe_segment(f).frames for f in files)
    assert len(packets) == expected                    # every frame of both files
    dts = [int(p["dts"]) for p in packets]
    assert all(b > a for a, b in zip(dts, dts[1:])), "decode times must keep increasing"
    # The sample bytes are exactly the files' bytes.
    first = files[0].read_bytes()
    assert out.startswith(first[:mp4.scan_segment(files[0]).init.end])


def test_live_start_is_the_newest_keyframe_fragment(tmp_path, sources):
    """A client joining mid-segment starts at the latest keyframe, not at the file start."""
    src = sources["a"][0]
    scan = mp4.scan_segment(src)
    rel = "cam1/main/2026/11/21/12-00-00.mp4"
    (tmp_path / rel).parent.mkdir(parents=True)
    (tmp_path / rel).write_bytes(src.read_bytes()[:scan.fragments[2].end])
    now = [0.0]

    def sleep(s):
        now[0] += s
    out = b"".join(live.follow(tmp_path, "cam1", "main", lambda: rel, idle_timeout=1,
                               clock=lambda: now[0], sleep=sleep))
    data = src.read_bytes()
    assert out == data[:scan.init.end] + data[scan.fragments[2].offset:scan.fragments[2].end]


def test_new_format_resends_the_init_segment(tmp_path, sources):
    files = [sources["a"][0], sources["big"][0]]
    out, _ = run_follow(tmp_path, files, piece=20000)
    types = [b.type for b in mp4.iter_boxes(out)]
    assert types.count(b"moov") == 2
    second = types.index(b"moov", 2)
    assert types[second - 1] == b"ftyp" and types[second + 1] == b"moof"
    # The second part, on its own, decodes, and its times continue the first part's.
    boxes = list(mp4.iter_boxes(out))
    tail = out[boxes[second - 1].offset:]
    path = tmp_path / "tail.mp4"
    path.write_bytes(tail)
    assert decode_errors(path) == ""
    frames_a = tables.probe_segment(files[0])
    first_tfdt = mp4.scan_segment(path).fragments[0].base_dts
    assert first_tfdt == frames_a.duration_us * frames_a.timescale // 1_000_000


def test_stream_ends_when_nothing_new_arrives(tmp_path):
    now = [0.0]

    def sleep(s):
        now[0] += s
    out = list(live.follow(tmp_path, "cam1", "main", lambda: None, idle_timeout=3,
                           clock=lambda: now[0], sleep=sleep))
    assert out == [] and 3 <= now[0] < 3.5


def _moof_with_tfdt_v0(value, data_offset=100):
    tfhd = struct.pack(">I4sII", 16, b"tfhd", mp4.TFHD_DEFAULT_BASE_IS_MOOF, 1)
    tfdt = struct.pack(">I4sII", 16, b"tfdt", 0, value)
    trun = struct.pack(">I4sIIi", 20, b"trun", mp4.TRUN_DATA_OFFSET, 0, data_offset)
    traf = struct.pack(">I4s", 8 + len(tfhd + tfdt + trun), b"traf") + tfhd + tfdt + trun
    moof = struct.pack(">I4s", 8 + len(traf), b"moof") + traf
    return moof + struct.pack(">I4s", 12, b"mdat") + b"DATA"


def test_set_tfdt_in_place_and_widened():
    frag = _moof_with_tfdt_v0(5)
    same = live.set_tfdt(frag, 1234)
    assert len(same) == len(frag)
    assert struct.unpack_from(">I", same, same.find(b"tfdt") + 8)[0] == 1234
    wide = live.set_tfdt(frag, 1 << 40)
    assert len(wide) == len(frag) + 4
    moof = mp4.parse_box_header(wide, 0, len(wide))
    traf = mp4.find_child(wide, moof, b"traf")
    tfdt = mp4.find_child(wide, traf, b"tfdt")
    assert mp4.full_box(wide, tfdt)[0] == 1
    assert struct.unpack_from(">Q", wide, tfdt.payload + 4)[0] == 1 << 40
    trun = mp4.find_child(wide, traf, b"trun")
    assert struct.unpack_from(">i", wide, trun.payload + 8)[0] == 104
    assert moof.end + 8 == len(wide) - 4 and wide.endswith(b"DATA")


def test_damaged_file_is_left_for_the_next_segment(tmp_path, sources):
    """Garbage in the followed file stops reading it; the next segment is followed normally."""
    a, b = sources["a"][0], sources["a"][1]
    scan_a = mp4.scan_segment(a)
    bad = a.read_bytes()[:scan_a.fragments[0].end] + b"\x00\x00\x00\x10junk" + bytes(200)
    rels = ["cam1/main/x/a.mp4", "cam1/main/x/b.mp4"]
    (tmp_path / "cam1/main/x").mkdir(parents=True)
    (tmp_path / rels[0]).write_bytes(bad)
    calls, now = [0], [0.0]

    def current():
        calls[0] += 1
        if calls[0] == 5:
            (tmp_path / rels[1]).write_bytes(b.read_bytes())
        return rels[0] if calls[0] < 5 else rels[1]

    def sleep(s):
        now[0] += s
    out = b"".join(live.follow(tmp_path, "cam1", "main", current, idle_timeout=1,
                               clock=lambda: now[0], sleep=sleep))
    types = [box.type for box in mp4.iter_boxes(out)]
    assert b"junk" not in types
    assert types.count(b"moof") == 1 + len(mp4.scan_segment(b).fragments)
    path = tmp_path / "out.mp4"
    path.write_bytes(out)
    assert decode_errors(path) == ""
