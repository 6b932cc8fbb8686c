"""Control commands "reboot"/"poweroff": refused clearly, or a graceful stop then systemctl."""

import pytest

import fakes
from helpers.waiting import run_until
from recorder import control
from recorder.power import NOT_ROOT, NOT_SYSTEMD, Power, PowerError, PowerRequest, systemd_is_pid1
from recorder.process import State
from recorder.service import Recorder


def make_power(calls, *, root=True, systemd=True, events=None):
    return Power((events if events is not None else []).append,
                 runner=calls.append, is_root=lambda: root, systemd=lambda: systemd)


@pytest.mark.parametrize("root, systemd, message", [
    (True, False, NOT_SYSTEMD), (False, True, NOT_ROOT), (False, False, NOT_SYSTEMD)])
def test_refused_without_root_or_systemd(root, systemd, message):
    calls, events = [], []
    power = make_power(calls, root=root, systemd=systemd, events=events)
    for action in ("reboot", "poweroff"):
        with pytest.raises(PowerError, match=message):
            power.commands()[action]()
    assert events == [] and calls == [] and power.pending is None
    assert power.finish() is True and calls == []


def test_accepted_request_runs_systemctl_only_at_finish():
    calls, events = [], []
    power = make_power(calls, events=events)
    assert power.commands()["poweroff"]() == {"action": "poweroff", "queued": True}
    assert events == [PowerRequest("poweroff")] and calls == []
    power.accept(events[0])
    assert power.finish() is True
    assert calls == [["systemctl", "poweroff"]]


def test_runner_failure_is_reported_not_raised():
    def failing(argv):
        raise OSError(2, "No such file or directory: 'systemctl'")
    power = Power(lambda e: None, runner=failing, is_root=lambda: True, systemd=lambda: True)
    power.accept(PowerRequest("reboot"))
    assert power.finish() is False


def test_systemd_pid1_detection(tmp_path):
    (tmp_path / "1").mkdir()
    assert systemd_is_pid1(tmp_path) is False            # no comm file
    (tmp_path / "1" / "comm").write_text("systemd\n")
    assert systemd_is_pid1(tmp_path) is True
    (tmp_path / "1" / "comm").write_text("bash\n")
    assert systemd_is_pid1(tmp_path) is False


def _recorder(tmp_path):
    paths = fakes.data_with_cam1(tmp_path)
    storage = fakes.FakeStorage(tmp_path / "disk")
    storage.root.mkdir()
    spawn = fakes.FakeSpawn(first_pid=50_000, exits_on_stop=True)
    rec = Recorder(paths, storage, spawn=spawn, ntp_check=lambda: None,
                   recover=lambda index, trusted: None)
    return rec, spawn


def test_reboot_over_the_socket_stops_streams_before_systemctl(tmp_path):
    rec, spawn = _recorder(tmp_path)
    calls = []

    def runner(argv):                     # the streams must already be stopped here
        assert all(p.stopped for p in rec.procs.values())
        assert spawn.children[0].rc == 255
        calls.append(argv)
    rec.power = Power(rec.enqueue, runner=runner, is_root=lambda: True, systemd=lambda: True)
    rec.start()
    try:
        run_until(rec, lambda: rec.procs["cam1/main"].state == State.STARTING)
        result = control.request(rec.paths.control_socket, "reboot")
        assert result == {"action": "reboot", "queued": True}
        run_until(rec, lambda: rec._done)
        assert calls == []                # not before the recorder finished
    finally:
        rec.begin_shutdown("test")
        run_until(rec, lambda: rec._done)
        rec._finish()
    rec.power.finish()
    assert calls == [["systemctl", "reboot"]]


def test_refusal_over_the_socket_keeps_recording(tmp_path):
    rec, spawn = _recorder(tmp_path)
    calls = []
    rec.power = Power(rec.enqueue, runner=calls.append, is_root=lambda: True,
                      systemd=lambda: False)
    rec.start()
    try:
        run_until(rec, lambda: rec.procs["cam1/main"].state == State.STARTING)
        with pytest.raises(control.ControlError, match="not managed by systemd"):
            control.request(rec.paths.control_socket, "poweroff")
        for _ in range(10):
            rec.step(0.02)
        assert rec._shutdown_deadline is None and not rec._done
        assert rec.procs["cam1/main"].state == State.STARTING
    finally:
        rec.begin_shutdown("test")
        run_until(rec, lambda: rec._done)
        rec._finish()
    assert rec.power.finish() is True and calls == []
