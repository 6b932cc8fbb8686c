"""Panel sign-in on a real config.db: first-run setup, login, throttling, roles, CSRF, tokens."""

import stat

import pytest

from helpers.panel import (ADMIN, Session, add_user, admin_session, create_admin, csrf_token,
                           issue_token, login, make_app)
from picorder.cli import main
from recorder.paths import DataPaths

PUBLIC = {"auth.login", "auth.setup", "static"}
URL_VALUES = {"name": "cam1", "user_id": 1, "token_id": 1, "token": "0" * 32,
              "filename": "x.css", "step": "admin", "metric": "fps"}


@pytest.fixture
def app(tmp_path):
    return make_app(tmp_path)


@pytest.fixture
def box_app(tmp_path):
    """With the password hashing the box really uses."""
    return make_app(tmp_path, PASSWORD_HASH_METHOD=None)


def test_first_visit_creates_the_admin_then_setup_closes(box_app, tmp_path):
    app = box_app
    client = app.test_client()
    page = client.get("/", headers={"Accept": "text/html"})
    assert page.status_code == 401 and b'action="/auth/setup' in page.data
    assert client.get("/auth/login").headers["Location"].startswith("/auth/setup")
    token = csrf_token(client)
    short = client.post("/auth/setup", json={"username": "admin", "password": "short"},
                        headers={"X-CSRFToken": token})
    assert short.status_code == 400 and "8 characters" in short.get_json()["errors"]["password"]
    form = client.post("/auth/setup", data={"username": "boss", "password": "longenough1",
                                            "confirm": "different1", "csrf_token": token})
    assert form.status_code == 400 and b"the two passwords differ" in form.data
    created = client.post("/auth/setup", json={"username": "boss", "password": "longenough1"},
                          headers={"X-CSRFToken": token})
    assert created.status_code == 201
    cookie = created.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert client.get("/api/status").status_code == 200       # signed in by setup

    other = app.test_client()
    again = other.post("/auth/setup", json={"username": "evil", "password": "longenough2"},
                       headers={"X-CSRFToken": csrf_token(other)})
    assert again.status_code == 403
    assert other.get("/auth/setup").headers["Location"].endswith("/auth/login")

    key = DataPaths(tmp_path / "data").secret_key
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and len(key.read_text().strip()) == 64
    from recorder.accounts import User
    stored = User.get(User.username == "boss").password_hash
    assert stored.startswith(("scrypt:", "pbkdf2:")) and "longenough1" not in stored


@pytest.mark.parametrize("setup_done", [False, True])
def test_every_route_except_login_and_setup_refuses_anonymous(app, setup_done):
    if setup_done:
        create_admin(app.test_client())
    rules = list(app.url_map.iter_rules())
    assert len(rules) > 20
    checked = 0
    for rule in rules:
        if rule.endpoint in PUBLIC:
            continue
        url = rule.build({k: v for k, v in URL_VALUES.items() if k in rule.arguments})[1]
        for method in sorted(rule.methods - {"OPTIONS", "HEAD"}):
            for accept in ("application/json", "text/html"):
                client = app.test_client()
                response = client.open(url, method=method, headers={"Accept": accept})
                assert response.status_code in (401, 403), (method, url, response.status_code)
                checked += 1
    assert checked >= 2 * len(rules) - 6


def test_sixth_wrong_password_from_one_address_waits(app):
    create_admin(app.test_client())
    client = app.test_client()
    for _ in range(5):
        assert login(client, ADMIN[0], "wrong password").status_code == 401
    throttled = login(client, ADMIN[0], ADMIN[1])        # even the right one, for now
    assert throttled.status_code == 429 and 0 < int(throttled.headers["Retry-After"]) <= 15
    # Per address: another account from the first address waits as well ...
    add_user(app, "viewer1", "viewerpass", "viewer")
    assert login(client, "viewer1", "viewerpass").status_code == 429
    # ... but the same account from another address does not (test_panel_security: M4).
    fresh = app.test_client()
    fresh.environ_base["REMOTE_ADDR"] = "10.9.9.9"
    assert login(fresh, ADMIN[0], ADMIN[1]).status_code == 200


def test_viewer_watches_but_cannot_change_cameras(app):
    admin = admin_session(app)
    assert admin.post("/api/cameras", json={"name": "door", "main_url": "rtsp://h/1"}
                      ).status_code == 201
    add_user(app, "guest", "guestpass", "viewer")
    client = app.test_client()
    assert login(client, "guest", "guestpass").status_code == 200
    viewer = Session(client)
    assert viewer.get("/api/cameras").status_code == 200
    assert viewer.post("/api/cameras", json={"name": "x", "main_url": "rtsp://h/2"}
                       ).status_code == 403
    assert viewer.patch("/api/cameras/door", json={"enabled": False}).status_code == 403
    assert viewer.delete("/api/cameras/door").status_code == 403
    assert viewer.get("/api/users").status_code == 403
    assert admin.get("/api/cameras/door").get_json()["enabled"] is True


def test_state_changes_without_a_csrf_token_are_refused(app):
    admin = admin_session(app)
    raw = admin.client
    refused = raw.post("/api/cameras", json={"name": "door", "main_url": "rtsp://h/1"})
    assert refused.status_code == 400 and "CSRF" in refused.get_json()["error"]
    bad = raw.post("/api/cameras", json={"name": "door", "main_url": "rtsp://h/1"},
                   headers={"X-CSRFToken": "forged"})
    assert bad.status_code == 400
    assert raw.get("/api/cameras").get_json() == []
    # Forms too: a login form without its csrf_token field.
    form = app.test_client().post("/auth/login", data={"username": "a", "password": "b"})
    assert form.status_code == 400
    assert admin.post("/api/cameras", json={"name": "door", "main_url": "rtsp://h/1"}
                      ).status_code == 201


def test_api_tokens_work_and_are_stored_hashed(app, tmp_path, capsys):
    admin = admin_session(app)
    data = app.config["DATA_DIR"]
    assert main(["--data", data, "token", "create", "prometheus", "--role", "viewer"]) == 0
    viewer_token = capsys.readouterr().out.strip()
    admin_token = issue_token(app, "script", "admin")
    anon = app.test_client()
    bearer = {"Authorization": f"Bearer {viewer_token}"}
    assert anon.get("/metrics", headers=bearer).status_code == 200
    assert anon.get("/api/cameras", headers=bearer).status_code == 200
    assert anon.post("/api/cameras", headers=bearer,
                     json={"name": "a", "main_url": "rtsp://h/1"}).status_code == 403
    # A token needs no CSRF token: browsers never send it on their own.
    made = anon.post("/api/cameras", headers={"Authorization": f"Bearer {admin_token}"},
                     json={"name": "a", "main_url": "rtsp://h/1"})
    assert made.status_code == 201
    assert anon.get("/api/cameras", headers={"Authorization": "Bearer pct_nope"}
                    ).status_code == 401
    raw = (tmp_path / "data" / "config.db").read_bytes()
    assert viewer_token.encode() not in raw and admin_token.encode() not in raw
    listed = admin.get("/api/tokens").get_json()
    assert {t["name"] for t in listed} == {"prometheus", "script"}
    assert all("token" not in t for t in listed)
    assert main(["--data", data, "token", "revoke", "prometheus"]) == 0
    assert anon.get("/api/cameras", headers=bearer).status_code == 401


def test_security_headers_and_logout(app):
    admin = admin_session(app)
    response = admin.get("/api/status")
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert admin.post("/auth/logout", json={}).status_code == 200
    assert admin.get("/api/status").status_code == 401


def test_login_form_redirects_only_to_local_paths(app):
    create_admin(app.test_client())
    client = app.test_client()
    token = csrf_token(client)
    for target, expected in (("/live", "/live"), ("//evil.example/x", "/"),
                             ("https://evil.example/", "/")):
        response = client.post("/auth/login?next=" + target, data={
            "username": ADMIN[0], "password": ADMIN[1], "csrf_token": token})
        assert response.status_code == 302 and response.headers["Location"] == expected
        token = csrf_token(client)


def test_user_cli(tmp_path, capsys):
    data = str(tmp_path / "d")
    pw = tmp_path / "pw"
    pw.write_text("short\n")
    assert main(["--data", data, "user", "add", "ann", "--role", "admin",
                 "--password-file", str(pw)]) == 2
    assert "8 characters" in capsys.readouterr().err
    pw.write_text("a good password\n")
    assert main(["--data", data, "user", "add", "ann", "--role", "admin",
                 "--password-file", str(pw)]) == 0
    assert main(["--data", data, "user", "add", "ann", "--role", "viewer",
                 "--password-file", str(pw)]) == 2
    assert main(["--data", data, "user", "remove", "ann"]) == 2     # the last admin
    capsys.readouterr()
    assert main(["--data", data, "user", "list"]) == 0
    assert "ann" in capsys.readouterr().out
    app = make_app(tmp_path, DATA_DIR=data)
    client = app.test_client()
    assert login(client, "ann", "a good password").status_code == 200
    assert client.get("/auth/setup").status_code == 302        # an admin exists: closed


def test_the_last_admin_is_one_rule(app):
    """The page, the API and the CLI ask User.is_last_admin() whether an admin may go."""
    from recorder.accounts import User
    add_user(app, "ann", "ann's password", "admin")
    add_user(app, "bob", "bob's password", "admin")
    add_user(app, "vic", "vic's password", "viewer")
    ann, bob, vic = (User.get(User.username == n) for n in ("ann", "bob", "vic"))
    assert not ann.is_last_admin() and not bob.is_last_admin() and not vic.is_last_admin()
    bob.role = "viewer"
    bob.save()
    assert ann.is_last_admin() and not bob.is_last_admin() and not vic.is_last_admin()


def test_the_first_admin_is_added_the_one_way(app, tmp_path, monkeypatch):
    """The first-admin page adds its user with recorder.accounts.add_user (the CLI, the
    API and the users page do too), and keeps its own errors: a name taken by a viewer
    made with the CLI is a field error."""
    from recorder import accounts
    data = str(tmp_path / "data")
    pw = tmp_path / "pw"
    pw.write_text("a good password\n")
    assert main(["--data", data, "user", "add", "boss", "--role", "viewer",
                 "--password-file", str(pw)]) == 0
    added = []
    real_add = accounts.add_user
    monkeypatch.setattr(accounts, "add_user", lambda *a, **kw: added.append(a[:3]) or real_add(*a, **kw))
    client = app.test_client()
    token = csrf_token(client)
    taken = client.post("/auth/setup", json={"username": "boss", "password": "longenough1"},
                        headers={"X-CSRFToken": token})
    assert taken.status_code == 400
    assert taken.get_json()["errors"] == {"username": "this name is taken"}
    created = client.post("/auth/setup", json={"username": "chief", "password": "longenough1"},
                          headers={"X-CSRFToken": token})
    assert created.status_code == 201 and created.get_json()["user"]["role"] == "admin"
    assert added == [("boss", "longenough1", "admin"), ("chief", "longenough1", "admin")]
    assert accounts.User.get(accounts.User.username == "chief").check_password("longenough1")
