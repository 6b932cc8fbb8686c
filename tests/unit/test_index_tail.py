"""The tail the panel reads past the index: files not indexed yet, placed in wall time, on real segments."""

import os
import shutil
import time

import pytest

from helpers.mp4 import (decode_errors, ffmpeg_segments, ffprobe_stream, install_segments,
                         require_ffmpeg, utc_name)
from recorder import export, layout, mp4
from webpanel import index_reader, snapshots

FPS = 15
SEGMENT_S = 3
NOW = 1_795_000_600_000_000         # "now" of these tests: 10 minutes after T0
T0 = 1_795_000_000_000_000


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    require_ffmpeg()
    return ffmpeg_segments(tmp_path_factory.mktemp("tailsrc"), seconds=3 * SEGMENT_S,
                           segment_s=SEGMENT_S, fps=FPS, gop=FPS)


@pytest.fixture
def pdir(tmp_path):
    return tmp_path / "picorder"


def put_file(pdir, src, name_us: int, mtime_us: int, size: int | None = None) -> str:
    """Copy src into the layout under the name of name_us (cut to `size` bytes), with mtime_us."""
    rel = f"cam1/main/{utc_name(name_us)}"
    dest = pdir / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    if size is not None:
        os.truncate(dest, size)
    os.utime(dest, ns=(mtime_us * 1000, mtime_us * 1000))
    return rel


def test_layout_names_round_trip():
    rel = layout.segment_rel("cam1", "main", T0 + 999_999)
    assert rel == "cam1/main/" + utc_name(T0)
    assert layout.name_start_us(rel) == ("cam1", "main", T0)
    assert layout.name_start_us("cam1/main/2026/13/01/00-00-00.mp4") is None
    assert layout.name_start_us("cam1/main/x.mp4") is None


def test_a_file_continuing_the_newest_row_starts_where_it_ends(pdir, sources):
    rec = install_segments(pdir, sources[:1], start_us=NOW - 20_000_000)
    prev = rec.rows[0]
    # ffmpeg named the next file at the boundary (second resolution), 0.4 s before the row's end
    name_us = prev.end_us - 400_000
    growing = mp4.scan_segment(sources[1])
    cut = growing.fragments[1].end + 100               # two fragments and a torn third
    rel = put_file(pdir, sources[1], name_us, NOW, size=cut)

    # The clock's state is asked for only by a file that starts a run of its own.
    tail = index_reader.unindexed_tail(rec.index, "cam1", "main", NOW,
                                       clock_trusted=lambda: pytest.fail("clock state asked for"))
    assert [t.path for t in tail] == [rel]
    item = tail[0]
    two = sum(f.duration for f in growing.fragments[:2]) * 1_000_000 // growing.init.timescale
    assert item.start_us == prev.end_us
    assert item.end_us == prev.end_us + two
    assert item.bytes == growing.fragments[1].end
    assert item.frames == growing.fragments[0].count + growing.fragments[1].count
    assert item.clock_trusted is True                 # the run's, not the clock's now

    runs = index_reader.timeline(rec.index, "cam1", "main", NOW - 60_000_000, NOW, 2_000_000,
                                 tail)
    assert [(r.start_us, r.end_us, r.segments) for r in runs] == [(prev.start_us, item.end_us, 2)]


def test_a_file_of_a_new_run_starts_at_its_name_whatever_its_last_write(pdir, sources):
    rec = install_segments(pdir, sources[:1], start_us=NOW - 60_000_000)
    info = mp4.scan_segment(sources[1])
    name_us = NOW - 10_000_000
    rel = put_file(pdir, sources[1], name_us, NOW - 1_000_000)
    (item,) = index_reader.unindexed_tail(rec.index, "cam1", "main", NOW, clock_trusted=False)
    assert item.path == rel and item.clock_trusted is False      # the clock's now, not the run's
    assert (item.start_us, item.end_us) == (name_us, name_us + info.duration_us)

    # The same placement as the file grows (every worker builds the same movie).
    os.utime(pdir / rel, ns=(NOW * 1000, NOW * 1000))
    (again,) = index_reader.unindexed_tail(rec.index, "cam1", "main", NOW + 500_000, clock_trusted=True)
    assert (again.start_us, again.end_us) == (item.start_us, item.end_us)
    assert again.clock_trusted is True


def test_indexed_empty_and_unreadable_files_are_not_in_the_tail(pdir, sources, tmp_path):
    rec = install_segments(pdir, sources[:2], start_us=NOW - 30_000_000)
    # the newest row's file itself, a file whose header is still being written, an empty one
    put_file(pdir, sources[2], NOW - 5_000_000, NOW, size=20)
    (pdir / f"cam1/main/{utc_name(NOW - 3_000_000)}").write_bytes(b"")
    (pdir / "cam1/main" / utc_name(NOW)[:10] / "notes.txt").write_text("not a segment")
    assert index_reader.unindexed_tail(rec.index, "cam1", "main", NOW, clock_trusted=True) == []
    assert layout.files_after(pdir, "cam1", "main", rec.rows[0].start_us, NOW, 4) == [
        rec.rows[1].path, f"cam1/main/{utc_name(NOW - 5_000_000)}",
        f"cam1/main/{utc_name(NOW - 3_000_000)}"]


def test_only_the_newest_files_are_read(pdir, sources):
    rec = install_segments(pdir, sources[:1], start_us=NOW - 3_600_000_000)
    rels = [put_file(pdir, sources[1], NOW - (20 - 3 * i) * 1_000_000, NOW - (17 - 3 * i) * 1_000_000)
            for i in range(6)]
    tail = index_reader.unindexed_tail(rec.index, "cam1", "main", NOW, clock_trusted=True)
    assert [t.path for t in tail] == rels[-4:]
    assert all(a.end_us <= b.start_us for a, b in zip(tail, tail[1:]))      # never overlapping


def test_a_range_movie_plays_into_the_tail(pdir, sources, tmp_path):
    rec = install_segments(pdir, sources[:1], start_us=NOW - 20_000_000)
    prev = rec.rows[0]
    info = mp4.scan_segment(sources[1])
    cut = info.fragments[-1].offset + 50                  # the last fragment not complete yet
    put_file(pdir, sources[1], prev.end_us, NOW, size=cut)
    tail = index_reader.unindexed_tail(rec.index, "cam1", "main", NOW, clock_trusted=True)
    covered_end = tail[-1].end_us
    movie = export.build_range(rec.index, "cam1", "main", prev.start_us + 500_000, NOW, tail)
    assert movie.end_us == covered_end
    assert movie.runs == [(prev.start_us + 500_000, covered_end, 0)]
    out = tmp_path / "tail.mp4"
    out.write_bytes(b"".join(movie.iter_bytes()))
    assert decode_errors(out) == ""
    duration = float(ffprobe_stream(out)["format_duration"])
    assert abs(duration - (covered_end - prev.start_us - 500_000) / 1e6) <= 1 / FPS + 1e-3
    # Without the tail, the same request ends with the indexed segment.
    assert export.build_range(rec.index, "cam1", "main", prev.start_us + 500_000,
                              NOW).end_us == prev.end_us


def test_a_thumbnail_of_the_newest_seconds_comes_from_the_unindexed_file(pdir, sources):
    now = time.time_ns() // 1000
    rec = install_segments(pdir, sources[:1], start_us=now - 20_000_000)
    prev = rec.rows[0]
    rel = put_file(pdir, sources[1], prev.end_us, now)
    at = prev.end_us + 1_500_000
    kf = snapshots.keyframe_near(pdir, "cam1", "main", at)
    assert kf.path == pdir / rel
    assert prev.end_us + 1_000_000 - 1 <= kf.time_us <= at          # keyframes each second
    # Within the indexed segment: its own picture, as before.
    assert snapshots.keyframe_near(pdir, "cam1", "main", prev.end_us - 500_000).path == pdir / prev.path


def test_a_growing_file_is_rescanned_from_where_the_last_scan_stopped(sources, tmp_path):
    data = sources[1].read_bytes()
    whole = mp4.scan_segment(sources[1])
    path = tmp_path / "growing.mp4"
    path.write_bytes(data[:whole.fragments[0].offset])          # the init segment alone
    scan = mp4.scan_segment(path)
    assert scan.fragments == []
    for frag in whole.fragments:
        for cut in (frag.offset + 7, frag.end - 1, frag.end):   # torn moof, torn mdat, complete
            with open(path, "ab") as f:
                f.write(data[os.path.getsize(path):cut])
            scan = mp4.rescan_segment(path, scan)
            fresh = mp4.scan_segment(path)
            assert (scan.complete_end, scan.frames, scan.duration_us) == (
                fresh.complete_end, fresh.frames, fresh.duration_us)
    with open(path, "ab") as f:
        f.write(data[os.path.getsize(path):])                    # the mfra of a clean close
    scan = mp4.rescan_segment(path, scan)
    assert scan.complete_end == whole.complete_end and scan.frames == whole.frames
    # A file cut shorter (recovery truncates a torn file) is read afresh.
    os.truncate(path, whole.fragments[1].end)
    assert mp4.rescan_segment(path, scan).frames == whole.fragments[0].count + whole.fragments[1].count


def test_a_range_that_ends_within_the_index_reads_no_file(pdir, sources):
    rec = install_segments(pdir, sources[:1], start_us=NOW - 20_000_000)
    put_file(pdir, sources[1], rec.rows[0].end_us, NOW)
    ends = rec.rows[0].end_us
    assert index_reader.unindexed_tail(rec.index, "cam1", "main", NOW, True, reaching_us=ends) == []
    assert len(index_reader.unindexed_tail(rec.index, "cam1", "main", NOW, True, reaching_us=ends + 1)) == 1
