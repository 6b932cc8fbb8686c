"""The service loop with fakes: the recording root goes away and comes back (disk unplugged)."""

import time
from pathlib import Path

import fakes
from recorder import config
from recorder.paths import DataPaths
from recorder.process import State
from recorder.service import Recorder


class FakeSpawn(fakes.FakeSpawn):
    def __init__(self):
        super().__init__(first_pid=50_000, exits_on_stop=True)


class Flip:
    """The storage's own event: the disk went away or came back."""

    def __init__(self, root):
        self.root = root


class FakeStorage:
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


def run_until(rec, predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        rec.step(0.02)


def test_root_lost_and_back(tmp_path):
    paths = DataPaths(tmp_path / "data")
    paths.ensure()
    config.open_config(paths.config_db)
    config.Camera.create(name="cam1", main_url="rtsp://127.0.0.1:9/a")
    storage = FakeStorage(tmp_path / "disk")
    storage.root.mkdir()
    spawn = FakeSpawn()
    recovered = []
    rec = Recorder(paths, storage, spawn=spawn, ntp_check=lambda: None,
                   recover=lambda pdir, trusted: recovered.append(pdir))
    rec.start()
    try:
        run_until(rec, lambda: rec.procs["cam1/main"].state == State.STARTING)
        assert recovered == [storage.root / "picorder"]
        assert (storage.root / "picorder" / "index.db").exists()

        storage.enqueue(Flip(None))                       # unplugged
        run_until(rec, lambda: rec.procs["cam1/main"].stopped)
        status = rec.status()
        assert status.storage["state"] == "disk missing"
        assert status.streams[0].state == "STOPPED"
        assert status.streams[0].problem == "disk missing"
        assert spawn.children[0].rc == 255                # asked to stop, not left running

        storage.enqueue(Flip(tmp_path / "disk"))          # plugged in again
        run_until(rec, lambda: rec.procs["cam1/main"].state == State.STARTING)
        assert len(spawn.children) == 2 and len(recovered) == 2
        assert rec.status().streams[0].problem is None
    finally:
        rec.begin_shutdown("test")
        run_until(rec, lambda: rec._done)
        rec._finish()
    assert not paths.control_socket.exists()


def test_every_message_type_has_a_handler_method():
    from recorder.service import HANDLERS
    missing = [name for name in HANDLERS.values() if not callable(getattr(Recorder, name, None))]
    assert missing == [] and len(set(HANDLERS.values())) == len(HANDLERS)
