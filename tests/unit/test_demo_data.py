"""`picorder demo` keeps to a data directory of its own and refuses an installed recorder's."""

import sqlite3
from pathlib import Path

import pytest

from picorder.cli import service as cmd_service
from recorder import config, paths
from picorder.cli.service import installed_recorder_reason
from recorder.paths import DEMO_MARKER, DataPaths, default_demo_dir


def test_root_gets_a_directory_in_var_tmp(monkeypatch):
    monkeypatch.setattr(paths.os, "geteuid", lambda: 0)
    assert default_demo_dir() == Path("/var/tmp/picorder-demo")


def test_a_user_gets_one_in_the_xdg_state_directory(monkeypatch, tmp_path):
    monkeypatch.setattr(paths.os, "geteuid", lambda: 1000)
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_demo_dir() == tmp_path / ".local" / "state" / "picorder-demo"
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert default_demo_dir() == tmp_path / "state" / "picorder-demo"


def make_config(root: Path, camera: bool = False, disks: str | None = None) -> None:
    data = DataPaths(root)
    data.ensure()
    config.open_config(data.config_db)
    if camera:
        config.Camera.create(name="door", main_url="rtsp://10.0.0.9/stream")
    if disks is not None:
        config.Setting.write("storage_disks", disks)
    config.db.close()


def test_the_appliance_directory_is_refused_whatever_it_holds(monkeypatch, tmp_path):
    monkeypatch.setattr(cmd_service, "ROOT_DATA_DIR", tmp_path / "lib")
    assert installed_recorder_reason(tmp_path / "lib") == "it is the appliance's state directory"


@pytest.mark.parametrize("camera, disks, reason", [
    (False, None, None),                             # settings only (as test_demo writes)
    (False, "[]", None),
    (True, None, "its config.db has 1 camera(s)"),
    (False, '[{"disk_id": "x"}]', "its config.db has adopted storage"),
])
def test_a_config_db_with_cameras_or_storage_is_a_recorders(tmp_path, camera, disks, reason):
    make_config(tmp_path / "data", camera, disks)
    assert installed_recorder_reason(tmp_path / "data") == reason


def test_the_demos_own_directory_is_its_own_even_with_cameras(tmp_path):
    make_config(tmp_path / "data", camera=True)
    (tmp_path / "data" / DEMO_MARKER).touch()
    assert installed_recorder_reason(tmp_path / "data") is None


def test_an_empty_or_new_directory_is_free(tmp_path):
    assert installed_recorder_reason(tmp_path / "new") is None
    assert installed_recorder_reason(tmp_path) is None


def test_an_unreadable_config_db_is_refused(tmp_path):
    (tmp_path / "config.db").write_text("not a database")
    assert installed_recorder_reason(tmp_path).startswith("its config.db cannot be read")


def test_the_check_changes_nothing(tmp_path):
    make_config(tmp_path / "data", camera=True)
    db = tmp_path / "data" / "config.db"
    before = db.read_bytes()
    installed_recorder_reason(tmp_path / "data")
    assert db.read_bytes() == before
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT name FROM camera").fetchall() == [("door",)]


def test_a_directory_a_recorder_runs_on_is_refused(tmp_path):
    import socket
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(DataPaths(tmp_path).control_socket))
        sock.listen()
        assert installed_recorder_reason(tmp_path) == "a recorder is running on it"
