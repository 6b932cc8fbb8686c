"""The recorder's Python process, thread by thread: CPU seconds a minute with N streams.

    python -m benchmarks.recorder_threads [--streams 0 16] [--seconds 60]

recorder_cpu gives the Python process's CPU as one figure; this splits it by
thread, to see which wake-ups and jobs the fixed part of the recorder's cost is
made of. The same simulated cameras as recorder_cpu (a pre-encoded 4 Mbps clip,
one mount per stream) and, as root, an ext4 loop filesystem of its own for the
recordings (the durability sync then syncs only them); activity analysis off.
After all N streams run and a warm-up, each thread's time on a CPU is read from
/proc/PID/task/TID/schedstat (nanoseconds, unlike the 10 ms ticks of stat) at
the start and end of the window; the names come from the recorder's `threads`
control command. Prints one JSON object per N: seconds of CPU per minute, in
total and per thread name (threads of one name, such as a pool's, summed).
"""

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

from benchmarks.recorder_cpu import (MOUNTS_PER_SERVER, WARMUP_S, NotSustained, drop_disks,
                                     encode_clip, loop_disk, start_recorder, wait_running,
                                     work_dir)
from recorder import control
from recorder.sim.launcher import SimCameras
from recorder.storage.disk_ops import MOUNT_OPTIONS

DISK_GB = 4


def thread_cpu_s(pid: int) -> dict[int, float]:
    """CPU seconds of each of the process's threads, by thread id."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            on_cpu_ns = Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0]
        except (OSError, IndexError):
            continue                                # the thread ended meanwhile
        out[int(tid)] = int(on_cpu_ns) / 1e9
    return out


def by_name(before: dict[int, float], after: dict[int, float], names: dict[str, str],
            per_s: float) -> dict[str, float]:
    """Each thread name's CPU in the window, scaled by per_s; unnamed threads by id."""
    totals: dict[str, float] = {}
    for tid, end in after.items():
        name = names.get(str(tid), f"thread {tid}")
        totals[name] = totals.get(name, 0.0) + (end - before.get(tid, 0.0)) * per_s
    return {k: round(v, 3) for k, v in sorted(totals.items(), key=lambda kv: -kv[1])}


def run(n: int, seconds: float, work: Path, own_disk: bool) -> dict:
    top = work / f"n{n}"
    data = top / "data"
    data.mkdir(parents=True)
    recordings = top / "recordings"
    clip = encode_clip(top / "clip.mp4", seconds + WARMUP_S + 120, 4000, (1280, 720))
    sims = [SimCameras(cameras=min(MOUNTS_PER_SERVER, n - i), clip=str(clip))
            for i in range(0, n, MOUNTS_PER_SERVER)]
    disks: list[tuple[Path, str]] = []
    rec = None
    try:
        if own_disk:
            disks.append((recordings, loop_disk(top / "recordings.img", recordings, DISK_GB,
                                                MOUNT_OPTIONS)))
        else:
            recordings.mkdir()
        for sim in sims:
            sim.start()
        urls = [sims[i // MOUNTS_PER_SERVER].url(i % MOUNTS_PER_SERVER + 1) for i in range(n)]
        rec = start_recorder(data, recordings, urls, top / "recorder.log", activity=False)
        if n:
            wait_running(data, n)
        else:
            time.sleep(5)                           # the recorder opens its disk
        time.sleep(WARMUP_S)
        before, t0 = thread_cpu_s(rec.pid), time.monotonic()
        time.sleep(seconds)
        after, window = thread_cpu_s(rec.pid), time.monotonic() - t0
        names = control.request(data / "recorder.sock", "threads")
    finally:
        try:
            if rec is not None:
                rec.terminate()
                rec.wait(30)
            for sim in sims:
                sim.stop()
        finally:
            drop_disks(disks)
    per_min = 60 / window
    threads = by_name(before, after, names, per_min)
    return {"streams": n, "window_s": round(window, 1),
            "disk": "own ext4 loop filesystem" if own_disk else "work directory",
            "python_cpu_s_per_min": round(sum(threads.values()), 3),
            "threads_cpu_s_per_min": threads}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, nargs="+", default=[0, 16])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--dir", help="work directory (default: a temporary one, removed)")
    args = parser.parse_args(argv)
    if not shutil.which("ffmpeg"):
        print("ffmpeg is missing: run `make bench`, which installs it", file=sys.stderr)
        return 2
    own_disk = os.geteuid() == 0 and shutil.which("losetup") is not None
    if not own_disk:
        print("not root: the recordings go to the work directory's filesystem, whose "
              "other writes the durability sync then writes back too", file=sys.stderr)
    status = 0
    with work_dir(args.dir, "picorder-threads-") as work:
        for n in args.streams:
            try:
                print(json.dumps(run(n, args.seconds, work, own_disk)), flush=True)
            except NotSustained as exc:
                print(f"{n} streams: {exc}", file=sys.stderr, flush=True)
                status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
