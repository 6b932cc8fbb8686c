"""plan_rotation (property-based), predictions, and the crash-safe deed on a real index.db."""

import sqlite3

import pytest
from hypothesis import given, settings, strategies as st

from recorder.retention import (
    DAY_US, REASON_AGE, REASON_FLOOR, REASON_SIZE, CameraLimits, RetentionError, SegmentRef,
    apply_rotation, check_floor, default_floor, finish_interrupted, plan_rotation,
    predict_retention, UsageTracker,
)
from recorder.index.queries import connect_for_retention as connect_index, iter_oldest

CAMERAS = ["a", "b", "c"]
NOW_US = 100 * DAY_US


@st.composite
def scenarios(draw):
    """Segments of up to three cameras, limits, free space and a floor."""
    n = draw(st.integers(0, 40))
    segs = []
    for i in range(n):
        cam = draw(st.sampled_from(CAMERAS))
        start = draw(st.integers(NOW_US - 20 * DAY_US, NOW_US))
        length = draw(st.integers(1, 120)) * 1_000_000
        size = draw(st.integers(1, 1000))
        segs.append(SegmentRef(i + 1, cam, draw(st.sampled_from(["main", "sub"])),
                               f"{cam}/seg{i}.mp4", start, start + length, size))
    segs.sort(key=lambda s: (s.start_us, s.id))
    lims = {}
    for cam in CAMERAS:
        lims[cam] = CameraLimits(
            max_age_days=draw(st.none() | st.integers(1, 25)),
            max_bytes=draw(st.none() | st.integers(1, 20000)))
    # Bytes of segments being written count towards a camera but are no candidates.
    writing = {cam: draw(st.integers(0, 500)) for cam in CAMERAS}
    camera_bytes = {cam: writing[cam] + sum(s.bytes for s in segs if s.camera == cam)
                    for cam in CAMERAS}
    protected = {s.path for s in segs if draw(st.booleans()) and draw(st.booleans())}
    free = draw(st.integers(0, 30000))
    floor = draw(st.integers(1, 30000))
    return segs, lims, camera_bytes, protected, free, floor


def _plan(segs, lims, camera_bytes, protected, free, floor):
    return plan_rotation(iter(segs), camera_bytes=camera_bytes, limits_by_camera=lims,
                         free_bytes=free, floor_bytes=floor, now_us=NOW_US, protected=protected)


def _expired(seg, lims):
    lim = lims[seg.camera]
    return lim.max_age_days is not None and seg.start_us < NOW_US - lim.max_age_days * DAY_US


def _limits_hold(segs, lims, camera_bytes, free, floor, deleted_ids):
    gone = [s for s in segs if s.id in deleted_ids]
    if free + sum(s.bytes for s in gone) < floor:
        return False
    for cam in CAMERAS:
        lim = lims[cam]
        left = camera_bytes[cam] - sum(s.bytes for s in gone if s.camera == cam)
        if lim.max_bytes is not None and left > lim.max_bytes:
            return False
    return not any(_expired(s, lims) for s in segs if s.id not in deleted_ids)


@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_never_deletes_the_segment_being_written(sc):
    segs, lims, camera_bytes, protected, free, floor = sc
    plan = _plan(*sc)
    assert not {s.path for s in plan.segments} & protected


@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_nothing_is_deleted_while_all_limits_hold(sc):
    segs, lims, camera_bytes, protected, free, floor = sc
    if _limits_hold(segs, lims, camera_bytes, free, floor, set()):
        assert _plan(*sc).deletions == ()


@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_limits_hold_afterwards_unless_nothing_is_left_to_delete(sc):
    segs, lims, camera_bytes, protected, free, floor = sc
    plan = _plan(*sc)
    ids = {s.id for s in plan.segments}
    deletable = [s for s in segs if s.path not in protected]
    if free + plan.bytes_freed < floor:
        assert not plan.floor_met
        assert {s.id for s in deletable} <= ids, "floor short but deletable segments kept"
    for cam in CAMERAS:
        left = camera_bytes[cam] - sum(s.bytes for s in plan.segments if s.camera == cam)
        if lims[cam].max_bytes is not None and left > lims[cam].max_bytes:
            assert {s.id for s in deletable if s.camera == cam} <= ids
    assert all(s.id in ids for s in deletable if _expired(s, lims))


@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_never_more_than_needed_and_oldest_first(sc):
    segs, lims, camera_bytes, protected, free, floor = sc
    plan = _plan(*sc)
    ids = {s.id for s in plan.segments}
    order = {s.id: i for i, s in enumerate(segs)}
    freed_before = 0
    cam_deleted = dict.fromkeys(CAMERAS, 0)
    for d in plan.deletions:
        seg = d.segment
        lim = lims[seg.camera]
        older = [s for s in segs[:order[seg.id]] if s.path not in protected]
        if d.reason == REASON_AGE:
            assert _expired(seg, lims)
        elif d.reason == REASON_SIZE:
            # Needed: the camera was still over its limit before this one went.
            assert camera_bytes[seg.camera] - cam_deleted[seg.camera] > lim.max_bytes
            assert all(s.id in ids for s in older if s.camera == seg.camera)
        else:
            assert d.reason == REASON_FLOOR
            assert free + freed_before < floor
            assert all(s.id in ids for s in older)
        freed_before += seg.bytes
        cam_deleted[seg.camera] += seg.bytes
    assert plan.bytes_freed == freed_before


def test_walk_stops_early_on_a_long_list():
    segs = [SegmentRef(i, "a", "main", f"a/{i}.mp4", NOW_US - (1000 - i) * 60_000_000,
                       NOW_US - (999 - i) * 60_000_000, 100) for i in range(1000)]
    consumed = []

    def lazy():
        for s in segs:
            consumed.append(s)
            yield s

    plan = plan_rotation(lazy(), camera_bytes={"a": 100_000}, limits_by_camera={},
                         free_bytes=0, floor_bytes=450, now_us=NOW_US)
    assert [s.id for s in plan.segments] == [0, 1, 2, 3, 4]
    assert len(consumed) == 6


@pytest.mark.parametrize("kwargs", [{"max_age_days": 0}, {"max_age_days": -3},
                                    {"max_bytes": 0}, {"max_bytes": -1}, {"min_days": 0},
                                    {"max_age_days": 1.5}, {"max_bytes": True}])
def test_zero_or_negative_retention_is_refused(kwargs):
    with pytest.raises(RetentionError, match="greater than zero|whole number"):
        CameraLimits(**kwargs)


@pytest.mark.parametrize("floor", [0, -1, 2.5, None])
def test_bad_floor_is_refused(floor):
    with pytest.raises(RetentionError):
        check_floor(floor)


def test_default_floor():
    gib = 1024**3
    assert default_floor(1000 * gib, 0) == 50 * gib                 # 5 %
    assert default_floor(10 * gib, 0) == 2 * gib                    # 2 GiB minimum
    assert default_floor(1000 * gib, 80 * gib / 3600) == 80 * gib    # 1 h of a huge bitrate
    assert default_floor(1 * gib, 0) == gib // 2                    # never more than half


def test_predicted_retention_and_min_days_warning():
    rate = 1_000_000 / 8 * 4      # 4 Mbit/s in bytes/s
    lims = {"a": CameraLimits(max_bytes=int(rate * 86400 * 2), min_days=7),
            "b": CameraLimits(max_age_days=3)}
    fc = predict_retention({"a": rate, "b": rate}, lims, used_bytes=0,
                           free_bytes=int(rate * 2 * 86400 * 10) + 100, floor_bytes=100)
    assert fc.disk_days == pytest.approx(10)
    cams = {c.camera: c for c in fc.cameras}
    assert cams["a"].days == pytest.approx(2) and cams["a"].limited_by == "max_bytes"
    assert "raise max_bytes" in cams["a"].warning
    assert cams["b"].days == 3 and cams["b"].warning is None
    assert fc.to_json()["cameras"]["b"]["text"] == "about 3 days at the current bitrate"


# ------------------------------------------------------------- the deed

def _make_index(tmp_path, n):
    pdir = tmp_path / "picorder"
    db = pdir / "index.db"
    pdir.mkdir()
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE segment (id INTEGER PRIMARY KEY, camera TEXT, stream TEXT, "
                 "path TEXT UNIQUE, start_us INTEGER, end_us INTEGER, duration_us INTEGER, "
                 "bytes INTEGER, frames INTEGER, codec TEXT, width INTEGER, height INTEGER, "
                 "clock_trusted INTEGER, run_id INTEGER, deleting INTEGER DEFAULT 0)")
    for i in range(n):
        rel = f"cam1/main/2026/01/01/00-{i:02d}-00.mp4"
        (pdir / rel).parent.mkdir(parents=True, exist_ok=True)
        (pdir / rel).write_bytes(b"x" * 10)
        conn.execute("INSERT INTO segment (camera, stream, path, start_us, end_us, duration_us,"
                     " bytes, frames, codec, width, height, clock_trusted, run_id, deleting)"
                     " VALUES ('cam1','main',?,?,?,60000000,10,0,'h264',0,0,1,0,0)",
                     (rel, i * 60_000_000, (i + 1) * 60_000_000))
    conn.commit()
    conn.close()
    return pdir


def test_apply_rotation_deletes_rows_and_files(tmp_path):
    pdir = _make_index(tmp_path, 12)
    conn = connect_index(pdir / "index.db")
    segs = list(iter_oldest(conn))[:5]
    result = apply_rotation(conn, pdir, segs, batch=2)
    assert [s.id for s in result.deleted] == [s.id for s in segs]
    assert conn.execute("SELECT COUNT(*) FROM segment").fetchone()[0] == 7
    assert not any((pdir / s.path).exists() for s in segs)
    assert len(list((pdir / "cam1/main/2026/01/01").iterdir())) == 7


def test_interrupted_rotation_is_finished(tmp_path):
    pdir = _make_index(tmp_path, 6)
    conn = connect_index(pdir / "index.db")
    segs = list(iter_oldest(conn))[:4]

    class Crash(Exception):
        pass

    def crash(chunk):
        raise Crash()

    with pytest.raises(Crash):
        apply_rotation(conn, pdir, segs, after_mark=crash)
    # Marked rows are hidden from new plans, files still there.
    assert [s.id for s in iter_oldest(conn)] == [5, 6]
    assert all((pdir / s.path).exists() for s in segs)
    assert finish_interrupted(conn, pdir) == 4
    assert conn.execute("SELECT COUNT(*) FROM segment").fetchone()[0] == 2
    assert not any((pdir / s.path).exists() for s in segs)
    assert finish_interrupted(conn, pdir) == 0


def test_usage_tracker_counts_incrementally(tmp_path):
    pdir = _make_index(tmp_path, 3)
    conn = connect_index(pdir / "index.db")
    clock = [0.0]
    tracker = UsageTracker(clock=lambda: clock[0])
    assert tracker.totals(conn) == {"cam1": 30}
    conn.execute("INSERT INTO segment (camera, stream, path, start_us, end_us, duration_us, bytes,"
                 " frames, codec, width, height, clock_trusted, run_id, deleting) VALUES"
                 " ('cam2','main','x.mp4',0,1,1,50,0,'',0,0,1,0,0)")
    assert tracker.totals(conn) == {"cam1": 30, "cam2": 50}
    gone = list(iter_oldest(conn))[:1]
    apply_rotation(conn, pdir, gone)
    tracker.forget(gone)
    assert tracker.totals(conn)["cam1"] == 20
