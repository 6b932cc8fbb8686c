"""Stored sample tables (SegmentTables): the movie bytes they give equal those from the files."""

import random
import struct
import sqlite3

import pytest

from helpers.mp4 import ffmpeg_segments, install_segments, require_ffmpeg, utc_name
from recorder import export, mp4
from recorder.db import schema_version
from recorder.index import MIGRATIONS, Index, Segment, SegmentTables, tables

FPS = 15
T0 = 1_795_000_000_000_000


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """4 s segments of 1 s fragments: plain H.264, H.264 with B-frames, HEVC with B-frames."""
    require_ffmpeg()
    root = tmp_path_factory.mktemp("tabsrc")
    return {
        "plain": ffmpeg_segments(root / "plain", seconds=12, segment_s=4, fps=FPS, gop=FPS),
        "bframes": ffmpeg_segments(root / "bframes", seconds=12, segment_s=4, fps=FPS,
                                   gop=FPS, bframes=2),
        "hevc": ffmpeg_segments(root / "hevc", seconds=8, segment_s=4, fps=FPS, gop=FPS,
                                codec="libx265", bframes=2),
    }


def movie_bytes(movie) -> bytes:
    return b"".join(movie.iter_bytes())


def build_both(rec, start_us, end_us):
    """The movie from the stored tables, then from the files alone (tables cleared)."""
    stored = export.build_range(rec.index, "cam1", "main", start_us, end_us)
    saved = {r.path: r.tables for r in rec.index.select(SegmentTables)}
    SegmentTables.delete().execute(rec.index.db)
    try:
        parsed = export.build_range(rec.index, "cam1", "main", start_us, end_us)
    finally:
        for path, blob in saved.items():
            Segment.store_tables(rec.index, path, blob)
    return stored, parsed


def set_tables(rec, row, blob) -> None:
    SegmentTables.replace(path=row.path, tables=blob).execute(rec.index.db)


def ranges(rec, n: int, seed: int):
    """Whole recording, edges on segment boundaries, and random mid-segment ranges."""
    first, last = rec.rows[0].start_us, rec.rows[-1].end_us
    out = [(first, last), (rec.rows[1].start_us, rec.rows[1].end_us)]
    rng = random.Random(seed)
    for _ in range(n):
        a, b = sorted(rng.randrange(first - 500_000, last + 500_000) for _ in range(2))
        if b - a > 200_000:
            out.append((a, b))
    return out


@pytest.mark.parametrize("kind", ["plain", "bframes", "hevc"])
def test_movie_bytes_identical_with_and_without_stored_tables(kind, tmp_path, sources):
    rec = install_segments(tmp_path / "picorder", sources[kind], start_us=T0,
                           gap_after={0: 2_500_000})
    assert rec.index.select(SegmentTables).count() == len(rec.rows)
    built = 0
    for start, end in ranges(rec, 12, seed=len(kind)):
        try:
            stored, parsed = build_both(rec, start, end)
        except export.NoRecording:          # a range inside the gap: no movie either way
            SegmentTables.delete().execute(rec.index.db)
            with pytest.raises(export.NoRecording):
                export.build_range(rec.index, "cam1", "main", start, end)
            rec = install_tables(rec)
            continue
        built += 1
        assert (stored.size, stored.etag, stored.frames, stored.runs,
                stored.start_us, stored.end_us) == (parsed.size, parsed.etag, parsed.frames,
                                                    parsed.runs, parsed.start_us, parsed.end_us)
        assert movie_bytes(stored) == movie_bytes(parsed), (start, end)
    assert built >= 8


def install_tables(rec):
    """Store the tables of every row again (from probing its file)."""
    for row in rec.rows:
        info = tables.probe_segment(rec.picorder_dir / row.path)
        set_tables(rec, row, info.tables)
    return rec


def test_stored_tables_are_used_instead_of_the_moofs(tmp_path, sources, monkeypatch):
    rec = install_segments(tmp_path / "picorder", sources["plain"], start_us=T0)
    expected = movie_bytes(export.build_range(rec.index, "cam1", "main", T0 + 300_000,
                                              rec.rows[-1].end_us - 300_000))

    def no_parsing(*_args, **_kwargs):
        raise AssertionError("moofs read although the rows have tables")

    monkeypatch.setattr(export, "iter_segment_fragments", no_parsing)
    movie = export.build_range(rec.index, "cam1", "main", T0 + 300_000,
                               rec.rows[-1].end_us - 300_000)
    assert movie_bytes(movie) == expected


def test_tables_round_trip_the_parsed_fragments(sources):
    for path in sources["bframes"] + sources["hevc"]:
        scan = mp4.scan_segment(path)
        info = tables.probe_segment(path)
        stored = tables.decode_tables(info.tables)
        assert stored.init_key == tables.init_key(scan.init)
        assert (stored.file_size, stored.complete_end) == (scan.file_size, scan.complete_end)
        assert stored.fragments == scan.fragments
        joined = tables.decode_tables(info.tables, join=True).fragments
        assert len(joined) == 2 and joined[0] == scan.fragments[0]
        rest = scan.fragments[1:]
        assert joined[1].sizes == sum((f.sizes for f in rest), start=joined[1].sizes[:0])
        assert joined[1].runs == [r for f in scan.fragments[1:] for r in f.runs]


def test_corrupt_or_foreign_tables_are_detected_and_ignored(tmp_path, sources):
    blob = tables.probe_segment(sources["plain"][0]).tables
    for bad in (blob[:-1] + bytes([blob[-1] ^ 1]),            # checksum
                blob[:40] + bytes([blob[40] ^ 1]) + blob[41:],   # a table byte
                b"XXXX" + blob[4:],                           # another format
                blob[:30]):                                   # truncated
        with pytest.raises(tables.StaleTables):
            tables.decode_tables(bad)
    rec = install_segments(tmp_path / "picorder", sources["plain"], start_us=T0)
    end = rec.rows[-1].end_us
    expected = movie_bytes(export.build_range(rec.index, "cam1", "main", T0, end))
    hevc = tables.probe_segment(sources["hevc"][0]).tables
    other = tables.probe_segment(sources["plain"][1]).tables
    set_tables(rec, rec.rows[0], blob[:-1] + b"\0")
    set_tables(rec, rec.rows[1], hevc)          # another init segment
    set_tables(rec, rec.rows[2], other)         # another file
    assert movie_bytes(export.build_range(rec.index, "cam1", "main", T0, end)) == expected


def test_migrating_a_v1_index_keeps_rows_and_makes_a_backup(tmp_path):
    path = tmp_path / "index.db"
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE segment (id INTEGER NOT NULL PRIMARY KEY, camera VARCHAR(255) NOT NULL,
            stream VARCHAR(255) NOT NULL, path VARCHAR(255) NOT NULL, start_us INTEGER NOT NULL,
            end_us INTEGER NOT NULL, duration_us INTEGER NOT NULL, bytes INTEGER NOT NULL,
            frames INTEGER NOT NULL, codec VARCHAR(255) NOT NULL, width INTEGER NOT NULL,
            height INTEGER NOT NULL, clock_trusted INTEGER NOT NULL, run_id INTEGER NOT NULL,
            deleting INTEGER NOT NULL);
        CREATE UNIQUE INDEX segment_path ON segment (path);
        CREATE INDEX segment_camera_stream_start_us ON segment (camera, stream, start_us);
        PRAGMA user_version = 1;
    """)
    conn.executemany("INSERT INTO segment VALUES (NULL, 'cam1', 'main', ?, ?, ?, 1000000, 500,"
                     " 15, 'h264', 320, 240, 1, 1, 0)",
                     [(f"cam1/main/{i}.mp4", T0 + i, T0 + i + 1_000_000) for i in range(3)])
    conn.commit()
    conn.close()
    with Index.open(path) as index:
        assert schema_version(index.db) == len(MIGRATIONS) == 5
        plan = index.db.execute_sql(
            "EXPLAIN QUERY PLAN SELECT run_id, MIN(start_us), MAX(end_us), SUM(frames) "
            "FROM segment WHERE camera = 'cam1' AND stream = 'main' AND deleting = 0 "
            "AND start_us >= 0 GROUP BY run_id").fetchall()
        assert "COVERING INDEX segment_timeline" in " ".join(str(r[-1]) for r in plan)
        rows = list(Segment.covering(index, "cam1", "main", T0, T0 + 10, with_tables=True))
        assert [r.path for r in rows] == [f"cam1/main/{i}.mp4" for i in range(3)]
        assert all(r.tables is None and r.bytes == 500 for r in rows)
        for row in rows:
            Segment.store_tables(index, row.path, b"x" + row.path.encode())
    backup = sqlite3.connect(tmp_path / "index.db.bak-v1")
    assert backup.execute("PRAGMA user_version").fetchone()[0] == 1
    assert backup.execute("SELECT COUNT(*) FROM segment").fetchone()[0] == 3
    assert backup.execute("SELECT name FROM sqlite_master WHERE name = 'segment_tables'"
                          ).fetchall() == []
    backup.close()
    # Deleting a segment row, even from a plain connection (as retention does), drops its tables.
    conn = sqlite3.connect(path)
    conn.execute("DELETE FROM segment WHERE path = 'cam1/main/0.mp4'")
    conn.commit()
    conn.close()
    with Index.open(path) as index:         # reopening a v2 file changes nothing
        rows = list(Segment.covering(index, "cam1", "main", T0, T0 + 10, with_tables=True))
        assert [r.tables for r in rows] == [b"xcam1/main/1.mp4", b"xcam1/main/2.mp4"]
        assert index.select(SegmentTables).count() == 2


def test_recovered_torn_file_gets_tables_that_match_its_truncated_bytes(tmp_path, sources,
                                                                        monkeypatch):
    from recorder.recovery import recover

    pdir = tmp_path / "picorder"
    rec = install_segments(pdir, sources["bframes"][:1], start_us=T0)
    scan = mp4.scan_segment(sources["bframes"][1])
    cut = scan.fragments[2].offset + 100                 # mid third fragment
    rel = f"cam1/main/{utc_name(rec.rows[0].end_us)}"
    (pdir / rel).write_bytes(sources["bframes"][1].read_bytes()[:cut])
    assert recover(rec.index).indexed == [rel]
    row = rec.index.select().where(Segment.path == rel).get()
    assert row.bytes == scan.fragments[1].end
    assert rec.index.select(SegmentTables).where(SegmentTables.path == rel).get().tables
    stored, parsed = build_both(rec, T0 + 100_000, row.end_us)
    assert movie_bytes(stored) == movie_bytes(parsed) and stored.frames == parsed.frames
    monkeypatch.setattr(export, "iter_segment_fragments", None)    # tables only now
    again = export.build_range(rec.index, "cam1", "main", T0 + 100_000, row.end_us)
    assert movie_bytes(again) == movie_bytes(parsed)
    assert again.frames == rec.rows[0].frames + row.frames


def test_read_only_v1_index_not_yet_migrated_still_exports(tmp_path, sources):
    """The panel opens index.db read-only; before the recorder migrates it there is no table."""
    rec = install_segments(tmp_path / "picorder", sources["plain"], start_us=T0)
    end = rec.rows[-1].end_us
    expected = movie_bytes(export.build_range(rec.index, "cam1", "main", T0, end))
    rec.index.close()
    conn = sqlite3.connect(rec.picorder_dir / "index.db")
    conn.executescript("DROP TRIGGER segment_tables_follow_delete; DROP TABLE segment_tables;"
                       " PRAGMA user_version = 1;")
    conn.close()
    with Index.open(rec.picorder_dir / "index.db", readonly=True) as index:
        assert not Segment.tables_available(index)
        movie = export.build_range(index, "cam1", "main", T0, end)
        assert movie_bytes(movie) == expected


def with_tfdt_jump(src, dest, fragment: int, ticks: int):
    """A copy of segment `src` whose decode times jump by `ticks` from `fragment` on."""
    data = bytearray(src.read_bytes())
    for frag in mp4.scan_segment(src).fragments[fragment:]:
        at = frag.offset + frag.tfdt_offset
        if data[at + 8] == 1:
            struct.pack_into(">Q", data, at + 12, frag.base_dts + ticks)
        else:
            struct.pack_into(">I", data, at + 12, frag.base_dts + ticks)
    dest.write_bytes(bytes(data))
    return dest


def test_fragments_after_a_decode_time_jump_are_not_joined(tmp_path, sources):
    """A gap in tfdt (a timestamp jump inside a segment) splits the joined stretches."""
    jumped = [with_tfdt_jump(src, tmp_path / f"j{i}.mp4", 2, tables.probe_segment(src).timescale)
              for i, src in enumerate(sources["bframes"])]
    joined = tables.decode_tables(tables.probe_segment(jumped[0]).tables, join=True).fragments
    counts = [f.count for f in mp4.scan_segment(jumped[0]).fragments]
    assert [f.count for f in joined] == [counts[0], counts[1], sum(counts[2:])]
    rec = install_segments(tmp_path / "picorder", jumped, start_us=T0)
    for start, end in ranges(rec, 10, seed=7):
        stored, parsed = build_both(rec, start, end)
        assert (stored.etag, stored.runs) == (parsed.etag, parsed.runs)
        assert movie_bytes(stored) == movie_bytes(parsed), (start, end)
