"""The tests' doubles for the recorder's seams: the clock, ffmpeg children and their spawner,
the storage, and udev's watcher."""

from pathlib import Path

from recorder import config
from recorder.events import SEGMENTS, STDERR
from recorder.paths import DataPaths
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
    closing its segment list and stderr as ffmpeg does at exit; else it ignores stop requests and only
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
            self.sink(STDERR, None)

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


class Flip:
    """FakeStorage's own event: the recording root went away (None) or came back."""

    def __init__(self, root: Path | None):
        self.root = root


class FakeStorage:
    """The Recorder's Storage seam: a root that only a Flip event changes."""

    def __init__(self, root: Path):
        self.root = root
        self.enqueue = None
        self.io_errors = []

    def start(self, enqueue):
        self.enqueue = enqueue

    def handle(self, event):
        if isinstance(event, Flip):
            changed = event.root != self.root
            self.root = event.root
            return changed
        return False

    def recording_root(self):
        return self.root

    def state(self):
        return {"state": "recording" if self.root else "disk missing",
                "root": str(self.root) if self.root else None}

    def report_io_error(self, errno_, detail, source=""):
        self.io_errors.append((errno_, detail))

    def control_commands(self):
        return {}

    def stop(self):
        pass


def data_with_cam1(tmp_path: Path) -> DataPaths:
    """A fresh data directory whose config.db (left open) holds camera cam1."""
    paths = DataPaths(tmp_path / "data")
    paths.ensure()
    config.open_config(paths.config_db)
    config.Camera.create(name="cam1", main_url="rtsp://127.0.0.1:9/a")
    return paths


class FakeWatcher:
    """Stands in for pyudev: a fixed enumeration, and a callback the test fires."""

    def __init__(self, events=()):
        self.events = events
        self.callback = None

    def enumerate(self):
        return list(self.events)

    def start(self, callback):
        self.callback = callback

    def stop(self):
        self.callback = None
