"""Fixtures of the QEMU rig: the cached amd64 image (built when its sources changed)."""

import fcntl
import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from helpers import PROJECT
from recorder import __version__
from qemu_rig import ImageFiles

BUILD_CACHE = Path(os.environ.get("PICORDER_BUILD_CACHE", "/var/cache/picorder-build"))
# Everything that ends up in the image; a change to any of it rebuilds the image.
IMAGE_SOURCES = ["picorder", "recorder", "webpanel", "ansible", "image",
                 "pyproject.toml", "gunicorn.conf.py"]
BUILD_TIMEOUT_S = 45 * 60


def sources_key() -> str:
    """Hash of the files the image is built from (tracked or not, ignoring caches)."""
    digest = hashlib.sha256(__version__.encode())
    for name in IMAGE_SOURCES:
        base = PROJECT / name
        paths = sorted(p for p in base.rglob("*") if p.is_file()) if base.is_dir() else [base]
        for path in paths:
            rel = path.relative_to(PROJECT).as_posix()
            if "__pycache__" in rel or rel.startswith("image/out/") or rel.endswith(".pyc"):
                continue
            digest.update(rel.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:20]


def image_files(arch: str) -> ImageFiles:
    work = BUILD_CACHE / arch
    return ImageFiles(image=work / f"picorder-{__version__}-{arch}.img",
                      kernel=work / "vmlinuz", initrd=work / "initrd.img", arch=arch,
                      fat_size=(64 if arch == "amd64" else 508) * 1024 * 1024)


def lock_image(arch: str, exclusive: bool):
    """Lock the architecture's build directory (image/build.sh takes the same lock)."""
    path = BUILD_CACHE / arch / ".lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "w")
    fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
    return handle


def build_image(arch: str) -> ImageFiles:
    """Build the image unless the cached one was built from the same sources.

    The caller holds the exclusive lock of the build directory.
    """
    files = image_files(arch)
    key = sources_key()
    stamp = files.image.with_suffix(".key")
    if files.image.exists() and stamp.exists() and stamp.read_text() == key:
        return files
    if os.geteuid() != 0:
        pytest.fail("building the image needs root (mmdebstrap, chroot): run the tests as root")
    log = BUILD_CACHE / "logs" / f"{arch}-test-build.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with open(log, "w") as out:
        done = subprocess.run([str(PROJECT / "image" / "build.sh"), arch],
                              stdout=out, stderr=subprocess.STDOUT, timeout=BUILD_TIMEOUT_S,
                              env=dict(os.environ, PICORDER_BUILD_LOCKED="1"))
    if done.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
        pytest.fail(f"image/build.sh {arch} failed ({done.returncode}); log {log}:\n{tail}")
    stamp.write_text(key)
    print(f"built the {arch} image in {time.monotonic() - started:.0f} s")
    return files


def vm_arch() -> str:
    """amd64 (CI), or arm64 with PICORDER_VM_ARCH=arm64 (`make image-test-arm64`)."""
    return os.environ.get("PICORDER_VM_ARCH", "amd64")


@pytest.fixture(scope="session")
def vm_image():
    """The image to boot: amd64 built (or reused) from this checkout; arm64 as last built."""
    arch = vm_arch()
    qemu = "qemu-system-x86_64" if arch == "amd64" else "qemu-system-aarch64"
    target = "make test" if arch == "amd64" else "make image-test-arm64"
    for tool in (qemu, "qemu-img", "qemu-io", "mcopy", "ssh", "sfdisk"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: run `{target}`, which installs it")
    lock = lock_image(arch, exclusive=True)
    try:
        if arch == "arm64" and image_files(arch).image.exists():
            # The arm64 build takes about half an hour: boot the one `make image` made.
            files = image_files(arch)
        else:
            files = build_image(arch)
        # Keep a shared lock while guests boot from it: no build replaces it meanwhile.
        fcntl.flock(lock, fcntl.LOCK_SH)
        yield files
    finally:
        lock.close()


@pytest.fixture(scope="session")
def ssh_keypair(tmp_path_factory) -> tuple[Path, str]:
    """A throw-away SSH key: (private key path, public key line)."""
    key = tmp_path_factory.mktemp("ssh") / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "picorder-vm-test",
                    "-f", str(key)], check=True)
    return key, key.with_suffix(".pub").read_text().strip()
