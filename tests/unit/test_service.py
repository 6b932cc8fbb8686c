"""The service loop with fakes: the recording root goes away and comes back (disk unplugged)."""

import fakes
from helpers.waiting import run_until
from recorder.process import State
from recorder.service import Recorder


class FakeSpawn(fakes.FakeSpawn):
    def __init__(self):
        super().__init__(first_pid=50_000, exits_on_stop=True)


def test_root_lost_and_back(tmp_path):
    paths = fakes.data_with_cam1(tmp_path)
    storage = fakes.FakeStorage(tmp_path / "disk")
    storage.root.mkdir()
    spawn = FakeSpawn()
    recovered = []
    rec = Recorder(paths, storage, spawn=spawn, ntp_check=lambda: None,
                   recover=lambda index, trusted: recovered.append(index.dir))
    rec.start()
    try:
        run_until(rec, lambda: rec.procs["cam1/main"].state == State.STARTING)
        assert recovered == [storage.root / "picorder"]
        assert (storage.root / "picorder" / "index.db").exists()

        storage.enqueue(fakes.Flip(None))                       # unplugged
        run_until(rec, lambda: rec.procs["cam1/main"].stopped)
        status = rec.status()
        assert status.storage["state"] == "disk missing"
        assert status.streams[0].state == "STOPPED"
        assert status.streams[0].problem == "disk missing"
        assert spawn.children[0].rc == 255                # asked to stop, not left running

        storage.enqueue(fakes.Flip(tmp_path / "disk"))          # plugged in again
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
