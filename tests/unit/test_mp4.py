"""recorder.mp4 against real ffmpeg segments (ffprobe is the oracle)."""

import hashlib
import shutil
import struct
import subprocess
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from helpers.mp4 import (decode_errors, ffmpeg_segments, ffprobe_packets, ffprobe_stream,
                         require_ffmpeg)
from recorder import mp4
from recorder.index import tables


@pytest.fixture(scope="module")
def seg_dir(tmp_path_factory):
    require_ffmpeg()
    root = tmp_path_factory.mktemp("mp4src")
    ffmpeg_segments(root / "plain", seconds=6, segment_s=3, bframes=0)
    ffmpeg_segments(root / "bframes", seconds=6, segment_s=3, bframes=2)
    ffmpeg_segments(root / "hevc", seconds=2, segment_s=2, codec="libx265", bframes=2,
                    size="352x288")
    return root


def samples_of(scan):
    """(pts in timescale, dts, size, keyframe) per sample, in decode order."""
    out = []
    for frag in scan.fragments:
        dts = frag.base_dts
        for i in range(frag.count):
            out.append((dts + frag.ctos[i], dts, frag.sizes[i], bool(frag.sync[i])))
            dts += frag.durations[i]
    return out


@pytest.mark.parametrize("kind", ["plain", "bframes", "hevc"])
def test_samples_match_ffprobe(seg_dir, kind):
    path = sorted((seg_dir / kind).glob("*.mp4"))[0]
    scan = mp4.scan_segment(path)
    packets = ffprobe_packets(path)
    ours = samples_of(scan)
    assert len(ours) == len(packets) > 0
    for (pts, dts, size, key), pkt in zip(ours, packets):
        assert size == int(pkt["size"])
        assert key == ("K" in pkt["flags"])
        assert pts == int(pkt["pts"]) and dts == int(pkt["dts"])
    assert scan.complete_end == scan.file_size and scan.problem is None


@pytest.mark.parametrize("kind", ["plain", "bframes", "hevc"])
def test_probe_segment_matches_ffprobe(seg_dir, kind):
    path = sorted((seg_dir / kind).glob("*.mp4"))[0]
    info = tables.probe_segment(path)
    stream = ffprobe_stream(path)
    assert info.codec == stream["codec_name"]
    assert (info.width, info.height) == (stream["width"], stream["height"])
    assert info.frames == int(stream["nb_read_packets"])
    assert info.duration_us == pytest.approx(float(stream["duration"]) * 1e6, abs=1)
    assert info.first_pts_us == pytest.approx(float(stream["start_time"]) * 1e6, abs=1)
    assert Fraction(stream["time_base"]) == Fraction(1, info.timescale)
    assert info.complete_end == info.file_size == path.stat().st_size
    assert not info.torn


@pytest.mark.parametrize("kind", ["bframes", "hevc"])
def test_sample_offsets_point_at_the_sample_bytes(seg_dir, kind):
    """Cutting each sample out by our offsets gives the packets ffmpeg demuxes (MD5 each)."""
    path = sorted((seg_dir / kind).glob("*.mp4"))[0]
    scan = mp4.scan_segment(path)
    data = path.read_bytes()
    ours = [hashlib.md5(data[off:off + size]).hexdigest() for frag in scan.fragments
            for off, size in zip(frag.sample_offsets(), frag.sizes)]
    text = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-c", "copy",
                           "-f", "framemd5", "-"], capture_output=True, text=True,
                          check=True).stdout
    theirs = [line.rsplit(",", 1)[1].strip() for line in text.splitlines()
              if line and not line.startswith("#")]
    assert ours == theirs and len(ours) >= 30


def test_torn_file_complete_end_is_a_fragment_boundary(seg_dir, tmp_path):
    src = sorted((seg_dir / "plain").glob("*.mp4"))[0]
    scan = mp4.scan_segment(src)
    second = scan.fragments[1]
    torn = tmp_path / "torn.mp4"
    torn.write_bytes(src.read_bytes()[:second.end - 10])
    info = tables.probe_segment(torn)
    assert info.torn
    assert info.complete_end == scan.fragments[0].end
    assert info.fragments == 1 and info.frames == scan.fragments[0].count


def test_zero_filled_tail_ends_the_valid_prefix(seg_dir, tmp_path):
    """After a power cut a file can end in zeroed blocks; they are not a box."""
    src = sorted((seg_dir / "plain").glob("*.mp4"))[0]
    scan = mp4.scan_segment(src)
    bad = tmp_path / "zeros.mp4"
    bad.write_bytes(src.read_bytes()[:scan.fragments[0].end] + bytes(4096))
    info = tables.probe_segment(bad)
    assert info.complete_end == scan.fragments[0].end and info.fragments == 1


def test_broken_init_raises(tmp_path, seg_dir):
    src = sorted((seg_dir / "plain").glob("*.mp4"))[0]
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(src.read_bytes()[:100])
    with pytest.raises(mp4.Mp4Error):
        tables.probe_segment(bad)
    bad.write_bytes(b"\x00\x00\x00\x08free" + src.read_bytes())
    with pytest.raises(mp4.Mp4Error):
        tables.probe_segment(bad)
    bad.write_bytes(b"")
    with pytest.raises(mp4.Mp4Error):
        tables.probe_segment(bad)


def _to_largesize(data: bytes) -> bytes:
    """Rewrite every mdat with a 64-bit largesize header, fixing trun data offsets."""
    out = bytearray()
    pos = 0
    while pos < len(data):
        size, typ = struct.unpack_from(">I4s", data, pos)
        box = bytearray(data[pos:pos + size])
        if typ == b"moof":
            trun = box.find(b"trun") - 4
            flags = struct.unpack_from(">I", box, trun + 8)[0] & 0xFFFFFF
            assert flags & mp4.TRUN_DATA_OFFSET
            off = struct.unpack_from(">i", box, trun + 16)[0]
            struct.pack_into(">i", box, trun + 16, off + 8)
        elif typ == b"mdat":
            box = struct.pack(">I4sQ", 1, b"mdat", size + 8) + box[8:]
        out += box
        pos += size
    return bytes(out)


def test_largesize_boxes(seg_dir, tmp_path):
    src = sorted((seg_dir / "bframes").glob("*.mp4"))[0]
    big = tmp_path / "large.mp4"
    big.write_bytes(_to_largesize(src.read_bytes()))
    assert decode_errors(big) == ""           # ffmpeg agrees the rewrite is valid
    ours, theirs = mp4.scan_segment(big), mp4.scan_segment(src)
    assert samples_of(ours) == samples_of(theirs)
    data_big, data_src = big.read_bytes(), src.read_bytes()
    for fb, fs in zip(ours.fragments, theirs.fragments):
        for (ob, n), (os_, _) in zip(fb.runs, fs.runs):
            length = sum(fs.sizes)
            assert data_big[ob:ob + length] == data_src[os_:os_ + length]


def _box(typ: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), typ) + payload


def test_defaults_from_trex_and_tfhd(seg_dir):
    """A trun with no per-sample fields takes sizes from tfhd and durations/flags from trex."""
    src = sorted((seg_dir / "plain").glob("*.mp4"))[0]
    with open(src, "rb") as f:
        init = mp4.read_init(f)
    init.default_duration, init.default_flags = 1000, mp4.SAMPLE_NON_SYNC
    tfhd = _box(b"tfhd", struct.pack(">II I", mp4.TFHD_DEFAULT_BASE_IS_MOOF | mp4.TFHD_DEFAULT_SIZE,
                                      init.track_id, 500))
    tfdt = _box(b"tfdt", struct.pack(">I Q", 1 << 24, 7_000_000_000))
    trun = _box(b"trun", struct.pack(">I I i I", mp4.TRUN_DATA_OFFSET | mp4.TRUN_FIRST_SAMPLE_FLAGS,
                                      3, 0, 0))
    traf = _box(b"traf", tfhd + tfdt + trun)
    moof = _box(b"moof", _box(b"mfhd", struct.pack(">II", 0, 1)) + traf)
    frag = mp4.parse_moof(moof, 5000, init)
    assert list(frag.sizes) == [500, 500, 500]
    assert list(frag.durations) == [1000, 1000, 1000]
    assert list(frag.sync) == [1, 0, 0]          # first_sample_flags overrides the default
    assert frag.base_dts == 7_000_000_000        # 64-bit tfdt
    assert frag.runs == [(5000, 3)]               # data_offset relative to the moof


def test_signed_composition_offsets_in_trun_v1(seg_dir):
    src = sorted((seg_dir / "plain").glob("*.mp4"))[0]
    with open(src, "rb") as f:
        init = mp4.read_init(f)
    tfhd = _box(b"tfhd", struct.pack(">II", mp4.TFHD_DEFAULT_BASE_IS_MOOF, init.track_id))
    flags = mp4.TRUN_DATA_OFFSET | mp4.TRUN_DURATION | mp4.TRUN_SIZE | mp4.TRUN_CTO
    trun = _box(b"trun", struct.pack(">I I i", (1 << 24) | flags, 2, 100)
                + struct.pack(">IIi", 512, 10, -512) + struct.pack(">IIi", 512, 20, 0))
    moof = _box(b"moof", _box(b"traf", tfhd + trun))
    frag = mp4.parse_moof(moof, 0, init)
    assert list(frag.ctos) == [-512, 0] and list(frag.sizes) == [10, 20]
    assert frag.runs == [(100, 2)]


def test_growing_file_fragment_by_fragment(seg_dir, tmp_path):
    """read_fragment returns None until the whole moof+mdat is in the file."""
    src = sorted((seg_dir / "plain").glob("*.mp4"))[0]
    data = src.read_bytes()
    scan = mp4.scan_segment(src)
    first = scan.fragments[0]
    grow = tmp_path / "grow.mp4"
    for cut in (first.offset + 4, first.offset + first.moof_size, first.end - 1):
        grow.write_bytes(data[:cut])
        with open(grow, "rb") as f:
            assert mp4.read_fragment(f, first.offset, cut, scan.init) is None
    grow.write_bytes(data[:first.end])
    with open(grow, "rb") as f:
        assert mp4.read_fragment(f, first.offset, first.end, scan.init).end == first.end


def test_copy_of_segment_decodes(seg_dir, tmp_path):
    """Sanity: the generated segments themselves decode (the oracle is meaningful)."""
    for path in sorted(seg_dir.rglob("*.mp4")):
        dest = tmp_path / path.name
        shutil.copyfile(path, dest)
        assert decode_errors(dest) == ""


@pytest.mark.parametrize("tfdt_version", [0, 1])
def test_simple_and_general_moof_parsers_agree(seg_dir, tfdt_version):
    """The one-pass parser of the usual layout gives what the general parser gives."""
    src = sorted((seg_dir / "bframes").glob("*.mp4"))[0]
    with open(src, "rb") as f:
        init = mp4.read_init(f)
    tfhd = _box(b"tfhd", struct.pack(">IIII", mp4.TFHD_DEFAULT_BASE_IS_MOOF
                                     | mp4.TFHD_DEFAULT_DURATION | mp4.TFHD_DEFAULT_FLAGS,
                                     init.track_id, 512, mp4.SAMPLE_NON_SYNC))
    tfdt = _box(b"tfdt", struct.pack(">IQ", 1 << 24, 1 << 33) if tfdt_version
                else struct.pack(">II", 0, 123456))
    flags = mp4.TRUN_DATA_OFFSET | mp4.TRUN_FIRST_SAMPLE_FLAGS | mp4.TRUN_SIZE | mp4.TRUN_CTO
    trun = _box(b"trun", struct.pack(">IIiI", flags, 3, 300, 0)
                + struct.pack(">IIIIII", 100, 1024, 50, 2048, 60, 0))
    mfhd = _box(b"mfhd", struct.pack(">II", 0, 7))
    simple = _box(b"moof", mfhd + _box(b"traf", tfhd + tfdt + trun))
    general = _box(b"moof", mfhd + _box(b"traf", tfhd + tfdt + trun) + _box(b"free", b""))
    assert mp4._parse_simple_moof(simple, 1000, init) is not None
    assert mp4._parse_simple_moof(general, 1000, init) is None
    a, b = mp4.parse_moof(simple, 1000, init), mp4.parse_moof(general, 1000, init)
    for field in ("base_dts", "sizes", "durations", "ctos", "sync", "runs", "tfdt_offset"):
        assert getattr(a, field) == getattr(b, field), field
    assert a.base_dts == (1 << 33 if tfdt_version else 123456)
    assert list(a.sync) == [1, 0, 0] and list(a.sizes) == [100, 50, 60]
    assert a.runs == [(1300, 3)] and a.moof_size == len(simple)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)),
                      min_size=1, max_size=6),
       cut=st.floats(0.05, 1.0))
def test_corrupt_files_raise_mp4error_or_parse(seg_dir, tmp_path_factory, edits, cut):
    """Whatever the damage, the reader answers with data or Mp4Error, nothing else."""
    src = sorted((seg_dir / "bframes").glob("*.mp4"))[0]
    data = bytearray(src.read_bytes()[:int(len(src.read_bytes()) * cut)])
    header_zone = 1200          # most edits land in the init segment and the first moof
    for where, value in edits:
        data[int(where * min(len(data), header_zone))] = value
    path = tmp_path_factory.mktemp("fuzz") / "x.mp4"
    path.write_bytes(bytes(data))
    try:
        info = tables.probe_segment(path)
    except mp4.Mp4Error:
        return
    assert 0 <= info.complete_end <= info.file_size
    scan = mp4.scan_segment(path)
    for frag in scan.fragments:
        for start, count in frag.runs:
            assert start >= frag.offset and count > 0
