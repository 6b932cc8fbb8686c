"""The control socket: server and client as recorder/control.py states the protocol."""

import json
import os
import socket
import stat

import pytest

import fakes
from helpers.waiting import run_until
from recorder import control
from recorder.control import ControlError, ControlServer, RecorderUnavailable
from recorder.service import Recorder


@pytest.fixture
def server(tmp_path):
    srv = ControlServer(tmp_path / "recorder.sock")
    srv.register("echo", lambda **args: args)
    srv.register("fail", lambda: (_ for _ in ()).throw(ValueError("no disk called sdz")))
    srv.register("boom", lambda: 1 / 0)
    srv.start()
    yield srv
    srv.stop()


def test_request_and_result(server):
    assert control.request(server.socket_path, "echo", a=1, b="x") == {"a": 1, "b": "x"}
    assert stat.S_IMODE(os.stat(server.socket_path).st_mode) == 0o660


def test_errors_are_clear(server):
    with pytest.raises(ControlError, match="no disk called sdz"):
        control.request(server.socket_path, "fail")
    with pytest.raises(ControlError, match="unknown command 'nope'"):
        control.request(server.socket_path, "nope")
    with pytest.raises(ControlError, match="bad arguments for fail"):
        control.request(server.socket_path, "fail", x=1)
    with pytest.raises(ControlError, match="inside the recorder"):
        control.request(server.socket_path, "boom")
    # The server is still up after all that.
    assert control.request(server.socket_path, "echo") == {}


def test_raw_garbage(server):
    for raw in (b"not json\n", b"[1,2]\n", b'{"cmd": 5}\n'):
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(server.socket_path))
            sock.sendall(raw)
            answer = json.loads(sock.makefile().readline())
        assert answer["ok"] is False and answer["error"]


def test_unavailable(tmp_path):
    with pytest.raises(RecorderUnavailable, match="not running"):
        control.request(tmp_path / "missing.sock", "status")
    stale = tmp_path / "stale.sock"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(stale))
    sock.close()                           # a socket file nobody listens on
    with pytest.raises(RecorderUnavailable):
        control.request(stale, "status")
    srv = ControlServer(stale)             # a new recorder replaces the stale socket
    srv.start()
    try:
        with pytest.raises(RuntimeError, match="already running"):
            ControlServer(stale).start()
    finally:
        srv.stop()
    assert not stale.exists()


def test_the_recorder_names_its_threads_by_kernel_id(tmp_path):
    """`threads` maps each thread's kernel id to its name, for per-thread CPU from
    /proc/PID/task/ID (benchmarks.recorder_threads)."""
    paths = fakes.data_with_cam1(tmp_path)
    storage = fakes.FakeStorage(tmp_path / "disk")
    storage.root.mkdir()
    rec = Recorder(paths, storage, spawn=fakes.FakeSpawn(first_pid=50_000, exits_on_stop=True),
                   ntp_check=lambda: None, recover=lambda index, trusted: None)
    rec.start()
    try:
        threads = control.request(rec.paths.control_socket, "threads")
        tasks = set(os.listdir("/proc/self/task"))
        lasting = {tid: name for tid, name in threads.items()
                   if name in ("MainThread", "control", "index-writer", "durability")}
        assert sorted(lasting.values()) == ["MainThread", "control", "durability", "index-writer"]
        assert set(lasting) <= tasks                   # kernel ids of this process's threads
    finally:
        rec.begin_shutdown("test")
        run_until(rec, lambda: rec._done)
        rec._finish()
