"""Boot test of the image under QEMU (issue: appliance): the seven checks, in order.

The amd64 variant runs in CI (`make test`); `make image-test-arm64` boots the arm64 image.

One guest boots for the whole module from a qcow2 overlay of the cached image, with a
picorder.txt on its firmware partition that has CRLF line endings, an unknown key and
a bad Wi-Fi entry besides the valid settings.  The host's simulated RTSP cameras are
reached by the guest at 10.0.2.2 (QEMU user networking maps it to the host loopback).
"""

import json
import os
import re
import time
from functools import partial

import pytest
import requests

from helpers import waiting
from recorder.sim.launcher import SimCameras
from qemu_rig import HOST_FROM_GUEST, VM, make_usb_disk, write_boot_file

# Each check is an SSH round trip or an HTTP request to the guest: once a second.
wait_for = partial(waiting.wait_for, interval=1.0)

# The first check also waits for the image build (minutes with a warm cache).
pytestmark = [pytest.mark.vm, pytest.mark.root, pytest.mark.integration, pytest.mark.timeout(3600)]

# Generous: TCG on a shared 2-core machine; arm64 under TCG is several times slower.
BOOT_DEADLINE_S = 300 if os.environ.get("PICORDER_VM_ARCH", "amd64") == "amd64" else 900
SETTLE_DEADLINE_S = 240
USB_DETECT_DEADLINE_S = 60
RECORD_DEADLINE_S = 120
MISSING_DEADLINE_S = 20
RESUME_DEADLINE_S = 60
# The promises, counted on the guest's clock from the udev event.
GUEST_MISSING_S = 2.0
GUEST_RESUME_S = 10.0
UDEV_LOG = "/run/picorder-test-udev.log"
SEGMENT_SECONDS = 6
ADMIN_PASSWORD = "vm-admin-pw-1"
HOSTNAME = "vmbox"


def picorder_txt(pubkey: str, sim: SimCameras) -> str:
    lines = [
        "# written by tests/vm/test_boot.py",
        f"hostname={HOSTNAME}",
        f"admin_password={ADMIN_PASSWORD}",
        "timezone=Europe/Berlin",
        f"root_authorized_key={pubkey}",
        "favourite_colour=blue",                       # unknown key
        "wifi_ssid=HomeNet",
        "wifi_psk=short",                              # bad Wi-Fi entry
        f"camera=cam1 rtsp://{HOST_FROM_GUEST}:{sim.port}/cam1",
        f"camera=cam2 rtsp://{HOST_FROM_GUEST}:{sim.port}/cam2",
    ]
    return "\r\n".join(lines) + "\r\n"


class Box:
    """The booted guest plus what the checks learn along the way."""

    def __init__(self, vm: VM, workdir):
        self.vm = vm
        self.workdir = workdir
        self.panel_s: float | None = None
        self.token: str | None = None
        self.disk_image = workdir / "usb.img"
        self.disk_uuid: str | None = None

    def api(self, path: str, method: str = "GET", **kwargs) -> requests.Response:
        if self.token is None:
            # An admin API token, made by the guest's own CLI.
            out = self.vm.ssh("/opt/picorder/bin/picorder token create vmtest --role admin")
            self.token = out.split()[0]
        headers = {"Authorization": f"Bearer {self.token}"}
        return requests.request(method, self.vm.panel_url(path), headers=headers,
                                timeout=30, allow_redirects=False, **kwargs)

    def status(self) -> dict:
        resp = self.api("/api/status")
        resp.raise_for_status()
        return resp.json()


@pytest.fixture(scope="module")
def box(vm_image, ssh_keypair, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("vm")
    key, pubkey = ssh_keypair
    sim = SimCameras(cameras=2, fps=10, gop=10, kbps=300, width=320, height=180).start()
    vm = VM(files=vm_image, workdir=workdir, ssh_key=key)
    vm.create_overlay()
    write_boot_file(vm.overlay, vm_image, "picorder.txt", picorder_txt(pubkey, sim), workdir)
    vm.start()
    box = Box(vm, workdir)
    try:
        box.panel_s = vm.wait_panel(BOOT_DEADLINE_S)
        vm.wait_ssh(60)
        yield box
    finally:
        (workdir / "console-copy.log").write_text(vm.console_tail(400))
        vm.stop()
        sim.stop()
        print(f"VM work directory: {workdir}")


def test_1_multi_user_is_reached_without_failed_units(box):
    state = box.vm.ssh("systemctl is-system-running --wait", timeout=SETTLE_DEADLINE_S,
                       check=False).strip()
    failed = box.vm.ssh("systemctl list-units --failed --plain --no-legend").strip()
    assert failed == "", f"failed units:\n{failed}"
    assert state == "running"
    active = box.vm.ssh("systemctl is-active multi-user.target picorder-recorder.service "
                        "picorder-panel.service avahi-daemon.service nginx.service").split()
    assert active == ["active"] * 5
    print(f"boot to panel answering: {box.panel_s:.1f} s")


def test_2_panel_answers_on_the_forwarded_port(box):
    resp = requests.get(box.vm.panel_url("/auth/login"), timeout=30)
    assert resp.status_code == 200
    assert "csrf_token" in resp.text
    # The panel runs unprivileged, the recorder as root.
    pid = box.vm.ssh("systemctl show -p MainPID --value picorder-panel.service").strip()
    assert box.vm.ssh(f"ps -o user= -p {pid}").strip() == "picorder"
    # nginx serves port 80; the panel listens on its local socket only.
    listening = box.vm.ssh("ss -Hltnp")
    assert "nginx" in listening and "gunicorn" not in listening and "python" not in listening
    assert box.vm.ssh("test -S /run/picorder-panel/panel.sock && echo ok").strip() == "ok"


def test_3_picorder_txt_was_applied_and_scrubbed(box):
    vm = box.vm
    assert vm.ssh("hostname").strip() == HOSTNAME
    assert vm.ssh("readlink /etc/localtime").strip().endswith("Europe/Berlin")
    machine_id = vm.ssh("cat /etc/machine-id").strip()
    assert re.fullmatch(r"[0-9a-f]{32}", machine_id)
    assert vm.ssh("ls /etc/ssh/ssh_host_ed25519_key.pub").strip()
    # The root partition and filesystem grew to fill the larger "card".
    grown = int(vm.ssh("lsblk -bno SIZE /dev/vda2"))
    fs_bytes = int(vm.ssh("df -B1 --output=size / | tail -1"))
    built = vm.image_partition_bytes(2)
    assert grown >= built + (vm.grow_mb - 8) * 1024 * 1024, (grown, built)
    assert fs_bytes > built, (fs_bytes, built)
    # The admin login works.
    session = requests.Session()
    page = session.get(vm.panel_url("/auth/login"), timeout=30)
    csrf = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.text)
    assert csrf, "no CSRF token on the login page"
    resp = session.post(vm.panel_url("/auth/login"), json={"username": "admin",
                                                      "password": ADMIN_PASSWORD},
                        headers={"X-CSRFToken": csrf.group(1)}, timeout=30)
    assert resp.status_code == 200, resp.text[:300]
    assert resp.json()["user"]["role"] == "admin"
    # The file is scrubbed of its secrets and says what was wrong, in CRLF.
    txt = vm.ssh("cat /boot/firmware/picorder.txt")
    assert ADMIN_PASSWORD not in txt and "wifi_psk" not in txt.split("# picorder first boot")[0]
    assert "camera=" not in txt
    assert "unknown key 'favourite_colour'" in txt
    assert "wifi_psk must be 8-63" in txt
    assert f"hostname={HOSTNAME}\n" in txt
    lines, crlf_lines = vm.ssh("wc -l < /boot/firmware/picorder.txt; "
                               "grep -c $'\\r$' /boot/firmware/picorder.txt").split()
    assert lines == crlf_lines, "the rewritten file keeps the user's CRLF line endings"
    assert vm.ssh("test -e /etc/wpa_supplicant/wpa_supplicant-wlan0.conf || echo none").strip() == "none"
    # The cameras of picorder.txt are in config.db.
    cams = json.loads(vm.ssh("/opt/picorder/bin/picorder camera list --json"))
    assert {c["name"] for c in cams} == {"cam1", "cam2"}
    assert box.status()["cameras"] == 2


def test_4_usb_disk_is_detected_and_adopted_through_the_api(box):
    vm = box.vm
    # Short segments, so that the recording checks are quick.
    vm.ssh("/opt/picorder/bin/python - <<'EOF'\n"
           "from recorder import config\n"
           "config.open_config(__import__('pathlib').Path('/var/lib/picorder/config.db'))\n"
           f"config.Setting.write('segment_seconds', '{SEGMENT_SECONDS}')\n"
           "EOF")
    vm.ssh("systemctl restart picorder-recorder.service")
    box.disk_uuid = make_usb_disk(box.disk_image, size_mb=512)
    vm.hot_add_usb_disk(box.disk_image)

    def listed():
        resp = box.api("/storage")
        return resp.status_code == 200 and box.disk_uuid in resp.text
    wait_for(listed, USB_DETECT_DEADLINE_S, "the USB disk on the storage page")
    resp = box.api("/storage/disks", method="POST",
                   data={"action": "adopt", "target": box.disk_uuid})
    assert resp.status_code in (302, 303), resp.text[:500]
    status = wait_for(lambda: (s := box.status())["storage"].get("state") == "recording" and s,
                      30, "storage state 'recording'")
    assert box.disk_uuid in (status["storage"].get("root") or "")
    mounts = vm.ssh(f"findmnt -n -o SOURCE,OPTIONS /srv/picorder/disks/{box.disk_uuid}")
    assert mounts.startswith("/dev/sd") and "noatime" in mounts
    # The recorder runs in its sandbox (the system read-only to it), and PID 1 holds its
    # mount as a transient unit, so the mount is seen outside that sandbox.
    pid = vm.ssh("systemctl show -p MainPID --value picorder-recorder.service").strip()
    denied = vm.ssh(f"nsenter -t {pid} -m touch /etc/picorder-sandbox-check 2>&1", check=False)
    assert "Read-only file system" in denied, denied
    unit = f'"$(systemd-escape --path --suffix=mount /srv/picorder/disks/{box.disk_uuid})"'
    assert vm.ssh(f"systemctl is-active {unit}").strip() == "active"


def disk_segments(box) -> list[str]:
    out = box.vm.ssh(f"find /srv/picorder/disks/{box.disk_uuid}/picorder -name '*.mp4' "
                     "2>/dev/null | sort", check=False)
    return out.split()


def test_5_a_host_camera_records_onto_that_disk(box):
    assert box.disk_uuid, "check 4 must pass first"
    segments = wait_for(lambda: [s for s in disk_segments(box) if "/cam1/main/" in s],
                        RECORD_DEADLINE_S, "a cam1 segment on the USB disk", interval=3)
    source = box.vm.ssh(f"findmnt -n -o SOURCE -T {segments[0]}").strip()
    assert source.startswith("/dev/sd"), source
    streams = {(s["camera"], s["stream"]): s for s in box.status()["streams"]}
    assert streams[("cam1", "main")]["state"] == "RUNNING"

    def cam1_main():
        return next(s for s in box.status()["streams"]
                    if (s["camera"], s["stream"]) == ("cam1", "main"))
    # The file above may still be the first segment being written: wait for it to close.
    wait_for(lambda: cam1_main()["last_segment_utc_us"], 3 * SEGMENT_SECONDS + 30,
             "cam1/main's first closed segment")
    # The activity analysis decodes its keyframes in the recorder's venv with PyAV
    # (python3-av), not with one ffmpeg per segment: no ffmpeg to fall back on here.
    out = box.vm.ssh("/opt/picorder/bin/python - <<'EOF'\n"
                     "from pathlib import Path\n"
                     "from recorder import activity, mp4\n"
                     f"path = Path('{segments[0]}')\n"
                     "thumbs = activity.thumbnails(path, mp4.scan_segment(path).fragments,\n"
                     "                             ffmpeg='/nonexistent/ffmpeg')\n"
                     "print(activity.av.__version__, len(thumbs))\n"
                     "EOF")
    version, keyframes = out.split()
    assert int(keyframes) >= 1, out
    print(f"PyAV {version} in the image: {keyframes} keyframes of {segments[0]}")


def root_written_sectors(box) -> int:
    line = box.vm.ssh("grep ' vda2 ' /proc/diskstats")
    return int(line.split()[9])


def start_udev_monitor(box) -> None:
    """Log the guest's block udev events, with monotonic timestamps, into UDEV_LOG."""
    vm = box.vm
    vm.ssh(f"test -s {UDEV_LOG}.pid && kill $(cat {UDEV_LOG}.pid); rm -f {UDEV_LOG}; "
           "setsid nohup stdbuf -oL udevadm monitor --kernel --udev --subsystem-match=block "
           f"> {UDEV_LOG} 2>&1 < /dev/null & echo $! > {UDEV_LOG}.pid", check=False)
    wait_for(lambda: "UDEV - the event" in vm.ssh(f"cat {UDEV_LOG}", check=False), 20,
             "udevadm monitor to start in the guest", interval=0.5)


def udev_event_s(box, action: str, deadline_s: float = 20) -> tuple[float, float]:
    """Guest monotonic times of the first (kernel, udev) block `action` event of an sd disk."""
    pattern = re.compile(r"^(KERNEL|UDEV)\s*\[(\d+\.\d+)\]\s+" + action + r"\s+\S+/sd[a-z]+\b")

    def found():
        times = {}
        for line in box.vm.ssh(f"cat {UDEV_LOG}", check=False).splitlines():
            m = pattern.match(line)
            if m:
                times.setdefault(m.group(1), float(m.group(2)))
        return len(times) == 2 and (times["KERNEL"], times["UDEV"])
    return wait_for(found, deadline_s, f"the guest's udev {action} event", interval=0.5)


def recorder_log_s(box, message: str, after_s: float) -> float | None:
    """Guest monotonic time of the recorder's first log line with `message` after `after_s`."""
    out = box.vm.ssh("journalctl -u picorder-recorder.service -o short-monotonic --no-pager "
                     f"| grep -F '{message}'", check=False)
    for line in out.splitlines():
        m = re.match(r"^\[\s*(\d+\.\d+)\]", line)
        if m and float(m.group(1)) >= after_s and message in line:
            return float(m.group(1))
    return None


def test_6_pulled_disk_is_missing_and_nothing_lands_on_the_root_fs(box):
    assert box.disk_uuid, "check 4 must pass first"
    vm = box.vm
    vm.ssh("touch /run/picorder-unplug-mark")
    before = root_written_sectors(box)
    start_udev_monitor(box)
    vm.hot_remove_usb_disk()
    pulled = time.monotonic()
    wait_for(lambda: box.status()["storage"].get("state") == "disk missing",
             MISSING_DEADLINE_S, "storage state 'disk missing'", interval=0.5)
    print(f"'disk missing' {time.monotonic() - pulled:.1f} s after device_del (host)")
    # The promise counts from the remove event, on the guest's clock.
    kernel_s, udev_s = udev_event_s(box, "remove")
    # udevadm stamps each event when it receives it: count from the earlier one.
    event_s = min(kernel_s, udev_s)
    missing_s = wait_for(lambda: recorder_log_s(box, "storage: disk missing", event_s), 10,
                         "the recorder's 'storage: disk missing' log line", interval=0.5)
    print(f"guest: kernel remove {kernel_s:.3f}, udev remove {udev_s:.3f}, "
          f"'disk missing' logged {missing_s:.3f}: {missing_s - kernel_s:.2f} s after the "
          f"kernel event, {missing_s - udev_s:.2f} s after the udev event")
    assert missing_s - event_s <= GUEST_MISSING_S
    streams = box.status()["streams"]
    assert streams and all(s["state"] != "RUNNING" for s in streams)
    time.sleep(2 * SEGMENT_SECONDS + 5)
    # Nothing new below the (now empty) mount point, and no video anywhere on the root fs.
    stray = vm.ssh(f"find /srv/picorder -xdev -newer /run/picorder-unplug-mark -type f; "
                   "find / -xdev -name '*.mp4' -newer /run/picorder-unplug-mark", check=False)
    assert stray.strip() == "", f"written to the root filesystem: {stray}"
    written_kib = (root_written_sectors(box) - before) / 2
    print(f"root filesystem writes while the disk was missing: {written_kib:.0f} KiB")


def test_7_readded_disk_resumes_recording(box):
    assert box.disk_uuid, "check 4 must pass first"
    start_udev_monitor(box)
    box.vm.hot_add_usb_disk(box.disk_image)
    added = time.monotonic()
    wait_for(lambda: box.status()["storage"].get("state") == "recording",
             RESUME_DEADLINE_S, "storage state 'recording' after re-adding the disk")
    print(f"recording again {time.monotonic() - added:.1f} s after device_add (host)")
    # The promise counts from the add event, on the guest's clock.
    kernel_s, udev_s = udev_event_s(box, "add")
    event_s = min(kernel_s, udev_s)
    recording_s = wait_for(lambda: recorder_log_s(box, "storage: recording at", event_s), 10,
                           "the recorder's 'storage: recording at' log line", interval=0.5)
    print(f"guest: kernel add {kernel_s:.3f}, udev add {udev_s:.3f}, 'recording' logged "
          f"{recording_s:.3f}: {recording_s - kernel_s:.2f} s after the kernel event, "
          f"{recording_s - udev_s:.2f} s after the udev event")
    assert recording_s - event_s <= GUEST_RESUME_S
    old = set(disk_segments(box))
    assert any("/cam1/main/" in s for s in old), "the recordings made before are gone"
    new = wait_for(lambda: set(disk_segments(box)) - old, RECORD_DEADLINE_S,
                   "a new segment after re-adding the disk", interval=3)
    assert new
