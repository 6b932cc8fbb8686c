"""Clock trust and segment anchoring with an injected clock (clock steps, re-anchoring)."""

import pytest

import fakes
from recorder import limits
from recorder.ffmpeg import StreamSpec
from recorder.events import CurrentSegmentHint, SegmentClosed
from recorder.process import State, StreamProcess
from recorder.timekeeping import RunAnchor, Timekeeper

T0 = 1_790_000_000_000_000
HOUR = 3600 * 1_000_000


class FakeClock(fakes.FakeClock):
    def __init__(self, wall=T0):
        super().__init__(wall, mono_us=5_000_000)


def test_trust_sources(tmp_path):
    clock = FakeClock()
    f = tmp_path / "last_time"
    tk = Timekeeper(f, clock=clock, ntp_check=lambda: True)
    tk.start()
    assert (tk.trusted, tk.source) == (True, "ntp")

    tk = Timekeeper(f, clock=clock, ntp_check=lambda: None)
    tk.start()
    assert (tk.trusted, tk.source) == (False, "untrusted")     # nothing to compare with
    tk.save()
    assert int(f.read_text()) == T0

    clock.advance(10)
    tk = Timekeeper(f, clock=clock, ntp_check=lambda: False)
    tk.start()
    assert (tk.trusted, tk.source) == (True, "restored")       # not behind the last known time

    clock.step(-2 * HOUR)                                       # booted with a stale clock
    tk = Timekeeper(f, clock=clock, ntp_check=lambda: False)
    tk.start()
    assert not tk.trusted
    tk.save()                                                   # never moves the mark back
    assert int(f.read_text()) == T0


def test_poll_ntp_and_set_from_panel(tmp_path):
    clock = FakeClock()
    synced = [False]
    tk = Timekeeper(tmp_path / "t", clock=clock, ntp_check=lambda: synced[0])
    tk.start()
    assert not tk.poll()
    synced[0] = True
    assert tk.poll() and tk.source == "ntp"
    assert not tk.poll()
    with pytest.raises(ValueError, match="NTP"):
        tk.set_from_panel(T0)

    tk = Timekeeper(tmp_path / "u", clock=clock, ntp_check=lambda: None)
    tk.start()
    for bad in ("soon", 12, 1.5, True, 10**30):
        with pytest.raises(ValueError):
            tk.set_from_panel(bad)
    assert tk.set_from_panel(T0 + HOUR)
    assert clock.set_calls == [T0 + HOUR] and tk.source == "panel"
    assert abs(clock.wall_us() - (T0 + HOUR)) < 1000


def test_anchor_uses_earliest_arrival():
    anchor = RunAnchor(1, offset_us=T0, trusted=True, not_before_us=None)
    anchor.observe(3_000_000, 1_000_000)       # written 2 s after start: late report
    anchor.observe(2_500_000, 1_000_000)       # tighter
    anchor.observe(9_000_000, None)
    assert anchor.mono_anchor_us == 1_500_000
    assert anchor.wall_range(0, 4_000_000, 10_000_000) == (T0 + 1_500_000, T0 + 5_500_000)
    anchor.observe(0, 1_000_000)               # frozen once a segment was placed ...
    step = int(limits.DRIFT_MAX_RATE * 4_000_000)
    assert anchor.wall_range(4_000_000, 8_000_000, 0) == (T0 + 5_500_000,
                                                          T0 + 9_500_000 + step)
    # ... but for drift (the earliest recent sample, at 2 s, is 0.5 s later), by 1 % at most


def test_anchor_corrects_drift_by_at_most_its_rate():
    anchor = RunAnchor(1, offset_us=T0, trusted=True, not_before_us=None)
    anchor.observe(1_000_000, 0, report=True)
    anchor.observe(2_000_000, 1_000_000, report=True)
    assert anchor.wall_range(0, 4_000_000, 5_000_000) == (T0 + 1_000_000, T0 + 5_000_000)
    anchor.observe(10_000_000, 9_500_000)      # stream time 0.5 s ahead: a fast camera clock
    step = int(limits.DRIFT_MAX_RATE * 4_000_000)
    assert anchor.wall_range(4_000_000, 8_000_000, 0) == (T0 + 5_000_000,
                                                          T0 + 9_000_000 - step)


def started(tmp_path):
    clock = FakeClock()
    tk = Timekeeper(tmp_path / "t", clock=clock, ntp_check=lambda: True)
    tk.start()
    events = []
    proc = make_proc(tmp_path, clock, tk, events)
    proc.start()
    return clock, tk, events, proc


def report(proc, clock, frame, out_time_us):
    for line in (f"frame={frame}", f"out_time_us={out_time_us}", "progress=continue"):
        proc.feed(proc.run.run_id, "progress", line, clock.mono / 1e6)


def late_first_report(proc, clock):
    """Stream time 0 arrives now, ffmpeg buffers 2 s while probing, then reports time 0."""
    start_mono = clock.mono
    clock.advance(2)
    report(proc, clock, 1, 0)                   # 2 s late
    return proc.run.run_id, start_mono


def test_a_run_s_first_segments_wait_for_a_live_report(tmp_path):
    """ffmpeg's first report comes with the packets it buffered while probing, late; a
    segment cut inside that burst is listed late too. They are placed once a second
    report, a live one, has arrived."""
    clock, tk, events, proc = started(tmp_path)
    rid, start_mono = late_first_report(proc, clock)
    proc.feed(rid, "segments", "a.mp4,0.000000,1.000000", clock.mono / 1e6)   # 1 s late
    assert segments(events) == []
    # ... but the file opened now is looked for at once: it is named by the time.
    assert isinstance(events[-1], CurrentSegmentHint) and events[-1].run_id == rid
    clock.advance(1)
    report(proc, clock, 45, 3_000_000)          # live
    (a,) = segments(events)
    assert a.start_us == tk.offset_us() + start_mono
    assert a.end_us - a.start_us == 1_000_000


def test_without_a_second_report_segments_are_placed_by_their_list_lines(tmp_path):
    clock, tk, events, proc = started(tmp_path)
    rid, start_mono = late_first_report(proc, clock)
    clock.advance(1)                            # the packet at 3.0 s starts segment 2
    proc.feed(rid, "segments", "a.mp4,0.000000,3.000000", clock.mono / 1e6)
    proc.tick(clock.mono / 1e6)
    assert segments(events) == []
    clock.advance(limits.ANCHOR_SETTLE_MAX_S + 0.5)
    proc.tick(clock.mono / 1e6)
    (a,) = segments(events)
    assert a.start_us == tk.offset_us() + start_mono
    assert a.end_us - a.start_us == 3_000_000


def test_segments_still_held_when_ffmpeg_exits_are_placed(tmp_path):
    clock, tk, events, proc = started(tmp_path)
    rid, _ = late_first_report(proc, clock)
    proc.feed(rid, "segments", "a.mp4,0.000000,1.500000", clock.mono / 1e6)
    proc.feed(rid, "segments", None, clock.mono / 1e6)
    (a,) = segments(events)
    assert a.end_us - a.start_us == 1_500_000


def make_proc(tmp_path, clock, tk, events):
    spawned = []

    class Child:
        pid = 42
        rc = None
        stop_requests = 0

        def poll(self):
            return self.rc

        def request_stop(self):
            self.stop_requests += 1

    def spawn(argv_fn, sink):
        spawned.append(1)
        return Child()
    spec = StreamSpec("cam1", "main", "rtsp://h/s", segment_seconds=4)
    return StreamProcess(spec, picorder_dir=tmp_path / "p", runtime_dir=tmp_path / "run",
                         spawn=spawn, timekeeper=tk, emit=events.append)


def feed_run(proc, clock, seconds, start_stream_s=0):
    for i in range(seconds):
        report(proc, clock, i + 1, (start_stream_s + i) * 1_000_000)
        clock.advance(1)


def segments(events):
    return [e for e in events if isinstance(e, SegmentClosed)]


def test_clock_step_inside_a_run_keeps_it_contiguous(tmp_path):
    clock, tk, events, proc = started(tmp_path)
    feed_run(proc, clock, 5)
    rid = proc.run.run_id
    proc.feed(rid, "segments", "a.mp4,0,4", 0)
    clock.step(3 * HOUR)                                   # NTP steps the clock mid-run
    feed_run(proc, clock, 4, 5)
    proc.feed(rid, "segments", "b.mp4,4,8", 0)
    a, b = segments(events)
    assert a.end_us == b.start_us and b.end_us - b.start_us == 4_000_000


def test_new_run_after_backward_step_does_not_overlap(tmp_path):
    clock, tk, events, proc = started(tmp_path)
    feed_run(proc, clock, 9)
    proc.feed(proc.run.run_id, "segments", "a.mp4,0,8", 0)
    first = segments(events)[0]
    proc._on_exit(proc.run, 1, clock.mono / 1e6)          # camera dropped
    clock.step(-1 * HOUR)                                  # and the clock went back an hour
    clock.advance(2)
    proc.tick(clock.mono / 1e6)
    feed_run(proc, clock, 5)
    proc.feed(proc.run.run_id, "segments", "b.mp4,0,4", 0)
    second = segments(events)[1]
    assert second.start_us >= first.end_us                # no overlap
    assert second.end_us - second.start_us == 4_000_000   # and not negative or shrunk


def test_untrusted_run_reanchored_when_clock_becomes_trusted(tmp_path):
    clock = FakeClock(wall=T0 - 3 * HOUR)                 # RTC-less box, 3 h behind
    synced = [False]
    tk = Timekeeper(tmp_path / "t", clock=clock, ntp_check=lambda: synced[0])
    tk.start()
    events = []
    proc = make_proc(tmp_path, clock, tk, events)
    proc.start()
    feed_run(proc, clock, 9)
    proc.feed(proc.run.run_id, "segments", "a.mp4,0,8", 0)
    before = segments(events)[0]
    assert not before.clock_trusted
    true_start = before.start_us + 3 * HOUR
    clock.step(3 * HOUR)
    synced[0] = True
    assert tk.poll()
    (anchor,) = proc.untrusted
    delta = anchor.reanchor(tk.offset_us())
    assert delta == 3 * HOUR
    feed_run(proc, clock, 4, 9)
    proc.feed(proc.run.run_id, "segments", "b.mp4,8,12", 0)
    after = segments(events)[1]
    assert after.clock_trusted and after.start_us == true_start + 8_000_000
    assert before.start_us + delta == true_start


def test_trust_the_clock_as_it_is_only_when_it_agrees_with_the_browser(tmp_path):
    clock = FakeClock()
    tk = Timekeeper(tmp_path / "t", clock=clock, ntp_check=lambda: None)
    tk.start()
    off = int((limits.CLOCK_OFFER_TOLERANCE_S + 1) * 1e6)
    for bad in ("now", 1.5, True):
        with pytest.raises(ValueError, match="integer"):
            tk.trust_from_panel(bad)
    with pytest.raises(ValueError, match="set it from the browser"):
        tk.trust_from_panel(T0 + off)
    assert not tk.trusted
    assert tk.trust_from_panel(T0 + 2_000_000)             # 2 s apart: the clocks agree
    assert (tk.trusted, tk.source) == (True, "panel") and clock.set_calls == []   # not stepped
    assert int((tmp_path / "t").read_text()) == T0
    assert not tk.trust_from_panel(T0)                      # trusted already: nothing changes


def camera_hour(rate, seconds=3600, segment_s=60):
    """A stream whose clock runs at `rate` (1.005: 0.5 % fast) for `seconds`: progress every
    2 s, a segment cut every `segment_s` of the box's time. Returns (segments, true wall
    time of each segment's end, the process)."""
    import tempfile
    from pathlib import Path
    tmp = Path(tempfile.mkdtemp())
    clock, tk, events, proc = started(tmp)
    t0_mono = clock.mono
    rid = proc.run.run_id
    truth, last_end = [], 0
    for second in range(2, seconds + 1, 2):
        clock.advance(2)
        stream_us = int((clock.mono - t0_mono) * rate)
        report(proc, clock, second * 15, stream_us)
        if second % segment_s == 0:
            proc.feed(rid, "segments", f"s{second}.mp4,{last_end / 1e6:.6f},{stream_us / 1e6:.6f}",
                      clock.mono / 1e6)
            truth.append(tk.offset_us() + clock.mono)
            last_end = stream_us
    return segments(events), truth, proc


@pytest.mark.parametrize("rate", [1.005, 0.995])
def test_a_camera_clock_half_a_percent_off_for_an_hour_stays_within_a_second(rate):
    placed, truth, proc = camera_hour(rate)
    assert len(placed) == 60 and proc.spawns == 1          # one run: no discontinuity
    errors = [abs(seg.end_us - true_end) for seg, true_end in zip(placed, truth)]
    assert max(errors) < 1_000_000, max(errors)
    assert errors[-1] < 300_000                             # corrected, not accumulating
    for a, b in zip(placed, placed[1:]):
        assert b.start_us == a.end_us                       # contiguous, never overlapping
        media = 60_000_000 * rate
        assert abs((b.end_us - b.start_us) - media) <= limits.DRIFT_MAX_RATE * media + 1


def test_uncorrected_drift_would_add_up(monkeypatch):
    monkeypatch.setattr(limits, "DRIFT_MAX_RATE", 0.0)
    monkeypatch.setattr(limits, "DISCONTINUITY_S", 3600.0)
    placed, truth, _ = camera_hour(1.005, seconds=1200)
    assert abs(placed[-1].end_us - truth[-1]) > 5_000_000   # 0.5 % of 20 min = 6 s


def on_time(proc, clock, seconds):
    """A report a second for `seconds`, stream time keeping pace with the box's clock."""
    t0 = clock.mono
    for i in range(1, seconds + 1):
        clock.advance(1)
        report(proc, clock, i * 15, clock.mono - t0)
    return t0


@pytest.fixture
def file_clock(monkeypatch):
    """The host's real clock, which ffmpeg names its files by (T0 + 1.5 s unless moved;
    T0 is 20 s past a minute, so 1.5 s past a 4 s segment's start)."""
    wall = [T0 + 1_500_000]
    monkeypatch.setattr("recorder.process.host_wall_us", lambda: wall[0])
    return wall


def test_a_jump_forward_cuts_the_run_and_starts_a_new_one_beside_it(tmp_path, file_clock):
    clock, tk, events, proc = started(tmp_path)
    rid = proc.run.run_id
    old = proc.run.child
    t0 = on_time(proc, clock, 5)
    proc.feed(rid, "segments", "a.mp4,0,4", clock.mono / 1e6)     # its next file: T0 + 1
    file_clock[0] += 1_000_000
    clock.advance(1)
    report(proc, clock, 90, (clock.mono - t0) + 3600_000_000)   # an hour ahead at once
    assert proc.discontinuity_utc_us == clock.wall_us()
    # The cut run is asked to finish, and its successor started at once, not after its exit.
    assert old.stop_requests == 1 and proc.spawns == 2 and proc.state == State.STARTING
    assert proc.runs[rid].anchor.cut_us == 6_000_000               # extrapolated from 5 s
    new = proc.run.run_id
    clock.advance(1)
    report(proc, clock, 1, 0)
    clock.advance(2)
    report(proc, clock, 31, 2_000_000)
    proc.feed(new, "segments", "n.mp4,0,2", clock.mono / 1e6)      # the new run's first
    assert len(segments(events)) == 1        # waits: the cut run's list is still open
    proc.feed(rid, "segments", "b.mp4,4,3605", clock.mono / 1e6)       # clipped at the cut
    proc.feed(rid, "segments", "c.mp4,3605,3606", clock.mono / 1e6)    # after it: not placed
    old.rc = 255
    proc.feed(rid, "segments", None, clock.mono / 1e6)
    a, b, n = segments(events)
    assert b.start_us == a.end_us and b.end_us - b.start_us == 2_000_000 and b.cut
    assert n.run_id == new and n.start_us >= b.end_us                # no overlap
    assert n.start_us - b.end_us == 1_000_000    # its first frame came 1 s after the cut
    proc.tick(clock.mono / 1e6)
    assert proc.cut_runs == [] and proc.state == State.RUNNING
    assert not list((tmp_path / "run").glob(f"*.{rid}.ffconcat"))   # its list file is gone


def test_a_new_run_does_not_open_a_file_in_the_second_of_the_cut_run_s_newest(tmp_path,
                                                                              file_clock):
    clock, tk, events, proc = started(tmp_path)
    rid = proc.run.run_id
    t0 = on_time(proc, clock, 5)
    proc.feed(rid, "segments", "a.mp4,0,4", clock.mono / 1e6)     # it opened T0 + 1 ...
    file_clock[0] += 300_000                                       # ... and jumps at 1.8
    clock.advance(0.3)
    report(proc, clock, 90, (clock.mono - t0) + 3600_000_000)
    assert proc.spawns == 1 and proc.state == State.STARTING and proc.run is None
    clock.advance(0.1)
    proc.tick(clock.mono / 1e6)
    assert proc.spawns == 1                                        # still in second T0 + 1
    clock.advance(0.2)
    proc.tick(clock.mono / 1e6)
    assert proc.spawns == 2 and proc.run is not None               # T0 + 2 has begun
    proc.runs[rid].child.rc = 0
    proc.stop()
    proc.feed(rid, "segments", None, clock.mono / 1e6)
    proc.tick(clock.mono / 1e6)
    assert proc.cut_runs == []


def test_timestamps_going_back_cut_the_run(tmp_path, file_clock):
    clock, tk, events, proc = started(tmp_path)
    rid = proc.run.run_id
    on_time(proc, clock, 3)
    clock.advance(0.5)
    file_clock[0] += 1_000_000
    proc.feed(rid, "stderr", "[mp4 @ 0x1] Non-monotonous DTS in output stream 0:0; previous: "
                             "42, current: 7; changing to 43.", clock.mono / 1e6)
    assert proc.runs[rid].anchor.cut_us == 3_500_000 and proc.spawns == 2
    assert "Non-monotonous" in proc.last_error


def test_late_reports_are_load_until_they_persist(tmp_path, file_clock):
    clock, tk, events, proc = started(tmp_path)
    on_time(proc, clock, 3)
    for late in range(limits.DISCONTINUITY_LATE_SAMPLES - 1):
        clock.advance(3)
        report(proc, clock, 60 + late, 4_000_000 + late)    # read 2 s late (a busy box)
    assert proc.state == State.RUNNING
    clock.advance(1)
    report(proc, clock, 75, clock.mono - 5_000_000 - 1)     # on time again
    assert proc.state == State.RUNNING
    file_clock[0] += 1_000_000
    stuck = clock.mono - 5_000_000
    for late in range(limits.DISCONTINUITY_LATE_SAMPLES):  # the camera's clock stood still
        clock.advance(2)
        report(proc, clock, 90 + late, stuck + late)
    assert proc.spawns == 2                                 # behind, again and again: cut


def lagging(proc, clock, seconds, rate, t0, stream_us):
    """A report every 2 s for `seconds`, stream time going on at `rate` of the box's clock."""
    for _ in range(0, seconds, 2):
        if proc.run is None:                    # cut: the new run is starting
            break
        clock.advance(2)
        stream_us += int(2_000_000 * rate)
        report(proc, clock, 15, stream_us)
    return stream_us


def test_a_stream_that_lags_but_moves_keeps_its_run_and_the_camera_s_times(tmp_path,
                                                                           file_clock):
    """A starved box reads a camera at 70 % of real time for 12 s (3.6 s behind), then
    catches up: one run, no restart, and the anchor (when the camera took the frames)
    unchanged."""
    clock, tk, events, proc = started(tmp_path)
    rid = proc.run.run_id
    t0 = on_time(proc, clock, 5)
    anchor = proc.runs[rid].anchor.mono_anchor_us
    stream = lagging(proc, clock, 12, 0.7, t0, clock.mono - t0)
    assert clock.mono - t0 - stream == 3_600_000                  # 3.6 s behind
    assert proc.spawns == 1 and proc.state == State.RUNNING
    lagging(proc, clock, 4, 1.9, t0, stream)                      # the backlog arrives
    assert proc.spawns == 1 and proc.runs[rid].anchor.cut_us is None
    assert proc.runs[rid].anchor.mono_anchor_us == anchor


def test_a_stream_that_lags_past_the_bound_is_cut(tmp_path, file_clock):
    clock, tk, events, proc = started(tmp_path)
    rid = proc.run.run_id
    t0 = on_time(proc, clock, 5)
    lagging(proc, clock, 30, 0.7, t0, clock.mono - t0)            # 0.6 s more every 2 s
    assert proc.runs[rid].anchor.cut_us is not None               # cut past LAG_MAX_S ...
    behind = float(proc.last_error.split("fell ")[1].split(" s")[0])
    assert limits.LAG_MAX_S < behind < limits.LAG_MAX_S + 3 * 0.6 + 0.1   # ... soon after


def test_a_picture_that_resumes_where_it_froze_is_cut_though_it_moves_again(tmp_path,
                                                                           file_clock):
    """Frozen for 3 s (no new frame, the connection up), then on at full speed 3 s
    behind: the lateness came while stream time stood still, so it is a discontinuity."""
    clock, tk, events, proc = started(tmp_path)
    rid = proc.run.run_id
    t0 = on_time(proc, clock, 5)
    stream = clock.mono - t0
    clock.advance(3)                                              # frozen: nothing new
    stream += 40_000
    report(proc, clock, 15, stream)                               # one frame after it
    assert proc.spawns == 1
    lagging(proc, clock, 4, 1.0, t0, stream)                      # moving again, 3 s behind
    assert proc.runs[rid].anchor.cut_us is not None                # cut


def test_on_a_starved_box_a_late_stream_is_lag_until_the_bound(tmp_path, file_clock):
    """With 64 streams on 2 cores, ffmpeg and the camera servers wait for a CPU and a
    stream's time stands still for a report or two: that is the box, not the camera."""
    clock, tk, events, proc = started(tmp_path)
    rid = proc.run.run_id
    proc.runs[rid].anchor.starved = lambda: True
    t0 = on_time(proc, clock, 5)
    stream = clock.mono - t0
    clock.advance(3)
    report(proc, clock, 15, stream + 40_000)    # stood still for 3 s ...
    stream = lagging(proc, clock, 6, 1.0, t0, stream + 40_000)   # ... then on, 3 s behind
    assert proc.runs[rid].anchor.cut_us is None
    stream = lagging(proc, clock, 10, 0.5, t0, stream)   # 5.5 s behind: past LAG_MAX_S
    assert proc.runs[rid].anchor.cut_us is None
    lagging(proc, clock, 60, 0.5, t0, stream)   # past STARVED_LAG_MAX_S
    assert proc.runs[rid].anchor.cut_us is not None
    assert "fell 3" in proc.last_error


def test_on_a_starved_box_an_anchor_taken_late_is_pulled_in_not_cut(tmp_path, file_clock):
    clock, tk, events, proc = started(tmp_path)
    rid = proc.run.run_id
    anchor = proc.runs[rid].anchor
    anchor.starved = lambda: True
    t0 = on_time(proc, clock, 5)
    proc.feed(rid, "segments", "a.mp4,0,4", clock.mono / 1e6)  # placed: the anchor holds
    assert anchor.frozen
    lagging(proc, clock, 10, 1.3, t0, clock.mono - t0)      # 3 s early by the end
    assert anchor.cut_us is None and proc.spawns == 1
    anchor.starved = lambda: False                          # the same, on a box at ease
    lagging(proc, clock, 2, 1.3, t0, clock.mono - t0 + 3_000_000)
    assert anchor.cut_us is not None and "ahead" in proc.last_error


def test_cpu_pressure_reads_some_avg10(tmp_path):
    from recorder.timekeeping import CpuPressure
    psi = tmp_path / "cpu"
    now = [0.0]
    pressure = CpuPressure(psi, clock=lambda: now[0])
    assert pressure.starved() is False                          # no PSI: never starved
    psi.write_text("some avg10=40.12 avg60=20.00 avg300=5.00 total=123\n"
                   "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")
    assert pressure.starved() is False                          # read at most once a second
    now[0] += limits.CPU_PRESSURE_READ_S
    assert pressure.starved() is True
    psi.write_text("some avg10=3.50 avg60=20.00 avg300=5.00 total=123\n")
    now[0] += limits.CPU_PRESSURE_READ_S
    assert pressure.starved() is False
    psi.write_text("some avg10=lots\n")
    now[0] += limits.CPU_PRESSURE_READ_S
    assert pressure.starved() is False                          # garbage: not starved


def test_a_freeze_split_across_two_reports_is_not_lag(tmp_path, file_clock):
    """A report read 3 s after the last one, with 1.8 s of stream: 60 % of the box's
    clock, but 1.2 s lost in one interval. That is a freeze, not a lag: cut."""
    clock, tk, events, proc = started(tmp_path)
    rid = proc.run.run_id
    t0 = on_time(proc, clock, 5)
    stream = clock.mono - t0
    clock.advance(3)
    stream += 1_800_000
    report(proc, clock, 15, stream)
    lagging(proc, clock, 8, 1.0, t0, stream)                   # on at full speed, 1.2 s behind
    assert proc.runs[rid].anchor.cut_us is not None
