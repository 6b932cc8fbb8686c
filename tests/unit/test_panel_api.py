"""The panel's JSON API on real SQLite files: cameras, timeline, times, status, OpenAPI."""

import pytest

from helpers.panel import admin_session, make_app
from recorder.config import NAME_IS_FIXED
from recorder.index import Activity, Index, queries

T0 = 1_795_000_000_000_000          # 2026-11-18T11:06:40Z
MIN = 60_000_000


@pytest.fixture
def root(tmp_path):
    root = tmp_path / "rec"
    (root / "picorder").mkdir(parents=True)
    return root


@pytest.fixture
def app(tmp_path, root):
    return make_app(tmp_path, RECORDING_ROOT=str(root))


@pytest.fixture
def admin(app):
    session = admin_session(app)
    assert session.post("/api/cameras", json={"name": "cam1", "main_url": "rtsp://h/1"}
                        ).status_code == 201
    return session


def write_index(root, rows):
    index = Index.open(root / "picorder" / "index.db")
    base = {"camera": "cam1", "stream": "main", "bytes": 1000, "frames": 900, "codec": "h264",
            "width": 640, "height": 360, "clock_trusted": True, "run_id": 1, "deleting": False}
    for i, row in enumerate(rows):
        item = dict(base, path=f"seg{i}.mp4", **row)
        item["duration_us"] = item["end_us"] - item["start_us"]
        queries.insert_segment(index, **item)
    index.close()


def test_camera_crud_with_field_errors_and_no_password_echo(admin):
    bad = admin.post("/api/cameras", json={"name": "Bad Name", "main_url": "ftp://x",
                                           "max_age_days": -3, "colour": "red"})
    assert bad.status_code == 400
    assert set(bad.get_json()["errors"]) == {"name", "main_url", "max_age_days", "colour"}
    assert admin.post("/api/cameras", data="not json").status_code == 400
    assert admin.post("/api/cameras", json=["a", "list"]).status_code == 400
    dup = admin.post("/api/cameras", json={"name": "cam1", "main_url": "rtsp://h/9"})
    assert dup.status_code == 409 and "name" in dup.get_json()["errors"]
    made = admin.post("/api/cameras", json={"name": "yard", "main_url":
                                            "rtsp://user:s3cret@10.0.0.9/stream"})
    assert made.status_code == 201 and made.headers["Location"] == "/api/cameras/yard"
    body = made.get_data(as_text=True)
    assert "s3cret" not in body and made.get_json()["has_password"]
    assert made.get_json()["main_url"] == "rtsp://10.0.0.9/stream"
    renamed = admin.patch("/api/cameras/yard", json={"transport": "udp", "name": "garden"})
    assert renamed.status_code == 400 and renamed.get_json()["errors"] == {"name": NAME_IS_FIXED}
    assert admin.patch("/api/cameras/yard", json={"name": "cam1"}).status_code == 400
    changed = admin.patch("/api/cameras/yard", json={"name": "yard", "display_name": "Garden"})
    assert changed.status_code == 200 and changed.get_json()["display_name"] == "Garden"
    assert changed.get_json()["transport"] == "tcp"         # the refused change stored nothing
    assert admin.patch("/api/cameras/yard", json={}).status_code == 400
    assert admin.patch("/api/cameras/yard", json={"enabled": "yes"}).get_json()["errors"] == {
        "enabled": "must be true or false"}
    assert admin.get("/api/cameras/garden").status_code == 404
    names = [c["name"] for c in admin.get("/api/cameras").get_json()]
    assert names == ["cam1", "yard"]
    assert "s3cret" not in admin.get("/api/cameras").get_data(as_text=True)
    assert admin.delete("/api/cameras/yard").status_code == 200
    assert admin.delete("/api/cameras/yard").status_code == 404


def test_timeline_merges_small_gaps_and_marks_untrusted_runs(root, admin):
    write_index(root, [
        {"start_us": T0, "end_us": T0 + MIN},
        {"start_us": T0 + MIN, "end_us": T0 + 2 * MIN},
        {"start_us": T0 + 2 * MIN + 1_000_000, "end_us": T0 + 3 * MIN},     # 1 s gap
        {"start_us": T0 + 3 * MIN + 30_000_000, "end_us": T0 + 4 * MIN},    # 30 s gap
        {"start_us": T0 + 4 * MIN, "end_us": T0 + 5 * MIN, "clock_trusted": False},
        {"start_us": T0 + 5 * MIN, "end_us": T0 + 6 * MIN, "deleting": True},
        {"start_us": T0, "end_us": T0 + MIN, "stream": "sub"},
        {"start_us": T0, "end_us": T0 + MIN, "camera": "other"},
    ])
    url = f"/api/cameras/cam1/timeline?start={T0 / 1e6 + 30}&end={(T0 + 10 * MIN) / 1e6}"
    result = admin.get(url).get_json()
    runs = [(r["start_us"], r["end_us"], r["clock_trusted"], r["segments"]) for r in result["runs"]]
    assert runs == [(T0 + 30_000_000, T0 + 3 * MIN, True, 3),
                    (T0 + 3 * MIN + 30_000_000, T0 + 4 * MIN, True, 1),
                    (T0 + 4 * MIN, T0 + 5 * MIN, False, 1)]
    assert result["runs"][0]["start"] == "2026-11-18T11:07:10.000Z"
    strict = admin.get(url + "&gap=0").get_json()["runs"]
    assert len(strict) == 4
    sub = admin.get(url + "&stream=sub").get_json()["runs"]
    assert [(r["start_us"], r["end_us"]) for r in sub] == [(T0 + 30_000_000, T0 + MIN)]


@pytest.mark.parametrize("start,end", [
    ("2026-11-18T11:06:40Z", "2026-11-18T12:06:40+00:00"),
    ("2026-11-18T11:06:40", "1795003600"),
    ("1795000000.0", "2026-11-18T13:06:40+01:00"),
])
def test_times_as_iso_8601_or_epoch_seconds(admin, start, end):
    result = admin.get(f"/api/cameras/cam1/timeline?start={start}&end={end}".replace("+", "%2B"))
    assert result.status_code == 200
    assert (result.get_json()["start_us"], result.get_json()["end_us"]) == (T0, T0 + 60 * MIN)


@pytest.mark.parametrize("query,field", [
    ("start=yesterday&end=1795000000", "start"),
    ("start=1795000000", "end"),
    ("start=1795000000&end=1794999999", "end"),
    ("start=1795000000&end=1795000000", "end"),
    ("start=-5&end=1795000000", "start"),
    ("start=nan&end=inf", "start"),
    ("start=1e400&end=1e401", "start"),
    ("start=99999-01-01&end=1795000000", "start"),
    ("start=0&end=99999999999999999999999", "start"),
    ("start=1000000000&end=1795000000", "end"),           # longer than 400 days
    ("start=1795000000&end=1795000100&stream=../../etc", "stream"),
    ("start=1795000000&end=1795000100&gap=-1", "gap"),
])
def test_malformed_times_and_ranges_get_field_errors(admin, query, field):
    response = admin.get("/api/cameras/cam1/timeline?" + query)
    assert response.status_code == 400, response.get_json()
    assert field in response.get_json()["errors"]


def test_unknown_cameras_and_traversal_names_are_404(admin):
    for name in ("nope", "..", "..%2F..%2Fetc%2Fpasswd", "%00"):
        for suffix in ("", "/timeline?start=1795000000&end=1795000100",
                       "/recording.mp4?start=1795000000&end=1795000100", "/snapshot.jpg"):
            response = admin.get(f"/api/cameras/{name}{suffix}")
            assert response.status_code == 404, (name, suffix)
            assert "error" in response.get_json()


def test_status_says_clearly_when_the_recorder_is_not_running(admin):
    status = admin.get("/api/status").get_json()
    assert status["recorder"]["running"] is False
    assert "not running" in status["recorder"]["message"]
    assert status["cameras"] == 1 and status["storage"]["free_bytes"] > 0


def test_openapi_document_covers_every_api_route(app, admin):
    doc = admin.get("/api/openapi.json").get_json()
    assert doc["openapi"].startswith("3.")
    documented = {(path, method.upper()) for path, ops in doc["paths"].items() for method in ops}
    ours = {"api", "video", "metrics"}
    for rule in app.url_map.iter_rules():
        if rule.endpoint.split(".")[0] not in ours:
            continue
        path = rule.rule.replace("<int:", "{").replace("<", "{").replace(">", "}")
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (path, method) in documented, (path, method)


def test_users_api_keeps_an_admin(admin):
    made = admin.post("/api/users", json={"username": "v", "password": "viewerpw", "role": "viewer"})
    assert made.status_code == 201
    assert admin.post("/api/users", json={"username": "v", "password": "x", "role": "king"}
                      ).get_json()["errors"].keys() == {"password", "role"}
    users = admin.get("/api/users").get_json()
    admin_id = next(u["id"] for u in users if u["role"] == "admin")
    assert admin.delete(f"/api/users/{admin_id}").status_code == 409
    assert admin.patch(f"/api/users/{admin_id}", json={"role": "viewer"}).status_code == 400
    assert admin.delete(f"/api/users/{made.get_json()['id']}").status_code == 200
    assert admin.delete("/api/users/999").status_code == 404


def test_timeline_folds_whole_runs_and_joins_runs_across_small_gaps(root, admin):
    rows = [{"start_us": T0 + i * MIN, "end_us": T0 + (i + 1) * MIN, "run_id": 1}
            for i in range(3)]
    rows += [{"start_us": T0 + 3 * MIN + 1_500_000 + i * MIN,
              "end_us": T0 + 3 * MIN + 1_500_000 + (i + 1) * MIN, "run_id": 2} for i in range(2)]
    rows += [{"start_us": T0 + 7 * MIN + i * MIN, "end_us": T0 + 8 * MIN + i * MIN, "run_id": 3,
              "clock_trusted": False} for i in range(2)]
    write_index(root, rows)
    result = admin.get(f"/api/cameras/cam1/timeline?start={T0 / 1e6}&end={(T0 + 60 * MIN) / 1e6}"
                       ).get_json()
    runs = [(r["start_us"], r["end_us"], r["clock_trusted"], r["segments"], r["frames"])
            for r in result["runs"]]
    assert runs == [(T0, T0 + 5 * MIN + 1_500_000, True, 5, 4500),
                    (T0 + 7 * MIN, T0 + 9 * MIN, False, 2, 1800)]


def test_user_patch_changes_password_and_role(admin, app):
    made = admin.post("/api/users", json={"username": "ann", "password": "annpassword",
                                          "role": "viewer"}).get_json()
    url = f"/api/users/{made['id']}"
    assert admin.patch(url, json={"password": "short"}).get_json()["errors"] == {
        "password": "the password must have at least 8 characters"}
    assert admin.patch(url, json={"role": "god", "age": 3}).get_json()["errors"].keys() == {
        "role", "age"}
    assert admin.patch(url, json={"role": "admin", "password": "newpassword"}).status_code == 200
    from helpers.panel import login
    client = app.test_client()
    assert login(client, "ann", "annpassword").status_code == 401
    assert login(client, "ann", "newpassword").get_json()["user"]["role"] == "admin"


def test_activity_lists_periods_merged_over_short_gaps(root, admin):
    write_index(root, [{"start_us": T0, "end_us": T0 + MIN, "stream": "sub"},
                       {"start_us": T0 + MIN, "end_us": T0 + 2 * MIN, "stream": "sub"}])
    index = Index.open(root / "picorder" / "index.db")
    levels = bytearray(60)
    levels[10:14] = b"\xff" * 4          # 10-14 s, and 15-16 s (a gap of 1 s: one period)
    levels[15] = 100
    levels[59] = 150                      # 59-60 s runs on into the next segment's 0-2 s
    Activity.insert(path="seg0.mp4", camera="cam1", start_us=T0, end_us=T0 + MIN,
                    levels=bytes(levels)).execute(index.db)
    Activity.insert(path="seg1.mp4", camera="cam1", start_us=T0 + MIN, end_us=T0 + 2 * MIN,
                    levels=bytes([120, 120] + [0] * 58)).execute(index.db)
    index.close()
    result = admin.get(f"/api/cameras/cam1/activity?start={T0 / 1e6 + 12}"
                       f"&end={(T0 + 10 * MIN) / 1e6}").get_json()
    assert [(p["start_us"] - T0, p["end_us"] - T0, p["peak"]) for p in result["periods"]] == [
        (12_000_000, 16_000_000, 255), (59_000_000, 62_000_000, 150)]
    assert result["count"] == 2 and result["periods"][0]["start"] == "2026-11-18T11:06:52.000Z"
    assert admin.get(f"/api/cameras/cam1/activity?start={T0 / 1e6 + 70}"
                     f"&end={(T0 + 3 * MIN) / 1e6}").get_json()["periods"] == []


def test_timeline_and_activity_say_why_a_disk_without_an_index_has_nothing(admin):
    query = f"?start={T0 / 1e6}&end={(T0 + MIN) / 1e6}"
    for path, key in (("timeline", "runs"), ("activity", "periods")):
        result = admin.get(f"/api/cameras/cam1/{path}{query}")
        assert result.status_code == 200
        assert result.get_json()[key] == [] and result.get_json()["message"], path


@pytest.mark.parametrize("query,field", [
    ("end=1795000100", "start"), ("start=1795000000&end=1794999999", "end"),
    ("start=nan&end=1795000100", "start"), ("start=1000000000&end=1795000000", "end")])
def test_activity_bad_ranges_are_400_with_the_field(admin, query, field):
    response = admin.get("/api/cameras/cam1/activity?" + query)
    assert response.status_code == 400 and field in response.get_json()["errors"]
    assert admin.get("/api/cameras/nope/activity?start=1795000000&end=1795000100"
                     ).status_code == 404
