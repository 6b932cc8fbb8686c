"""Activity: the keyframe signal on real encoded segments, periods, and its index table."""

import sqlite3
import subprocess
from pathlib import Path

import pytest

from helpers.mp4 import MOVFLAGS, require_ffmpeg
from recorder import activity, config
from recorder.activity import ACTIVE_LEVEL, StreamActivity
from recorder.db import schema_version
from recorder.index import Activity, Index, queries
from recorder.index.tables import decode_tables, probe_segment

T0 = 1_800_000_000_000_000


def encode(path: Path, seconds: int, box: str, light_at: float) -> Path:
    """Bars with sensor noise, a box moving while `box` holds, a light switched on at light_at;
    10 fps, a keyframe every second."""
    graph = (f"smptebars=size=320x180:rate=10[bg];color=c=yellow:size=40x60:rate=10[box];"
             f"[bg][box]overlay=x='20+t*30':y=60:enable='{box}',"
             f"eq=brightness='if(gte(t,{light_at}),0.15,0)':eval=frame,noise=alls=8:allf=t")
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", graph,
                    "-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-g", "10",
                    "-bf", "0", "-movflags", MOVFLAGS.split(":")[0].split("=", 1)[1],
                    "-f", "mp4", str(path)], check=True, timeout=60)
    return path


def levels_of(path: Path, state: StreamActivity | None = None) -> bytes:
    info = probe_segment(path)
    return activity.analyse(path, decode_tables(info.tables).fragments, info.timescale,
                            state or StreamActivity())


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    require_ffmpeg()
    tmp = tmp_path_factory.mktemp("activity")
    return {"moving": encode(tmp / "moving.mp4", 12, "between(t,3,6)", 9.5),
            "still": encode(tmp / "still.mp4", 12, "0", 4.5)}


def test_moving_box_is_active_and_a_light_switched_on_is_not(clips):
    active = [i for i, v in enumerate(levels_of(clips["moving"])) if v >= ACTIVE_LEVEL]
    # The box moves from 3 s to 6 s; keyframes 1 s apart place it to within one second.
    assert active and 2 <= active[0] <= 3 and 6 <= active[-1] <= 7, active
    assert all(second <= 7 for second in active)          # the light at 9.5 s is not motion


def test_a_still_scene_with_noise_and_a_light_step_has_no_activity(clips):
    assert max(levels_of(clips["still"])) < ACTIVE_LEVEL


def test_the_first_keyframe_is_compared_with_the_segment_before(clips):
    state = StreamActivity()
    levels_of(clips["still"], state)
    assert state.last_thumb is not None
    # The moving clip's first keyframe (plain bars) against the still clip's last (lit
    # bars): a step seen by one pair only, so still nothing in its first second.
    assert levels_of(clips["moving"], state)[0] < ACTIVE_LEVEL


def test_periods_merge_close_seconds_and_clip_to_the_range():
    level = bytes([0, ACTIVE_LEVEL, ACTIVE_LEVEL + 50, 0, 0, ACTIVE_LEVEL, 0, 0, 0, 0,
                   ACTIVE_LEVEL - 1, 0, 0, 0, ACTIVE_LEVEL])
    got = activity.periods([(T0, level)], T0, T0 + 14_500_000)
    assert [(p.start_us - T0, p.end_us - T0, p.peak) for p in got] == [
        (1_000_000, 6_000_000, ACTIVE_LEVEL + 50), (14_000_000, 14_500_000, ACTIVE_LEVEL)]


def test_a_range_starting_in_a_quiet_second_of_a_period_starts_with_that_period():
    # Active 1-3 and 4-6 s: one period over the quiet second 3-4. Asked from 3.2 s (what
    # "next activity" asks, just after the playhead at the period's start), the period
    # in progress starts at 3.2 s, not at 4 s: a later start would look like the next one.
    level = bytes([0, ACTIVE_LEVEL, ACTIVE_LEVEL, 0, ACTIVE_LEVEL, ACTIVE_LEVEL, 0, 0, 0, 0,
                   0, 0, 0, 0, ACTIVE_LEVEL])
    got = activity.periods([(T0, level)], T0 + 3_200_000, T0 + 15_000_000)
    assert [(p.start_us - T0, p.end_us - T0) for p in got] == [
        (3_200_000, 6_000_000), (14_000_000, 15_000_000)]


def test_activity_table_is_migration_5_and_follows_its_segment(tmp_path):
    with Index.open(tmp_path / "index.db") as index:
        assert schema_version(index.db) == 5
        queries.insert_segment(index, camera="c", stream="sub", path="c/sub/a.mp4", start_us=T0,
                               end_us=T0 + 2_000_000, duration_us=2_000_000, bytes=1)
        assert queries.store_activity(index, "c/sub/a.mp4", "c", T0, T0 + 2_000_000,
                                      bytes([0, 200]))
        assert not queries.store_activity(index, "c/sub/gone.mp4", "c", T0, T0 + 1, b"\x01")
        assert queries.activity_tracks(index, "c", T0, T0 + 1) == [(T0, bytes([0, 200]))]
        assert queries.activity_tracks(index, "c", T0 + 2_000_000, T0 + 3_000_000) == []
        assert index.select(Activity).count() == 1
    with sqlite3.connect(tmp_path / "index.db") as conn:   # retention deletes this way
        conn.execute("DELETE FROM segment WHERE path = 'c/sub/a.mp4'")
        assert conn.execute("SELECT COUNT(*) FROM activity").fetchone()[0] == 0


def test_a_fresh_config_defaults_the_switch_on_for_rows_written_without_it(tmp_path):
    path = tmp_path / "config.db"
    try:
        config.open_config(path)
    finally:
        config.db.close()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO camera (name, display_name, main_url, transport, enabled) "
                     "VALUES ('side', '', 'rtsp://h/x', 'tcp', 1)")
        assert conn.execute("SELECT activity FROM camera").fetchone()[0] == 1


def _grid(box_at: int | None = None) -> bytes:
    """A 16 x 9 grid of block means: a gradient, with a bright 2 x 2 box."""
    cells = [40 + (i % 16) * 8 + (i // 16) * 4 for i in range(144)]
    if box_at is not None:
        for i in (box_at, box_at + 1, box_at + 16, box_at + 17):
            cells[i] = 255
    return bytes(cells)


def _keyframes(count: int) -> activity.Frames:
    times = [float(i) for i in range(count)]
    return activity.Frames(times, [1000] * count, [True] * count)


def test_motion_starting_in_a_segments_last_pair_is_marked_there_by_the_next_segment():
    state = StreamActivity()
    first = activity.keyframe_scores(_keyframes(6), [_grid()] * 5 + [_grid(40)], state)
    assert max(first) < 1.0 and state.held is not None        # held: maybe a light step
    second = activity.keyframe_scores(_keyframes(4), [_grid(44), _grid(48), _grid(), _grid()],
                                      state)
    assert state.amend is not None and second[0] >= 1.0
    fixed = activity.amended(activity.levels(first), state.amend)
    assert fixed[4] >= ACTIVE_LEVEL and max(fixed[:4]) == 0


def test_a_step_in_a_segments_last_pair_stays_out():
    state = StreamActivity()                  # something appeared, then nothing changes
    activity.keyframe_scores(_keyframes(6), [_grid()] * 5 + [_grid(40)], state)
    after = activity.keyframe_scores(_keyframes(3), [_grid(40)] * 3, state)
    assert state.amend is None and max(after) < 1.0


def test_each_camera_analyses_its_sub_stream_else_its_main_and_none_when_off(tmp_path):
    from recorder.service import Recorder
    try:
        config.open_config(tmp_path / "config.db")
        config.Camera.create(name="front", main_url="rtsp://h/1", sub_url="rtsp://h/1s")
        config.Camera.create(name="yard", main_url="rtsp://h/2")
        config.Camera.create(name="gate", main_url="rtsp://h/3", activity=False)
        config.Camera.create(name="shed", main_url="rtsp://h/4", enabled=False)
        assert Recorder.activity_streams(None) == {"front/sub", "yard/main"}
    finally:
        config.db.close()
