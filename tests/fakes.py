"""The unit tests' doubles for the recorder's seams: the clock, and ffmpeg children and their spawner."""

from recorder.process import SEGMENTS
from recorder.timekeeping import Clock


class FakeClock(Clock):
    """A clock that moves only when told: advance() runs both clocks, step() jumps the wall clock."""

    def __init__(self, wall_us: int, mono_us: int = 1_000_000_000):
        self.mono = mono_us
        self.wall_offset = wall_us - mono_us
        self.set_calls: list[int] = []

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


class FakeChild:
    """An ffmpeg that never runs. exits_on_stop: a stop request ends it at once (status 255),
    closing its segment list as ffmpeg does at exit; else it ignores stop requests and only
    a kill ends it (-9)."""

    def __init__(self, pid, sink=None, argv=None, exits_on_stop=False):
        self.pid = pid
        self.sink = sink
        self.argv = argv
        self.exits_on_stop = exits_on_stop
        self.rc = None
        self.stop_requests = 0
        self.killed = False

    def poll(self):
        return self.rc

    def request_stop(self):
        self.stop_requests += 1
        if self.exits_on_stop and self.rc is None:
            self.rc = 255
            self.sink(SEGMENTS, None)

    def kill(self):
        self.killed = True
        if self.exits_on_stop:
            self.request_stop()
        else:
            self.rc = -9


class FakeSpawn:
    """The spawner seam (StreamProcess's spawn): records each FakeChild it starts.

    record_argv: build each child's argv (with pipe fds 3 and 4) so tests can read it.
    """

    def __init__(self, first_pid=1000, exits_on_stop=False, record_argv=False):
        self.first_pid = first_pid
        self.exits_on_stop = exits_on_stop
        self.record_argv = record_argv
        self.children: list[FakeChild] = []

    def __call__(self, argv_fn, sink):
        argv = argv_fn(progress_fd=3, segments_fd=4) if self.record_argv else None
        child = FakeChild(self.first_pid + len(self.children), sink, argv, self.exits_on_stop)
        self.children.append(child)
        return child
