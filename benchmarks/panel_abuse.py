"""Slow and idle clients against the panel: does a signed-in page still load, and does
recording go on?  (security review M2, M3)

Usage: .venv/bin/python -m benchmarks.panel_abuse [--slow 200] [--videos 100] [--seconds 60]
       [--sides unprotected,protected,direct,direct-threads] [--direct-threads 256]

One `picorder demo` (a simulated camera and the real recorder) serves two panels on the
same data directory, side by side:
- unprotected: gunicorn on TCP as before the fix (2 workers x 16 threads, no video caps);
- protected: the appliance's stack, the picorder_nginx role's site (real nginx) in front
  of gunicorn on a local socket with gunicorn.conf.py's defaults and the video caps;
- direct (with --sides): gunicorn on TCP with gunicorn.conf.py's defaults and the video
  caps but no nginx, as a server install or `picorder demo` without the front runs it;
- direct-threads (with --sides): the same with --direct-threads threads per worker.
Against each in turn, one address holds --slow half-sent requests (a header line every
5 s, reconnecting when dropped) and one viewer token holds --videos live.mp4 requests
that it never reads (each reopened every 20 s).  Meanwhile a signed-in browser-like
client loads the dashboard every 0.5 s (5 s timeout; a timeout counts as 5 s), and the
recorder's frame count gives the frames recorded per second.
"""

import argparse
import http.client
import json
import math
import os
import random
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from helpers.front import FrontServer, sign_in, start_gunicorn, stop, wait_http  # noqa: E402
from recorder import control  # noqa: E402
from recorder.paths import DataPaths  # noqa: E402
from recorder.sim.launcher import free_port  # noqa: E402

ADMIN = ("admin", "benchmark password")
PAGE = "/"
PAGE_TIMEOUT_S = 5.0
PAGE_INTERVAL_S = 0.5
SLOW_LINE_EVERY_S = 5.0
VIDEO_REOPEN_S = 20.0
# What the panel ran before the fix: gunicorn.conf.py's old thread count, no video caps.
UNPROTECTED_ENV = {"PICORDER_PANEL_THREADS": 16, "PICORDER_PANEL_VIDEO_RESPONSES_PER_WORKER": 10**6,
                   "PICORDER_PANEL_VIDEO_RESPONSES_PER_USER": 10**6}


SIDES = ("unprotected", "protected", "direct", "direct-threads")


def cli(data: Path, *args: str) -> str:
    return subprocess.run([sys.executable, "-m", "picorder", "--data", str(data), *args],
                          capture_output=True, text=True, check=True, cwd=ROOT).stdout


def page_load(port: int, cookie: str) -> float | None:
    """Seconds for one signed-in page load, None if it did not answer 200 in time."""
    started = time.perf_counter()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=PAGE_TIMEOUT_S)
        conn.request("GET", PAGE, headers={"Cookie": cookie, "Accept": "text/html"})
        resp = conn.getresponse()
        resp.read()
        conn.close()
    except OSError:
        return None
    elapsed = time.perf_counter() - started
    return elapsed if resp.status == 200 and elapsed <= PAGE_TIMEOUT_S else None


class Attack:
    """Half-sent requests from one address and never-read live videos from one viewer."""

    def __init__(self, port: int, slow: int, videos: int, token: str):
        self.port, self.slow, self.videos, self.token = port, slow, videos, token
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []
        self.reconnects = 0
        self.statuses: dict[int, int] = {}
        self.lock = threading.Lock()

    def start(self) -> "Attack":
        for target in [self._slowloris] * self.slow + [self._video] * self.videos:
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            self.threads.append(thread)
        return self

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(30)

    def _connect(self, rcvbuf: int | None = None) -> socket.socket | None:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.settimeout(10)
        try:
            s.connect(("127.0.0.1", self.port))
        except OSError:
            s.close()
            return None
        return s

    def _slowloris(self) -> None:
        s = None
        while not self.stopping.is_set():
            if s is None:
                s = self._connect()
                if s is None:
                    self.stopping.wait(0.5)
                    continue
                line = b"GET /auth/login HTTP/1.1\r\nHost: x\r\n"
            else:
                line = f"X-{random.randrange(10**6)}: x\r\n".encode()
            try:
                s.sendall(line)
            except OSError:
                s.close()
                s = None
                with self.lock:
                    self.reconnects += 1
                continue
            self.stopping.wait(SLOW_LINE_EVERY_S)
        if s is not None:
            s.close()

    def _video(self) -> None:
        request = (f"GET /api/cameras/cam1/live.mp4 HTTP/1.1\r\nHost: x\r\n"
                   f"Authorization: Bearer {self.token}\r\n\r\n").encode()
        # Spread the reopening over the interval, as many clients would.
        self.stopping.wait(random.uniform(0, 2))
        while not self.stopping.is_set():
            s = self._connect(rcvbuf=4096)
            if s is None:
                self.stopping.wait(0.5)
                continue
            try:
                s.sendall(request)
                head = s.recv(12)                 # the status line only; never the video
                code = int(head.split()[1]) if len(head.split()) > 1 else 0
            except (OSError, ValueError):
                code = 0
            with self.lock:
                self.statuses[code] = self.statuses.get(code, 0) + 1
            self.stopping.wait(VIDEO_REOPEN_S)
            s.close()


def frames(paths: DataPaths) -> int:
    status = control.request(paths.control_socket, "status", timeout=10)
    return sum(s.get("frames") or 0 for s in status["streams"] if s["stream"] == "main")


def measure(port: int, cookie: str, paths: DataPaths, seconds: float) -> dict:
    loads: list[float | None] = []
    f0, t0 = frames(paths), time.monotonic()
    while time.monotonic() - t0 < seconds:
        started = time.monotonic()
        loads.append(page_load(port, cookie))
        time.sleep(max(0.0, PAGE_INTERVAL_S - (time.monotonic() - started)))
    fps = (frames(paths) - f0) / (time.monotonic() - t0)
    answered = [x for x in loads if x is not None]
    counted = sorted(x if x is not None else PAGE_TIMEOUT_S for x in loads)
    return {"loads": len(loads), "answered": len(answered),
            "p50_s": round(statistics.median(counted), 3),
            "p95_s": round(counted[math.ceil(len(counted) * 0.95) - 1], 3),   # nearest rank
            "recorded_fps": round(fps, 2)}


def run_side(name: str, port: int, cookie: str, paths: DataPaths, args, token: str) -> dict:
    print(f"{name}: quiet", flush=True)
    quiet = measure(port, cookie, paths, args.quiet_seconds)
    print(f"{name}: attack ({args.slow} slow, {args.videos} idle videos)", flush=True)
    attack = Attack(port, args.slow, args.videos, token).start()
    time.sleep(args.ramp_seconds)
    attacked = measure(port, cookie, paths, args.seconds)
    attack.stop()
    attacked.update(slow_reconnects=attack.reconnects, video_statuses=attack.statuses)
    time.sleep(5)
    return {"quiet": quiet, "attacked": attacked}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--slow", type=int, default=200)
    parser.add_argument("--videos", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--quiet-seconds", type=float, default=20)
    parser.add_argument("--ramp-seconds", type=float, default=8)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--sides", default="unprotected,protected",
                        help=f"comma-separated, run in the order given: {', '.join(SIDES)}")
    parser.add_argument("--direct-threads", type=int, default=256,
                        help="threads per worker of the direct-threads side")
    args = parser.parse_args(argv)
    sides = args.sides.split(",")
    if not sides or not set(sides) <= set(SIDES):
        parser.error(f"--sides takes {', '.join(SIDES)}")

    work = Path(tempfile.mkdtemp(prefix="pab-"))
    data = work / "data"
    paths = DataPaths(data)
    procs = []
    front = None
    try:
        (work / "pw").write_text(ADMIN[1] + "\n")
        cli(data, "user", "add", ADMIN[0], "--role", "admin", "--password-file", str(work / "pw"))
        token = cli(data, "token", "create", "wall", "--role", "viewer").strip()
        unprotected_port, protected_port = free_port(), free_port()
        env = dict(os.environ, **{k: str(v) for k, v in UNPROTECTED_ENV.items()},
                   PICORDER_PANEL_LOGLEVEL="warning")
        demo_log = open(work / "demo.log", "wb")
        demo = subprocess.Popen([sys.executable, "-m", "picorder", "--data", str(data), "demo",
                                 "--cameras", "1", "--panel-port", str(unprotected_port)],
                                cwd=ROOT, env=env, stdout=demo_log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        procs.append(demo)
        wait_http(f"http://127.0.0.1:{unprotected_port}/auth/login", demo, timeout=60)
        sock = work / "panel.sock"
        panel = start_gunicorn(data, f"unix:{sock}", work / "protected.log")
        procs.append(panel)
        front = FrontServer(work / "nginx", f"127.0.0.1:{protected_port}", sock).start()
        wait_http(f"http://127.0.0.1:{protected_port}/auth/login", panel)
        with sqlite3.connect(data / "config.db") as db:
            db.execute("INSERT OR REPLACE INTO setting(key, value) VALUES ('setup_wizard', 'done')")
        ports = {"unprotected": unprotected_port, "protected": protected_port}
        direct_env = {"direct": {}, "direct-threads": {"PICORDER_PANEL_THREADS": args.direct_threads}}
        for side in set(sides) & set(direct_env):
            ports[side] = free_port()
            procs.append(start_gunicorn(data, f"127.0.0.1:{ports[side]}", work / f"{side}.log",
                                        **direct_env[side]))
            wait_http(f"http://127.0.0.1:{ports[side]}/auth/login", procs[-1])
        cookie = sign_in(protected_port, *ADMIN)
        deadline = time.monotonic() + 60
        while frames(paths) == 0:
            if time.monotonic() > deadline:
                raise RuntimeError("the demo camera is not recording")
            time.sleep(1)
        results = {side: run_side(side, ports[side], cookie, paths, args, token)
                   for side in sides}
    finally:
        if front is not None:
            front.stop()
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT if proc is procs[0] else signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                stop(proc)
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results, indent=2))
    print("\n| configuration | phase | page loads answered | p50 | p95 | recorded fps |")
    print("|---|---|---|---|---|---|")
    for side, phases in results.items():
        for phase, r in phases.items():
            print(f"| {side} | {phase} | {r['answered']}/{r['loads']} | {r['p50_s']} s | "
                  f"{r['p95_s']} s | {r['recorded_fps']} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
