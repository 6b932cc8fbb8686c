"""Appliance benchmark: boot-to-panel time and root-filesystem writes while recording.

Boots the cached image under QEMU (TCG) with two simulated cameras from the host,
adopts a hot-added USB disk, lets it record with the default 60 s segments, and reads
the root partition's written sectors from /proc/diskstats and ext4's lifetime
write counter in the guest, at the start and the end of the window. Over the window
the guest's kernel traces who writes the root partition (tracefs, in RAM): bytes per
issuing task, jbd2 commits, and the files whose inodes or data each process changed.
Then (`--after-boot-minutes`) it powers the box off cleanly, boots it, plugs the disk in
again and counts what the first minutes after the panel answers write: the one-off
writes of a boot, which the power-cut benchmark's one-minute windows are made of.

    .venv/bin/python -m benchmarks.appliance_vm [--minutes 20] [--after-boot-minutes 5]
        [--arch amd64]
"""

import argparse
import json
import sys
import tempfile
import subprocess
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "vm"))

from conftest import image_files  # noqa: E402
from qemu_rig import HOST_FROM_GUEST, VM, make_usb_disk, write_boot_file  # noqa: E402

from recorder.sim.launcher import SimCameras  # noqa: E402


BOOT_DEADLINE_S = 2700         # TCG on a loaded 2-core machine: boots took up to 15 min

# Trace the root partition (virtio-blk vda2, dev_t 254:2 in the kernel's encoding) in the
# guest: what the window's writes are made of, without writing anything to measure it.
TRACE_ON = r"""
T=/sys/kernel/tracing
[ -d $T/events ] || mount -t tracefs nodev $T
echo 0 > $T/tracing_on; echo > $T/trace; echo 8192 > $T/buffer_size_kb
DEV=$(( (254 << 20) | 2 ))
for e in ext4/ext4_mark_inode_dirty ext4/ext4_da_write_begin ext4/ext4_write_begin \
         ext4/ext4_sync_file_enter jbd2/jbd2_run_stats; do
  echo "dev == $DEV" > $T/events/$e/filter; echo 1 > $T/events/$e/enable
done
echo 1 > $T/events/block/block_rq_issue/enable
echo 1 > $T/tracing_on
"""
TRACE_SUMMARY = r"""
import collections, json, re, subprocess
task_bytes, inodes, data, fsyncs = (collections.Counter() for _ in range(4))
commits = logged = 0
line_re = re.compile(r"\s*(.+?)-\d+\s+\[\d+\]\s+\S+\s+[\d.]+: (\w+): (.*)")
for line in open("/sys/kernel/tracing/trace", errors="replace"):
    m = line_re.match(line)
    if not m:
        continue
    task, event, rest = m.groups()
    if event == "block_rq_issue":
        rq = re.match(r"254,0 (\S+) \d+ \(.*?\) \d+ \+ (\d+)", rest)
        if rq and "W" in rq.group(1):
            task_bytes[task.split("/")[0]] += int(rq.group(2)) * 512
    elif event == "jbd2_run_stats":
        commits += 1
        logged += int(re.search(r"blocks_logged (\d+)", rest).group(1))
    else:
        ino = re.search(r"ino (\d+)", rest).group(1)
        counter = {"ext4_mark_inode_dirty": inodes, "ext4_sync_file_enter": fsyncs}.get(event, data)
        counter[(task, ino)] += 1
numbers = sorted({i for c in (inodes, data, fsyncs) for _, i in c})
names = {}
if numbers:
    out = subprocess.run(["debugfs", "-R", "ncheck -c " + " ".join(numbers), "/dev/vda2"],
                         capture_output=True, text=True).stdout
    for row in out.splitlines()[1:]:
        cols = row.split("\t")
        if len(cols) >= 2:
            names.setdefault(cols[0].strip(), cols[1].strip())
def top(counter):
    return [[n, task, names.get(i, f"inode {i} (removed since)")]
            for (task, i), n in counter.most_common(15)]
print(json.dumps({"bytes_by_issuing_task": dict(task_bytes), "jbd2_commits": commits,
                  "jbd2_blocks_logged": logged, "inode_updates": top(inodes),
                  "data_writes": top(data), "fsyncs": top(fsyncs)}))
"""


def root_counters(vm: VM) -> tuple[int, int]:
    """(sectors written to the root partition, ext4 lifetime KiB written)."""
    out = vm.ssh("awk '$3 == \"vda2\"' /proc/diskstats; "
                 "cat /sys/fs/ext4/vda2/lifetime_write_kbytes")
    lines = out.split("\n")
    return int(lines[0].split()[9]), int(lines[1])


def wait(predicate, deadline_s: float, what: str):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        result = predicate()
        if result:
            return result
        time.sleep(2)
    raise TimeoutError(what)


def after_boot(vm: VM, disk: Path, headers: dict, minutes: float) -> dict:
    """Power off, boot, re-plug the disk: root-partition bytes in the first minutes."""
    vm.stop()
    vm.monitor_path.unlink(missing_ok=True)
    vm.start()
    boot_s = vm.wait_panel(BOOT_DEADLINE_S)
    t0 = time.monotonic()
    vm.wait_ssh(600)
    vm.ssh(TRACE_ON)
    sectors0, _ = root_counters(vm)
    vm.hot_add_usb_disk(disk)
    wait(lambda: requests.get(vm.panel_url("/api/status"), headers=headers, timeout=30)
         .json()["storage"].get("state") == "recording", 300, "recording after the boot")
    recording_s = time.monotonic() - t0
    marks = {}
    for mark in sorted({1.0, minutes}):
        time.sleep(max(0.0, t0 + mark * 60 - time.monotonic()))
        marks[f"first_{mark:g}_min_kb"] = round((root_counters(vm)[0] - sectors0) * 512 / 1e3)
    return {"boot_to_panel_s": round(boot_s, 1), "recording_after_s": round(recording_s, 1),
            **marks, "who_wrote": json.loads(vm.ssh(f"python3 - <<'EOF'\n{TRACE_SUMMARY}EOF"))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20)
    parser.add_argument("--after-boot-minutes", type=float, default=5,
                        help="then boot again and count this long after the panel answers "
                             "(0: skip)")
    parser.add_argument("--arch", default="amd64")
    args = parser.parse_args()
    files = image_files(args.arch)
    work = Path(tempfile.mkdtemp(prefix="picorder-bench-vm-"))
    key = work / "id"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    pub = key.with_suffix(".pub").read_text().strip()
    sim = SimCameras(cameras=2, fps=15, gop=15, kbps=1000).start()
    vm = VM(files=files, workdir=work, ssh_key=key)
    vm.create_overlay()
    txt = "\n".join([f"root_authorized_key={pub}", "admin_password=bench-admin-1",
                     f"camera=cam1 rtsp://{HOST_FROM_GUEST}:{sim.port}/cam1",
                     f"camera=cam2 rtsp://{HOST_FROM_GUEST}:{sim.port}/cam2"]) + "\n"
    write_boot_file(vm.overlay, files, "picorder.txt", txt, work)
    vm.start()
    result = {"arch": args.arch}
    try:
        result["boot_to_panel_s"] = round(vm.wait_panel(BOOT_DEADLINE_S), 1)
        vm.wait_ssh(600)
        vm.ssh("systemctl is-system-running --wait", timeout=600, check=False)
        token = vm.ssh("/opt/picorder/bin/picorder token create bench --role admin").split()[0]
        headers = {"Authorization": f"Bearer {token}"}
        disk = work / "usb.img"
        uuid = make_usb_disk(disk, size_mb=4096)
        vm.hot_add_usb_disk(disk)
        wait(lambda: uuid in requests.get(vm.panel_url("/storage"), headers=headers,
                                          timeout=30).text, 120, "disk listed")
        requests.post(vm.panel_url("/storage/disks"), headers=headers, timeout=60,
                      data={"action": "adopt", "target": uuid}, allow_redirects=False)
        wait(lambda: requests.get(vm.panel_url("/api/status"), headers=headers, timeout=30)
             .json()["storage"].get("state") == "recording", 120, "recording")
        time.sleep(90)          # past start-up: ffmpeg running, first segments indexed
        vm.ssh(TRACE_ON)
        sectors0, kib0 = root_counters(vm)
        t0 = time.monotonic()
        time.sleep(args.minutes * 60)
        sectors1, kib1 = root_counters(vm)
        result["who_wrote"] = json.loads(vm.ssh(f"python3 - <<'EOF'\n{TRACE_SUMMARY}EOF"))
        hours = (time.monotonic() - t0) / 3600
        status = requests.get(vm.panel_url("/api/status"), headers=headers, timeout=30).json()
        segs = vm.ssh(f"find /srv/picorder/disks/{uuid}/picorder -name '*.mp4' | wc -l")
        result.update({
            "window_min": round(hours * 60, 1),
            "root_diskstats_mb_per_h": round((sectors1 - sectors0) * 512 / 1e6 / hours, 2),
            "root_ext4_lifetime_mb_per_h": round((kib1 - kib0) * 1024 / 1e6 / hours, 2),
            "streams_running": sum(s["state"] == "RUNNING" for s in status["streams"]),
            "segments_on_usb_disk": int(segs.strip()),
        })
        result["files_written_on_root"] = vm.ssh(
            f"find / -xdev -type f -mmin -{int(args.minutes) + 1} 2>/dev/null | head -20",
            check=False).split()
        if args.after_boot_minutes > 0:
            result["after_boot"] = after_boot(vm, disk, headers, args.after_boot_minutes)
    finally:
        vm.stop()
        sim.stop()
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
