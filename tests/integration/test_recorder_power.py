"""A real recorder asked to reboot/power off where it must not: a clear error, nothing rebooted.

`systemctl` on the recorder's PATH is a stub that records its arguments, so even
on a machine where the request would be accepted nothing is really rebooted.
"""

import os

import pytest

from recorder import control
from recorder.power import NOT_SYSTEMD, systemd_is_pid1
from recorder.sim.launcher import SimCameras
from helpers.recorder import RecorderProcess, add_camera, set_setting, wait_for

pytestmark = pytest.mark.integration


def test_reboot_and_poweroff_refused_without_systemd(tmp_path, monkeypatch, ffmpeg_available):
    stub_dir = tmp_path / "bin"
    stub_dir.mkdir()
    called = tmp_path / "systemctl-called"
    stub = stub_dir / "systemctl"
    stub.write_text(f'#!/bin/sh\necho "$@" >> {called}\n')
    stub.chmod(0o755)
    monkeypatch.setenv("PATH", f"{stub_dir}{os.pathsep}{os.environ['PATH']}")
    data = tmp_path / "data"
    accepted = systemd_is_pid1() and os.geteuid() == 0
    with SimCameras(cameras=1, fps=10, gop=10) as sim:
        add_camera(data, "cam1", sim.url(1))
        set_setting(data, "segment_seconds", "4")
        rec = RecorderProcess(data).start()
        try:
            wait_for(lambda: rec.stream("cam1")["state"] == "RUNNING", 20, "cam1 running")
            pid = rec.stream("cam1")["pid"]
            if accepted:                       # a systemd machine, as root: the stub is run
                assert control.request(rec.paths.control_socket, "reboot") == \
                    {"action": "reboot", "queued": True}
                assert rec.proc.wait(20) == 0
                assert called.read_text() == "reboot\n"
                assert "shutting down (reboot requested)" in rec.log()
                return
            for action in ("reboot", "poweroff"):
                with pytest.raises(control.ControlError) as err:
                    control.request(rec.paths.control_socket, action)
                assert str(err.value) == NOT_SYSTEMD
            assert rec.proc.poll() is None
            assert rec.stream("cam1")["state"] == "RUNNING"
            assert rec.stream("cam1")["pid"] == pid          # recording went on untouched
            assert not called.exists()
            assert "shutting down" not in rec.log()
            rec.terminate()
        finally:
            rec.kill()
