"""The panel as the appliance serves it (real nginx, real gunicorn on a local socket) under
the review's slow-client attacks (security-2026-12 M2, M3), and whose address it trusts (L10)."""

import http.client
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from helpers.front import FrontServer, sign_in, start_gunicorn, stop, wait_http
from helpers.mp4 import ffmpeg_segments, install_segments, require_ffmpeg
from recorder import limits
from recorder.sim.launcher import PROJECT_ROOT, free_port

pytestmark = pytest.mark.integration

ADMIN = ("admin", "correct horse")
T0 = 1_795_000_000_000_000
PAGE_DEADLINE_S = 2.0


def picorder(data: Path, *args: str, stdin: str = "") -> str:
    done = subprocess.run([sys.executable, "-m", "picorder", "--data", str(data), *args],
                          input=stdin, capture_output=True, text=True, cwd=PROJECT_ROOT,
                          timeout=60, check=True)
    return done.stdout


class Stack:
    def __init__(self, port: int, data: Path, gunicorn_log: Path, viewer_token: str, tcp_port: int):
        self.port, self.data, self.gunicorn_log = port, data, gunicorn_log
        self.viewer_token, self.tcp_port = viewer_token, tcp_port
        self.cookie = ""

    def page_load_s(self, path: str = "/") -> float:
        """Seconds for a signed-in page load (fails the test if it does not answer 200)."""
        started = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=PAGE_DEADLINE_S * 3)
        conn.request("GET", path, headers={"Cookie": self.cookie, "Accept": "text/html"})
        resp = conn.getresponse()
        resp.read()
        conn.close()
        assert resp.status == 200, resp.status
        return time.perf_counter() - started


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    require_ffmpeg()
    base = tmp_path_factory.mktemp("front")
    data = base / "data"
    (base / "pw").write_text(ADMIN[1] + "\n")
    picorder(data, "user", "add", ADMIN[0], "--role", "admin", "--password-file", str(base / "pw"))
    picorder(data, "camera", "add", "cam1", "rtsp://127.0.0.1:9/cam1")
    viewer_token = picorder(data, "token", "create", "wall", "--role", "viewer").strip()
    with sqlite3.connect(data / "config.db") as db:       # past the setup wizard
        db.execute("INSERT OR REPLACE INTO setting(key, value) VALUES ('setup_wizard', 'done')")
    # A minute of noisy video (about 40 MB): far more than the sockets and nginx buffer.
    sources = ffmpeg_segments(base / "src", seconds=20, segment_s=10, size="640x360",
                              filters=",noise=alls=30:allf=t")
    root = base / "root"
    install_segments(root / "picorder", sources * 3, camera="cam1", start_us=T0).index.close()
    # AF_UNIX paths are short: the socket lives in its own short directory.
    sock_dir = Path(tempfile.mkdtemp(prefix="pnl-"))
    sock = sock_dir / "panel.sock"
    port, tcp_port = free_port(), free_port()
    log = base / "gunicorn.log"
    panel = start_gunicorn(data, f"unix:{sock}", log, PICORDER_PANEL_RECORDING_ROOT=root)
    # The same panel also on TCP, as a server without nginx would run it.
    direct = start_gunicorn(data, f"127.0.0.1:{tcp_port}", base / "direct.log",
                            PICORDER_PANEL_RECORDING_ROOT=root)
    front = FrontServer(base / "nginx", f"127.0.0.1:{port}", sock).start()
    try:
        wait_http(f"http://127.0.0.1:{port}/auth/login", panel)
        wait_http(f"http://127.0.0.1:{tcp_port}/auth/login", direct)
        st = Stack(port, data, log, viewer_token, tcp_port)
        st.cookie = sign_in(port, *ADMIN)
        yield st
    finally:
        front.stop()
        stop(panel)
        stop(direct)
        shutil.rmtree(sock_dir, ignore_errors=True)


def test_m2_half_sent_requests_do_not_take_the_panel_down(stack):
    slow = []
    try:
        for _ in range(100):
            s = socket.create_connection(("127.0.0.1", stack.port))
            s.sendall(b"GET /auth/login HTTP/1.1\r\nHost: x\r\n")       # never finished
            slow.append(s)
        time.sleep(0.5)
        times = [stack.page_load_s() for _ in range(10)]
        assert max(times) < PAGE_DEADLINE_S, times
    finally:
        for s in slow:
            s.close()


def test_m2_nginx_drops_a_request_that_never_finishes(stack):
    s = socket.create_connection(("127.0.0.1", stack.port))
    s.settimeout(30)
    s.sendall(b"GET /auth/login HTTP/1.1\r\nHost: x\r\n")
    started = time.monotonic()
    try:
        answer = s.recv(4096)
    except ConnectionResetError:                     # reset_timedout_connection
        answer = b""
    waited = time.monotonic() - started
    s.close()
    # Dropped after client_header_timeout, not held for as long as the client likes.
    assert answer == b"" or answer.startswith(b"HTTP/1.1 408"), answer[:100]
    assert 5 < waited < 15, waited


def idle_video(port: int, path: str, headers: str) -> socket.socket:
    """A client that asks for a video and then stops reading (tiny receive buffer)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n{headers}\r\n".encode())
    return s


def status_of(s: socket.socket) -> int:
    s.settimeout(10)
    head = s.recv(12)
    return int(head.split()[1])


@pytest.mark.parametrize("via_nginx", [True, False], ids=["nginx", "direct"])
def test_m3_a_viewer_that_never_reads_cannot_starve_the_pages(stack, via_nginx):
    port = stack.port if via_nginx else stack.tcp_port
    start, end = T0 / 1e6, T0 / 1e6 + 60
    path = f"/api/cameras/cam1/recording.mp4?start={start}&end={end}"
    bearer = f"Authorization: Bearer {stack.viewer_token}\r\n"
    idle = []
    try:
        with ThreadPoolExecutor(20) as pool:
            idle = list(pool.map(lambda _: idle_video(port, path, bearer), range(100)))
            codes = list(pool.map(status_of, idle))
        assert codes.count(200) == limits.VIDEO_RESPONSES_PER_USER, codes
        assert codes.count(503) == 100 - limits.VIDEO_RESPONSES_PER_USER
        times = [stack.page_load_s() for _ in range(10)]
        assert max(times) < PAGE_DEADLINE_S, times
        # Another user still gets a video while the viewer's are held.
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", path, headers={"Cookie": stack.cookie, "Range": "bytes=0-99"})
        resp = conn.getresponse()
        assert resp.status == 206 and len(resp.read()) == 100
    finally:
        for s in idle:
            s.close()
    # Once the viewer lets go, the viewer's own videos play again.
    deadline = time.monotonic() + 20
    while True:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", path, headers={"Authorization": f"Bearer {stack.viewer_token}",
                                           "Range": "bytes=0-99"})
        resp = conn.getresponse()
        resp.read()
        if resp.status == 206:
            break
        assert resp.status == 503 and resp.getheader("Retry-After")
        assert time.monotonic() < deadline, "the caps were not released"
        time.sleep(0.5)
