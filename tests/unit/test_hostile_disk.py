"""M1 and L7: a disk is data, never instructions; viewers see nothing that identifies a
disk (security review 2026-12, docs/design.md decision 7)."""

import json
import os
import sqlite3

import pytest

from helpers.panel import FakeRecorder, add_user, login, make_app, recorder_status
from recorder import retention
from recorder.index import Index, queries
from recorder.storage import disk_ops
from recorder.paths import DataPaths
from recorder.recovery import recover
from recorder.retention import SegmentRef

GOOD = "cam1/main/2026/12/06/10-00-00.mp4"


@pytest.fixture
def victim(tmp_path):
    path = tmp_path / "victim"
    path.write_text("precious\n")
    return path


def _hostile_paths(victim):
    return [str(victim), "../../victim", "cam1/main/../../../victim",
            "cam1/main/2026/12/06/../../../../../../victim"]


def _disk_with_rows(tmp_path, paths, *, deleting=True):
    """A disk whose own index.db names `paths`, as its maker wrote them."""
    pdir = tmp_path / "disk" / "picorder"
    pdir.mkdir(parents=True)
    index = Index.open(pdir / "index.db")
    for n, path in enumerate(paths):
        queries.insert_segment(index, camera="cam1", stream="main", path=path, start_us=n + 1,
                               end_us=n + 2, duration_us=1, bytes=1, deleting=deleting)
    index.close()
    return pdir


def test_interrupted_deletions_named_by_the_disk_stay_inside_it(tmp_path, victim):
    pdir = _disk_with_rows(tmp_path, _hostile_paths(victim) + [GOOD])
    (pdir / GOOD).parent.mkdir(parents=True)
    (pdir / GOOD).write_bytes(b"x")
    conn = queries.connect_for_retention(pdir / "index.db")
    retention.finish_interrupted(conn, pdir)
    assert victim.read_text() == "precious\n"
    assert not (pdir / GOOD).exists()                      # ours is still deleted
    assert conn.execute("SELECT count(*) FROM segment").fetchone()[0] == 0


def test_retention_deletes_nothing_through_a_linked_directory(tmp_path):
    outside = tmp_path / "elsewhere"
    (outside / "main/2026/12/06").mkdir(parents=True)
    (outside / "main/2026/12/06/10-00-00.mp4").write_text("precious\n")
    pdir = _disk_with_rows(tmp_path, [GOOD], deleting=False)
    os.symlink(outside, pdir / "cam1")
    conn = queries.connect_for_retention(pdir / "index.db")
    result = retention.apply_rotation(conn, pdir, [SegmentRef(1, "cam1", "main", GOOD, 1, 2, 1)])
    assert (outside / "main/2026/12/06/10-00-00.mp4").read_text() == "precious\n"
    assert result.refused == 1
    retention.prune_empty_dirs(pdir, [SegmentRef(1, "cam1", "main", GOOD, 1, 2, 1)], "2027/01/01")
    assert (outside / "main/2026/12/06").is_dir()


def test_recovery_finishes_no_deletion_outside_the_disk(tmp_path, victim):
    pdir = _disk_with_rows(tmp_path, _hostile_paths(victim))
    with Index.open(pdir / "index.db") as index:
        report = recover(index)
        assert index.select().count() == 0
    assert victim.read_text() == "precious\n"
    assert len(report.errors) == 4


def test_recovery_leaves_a_link_named_like_a_segment_alone(tmp_path, victim):
    pdir = _disk_with_rows(tmp_path, [])
    (pdir / GOOD).parent.mkdir(parents=True)
    os.symlink(victim, pdir / GOOD)
    with Index.open(pdir / "index.db") as index:
        report = recover(index)
    assert report.unrecognized == [GOOD] and not report.moved_aside
    assert (pdir / GOOD).is_symlink() and victim.read_text() == "precious\n"


def test_marker_write_follows_no_link_on_the_disk(tmp_path, victim):
    root = tmp_path / "disk"
    (root / "picorder").mkdir(parents=True)
    os.symlink(victim, root / "picorder" / "marker.json.tmp")
    marker = disk_ops.Marker.new("box", None)
    disk_ops.write_marker(root, marker)
    assert victim.read_text() == "precious\n"
    assert disk_ops.read_marker(root) == marker
    assert not (root / "picorder" / "marker.json.tmp").exists()


def test_a_linked_picorder_directory_is_refused(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    root = tmp_path / "disk"
    root.mkdir()
    os.symlink(elsewhere, root / "picorder")
    with pytest.raises(disk_ops.DiskError):
        disk_ops.write_marker(root, disk_ops.Marker.new("box", None))
    with pytest.raises(disk_ops.DiskError):
        disk_ops.read_marker(root)
    assert list(elsewhere.iterdir()) == []


def test_a_linked_marker_is_not_read(tmp_path, victim):
    root = tmp_path / "disk"
    (root / "picorder").mkdir(parents=True)
    victim.write_text(json.dumps({"disk_id": "d", "box_id": "b"}))
    os.symlink(victim, root / "picorder" / "marker.json")
    with pytest.raises(disk_ops.DiskError):
        disk_ops.read_marker(root)


def test_disks_are_mounted_nodev_nosuid_noexec():
    assert set(disk_ops.MOUNT_OPTIONS.split(",")) >= {"nodev", "nosuid", "noexec"}


# ------------------------------------------------------------------ L7

UUID = "0b2e9a3c-5f41-4c6e-9d7a-2f1e3b4c5d6e"
DISK_ID = "6f1c0d2e-disk-id-of-the-recording-disk"
BOX_ID = "b0c5e1d2-box-id"


def test_viewers_see_no_disk_identifiers_and_no_camera_user_names(tmp_path):
    app = make_app(tmp_path)
    add_user(app, "boss", "admin password", "admin")
    add_user(app, "watcher", "viewer password", "viewer")
    with app.app_context():
        from recorder.config import Camera
        Camera.create(name="cam1", main_url="rtsp://10.0.0.9/s", username="camuser",
                      password="campass")
    drive = {"device": "/dev/sda1", "fs_uuid": UUID, "serial": "WD-SERIAL-1",
             "marker_disk_id": DISK_ID, "marker_box_id": BOX_ID, "candidate": True,
             "mount_points": [f"/srv/picorder/disks/{UUID}"]}
    adopted = {"kind": "disk", "disk_id": DISK_ID, "root": f"/srv/picorder/disks/{UUID}",
               "uuid": UUID}
    root = tmp_path / "disks" / UUID
    root.mkdir(parents=True)
    status = recorder_status(root, [])
    status["storage"]["disks"] = [adopted]
    socket = FakeRecorder(DataPaths(tmp_path / "data").control_socket, lambda: status,
                          handlers={"disk_list": lambda: {"drives": [drive], "adopted": [adopted],
                                                          "state": "recording",
                                                          "root": adopted["root"]}})
    try:
        bodies = {}
        for user, password in (("watcher", "viewer password"), ("boss", "admin password")):
            client = app.test_client()
            assert login(client, user, password).status_code == 200
            bodies[user] = "".join(client.get(url).get_data(as_text=True)
                                   for url in ("/api/disks", "/api/status", "/api/cameras",
                                               "/api/cameras/cam1", "/storage"))
    finally:
        socket.close()
    for secret in (UUID, DISK_ID, BOX_ID, "WD-SERIAL-1", "camuser"):
        assert secret not in bodies["watcher"], secret
        assert secret in bodies["boss"], secret
    assert "campass" not in bodies["watcher"] + bodies["boss"]


def test_an_index_that_is_a_link_is_not_opened(tmp_path):
    """A disk's index.db linking to the box's config.db: root would migrate and prune it."""
    from recorder.paths import UnsafePath
    box_db = tmp_path / "config.db"
    sqlite3.connect(box_db).execute("CREATE TABLE camera (name TEXT)").connection.commit()
    before = box_db.read_bytes()
    pdir = tmp_path / "disk" / "picorder"
    pdir.mkdir(parents=True)
    os.symlink(box_db, pdir / "index.db")
    with pytest.raises(UnsafePath):
        Index.open(pdir / "index.db")
    with pytest.raises(UnsafePath):
        queries.connect_for_retention(pdir / "index.db")
    assert box_db.read_bytes() == before


@pytest.mark.parametrize("rel", [None, 5, "/cam1/main/2026/12/06/10-00-00.mp4",
                                 "cam1/main/../../x.mp4", "cam1//main/x.mp4", "x.txt",
                                 "cam1/main/2026/12/06/10-00-00.mp4\n", "CAM/main/2026/12/06/10-00-00.mp4"])
def test_what_root_deletes_is_only_the_segment_layout(rel):
    from recorder import segfiles
    from recorder.paths import UnsafePath
    with pytest.raises(UnsafePath):
        segfiles.check(rel)
    assert segfiles.check(GOOD) == GOOD
