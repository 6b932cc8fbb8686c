"""Benchmark the panel's video API: recording.mp4 first byte, memory, throughput, timeline.

Run: .venv/bin/python -m benchmarks.panel_video [--dir DIR] [--keep]

One real 60-second segment (ffmpeg, testsrc2, libx264, the recorder's movflags)
is hard-linked under 24 hours (and 30 days for the timeline) of names, with an
index row for each, so the numbers come from real files at almost no disk cost.
The panel runs under the project's gunicorn.conf.py with one gthread worker; the
baseline is the same segment files served statically by the same gunicorn.
"""

import argparse
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

from recorder.index import Index, Segment
from recorder.index.tables import probe_segment

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
    index = Index.open(pdir / "index.db")
    step = SEGMENT_S * 1_000_000
    rows = []
    for i in range(DAY_SEGMENTS):
        rel = rel_name("cam1", T0 + i * step)
        (pdir / rel).parent.mkdir(parents=True, exist_ok=True)
        os.link(source, pdir / rel)
        rows.append(row("cam1", rel, T0 + i * step, info))
        Segment.store_tables(index, rel, info.tables)   # as the recorder's ingest does
    for i in range(MONTH_SEGMENTS):
        rows.append(row("cam2", rel_name("cam2", T0 + i * step), T0 + i * step, info))
    with index.atomic():
        for start in range(0, len(rows), 500):
            Segment.insert_many(rows[start:start + 500]).execute(index.db)
    index.close()
    return root, pdir


def row(camera: str, rel: str, start_us: int, info) -> dict:
    return {"camera": camera, "stream": "main", "path": rel, "start_us": start_us,
            "end_us": start_us + info.duration_us, "duration_us": info.duration_us,
            "bytes": info.file_size, "frames": info.frames, "codec": info.codec,
            "width": info.width, "height": info.height, "clock_trusted": True, "run_id": 1}


def prepare_panel(data: Path) -> str:
    """config.db with cameras and an API token; returns the token."""
    from webpanel import create_app
    from recorder.accounts import ApiToken
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
    """Bytes per second when one curl fetches `paths` one after another (one connection)."""
    argv = ["curl", "-s", "-w", "%{size_download}\\n"]
    if token:
        argv += ["-H", f"Authorization: Bearer {token}"]
    for path in paths:
        argv += ["-o", "/dev/null", base + path]
    started = time.perf_counter()
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    elapsed = time.perf_counter() - started
    return sum(int(float(n)) for n in out.split()) / elapsed


def vm_hwm_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def recording_path(camera: str, hours: float, offset_s: float = 0.5) -> str:
    start = T0 / 1e6 + offset_s
    return f"/api/cameras/{camera}/recording.mp4?start={start}&end={start + hours * 3600}"


def start_servers(work: Path, root: Path, pdir: Path) -> tuple[Gunicorn, Gunicorn]:
    """The panel and, side by side, the same segment files served statically."""
    from recorder.sim.launcher import free_port

    (work / "static_app.py").write_text(STATIC_APP)
    panel = Gunicorn("webpanel:create_app()", {"PICORDER_DATA": str(work / "data"),
                                               "PICORDER_PANEL_RECORDING_ROOT": str(root)},
                     free_port(), work)
    static = Gunicorn("static_app:app()", {"BENCH_STATIC_DIR": str(pdir)}, free_port(), work)
    return panel, static


def bench_first_byte(panel: Gunicorn, static: Gunicorn, token: str, static_names: list) -> dict:
    """Time to first byte, each range new to the panel (it caches built movies)."""
    ttfb_1h, ttfb_24h, ttfb_static = [], [], []
    for i in range(5):
        ttfb_1h.append(curl(panel.base + recording_path("cam1", 1, 0.5 + i), token, 65536)["ttfb"])
        ttfb_static.append(curl(f"{static.base}/files/{static_names[i]}", None, 65536)["ttfb"])
    for i in range(3):
        ttfb_24h.append(curl(panel.base + recording_path("cam1", 23.9, 0.5 + i), token,
                             65536)["ttfb"])
    return {"ttfb_1h_s": statistics.median(ttfb_1h), "ttfb_24h_s": statistics.median(ttfb_24h),
            "static_ttfb_s": statistics.median(ttfb_static)}


def bench_memory(panel: Gunicorn, token: str) -> dict:
    """The worker's peak RSS (VmHWM) before and after serving a whole 24-hour range."""
    worker = panel.worker_pid()
    before = vm_hwm_kb(worker)
    full = curl(panel.base + recording_path("cam1", 23.9, 10.5), token)
    return {"full_24h": full, "rss_before_kb": before, "rss_peak_kb": vm_hwm_kb(worker)}


def bench_throughput(panel: Gunicorn, static: Gunicorn, token: str, static_names: list) -> dict:
    """One hour as recording.mp4 vs the same hour's 60 files, alternating, by curl."""
    ratios, panel_rates, static_rates = [], [], []
    for i in range(4):
        panel_rates.append(download(panel.base, [recording_path("cam1", 1, 100.5 + i)], token))
        static_rates.append(download(static.base, [f"/files/{n}" for n in static_names]))
        ratios.append(panel_rates[-1] / static_rates[-1])
    return {"hour_mb_s": statistics.median(panel_rates) / 1e6,
            "static_mb_s": statistics.median(static_rates) / 1e6,
            "throughput_ratio": statistics.median(ratios)}


def bench_timeline_http(panel: Gunicorn, token: str) -> float:
    url = f"{panel.base}/api/cameras/cam2/timeline?start={T0 / 1e6}&end={T0 / 1e6 + 30 * 86400}"
    return statistics.median(curl(url, token)["total"] for _ in range(20)) * 1000


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
        source = make_segment(work)
        root, pdir = build_root(work, source)
        result = {"segment_bytes": source.stat().st_size, "load_before": os.getloadavg()[0]}
        result["timeline_in_process_ms"] = bench_timeline_in_process(work, root)
        token = prepare_panel(work / "data")
        names = sorted(str(p.relative_to(pdir)) for p in (pdir / "cam1").rglob("*.mp4"))
        panel, static = start_servers(work, root, pdir)
        try:
            curl(panel.base + "/api/status", token)
            result.update(bench_memory(panel, token))
            result.update(bench_first_byte(panel, static, token, names[200:]))
            result.update(bench_throughput(panel, static, token, names[100:160]))
            result["timeline_http_ms"] = bench_timeline_http(panel, token)
        finally:
            panel.stop()
            static.stop()
        result["rss_growth_mb"] = (result["rss_peak_kb"] - result["rss_before_kb"]) / 1024
        result["load_after"] = os.getloadavg()[0]
        print(json.dumps(result, indent=2))
    finally:
        if not args.keep and not args.dir:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
