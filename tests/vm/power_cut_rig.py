"""Power cuts of the appliance under QEMU: kill -9 QEMU at a chosen moment, boot, re-plug, judge.

Killing QEMU loses everything the guest kernel had not written to its virtual
disks (its page cache), as pulling a Pi's plug does; what QEMU had written to the
disk image files stays. The moment of the cut is taken on the host and turned into
guest wall-clock time with an offset measured just before it over a persistent SSH
shell (the sample with the shortest round trip), so the loss is counted on the
clock the index is written in.

Loss = the cut - the end of the newest surviving video of the stream. The newest
file of a run that began less than a segment before the cut is placed by recovery
at its name, which ffmpeg writes in whole seconds; its true start is the file's
birth time (statx), so that one is measured from there.
"""

import json
import logging
import random
import signal
import subprocess
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from helpers import waiting
from qemu_rig import HOST_FROM_GUEST, VM, ImageFiles, make_usb_disk, write_boot_file

# Each check is an SSH round trip to the guest, once a second; a guest still booting
# answers with one of these errors, which only means "not yet".
wait_for = partial(waiting.wait_for, interval=1.0,
                   retry_on=(RuntimeError, subprocess.TimeoutExpired, ValueError))

logger = logging.getLogger(__name__)

PICORDER = "/opt/picorder/bin/picorder"
PYTHON = "/opt/picorder/bin/python"
CAMERA = "cam1"
SEGMENT_SECONDS = 6
GUEST_CMD_S = 180               # one guest command over SSH, on a busy machine
BOOT_DEADLINE_S = 900           # TCG on a busy shared machine (load 15-20: 10 min)
RECORDING_DEADLINE_S = 600
COVERAGE_S = 20.0            # the video before the last 2 s is checked for gaps this far back
GAP_TOLERANCE_S = 0.5
DISK_MB = 1024               # 256-byte inodes (mke2fs "default" type): files have a birth time
SCENARIOS = ("mid-segment", "segment boundary", "index write", "retention",
             "first seconds after boot")

ROWS_SCRIPT = r"""
import json, sqlite3, sys, subprocess
pdir = sys.argv[1]
db = sqlite3.connect(f"file:{pdir}/index.db?mode=ro", uri=True, timeout=10)
rows = db.execute("SELECT path, start_us, end_us, duration_us, deleting FROM segment WHERE "
                  "camera = ? AND stream = 'main' ORDER BY start_us", (sys.argv[2],)).fetchall()
out = []
for n, (path, start, end, dur, deleting) in enumerate(rows[-60:]):
    birth = subprocess.run(["stat", "-c", "%.9W", f"{pdir}/{path}"], capture_output=True,
                           text=True).stdout.strip() if n >= len(rows[-60:]) - 4 else ""
    out.append([path, start, end, dur, deleting, float(birth) if birth else None])
print(json.dumps(out))
"""

CONFIG_SCRIPT = r"""
import json, sqlite3
db = sqlite3.connect("file:/var/lib/picorder/config.db?mode=ro", uri=True, timeout=10)
print(json.dumps({"integrity": db.execute("PRAGMA integrity_check").fetchone()[0],
                  "cameras": [r[0] for r in db.execute("SELECT name FROM camera")]}))
"""


def picorder_txt(pubkey: str, sim_port: int) -> str:
    return "\n".join([
        "# written by tests/vm/power_cut_rig.py",
        "hostname=cutbox",
        "admin_password=vm-admin-pw-2",
        f"root_authorized_key={pubkey}",
        f"camera={CAMERA} rtsp://{HOST_FROM_GUEST}:{sim_port}/cam1",
    ]) + "\n"


@dataclass
class Cut:
    """One power cut and what the next boot found."""

    scenario: str
    cut_guest_us: int = 0
    offset_rtt_ms: float = 0.0
    loss_s: float | None = None       # cut - end of the newest surviving video
    max_gap_s: float = 0.0            # largest hole in the video before the last 2 s
    covered_s: float = 0.0            # how much video before the cut was checked for holes
    check_output: str = ""
    check_rc: int | None = None
    config: dict = field(default_factory=dict)
    resumed_s: float | None = None    # re-plug -> a new segment indexed (host seconds)
    boot_s: float | None = None
    recovered: list = field(default_factory=list)

    def problems(self, max_loss_s: float) -> list[str]:
        out = []
        if self.loss_s is None or self.loss_s > max_loss_s:
            out.append(f"{self.scenario}: lost {self.loss_s} s (more than {max_loss_s} s)")
        if self.max_gap_s > GAP_TOLERANCE_S:
            out.append(f"{self.scenario}: a {self.max_gap_s:.2f} s hole before the cut")
        if self.check_rc != 0 or "no problems found" not in self.check_output:
            out.append(f"{self.scenario}: picorder check: {self.check_output.strip()}")
        if self.config.get("integrity") != "ok" or CAMERA not in self.config.get("cameras", []):
            out.append(f"{self.scenario}: config.db: {self.config}")
        if self.resumed_s is None:
            out.append(f"{self.scenario}: recording did not resume")
        return out


class GuestClock:
    """Offset of the guest's wall clock from the host's, over one persistent SSH shell."""

    def __init__(self, vm: VM):
        self.proc = subprocess.Popen(vm.ssh_argv("while read -r _; do date +%s%N; done"),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     bufsize=1)

    def sample(self) -> tuple[int, int]:
        """(guest - host offset in ns, round trip in ns)."""
        t0 = time.time_ns()
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        t1 = time.time_ns()
        if not line.strip():
            raise RuntimeError("the guest clock shell ended")
        return int(line) - (t0 + t1) // 2, t1 - t0

    def offset(self, samples: int = 7) -> tuple[int, int]:
        return min((self.sample() for _ in range(samples)), key=lambda s: s[1])

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


class PowerCutBox:
    """The appliance with one host camera recording onto a USB disk, cut again and again."""

    def __init__(self, files: ImageFiles, workdir: Path, ssh_key: Path, pubkey: str,
                 sim_port: int, sync_s: float | None = None, seed: int | None = None):
        self.vm = VM(files=files, workdir=workdir, ssh_key=ssh_key)
        self.workdir = workdir
        self.pubkey = pubkey
        self.sim_port = sim_port
        self.sync_s = sync_s              # None: the recorder's default; 0: no syncing (old)
        self.disk_image = workdir / "usb.img"
        self.disk_uuid: str | None = None
        self.random = random.Random(seed)
        self.recording_since_us: int | None = None
        self.run_begins_after_us: int | None = None     # "first seconds after boot": its run
        self.root_sectors: list[tuple[float, int]] = []

    @property
    def pdir(self) -> str:
        return f"/srv/picorder/disks/{self.disk_uuid}/picorder"

    # ------------------------------------------------------------ set-up

    def first_boot(self) -> None:
        self.vm.create_overlay()
        write_boot_file(self.vm.overlay, self.vm.files, "picorder.txt",
                        picorder_txt(self.pubkey, self.sim_port), self.workdir)
        self._boot()
        vm = self.vm
        script = ("from pathlib import Path\nfrom recorder import config\n"
                  "config.open_config(Path('/var/lib/picorder/config.db'))\n"
                  f"config.Setting.write('segment_seconds', '{SEGMENT_SECONDS}')\n")
        vm.ssh(f"{PYTHON} - <<'EOF'\n{script}EOF", timeout=GUEST_CMD_S)
        if self.sync_s is not None:
            vm.ssh("mkdir -p /etc/systemd/system/picorder-recorder.service.d && printf "
                   f"'[Service]\\nEnvironment=PICORDER_SYNC_S={self.sync_s}\\n' > "
                   "/etc/systemd/system/picorder-recorder.service.d/sync.conf && "
                   "systemctl daemon-reload", timeout=GUEST_CMD_S)
            vm.ssh("systemctl restart picorder-recorder.service", timeout=GUEST_CMD_S)
        vm.ssh("sync", timeout=GUEST_CMD_S)      # the recorder picks segment_seconds up by itself
        self.disk_uuid = make_usb_disk(self.disk_image, size_mb=DISK_MB)
        vm.hot_add_usb_disk(self.disk_image)
        wait_for(lambda: self.disk_uuid in vm.ssh(f"{PICORDER} disk list", check=False,
                                                  timeout=GUEST_CMD_S),
                 GUEST_CMD_S, "the USB disk in `picorder disk list`")
        vm.ssh(f"{PICORDER} disk adopt {self.disk_uuid}", timeout=GUEST_CMD_S)
        try:
            wait_for(lambda: self.status()["storage"].get("state") == "recording",
                     GUEST_CMD_S, "storage state 'recording' after the adoption")
        except AssertionError:
            # Seen under heavy load: the index could not be opened right after the adoption
            # and the storage gave the disk up; plugging it in again brings it back.
            logger.warning("the adopted disk is not recording: plugging it in again")
            vm.hot_remove_usb_disk()
            time.sleep(5)
            vm.hot_add_usb_disk(self.disk_image)
        self._wait_recording()

    def _boot(self) -> float:
        started = time.monotonic()
        self.vm.monitor_path.unlink(missing_ok=True)     # left by a killed QEMU
        self.vm.start()
        self.vm.wait_panel(BOOT_DEADLINE_S)
        self.vm.wait_ssh(GUEST_CMD_S)
        return time.monotonic() - started

    def status(self) -> dict:
        return json.loads(self.vm.ssh(f"{PICORDER} status --json", timeout=GUEST_CMD_S))

    def rows(self) -> list[list]:
        out = self.vm.ssh(f"/usr/bin/python3 - {self.pdir} {CAMERA} <<'EOF'\n{ROWS_SCRIPT}EOF",
                          timeout=GUEST_CMD_S)
        return json.loads(out)

    def _wait_recording(self, after_us: int = 0) -> float:
        """Wait for a segment that started after `after_us` to be indexed; return host seconds."""
        started = time.monotonic()
        wait_for(lambda: self.status()["storage"].get("state") == "recording",
                 RECORDING_DEADLINE_S, "storage state 'recording'")
        rows = wait_for(lambda: [r for r in self.rows() if r[1] > after_us],
                        RECORDING_DEADLINE_S, "a new indexed segment", interval=2)
        self.recording_since_us = rows[0][1]
        return time.monotonic() - started

    def root_written_sectors(self) -> int:
        line = self.vm.ssh("awk '$3 == \"vda2\"' /proc/diskstats", timeout=GUEST_CMD_S)
        return int(line.split()[9])

    # ------------------------------------------------------------ the cut

    def guest_now_us(self, clock: GuestClock) -> int:
        offset, _ = clock.offset(3)
        return (time.time_ns() + offset) // 1000

    def cut(self, scenario: str) -> Cut:
        """Prepare `scenario`, kill QEMU at its moment, boot, re-plug and judge."""
        result = Cut(scenario)
        recording_since_us = self.recording_since_us
        self.root_sectors.append((time.monotonic(), self.root_written_sectors()))
        if scenario == "retention":
            self._start_retention()
        if scenario == "first seconds after boot":
            self._clean_reboot()
        clock = GuestClock(self.vm)
        try:
            target_us = self._moment(scenario, clock)
            offset_ns, rtt_ns = clock.offset()
        finally:
            clock.close()
        delay = (target_us * 1000 - offset_ns - time.time_ns()) / 1e9
        if delay > 0:
            time.sleep(delay)
        t0 = time.time_ns()
        self.vm.proc.send_signal(signal.SIGKILL)
        t1 = time.time_ns()
        self.vm.proc.wait(30)
        result.cut_guest_us = ((t0 + t1) // 2 + offset_ns) // 1000
        result.offset_rtt_ms = rtt_ns / 1e6
        logger.info("cut (%s) at guest %d, offset measured to +/- %.0f ms", scenario,
                    result.cut_guest_us, rtt_ns / 2e6)
        self._after_cut(result, recording_since_us)
        return result

    def _moment(self, scenario: str, clock: GuestClock) -> int:
        """Guest wall time (us) to cut at."""
        seg_us = SEGMENT_SECONDS * 1_000_000
        now = self.guest_now_us(clock)
        if scenario == "first seconds after boot":
            # The recorder has just started on this boot: cut in its first segment.
            return now + int(self.random.uniform(0.5, 2.5) * 1e6)
        # At least 2 s ahead, so the measurement and the sleep fit in.
        boundary = (now // seg_us + 1) * seg_us
        if boundary - now < 2_000_000:
            boundary += seg_us
        if scenario == "mid-segment":
            return boundary + int(self.random.uniform(0.3, 0.7) * seg_us)
        if scenario == "segment boundary":
            return boundary + int(self.random.uniform(-0.3, 0.3) * 1e6)
        if scenario == "index write":
            # The list line comes with the first keyframe after the boundary; the row is
            # inserted after the file's fsync and probe.
            return boundary + int(self.random.uniform(0.2, 0.9) * 1e6)
        if scenario == "retention":
            return boundary + int(self.random.uniform(0.5, 1.5) * 1e6)
        raise ValueError(scenario)

    def _clean_reboot(self) -> None:
        """Power off cleanly, boot, re-plug: the cut then falls in the run's first segment."""
        clock = GuestClock(self.vm)
        try:
            self.run_begins_after_us = self.guest_now_us(clock)
        finally:
            clock.close()
        self.vm.stop()
        self._boot()
        self.vm.hot_add_usb_disk(self.disk_image)
        wait_for(lambda: any(s["state"] == "RUNNING" for s in self.status()["streams"]),
                 RECORDING_DEADLINE_S, "the camera recording after the boot")

    def _start_retention(self) -> None:
        """A free-space floor just above the free space: each new segment makes retention delete."""
        avail = int(self.vm.ssh(f"df -B1 --output=avail {self.pdir} | tail -1",
                                timeout=GUEST_CMD_S))
        self.vm.ssh(f"{PICORDER} disk floor --bytes {avail + 1024 * 1024}", timeout=GUEST_CMD_S)
        # The free-space watch rereads the floor every 5 s.
        time.sleep(6)

    def _after_cut(self, result: Cut, recording_since_us: int | None) -> None:
        result.boot_s = self._boot()
        self.root_sectors.append((time.monotonic(), self.root_written_sectors()))
        result.config = json.loads(self.vm.ssh(f"/usr/bin/python3 - <<'EOF'\n{CONFIG_SCRIPT}EOF",
                                               timeout=GUEST_CMD_S))
        self.vm.hot_add_usb_disk(self.disk_image)
        result.resumed_s = self._wait_recording(after_us=result.cut_guest_us)
        journal = self.vm.ssh("journalctl -b -u picorder-recorder.service --no-pager "
                              "| grep -E 'recovery:|recovered segment'", check=False,
                              timeout=GUEST_CMD_S)
        result.recovered = journal.strip().splitlines()
        check = subprocess.run(self.vm.ssh_argv(f"{PICORDER} check"), capture_output=True,
                               text=True, timeout=GUEST_CMD_S)
        result.check_rc, result.check_output = check.returncode, check.stdout + check.stderr
        self._measure_loss(result, recording_since_us)

    def _measure_loss(self, result: Cut, recording_since_us: int | None) -> None:
        cut = result.cut_guest_us
        before = [r for r in self.rows() if r[1] < cut and not r[4]]
        if not before:
            return
        path, start, end, duration, _, birth = before[-1]
        name_us = _name_us(path)
        if start == name_us and birth:
            # Placed at its name's whole second: measure from the file's birth instead.
            end = max(end, int(birth * 1e6) + duration)
        result.loss_s = round((cut - end) / 1e6, 3)
        begins = recording_since_us or 0
        if self.run_begins_after_us is not None:
            begins = next(r[1] for r in before if r[1] > self.run_begins_after_us)
            self.run_begins_after_us = None
        since = max(begins, cut - int(COVERAGE_S * 1e6), before[0][1])
        limit = cut - 2_000_000
        covered_to = since
        for r in before:
            if r[2] <= since or r[1] >= limit:
                continue
            result.max_gap_s = max(result.max_gap_s, (r[1] - covered_to) / 1e6)
            covered_to = max(covered_to, r[2])
        result.max_gap_s = max(result.max_gap_s, (min(limit, end) - covered_to) / 1e6)
        result.covered_s = round((limit - since) / 1e6, 1)

    def root_write_rate_mb_h(self) -> float | None:
        """Root-partition writes while recording (between the cuts' samples), MB per hour."""
        total_s = total_sectors = 0.0
        # Samples come in pairs: (after a boot, before the next cut) windows of one boot.
        for (t0, s0), (t1, s1) in zip(self.root_sectors[1::2], self.root_sectors[2::2]):
            total_s += t1 - t0
            total_sectors += s1 - s0
        return total_sectors * 512 / 1e6 / (total_s / 3600) if total_s > 0 else None

    def stop(self) -> None:
        self.vm.stop()


def _name_us(path: str) -> int:
    from datetime import datetime, timezone
    y, mo, d, hms = path.split("/")[-4:]
    h, mi, s = hms[:-4].split("-")
    return int(datetime(int(y), int(mo), int(d), int(h), int(mi), int(s),
                        tzinfo=timezone.utc).timestamp()) * 1_000_000
