"""Benchmark: retention on an index of 1,000,000 segments (planning, deleting, periodic CPU).

Run: .venv/bin/python -m benchmarks.retention [--rows N] [--delete N] [--dir DIR]

Each figure is shown next to a baseline measured in the same run:
- planning: our lazy, index-ordered walk vs loading every row and sorting in Python;
- deleting: the crash-safe deed (mark, unlink, fsync directories, delete rows) vs a bare
  unlink loop plus one DELETE;
- periodic jobs: CPU seconds of the retention and storage-watch jobs per run, and their share
  of one core at their real intervals.
"""

import argparse
import os
import queue
import resource
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

from recorder import config, limits, retention
from recorder.index import Index, queries
from recorder.paths import DataPaths
from recorder.storage import DiskStorage

CAMERAS = 8
SEGMENT_US = 60_000_000


class NoDrives:
    def enumerate(self):
        return []

    def start(self, callback):
        pass

    def stop(self):
        pass


def rel_path(cam: int, stream: str, start_us: int) -> str:
    t = time.gmtime(start_us // 1_000_000)
    return (f"cam{cam}/{stream}/{t.tm_year:04d}/{t.tm_mon:02d}/{t.tm_mday:02d}/"
            f"{t.tm_hour:02d}-{t.tm_min:02d}-{t.tm_sec:02d}.mp4")


def build_index(pdir: Path, rows: int, now_us: int) -> list[tuple]:
    """rows segments, 8 cameras x (main, sub), 60 s each, ending now; oldest first."""
    pdir.mkdir(parents=True, exist_ok=True)
    Index.open(pdir / "index.db").close()        # the schema, as the recorder makes it
    per_stream = rows // (CAMERAS * 2)
    first = now_us - per_stream * SEGMENT_US
    conn = sqlite3.connect(pdir / "index.db")
    batch = []
    made = []
    for k in range(per_stream):
        start = first + k * SEGMENT_US
        for cam in range(1, CAMERAS + 1):
            for stream, size in (("main", 4_000_000), ("sub", 500_000)):
                rel = rel_path(cam, stream, start)
                batch.append((f"cam{cam}", stream, rel, start, start + SEGMENT_US, SEGMENT_US,
                              size, 900, "h264", 1920, 1080, 1, first, 0))
                made.append((rel, start))
        if len(batch) >= 50_000:
            _insert(conn, batch)
            batch = []
    _insert(conn, batch)
    conn.close()
    return made


def _insert(conn, batch) -> None:
    conn.executemany("INSERT INTO segment (camera, stream, path, start_us, end_us, duration_us,"
                     " bytes, frames, codec, width, height, clock_trusted, run_id, deleting)"
                     " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", batch)
    conn.commit()


def make_files(pdir: Path, made: list[tuple], n: int) -> None:
    for rel, _start in made[:n]:
        path = pdir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\0" * 512)


def cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def bench_planning(conn, now_us: int, need_rows: int, repeat: int = 5) -> dict:
    seg_bytes = (4_000_000 + 500_000) / 2
    need = int(need_rows * seg_bytes)
    tracker = retention.UsageTracker()
    t0 = time.perf_counter()
    totals = tracker.totals(conn)                     # the first, full count
    full_count = time.perf_counter() - t0
    ours = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        totals = tracker.totals(conn)                 # incremental, as every later run
        rates = queries.stream_rates(conn, now_us)
        plan = retention.plan_rotation(queries.iter_oldest(conn), camera_bytes=totals,
                                       limits_by_camera={}, free_bytes=0, floor_bytes=need,
                                       now_us=now_us)
        ours.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    everything = [queries.SegmentRef(*r) for r in conn.execute(
        f"SELECT {queries.SEGMENT_COLUMNS} FROM segment WHERE deleting = 0")]
    everything.sort(key=lambda s: (s.start_us, s.id))
    base_plan = retention.plan_rotation(everything, camera_bytes=totals, limits_by_camera={},
                                        free_bytes=0, floor_bytes=need, now_us=now_us)
    naive = time.perf_counter() - t0
    assert [s.id for s in base_plan.segments] == [s.id for s in plan.segments]
    return {"plan_s": min(ours), "naive_s": naive, "first_count_s": full_count,
            "planned": len(plan.deletions), "rates": len(rates)}


def bench_delete(workdir: Path, rows: int, n: int, now_us: int) -> dict:
    results = {}
    for mode in ("baseline", "ours"):
        pdir = workdir / mode / "picorder"
        made = build_index(pdir, rows, now_us)
        make_files(pdir, made, n)
        conn = queries.connect_for_retention(pdir / "index.db")
        victims = list(_take(queries.iter_oldest(conn), n))
        os.sync()
        t0 = time.perf_counter()
        if mode == "ours":
            res = retention.apply_rotation(conn, pdir, victims)
            assert len(res.deleted) == n, res
        else:
            for seg in victims:
                (pdir / seg.path).unlink()
            conn.execute("DELETE FROM segment WHERE id IN (SELECT id FROM segment "
                         "ORDER BY start_us, id LIMIT ?)", (n,))
        results[mode] = time.perf_counter() - t0
        left = conn.execute("SELECT COUNT(*) FROM segment").fetchone()[0]
        assert left == len(made) - n, (mode, left)
        conn.close()
        shutil.rmtree(workdir / mode)
    return results


def _take(it, n):
    for i, x in enumerate(it):
        if i >= n:
            return
        yield x


def bench_periodic(workdir: Path, rows: int, now_us: int, runs: int = 20,
                   wall_s: float = 30.0) -> dict:
    data = DataPaths(workdir / "data")
    data.ensure()
    config.open_config(data.config_db)
    for cam in range(1, CAMERAS + 1):
        config.Camera.create(name=f"cam{cam}", main_url="rtsp://127.0.0.1/x", max_age_days=365)
    root = workdir / "rec"
    root.mkdir()
    build_index(root / "picorder", rows, now_us)
    st = DiskStorage(data, watcher=NoDrives(), run_jobs=False, floor_bytes=1)
    st.adopt_dir(str(root), allow_root_device=True)
    st.start(queue.Queue().put)
    st.run_retention()                                  # first run: full count, index creation
    c0 = cpu()
    for _ in range(runs):
        assert not st.run_retention().deleted
    retention_cpu = (cpu() - c0) / runs
    c0 = cpu()
    for _ in range(runs):
        st.watch()
    watch_cpu = (cpu() - c0) / runs
    st.stop()
    share = retention_cpu / limits.RETENTION_INTERVAL_S + watch_cpu / limits.FREE_SPACE_CHECK_S
    # The same, measured whole: the real APScheduler running the jobs, against sleeping.
    c0 = cpu()
    time.sleep(wall_s)
    idle = (cpu() - c0) / wall_s
    st = DiskStorage(data, watcher=NoDrives(), run_jobs=True, floor_bytes=1)
    st.start(queue.Queue().put)
    time.sleep(2)                                       # the first runs at start-up
    c0 = cpu()
    time.sleep(wall_s)
    running = (cpu() - c0) / wall_s
    st.stop()
    return {"retention_cpu_s": retention_cpu, "watch_cpu_s": watch_cpu, "share": share,
            "idle": idle, "running": running, "wall_s": wall_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--delete", type=int, default=10_000)
    parser.add_argument("--dir", help="work directory (default: a temporary one)")
    args = parser.parse_args()
    workdir = Path(args.dir or tempfile.mkdtemp(prefix="picorder-bench-"))
    now_us = time.time_ns() // 1000
    try:
        pdir = workdir / "plan" / "picorder"
        t0 = time.perf_counter()
        build_index(pdir, args.rows, now_us)
        print(f"built an index of {args.rows:,} rows in {time.perf_counter() - t0:.1f} s")
        conn = queries.connect_for_retention(pdir / "index.db")
        p = bench_planning(conn, now_us, args.delete)
        conn.close()
        shutil.rmtree(workdir / "plan")
        print(f"planning the {p['planned']:,} oldest: {p['plan_s'] * 1000:.1f} ms "
              f"(target < 100 ms); baseline load-all-and-sort: {p['naive_s'] * 1000:.0f} ms "
              f"(ratio {p['plan_s'] / p['naive_s']:.3f}); first full count of bytes per camera: "
              f"{p['first_count_s'] * 1000:.0f} ms")
        d = bench_delete(workdir, args.rows, args.delete, now_us)
        print(f"deleting the {args.delete:,} oldest (rows and files): {d['ours']:.2f} s "
              f"(target < 5 s); baseline bare unlink + one DELETE: {d['baseline']:.2f} s "
              f"(ratio {d['ours'] / d['baseline']:.2f})")
        c = bench_periodic(workdir, args.rows, now_us)
        print(f"periodic jobs: retention {c['retention_cpu_s'] * 1000:.1f} ms CPU per run (every "
              f"{limits.RETENTION_INTERVAL_S} s), storage watch {c['watch_cpu_s'] * 1000:.2f} ms "
              f"per run (every {limits.FREE_SPACE_CHECK_S} s): {c['share'] * 100:.3f} % of one core "
              "(target < 1 %)")
        print(f"the scheduler running its jobs for {c['wall_s']:.0f} s: "
              f"{c['running'] * 100:.3f} % of one core, against {c['idle'] * 100:.3f} % "
              "for the same process sleeping")
    finally:
        if not args.dir:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
