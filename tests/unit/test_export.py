"""recorder.export: range MP4s from real ffmpeg segments and a real index.db."""

import os
import random
import struct
import subprocess
import tracemalloc

import pytest

from helpers.mp4 import (decode_errors, expected_packets, ffmpeg_segments, ffprobe_stream,
                         install_segments, require_ffmpeg)
from recorder import export, mp4
from recorder.index import Segment, queries, tables
from recorder.limits import EXPORT_MAX_S

FPS = 15
FRAME_US = 1_000_000 // FPS
T0 = 1_795_000_000_000_000


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    require_ffmpeg()
    root = tmp_path_factory.mktemp("expsrc")
    return {
        "plain": ffmpeg_segments(root / "plain", seconds=12, segment_s=3, fps=FPS, gop=FPS),
        "bframes": ffmpeg_segments(root / "bframes", seconds=12, segment_s=3, fps=FPS, gop=FPS,
                                   bframes=2),
        "hevc": ffmpeg_segments(root / "hevc", seconds=6, segment_s=2, fps=FPS, gop=FPS,
                                codec="libx265", bframes=2),
        "big": ffmpeg_segments(root / "big", seconds=3, segment_s=3, fps=FPS, gop=FPS,
                               size="640x360", filters=",noise=alls=40:allf=t"),
    }


@pytest.fixture(scope="module")
def frame_hashes(sources):
    """MD5 of every decoded frame of every source segment, in presentation order."""
    out = {}
    for kind in ("plain", "bframes"):
        for path in sources[kind]:
            out[path] = _framemd5(path)
    return out


def _framemd5(path) -> list[str]:
    text = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-f", "framemd5",
                           "-"], capture_output=True, text=True, check=True, timeout=60).stdout
    return [line.rsplit(",", 1)[1].strip() for line in text.splitlines()
            if line and not line.startswith("#")]


def write_movie(movie, path):
    with open(path, "wb") as f:
        for piece in movie.iter_bytes():
            f.write(piece)
    return path


def top_level_types(path) -> list[bytes]:
    data = path.read_bytes()
    return [b.type for b in mp4.iter_boxes(data)]


def expected_frames(rows, hashes, start_us, end_us):
    out = []
    for row in rows:
        for i, h in enumerate(hashes[row._src]):
            if start_us <= row.start_us + i * 1_000_000 // FPS < end_us:
                out.append(h)
    return out


@pytest.fixture(params=["plain", "bframes"])
def recorded(request, tmp_path, sources):
    rec = install_segments(tmp_path / "picorder", sources[request.param], start_us=T0)
    for row, src in zip(rec.rows, sources[request.param]):
        row._src = src
    return rec


def test_mid_segment_range_over_three_segments(recorded, tmp_path, frame_hashes):
    start, end = T0 + 1_700_000, T0 + 10_300_000          # 4 segments, both ends mid-segment
    movie = export.build_range(recorded.index, "cam1", "main", start, end)
    out = write_movie(movie, tmp_path / "out.mp4")
    assert out.stat().st_size == movie.size
    assert decode_errors(out) == ""
    types = top_level_types(out)
    assert types == [b"ftyp", b"moov", b"mdat"]
    info = ffprobe_stream(out)
    assert abs(float(info["format_duration"]) - (end - start) / 1e6) <= 1 / FPS
    assert int(info["nb_read_packets"]) == movie.frames == expected_packets(
        [(r._src, r.start_us, r.end_us) for r in recorded.rows], start, end, FPS)
    # What plays is exactly the source frames between start and end, in order.
    assert _framemd5(out) == expected_frames(recorded.rows, frame_hashes, start, end)
    assert (movie.start_us, movie.end_us) == (start, end)
    assert movie.runs == [(start, end, 0)]


def test_range_starting_on_a_keyframe_and_whole_recording(recorded, tmp_path, frame_hashes):
    first, last = recorded.rows[0], recorded.rows[-1]
    movie = export.build_range(recorded.index, "cam1", "main", first.start_us - 5_000_000,
                               last.end_us + 5_000_000)
    out = write_movie(movie, tmp_path / "all.mp4")
    assert decode_errors(out) == ""
    assert (movie.start_us, movie.end_us) == (first.start_us, last.end_us)
    assert movie.frames == sum(r.frames for r in recorded.rows)
    assert _framemd5(out) == [h for r in recorded.rows for h in frame_hashes[r._src]]


def test_random_byte_ranges_equal_slices(recorded, tmp_path):
    movie = export.build_range(recorded.index, "cam1", "main", T0 + 1_234_567, T0 + 9_876_543)
    full = write_movie(movie, tmp_path / "full.mp4").read_bytes()
    rnd = random.Random(4)
    spots = [0, len(movie.header) - 1, len(movie.header), movie.size - 1]
    for _ in range(50):
        a = rnd.choice(spots + [rnd.randrange(movie.size)] * 3)
        b = rnd.randrange(a, min(movie.size, a + rnd.choice([1, 100, 70_000, movie.size])))
        assert b"".join(movie.iter_bytes(a, b)) == full[a:b + 1]
    with pytest.raises(ValueError):
        list(movie.iter_bytes(0, movie.size))
    with pytest.raises(ValueError):
        list(movie.iter_bytes(10, 5))


def test_etag_depends_on_rows_and_range(recorded):
    index = recorded.index
    a = export.build_range(index, "cam1", "main", T0 + 1_000_000, T0 + 5_000_000)
    b = export.build_range(index, "cam1", "main", T0 + 1_000_000, T0 + 5_000_000)
    c = export.build_range(index, "cam1", "main", T0 + 1_000_000, T0 + 5_500_000)
    assert a.etag == b.etag != c.etag
    Segment.update(bytes=Segment.bytes - 1).where(Segment.id == recorded.rows[1].id).execute(index.db)
    assert export.build_range(index, "cam1", "main", T0 + 1_000_000, T0 + 5_000_000).etag != a.etag


def test_bad_ranges_and_nothing_recorded(recorded):
    index = recorded.index
    with pytest.raises(ValueError):
        export.build_range(index, "cam1", "main", T0 + 5, T0 + 5)
    with pytest.raises(ValueError):
        export.build_range(index, "cam1", "main", T0 + 5, T0)
    with pytest.raises(ValueError):
        export.build_range(index, "cam1", "main", T0, T0 + EXPORT_MAX_S * 1_000_000 + 1)
    for bad in ((-5, T0), (T0, 2 ** 70), (2 ** 64, 2 ** 64 + 5)):
        with pytest.raises(ValueError):
            export.build_range(index, "cam1", "main", *bad)
    with pytest.raises(export.NoRecording, match="no recording of cam1"):
        export.build_range(index, "cam1", "main", T0 - 10_000_000, T0 - 1_000_000)
    with pytest.raises(export.NoRecording):
        export.build_range(index, "cam2", "main", T0, T0 + 1_000_000)
    with pytest.raises(export.NoRecording):
        export.build_range(index, "cam1", "sub", T0, T0 + 1_000_000)


@pytest.mark.parametrize("gap_us", [20_000_000, 300_000])
def test_gap_between_runs_is_squashed_and_mapped(tmp_path, sources, frame_hashes, gap_us):
    srcs = sources["plain"]
    rec = install_segments(tmp_path / "picorder", srcs, start_us=T0, gap_after={1: gap_us})
    for row, src in zip(rec.rows, srcs):
        row._src = src
    start, end = T0 + 1_000_000, rec.rows[3].start_us + 2_000_000
    movie = export.build_range(rec.index, "cam1", "main", start, end)
    out = write_movie(movie, tmp_path / "gap.mp4")
    assert decode_errors(out) == ""
    gap_end = rec.rows[2].start_us
    assert movie.runs == [(start, rec.rows[1].end_us, 0),
                          (gap_end, end, rec.rows[1].end_us - start)]
    media = (rec.rows[1].end_us - start) + (end - gap_end)
    assert abs(float(ffprobe_stream(out)["format_duration"]) - media / 1e6) <= 1 / FPS
    assert _framemd5(out) == expected_frames(rec.rows, frame_hashes, start, end)


def test_missing_segment_file_is_skipped(recorded, tmp_path):
    os.unlink(recorded.picorder_dir / recorded.rows[1].path)
    movie = export.build_range(recorded.index, "cam1", "main", T0, recorded.rows[2].end_us)
    assert decode_errors(write_movie(movie, tmp_path / "m.mp4")) == ""
    assert movie.frames == recorded.rows[0].frames + recorded.rows[2].frames


def test_format_change_stops_the_range(tmp_path, sources):
    srcs = sources["plain"][:2] + sources["big"]
    rec = install_segments(tmp_path / "picorder", srcs, start_us=T0)
    movie = export.build_range(rec.index, "cam1", "main", T0, rec.rows[-1].end_us)
    assert movie.end_us == rec.rows[1].end_us
    assert movie.frames == rec.rows[0].frames + rec.rows[1].frames
    out = write_movie(movie, tmp_path / "fmt.mp4")
    assert decode_errors(out) == ""
    rest = export.build_range(rec.index, "cam1", "main", movie.end_us, rec.rows[-1].end_us)
    assert ffprobe_stream(write_movie(rest, tmp_path / "rest.mp4"))["width"] == 640


def test_picorder_export_writes_the_same_bytes(recorded, tmp_path):
    from picorder.cli import main
    start, end = T0 + 1_700_000, T0 + 10_300_000
    movie = export.build_range(recorded.index, "cam1", "main", start, end)
    expected = b"".join(movie.iter_bytes())
    out = tmp_path / "cli.mp4"
    root = recorded.picorder_dir.parent
    iso = lambda us: __import__("datetime").datetime.fromtimestamp(
        us / 1e6, tz=__import__("datetime").timezone.utc).isoformat()
    rc = main(["--data", str(tmp_path / "data"), "export", "cam1", iso(start), iso(end), str(out),
               "--root", str(root)])
    assert rc == 0 and out.read_bytes() == expected
    # epoch seconds are accepted too
    out2 = tmp_path / "cli2.mp4"
    assert main(["--data", str(tmp_path / "data"), "export", "cam1", str(start / 1e6),
                 str(end / 1e6), str(out2), "--root", str(root)]) == 0
    assert out2.read_bytes() == expected
    assert main(["--data", str(tmp_path / "data"), "export", "cam1", iso(end), iso(start),
                 str(tmp_path / "x.mp4"), "--root", str(root)]) == 2
    assert main(["--data", str(tmp_path / "data"), "export", "cam1", "yesterday-ish", iso(start),
                 str(tmp_path / "x.mp4"), "--root", str(root)]) == 2
    assert not (tmp_path / "x.mp4").exists()


def test_memory_stays_bounded_over_many_segments(tmp_path, sources):
    """40 copies of a big segment (hard links): the movie is streamed, never held."""
    src = sources["big"][0]
    size = src.stat().st_size
    pdir = tmp_path / "picorder"
    rec = install_segments(pdir, [src], start_us=T0)
    info = tables.probe_segment(src)
    t = rec.rows[0].end_us
    for n in range(39):
        rel = f"cam1/main/copy{n:02d}.mp4"
        os.link(src, pdir / rel)
        queries.insert_segment(rec.index, camera="cam1", stream="main", path=rel, start_us=t,
                               end_us=t + info.duration_us, duration_us=info.duration_us,
                               bytes=size, frames=info.frames, codec="h264", width=640,
                               height=360, run_id=1)
        t += info.duration_us
    tracemalloc.start()
    try:
        movie = export.build_range(rec.index, "cam1", "main", T0, t)
        total = sum(len(piece) for piece in movie.iter_bytes())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert total == movie.size > 40 * size * 0.95 > 40 * 1024 * 1024
    assert peak < 3 * 1024 * 1024, f"peak {peak} bytes for a {movie.size}-byte movie"


def test_largesize_mdat_and_co64_layout(tmp_path, sources):
    """Past 4 GiB the mdat gets a 64-bit size and chunk offsets go to co64 (faked sizes)."""
    rec = install_segments(tmp_path / "picorder", sources["plain"][:2], start_us=T0)
    build = export._Build(rec.picorder_dir, T0, rec.rows[1].end_us)
    for row in rec.index.select().order_by(Segment.start_us):
        export._add_segment(build, row)
    build.tables.chunk_size[0] += 5 * 1024 ** 3               # pretend a huge first chunk
    movie = export._finish(build)
    header = movie.header
    moov = mp4.parse_box_header(header, len(export.FTYP), len(header))
    stbl = mp4.find_path(header, moov, b"trak", b"mdia", b"minf", b"stbl")
    assert mp4.find_child(header, stbl, b"co64") is not None
    assert mp4.find_child(header, stbl, b"stco") is None
    size_field, typ, large = struct.unpack_from(">I4sQ", header, moov.end)
    assert (size_field, typ) == (1, b"mdat") and large == movie.size - moov.end


def test_hevc_range_with_bframes(tmp_path, sources):
    rec = install_segments(tmp_path / "picorder", sources["hevc"], start_us=T0)
    assert rec.rows[0].codec == "hevc" and len(rec.rows) == 3
    start, end = T0 + 700_000, T0 + 5_300_000
    movie = export.build_range(rec.index, "cam1", "main", start, end)
    out = write_movie(movie, tmp_path / "hevc.mp4")
    assert decode_errors(out) == ""
    info = ffprobe_stream(out)
    assert info["codec_name"] == "hevc"
    assert abs(float(info["format_duration"]) - (end - start) / 1e6) <= 1 / FPS
    assert int(info["nb_read_packets"]) == movie.frames
    decoded = len(_framemd5(out))
    assert abs(decoded - (end - start) * FPS / 1e6) <= 1


def test_recording_that_begins_without_a_keyframe_starts_at_its_first_keyframe(tmp_path, sources):
    """ffmpeg -c copy may begin a recording mid-GOP; the movie must still start decodable."""
    src = sources["plain"][0]
    scan = mp4.scan_segment(src)
    data = bytearray(src.read_bytes())
    frag = scan.fragments[0]
    # Mark the first fragment's samples as non-sync (as if the GOP's start was missed).
    moof = data[frag.offset:frag.offset + frag.moof_size]
    trun = moof.find(b"trun") - 4
    flags = struct.unpack_from(">I", moof, trun + 8)[0] & 0xFFFFFF
    assert flags & mp4.TRUN_FIRST_SAMPLE_FLAGS
    struct.pack_into(">I", data, frag.offset + trun + 20, mp4.SAMPLE_NON_SYNC)
    odd = tmp_path / "odd.mp4"
    odd.write_bytes(bytes(data))
    assert mp4.scan_segment(odd).fragments[0].sync.count(1) == 0
    rec = install_segments(tmp_path / "picorder", [odd] + sources["plain"][1:2], start_us=T0)
    movie = export.build_range(rec.index, "cam1", "main", T0 + 200_000, T0 + 4_000_000)
    second_key_wall = T0 + frag.duration * 1_000_000 // scan.init.timescale
    assert movie.start_us == second_key_wall
    assert movie.frames == sum(f.count for f in scan.fragments[1:]) + 15
    assert decode_errors(write_movie(movie, tmp_path / "k.mp4")) == ""
