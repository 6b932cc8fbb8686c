"""The typed status (JSON both ways) and a stream's state in words, on a fake clock."""

import pytest

from recorder import limits
from recorder.process import State
from recorder.status import (BAD, OFF, OK, WARN, RecorderStatus, StreamStatus, stream_health,
                             summarize)
from test_process import FakeSpawn, T0_WALL, now, progress, run_a_while  # noqa: F401
from test_process import env  # noqa: F401  (the fixture)

S = 1_000_000
T0 = 1_790_000_000 * S


def stream(**fields) -> StreamStatus:
    return StreamStatus("cam1", "main", **{"state": "RUNNING", "since_utc_us": T0,
                                           "segment_seconds": 60, **fields})


def test_json_round_trip_ignores_unknown_keys_and_fills_missing_ones():
    wire = RecorderStatus(version="1", pid=7, streams=[stream(fps=15.0)]).to_json()
    wire["streams"][0]["added_by_a_newer_recorder"] = 1
    wire["something_new"] = {}
    back = RecorderStatus.from_json(wire)
    assert back.streams[0] == stream(fps=15.0) and back.pid == 7
    old = RecorderStatus.from_json({"streams": [{"camera": "c", "stream": "sub", "state": "RUNNING"}]})
    assert old.stream("c", "sub").failing_since_utc_us is None and old.clock.trusted is None


def test_recording_only_while_segments_with_sane_times_land():
    arrived = T0 + 100 * S
    s = stream(last_segment_utc_us=arrived - 1 * S, last_arrival_utc_us=arrived)
    assert stream_health(s, arrived + 30 * S).words == "recording"
    # A running ffmpeg whose segments stopped landing (the review's 09:20 read at 09:26).
    stale_s = limits.STALE_SEGMENTS * 60 + limits.STALE_GRACE_S
    late = stream_health(s, arrived + int((stale_s + 1) * S))
    assert (late.level, late.words) == (BAD, "recording stopped")
    assert late.stopped_ago_s == pytest.approx(stale_s + 2)
    # A segment indexed 85 s before it arrived: its times are not sane.
    crammed = stream(last_segment_utc_us=arrived - 85 * S, last_arrival_utc_us=arrived)
    health = stream_health(crammed, arrived + S)
    assert (health.level, health.words, health.at_utc_us) == (BAD, "timestamps jumped", arrived - 85 * S)


def test_a_fresh_run_records_before_its_first_segment_but_not_for_ever():
    s = stream(last_arrival_utc_us=None)
    assert stream_health(s, T0 + 60 * S).level == OK
    assert stream_health(s, T0 + 600 * S).words == "recording stopped"


def test_failures_name_the_problem_and_keep_the_first_failure_time():
    first = T0 + 5 * S
    s = stream(state="BACKOFF", problem="not found", since_utc_us=T0 + 50 * S,
               failing_since_utc_us=first, failure="not found")
    health = stream_health(s, T0 + 60 * S)
    assert (health.level, health.words, health.since_utc_us) == (BAD, "no stream at this path", first)
    # Retrying: STARTING again, the problem is cleared but the failure is not over.
    s = stream(state="STARTING", problem=None, since_utc_us=T0 + 70 * S,
               failing_since_utc_us=first, failure="no answer")
    health = stream_health(s, T0 + 71 * S)
    assert (health.level, health.words, health.since_utc_us) == (BAD, "no answer from the camera", first)
    assert stream_health(stream(state="STARTING"), T0).level == WARN


def test_stopped_on_purpose_and_a_new_run_after_a_jump():
    assert stream_health(stream(state="STOPPED"), T0).level == OFF
    assert stream_health(stream(state="STOPPED", problem="disk missing"), T0).words == "no recording disk"
    jump = T0 + 10 * S
    s = stream(last_arrival_utc_us=jump + 5 * S, last_segment_utc_us=jump + 5 * S,
               discontinuity_utc_us=jump)
    health = stream_health(s, jump + 20 * S)
    assert (health.level, health.words, health.at_utc_us) == (WARN, "timestamps jumped", jump)
    s.last_arrival_utc_us = s.last_segment_utc_us = jump + int(limits.DISCONTINUITY_SHOWN_S * S)
    assert stream_health(s, jump + int((limits.DISCONTINUITY_SHOWN_S + 1) * S)).level == OK


def test_summary_counts_cameras_with_problems():
    assert summarize([OK, BAD, OK, OFF, BAD, OK, OK, WARN]).text == "2 of 8 cameras have problems."
    assert summarize([BAD]).text == "The camera has a problem."
    assert summarize([BAD, OK]).text == "1 of 2 cameras has a problem."
    assert summarize([OK, OK]).text == "All 2 cameras are recording."
    assert summarize([OK, OFF, OK]).text == "2 of 3 cameras are recording; 1 disabled."
    assert summarize([OK, WARN, OFF]).text == "No problems; 1 of 3 cameras needs a look; 1 disabled."
    assert summarize([]).text == "No cameras yet."


def test_process_keeps_the_first_failure_until_a_segment_lands(env):  # noqa: F811
    clock, spawn, events, make = env
    proc = make()
    proc.start()
    first = clock.wall_us()
    for _ in range(3):                        # the camera never answers: retry after retry
        clock.advance(limits.STARTING_TIMEOUT_S + 1)
        proc.tick(now(clock))                 # the watchdog stops the silent ffmpeg
        spawn.children[-1].rc = 255
        proc.tick(now(clock))
        status = proc.status(now(clock))
        assert status.state == "BACKOFF" and status.failure == "no answer"
        assert status.failing_since_utc_us == pytest.approx(first, abs=(limits.STARTING_TIMEOUT_S + 2) * S)
        failing_since = status.failing_since_utc_us
        clock.advance(limits.BACKOFF_CAP_S + 1)
        proc.tick(now(clock))                 # STARTING again: still failing, same "since"
        status = proc.status(now(clock))
        assert status.state == "STARTING" and status.failing_since_utc_us == failing_since
        health = stream_health(status, clock.wall_us())
        assert (health.words, health.since_utc_us) == ("no answer from the camera", failing_since)
    clock.advance(1)
    progress(proc, clock, 1, 0)
    run_a_while(proc, clock, 8)
    proc.feed(proc.run.run_id, "segments", "12-00-00.mp4,0.000000,6.000000", now(clock))
    status = proc.status(now(clock))
    assert status.failing_since_utc_us is None and status.last_arrival_utc_us == clock.wall_us()
    assert stream_health(status, clock.wall_us()).words == "recording"


def test_a_jump_in_the_camera_s_timestamps_is_noted_once_per_burst(env):  # noqa: F811
    clock, spawn, events, make = env
    proc = make()
    proc.start()
    progress(proc, clock, 1, 0)
    run_a_while(proc, clock, 3)
    line = ("[segment @ 0x1] Non-monotonous DTS in output stream 0:0; previous: 90112, "
            "current: -369664; changing to 90113. This may result in incorrect timestamps")
    proc.feed(proc.run.run_id, "stderr", "[segment @ 0x1] Non-monotonous DTS in output stream "
              "0:0; previous: 0, current: 0; changing to 1.", now(clock))
    assert proc.status(now(clock)).discontinuity_utc_us is None      # every run's first packet
    jump = clock.wall_us()
    rid = proc.run.run_id
    proc.feed(rid, "stderr", line, now(clock))
    for _ in range(5):                                 # the rest of the burst, from the cut run
        clock.advance(1)
        proc.feed(rid, "stderr", line, now(clock))
    status = proc.status(now(clock))
    assert status.discontinuity_utc_us == jump
    health = stream_health(status, clock.wall_us())
    assert (health.level, health.words, health.at_utc_us) == (WARN, "timestamps jumped", jump)
    clock.advance(limits.DISCONTINUITY_BURST_S + 1)
    proc.tick(now(clock))                              # the new run has started by now
    proc.feed(proc.run.run_id, "stderr", line, now(clock))
    assert proc.status(now(clock)).discontinuity_utc_us == clock.wall_us()   # a second jump


def test_picorder_status_prints_the_same_words():
    from picorder.cli.service import format_status

    first = T0 + 5 * S
    wire = RecorderStatus(version="1", pid=7, storage={"state": "recording", "root": "/srv"},
                          streams=[stream(fps=15.0, bitrate_kbps=900.0),
                                   StreamStatus("gate", "main", state="BACKOFF", problem="not found",
                                                since_utc_us=T0 + 60 * S, failing_since_utc_us=first,
                                                failure="not found", last_error="404 Not Found")])
    wire.clock.now_utc_us, wire.clock.trusted, wire.clock.source = T0 + 61 * S, False, "untrusted"
    text = format_status(wire.to_json())
    assert "clock NOT trusted (untrusted)" in text
    cam1, gate = text.splitlines()[2:4]
    assert cam1.startswith("cam1/main") and "recording" in cam1 and "15.0 fps" in cam1
    assert "no stream at this path since 2026-09-21 14:13:25" in gate


def test_a_failure_is_judged_by_ffmpeg_s_last_words_even_when_its_exit_is_seen_first(env):  # noqa: F811
    clock, spawn, events, make = env
    proc = make()
    proc.start()
    clock.advance(0.5)
    spawn.children[-1].rc = 1              # exited; the reader has not passed its lines on yet
    proc.tick(now(clock))
    assert proc.state == State.STARTING
    for line in ("[rtsp @ 0x1] method DESCRIBE failed: 404 Not Found", None):
        proc.feed(proc.run.run_id, "stderr", line, now(clock))
    proc.tick(now(clock))
    assert (proc.state, proc.problem) == (State.BACKOFF, "not found")
    # Lines that never come: judged after EXIT_LINES_WAIT_S, as a camera that went away.
    clock.advance(limits.BACKOFF_CAP_S + 5)
    proc.tick(now(clock))
    spawn.children[-1].rc = 1
    proc.tick(now(clock))
    clock.advance(limits.EXIT_LINES_WAIT_S)
    proc.tick(now(clock))
    assert (proc.state, proc.problem) == (State.BACKOFF, "unreachable")
    assert proc.status(now(clock)).failure == "unreachable"
