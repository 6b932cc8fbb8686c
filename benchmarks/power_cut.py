"""Power-cut benchmark: ten cuts of the appliance under QEMU, the video each one cost.

Boots the cached amd64 image (build it with `make image-test` or any tests/vm run)
with one simulated camera from the host (10 fps, a keyframe a second, 1 Mbit/s)
recording onto a hot-plugged USB disk in 6 s segments, then cuts the power (kill -9
QEMU) `--cuts` times, cycling through the scenarios of tests/vm/power_cut_rig.py:
mid-segment, at a segment boundary, while the index is written, while retention
deletes, in the first seconds after a boot. After each cut it boots, re-plugs the
disk and reports the loss (the cut - the end of the newest surviving video), the
largest hole before the last 2 s, `picorder check` and config.db, and at the end the
root partition's writes while recording.

    .venv/bin/python -m benchmarks.power_cut [--cuts 10] [--sync-s 0] [--seed 1]

`--sync-s 0` turns the recorder's syncing off: the behaviour before issue 15.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "vm"))
sys.path.append(str(ROOT / "tests"))          # helpers/, which power_cut_rig uses

from conftest import image_files  # noqa: E402
from power_cut_rig import SCENARIOS, PowerCutBox  # noqa: E402

from recorder.sim.launcher import SimCameras  # noqa: E402

MAX_LOSS_S = 2.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cuts", type=int, default=10)
    parser.add_argument("--sync-s", type=float, default=None,
                        help="PICORDER_SYNC_S in the guest (default: the recorder's own)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    files = image_files("amd64")
    if not files.image.exists():
        print(f"no image at {files.image}: run the VM tests first (they build it)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="picorder-bench-cut-"))
    key = work / "id"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    pub = key.with_suffix(".pub").read_text().strip()
    sim = SimCameras(cameras=1, fps=10, gop=10, kbps=1000, width=320, height=180).start()
    box = PowerCutBox(files, work, key, pub, sim.port, sync_s=args.sync_s, seed=args.seed)
    cuts = []
    try:
        box.first_boot()
        for n in range(args.cuts):
            scenario = SCENARIOS[n % len(SCENARIOS)]
            cut = box.cut(scenario)
            cuts.append(cut)
            problems = cut.problems(MAX_LOSS_S)
            print(f"cut {n + 1:2d} {scenario:26s} lost {cut.loss_s} s, hole {cut.max_gap_s:.2f} s "
                  f"over {cut.covered_s} s, offset +/- {cut.offset_rtt_ms / 2:.0f} ms, "
                  f"boot {cut.boot_s:.0f} s, check rc {cut.check_rc}"
                  + (f"  PROBLEMS: {problems}" if problems else ""), flush=True)
    finally:
        box.stop()
        sim.stop()
    losses = [c.loss_s for c in cuts if c.loss_s is not None]
    rate = box.root_write_rate_mb_h()
    summary = {
        "sync_s": args.sync_s, "cuts": len(cuts),
        "loss_median_s": statistics.median(losses) if losses else None,
        "loss_worst_s": max(losses) if losses else None,
        "cuts_with_problems": sum(1 for c in cuts if c.problems(MAX_LOSS_S)),
        "root_writes_mb_per_h": round(rate, 2) if rate is not None else None,
    }
    print(json.dumps(summary))
    if args.json:
        args.json.write_text(json.dumps({"summary": summary,
                                         "cuts": [c.__dict__ for c in cuts]}, indent=1))
    print(f"work directory: {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
