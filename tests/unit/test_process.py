"""StreamProcess's state machine, backoff and watchdog with a fake clock and a fake ffmpeg."""

import pytest

import fakes
from recorder import limits
from recorder.ffmpeg import StreamSpec
from recorder.events import CurrentSegmentHint, DiskFailure, SegmentClosed
from recorder.process import State, StreamProcess, backoff_delay, day_dirs, host_wall_us
from recorder.timekeeping import Timekeeper

T0_WALL = 1_790_000_000_000_000


class FakeClock(fakes.FakeClock):
    def __init__(self):
        super().__init__(T0_WALL)


class FakeSpawn(fakes.FakeSpawn):
    def __init__(self):
        super().__init__(record_argv=True)


@pytest.fixture
def env(tmp_path):
    clock = FakeClock()
    tk = Timekeeper(tmp_path / "last_time", clock=clock, ntp_check=lambda: True)
    tk.start()
    spawn = FakeSpawn()
    events = []
    spec = StreamSpec("cam1", "main", "rtsp://h/s", username="u", password="pw", segment_seconds=6)

    def make(**kw):
        return StreamProcess(spec, picorder_dir=tmp_path / "rec" / "picorder",
                             runtime_dir=tmp_path / "run", spawn=spawn, timekeeper=tk,
                             emit=events.append, rand=lambda: 0.5, **kw)
    return clock, spawn, events, make


def now(clock):
    return clock.mono / 1e6


def progress(proc, clock, frame, out_time_us):
    run = proc.run.run_id
    for line in (f"frame={frame}", "fps=15.0", f"out_time_us={out_time_us}", "progress=continue"):
        proc.feed(run, "progress", line, now(clock))


def run_a_while(proc, clock, seconds, fps=15):
    """Feed progress every second for `seconds`, ticking."""
    for _ in range(int(seconds)):
        clock.advance(1)
        last = proc.run.last_frame if proc.run.last_frame > 0 else 0
        progress(proc, clock, last + fps, (last + fps - 1) * 1_000_000 // fps)
        proc.tick(now(clock))


def test_start_running_and_states_logged(env, caplog):
    clock, spawn, events, make = env
    proc = make()
    assert proc.state == State.STOPPED
    caplog.set_level("INFO")
    proc.start()
    assert proc.state == State.STARTING and proc.pid == 1000
    assert (proc.runtime_dir / f"cam1.main.{proc.run.run_id}.ffconcat").exists()
    clock.advance(2)
    progress(proc, clock, 1, 0)
    assert proc.state == State.RUNNING
    assert any(isinstance(e, CurrentSegmentHint) for e in events)
    assert "cam1/main: STOPPED -> STARTING" in caplog.text
    assert "cam1/main: STARTING -> RUNNING" in caplog.text
    assert "pw" not in " ".join(spawn.children[0].argv)


def test_segment_line_gives_contiguous_wall_times(env):
    clock, spawn, events, make = env
    proc = make()
    proc.start()
    clock.advance(1)
    progress(proc, clock, 1, 0)           # stream time 0 arrived now
    anchor_wall = clock.wall_us()
    run_a_while(proc, clock, 12)
    rid = proc.run.run_id
    proc.feed(rid, "segments", "12-00-00.mp4,0.000000,5.000000", now(clock))
    proc.feed(rid, "segments", "12-00-06.mp4,5.000000,11.000000", now(clock))
    segs = [e for e in events if isinstance(e, SegmentClosed)]
    assert [s.start_us - anchor_wall for s in segs] == [0, 5_000_000]
    assert segs[0].end_us == segs[1].start_us
    assert all(s.clock_trusted for s in segs)
    assert proc.last_end_us == segs[1].end_us


def test_unexpected_exit_backs_off_with_problem(env):
    clock, spawn, events, make = env
    proc = make()
    proc.start()
    run = proc.run.run_id
    proc.feed(run, "stderr", "[rtsp @ 0x1] method DESCRIBE failed: 401 Unauthorized", now(clock))
    proc.feed(run, "stderr", "[concat @ 0x2] Impossible to open 'rtsp://u:pw@h/s'", now(clock))
    spawn.children[-1].rc = 1
    proc.tick(now(clock))
    assert proc.state == State.BACKOFF and proc.problem == "auth failed"
    assert "pw" not in proc.last_error and "401" in proc.last_error
    assert list(proc.runtime_dir.iterdir()) == []
    # Retries only after the backoff delay.
    clock.advance(0.5)
    proc.tick(now(clock))
    assert len(spawn.children) == 1
    clock.advance(1)
    proc.tick(now(clock))
    assert len(spawn.children) == 2 and proc.state == State.STARTING and proc.restarts == 1


def test_no_tight_loop_when_failing_forever(env):
    clock, spawn, events, make = env
    proc = make()
    proc.start()
    for _ in range(600 * 10):            # ten minutes of 0.1 s ticks
        if proc.state == State.STARTING:
            spawn.children[-1].rc = 1
        clock.advance(0.1)
        proc.tick(now(clock))
    # 1+2+4+8+16+32 s, then one try a minute: about 13 tries in ten minutes.
    assert 10 <= len(spawn.children) <= 16


def test_backoff_doubles_caps_and_jitters():
    mid = [backoff_delay(n, rand=lambda: 0.5) for n in range(1, 10)]
    assert mid[:7] == [1, 2, 4, 8, 16, 32, 60]
    assert max(mid) == limits.BACKOFF_CAP_S == 60
    low = backoff_delay(3, rand=lambda: 0.0)
    high = backoff_delay(3, rand=lambda: 1.0)
    assert low == pytest.approx(4 * (1 - limits.BACKOFF_JITTER))
    assert high == pytest.approx(4 * (1 + limits.BACKOFF_JITTER))
    assert limits.BACKOFF_INITIAL_S == 1


def test_backoff_resets_after_a_healthy_minute(env):
    clock, spawn, events, make = env
    proc = make()
    proc.start()
    for _ in range(4):                    # four quick failures
        spawn.children[-1].rc = 1
        proc.feed(proc.run.run_id, "stderr", None, now(clock))     # its stderr closed
        proc.tick(now(clock))
        clock.advance(limits.BACKOFF_CAP_S + 5)
        proc.tick(now(clock))
    assert proc.failures == 4
    progress(proc, clock, 1, 0)
    rid = proc.run.run_id
    for i in range(limits.HEALTHY_RESET_S.__int__() + 2):
        run_a_while(proc, clock, 1)
        if i % 5 == 0:
            proc.feed(rid, "segments", f"a{i}.mp4,{max(0, i - 5)},{i}", now(clock))
    assert proc.state == State.RUNNING and proc.failures == 0


def test_watchdog_default_is_20_s_without_progress(env):
    clock, spawn, events, make = env
    proc = make()
    assert proc.stall_s == limits.STALL_PROGRESS_S == 20
    proc.start()
    progress(proc, clock, 1, 0)
    run_a_while(proc, clock, 5)
    clock.advance(19)                      # frozen camera: no progress
    proc.tick(now(clock))
    assert proc.state == State.RUNNING
    clock.advance(2)
    proc.tick(now(clock))
    assert proc.state == State.STOPPING and proc.problem == "stalled"
    child = spawn.children[-1]
    assert child.stop_requests == 1 and not child.killed
    clock.advance(limits.STOP_GRACE_S + 0.5)
    proc.tick(now(clock))
    assert child.killed                    # did not stop gracefully: killed
    proc.tick(now(clock))
    assert proc.state == State.BACKOFF and proc.problem == "stalled"


def test_progress_lines_without_new_frames_are_a_stall(env):
    clock, spawn, events, make = env
    proc = make(stall_s=5)
    proc.start()
    progress(proc, clock, 10, 600_000)
    for _ in range(6):
        clock.advance(1)
        progress(proc, clock, 10, 600_000)
        proc.tick(now(clock))
    assert proc.problem == "stalled"


def test_watchdog_no_new_segment(env):
    clock, spawn, events, make = env
    proc = make()
    proc.start()
    progress(proc, clock, 1, 0)
    limit = limits.segment_watchdog_s(6)
    assert limit == 2 * 6 + 30
    run_a_while(proc, clock, limit - 1)
    assert proc.state == State.RUNNING
    run_a_while(proc, clock, 2)
    assert proc.state == State.STOPPING and proc.problem == "stalled"


def test_graceful_stop(env):
    clock, spawn, events, make = env
    proc = make()
    proc.start()
    progress(proc, clock, 1, 0)
    proc.stop()
    child = spawn.children[-1]
    assert proc.state == State.STOPPING and child.stop_requests == 1
    child.rc = 255
    proc.tick(now(clock))
    assert proc.state == State.STOPPED and not child.killed
    assert not proc.stopped                # segment list not read to its end yet
    rid = child and proc.run.run_id
    proc.feed(rid, "segments", "12-00-00.mp4,0.0,3.0", now(clock))
    proc.feed(rid, "segments", None, now(clock))
    assert not proc.stopped                # ... nor its stderr (why it failed)
    proc.feed(rid, "stderr", None, now(clock))
    assert proc.stopped
    assert any(isinstance(e, SegmentClosed) for e in events)   # the last segment is indexed


def test_missing_ffmpeg_is_fatal(env):
    clock, spawn, events, make = env

    def no_ffmpeg(argv_fn, sink):
        raise FileNotFoundError("ffmpeg")
    proc = make()
    proc.spawn = no_ffmpeg
    proc.start()
    assert proc.state == State.FATAL and "not installed" in proc.last_error


def test_status_fields(env):
    clock, spawn, events, make = env
    proc = make()
    proc.start()
    progress(proc, clock, 1, 0)
    run_a_while(proc, clock, 3)
    status = proc.status(now(clock))
    assert status.state == "RUNNING" and status.pid == 1000
    assert status.uptime_s == pytest.approx(3)
    assert status.frames == 46 and status.fps == 15.0
    wire = status.to_json()
    for key in ("since_utc_us", "restarts", "bitrate_kbps", "dropped", "duplicated",
                "bytes_written", "last_segment_utc_us", "last_error", "current_segment", "problem",
                "failing_since_utc_us", "last_arrival_utc_us", "segment_seconds"):
        assert key in wire


class FakeProbe:
    def __init__(self):
        self.watched = {}

    def watch(self, key, address):
        self.watched[key] = address

    def unwatch(self, key):
        self.watched.pop(key, None)


def probed_camera(make):
    """A started stream of a camera at 10.1.2.3:8554, with a FakeProbe."""
    probe = FakeProbe()
    proc = make(probe=probe)
    proc.spec = proc.spec.__class__("cam1", "main", "rtsp://10.1.2.3:8554/s", segment_seconds=6)
    proc.start()
    return proc, probe


def refuse(proc, probe, spawn, clock, times: int) -> None:
    """The camera refuses `times` tries in a row (each one retried when its backoff ends);
    each refusal backs off with the camera watched by the probe."""
    for i in range(times):
        if i:
            clock.advance(proc.retry_at - now(clock) + 0.01)
            proc.tick(now(clock))
        proc.feed(proc.run.run_id, "stderr", "Connection to tcp://10.1.2.3:8554 failed: "
                  "Connection refused", now(clock))
        spawn.children[-1].rc = 1
        proc.tick(now(clock))
        assert proc.state == State.BACKOFF
        assert probe.watched == {"cam1/main": ("10.1.2.3", 8554)}


def test_refused_camera_is_probed_and_retried_when_back(env):
    clock, spawn, events, make = env
    proc, probe = probed_camera(make)
    refuse(proc, probe, spawn, clock, 6)     # backoff grows to 32 s
    assert proc.state == State.BACKOFF and proc.retry_at - now(clock) > 10
    count = len(spawn.children)
    proc.retry_soon(now(clock))               # the probe connected: retry at once
    proc.tick(now(clock))
    assert len(spawn.children) == count + 1 and proc.state == State.STARTING
    assert probe.watched == {}


@pytest.mark.parametrize("line, problem", [
    ("Connection to tcp://10.1.2.3:8554 failed: Connection refused", "unreachable"),
    ("method DESCRIBE failed: 401 Unauthorized", "auth failed")])
def test_last_words_count_after_the_segment_list_closed(env, line, problem):
    """ffmpeg's pipes are read in any order: its stderr may come after its segment list
    closed, and still says why it failed (seen: a refused camera judged "unreachable"
    without the probe, and backed off for 16 s after it came back)."""
    clock, spawn, events, make = env
    proc, probe = probed_camera(make)
    run_id = proc.run.run_id
    spawn.children[-1].rc = 1
    proc.feed(run_id, "segments", None, now(clock))
    proc.feed(run_id, "stderr", line, now(clock))
    proc.feed(run_id, "stderr", None, now(clock))
    proc.tick(now(clock))
    assert proc.state == State.BACKOFF and proc.problem == problem
    assert run_id not in proc.runs                 # every pipe is read: the run is done
    assert (probe.watched != {}) == (problem == "unreachable")


def test_a_camera_back_from_an_outage_backs_off_afresh(env):
    """A booting camera takes connections before its stream is ready: the try the probe
    triggers fails another way, and the next one comes a second later, not a minute."""
    clock, spawn, events, make = env
    proc, probe = probed_camera(make)
    refuse(proc, probe, spawn, clock, 7)     # 1, 2 ... 64 -> 60 s
    assert proc.retry_at - now(clock) > 30
    proc.retry_soon(now(clock))               # the probe connected
    proc.tick(now(clock))
    assert proc.state == State.STARTING
    proc.feed(proc.run.run_id, "stderr", "method DESCRIBE failed: 503 Service Unavailable",
              now(clock))
    spawn.children[-1].rc = 1
    proc.tick(now(clock))                     # its last words are waited for
    clock.advance(limits.EXIT_LINES_WAIT_S + 0.1)
    proc.tick(now(clock))
    assert proc.state == State.BACKOFF
    assert proc.retry_at - now(clock) <= limits.BACKOFF_INITIAL_S * (1 + limits.BACKOFF_JITTER)
    assert probe.watched == {}                # not a connection failure: no probe


def test_auth_failure_is_not_probed(env):
    clock, spawn, events, make = env
    probe = FakeProbe()
    proc = make(probe=probe)
    proc.start()
    proc.feed(proc.run.run_id, "stderr", "401 Unauthorized", now(clock))
    spawn.children[-1].rc = 1
    proc.tick(now(clock))
    assert proc.state == State.BACKOFF and probe.watched == {}


VP8_LINES = ("[mp4 @ 0x1] Could not find tag for codec vp8 in stream #0, codec not currently "
             "supported in container",
             "Could not write header for output file #0 (incorrect codec parameters ?): "
             "Invalid argument")


def test_a_refused_stream_has_its_own_state_and_backoff_and_never_blames_the_disk(env):
    clock, spawn, events, make = env
    proc = make()
    proc.start()
    today = proc.picorder_dir / "cam1" / "main" / day_dirs(host_wall_us())[0]
    (today / "09-00-00.mp4").write_bytes(b"an earlier recording")
    for n in range(3):                    # three refused runs in a row
        (today / f"10-00-0{n}.mp4").touch()     # what ffmpeg opened before the muxer refused
        for line in VP8_LINES:
            proc.feed(proc.run.run_id, "stderr", line, now(clock))
        spawn.children[-1].rc = 1
        proc.tick(now(clock))
        status = proc.status(now(clock))
        assert status.state == "BACKOFF" and status.problem == "unsupported codec"
        assert status.problem_detail == ("the camera sends VP8, which picorder cannot store; "
                                            "choose H.264 or H.265 in the camera's settings")
        tries = len(spawn.children)
        clock.advance(proc.retry_at - now(clock) - 0.1)
        proc.tick(now(clock))
        assert len(spawn.children) == tries       # not before its own backoff ran out
        clock.advance(0.2)
        proc.tick(now(clock))
        assert len(spawn.children) == tries + 1
        status = proc.status(now(clock))          # retrying: the sentence stays
        assert status.state == "STARTING" and status.problem_detail.startswith(
            "the camera sends VP8")
    assert proc.refusals == 3 and proc.failures == 0
    assert [p.name for p in today.iterdir()] == ["09-00-00.mp4"]    # only the empty ones went
    assert not any(isinstance(e, DiskFailure) for e in events)
    # The camera was set to H.264: the next run records, and the sentence goes.
    progress(proc, clock, 1, 0)
    status = proc.status(now(clock))
    assert status.state == "RUNNING" and status.problem_detail is None


def test_refused_backoff_is_slower_than_a_network_retry():
    refused = [backoff_delay(n, rand=lambda: 0.5, initial_s=limits.REFUSED_BACKOFF_INITIAL_S,
                             cap_s=limits.REFUSED_BACKOFF_CAP_S) for n in range(1, 8)]
    assert refused == [10, 20, 40, 80, 160, 300, 300]
    assert all(r > backoff_delay(n, rand=lambda: 0.5) for n, r in enumerate(refused, 1))
