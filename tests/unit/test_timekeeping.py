"""Clock trust and segment anchoring with an injected clock (clock steps, re-anchoring)."""

import pytest

from recorder import limits
from recorder.ffmpeg import StreamSpec
from recorder.process import CurrentSegmentHint, SegmentClosed, StreamProcess
from recorder.timekeeping import Clock, RunAnchor, Timekeeper

T0 = 1_790_000_000_000_000
HOUR = 3600 * 1_000_000


class FakeClock(Clock):
    def __init__(self, wall=T0):
        self.mono = 5_000_000
        self.wall_offset = wall - self.mono
        self.set_calls = []

    def wall_us(self):
        return self.mono + self.wall_offset

    def mono_us(self):
        return self.mono

    def advance(self, seconds):
        self.mono += int(seconds * 1e6)

    def step(self, us):                     # the host clock jumps (NTP sync, RTC-less Pi)
        self.wall_offset += us

    def set_wall_us(self, utc_us):
        self.set_calls.append(utc_us)
        self.wall_offset = utc_us - self.mono


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
    anchor.observe(0, 1_000_000)               # frozen once a segment was placed
    assert anchor.wall_range(4_000_000, 8_000_000, 0) == (T0 + 5_500_000, T0 + 9_500_000)


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

        def poll(self):
            return None

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
