"""H1: the root recorder trusts nothing the panel's user can plant in the data directory
or write into config.db (security review 2026-12, docs/design.md decision 7)."""

import logging
import os
import pwd
import sqlite3

import pytest

from helpers.units import render_units
from picorder import firstboot
from recorder import config, ffmpeg, ffmpeg_user
from recorder.ffmpeg import StreamSpec
from recorder.paths import ENV_STATE_DIR, DataPaths, UnsafePath, inside
from recorder.service import Recorder
from recorder.storage.directory import WRITE_PROBE, check_directory
from recorder.timekeeping import Clock, Timekeeper


@pytest.fixture
def victim(tmp_path):
    path = tmp_path / "victim"
    path.write_text("precious\n")
    return path


def _record_owner_changes(monkeypatch) -> list[int]:
    """Patch every chown flavour to note the inode it would change."""
    touched: list[int] = []
    real_chown, real_fchown = os.chown, os.fchown

    def chown(path, uid, gid, *, dir_fd=None, follow_symlinks=True):
        st = os.stat(path, dir_fd=dir_fd, follow_symlinks=follow_symlinks)
        touched.append(st.st_ino)
        real_chown(path, uid, gid, dir_fd=dir_fd, follow_symlinks=follow_symlinks)

    def fchown(fd, uid, gid):
        touched.append(os.fstat(fd).st_ino)
        real_fchown(fd, uid, gid)

    monkeypatch.setattr(os, "chown", chown)
    monkeypatch.setattr(os, "fchown", fchown)
    monkeypatch.setattr(os, "lchown", lambda p, u, g: chown(p, u, g, follow_symlinks=False))
    return touched


def test_prepare_data_changes_no_owner_through_a_planted_link(tmp_path, victim, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    # What the panel's user could plant: a link under any name, and under a name
    # root does hand over (SQLite itself refuses a linked -wal or -shm file).
    os.symlink(victim, data / "innocent")
    os.symlink(victim, data / "secret_key")
    touched = _record_owner_changes(monkeypatch)
    me = pwd.getpwuid(os.getuid()).pw_name

    firstboot.prepare_data(data, me)

    assert victim.stat().st_ino not in touched
    # The directory and the database itself were still handed over.
    assert data.stat().st_ino in touched
    assert (data / "config.db").stat().st_ino in touched


def test_prepare_data_leaves_a_hard_link_alone(tmp_path, victim, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    os.link(victim, data / "secret_key")
    touched = _record_owner_changes(monkeypatch)
    firstboot.prepare_data(data, pwd.getpwuid(os.getuid()).pw_name)
    assert victim.stat().st_ino not in touched


def test_timekeeper_save_never_writes_through_a_planted_temporary_file(tmp_path, victim):
    os.symlink(victim, tmp_path / "last_time.tmp")
    keeper = Timekeeper(tmp_path / "last_time", ntp_check=lambda: False)
    keeper.save()
    assert victim.read_text() == "precious\n"
    assert int((tmp_path / "last_time").read_text()) == keeper.last_known_us
    # A link planted at the file's own name is replaced, not written through.
    (tmp_path / "last_time").unlink()
    os.symlink(victim, tmp_path / "last_time")
    keeper.save()
    assert victim.read_text() == "precious\n"
    assert not (tmp_path / "last_time").is_symlink()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == ["last_time.tmp"]


T_SAVED = 1_790_000_000_000_000


class _StoppedClock(Clock):
    def wall_us(self):
        return T_SAVED + 5_000_000


def test_the_last_known_time_lives_in_the_recorders_own_directory(tmp_path, monkeypatch):
    """Root writes last_time every minute: not into the panel's data directory, where the
    panel's user could plant links or race the name, but into the recorder's state
    directory; an old data/last_time is moved there once."""
    monkeypatch.setenv(ENV_STATE_DIR, str(tmp_path / "state"))
    paths = DataPaths(tmp_path / "data")
    paths.ensure()
    old = paths.root / "last_time"
    old.write_text(f"{T_SAVED}\n")
    keeper = Recorder(paths, storage=None, ntp_check=lambda: False).timekeeper
    assert keeper.clock_file == tmp_path / "state" / "last_time"
    keeper.start()
    assert (keeper.last_known_us, keeper.source) == (T_SAVED, "restored")
    assert int(keeper.clock_file.read_text()) == T_SAVED
    assert not old.exists()
    keeper.save()
    assert int(keeper.clock_file.read_text()) == keeper.last_known_us > T_SAVED
    assert sorted(p.name for p in paths.root.iterdir()) == []
    # Once moved, a file planted at the old name again is no longer read, only removed.
    old.write_text(f"{T_SAVED * 2}\n")
    Timekeeper(keeper.clock_file, old_clock_file=paths.old_clock_file,
               ntp_check=lambda: False).start()
    assert int(keeper.clock_file.read_text()) == keeper.last_known_us
    assert not old.exists()


def _plant_link(old, victim):
    victim.write_text(f"{T_SAVED}\n")          # plausible: only the link makes it wrong
    os.symlink(victim, old)


@pytest.mark.parametrize("plant", [
    _plant_link,
    lambda old, victim: os.mkfifo(old),                      # open() would block
    lambda old, victim: old.write_text("1" * 100_000),
    lambda old, victim: old.write_text("12 o'clock\n"),
    lambda old, victim: old.write_text("9" * 30 + "\n"),    # far past 2100
    lambda old, victim: old.write_bytes(b"\xff\xfe1\n"),
    lambda old, victim: old.mkdir(),
], ids=["link", "fifo", "huge", "words", "implausible", "not-ascii", "directory"])
def test_the_old_last_known_time_is_read_once_without_trusting_it(tmp_path, victim, plant):
    old, new = tmp_path / "data" / "last_time", tmp_path / "state" / "last_time"
    old.parent.mkdir()
    plant(old, victim)
    before = victim.read_text()
    keeper = Timekeeper(new, old_clock_file=old, clock=_StoppedClock(), ntp_check=lambda: False)
    keeper.start()
    assert (keeper.last_known_us, keeper.source) == (None, "untrusted")
    assert not new.exists()
    assert victim.read_text() == before
    assert not os.path.lexists(old) or old.is_dir()          # rmdir is not root's to do here


def test_the_recorder_unit_gives_the_recorder_a_state_directory_of_its_own(tmp_path):
    """The unit's PICORDER_STATE_DIR is its StateDirectory= (root's, 0700, writable in the
    sandbox), not the panel's data directory nor anything the panel unit may write."""
    units = render_units(["picorder-recorder.service", "picorder-panel.service"], tmp_path)

    def settings(unit):
        text = units[unit]
        pairs = [line.split("=", 1) for line in text.splitlines()
                 if "=" in line and not line.startswith("#")]
        return {k: [v for kk, v in pairs if kk == k] for k, _ in pairs}
    recorder, panel = settings("picorder-recorder.service"), settings("picorder-panel.service")
    assert recorder["StateDirectory"] == ["picorder-recorder"]
    assert recorder["StateDirectoryMode"] == ["0700"]
    assert f"{ENV_STATE_DIR}=/var/lib/picorder-recorder" in recorder["Environment"]
    panel_writes = " ".join(panel["ReadWritePaths"]).split()
    assert not any("/var/lib/picorder-recorder".startswith(p.rstrip("/") + "/")
                   or p.startswith("/var/lib/picorder-recorder") for p in panel_writes)
    assert "User" not in recorder                                   # root's


def test_the_write_probe_of_a_recording_directory_truncates_nothing_through_a_link(tmp_path,
                                                                                   victim):
    """L9: a server's or the demo's recording directory may be writable to others; a
    link planted at the write probe's name is replaced, never written through."""
    root = tmp_path / "recordings"
    root.mkdir()
    os.symlink(victim, root / WRITE_PROBE)
    assert check_directory(root, create=False).usable
    assert victim.read_text() == "precious\n"
    assert not os.path.lexists(root / WRITE_PROBE)


def _insert_raw_camera(db_path, name, url="rtsp://127.0.0.1:9/a", **extra):
    """Write a row the way the panel's user could: straight into config.db."""
    conn = sqlite3.connect(db_path)
    fields = {"name": name, "display_name": "x", "main_url": url, "transport": "tcp",
              "enabled": 1, **extra}
    if "activity" in {row[1] for row in conn.execute("PRAGMA table_info(camera)")}:
        fields.setdefault("activity", 1)        # NOT NULL since config.db v2
    conn.execute(f"INSERT INTO camera({','.join(fields)}) VALUES ({','.join('?' * len(fields))})",
                 list(fields.values()))
    conn.commit()
    conn.close()


def test_camera_rows_written_behind_the_panels_back_are_not_recorded(tmp_path, caplog):
    paths = DataPaths(tmp_path / "data")
    paths.ensure()
    config.open_config(paths.config_db)
    config.Camera.create(name="cam1", main_url="rtsp://127.0.0.1:9/a")
    _insert_raw_camera(paths.config_db, "../../escape")
    _insert_raw_camera(paths.config_db, "cam2\n")
    _insert_raw_camera(paths.config_db, "cam3", url="file:///etc/shadow")
    _insert_raw_camera(paths.config_db, "cam4", password="x'\nfile 'file:/etc/shadow")
    _insert_raw_camera(paths.config_db, "cam5", transport="-rtsp_flags")
    rec = Recorder(paths, storage=None, ntp_check=lambda: None)
    with caplog.at_level(logging.ERROR, logger="recorder.service"):
        specs = rec.desired_specs()
    assert sorted(specs) == ["cam1/main"]
    assert caplog.text.count("is not recorded") == 5
    assert "shadow" not in caplog.text.replace("file:///etc/shadow", "")


@pytest.mark.parametrize("camera", ["../../escape", "..", "a/b", ".", ""])
def test_root_builds_no_path_outside_its_directories_from_a_camera_name(tmp_path, camera):
    runtime = tmp_path / "run"
    pdir = tmp_path / "disk" / "picorder"
    pdir.mkdir(parents=True)
    spec = StreamSpec(camera, "main", "rtsp://127.0.0.1:9/a")
    try:
        source = ffmpeg.write_source_file(runtime, spec, 1)
    except UnsafePath:
        pass
    else:
        assert source.parent == runtime
    with pytest.raises(UnsafePath):
        ffmpeg_user.make_day_dirs(pdir, camera, "main", ["2026/12/06"], None)
    made = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_dir()}
    assert made == {"run", "disk", "disk/picorder"}


def test_a_linked_camera_directory_does_not_lead_outside(tmp_path):
    pdir = tmp_path / "disk" / "picorder"
    pdir.mkdir(parents=True)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    os.symlink(outside, pdir / "cam1")
    with pytest.raises(UnsafePath):
        ffmpeg_user.make_day_dirs(pdir, "cam1", "main", ["2026/12/06"], None)
    assert list(outside.iterdir()) == []
    assert inside(pdir, "cam2", "main") == pdir / "cam2" / "main"


def test_the_control_socket_changes_no_mode_through_a_path(tmp_path, monkeypatch):
    """The socket's mode comes from the umask at bind time, not from a chmod by name that
    would follow a link swapped in by the panel's user."""
    import stat
    from recorder.control import SOCKET_MODE, ControlServer
    calls = []
    monkeypatch.setattr(os, "chmod", lambda *a, **k: calls.append(a))
    server = ControlServer(tmp_path / "recorder.sock")
    server.start()
    try:
        assert calls == []
        assert stat.S_IMODE(os.stat(tmp_path / "recorder.sock").st_mode) == SOCKET_MODE
    finally:
        server.stop()
