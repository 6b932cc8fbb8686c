"""Helpers for the panel's tests: an app on a fresh data directory, signing in, CSRF."""

import json
import re
import subprocess
from pathlib import Path

from helpers.mp4 import decode_errors
from webpanel import create_app

ADMIN = ("admin", "correct horse")
CSRF_RE = re.compile(r'name="csrf-token" content="([^"]+)"')


# The box hashes with scrypt; most tests need no slow hash (test_panel_auth checks the real one).
FAST_HASH = "pbkdf2:sha256:1000"


def make_app(tmp_path, **config):
    settings = {"TESTING": True, "DATA_DIR": str(tmp_path / "data"),
                "PASSWORD_HASH_METHOD": FAST_HASH}
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
    from recorder.accounts import User

    with app.app_context():
        from recorder import config
        config.db.connect(reuse_if_open=True)
        user = User(username=username, role=role)
        user.set_password(password, app.config.get("PASSWORD_HASH_METHOD"))
        user.save()
        config.db.close()


def issue_token(app, name, role) -> str:
    from recorder import config
    from recorder.accounts import ApiToken

    with app.app_context():
        config.db.connect(reuse_if_open=True)
        _row, token = ApiToken.issue(name, role)
        config.db.close()
    return token


class FakeRecorder:
    """A control socket speaking the recorder's protocol, answering from `status_fn`.

    It stands in for the recorder process so the panel's client code is tested
    against the documented wire format (one JSON line each way).
    """

    def __init__(self, socket_path, status_fn, handlers=None):
        import socket
        import threading

        from pathlib import Path

        Path(socket_path).parent.mkdir(parents=True, exist_ok=True)
        self.path = str(socket_path)
        self.status_fn = status_fn
        # name -> callable(**args) -> result; raise ValueError(message) to answer {"ok": false}
        self.handlers = dict(handlers or {})
        self.commands = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(16)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        import json

        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                line = conn.makefile("rb").readline()
                try:
                    request = json.loads(line)
                except ValueError:
                    continue
                self.commands.append(request)
                if request.get("cmd") == "status":
                    answer = {"ok": True, "result": self.status_fn()}
                elif request.get("cmd") == "reload":
                    answer = {"ok": True, "result": None}
                elif request.get("cmd") in self.handlers:
                    args = {k: v for k, v in request.items() if k != "cmd"}
                    try:
                        answer = {"ok": True, "result": self.handlers[request["cmd"]](**args)}
                    except (ValueError, TypeError) as exc:
                        answer = {"ok": False, "error": str(exc)}
                else:
                    answer = {"ok": False, "error": f"unknown command {request.get('cmd')!r}"}
                try:
                    conn.sendall(json.dumps(answer).encode() + b"\n")
                except OSError:
                    pass

    def close(self):
        import os

        self.sock.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def stream_status(camera="cam1", stream="main", **fields) -> dict:
    """One stream's entry of the recorder's status, with plausible defaults."""
    entry = {"camera": camera, "stream": stream, "state": "RUNNING", "problem": None,
             "since_utc_us": 0, "pid": 4242, "uptime_s": 12.5, "restarts": 1, "frames": 1500,
             "fps": 15.0, "bitrate_kbps": 1024.0, "dropped": 2, "duplicated": 3,
             "bytes_written": 10_000_000, "last_segment_utc_us": None, "last_error": None,
             "current_segment": None}
    entry.update(fields)
    return entry


def recorder_status(root, streams, *, trusted=True) -> dict:
    import os
    import time

    return {"version": "test", "pid": os.getpid(), "started_utc_us": 0,
            "clock": {"trusted": trusted, "source": "ntp", "now_utc_us": time.time_ns() // 1000},
            "storage": {"state": "recording", "root": str(root) if root else None},
            "streams": streams}


def top_level_boxes(data: bytes) -> list[bytes]:
    boxes, pos = [], 0
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos:pos + 4], "big")
        if size == 1:
            size = int.from_bytes(data[pos + 8:pos + 16], "big")
        boxes.append(data[pos + 4:pos + 8])
        if size < 8:
            break
        pos += size
    return boxes


def probe(path: Path) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
                          "-show_entries", "stream=nb_read_frames:format=duration", "-of", "json",
                          str(path)], check=True, capture_output=True, text=True, timeout=60)
    data = json.loads(out.stdout)
    return {"frames": int(data["streams"][0]["nb_read_frames"]),
            "duration": float(data["format"]["duration"])}


def check_range_movie(body: bytes, out: Path, seconds: float, fps: int) -> dict:
    """A recording.mp4 as served: moov before mdat, decodes without an error, lasts `seconds`
    to within a frame. Written to `out`; returns its probe."""
    boxes = top_level_boxes(body)
    assert boxes.index(b"moov") < boxes.index(b"mdat")
    out.write_bytes(body)
    assert decode_errors(out) == ""
    measured = probe(out)
    assert abs(measured["duration"] - seconds) <= 1 / fps
    return measured
