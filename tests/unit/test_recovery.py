"""recorder.recovery: torn files, missing files and interrupted deletes, on a real index.db."""

import shutil

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from helpers.mp4 import decode_errors, ffmpeg_segments, install_segments, require_ffmpeg, utc_name
from recorder import mp4
from recorder.index import Index, Segment, tables
from recorder.recovery import LOST_AND_FOUND, name_start_us, recover

START_US = 1_795_000_000_000_000        # 2026-11-18 ... UTC, a whole second


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    require_ffmpeg()
    root = tmp_path_factory.mktemp("recsrc")
    return ffmpeg_segments(root, seconds=8, segment_s=4, fps=15, gop=15, bframes=2)


@pytest.fixture
def index(tmp_path):
    (tmp_path / "picorder").mkdir()
    with Index.open(tmp_path / "picorder" / "index.db") as index:
        yield index


@pytest.fixture
def pdir(index):
    return index.dir


def row_of(index, rel):
    return index.select().where(Segment.path == rel).get()


def put_file(pdir, src, start_us, data=None, camera="cam1", stream="main"):
    rel = f"{camera}/{stream}/{utc_name(start_us)}"
    dest = pdir / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    if data is None:
        shutil.copyfile(src, dest)
    else:
        dest.write_bytes(data)
    return rel


def test_name_start_us():
    assert name_start_us("cam1/main/2026/11/21/12-00-05.mp4") == ("cam1", "main", 1795262405_000_000)
    assert name_start_us("cam1/main/2026/13/21/12-00-05.mp4") is None
    assert name_start_us("cam1/main/x.mp4") is None


def test_unindexed_complete_file_is_indexed_from_its_name(index, pdir, sources):
    rel = put_file(pdir, sources[0], START_US + 3_000_000)
    report = recover(index)
    assert report.indexed == [rel] and report.truncated == [] and report.problems == 1
    row = row_of(index, rel)
    info = tables.probe_segment(sources[0])
    assert row.start_us == START_US + 3_000_000
    assert row.end_us == row.start_us + info.duration_us
    assert (row.frames, row.codec, row.width, row.height) == (info.frames, "h264", 320, 240)
    assert row.bytes == info.file_size and row.clock_trusted is False
    assert recover(index).problems == 0        # idempotent


def test_torn_file_continues_previous_run(index, pdir, sources):
    rec = install_segments(pdir, sources[:1], start_us=START_US + 250_000, run_id=42)
    prev = rec.rows[0]
    data = sources[1].read_bytes()
    scan = mp4.scan_segment(sources[1])
    cut = scan.fragments[2].offset + 100                 # mid third fragment
    rel = put_file(pdir, None, prev.end_us, data=data[:cut])
    report = recover(index)
    assert report.indexed == [rel]
    assert report.truncated[0].new_size == scan.fragments[1].end
    assert (pdir / rel).stat().st_size == scan.fragments[1].end
    row = row_of(index, rel)
    assert row.start_us == prev.end_us and row.run_id == 42 and row.clock_trusted is True
    assert row.frames == scan.fragments[0].count + scan.fragments[1].count
    assert decode_errors(pdir / rel) == ""


def test_recovered_file_never_overlaps_neighbours(index, pdir, sources):
    rec = install_segments(pdir, sources[:1], start_us=START_US + 5_000_000)
    prev = rec.rows[0]
    # Named inside the previous segment (clock stepped back): starts at its end.
    rel = put_file(pdir, sources[1], START_US + 6_000_000, camera="cam1")
    recover(index)
    row = row_of(index, rel)
    assert row.start_us >= prev.end_us
    # A file named just before an existing row is clamped to end where that row starts.
    rel2 = put_file(pdir, sources[1], START_US + 3_000_000)
    recover(index)
    row2 = row_of(index, rel2)
    assert row2.start_us == START_US + 3_000_000 and row2.end_us <= prev.start_us


def test_broken_init_and_fragmentless_files_go_to_lost_and_found(index, pdir, sources):
    data = sources[0].read_bytes()
    with open(sources[0], "rb") as f:
        init = mp4.read_init(f)
    rel_init = put_file(pdir, None, START_US, data=data[:init.end - 5])
    rel_nofrag = put_file(pdir, None, START_US + 60_000_000, data=data[:init.end + 300])
    rel_empty = put_file(pdir, None, START_US + 120_000_000, data=b"")
    report = recover(index)
    moved = {m.path: m for m in report.moved_aside}
    assert set(moved) == {rel_init, rel_nofrag}
    for rel in (rel_init, rel_nofrag):
        dest = pdir / moved[rel].destination
        assert moved[rel].destination.startswith(LOST_AND_FOUND + "/")
        assert not (pdir / rel).exists() and dest.exists()
    assert (pdir / moved[rel_init].destination).read_bytes() == data[:init.end - 5]
    assert report.empty_removed == [rel_empty] and not (pdir / rel_empty).exists()
    assert index.select().count() == 0
    assert recover(index).problems == 0        # lost+found is not scanned again


def test_rows_without_files_are_removed(index, pdir, sources):
    rec = install_segments(pdir, sources)
    (pdir / rec.rows[1].path).unlink()
    report = recover(index)
    assert report.rows_removed == [rec.rows[1].path]
    assert [r.path for r in index.select()] == [rec.rows[0].path]


def test_interrupted_deletes_are_finished(index, pdir, sources):
    rec = install_segments(pdir, sources)
    Segment.update(deleting=True).where(Segment.id == rec.rows[0].id).execute(index.db)
    Segment.update(deleting=True).where(Segment.id == rec.rows[1].id).execute(index.db)
    (pdir / rec.rows[1].path).unlink()               # crash after unlink, before delete
    report = recover(index)
    assert sorted(report.deletes_finished) == sorted(r.path for r in rec.rows[:2])
    assert not (pdir / rec.rows[0].path).exists()
    assert index.select().count() == len(rec.rows) - 2


def test_excluded_file_being_written_is_left_alone(index, pdir, sources):
    data = sources[0].read_bytes()
    rel = put_file(pdir, None, START_US, data=data[:len(data) - 50])
    for exclude in ({pdir / rel}, {rel}):
        report = recover(index, exclude=exclude)
        assert report.problems == 0
        assert (pdir / rel).stat().st_size == len(data) - 50


def test_dry_run_changes_nothing(index, pdir, sources):
    rec = install_segments(pdir, sources[:1])
    (pdir / rec.rows[0].path).unlink()
    data = sources[1].read_bytes()
    rel = put_file(pdir, None, START_US + 100_000_000, data=data[:len(data) - 50])
    report = recover(index, dry_run=True)
    assert report.rows_removed == [rec.rows[0].path] and report.indexed == [rel]
    assert report.truncated and all("would be" in line for line in report.lines()[:2])
    assert (pdir / rel).stat().st_size == len(data) - 50
    assert index.select().count() == 1


def test_unrecognized_names_are_reported_and_kept(index, pdir, sources):
    odd = pdir / "cam1" / "main" / "notes.mp4"
    odd.parent.mkdir(parents=True)
    shutil.copyfile(sources[0], odd)
    report = recover(index)
    assert report.unrecognized == ["cam1/main/notes.mp4"] and odd.exists()


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fraction=st.floats(min_value=0.0, max_value=1.0, exclude_max=True))
def test_truncation_at_any_offset_yields_a_decodable_file(tmp_path_factory, sources, fraction):
    """Whatever the cut, recovery keeps every complete fragment and the result decodes."""
    pdir = tmp_path_factory.mktemp("torn") / "picorder"
    pdir.mkdir()
    index = Index.open(pdir / "index.db")
    data = sources[0].read_bytes()
    scan = mp4.scan_segment(sources[0])
    cut = int(fraction * len(data))
    garbage = b""
    rel = put_file(pdir, None, START_US, data=data[:cut])
    report = recover(index)
    complete = [f for f in scan.fragments if f.end <= cut]
    if cut + len(garbage) == 0:
        assert report.empty_removed == [rel]
        return
    if not complete:
        assert [m.path for m in report.moved_aside] == [rel]
        assert (pdir / report.moved_aside[0].destination).stat().st_size == cut + len(garbage)
        return
    assert report.indexed == [rel]
    path = pdir / rel
    assert path.stat().st_size == complete[-1].end
    assert path.read_bytes() == data[:complete[-1].end]
    assert decode_errors(path) == ""
    # Only the fragment the cut went through is lost, and it is at most 1 s long.
    partial = [f for f in scan.fragments if f.offset < cut < f.end]
    assert len(partial) <= 1
    assert all(f.duration <= scan.init.timescale for f in partial)
    row = row_of(index, rel)
    assert row.frames == sum(f.count for f in complete)


@pytest.mark.parametrize("garbage", [bytes(5000), b"\xff" * 17, b"\x00\x00\x01\x00moof" + bytes(100)],
                         ids=["zeros", "ff", "fake-moof"])
def test_garbage_after_the_last_fragment_is_cut(index, pdir, sources, garbage):
    """Zeroed blocks or junk after a power cut are not taken for a fragment."""
    data = sources[0].read_bytes()
    scan = mp4.scan_segment(sources[0])
    keep = scan.fragments[1].end
    rel = put_file(pdir, None, START_US, data=data[:keep] + garbage)
    report = recover(index)
    assert report.indexed == [rel] and report.truncated[0].new_size == keep
    assert (pdir / rel).read_bytes() == data[:keep]
    assert decode_errors(pdir / rel) == ""


def test_picorder_check_reports_then_repairs(tmp_path, sources, capsys):
    from picorder.cli import main
    root = tmp_path / "rec"
    pdir = root / "picorder"
    pdir.mkdir(parents=True)
    rec = install_segments(pdir, sources[:1])
    data = sources[1].read_bytes()
    torn = put_file(pdir, None, rec.rows[0].end_us, data=data[:len(data) - 99])
    base = ["--data", str(tmp_path / "data"), "check", "--root", str(root)]
    assert main(base) == 1
    out = capsys.readouterr().out
    assert f"unindexed segment {torn}: would be indexed, truncated" in out
    assert (pdir / torn).stat().st_size == len(data) - 99       # report only
    assert main(base + ["--repair"]) == 0
    assert "1 problem(s) found and repaired" in capsys.readouterr().out
    assert main(base) == 0
    assert "no problems found" in capsys.readouterr().out
    with Index.open(pdir / "index.db") as index:
        assert index.select().count() == 2
    assert main(["--data", str(tmp_path / "data"), "check", "--root", str(tmp_path / "none")]) == 2


def test_picorder_check_finds_the_default_recordings(tmp_path, sources, capsys):
    from picorder.cli import main
    from recorder.paths import DataPaths
    paths = DataPaths(tmp_path / "data")
    paths.ensure()
    pdir = paths.default_recordings / "picorder"
    rec = install_segments(pdir, sources[:1])
    (pdir / rec.rows[0].path).unlink()
    assert main(["--data", str(paths.root), "check"]) == 1
    assert f"index row without file {rec.rows[0].path}" in capsys.readouterr().out
    assert main(["--data", str(tmp_path / "empty"), "check"]) == 2


def test_interrupted_deletes_are_finished_in_one_transaction_per_batch(index, pdir, sources,
                                                                       monkeypatch):
    """The marked rows go in one transaction per batch, not one per row; a crash between
    the unlinks and the delete leaves rows marked `deleting` that the next start finishes."""
    from recorder.index import queries
    rec = install_segments(pdir, sources)
    marked = [r.id for r in rec.rows[:2]]
    Segment.update(deleting=True).where(Segment.id.in_(marked)).execute(index.db)
    real_delete = queries.delete_segments
    calls = []

    def crash(index, ids):
        calls.append(list(ids))
        raise RuntimeError("power cut")
    monkeypatch.setattr(queries, "delete_segments", crash)
    with pytest.raises(RuntimeError):
        recover(index)
    assert calls == [marked]                                      # both rows, one transaction
    assert not any((pdir / r.path).exists() for r in rec.rows[:2])
    assert sorted(r.id for r in index.select().where(Segment.deleting)) == marked
    monkeypatch.setattr(queries, "delete_segments", real_delete)
    report = recover(index)                                       # the next start
    assert sorted(report.deletes_finished) == sorted(r.path for r in rec.rows[:2])
    assert [r.path for r in index.select()] == [r.path for r in rec.rows[2:]]


def test_a_directory_that_cannot_be_synced_keeps_its_rows_marked(index, pdir, sources,
                                                                 monkeypatch):
    """An unlink is durable only once its directory is synced: when that fails (EIO), the
    rows stay marked for the next start, the error is reported, and recovery carries on."""
    import errno
    from recorder import recovery
    rec = install_segments(pdir, sources)
    marked = [r.id for r in rec.rows[:2]]
    Segment.update(deleting=True).where(Segment.id.in_(marked)).execute(index.db)
    real = recovery.fsync_dir

    def failing(path):
        raise OSError(errno.EIO, "Input/output error")
    monkeypatch.setattr(recovery, "fsync_dir", failing)
    report = recover(index)
    assert report.deletes_finished == []
    assert any("cannot sync" in e and "Input/output error" in e for e in report.errors)
    assert sorted(r.id for r in index.select().where(Segment.deleting)) == marked
    monkeypatch.setattr(recovery, "fsync_dir", real)
    report = recover(index)                                       # the next start
    assert sorted(report.deletes_finished) == sorted(r.path for r in rec.rows[:2])
