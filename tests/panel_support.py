"""Helpers for the panel's tests: an app on a fresh data directory, signing in, CSRF."""

import re

from webpanel import create_app

ADMIN = ("admin", "correct horse")
CSRF_RE = re.compile(r'name="csrf-token" content="([^"]+)"')


def make_app(tmp_path, **config):
    settings = {"TESTING": True, "DATA_DIR": str(tmp_path / "data")}
    settings.update(config)
    return create_app(settings)


def csrf_token(client) -> str:
    """The CSRF token of the client's session, as a page's meta tag gives it."""
    page = client.get("/auth/login", headers={"Accept": "text/html"}, follow_redirects=True)
    match = CSRF_RE.search(page.get_data(as_text=True))
    assert match, page.get_data(as_text=True)[:500]
    return match.group(1)


def create_admin(client, username=ADMIN[0], password=ADMIN[1]):
    token = csrf_token(client)
    response = client.post("/auth/setup", json={"username": username, "password": password},
                           headers={"X-CSRFToken": token})
    assert response.status_code == 201, response.get_json()
    return response


def login(client, username, password):
    token = csrf_token(client)
    return client.post("/auth/login", json={"username": username, "password": password},
                       headers={"X-CSRFToken": token})


class Session:
    """A signed-in test client that sends its CSRF token with every change."""

    def __init__(self, client):
        self.client = client
        self.token = client.get("/api/me").get_json()["csrf_token"]

    def get(self, url, **kw):
        return self.client.get(url, **kw)

    def _send(self, method, url, **kw):
        headers = dict(kw.pop("headers", {}), **{"X-CSRFToken": self.token})
        return getattr(self.client, method)(url, headers=headers, **kw)

    def post(self, url, **kw):
        return self._send("post", url, **kw)

    def patch(self, url, **kw):
        return self._send("patch", url, **kw)

    def delete(self, url, **kw):
        return self._send("delete", url, **kw)


def admin_session(app) -> Session:
    client = app.test_client()
    create_admin(client)
    return Session(client)


def add_user(app, username, password, role):
    from webpanel.models import User

    with app.app_context():
        from recorder import config
        config.db.connect(reuse_if_open=True)
        user = User(username=username, role=role)
        user.set_password(password)
        user.save()
        config.db.close()


def issue_token(app, name, role) -> str:
    from recorder import config
    from webpanel.models import ApiToken

    with app.app_context():
        config.db.connect(reuse_if_open=True)
        _row, token = ApiToken.issue(name, role)
        config.db.close()
    return token
