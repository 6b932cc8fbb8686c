"""Benchmark the panel's video API: recording.mp4 first byte, memory, throughput, timeline.

Run: .venv/bin/python -m benchmarks.panel_video [--dir DIR] [--keep]

One real 60-second segment (ffmpeg, testsrc2, libx264, the recorder's movflags)
is hard-linked under 24 hours (and 30 days for the timeline) of names, with an
index row for each, so the numbers come from real files at almost no disk cost.
The panel runs under the project's gunicorn.conf.py with one gthread worker; the
baseline is the same segment files served statically by the same gunicorn.
"""

import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from recorder.index import Segment, index_db, open_index
from recorder.mp4 import probe_segment

ROOT = Path(__file__).resolve().parents[1]
T0 = 1_795_000_000_000_000 - 1_795_000_000_000_000 % (86_400 * 1_000_000)   # a UTC midnight
SEGMENT_S = 60
DAY_SEGMENTS = 24 * 3600 // SEGMENT_S
MONTH_SEGMENTS = 30 * DAY_SEGMENTS


def make_segment(work: Path) -> Path:
    """A 60 s 1280x720 15 fps H.264 fMP4 segment, as the recorder's ffmpeg writes them."""
    out = work / "source.mp4"
    if not out.exists():
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi",
                        "-i", "testsrc2=size=1280x720:rate=15", "-t", str(SEGMENT_S),
                        "-c:v", "libx264", "-preset", "ultrafast", "-g", "30", "-bf", "0",
                        "-b:v", "2M", "-pix_fmt", "yuv420p",
                        "-movflags", "+frag_keyframe+empty_moov+default_base_moof",
                        "-frag_duration", "1000000",
                        "-f", "mp4", str(out)], check=True)
    return out


def rel_name(camera: str, start_us: int) -> str:
    when = datetime.fromtimestamp(start_us / 1e6, tz=timezone.utc)
    return f"{camera}/main/{when:%Y/%m/%d/%H-%M-%S}.mp4"


def build_root(work: Path, source: Path) -> tuple[Path, Path]:
    """R/picorder with cam1: 24 h of hard-linked files; cam2: 30 days of index rows only."""
    root = work / "root"
    pdir = root / "picorder"
    if (pdir / "index.db").exists():
        return root, pdir
    pdir.mkdir(parents=True)
    info = probe_segment(source)
    open_index(pdir / "index.db")
    step = SEGMENT_S * 1_000_000
    rows = []
    for i in range(DAY_SEGMENTS):
        rel = rel_name("cam1", T0 + i * step)
        (pdir / rel).parent.mkdir(parents=True, exist_ok=True)
        os.link(source, pdir / rel)
        rows.append(row("cam1", rel, T0 + i * step, info))
    for i in range(MONTH_SEGMENTS):
        rows.append(row("cam2", rel_name("cam2", T0 + i * step), T0 + i * step, info))
    with index_db.atomic():
        for start in range(0, len(rows), 500):
            Segment.insert_many(rows[start:start + 500]).execute()
    index_db.close()
    return root, pdir


def row(camera: str, rel: str, start_us: int, info) -> dict:
    return {"camera": camera, "stream": "main", "path": rel, "start_us": start_us,
            "end_us": start_us + info.duration_us, "duration_us": info.duration_us,
            "bytes": info.file_size, "frames": info.frames, "codec": info.codec,
            "width": info.width, "height": info.height, "clock_trusted": True, "run_id": 1}


def prepare_panel(data: Path) -> str:
    """config.db with cameras and an API token; returns the token."""
    from webpanel import create_app
    from webpanel.models import ApiToken
    from recorder import config

    app = create_app({"DATA_DIR": str(data)})
    with app.app_context():
        config.db.connect(reuse_if_open=True)
        for name in ("cam1", "cam2"):
            if not config.Camera.get_or_none(config.Camera.name == name):
                config.Camera.create(name=name, main_url="rtsp://127.0.0.1/x")
        ApiToken.delete().where(ApiToken.name == "bench").execute()
        _row, token = ApiToken.issue("bench", "admin")
        config.db.close()
    return token


STATIC_APP = '''
import os
from werkzeug.middleware.shared_data import SharedDataMiddleware
from werkzeug.wrappers import Response

def app():
    return SharedDataMiddleware(lambda e, s: Response("no")(e, s),
                                {"/files": os.environ["BENCH_STATIC_DIR"]})
'''


class Gunicorn:
    """The project's gunicorn.conf.py with one worker, serving `app`."""

    def __init__(self, app: str, env: dict, port: int, cwd: Path):
        self.base = f"http://127.0.0.1:{port}"
        env = dict(os.environ, **env, PICORDER_PANEL_BIND=f"127.0.0.1:{port}",
                   PICORDER_PANEL_WORKERS="1", PYTHONPATH=str(cwd))
        self.proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c",
                                      str(ROOT / "gunicorn.conf.py"), app],
                                     env=env, cwd=cwd, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while subprocess.run(["curl", "-s", "-o", "/dev/null", self.base + "/"]).returncode:
            if time.monotonic() > deadline:
                raise RuntimeError("gunicorn did not start")
            time.sleep(0.2)

    def worker_pid(self) -> int:
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        return int(children.split()[0])

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(15)


def curl(url: str, token: str | None = None, first_bytes: int | None = None) -> dict:
    """One request by curl: status, time to first byte, total time, bytes."""
    argv = ["curl", "-s", "-o", "/dev/null", "-w",
            '{"code": %{http_code}, "ttfb": %{time_starttransfer}, "total": %{time_total}, '
            '"bytes": %{size_download}}', url]
    if token:
        argv[1:1] = ["-H", f"Authorization: Bearer {token}"]
    if first_bytes:
        argv[1:1] = ["-r", f"0-{first_bytes - 1}"]
    return json.loads(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)


def download(base: str, paths: list[str], token: str | None = None) -> float:
    """Bytes per second fetching `paths` one after another on one keep-alive connection."""
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=600)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    total = 0
    started = time.perf_counter()
    for path in paths:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        assert response.status == 200, (path, response.status)
        while chunk := response.read(1 << 20):
            total += len(chunk)
    conn.close()
    return total / (time.perf_counter() - started)


def vm_hwm_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def recording_path(camera: str, hours: float, offset_s: float = 0.5) -> str:
    start = T0 / 1e6 + offset_s
    return f"/api/cameras/{camera}/recording.mp4?start={start}&end={start + hours * 3600}"


def bench_panel(work: Path, root: Path, token: str, port: int) -> dict:
    panel = Gunicorn("webpanel:create_app()", {"PICORDER_DATA": str(work / "data"),
                                               "PICORDER_PANEL_RECORDING_ROOT": str(root)},
                     port, work)
    base = panel.base
    try:
        curl(base + "/api/status", token)
        worker = panel.worker_pid()
        base_hwm = vm_hwm_kb(worker)
        # A different range each time: the panel caches a built movie for Range requests.
        ttfb_1h = [curl(base + recording_path("cam1", 1, 0.5 + i), token, 65536)["ttfb"]
                   for i in range(7)]
        ttfb_24h = [curl(base + recording_path("cam1", 23.9, 0.5 + i), token, 65536)["ttfb"]
                    for i in range(3)]
        full_24h = curl(base + recording_path("cam1", 23.9, 10.5), token)
        peak_hwm = vm_hwm_kb(worker)
        hour_rate = [download(base, [recording_path("cam1", 1, 100.5 + i)], token)
                     for i in range(3)]
        timeline = [curl(f"{base}/api/cameras/cam2/timeline?start={T0 / 1e6}"
                         f"&end={T0 / 1e6 + 30 * 86400}", token)["total"] for i in range(20)]
    finally:
        panel.stop()
    return {"ttfb_1h_s": statistics.median(ttfb_1h), "ttfb_24h_s": statistics.median(ttfb_24h),
            "full_24h": full_24h, "rss_before_kb": base_hwm, "rss_peak_kb": peak_hwm,
            "hour_mb_s": statistics.median(hour_rate) / 1e6,
            "timeline_http_ms": statistics.median(timeline) * 1000}


def bench_static(work: Path, pdir: Path, port: int) -> dict:
    (work / "static_app.py").write_text(STATIC_APP)
    server = Gunicorn("static_app:app()", {"BENCH_STATIC_DIR": str(pdir)}, port, work)
    names = sorted(p.relative_to(pdir) for p in (pdir / "cam1").rglob("*.mp4"))[100:160]
    try:
        rates = [download(server.base, [f"/files/{name}" for name in names]) for _ in range(3)]
        ttfb = statistics.median(curl(f"{server.base}/files/{names[i]}")["ttfb"] for i in range(5))
    finally:
        server.stop()
    return {"static_mb_s": statistics.median(rates) / 1e6, "static_ttfb_s": ttfb}


def bench_timeline_in_process(work: Path, root: Path) -> float:
    from webpanel import create_app

    app = create_app({"DATA_DIR": str(work / "data"), "RECORDING_ROOT": str(root)})
    client = app.test_client()
    token = prepare_panel(work / "data")
    url = f"/api/cameras/cam2/timeline?start={T0 / 1e6}&end={T0 / 1e6 + 30 * 86400}"
    times = []
    for _ in range(20):
        started = time.perf_counter()
        response = client.get(url, headers={"Authorization": f"Bearer {token}"})
        times.append(time.perf_counter() - started)
        assert response.status_code == 200 and len(response.get_json()["runs"]) == 1
    return statistics.median(times) * 1000


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", help="work directory (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    work = Path(args.dir or tempfile.mkdtemp(prefix="picorder-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        from recorder.sim.launcher import free_port

        source = make_segment(work)
        root, pdir = build_root(work, source)
        token = prepare_panel(work / "data")
        result = {"segment_bytes": source.stat().st_size, "load_before": os.getloadavg()[0]}
        result["timeline_in_process_ms"] = bench_timeline_in_process(work, root)
        token = prepare_panel(work / "data")
        result.update(bench_panel(work, root, token, free_port()))
        result.update(bench_static(work, pdir, free_port()))
        result["throughput_ratio"] = result["hour_mb_s"] / result["static_mb_s"]
        result["rss_growth_mb"] = (result["rss_peak_kb"] - result["rss_before_kb"]) / 1024
        result["load_after"] = os.getloadavg()[0]
        print(json.dumps(result, indent=2))
    finally:
        if not args.keep and not args.dir:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
