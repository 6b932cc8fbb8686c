"""Fuzz the panel's API against its own OpenAPI document (schemathesis): no input gives a 500."""

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig

from helpers.mp4 import ffmpeg_segments, install_segments, require_ffmpeg
from helpers.panel import FakeRecorder, admin_session, issue_token, make_app, recorder_status
from recorder.config import check_url
from recorder.storage.disk_ops import UUID_RE
from recorder.paths import DataPaths
from webpanel import probe, recorder_client
from webpanel.api import openapi

pytestmark = pytest.mark.integration

T0 = 1_795_000_000_000_000
EXAMPLES = 25
FUZZ_CONFIG = {"generation": {"mode": "all", "max-examples": EXAMPLES}}


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory):
    """A panel with one camera and 12 s of real recording, and an admin token."""
    require_ffmpeg()
    base = tmp_path_factory.mktemp("fuzz")
    sources = ffmpeg_segments(base / "src", seconds=12, segment_s=6, fps=10, gop=10)
    install_segments(base / "root" / "picorder", sources, camera="cam1", start_us=T0).index.close()
    app = make_app(base, RECORDING_ROOT=str(base / "root"))
    session = admin_session(app)
    assert session.post("/api/cameras", json={"name": "cam1", "main_url": "rtsp://h/1"}
                        ).status_code == 201
    return app, {"Authorization": f"Bearer {issue_token(app, 'fuzz', 'admin')}"}


@pytest.fixture(autouse=True)
def fuzz_token_alive(fuzz_app):
    """Each test starts with a valid token: a fuzzed `DELETE /api/tokens/{id}` may have
    revoked the fuzz's own (the operations share one panel), and every later request
    would then stop at 401 before the input checks the test is about."""
    app, auth = fuzz_app
    with app.test_client() as client:
        if client.get("/api/tokens", headers=auth).status_code == 401:
            auth["Authorization"] = f"Bearer {issue_token(app, 'fuzz', 'admin')}"


@pytest.fixture
def stub_probe(monkeypatch):
    """/api/probe without ffmpeg: the fuzz is about input handling (tests/unit/test_probe.py
    probes real streams). Every call must carry input the route validated."""
    calls = []

    def probe_stream(url, username, password, transport, data_dir):
        assert check_url(url) is None and transport in ("tcp", "udp"), (url, transport)
        for text in (username, password):
            assert text is None or (isinstance(text, str) and len(text) <= 2048
                                    and all(ord(c) >= 32 for c in text)), text
        calls.append(url)
        return probe.ProbeResult(ok=False, error="unreachable: the fuzz does not probe")
    monkeypatch.setattr(probe, "probe_stream", probe_stream)
    return calls


FUZZ_UUID = "0b2e9a3c-5f41-4c6e-9d7a-2f1e3b4c5d6e"


class StubDisks:
    """The recorder's disk commands for the fuzz: they check what the panel validated and
    never touch a disk. Violations are collected (a handler must not raise in the socket
    thread) and asserted by the test."""

    def __init__(self):
        self.calls, self.bad = [], []

    def _check(self, cmd, ok, args):
        self.calls.append(cmd)
        if not ok:
            self.bad.append((cmd, args))

    def disk_list(self):
        self._check("disk_list", True, {})
        return {"drives": [], "adopted": [], "state": "no disk", "root": None}

    def disk_adopt(self, uuid):
        self._check("disk_adopt", isinstance(uuid, str) and UUID_RE.match(uuid), uuid)
        if uuid != FUZZ_UUID:
            raise ValueError(f"no attached disk has the filesystem UUID {uuid}")
        return {"kind": "disk", "uuid": uuid}

    def disk_adopt_dir(self, path, allow_root_device):
        self._check("disk_adopt_dir", isinstance(path, str) and path.startswith("/")
                    and isinstance(allow_root_device, bool), (path, allow_root_device))
        raise ValueError(f"{path} is not an existing directory")

    def disk_format(self, device, confirm, force):
        self._check("disk_format", isinstance(device, str) and device.startswith("/dev/")
                    and confirm == device and isinstance(force, bool), (device, confirm, force))
        return {"device": device, "uuid": FUZZ_UUID, "label": "PICORDER"}   # formats nothing

    def disk_eject(self, uuid):
        self._check("disk_eject", isinstance(uuid, str) and UUID_RE.match(uuid), uuid)
        raise ValueError(f"no adopted disk has the filesystem UUID {uuid}")


@pytest.fixture
def stub_disks(fuzz_app):
    """A control socket answering the disk commands (the fuzz never has a real recorder)."""
    app, _auth = fuzz_app
    stub = StubDisks()
    handlers = {name: getattr(stub, name) for name in
                ("disk_list", "disk_adopt", "disk_adopt_dir", "disk_format", "disk_eject")}
    fake = FakeRecorder(DataPaths(Path(app.config["DATA_DIR"])).control_socket,
                        lambda: recorder_status(None, []), handlers=handlers)
    yield stub
    fake.close()
    recorder_client.forget_state()      # later operations see no recorder again


@pytest.fixture(scope="module")
def api_schema(fuzz_app):
    app, auth = fuzz_app
    config = SchemathesisConfig.from_dict(FUZZ_CONFIG)
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app, headers=auth,
                                            config=config)
    # live.mp4 streams forever while recording; without a recorder it answers 503 at once.
    return schema


OPERATIONS = [(path, method.upper()) for path, ops in openapi.document()["paths"].items()
              for method in ops]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize("path,method", OPERATIONS)
def test_no_input_makes_the_api_fail(api_schema, fuzz_app, stub_probe, request, path, method,
                                     mode):
    _app, auth = fuzz_app
    disks = request.getfixturevalue("stub_disks") if path.startswith("/api/disks") else None
    operation = api_schema[path][method]
    # Each accepted user costs a deliberate scrypt hash; fewer examples keep the test quick.
    examples = EXAMPLES // 3 if path.startswith("/api/users") else EXAMPLES

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(deadline=None, suppress_health_check=list(HealthCheck), max_examples=examples,
              derandomize=True, database=None)
    def check(case):
        response = case.call(headers=auth)
        assert response.status_code < 500, (case.method, case.formatted_path, case.query,
                                            case.body, response.text[:300])
        if response.status_code >= 400 and response.headers.get(
                "Content-Type", "").startswith("application/json"):
            body = response.json()
            assert "error" in body or "errors" in body

    check()
    if (path, mode) == ("/api/probe", GenerationMode.POSITIVE):
        assert stub_probe, "no generated probe request got past validation"
    if disks is not None:
        assert not disks.bad, f"unvalidated input reached the recorder: {disks.bad[:5]}"
        if mode == GenerationMode.POSITIVE and path != "/api/disks/format":
            assert disks.calls, "no generated disk request got past validation"


NASTY = [
    "/api/cameras/..", "/api/cameras/../../etc/passwd", "/api/cameras/..%2F..%2Fetc%2Fpasswd",
    "/api/cameras/cam1%00", "/api/cameras/nope/timeline?start=1795000000&end=1795000060",
    "/api/cameras/cam1/timeline?start=2026-13-45T99:00&end=now",
    "/api/cameras/cam1/timeline?start=1795000060&end=1795000000",
    "/api/cameras/cam1/timeline?start=-99999999999999&end=99999999999999999999",
    "/api/cameras/cam1/timeline?start=1e308&end=1e309",
    "/api/cameras/cam1/timeline?start=0x10&end=%FF%FE",
    "/api/cameras/cam1/recording.mp4?start=1795000000&end=1795000000",
    "/api/cameras/cam1/recording.mp4?start=1795000005&end=1795000001",
    "/api/cameras/cam1/recording.mp4?start=-1&end=1",
    "/api/cameras/cam1/recording.mp4?start=1795000000&end=99999999999",
    "/api/cameras/cam1/recording.mp4?start=1795000000&end=1795000008&stream=..%2F..",
    "/api/cameras/cam1/snapshot.jpg?at=../../etc/passwd",
    "/api/cameras/cam1/snapshot.jpg?at=-5",
    "/api/cameras/cam1/snapshot.jpg?at=1e308",
    "/api/cameras/../../../etc/passwd/snapshot.jpg",
    "/api/zabbix/camera/../fps", "/api/zabbix/camera/cam1/..",
    "/api/cameras/cam1/live.mp4?stream=main",
    "/api/probe/..%2F..%2Fsecret_key.jpg", "/api/probe/../secret_key.jpg",
    "/api/probe/%00.jpg", "/api/probe/" + "a" * 5000 + ".jpg",
]


@pytest.mark.parametrize("url", NASTY)
def test_nasty_requests_get_clear_4xx(fuzz_app, url):
    app, auth = fuzz_app
    client = app.test_client()
    response = client.get(url, headers=auth)
    assert 400 <= response.status_code < 500 or response.status_code == 503, response.status_code
    assert response.get_json() is not None


def test_nasty_ranges_on_a_real_recording(fuzz_app):
    app, auth = fuzz_app
    client = app.test_client()
    url = "/api/cameras/cam1/recording.mp4?start=1795000001&end=1795000009"
    assert client.get(url, headers=auth).status_code == 200
    for header in ("bytes=-0", "bytes=999999999-", "bytes=5-2", "bytes=abc",
                   "bytes=0-1,5-9", "pages=0-10", "bytes=-99999999999999999999"):
        response = client.get(url, headers=dict(auth, Range=header))
        assert response.status_code in (200, 206, 416), (header, response.status_code)
