"""What syncing the recording disk costs: two recorders side by side, syncing and not.

    python -m benchmarks.durability_cost [--streams 8] [--seconds 300] [--kbps 2000]

Two `picorder recorder` processes record --streams cameras each at the same time,
each onto its own ext4 filesystem on a loop device (a file in --dir), so that the
kernel counts each side's writes to its "disk" apart: one with the recorder's
default sync period (recorder.durability), one with PICORDER_SYNC_S=0 (the
behaviour before issue 15: the kernel writes dirty pages back after up to 30 s).
The cameras are one simulated RTSP server replaying one clip on 2 x --streams
mounts, the two sides on alternate mounts. Over the window it reports, per side:
bytes, write requests and cache flushes the loop device received
(/sys/block/loopN/stat), the MP4 bytes the segments grew by, and CPU seconds of
the recorder's process tree (Python and its ffmpeg) plus the filesystem's jbd2
journal thread. Needs root (losetup, mount).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.recorder_cpu import (
    WARMUP_S, children_of, cpu_seconds, encode_clip, jbd2_pid, loop_disk, picorder,
    wait_running,
)
from recorder.sim.launcher import SimCameras

PROJECT = Path(__file__).resolve().parents[1]
DISK_GB = 4
FLOOR_BYTES = 256 * 1024**2      # no retention during the run
FPS = 25


def device_counters(dev: str) -> dict[str, int]:
    """Writes (requests, sectors) and flushes the block device has completed."""
    fields = [int(x) for x in Path(f"/sys/block/{Path(dev).name}/stat").read_text().split()]
    return {"write_ios": fields[4], "write_sectors": fields[6],
            "flushes": fields[15] if len(fields) > 15 else 0}


def mp4_bytes(root: Path) -> int:
    return sum(f.stat().st_size for f in root.rglob("*.mp4"))


class Side:
    """One recorder, its loop disk and its counters."""

    def __init__(self, name: str, work: Path, sync_s: str | None):
        self.name = name
        self.work = work / name
        self.data = self.work / "data"
        self.mount = self.work / "disk"
        self.sync_s = sync_s
        self.dev = ""
        self.proc: subprocess.Popen | None = None

    def start(self, urls: list[str]) -> None:
        self.data.mkdir(parents=True)
        self.dev = loop_disk(self.work / "disk.img", self.mount, DISK_GB)
        picorder(self.data, "disk", "adopt-dir", str(self.mount))
        picorder(self.data, "disk", "floor", "--bytes", str(FLOOR_BYTES))
        for i, url in enumerate(urls):
            picorder(self.data, "camera", "add", f"cam{i + 1}", url)
        env = dict(os.environ)
        env.pop("PICORDER_SYNC_S", None)
        if self.sync_s is not None:
            env["PICORDER_SYNC_S"] = self.sync_s
        self.log = open(self.work / "recorder.log", "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "picorder", "--data", str(self.data),
                                      "recorder"], stdout=self.log, stderr=subprocess.STDOUT,
                                     cwd=PROJECT, env=env)

    def sample(self) -> dict:
        pids = [self.proc.pid] + children_of(self.proc.pid)
        jbd2 = jbd2_pid(self.dev)
        return {"cpu": {pid: cpu_seconds(pid) for pid in pids},
                "jbd2": cpu_seconds(jbd2) if jbd2 else 0.0,
                "dev": device_counters(self.dev), "mp4": mp4_bytes(self.mount),
                "t": time.monotonic()}

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(30)
            self.log.close()
        if self.dev:
            subprocess.run(["umount", str(self.mount)], check=False)
            subprocess.run(["losetup", "-d", self.dev], check=False)


def delta(a: dict, b: dict) -> dict:
    window = b["t"] - a["t"]
    tree = sum(b["cpu"][p] - a["cpu"][p] for p in a["cpu"]
               if a["cpu"][p] is not None and b["cpu"].get(p) is not None)
    written = (b["dev"]["write_sectors"] - a["dev"]["write_sectors"]) * 512
    mp4 = b["mp4"] - a["mp4"]
    return {
        "window_s": round(window, 1),
        "device_written_mb": round(written / 1e6, 2),
        "mp4_grew_mb": round(mp4 / 1e6, 2),
        "written_per_mp4_byte": round(written / mp4, 4) if mp4 else None,
        "write_requests_per_s": round((b["dev"]["write_ios"] - a["dev"]["write_ios"]) / window, 1),
        "flushes_per_s": round((b["dev"]["flushes"] - a["dev"]["flushes"]) / window, 2),
        "tree_cpu_s": round(tree, 2),
        "jbd2_cpu_s": round(b["jbd2"] - a["jbd2"], 2),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--kbps", type=int, default=2000)
    parser.add_argument("--sync-s", default=None,
                        help="PICORDER_SYNC_S of the syncing side (default: the recorder's own)")
    parser.add_argument("--dir", type=Path, default=Path("/var/tmp"),
                        help="where the loop disks' image files go (a real disk)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("needs root (losetup, mount)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="picorder-bench-sync-", dir=args.dir))
    clip = encode_clip(work / "clip.mp4", args.seconds + WARMUP_S + 120, args.kbps, (640, 360))
    sim = SimCameras(cameras=2 * args.streams, clip=str(clip))
    sides = [Side("sync", work, args.sync_s), Side("nosync", work, "0")]
    try:
        sim.start()
        for k, side in enumerate(sides):
            side.start([sim.url(2 * i + 1 + (k + i) % 2) for i in range(args.streams)])
        for side in sides:
            wait_running(side.data, args.streams)
        time.sleep(WARMUP_S)
        before = [side.sample() for side in sides]
        time.sleep(args.seconds)
        after = [side.sample() for side in sides]
    finally:
        for side in sides:
            side.stop()
        sim.stop()
    result = {"streams": args.streams, "kbps": args.kbps, "sync_s": args.sync_s or "default"}
    for side, a, b in zip(sides, before, after):
        result[side.name] = delta(a, b)
    s, n = result["sync"], result["nosync"]
    result["ratio_written"] = round(s["device_written_mb"] / n["device_written_mb"], 3)
    result["ratio_cpu"] = round((s["tree_cpu_s"] + s["jbd2_cpu_s"])
                                / (n["tree_cpu_s"] + n["jbd2_cpu_s"]), 3)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
