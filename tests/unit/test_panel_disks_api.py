"""The JSON API's disk routes against a fake control socket: roles, CSRF, bad input, no recorder."""

import pytest

from helpers.panel import (FakeRecorder, add_user, admin_session, issue_token, login, make_app,
                           recorder_status)
from recorder.paths import DataPaths

UUID = "0b2e9a3c-5f41-4c6e-9d7a-2f1e3b4c5d6e"
OTHER_UUID = "11111111-2222-3333-4444-555555555555"
DRIVES = [{"device": "/dev/sda1", "size": 64_000_000_000, "fs_type": "ext4", "fs_uuid": UUID,
           "label": "PICORDER", "bus": "usb", "mounted": False, "candidate": True,
           "system": False},
          {"device": "/dev/mmcblk0p2", "size": 8_000_000_000, "fs_type": "ext4",
           "fs_uuid": OTHER_UUID, "label": "rootfs", "bus": None, "mounted": True,
           "candidate": False, "system": True}]


class FakeDisks:
    """The storage part's disk commands, as the recorder answers them; nothing is formatted."""

    def __init__(self):
        self.adopted = []

    def disk_list(self):
        return {"drives": DRIVES, "adopted": self.adopted, "state": "no disk", "root": None}

    def disk_adopt(self, uuid):
        if uuid == OTHER_UUID:
            raise ValueError("/dev/mmcblk0p2 holds the system (root or boot filesystem): "
                             "it can never be a recording disk")
        if uuid != UUID:
            raise ValueError(f"no attached disk has the filesystem UUID {uuid}")
        entry = {"kind": "disk", "disk_id": "d1", "root": f"/srv/picorder/disks/{uuid}",
                 "uuid": uuid}
        self.adopted.append(entry)
        return entry

    def disk_adopt_dir(self, path, allow_root_device):
        if not allow_root_device:
            raise ValueError(f"{path} is on the system disk (the one holding /): recordings "
                             "would fill it; pass --allow-root-device if this is really wanted")
        return {"kind": "dir", "disk_id": "d2", "root": path, "uuid": None}

    def disk_format(self, device, confirm, force):
        if device != "/dev/sda1" or confirm != device:
            raise ValueError(f"{device} is not an attached disk (see `picorder disk list`)")
        if not force:
            raise ValueError(f"{device} holds data (ext4); formatting would erase it: "
                             "add --force if that is what you want")
        return {"device": device, "uuid": UUID, "label": "PICORDER"}

    def disk_eject(self, uuid):
        if uuid != UUID:
            raise ValueError(f"no adopted disk has the filesystem UUID {uuid}")
        return {"uuid": uuid, "unmounted": True}

    def handlers(self):
        return {name: getattr(self, name) for name in
                ("disk_list", "disk_adopt", "disk_adopt_dir", "disk_format", "disk_eject")}


@pytest.fixture
def panel(tmp_path):
    app = make_app(tmp_path)
    admin = admin_session(app)
    add_user(app, "watcher", "viewer password", "viewer")
    viewer = app.test_client()
    assert login(viewer, "watcher", "viewer password").status_code == 200
    return app, admin, viewer


@pytest.fixture
def recorder(tmp_path):
    fake = FakeDisks()
    socket = FakeRecorder(DataPaths(tmp_path / "data").control_socket,
                          lambda: recorder_status(None, []), handlers=fake.handlers())
    yield socket
    socket.close()


def sent(recorder, cmd):
    return [{k: v for k, v in c.items() if k != "cmd"} for c in recorder.commands
            if c.get("cmd") == cmd]


def test_viewer_lists_drives_adopted_disks_and_storage_state(panel, recorder):
    _app, _admin, viewer = panel
    response = viewer.get("/api/disks")
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert [d["device"] for d in body["drives"]] == ["/dev/sda1", "/dev/mmcblk0p2"]
    assert body["adopted"] == []
    assert body["storage"]["state"] == "recording"      # from the recorder's status


def test_viewer_and_viewer_token_cannot_change_disks(panel, recorder):
    app, _admin, viewer = panel
    token = issue_token(app, "view", "viewer")
    for url, body in (("/api/disks/adopt", {"uuid": UUID}),
                      ("/api/disks/format", {"device": "/dev/sda1", "confirm": "/dev/sda1"}),
                      ("/api/disks/eject", {"uuid": UUID})):
        response = app.test_client().post(url, json=body,
                                          headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 403, (url, response.status_code)
        # a viewer's session with a good CSRF token is refused for its role
        csrf = viewer.get("/api/me").get_json()["csrf_token"]
        assert viewer.post(url, json=body, headers={"X-CSRFToken": csrf}).status_code == 403
    assert app.test_client().get("/api/disks").status_code == 401
    assert not [c for c in recorder.commands if c["cmd"] != "status" and c["cmd"] != "disk_list"]


def test_sessions_need_csrf_and_tokens_do_not(panel, recorder):
    app, admin, _viewer = panel
    response = admin.client.post("/api/disks/adopt", json={"uuid": UUID})
    assert response.status_code == 400 and "CSRF" in response.get_data(as_text=True)
    assert sent(recorder, "disk_adopt") == []
    token = issue_token(app, "script", "admin")
    response = app.test_client().post("/api/disks/adopt", json={"uuid": UUID},
                                      headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["adopted"]["uuid"] == UUID
    assert sent(recorder, "disk_adopt") == [{"uuid": UUID}]
    assert admin.get("/api/disks").get_json()["adopted"][0]["uuid"] == UUID


def test_adopt_a_directory_passes_allow_root_device(panel, recorder):
    _app, admin, _viewer = panel
    refused = admin.post("/api/disks/adopt", json={"path": "/srv/rec"})
    assert refused.status_code == 400
    assert "system disk" in refused.get_json()["errors"]["path"]
    response = admin.post("/api/disks/adopt", json={"path": "/srv/rec", "allow_root_device": True})
    assert response.status_code == 200 and response.get_json()["adopted"]["root"] == "/srv/rec"
    assert sent(recorder, "disk_adopt_dir") == [
        {"path": "/srv/rec", "allow_root_device": False},
        {"path": "/srv/rec", "allow_root_device": True}]


@pytest.mark.parametrize("body,field,words", [
    ({"uuid": OTHER_UUID}, "uuid", "holds the system"),
    ({"uuid": "99999999-2222-3333-4444-555555555555"}, "uuid", "no attached disk"),
])
def test_adopt_refusals_of_the_recorder_are_field_errors(panel, recorder, body, field, words):
    _app, admin, _viewer = panel
    response = admin.post("/api/disks/adopt", json=body)
    assert response.status_code == 400
    assert words in response.get_json()["errors"][field]


@pytest.mark.parametrize("url,body,field", [
    ("/api/disks/adopt", {}, "uuid"),
    ("/api/disks/adopt", {"uuid": UUID, "path": "/srv"}, "uuid"),
    ("/api/disks/adopt", {"uuid": 12}, "uuid"),
    ("/api/disks/adopt", {"uuid": "../../etc"}, "uuid"),
    ("/api/disks/adopt", {"uuid": UUID, "force": True}, "force"),
    ("/api/disks/adopt", {"path": "relative/dir"}, "path"),
    ("/api/disks/adopt", {"path": "/srv\nx"}, "path"),
    ("/api/disks/adopt", {"path": ["/srv"]}, "path"),
    ("/api/disks/adopt", {"path": "/srv", "allow_root_device": "yes"}, "allow_root_device"),
    ("/api/disks/format", {"device": "/dev/sda1"}, "confirm"),
    ("/api/disks/format", {"device": "/dev/sda1", "confirm": "/dev/sdb"}, "confirm"),
    ("/api/disks/format", {"device": "/dev/sda1", "confirm": "/dev/sda1", "force": "true"},
     "force"),
    ("/api/disks/format", {"device": "/dev/sda1", "confirm": "/dev/sda1", "adopt": 1}, "adopt"),
    ("/api/disks/format", {"device": "sda1", "confirm": "sda1"}, "device"),
    ("/api/disks/format", {"device": None, "confirm": "/dev/sda1"}, "device"),
    ("/api/disks/format", {"confirm": "/dev/sda1"}, "device"),
    ("/api/disks/eject", {}, "uuid"),
    ("/api/disks/eject", {"uuid": True}, "uuid"),
    ("/api/disks/eject", {"uuid": "x" * 100}, "uuid"),
])
def test_bad_input_is_a_field_error_and_never_reaches_the_recorder(panel, recorder, url, body,
                                                                   field):
    _app, admin, _viewer = panel
    response = admin.post(url, json=body)
    assert response.status_code == 400, (body, response.status_code)
    assert field in response.get_json()["errors"], response.get_json()
    assert [c["cmd"] for c in recorder.commands] == []


@pytest.mark.parametrize("url", ["/api/disks/adopt", "/api/disks/format", "/api/disks/eject"])
def test_a_body_that_is_not_a_json_object_is_refused(panel, url):
    _app, admin, _viewer = panel
    for kw in ({"data": "uuid=x"}, {"json": [UUID]}, {"json": "x"}):
        response = admin.post(url, **kw)
        assert response.status_code == 400 and "body" in response.get_json()["errors"]


def test_format_refused_for_data_unless_forced_then_adopts(panel, recorder):
    _app, admin, _viewer = panel
    refused = admin.post("/api/disks/format", json={"device": "/dev/sda1",
                                                    "confirm": "/dev/sda1"})
    assert refused.status_code == 400
    assert "--force" in refused.get_json()["errors"]["device"]
    assert sent(recorder, "disk_adopt") == []
    response = admin.post("/api/disks/format", json={"device": "/dev/sda1", "confirm": "/dev/sda1",
                                                     "force": True, "adopt": True})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["formatted"] == {"device": "/dev/sda1", "uuid": UUID, "label": "PICORDER"}
    assert body["adopted"]["uuid"] == UUID and body["adopt_error"] is None
    assert sent(recorder, "disk_format") == [
        {"device": "/dev/sda1", "confirm": "/dev/sda1", "force": False},
        {"device": "/dev/sda1", "confirm": "/dev/sda1", "force": True}]
    assert sent(recorder, "disk_adopt") == [{"uuid": UUID}]


def test_format_without_adopt_does_not_adopt(panel, recorder):
    _app, admin, _viewer = panel
    response = admin.post("/api/disks/format", json={"device": "/dev/sda1", "confirm": "/dev/sda1",
                                                     "force": True})
    assert response.status_code == 200 and response.get_json()["adopted"] is None
    assert sent(recorder, "disk_adopt") == []


def test_eject(panel, recorder):
    _app, admin, _viewer = panel
    response = admin.post("/api/disks/eject", json={"uuid": UUID})
    assert response.get_json() == {"uuid": UUID, "unmounted": True}
    unknown = admin.post("/api/disks/eject", json={"uuid": OTHER_UUID})
    assert unknown.status_code == 400
    assert "no adopted disk" in unknown.get_json()["errors"]["uuid"]


@pytest.mark.parametrize("method,url,body", [
    ("get", "/api/disks", None),
    ("post", "/api/disks/adopt", {"uuid": UUID}),
    ("post", "/api/disks/adopt", {"path": "/srv/rec"}),
    ("post", "/api/disks/format", {"device": "/dev/sda1", "confirm": "/dev/sda1"}),
    ("post", "/api/disks/eject", {"uuid": UUID}),
])
def test_without_a_recorder_the_answer_is_503_with_a_message(panel, method, url, body):
    _app, admin, _viewer = panel
    response = getattr(admin, method)(url, **({"json": body} if body is not None else {}))
    assert response.status_code == 503
    assert "recorder" in response.get_json()["error"]


def test_a_recorder_without_disk_commands_is_a_clear_error(tmp_path, panel):
    """An old recorder (no storage part) refuses the command: a 400 naming it, not a 500."""
    _app, admin, _viewer = panel
    fake = FakeRecorder(DataPaths(tmp_path / "data").control_socket,
                        lambda: recorder_status(None, []))
    try:
        response = admin.post("/api/disks/eject", json={"uuid": UUID})
    finally:
        fake.close()
    assert response.status_code == 400
    assert "disk_eject" in response.get_json()["errors"]["uuid"]
