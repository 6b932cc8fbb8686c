"""The recorder's ffmpeg command line alone against bare `ffmpeg -c copy`, side by side.

    python -m benchmarks.ffmpeg_argv [--streams 8] [--seconds 90] [--without OPTION ...]

Splits the recorder benchmark's ratio into its two parts: this measures what the
ffmpeg argv of `recorder.ffmpeg.build_argv` costs (the concat demuxer that keeps
credentials out of argv, wall-clock cuts with strftime names, fragments of 1 s
flushed as they complete, the progress and segment-list pipes) with no Python
recorder in the way; its pipes go to /dev/null. Two groups of bare processes
record the same kind of stream in the same run, so the spread between them shows
the noise. `--without` adds groups running the recorder's argv with one option
left out (concat, flush, progress, list, clock), to attribute a difference. The
groups' processes are interleaved over the camera servers' mounts, the order
reversed every other round, so no group has a server or a serving position of its
own. The cameras replay a pre-encoded 4 Mbps clip (as in recorder_cpu). Prints one
JSON object.
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


def recorder_argv(url: str, out: Path, n: int) -> list[str]:
    """ffmpeg's argv exactly as the recorder builds it, pipes to /dev/null."""
    spec = ffmpeg.StreamSpec(camera=f"cam{n}", stream="main", url=url)
    source = ffmpeg.write_source_file(out / "run", spec, n)
    make_day_dirs(out / "picorder", spec.camera, spec.stream, day_dirs(host_wall_us()), None)
    return ffmpeg.build_argv(spec, source_file=source, picorder_dir=out / "picorder",
                             progress_fd=1, segments_fd=1)


def _drop(argv: list[str], option: str, count: int = 2) -> list[str]:
    i = argv.index(option)
    return argv[:i] + argv[i + count:]


def without(option: str, argv: list[str], url: str) -> list[str]:
    """The recorder's argv with one of its costly options left out."""
    if option == "concat":          # the URL in argv instead of an ffconcat list
        first, last = argv.index("-f"), argv.index("-i")
        return argv[:first] + ["-rtsp_transport", "tcp", "-i", url] + argv[last + 2:]
    if option == "flush":           # fragments at keyframes, written when the buffer fills
        i = argv.index("-segment_format_options")
        return argv[:i + 1] + [ffmpeg.MOVFLAGS] + argv[i + 2:]
    if option == "progress":
        return _drop(_drop(argv, "-progress"), "-stats_period")
    if option == "list":
        return _drop(_drop(argv, "-segment_list"), "-segment_list_type")
    if option == "clock":           # cuts every 60 s of stream, not at wall-clock minutes
        return _drop(argv, "-segment_atclocktime")
    raise ValueError(option)


OPTIONS = ("concat", "flush", "progress", "list", "clock")


def start_group(group: str, url: str, out: Path, n: int) -> subprocess.Popen:
    if group.startswith("bare"):
        return bare_ffmpeg(url, out)
    out.mkdir(parents=True)
    argv = recorder_argv(url, out, n)
    if group.startswith("no-"):
        argv = without(group[3:], argv, url)
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=ffmpeg.ffmpeg_env(),
                            start_new_session=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=8, help="streams per group")
    parser.add_argument("--seconds", type=float, default=90)
    parser.add_argument("--kbps", type=int, default=4000)
    parser.add_argument("--without", nargs="+", choices=OPTIONS, default=[],
                        help="also measure the recorder's argv without each of these options")
    args = parser.parse_args(argv)
    if not shutil.which("ffmpeg"):
        print("ffmpeg is missing: run `make bench`, which installs it", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="picorder-bench-argv-"))
    groups = ("bare", "recorder", "bare2") + tuple(f"no-{o}" for o in args.without)
    total = args.streams * len(groups)
    sims: list[SimCameras] = []
    procs: dict[str, list[subprocess.Popen]] = {g: [] for g in groups}
    try:
        clip = encode_clip(work / "clip.mp4", args.seconds + WARMUP_S + 60, args.kbps,
                           (1280, 720))
        sims = [SimCameras(cameras=min(MOUNTS_PER_SERVER, total - i), clip=str(clip)).start()
                for i in range(0, total, MOUNTS_PER_SERVER)]
        i = 0
        for round_ in range(args.streams):
            for group in groups if round_ % 2 == 0 else groups[::-1]:
                url = sims[i // MOUNTS_PER_SERVER].url(i % MOUNTS_PER_SERVER + 1)
                procs[group].append(start_group(group, url, work / group / str(i), i))
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
            **{f"recorder_without_{g[3:]}_ratio": round(cpu[g] / cpu["bare"], 3)
               for g in groups if g.startswith("no-")},
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
