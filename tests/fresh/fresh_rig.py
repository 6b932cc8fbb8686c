"""A clean Debian 12 root to run the README's commands in, as a new user's machine would.

The root is Debian's "important" variant (what debootstrap and the installer's base
system have: no Python, no make, no GStreamer), built once with mmdebstrap and cached
as a tarball keyed on its inputs. Packages come from a .deb cache of the fresh roots'
own, seeded from the image build's; mmdebstrap syncs it in and out, and inside the root
apt and pip keep their downloads there too, so a warm run downloads next to nothing.
"""

import hashlib
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from helpers import PROJECT

BUILD_CACHE = Path(os.environ.get("PICORDER_BUILD_CACHE", "/var/cache/picorder-build"))
SUITE = "bookworm"
ARCH = "amd64"
# A Debian 12 machine's sources: the release, its updates and its security archive.
SOURCES = [f"deb http://deb.debian.org/debian {SUITE} main",
           f"deb http://deb.debian.org/debian {SUITE}-updates main",
           f"deb http://deb.debian.org/debian-security {SUITE}-security main"]
CHECKOUT = "/root/picorder"          # where the checkout goes inside the root
BUILD_TIMEOUT_S = 20 * 60
HOST_CA = "/etc/picorder-fresh-host-ca.crt"
ROOT_TMPFS = "12G"                    # the root in memory: about 3 GB once `setup.sh test` ran
# The environment of a root login on a fresh machine (nothing from the test's own).
LOGIN_ENV = {"HOME": "/root", "USER": "root", "LOGNAME": "root", "LANG": "C.UTF-8",
             "TERM": "dumb", "SHELL": "/bin/bash",
             "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}


def login_env() -> dict[str, str]:
    """LOGIN_ENV plus the host's network settings: its proxies, and the CA bundle its pip
    trusts when the network re-signs TLS (copied into the root as HOST_CA)."""
    env = dict(LOGIN_ENV)
    for name in ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"):
        if os.environ.get(name):
            env[name] = os.environ[name]
    if host_ca_bundle():
        env.update(PIP_CERT=HOST_CA, SSL_CERT_FILE=HOST_CA)
    return env


def host_ca_bundle() -> Path | None:
    for name in ("PIP_CERT", "SSL_CERT_FILE"):
        if os.environ.get(name) and Path(os.environ[name]).is_file():
            return Path(os.environ[name])
    return None


def apt_cache() -> Path:
    """The fresh roots' own .deb cache, first seeded (hard links) from the image build's:
    their extra packages (Chromium, QEMU, ...) stay out of what each image build syncs in."""
    debs = BUILD_CACHE / "fresh" / "debs"
    if not debs.is_dir():
        image_debs = BUILD_CACHE / "debs" / f"{SUITE}-{ARCH}"
        part = debs.with_name("debs.part")
        shutil.rmtree(part, ignore_errors=True)
        part.mkdir(parents=True)
        for deb in image_debs.glob("*.deb") if image_debs.is_dir() else ():
            os.link(deb, part / deb.name)
        part.rename(debs)
    return debs


def mmdebstrap_argv(tar: Path, debs: Path) -> list[str]:
    """The clean root's build: its inputs make the cache key."""
    return ["mmdebstrap", "--variant=important", f"--architectures={ARCH}",
            "--setup-hook=mkdir -p \"$1/var/cache/apt/archives/\"",
            f"--setup-hook=sync-in '{debs}' /var/cache/apt/archives/",
            f"--customize-hook=sync-out /var/cache/apt/archives '{debs}'",
            SUITE, str(tar), *SOURCES]


def clean_root_tarball() -> Path:
    """The cached tarball of the clean root, built when its inputs changed."""
    debs = apt_cache()
    work = BUILD_CACHE / "fresh"
    key_argv = mmdebstrap_argv(Path("ROOT.tar"), Path("DEBS"))
    key = hashlib.sha256("\0".join(key_argv).encode()).hexdigest()[:16]
    tar = work / f"clean-{SUITE}-{ARCH}-{key}.tar"
    if tar.exists():
        return tar
    work.mkdir(parents=True, exist_ok=True)
    part = tar.with_suffix(".part.tar")
    log = work / f"clean-{SUITE}-{ARCH}.log"
    with open(log, "w") as out:
        done = subprocess.run(["nice", *mmdebstrap_argv(part, debs)], stdout=out,
                              stderr=subprocess.STDOUT, timeout=BUILD_TIMEOUT_S)
    if done.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise RuntimeError(f"mmdebstrap of the clean root failed; log {log}:\n{tail}")
    part.rename(tar)
    for old in work.glob(f"clean-{SUITE}-{ARCH}-*.tar"):
        if old != tar:
            old.unlink()
    return tar


def checkout_files() -> list[str]:
    """The files of the checkout as git tracks them (no venv, no caches, no build output)."""
    out = subprocess.run(["git", "ls-files", "-z"], cwd=PROJECT, capture_output=True,
                         check=True).stdout
    return [name for name in out.decode().split("\0") if name and (PROJECT / name).exists()]


def mounts_under(path: Path) -> list[Path]:
    """Mount points at or below `path`, deepest last (as /proc/self/mounts lists them)."""
    found = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        target = Path(line.split()[1].replace("\\040", " "))
        if target == path or path in target.parents:
            found.append(target)
    return found


def roots_dir() -> Path:
    """Where the roots are extracted: outside pytest's temporary directories, whose
    clean-up of old runs would follow the bind mounts into /dev and the caches."""
    return BUILD_CACHE / "fresh" / "roots"


def remove_stale_roots() -> None:
    """Roots left by runs that were killed (their process is gone)."""
    if roots_dir().is_dir():
        for old in roots_dir().iterdir():
            if old.name.isdigit() and not Path(f"/proc/{old.name}").exists():
                FreshRoot(old).destroy()


@dataclass
class FreshRoot:
    """The clean root extracted under `path`, with the kernel's file systems mounted."""

    path: Path

    def create(self, tarball: Path) -> "FreshRoot":
        self.path.mkdir(parents=True)
        # In memory: the root is thrown away, and unpacking Chromium, QEMU and Ansible
        # onto the work disk was most of this test's time.
        self._mount(".", "tmpfs", "-t", "tmpfs", "-o", f"size={ROOT_TMPFS}")
        subprocess.run(["tar", "-C", str(self.path), "-xpf", str(tarball)], check=True)
        shutil.copy("/etc/resolv.conf", self.path / "etc" / "resolv.conf")
        if host_ca_bundle():
            shutil.copy(host_ca_bundle(), self.path / HOST_CA.lstrip("/"))
        # dpkg without an fsync per file (as mmdebstrap builds): the root is thrown away.
        (self.path / "etc/dpkg/dpkg.cfg.d/picorder-fresh-unsafe-io").write_text("force-unsafe-io\n")
        # No manuals, docs or translations (as the image leaves them out), and no man-db
        # index rebuild after each install: same packages, less to unpack.
        (self.path / "etc/dpkg/dpkg.cfg.d/picorder-fresh-nodoc").write_text(
            "".join(f"path-exclude=/usr/share/{d}/*\n" for d in ("man", "doc", "locale", "info")))
        (self.path / "var/lib/man-db/auto-update").unlink(missing_ok=True)
        self._copy_checkout()
        pip_cache = BUILD_CACHE / "fresh" / "pip"
        pip_cache.mkdir(parents=True, exist_ok=True)
        self._mount("proc", "proc", "-t", "proc")
        self._mount("sys", "sysfs", "-t", "sysfs")
        self._mount("dev", "/dev", "--bind")
        self._mount("dev/pts", "/dev/pts", "--bind")
        self._mount("dev/shm", "/dev/shm", "--bind")
        self._mount("run", "tmpfs", "-t", "tmpfs")
        self._mount("tmp", "tmpfs", "-t", "tmpfs")
        # apt and pip keep their downloads outside the root, for the next run.
        self._mount("var/cache/apt/archives", str(apt_cache()), "--bind")
        self._mount("root/.cache/pip", str(pip_cache), "--bind")
        return self

    def _copy_checkout(self) -> None:
        dest = self.path / CHECKOUT.lstrip("/")
        dest.mkdir(parents=True)
        listing = "\0".join(checkout_files()).encode()
        pack = subprocess.Popen(["tar", "-C", str(PROJECT), "--null", "-T", "-", "-cf", "-"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        unpack = subprocess.Popen(["tar", "-C", str(dest), "-xf", "-"], stdin=pack.stdout)
        pack.stdout.close()
        pack.stdin.write(listing)
        pack.stdin.close()
        assert pack.wait(120) == 0 and unpack.wait(120) == 0, "copying the checkout failed"

    def _mount(self, where: str, what: str, *options: str) -> None:
        target = self.path / where
        target.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", *options, what, str(target)], check=True)

    def popen(self, command: str, out, **kwargs) -> subprocess.Popen:
        """Run a shell command in the checkout inside the root, as root logged in there."""
        return subprocess.Popen(["chroot", str(self.path), "/bin/bash", "-c",
                                 f"cd {CHECKOUT} && {command}"], env=login_env(), stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True, **kwargs)

    def run(self, command: str, timeout: float) -> tuple[int, str]:
        """Run a command to its end: (exit status, output)."""
        done = subprocess.run(["chroot", str(self.path), "/bin/bash", "-c",
                               f"cd {CHECKOUT} && {command}"], env=login_env(),
                              capture_output=True, text=True, timeout=timeout)
        return done.returncode, done.stdout + done.stderr

    def processes(self) -> list[int]:
        """Processes running inside the root (all of them started by this test)."""
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if os.readlink(entry / "root") == str(self.path):
                        found.append(int(entry.name))
                except OSError:
                    pass
        return found

    def destroy(self) -> None:
        """Stop what runs inside, unmount, and delete the root (never through a mount)."""
        for _ in range(50):
            pids = self.processes()
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)
        for target in reversed(mounts_under(self.path)):
            subprocess.run(["umount", "-l", str(target)], check=False)
        still = mounts_under(self.path)
        if still:
            raise RuntimeError(f"still mounted, not deleting {self.path}: {still}")
        subprocess.run(["rm", "-rf", "--one-file-system", str(self.path)], check=False)
