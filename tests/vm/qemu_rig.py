"""The QEMU test rig: boot a picorder image under TCG and drive it from the host.

The guest boots with the image's own kernel and initrd (-kernel/-initrd) from a
qcow2 overlay, so the cached image stays untouched.  It has user-mode networking
with the panel and SSH forwarded to host ports (the guest reaches the host's
loopback as 10.0.2.2), a qemu-xhci USB controller, and an HMP monitor on a Unix
socket for hot-plugging USB disks.  KVM is never used: guests hang with it here.
"""

import json
import logging
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid as uuidlib
from dataclasses import dataclass, field
from pathlib import Path

from recorder.sim.launcher import free_port

logger = logging.getLogger(__name__)

FAT_START = 4 * 1024 * 1024          # image/build.sh: p1 starts at 4 MiB
HOST_FROM_GUEST = "10.0.2.2"          # QEMU user networking: the host's loopback
GUEST_PANEL_PORT = 80
SSH_TIMEOUT_S = 60
MONITOR_TIMEOUT_S = 20


@dataclass
class ImageFiles:
    """A built image and the kernel and initrd inside it."""

    image: Path
    kernel: Path
    initrd: Path
    arch: str = "amd64"
    fat_size: int = 64 * 1024 * 1024


def make_usb_disk(path: Path, size_mb: int = 512, label: str = "PICORDER") -> str:
    """A raw disk file with an MBR and one ext4 partition; return the filesystem UUID."""
    with open(path, "wb") as f:
        f.truncate(size_mb * 1024 * 1024)
    subprocess.run(["sfdisk", "--no-reread", "--no-tell-kernel", "-q", str(path)],
                   input="label: dos\nstart=2048, type=83\n", text=True, check=True)
    uuid = str(uuidlib.uuid4())
    part_kib = (size_mb * 1024) - 1024
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-L", label, "-U", uuid,
                    "-E", f"offset={2048 * 512}", str(path), f"{part_kib}k"], check=True)
    return uuid


def write_boot_file(overlay: Path, files: ImageFiles, name: str, text: str, workdir: Path) -> None:
    """Put a file on the image's FAT partition, through the qcow2 overlay."""
    fat = workdir / "fat.img"
    with open(files.image, "rb") as src, open(fat, "wb") as dst:
        src.seek(FAT_START)
        remaining = files.fat_size
        while remaining:
            chunk = src.read(min(remaining, 1 << 20))
            if not chunk:
                break
            dst.write(chunk)
            remaining -= len(chunk)
    local = workdir / name
    local.write_text(text)
    env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
    subprocess.run(["mcopy", "-o", "-i", str(fat), str(local), f"::{name}"], check=True, env=env)
    subprocess.run(["qemu-io", "-f", "qcow2", "-c",
                    f"write -s {fat} {FAT_START} {files.fat_size}", str(overlay)],
                   check=True, capture_output=True)


def read_boot_file(overlay: Path, files: ImageFiles, name: str, workdir: Path) -> str:
    """Read a file back from the FAT partition of the overlay (after the guest stopped)."""
    raw = workdir / "overlay-read.img"
    subprocess.run(["qemu-img", "convert", "-O", "raw", str(overlay), str(raw)], check=True)
    env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
    out = subprocess.run(["mtype", "-i", f"{raw}@@{FAT_START}", f"::{name}"],
                         check=True, capture_output=True, env=env)
    raw.unlink()
    return out.stdout.decode()


@dataclass
class VM:
    """One booted guest; start() boots it, stop() powers it off."""

    files: ImageFiles
    workdir: Path
    ssh_key: Path
    memory_mb: int = 1024
    cpus: int = 2
    panel_port: int = 0
    ssh_port: int = 0
    proc: subprocess.Popen | None = field(default=None, repr=False)
    started_at: float = 0.0
    usb_disks: int = 0

    @property
    def overlay(self) -> Path:
        return self.workdir / "overlay.qcow2"

    @property
    def monitor_path(self) -> Path:
        return self.workdir / "hmp.sock"

    @property
    def console_log(self) -> Path:
        return self.workdir / "console.log"

    grow_mb: int = 512        # the "SD card" is this much larger than the image

    def create_overlay(self) -> None:
        size = self.files.image.stat().st_size + self.grow_mb * 1024 * 1024
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(self.files.image),
                        "-F", "raw", str(self.overlay), str(size)], check=True)

    def image_partition_bytes(self, number: int) -> int:
        """Size of a partition as built in the image (before the guest grew it)."""
        table = json.loads(subprocess.run(["sfdisk", "-J", str(self.files.image)],
                                          capture_output=True, text=True, check=True).stdout)
        return table["partitiontable"]["partitions"][number - 1]["size"] * 512

    def qemu_argv(self) -> list[str]:
        if self.files.arch == "amd64":
            argv = ["qemu-system-x86_64", "-M", "pc", "-accel", "tcg"]
            console = "ttyS0"
        else:
            argv = ["qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a72", "-accel", "tcg"]
            console = "ttyAMA0"
        append = (f"root=LABEL=RASPIROOT rw console={console} panic=-1 net.ifnames=0 "
                  "systemd.show_status=1")
        return argv + [
            "-m", str(self.memory_mb), "-smp", str(self.cpus), "-no-reboot",
            "-display", "none", "-serial", f"file:{self.console_log}",
            "-kernel", str(self.files.kernel), "-initrd", str(self.files.initrd),
            "-append", append,
            "-drive", f"file={self.overlay},if=none,id=root,format=qcow2",
            "-device", "virtio-blk-pci,drive=root",
            "-netdev", (f"user,id=net0,hostfwd=tcp:127.0.0.1:{self.panel_port}-:{GUEST_PANEL_PORT},"
                        f"hostfwd=tcp:127.0.0.1:{self.ssh_port}-:22"),
            "-device", "virtio-net-pci,netdev=net0",
            "-device", "qemu-xhci,id=xhci",
            "-monitor", f"unix:{self.monitor_path},server=on,wait=off",
        ]

    def start(self) -> "VM":
        if shutil.which("qemu-system-x86_64" if self.files.arch == "amd64"
                        else "qemu-system-aarch64") is None:
            raise RuntimeError("QEMU is not installed: run `make test`, which installs it")
        self.panel_port = self.panel_port or free_port()
        self.ssh_port = self.ssh_port or free_port()
        if not self.overlay.exists():
            self.create_overlay()
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(["nice", "-n", "5"] + self.qemu_argv(),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=open(self.workdir / "qemu.stderr", "wb"),
                                     start_new_session=True)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def console_tail(self, lines: int = 40) -> str:
        try:
            text = self.console_log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    # ------------------------------------------------------------ monitor

    def hmp(self, command: str) -> str:
        """Run one HMP command on the monitor socket and return its output."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(MONITOR_TIMEOUT_S)
            sock.connect(str(self.monitor_path))
            self._read_prompt(sock)
            sock.sendall(command.encode() + b"\n")
            out = self._read_prompt(sock)
        # The monitor echoes the command line; drop it and the prompt.
        text = out.decode(errors="replace").replace("\r", "")
        lines = [ln for ln in text.split("\n") if ln.strip() and not ln.startswith("(qemu)")]
        result = "\n".join(ln for ln in lines if command not in ln)
        logger.info("hmp %s -> %s", command, result or "ok")
        return result

    @staticmethod
    def _read_prompt(sock) -> bytes:
        data = b""
        while not data.endswith(b"(qemu) "):
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        return data

    def hot_add_usb_disk(self, image: Path) -> str:
        """Plug a raw disk file into the xhci controller as a USB stick; return its id."""
        self.usb_disks += 1
        drive = f"usbdisk{self.usb_disks}"
        dev = f"usb{self.usb_disks}"
        out = self.hmp(f"drive_add 0 if=none,id={drive},file={image},format=raw")
        if "Error" in out or "error" in out:
            raise RuntimeError(f"drive_add failed: {out}")
        out = self.hmp(f"device_add usb-storage,bus=xhci.0,drive={drive},id={dev}")
        if "Error" in out or "error" in out:
            raise RuntimeError(f"device_add failed: {out}")
        self.current_usb = dev
        return dev

    def hot_remove_usb_disk(self, dev: str | None = None) -> None:
        """Pull the USB stick out (device_del)."""
        dev = dev or self.current_usb
        out = self.hmp(f"device_del {dev}")
        if "Error" in out or "error" in out:
            raise RuntimeError(f"device_del failed: {out}")

    # ------------------------------------------------------------ guest access

    def ssh_argv(self, command: str) -> list[str]:
        return ["ssh", "-i", str(self.ssh_key), "-p", str(self.ssh_port),
                "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR",
                "root@127.0.0.1", command]

    def ssh(self, command: str, timeout: float = SSH_TIMEOUT_S, check: bool = True) -> str:
        """Run a shell command in the guest as root; return its standard output."""
        done = subprocess.run(self.ssh_argv(command), capture_output=True, text=True,
                              timeout=timeout)
        if check and done.returncode != 0:
            raise RuntimeError(f"guest command {command!r} failed ({done.returncode}): "
                               f"{done.stderr.strip()} {done.stdout.strip()}")
        return done.stdout

    def wait_ssh(self, deadline_s: float) -> None:
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            if not self.alive():
                raise RuntimeError("the guest stopped:\n" + self.console_tail())
            done = subprocess.run(self.ssh_argv("true"), capture_output=True, timeout=30)
            if done.returncode == 0:
                return
            time.sleep(2)
        raise TimeoutError("no SSH from the guest in time:\n" + self.console_tail())

    def panel_url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.panel_port}{path}"

    def wait_panel(self, deadline_s: float) -> float:
        """Wait until the panel answers HTTP; return seconds since the VM started."""
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            if not self.alive():
                raise RuntimeError("the guest stopped:\n" + self.console_tail())
            try:
                with urllib.request.urlopen(self.panel_url("/auth/login"), timeout=5) as resp:
                    resp.read()
                    return time.monotonic() - self.started_at
            except urllib.error.HTTPError as exc:
                # Any answer of the panel counts; nginx says 502 until the panel listens.
                if exc.code not in (502, 503, 504):
                    return time.monotonic() - self.started_at
                time.sleep(1)
            except (urllib.error.URLError, OSError):
                time.sleep(1)
        raise TimeoutError("the panel did not answer in time:\n" + self.console_tail())

    def stop(self) -> None:
        """Power off cleanly when possible, else kill QEMU."""
        if not self.alive():
            return
        try:
            self.hmp("system_powerdown")
            self.proc.wait(30)
        except (OSError, subprocess.TimeoutExpired, RuntimeError):
            logger.warning("the guest did not power off; killing QEMU")
            self.proc.kill()
            self.proc.wait(10)
