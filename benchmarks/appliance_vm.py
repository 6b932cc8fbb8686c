"""Appliance benchmark: boot-to-panel time and root-filesystem writes while recording.

Boots the cached image under QEMU (TCG) with two simulated cameras from the host,
adopts a hot-added USB disk, lets it record with the default 60 s segments, and reads
the root partition's written sectors from /proc/diskstats and ext4's lifetime
write counter in the guest, at the start and the end of the window.

    .venv/bin/python -m benchmarks.appliance_vm [--minutes 20] [--arch amd64]
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20)
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
        result["boot_to_panel_s"] = round(vm.wait_panel(900), 1)
        vm.wait_ssh(120)
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
        sectors0, kib0 = root_counters(vm)
        t0 = time.monotonic()
        time.sleep(args.minutes * 60)
        sectors1, kib1 = root_counters(vm)
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
    finally:
        vm.stop()
        sim.stop()
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
