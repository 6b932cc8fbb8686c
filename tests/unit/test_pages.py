"""The panel's pages through Flask's client: rendering, roles, and forms with bad input."""

import io
import json
import re

import pytest

from helpers.panel import add_user, create_admin, login, make_app
from recorder import config
from recorder.config import Camera, Setting

PAGES = ["/", "/live", "/recordings", "/synced", "/storage", "/system", "/cameras/new", "/setup/clock",
         "/setup/disk", "/setup/camera", "/setup/retention", "/setup/done"]
HTML = {"Accept": "text/html"}
ERROR_RE = re.compile(r'data-field="([^"]+)".*?<span class="error"[^>]*>([^<]+)</span>', re.S)


@pytest.fixture
def app(tmp_path):
    return make_app(tmp_path)


@pytest.fixture
def admin(app):
    client = app.test_client()
    create_admin(client)
    with app.app_context():
        config.db.connect(reuse_if_open=True)
        Setting.write("setup_wizard", "done")
    return client


def token_of(client) -> str:
    page = client.get("/live", headers=HTML).get_data(as_text=True)
    return re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)


def post(client, url, data):
    data = dict(data, csrf_token=token_of(client))
    return client.post(url, data=data, headers=HTML)


def field_errors(response) -> dict:
    """Field name -> the message shown next to it."""
    html = response.get_data(as_text=True)
    errors = {}
    for block in re.split(r'(?=<div class="field)', html):
        name = re.search(r'data-field="([^"]+)"', block)
        message = re.search(r'<span class="error"[^>]*>([^<]+)</span>', block)
        if name and message:
            errors[name.group(1)] = message.group(1)
    return errors


def cameras(app) -> list[dict]:
    with app.app_context():
        config.db.connect(reuse_if_open=True)
        return [c.to_public() | {"password": c.password} for c in Camera.select()]


def test_every_page_renders_for_the_admin(admin):
    for page in PAGES:
        response = admin.get(page, headers=HTML)
        assert response.status_code == 200, page
        assert "<h1>" in response.get_data(as_text=True)


def test_anonymous_gets_the_sign_in_form(app, admin):
    client = app.test_client()
    for page in PAGES:
        response = client.get(page, headers=HTML)
        assert response.status_code == 401 and "Sign in" in response.get_data(as_text=True)


def test_viewer_sees_pages_but_cannot_change_cameras(app, admin):
    post(admin, "/cameras/new", {"name": "cam1", "main_url": "rtsp://10.0.0.2/s", "enabled": "1"})
    add_user(app, "vera", "viewer-pass", "viewer")
    viewer = app.test_client()
    login(viewer, "vera", "viewer-pass")
    for page in ("/", "/live", "/recordings/cam1", "/synced", "/storage", "/system"):
        assert viewer.get(page, headers=HTML).status_code == 200, page
    assert viewer.get("/cameras/new", headers=HTML).status_code == 403
    response = post(viewer, "/cameras/cam1/delete", {"confirm": "cam1"})
    assert response.status_code == 403
    assert len(cameras(app)) == 1


def test_the_synced_view_shows_the_chosen_cameras_and_refuses_unknown_ones(admin):
    for name in ("cam1", "cam2"):
        post(admin, "/cameras/new", {"name": name, "main_url": "rtsp://10.0.0.2/s", "enabled": "1"})
    page = admin.get("/synced", headers=HTML).get_data(as_text=True)
    tiles = re.findall(r'<figure class="synctile" data-sync-tile data-camera="(\w+)"( hidden)?', page)
    assert tiles == [("cam1", ""), ("cam2", "")]
    page = admin.get("/synced?camera=cam2&t=1796560000", headers=HTML).get_data(as_text=True)
    tiles = re.findall(r'<figure class="synctile" data-sync-tile data-camera="(\w+)"( hidden)?', page)
    assert tiles == [("cam1", " hidden"), ("cam2", "")]
    response = admin.get("/synced?camera=nosuch", headers=HTML)
    assert response.status_code == 404 and "nosuch" in response.get_data(as_text=True)


def test_the_wizard_comes_first_for_a_new_admin(app):
    client = app.test_client()
    create_admin(client)
    response = client.get("/", headers=HTML)
    assert response.status_code == 302 and response.location.endswith("/setup/clock")
    assert post(client, "/setup/done", {}).status_code == 302
    assert client.get("/", headers=HTML).status_code == 200


@pytest.mark.parametrize("form, field", [
    ({"name": "Bad Name", "main_url": "rtsp://10.0.0.2/s"}, "name"),
    ({"name": "", "main_url": "rtsp://10.0.0.2/s"}, "name"),
    ({"name": "cam1", "main_url": ""}, "main_url"),
    ({"name": "cam1", "main_url": "ftp://10.0.0.2/s"}, "main_url"),
    ({"name": "cam1", "main_url": "rtsp://10.0.0.2:99999/s"}, "main_url"),
    ({"name": "cam1", "main_url": "rtsp://10.0.0.2/s", "sub_url": "rtsp:// bad"}, "sub_url"),
    ({"name": "cam1", "main_url": "rtsp://10.0.0.2/s", "transport": "carrier-pigeon"}, "transport"),
    ({"name": "cam1", "main_url": "rtsp://10.0.0.2/s", "max_age_days": "-3"}, "max_age_days"),
    ({"name": "cam1", "main_url": "rtsp://10.0.0.2/s", "max_gb": "lots"}, "max_gb"),
])
def test_bad_camera_input_is_shown_by_the_field_and_nothing_is_saved(app, admin, form, field):
    wizard_fields = field not in ("max_age_days", "max_gb")    # retention is its own step there
    for url in ("/cameras/new", "/setup/camera") if wizard_fields else ("/cameras/new",):
        response = post(admin, url, dict({"enabled": "1", "transport": "tcp"}, **form))
        assert response.status_code == 400
        errors = field_errors(response)
        assert field in errors, (url, errors)
        assert cameras(app) == []


def test_camera_password_is_kept_never_shown_and_can_be_removed(app, admin):
    response = post(admin, "/cameras/new", {"name": "cam1", "enabled": "1", "transport": "tcp",
                                            "main_url": "rtsp://bob:s3cret-Pw@10.0.0.2/s1"})
    assert response.status_code == 302
    [cam] = cameras(app)
    assert (cam["main_url"], cam["username"], cam["password"]) == ("rtsp://10.0.0.2/s1", "bob", "s3cret-Pw")
    page = admin.get("/cameras/cam1/edit", headers=HTML).get_data(as_text=True)
    assert "s3cret-Pw" not in page and "A password is stored" in page
    post(admin, "/cameras/cam1/edit", {"main_url": "rtsp://10.0.0.3/s1", "enabled": "1", "transport": "tcp"})
    [cam] = cameras(app)
    assert cam["main_url"] == "rtsp://10.0.0.3/s1" and cam["password"] == "s3cret-Pw"
    bad = post(admin, "/cameras/cam1/edit", {"main_url": "nope://", "enabled": "1", "password": "new-one"})
    assert bad.status_code == 400 and "new-one" not in bad.get_data(as_text=True)
    assert cameras(app)[0]["password"] == "s3cret-Pw"
    post(admin, "/cameras/cam1/edit", {"main_url": "rtsp://10.0.0.3/s1", "enabled": "1",
                                       "transport": "tcp", "clear_password": "1"})
    assert cameras(app)[0]["password"] is None


def test_a_camera_keeps_its_name_and_a_rename_is_a_field_error(app, admin):
    post(admin, "/cameras/new", {"name": "cam1", "main_url": "rtsp://10.0.0.2/s", "enabled": "1"})
    response = post(admin, "/cameras/cam1/edit", {"name": "garage", "main_url": "rtsp://10.0.0.9/s",
                                                  "display_name": "Garage", "enabled": "1"})
    assert response.status_code == 400
    errors = field_errors(response)
    assert list(errors) == ["name"] and "recordings are filed under it" in errors["name"]
    [cam] = cameras(app)
    assert (cam["name"], cam["main_url"], cam["display_name"]) == ("cam1", "rtsp://10.0.0.2/s", "cam1")
    post(admin, "/cameras/cam1/edit", {"main_url": "rtsp://10.0.0.2/s", "display_name": "Garage",
                                       "enabled": "1"})
    assert [(c["name"], c["display_name"]) for c in cameras(app)] == [("cam1", "Garage")]
    taken = post(admin, "/cameras/new", {"name": "cam1", "main_url": "rtsp://10.0.0.3/s"})
    assert taken.status_code == 400 and "already exists" in field_errors(taken)["name"]


def test_a_bare_address_becomes_an_rtsp_url(app, admin):
    post(admin, "/cameras/new", {"name": "gate", "main_url": "192.168.1.20:8554/live",
                                 "enabled": "1", "transport": "tcp"})
    assert cameras(app)[0]["main_url"] == "rtsp://192.168.1.20:8554/live"


def test_disable_and_remove_need_the_right_input(app, admin):
    post(admin, "/cameras/new", {"name": "cam1", "main_url": "rtsp://10.0.0.2/s", "enabled": "1"})
    post(admin, "/cameras/cam1/enabled", {"enabled": "0"})
    assert cameras(app)[0]["enabled"] is False
    post(admin, "/cameras/cam1/delete", {"confirm": "cam2"})
    assert len(cameras(app)) == 1
    post(admin, "/cameras/cam1/delete", {"confirm": "cam1"})
    assert cameras(app) == []


def flash_of(client) -> tuple[str, str]:
    """The category and words of the flash the next page shows."""
    page = client.get("/", headers=HTML).get_data(as_text=True)
    found = re.search(r'<li class="flash (\w+)" role="\w+">([^<]*)</li>', page)
    return found.group(1), found.group(2).replace("&#39;", "'")


def test_enabling_a_camera_keeps_its_other_fields_and_is_validated(app, admin):
    """The dashboard's Enable/Disable goes through config.save_camera: only `enabled` (and the
    change time) moves, and a value other than 0 or 1 is refused, changing nothing."""
    post(admin, "/cameras/new", {"name": "cam1", "main_url": "rtsp://u:secret@10.0.0.2/s",
                                 "sub_url": "rtsp://10.0.0.2/sub", "display_name": "Gate",
                                 "transport": "udp", "max_age_days": "9", "enabled": "1"})
    [before] = cameras(app)
    post(admin, "/cameras/cam1/enabled", {"enabled": "0"})
    assert flash_of(admin) == ("success", "Camera cam1 disabled.")
    post(admin, "/cameras/cam1/enabled", {"enabled": "1"})
    assert flash_of(admin) == ("success", "Camera cam1 enabled.")
    [after] = cameras(app)
    assert after == before and after["password"] == "secret"
    post(admin, "/cameras/cam1/enabled", {"enabled": "0"})
    flash_of(admin)
    for value in ("yes", None):
        refused = post(admin, "/cameras/cam1/enabled", {} if value is None else {"enabled": value})
        assert refused.status_code == 302
        category, words = flash_of(admin)
        assert category == "error" and "must be true or false" in words
        assert cameras(app)[0]["enabled"] is False


def test_every_page_that_changes_cameras_asks_for_a_reload_the_one_way(app, admin, caplog):
    """Each page that changes what the recorder runs asks for a reload with
    reload_best_effort(): with the recorder stopped the change is saved, the page says what
    it says anyway, and the log tells why no reload was sent."""
    caplog.set_level("INFO", logger="webpanel.recorder_client")
    saves = [("/cameras/new", {"name": "cam1", "main_url": "rtsp://10.0.0.2/s", "enabled": "1"}),
             ("/cameras/cam1/edit", {"main_url": "rtsp://10.0.0.3/s", "enabled": "1"}),
             ("/cameras/cam1/enabled", {"enabled": "0"}),
             ("/storage/retention", {"default_max_age_days": "7"}),
             ("/storage/cameras/cam1", {"max_age_days": "5"}),
             ("/cameras/cam1/delete", {"confirm": "cam1"})]
    for url, form in saves:
        caplog.clear()
        assert post(admin, url, form).status_code == 302, url
        said = [r.getMessage() for r in caplog.records if "reload not sent" in r.getMessage()]
        assert len(said) == 1 and said[0].startswith(
            "reload not sent (the recorder is not running"), (url, said)
    assert flash_of(admin) == ("success", "Camera cam1 removed; its recordings stay until "
                                          "retention deletes them.")
    assert cameras(app) == []


@pytest.mark.parametrize("url", ["/setup/retention", "/storage/retention"])
@pytest.mark.parametrize("form, field", [
    ({"floor_gb": "-1"}, "floor_gb"), ({"floor_gb": "a lot"}, "floor_gb"),
    ({"default_max_age_days": "0"}, "default_max_age_days"),
    ({"default_max_age_days": "2.5"}, "default_max_age_days"),
])
def test_bad_retention_input(app, admin, url, form, field):
    response = post(admin, url, form)
    assert response.status_code == 400 and field in field_errors(response)
    with app.app_context():
        config.db.connect(reuse_if_open=True)
        assert Setting.read("storage_floor_bytes") is None
        assert Setting.read("default_max_age_days") is None


def test_retention_defaults_apply_to_cameras_without_their_own(app, admin):
    post(admin, "/cameras/new", {"name": "a", "main_url": "rtsp://10.0.0.2/s", "enabled": "1"})
    post(admin, "/cameras/new", {"name": "b", "main_url": "rtsp://10.0.0.3/s", "enabled": "1",
                                 "max_age_days": "3"})
    assert post(admin, "/setup/retention", {"floor_gb": "2", "default_max_age_days": "30"}).status_code == 302
    ages = {c["name"]: c["max_age_days"] for c in cameras(app)}
    assert ages == {"a": 30, "b": 3}
    with app.app_context():
        config.db.connect(reuse_if_open=True)
        assert Setting.read("storage_floor_bytes") == str(2 * 1024 ** 3)


def test_per_camera_retention_on_the_storage_page(app, admin):
    post(admin, "/cameras/new", {"name": "a", "main_url": "rtsp://10.0.0.2/s", "enabled": "1"})
    bad = post(admin, "/storage/cameras/a", {"max_age_days": "5", "min_days": "9"})
    assert bad.status_code == 400 and "min_days" in field_errors(bad)
    assert cameras(app)[0]["max_age_days"] is None
    assert post(admin, "/storage/cameras/a", {"max_age_days": "5", "max_gb": "1.5"}).status_code == 302
    cam = cameras(app)[0]
    assert cam["max_age_days"] == 5 and cam["max_bytes"] == int(1.5 * 1024 ** 3)


def test_disk_forms_check_their_input_before_asking_the_recorder(admin):
    response = post(admin, "/storage/disks", {"action": "format", "target": "/dev/sdz1",
                                              "confirm_device": "/dev/sdy1"})
    assert response.status_code == 400
    assert "type the device name /dev/sdz1" in response.get_data(as_text=True)
    response = post(admin, "/setup/disk", {"action": "adopt_dir", "path": "relative/dir"})
    assert response.status_code == 400 and "path" in field_errors(response)
    response = post(admin, "/setup/disk", {"action": "adopt_dir", "path": "/srv/nvr"})
    assert response.status_code == 400 and "recorder is not running" in field_errors(response)["path"]


def test_set_clock_needs_a_plausible_browser_time(admin):
    for value in ("", "yesterday", "12"):
        response = post(admin, "/setup/clock", {"browser_utc_ms": value})
        assert response.status_code == 400
        assert "browser" in response.get_data(as_text=True)


def test_users_and_tokens_forms(app, admin):
    bad = post(admin, "/system/users", {"username": "", "password": "short", "role": "viewer"})
    errors = field_errors(bad)
    assert bad.status_code == 400 and {"username", "password"} <= set(errors)
    assert post(admin, "/system/users", {"username": "vera", "password": "long-enough",
                                         "role": "viewer"}).status_code == 302
    bad = post(admin, "/system/tokens", {"name": "", "role": "root"})
    assert bad.status_code == 400 and {"name", "role"} <= set(field_errors(bad))
    made = post(admin, "/system/tokens", {"name": "prometheus", "role": "viewer"})
    token = re.search(r"pct_[A-Za-z0-9_-]+", made.get_data(as_text=True)).group(0)
    assert app.test_client().get("/api/status", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_backup_and_restore(app, admin):
    post(admin, "/cameras/new", {"name": "cam1", "main_url": "rtsp://u:pw-1@10.0.0.2/s", "enabled": "1"})
    backup = admin.get("/system/backup.json")
    doc = json.loads(backup.get_data(as_text=True))
    assert doc["cameras"][0]["password"] == "pw-1" and doc["users"][0]["username"] == "admin"
    post(admin, "/cameras/cam1/delete", {"confirm": "cam1"})
    assert cameras(app) == []

    def restore(raw: bytes):
        return admin.post("/system/restore", headers=HTML, content_type="multipart/form-data",
                          data={"csrf_token": token_of(admin), "backup": (io.BytesIO(raw), "b.json")})

    for raw in (b"not json", json.dumps({"format": "x"}).encode(),
                json.dumps(dict(doc, users=[])).encode(),
                json.dumps(dict(doc, cameras=[{"name": "BAD", "main_url": "x"}])).encode(),
                json.dumps(dict(doc, cameras=doc["cameras"] * 2)).encode(),
                json.dumps(dict(doc, users=doc["users"] * 2)).encode()):
        response = restore(raw)
        assert response.status_code == 400 and "backup" in field_errors(response)
        assert cameras(app) == []
    assert restore(backup.get_data()).status_code == 302
    assert cameras(app)[0]["password"] == "pw-1"


def test_dashboard_shows_state_figures_and_problems_in_words(app, admin, tmp_path):
    from helpers.panel import FakeRecorder, recorder_status, stream_status
    from recorder.paths import DataPaths

    post(admin, "/cameras/new", {"name": "gate", "main_url": "rtsp://10.0.0.2/s", "enabled": "1"})
    post(admin, "/cameras/new", {"name": "yard", "main_url": "rtsp://10.0.0.3/s", "enabled": "1"})
    since = 1_795_000_000_000_000
    streams = [stream_status("gate", fps=14.9, bitrate_kbps=2048.0, last_segment_utc_us=since),
               stream_status("yard", state="BACKOFF", problem="unreachable", since_utc_us=since,
                             last_error="connection refused")]
    fake = FakeRecorder(DataPaths(tmp_path / "data").control_socket,
                        lambda: recorder_status(tmp_path, streams, trusted=False))
    try:
        html = admin.get("/", headers=HTML).get_data(as_text=True)
        fragment = admin.get("/dashboard/states", headers=HTML).get_data(as_text=True)
    finally:
        fake.close()
    assert "1 of 2 cameras has a problem." in fragment and "<html" not in fragment
    yard_state = fragment[fragment.index('data-card-state-for="yard"'):]
    assert 'role="alert" data-problem' in yard_state and "camera unreachable since" in yard_state
    gate, yard = card_html(html, "gate"), card_html(html, "yard")
    assert ">recording<" in gate and "14.9" in gate and "2048 kbit/s" in gate
    assert f'data-us="{since}"' in gate and 'role="alert"' not in gate
    assert "badge bad" in yard and "camera unreachable since" in yard and f'data-us="{since}"' in yard
    assert 'role="alert" data-problem' in yard
    assert html.index('data-camera="yard"') < html.index('data-camera="gate"')   # problems first
    assert "1 of 2 cameras has a problem." in html


def card_html(html: str, name: str) -> str:
    """One dashboard card's HTML."""
    start = html.index(f'data-camera="{name}"')
    return html[start:html.index("</article>", start)]


@pytest.mark.parametrize("body, field", [
    ("not an object", "url"), ({}, "url"), ({"url": "ftp://cam/x"}, "url"),
    ({"url": "rtsp://cam:70000/x"}, "url"), ({"url": "rtsp://cam/x", "transport": "smoke"}, "transport"),
    ({"url": "rtsp://cam/x", "password": 12}, "password"), ({"url": "rtsp://cam/\u0000"}, "url"),
])
def test_probe_api_refuses_bad_input_with_field_errors(admin, body, field):
    response = admin.post("/api/probe", json=body, headers={"X-CSRFToken": token_of(admin)})
    assert response.status_code == 400
    assert field in response.get_json()["errors"]


def test_probe_snapshots_and_clock_api(app, admin):
    for token in ("../../../etc/passwd", "0" * 32, "zz"):
        assert admin.get(f"/api/probe/{token}.jpg").status_code == 404
    clock = admin.get("/api/clock").get_json()
    assert clock["panel_utc_us"] > 0 and clock["recorder"] is None and clock["recorder_problem"]
    assert app.test_client().get("/api/clock").status_code == 401
    viewer_free = app.test_client().post("/api/probe", json={"url": "rtsp://cam/x"})
    assert viewer_free.status_code in (400, 401)           # anonymous: no CSRF session, no probe


def test_power_is_admin_only_needs_confirmation_and_shows_the_recorders_answer(
        app, admin, monkeypatch):
    import webpanel.views.system as pages_system
    calls = []
    answer = {"error": "this machine is not managed by systemd; reboot it yourself"}

    def fake_call(cmd, **args):
        calls.append(cmd)
        return (None, answer["error"]) if answer["error"] else ({"queued": True}, None)
    monkeypatch.setattr(pages_system, "recorder_call", fake_call)
    add_user(app, "vera", "viewer-pass", "viewer")
    viewer = app.test_client()
    login(viewer, "vera", "viewer-pass")
    assert post(viewer, "/system/power", {"action": "reboot", "confirm": "yes"}).status_code == 403
    assert post(admin, "/system/power", {"action": "reboot"}).status_code == 400
    assert post(admin, "/system/power", {"action": "halt", "confirm": "yes"}).status_code == 400
    assert calls == []
    refused = post(admin, "/system/power", {"action": "reboot", "confirm": "yes"})
    assert refused.status_code == 302 and calls == ["reboot"]
    page = admin.get("/system", headers=HTML).get_data(as_text=True)
    assert "not managed by systemd; reboot it yourself" in page
    answer["error"] = None
    assert post(admin, "/system/power", {"action": "poweroff", "confirm": "yes"}).status_code == 302
    assert calls == ["reboot", "poweroff"]
    assert "is going down" in admin.get("/system", headers=HTML).get_data(as_text=True)


@pytest.mark.parametrize("form, words, category", [
    ({"probe_result": "ok", "probe_detail": "H.264 640 × 360 at 15 fps"},
     "the test found H.264 640 × 360 at 15 fps. Recording starts within a few seconds.", "success"),
    ({"probe_result": "failed", "probe_detail": "no stream at this path (404 not found)\x1b"},
     "but its test failed (no stream at this path (404 not found)). It records only once", "warning"),
    ({}, "added without a test. Its card on this page says", "warning"),
])
def test_saving_a_camera_says_what_its_test_found(admin, form, words, category):
    post(admin, "/cameras/new", {"name": "gate", "main_url": "rtsp://10.0.0.2/s", "enabled": "1",
                                 **form})
    page = admin.get("/", headers=HTML).get_data(as_text=True)
    flash = re.search(r'<li class="flash (\w+)" role="(\w+)">([^<]*)</li>', page)
    assert flash.group(1) == category and words in flash.group(3).replace("&#39;", "'")
    assert flash.group(2) == ("alert" if category == "warning" else "status")
    if category != "success":
        assert "Recording starts" not in flash.group(3)


def test_trust_this_time_asks_the_recorder_to_trust_its_clock(app, admin, tmp_path):
    from helpers.panel import FakeRecorder, recorder_status
    from recorder.paths import DataPaths

    asked = []

    def trust_clock(utc_us=None):
        asked.append(utc_us)
        return {"trusted": True, "source": "panel"}

    fake = FakeRecorder(DataPaths(tmp_path / "data").control_socket,
                        lambda: recorder_status(tmp_path, [], trusted=False),
                        {"trust_clock": trust_clock})
    try:
        page = admin.get("/setup/clock", headers=HTML).get_data(as_text=True)
        assert "data-trust-clock" in page and "clock not trusted" in page
        assert "Trust this time" in page
        system = admin.get("/system", headers=HTML).get_data(as_text=True)
        assert "data-clock-untrusted" in system and "/setup/clock" in system
        response = post(admin, "/setup/clock", {"action": "trust", "browser_utc_ms": "1790000000000"})
        assert response.status_code == 302 and asked == [1_790_000_000_000_000]
        page = admin.get("/setup/clock", headers=HTML).get_data(as_text=True)
        assert "The box&#39;s clock is trusted now" in page
    finally:
        fake.close()


def test_live_of_a_failing_camera_says_what_is_wrong(app, admin, tmp_path):
    from helpers.panel import FakeRecorder, recorder_status, stream_status
    from recorder.paths import DataPaths

    post(admin, "/cameras/new", {"name": "gate", "main_url": "rtsp://10.0.0.2/s", "enabled": "1"})
    streams = [stream_status("gate", state="BACKOFF", problem="not found", current_segment=None)]
    fake = FakeRecorder(DataPaths(tmp_path / "data").control_socket,
                        lambda: recorder_status(tmp_path, streams))
    try:
        response = admin.get("/api/cameras/gate/live.mp4")
    finally:
        fake.close()
    assert response.status_code == 503
    assert response.get_json()["error"] == "gate/main is not recording now (no stream at this path)"


def test_the_camera_form_switches_activity_on_by_default_and_off(app, admin):
    page = admin.get("/cameras/new", headers=HTML).get_data(as_text=True)
    assert 'name="activity" value="1" checked' in page
    post(admin, "/cameras/new", {"name": "cam1", "main_url": "rtsp://10.0.0.2/s", "enabled": "1",
                                 "activity": "1", "transport": "tcp"})
    assert cameras(app)[0]["activity"] is True
    post(admin, "/cameras/cam1/edit", {"main_url": "rtsp://10.0.0.2/s", "enabled": "1",
                                       "transport": "tcp"})
    assert cameras(app)[0]["activity"] is False
    page = admin.get("/cameras/cam1/edit", headers=HTML).get_data(as_text=True)
    assert 'name="activity" value="1">' in page
