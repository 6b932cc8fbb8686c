"""What a twice-a-second sync of its filesystem costs ffmpeg itself, with and without lazytime.

    python -m benchmarks.sync_ffmpeg [--streams 16] [--seconds 60] [--options noatime]

Two groups of --streams ffmpeg processes (`-c copy` into the recorder's fMP4 segment
options: 1 s fragments, flushed) record the same clip from simulated cameras, side by
side, each group onto its own ext4 loop filesystem mounted with --options. One
filesystem is synced with syncfs(2) every limits.DURABLE_SYNC_S, as the recorder's
durability thread does; the other is left to the kernel. After a warm-up, the CPU
seconds of each group are measured over the window. Prints one JSON object; the ratio
is the synced group's CPU over the other's. Needs root (losetup, mount).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.recorder_cpu import (
    MOUNTS_PER_SERVER, WARMUP_S, cpu_seconds, drop_disks, encode_clip, loop_disk,
)
from recorder import limits
from recorder.durability import _libc_syncfs
from recorder.ffmpeg import MOVFLAGS
from recorder.sim.launcher import SimCameras

DISK_GB = 4


def recorder_like_ffmpeg(url: str, out: Path) -> subprocess.Popen:
    """ffmpeg with the recorder's segment and fragment options, no supervision."""
    out.mkdir(parents=True)
    argv = ["ffmpeg", "-nostdin", "-loglevel", "error", "-rtsp_transport", "tcp", "-i", url,
            "-map", "0:v:0", "-c", "copy", "-f", "segment", "-segment_time", "60",
            "-segment_atclocktime", "1", "-reset_timestamps", "1", "-segment_format", "mp4",
            "-segment_format_options",
            f"{MOVFLAGS}:frag_duration={limits.FRAGMENT_MAX_US}:flush_packets=1",
            str(out / "%05d.mp4")]
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True)


def syncing(root: Path, stop: threading.Event) -> None:
    syncfs = _libc_syncfs()
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        while not stop.wait(limits.DURABLE_SYNC_S):
            syncfs(fd)
    finally:
        os.close(fd)


def run(n: int, seconds: float, options: str, work: Path) -> dict:
    clip = encode_clip(work / "clip.mp4", seconds + WARMUP_S + 60, 4000, (1280, 720))
    sims = [SimCameras(cameras=min(MOUNTS_PER_SERVER, 2 * n - i), clip=str(clip))
            for i in range(0, 2 * n, MOUNTS_PER_SERVER)]
    disks = []
    groups: tuple[list, list] = ([], [])
    stop = threading.Event()
    try:
        for side in ("synced", "unsynced"):
            disks.append((work / side, loop_disk(work / f"{side}.img", work / side, DISK_GB,
                                                 options)))
        for sim in sims:
            sim.start()
        place = [(m // MOUNTS_PER_SERVER, m % MOUNTS_PER_SERVER + 1) for m in range(2 * n)]
        for i in range(n):                      # each side first in every other pair
            mine = (place[2 * i + (i % 2)], place[2 * i + 1 - (i % 2)])
            for group, (server, mount), (root, _) in zip(groups, mine, disks):
                group.append(recorder_like_ffmpeg(sims[server].url(mount), root / str(i)))
        threading.Thread(target=syncing, args=(disks[0][0], stop), daemon=True).start()
        time.sleep(WARMUP_S + 10)
        before = [[cpu_seconds(p.pid) for p in g] for g in groups]
        time.sleep(seconds)
        after = [[cpu_seconds(p.pid) for p in g] for g in groups]
    finally:
        stop.set()
        try:
            for p in groups[0] + groups[1]:
                p.terminate()
            for p in groups[0] + groups[1]:
                p.wait(30)
            for sim in sims:
                sim.stop()
            time.sleep(limits.DURABLE_SYNC_S)  # the sync thread lets go of the filesystem
        finally:
            drop_disks(disks)
    synced, unsynced = (sum(b - a for a, b in zip(g0, g1) if a is not None and b is not None)
                        for g0, g1 in zip(before, after))
    return {"streams": n, "window_s": seconds, "options": options,
            "synced_cpu_s": round(synced, 2), "unsynced_cpu_s": round(unsynced, 2),
            "ratio": round(synced / unsynced, 3) if unsynced else None}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--options", default="noatime",
                        help="mount options of both filesystems (e.g. noatime,lazytime)")
    parser.add_argument("--dir", help="work directory (default: a temporary one, removed)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0 or not shutil.which("losetup"):
        print("needs root (losetup, mount)", file=sys.stderr)
        return 2
    work = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="picorder-sync-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        print(json.dumps(run(args.streams, args.seconds, args.options, work)), flush=True)
    finally:
        if not args.dir:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
