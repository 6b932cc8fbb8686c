"""The integration tests' fixtures: a real udevd, loop-device disks, guarded mount bases."""

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from helpers.storage import sh

UDEVD = "/lib/systemd/systemd-udevd"


def need_root():
    if os.geteuid() != 0:
        pytest.skip("needs root: loop devices, mounts and systemd-udevd (run `make test` as root)")
    for tool in ("losetup", "mkfs.ext4", "udevadm", "chattr"):
        if not shutil.which(tool):
            pytest.fail(f"{tool} is missing: run `make test`, which installs it")


def udevd_running() -> bool:
    return sh("udevadm", "control", "--ping", "--timeout=2", check=False).returncode == 0


@pytest.fixture(scope="session")
def udevd():
    """A running systemd-udevd: the one of the machine, or one this fixture starts."""
    need_root()
    started = None
    if not udevd_running():
        if not os.path.exists(UDEVD):
            pytest.fail(f"{UDEVD} is missing: run `make test`, which installs udev")
        started = subprocess.Popen([UDEVD], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   start_new_session=True)
        deadline = time.monotonic() + 10
        while not udevd_running():
            if time.monotonic() > deadline:
                started.kill()
                pytest.fail("systemd-udevd did not start")
            time.sleep(0.1)
        # Fill udev's database for devices that appeared before udevd ran.
        sh("udevadm", "trigger", "--subsystem-match=block", "--action=change")
    sh("udevadm", "settle", "--timeout=10", check=False)
    yield
    if started is not None:
        sh("udevadm", "control", "--exit", check=False)
        try:
            started.wait(10)
        except subprocess.TimeoutExpired:
            started.kill()
            started.wait(5)


class LoopDisks:
    """File-backed disks attached with losetup; everything is undone at the end."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.devices: dict[str, Path] = {}

    def create(self, name: str, size_mb: int = 64, fs: str | None = "ext4",
               label: str | None = None) -> str:
        image = self.directory / f"{name}.img"
        with open(image, "wb") as fh:
            fh.truncate(size_mb * 1024 * 1024)
        if fs == "ext4":
            sh("mkfs.ext4", "-q", "-F", *(["-L", label] if label else []), image)
        return self.attach(image)

    def attach(self, image: Path) -> str:
        dev = sh("losetup", "-f", "--show", image).stdout.strip()
        self.devices[dev] = image
        sh("udevadm", "settle", "--timeout=10", check=False)
        return dev

    def detach(self, dev: str) -> None:
        sh("losetup", "-d", dev, check=False)
        self.devices.pop(dev, None)

    def uuid(self, dev: str) -> str:
        return sh("blkid", "-p", "-s", "UUID", "-o", "value", dev).stdout.strip()

    def cleanup(self) -> None:
        for dev in list(self.devices):
            for line in sh("findmnt", "-n", "-o", "TARGET", "--source", dev,
                           check=False).stdout.split():
                sh("umount", "-l", line, check=False)
            self.detach(dev)


@pytest.fixture
def loop_disks(udevd, tmp_path):
    disks = LoopDisks(tmp_path)
    yield disks
    disks.cleanup()


@pytest.fixture
def mount_base(tmp_path):
    """Where the tests mount disks; unguarded (chattr -i) and unmounted afterwards."""
    base = tmp_path / "disks"
    yield base
    if base.exists():
        for child in base.iterdir():
            if os.path.ismount(child):
                sh("umount", "-l", child, check=False)
            sh("chattr", "-i", child, check=False)
