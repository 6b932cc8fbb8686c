"""The recorder's ffmpeg command line alone against bare `ffmpeg -c copy`, side by side.

    python -m benchmarks.ffmpeg_argv [--streams 8] [--seconds 90]

Splits the recorder benchmark's ratio into its two parts: this measures what the
ffmpeg argv of `recorder.ffmpeg.build_argv` costs (the concat demuxer that keeps
credentials out of argv, wall-clock cuts with strftime names, fragments of 1 s
flushed as they complete, the progress and segment-list pipes) with no Python
recorder in the way; its pipes go to /dev/null. Two groups of bare processes
record the same kind of stream in the same run, so the spread between them shows
the noise. The cameras replay a pre-encoded 4 Mbps clip (as in recorder_cpu).
Prints one JSON object.
"""

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.recorder_cpu import (FPS, MOUNTS_PER_SERVER, bare_ffmpeg, cpu_seconds,
                                     encode_clip)
from recorder import ffmpeg
from recorder.ffmpeg_user import make_day_dirs
from recorder.process import day_dirs, host_wall_us
from recorder.sim.launcher import SimCameras

WARMUP_S = 20


def recorder_ffmpeg(url: str, out: Path, n: int) -> subprocess.Popen:
    """ffmpeg exactly as the recorder starts it, pipes to /dev/null."""
    spec = ffmpeg.StreamSpec(camera=f"cam{n}", stream="main", url=url)
    source = ffmpeg.write_source_file(out / "run", spec, n)
    make_day_dirs(out / "picorder", spec.camera, spec.stream, day_dirs(host_wall_us()), None)
    argv = ffmpeg.build_argv(spec, source_file=source, picorder_dir=out / "picorder",
                             progress_fd=1, segments_fd=1)
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=ffmpeg.ffmpeg_env(),
                            start_new_session=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=8, help="streams per group")
    parser.add_argument("--seconds", type=float, default=90)
    parser.add_argument("--kbps", type=int, default=4000)
    args = parser.parse_args(argv)
    if not shutil.which("ffmpeg"):
        print("ffmpeg is missing: run `make bench`, which installs it", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="picorder-bench-argv-"))
    groups = ("bare", "recorder", "bare2")
    total = args.streams * len(groups)
    sims: list[SimCameras] = []
    procs: dict[str, list[subprocess.Popen]] = {g: [] for g in groups}
    try:
        clip = encode_clip(work / "clip.mp4", args.seconds + WARMUP_S + 60, args.kbps,
                           (1280, 720))
        sims = [SimCameras(cameras=min(MOUNTS_PER_SERVER, total - i), clip=str(clip)).start()
                for i in range(0, total, MOUNTS_PER_SERVER)]
        i = 0
        for group in groups:
            for _ in range(args.streams):
                url = sims[i // MOUNTS_PER_SERVER].url(i % MOUNTS_PER_SERVER + 1)
                out = work / group / str(i)
                if group == "recorder":
                    out.mkdir(parents=True)
                    procs[group].append(recorder_ffmpeg(url, out, i))
                else:
                    procs[group].append(bare_ffmpeg(url, out))
                i += 1
        time.sleep(WARMUP_S)
        start = {g: [cpu_seconds(p.pid) for p in ps] for g, ps in procs.items()}
        time.sleep(args.seconds)
        end = {g: [cpu_seconds(p.pid) for p in ps] for g, ps in procs.items()}
        dead = [p.pid for ps in procs.values() for p in ps if p.poll() is not None]
        if dead:
            print(f"{len(dead)} ffmpeg processes exited during the run; no figures",
                  file=sys.stderr)
            return 1
        cpu = {g: sum(e - s for s, e in zip(start[g], end[g])) for g in groups}
        print(json.dumps({
            "streams_per_group": args.streams, "kbps": args.kbps, "fps": FPS,
            "window_s": args.seconds,
            **{f"{g}_cpu_s": round(cpu[g], 2) for g in groups},
            "recorder_argv_ratio": round(cpu["recorder"] / cpu["bare"], 3),
            "recorder_argv_ratio_vs_bare2": round(cpu["recorder"] / cpu["bare2"], 3),
            "bare2_vs_bare": round(cpu["bare2"] / cpu["bare"], 3),
        }), flush=True)
    finally:
        for ps in procs.values():
            for p in ps:
                p.terminate()
        for ps in procs.values():
            for p in ps:
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
        for sim in sims:
            sim.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
