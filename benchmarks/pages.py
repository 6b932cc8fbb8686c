"""Benchmark the panel's pages: server time under 10 concurrent clients, and page weight.

Run: .venv/bin/python -m benchmarks.pages [--clients 10] [--requests 40] [--keep]

The panel runs under the project's gunicorn.conf.py (2 gthread workers) on a fresh
data directory with an admin, 4 cameras and an hour of real indexed segments of
one camera; simulated cameras are not needed because nothing here decodes video.
Server time: each of N clients (one keep-alive connection each, signed in) asks for
every page in turn; the client records the time to the last byte of the HTML, and
gunicorn's access log records the server's own time per request (%(D)s).
The baseline, measured side by side, is the panel's own stylesheet served as a
static file by the same gunicorn, so the ratio shows what rendering a page costs.
Page weight: real Chromium loads each page and every asset it pulls (CSS, JS,
images, JSON the page fetches), and the transferred bytes are summed, video
responses (recording.mp4, live.mp4) excluded.
"""

import argparse
import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from helpers import front  # noqa: E402

PAGES = ["/", "/live", "/recordings/cam1", "/storage", "/system", "/cameras/new",
         "/cameras/cam1/edit", "/setup/clock", "/setup/disk", "/setup/camera"]
BASELINE = "/static/css/app.css"
ADMIN = ("admin", "bench-password")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
TARGET_P95_MS = 100
TARGET_WEIGHT_KB = 300


def prepare(work: Path) -> tuple[Path, Path, int]:
    """Data directory with users and cameras, and a recording root with an hour of cam1."""
    from helpers.mp4 import ffmpeg_segments, install_segments

    from recorder import config
    from recorder.accounts import User
    from recorder.config import Camera, Setting
    from webpanel import create_app

    data, root = work / "data", work / "root"
    create_app({"DATA_DIR": str(data)})
    config.db.connect(reuse_if_open=True)
    user = User(username=ADMIN[0], role="admin")
    user.set_password(ADMIN[1])
    user.save()
    for n in range(1, 5):
        Camera.create(name=f"cam{n}", main_url=f"rtsp://127.0.0.1:9/cam{n}",
                      sub_url=f"rtsp://127.0.0.1:9/cam{n}/sub", password="secret")
    Setting.write("setup_wizard", "done")
    config.db.close()
    segments = ffmpeg_segments(work / "src", seconds=60, segment_s=10, size="640x360")
    start_us = (int(time.time()) - 3600) * 1_000_000
    install_segments(root / "picorder", segments * 60, camera="cam1", start_us=start_us)
    return data, root, start_us


ACCESS_FORMAT = "%(U)s %(s)s %(D)s"      # path, status, server time in microseconds


def start_gunicorn(data: Path, root: Path, port: int, access_log: Path) -> subprocess.Popen:
    env = dict(os.environ, PICORDER_DATA=str(data), PICORDER_PANEL_BIND=f"127.0.0.1:{port}",
               PICORDER_PANEL_LOGLEVEL="warning")
    app = f"webpanel:create_app({{'DATA_DIR': {str(data)!r}, 'RECORDING_ROOT': {str(root)!r}}})"
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"),
                             "--access-logfile", str(access_log),
                             "--access-logformat", ACCESS_FORMAT, app], cwd=ROOT, env=env)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", BASELINE)
            conn.getresponse().read()
            return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("gunicorn did not start")


def sign_in(port: int) -> str:
    """Return the session cookie of a signed-in admin."""
    return front.sign_in(port, *ADMIN)


def client_loop(port: int, cookie: str, paths: list[str], rounds: int, out: dict, lock) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Cookie": cookie, "Accept": "text/html"}
    mine: dict[str, list[float]] = {p: [] for p in paths}
    for _ in range(rounds):
        for path in paths:
            started = time.perf_counter()
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
            resp.read()
            mine[path].append((time.perf_counter() - started) * 1000)
            if resp.status != 200:
                raise RuntimeError(f"{path}: HTTP {resp.status}")
    with lock:
        for path, times in mine.items():
            out.setdefault(path, []).extend(times)


def server_times(port: int, cookie: str, clients: int, rounds: int) -> dict[str, list[float]]:
    """Latencies (ms) per path, pages and the static baseline interleaved."""
    out: dict[str, list[float]] = {}
    lock = threading.Lock()
    paths = PAGES + [BASELINE]
    threads = [threading.Thread(target=client_loop, args=(port, cookie, paths, rounds, out, lock))
               for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def server_side_times(access_log: Path, skip: int) -> dict[str, list[float]]:
    """Server time (ms) per path from gunicorn's access log, after the first `skip` lines."""
    out: dict[str, list[float]] = {}
    for line in access_log.read_text().splitlines()[skip:]:
        path, status, micros = line.split()
        if status == "200":
            out.setdefault(path, []).append(int(micros) / 1000)
    return out


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[18]


def page_weights(port: int, cookie: str) -> dict[str, dict]:
    """Bytes transferred per page in real Chromium, video excluded."""
    from playwright.sync_api import sync_playwright

    name, value = cookie.split("=", 1)
    result = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        for width, height in ((1280, 800), (390, 844)):
            ctx = browser.new_context(viewport={"width": width, "height": height})
            ctx.add_cookies([{"name": name, "value": value, "url": f"http://127.0.0.1:{port}"}])
            for path in PAGES:
                page = ctx.new_page()
                seen = []
                page.on("requestfinished", lambda req, seen=seen: seen.append(req))
                page.goto(f"http://127.0.0.1:{port}{path}", wait_until="networkidle")
                page.wait_for_timeout(500)
                total, count = 0, 0
                for req in seen:
                    if re.search(r"/(recording|live)\.mp4", req.url):
                        continue
                    sizes = req.sizes()
                    total += sizes["responseBodySize"] + sizes["responseHeadersSize"]
                    count += 1
                result.setdefault(path, {})[width] = {"bytes": total, "requests": count}
                page.close()
            ctx.close()
        browser.close()
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--requests", type=int, default=40, help="rounds over all pages per client")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    from recorder.sim.launcher import free_port

    work = Path(tempfile.mkdtemp(prefix="picorder-bench-pages-"))
    proc = None
    try:
        data, root, _ = prepare(work)
        port = free_port()
        access_log = work / "access.log"
        proc = start_gunicorn(data, root, port, access_log)
        cookie = sign_in(port)
        server_times(port, cookie, 2, 2)           # warm up: templates compiled, caches filled
        time.sleep(1)
        skip = len(access_log.read_text().splitlines())
        times = server_times(port, cookie, args.clients, args.requests)
        time.sleep(1)
        served = server_side_times(access_log, skip)
        weights = page_weights(port, cookie)
    finally:
        if proc:
            proc.terminate()
            proc.wait(10)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    base, server_base = p95(times[BASELINE]), p95(served[BASELINE])
    print(f"{args.clients} concurrent clients, {args.requests} rounds each, gunicorn.conf.py "
          f"(2 gthread workers); load average before: {os.getloadavg()[0]:.1f}")
    print(f"{'page':<20} {'client p50':>10} {'p95':>7} {'/static':>7} {'server p50':>10} {'p95':>7} "
          f"{'/static':>7} {'KB desk':>8} {'KB phone':>8} {'req':>4}")
    rows = {}
    for path in PAGES:
        w = weights[path]
        rows[path] = {"p50_ms": statistics.median(times[path]), "p95_ms": p95(times[path]),
                      "server_p50_ms": statistics.median(served[path]),
                      "server_p95_ms": p95(served[path]),
                      "kb_desktop": w[1280]["bytes"] / 1024, "kb_phone": w[390]["bytes"] / 1024,
                      "requests": w[1280]["requests"]}
        r = rows[path]
        print(f"{path:<20} {r['p50_ms']:10.1f} {r['p95_ms']:7.1f} {r['p95_ms'] / base:7.1f} "
              f"{r['server_p50_ms']:10.1f} {r['server_p95_ms']:7.1f} {r['server_p95_ms'] / server_base:7.1f} "
              f"{r['kb_desktop']:8.1f} {r['kb_phone']:8.1f} {r['requests']:4d}")
    print(f"{'static ' + BASELINE:<20} {statistics.median(times[BASELINE]):10.1f} {base:7.1f} {1:7.1f} "
          f"{statistics.median(served[BASELINE]):10.1f} {server_base:7.1f} {1:7.1f}")
    worst_p95 = max(r["server_p95_ms"] for r in rows.values())
    worst_kb = max(max(r["kb_desktop"], r["kb_phone"]) for r in rows.values())
    print(f"worst server p95 {worst_p95:.1f} ms (target <= {TARGET_P95_MS}), "
          f"heaviest page {worst_kb:.1f} KB (target <= {TARGET_WEIGHT_KB})")
    print(json.dumps({"pages": rows, "baseline_p95_ms": base, "baseline_server_p95_ms": server_base}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
