"""Clock-save benchmark: what saving the last known time costs the filesystem it lives on.

The recorder saves its last known time every limits.CLOCK_SAVE_S (60 s) onto the root
partition, mounted `commit=60` on the appliance: about one journal commit a save. Two
sides run at the same time, each on its own small ext4 (4 KiB blocks) on a loop device
mounted `noatime,commit=PERIOD`, each saving every PERIOD seconds: one save a commit as
on the box, and PERIOD above the kernel's 30 s dirty expiry, so each commit's blocks are
written back home once, as on the box. One side rewrites the file in place (the
recorder's way), the other puts a new file in its place with a rename (the way before).
The bytes each loop device received, per save, scale to the box's hour as 60 saves.
Needs root (losetup, mount).

    .venv/bin/python -m benchmarks.clock_save [--saves 8] [--period 32]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.durability_cost import device_counters
from recorder import limits
from recorder.timekeeping import Timekeeper

DISK_MB = 256


def loop_fs(image: Path, mount: Path, period: int) -> str:
    """A small ext4 on a loop device, mounted like the appliance's root; its device."""
    with open(image, "wb") as f:
        f.truncate(DISK_MB * 1024**2)
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-b", "4096", "-T", "default", str(image)],
                   check=True)
    dev = subprocess.run(["losetup", "--find", "--show", str(image)], check=True,
                         capture_output=True, text=True).stdout.strip()
    mount.mkdir(parents=True)
    subprocess.run(["mount", "-o", f"noatime,commit={period}", dev, str(mount)], check=True)
    return dev


class InPlace(Timekeeper):
    """The recorder's save."""


class Renamed(Timekeeper):
    """The save before: a new file renamed over the old one each time."""

    def _write(self, utc_us: int) -> bool:
        self._replace(f"{utc_us}\n".encode())
        return True


def run_side(keeper: Timekeeper, saves: int, period: float) -> None:
    for _ in range(saves):
        keeper.save()
        time.sleep(period)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--saves", type=int, default=8)
    parser.add_argument("--period", type=int, default=32, help="seconds: commit= and save period")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root (losetup, mount)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="picorder-bench-clock-"))
    sides = {"in place": InPlace, "renamed": Renamed}
    devs, mounts = {}, {}
    try:
        for n, name in enumerate(sides):
            mounts[name] = work / f"fs{n}"
            devs[name] = loop_fs(work / f"fs{n}.img", mounts[name], args.period)
        subprocess.run(["sync"], check=True)
        time.sleep(args.period + 1)
        before = {name: device_counters(dev) for name, dev in devs.items()}
        threads = [threading.Thread(target=run_side, args=(
            cls(mounts[name] / "last_time", ntp_check=lambda: None), args.saves, args.period))
            for name, cls in sides.items()]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        time.sleep(args.period + 35)        # the last commit and the flusher's 30 s expiry
        result = {}
        for name, dev in devs.items():
            after = device_counters(dev)
            per_save = (after["write_sectors"] - before[name]["write_sectors"]) * 512 / args.saves
            result[name] = {"bytes_per_save": round(per_save),
                            "mb_per_hour_at_60_s": round(per_save * 3600 / limits.CLOCK_SAVE_S
                                                         / 1e6, 2),
                            "write_requests": after["write_ios"] - before[name]["write_ios"]}
        result["ratio_renamed_to_in_place"] = round(
            result["renamed"]["bytes_per_save"] / max(1, result["in place"]["bytes_per_save"]), 2)
    finally:
        for name, dev in devs.items():
            subprocess.run(["umount", str(mounts[name])], check=False)
            subprocess.run(["losetup", "-d", dev], check=False)
    print(json.dumps({"saves": args.saves, "period_s": args.period, **result}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
