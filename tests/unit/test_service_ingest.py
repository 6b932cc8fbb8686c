"""A segment ffmpeg reported but the recorder could not index is logged as an error and
indexed by recovery at the next start (real index.db, real segment file, fake ffmpeg)."""

import logging
import shutil
import sqlite3
import time
from datetime import datetime, timezone
from pathlib import Path

import peewee
import pytest

import fakes
from helpers.mp4 import ffmpeg_segments, require_ffmpeg
from helpers.waiting import run_until
from recorder.index import Segment
from recorder.events import SEGMENTS
from recorder.process import State
from recorder.service import Recorder


class FakeSpawn(fakes.FakeSpawn):
    def __init__(self):
        super().__init__(first_pid=60_000, exits_on_stop=True)


def place_segment(pdir: Path, source: Path, age_s: float) -> str:
    """Copy `source` to where ffmpeg writes a segment it opened age_s ago (named by the host
    clock, as ffmpeg names it); its path relative to pdir."""
    when = datetime.fromtimestamp(time.time() - age_s, timezone.utc)
    rel = when.strftime("cam1/main/%Y/%m/%d/%H-%M-%S.mp4")
    (pdir / rel).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, pdir / rel)
    return rel


def indexed_paths(picorder_dir: Path) -> list[str]:
    with sqlite3.connect(f"file:{picorder_dir / 'index.db'}?mode=ro", uri=True) as db:
        return [r[0] for r in db.execute("SELECT path FROM segment ORDER BY start_us")]


def start_recorder(paths, storage, spawn) -> Recorder:
    rec = Recorder(paths, storage, spawn=spawn, ntp_check=lambda: None)
    rec.start()
    run_until(rec, lambda: rec.procs["cam1/main"].state == State.STARTING)
    return rec


def stop_recorder(rec: Recorder) -> None:
    rec.begin_shutdown("test")
    run_until(rec, lambda: rec._done)
    rec._finish()


@pytest.fixture(scope="module")
def segment_file(tmp_path_factory):
    require_ffmpeg()
    return ffmpeg_segments(tmp_path_factory.mktemp("src"), seconds=4, segment_s=4)[0]


def test_unindexable_segment_is_an_error_and_recovered_at_next_start(
        tmp_path, segment_file, monkeypatch, caplog):
    paths = fakes.data_with_cam1(tmp_path)
    storage = fakes.FakeStorage(tmp_path / "disk")
    pdir = storage.root / "picorder"
    spawn = FakeSpawn()

    rec = start_recorder(paths, storage, spawn)
    try:
        # ffmpeg closed a segment (named by the host clock, as ffmpeg names it) ...
        rel = place_segment(pdir, segment_file, 4)
        # ... but the index refuses the row (e.g. a locked or damaged index.db).
        real_insert = Segment.insert

        def failing_insert(*args, **kwargs):
            raise peewee.OperationalError("disk I/O error")
        monkeypatch.setattr(Segment, "insert", failing_insert)
        with caplog.at_level(logging.ERROR, logger="recorder.ingest"):
            spawn.children[0].sink(SEGMENTS, [f"{Path(rel).name},0.000000,4.000000"])
            run_until(rec, lambda: any(rel in r.getMessage() for r in caplog.records))
            run_until(rec, lambda: not rec.ingest.busy)
        errors = [r for r in caplog.records if rel in r.getMessage()]
        assert errors[0].levelno == logging.ERROR
        assert "recovery" in errors[0].getMessage()
        monkeypatch.setattr(Segment, "insert", real_insert)
    finally:
        stop_recorder(rec)
    assert (pdir / rel).exists()                    # never deleted ...
    assert indexed_paths(pdir) == []                # ... and not indexed yet

    rec = start_recorder(paths, storage, FakeSpawn())   # the next start
    try:
        assert indexed_paths(pdir) == [rel]
        # ... and its activity is found too (cam1 has no sub stream: its main is analysed).
        run_until(rec, lambda: activity_paths(pdir) == [rel])
    finally:
        stop_recorder(rec)


def activity_paths(picorder_dir: Path) -> list[str]:
    with sqlite3.connect(f"file:{picorder_dir / 'index.db'}?mode=ro", uri=True) as db:
        return [r[0] for r in db.execute("SELECT path FROM activity")]


def test_segment_lines_no_stream_owns_are_an_error(tmp_path, caplog):
    paths = fakes.data_with_cam1(tmp_path)
    spawn = FakeSpawn()
    rec = start_recorder(paths, fakes.FakeStorage(tmp_path / "disk"), spawn)
    try:
        from recorder.events import StreamLines
        with caplog.at_level(logging.ERROR, logger="recorder.service"):
            rec.dispatch(StreamLines("cam1/main", 12345, SEGMENTS, ("12-00-00.mp4,0.0,4.0",)))
        assert any("12-00-00.mp4" in r.getMessage() and r.levelno == logging.ERROR
                   for r in caplog.records)
    finally:
        stop_recorder(rec)


def test_a_file_holding_less_than_listed_is_not_indexed_nor_deleted(
        tmp_path, segment_file, caplog):
    """ffmpeg reused the name (a cut in the same second the file was opened): the file now
    holds the next segment, still being written. It must stay, and no row may claim it."""
    paths = fakes.data_with_cam1(tmp_path)
    storage = fakes.FakeStorage(tmp_path / "disk")
    pdir = storage.root / "picorder"
    spawn = FakeSpawn()
    rec = start_recorder(paths, storage, spawn)
    try:
        rel = place_segment(pdir, segment_file, 10)          # 4 s of video ...
        with caplog.at_level(logging.ERROR, logger="recorder.ingest"):
            # Not the run's first segment (whose file may start later than listed: the
            # camera's first keyframe), listed after one whose file is gone.
            first = "00-00-00.mp4,0.000000,10.000000"
            listed = f"{Path(rel).name},10.000000,20.000000"       # ... 10 s listed
            spawn.children[0].sink(SEGMENTS, [first, listed])
            run_until(rec, lambda: any(rel in r.getMessage() for r in caplog.records))
            run_until(rec, lambda: not rec.ingest.busy)
        assert "reused" in [r for r in caplog.records if rel in r.getMessage()][0].getMessage()
    finally:
        stop_recorder(rec)
    assert (pdir / rel).exists()
    assert indexed_paths(pdir) == []


def test_a_cut_segment_is_indexed_up_to_where_its_frames_stop_following_on(tmp_path):
    """A run cut at a jump forward: the file's frames after the jump are not covered."""
    import subprocess
    from helpers.mp4 import MOVFLAGS
    from recorder.index.tables import probe_segment
    from recorder.ingest import continuous_media_us
    require_ffmpeg()
    (whole,) = ffmpeg_segments(tmp_path / "a", seconds=4, segment_s=60)
    jumped = tmp_path / "jumped.mp4"           # 1.5 s forward after frame 30 (2.0 s)
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi",
                    "-i", "testsrc=size=320x240:rate=15,setpts=PTS+gte(N\\,30)*1.5/TB",
                    "-frames:v", "45", "-fps_mode", "passthrough", "-c:v", "libx264",
                    "-preset", "ultrafast", "-g", "15", "-movflags",
                    MOVFLAGS.split(":")[0].split("=", 1)[1], "-f", "mp4", str(jumped)],
                   check=True, timeout=60)
    assert abs(continuous_media_us(probe_segment(whole)) - 4_000_000) < 1_000
    info = probe_segment(jumped)
    assert info.duration_us > 4_000_000                   # the jump is in the file ...
    assert abs(continuous_media_us(info) - 29 * 66_667) < 1_000  # ... the row stops before it


def test_the_run_s_first_segment_starts_at_its_first_keyframe(tmp_path, segment_file):
    """ffmpeg lists a run's first segment from the first packet it read (a camera joined in
    the middle of a GOP), but its file starts at the first keyframe: the row starts there,
    its length that of its frames."""
    from recorder.index.tables import probe_segment
    paths = fakes.data_with_cam1(tmp_path)
    storage = fakes.FakeStorage(tmp_path / "disk")
    pdir = storage.root / "picorder"
    spawn = FakeSpawn()
    rec = start_recorder(paths, storage, spawn)
    media_us = probe_segment(segment_file).duration_us                # 4 s of video ...
    try:
        rel = place_segment(pdir, segment_file, 10)
        listed = f"{Path(rel).name},0.000000,{media_us / 1e6 + 0.6:.6f}"   # ... 4.6 s listed
        spawn.children[0].sink(SEGMENTS, [listed])
        run_until(rec, lambda: indexed_paths(pdir) == [rel], timeout=15)
    finally:
        stop_recorder(rec)
    with sqlite3.connect(f"file:{pdir / 'index.db'}?mode=ro", uri=True) as db:
        start_us, end_us, duration_us = db.execute(
            "SELECT start_us, end_us, duration_us FROM segment").fetchone()
    assert end_us - start_us == duration_us == media_us
