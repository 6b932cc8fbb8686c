"""The README's commands on a fresh Debian 12 machine: a clean root, as root, no systemd.

In order, in one clean root (the steps build on each other, as on a user's machine):
the README's `apt-get install make` and `make demo` until a segment is indexed and the
panel answers; then `scripts/setup.sh test` (the test suite's packages, checked by
capability); then `image/build.sh --check-tools arm64` (the image build's tools and the
arm64 binfmt registration). A package missing from any of them fails the test.
"""

import os
import re
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from fresh_rig import FreshRoot, clean_root_tarball, remove_stale_roots, roots_dir
from recorder.sim.launcher import free_port

# The first test also builds the clean root when its tarball is not cached (about 4 min).
pytestmark = [pytest.mark.integration, pytest.mark.root, pytest.mark.fresh,
              pytest.mark.timeout(30 * 60)]

INSTALL_MAKE = "apt-get update -q && apt-get install -y -q make"   # README, quick start
DEMO_DIR = "var/tmp/picorder-demo"           # the demo's own directory as root
PANEL_RE = re.compile(r"web panel: +(http://127\.0\.0\.1:\d+/)")
SETUP_TIMEOUT_S = 15 * 60                    # apt and pip, warm cache: 2-4 minutes
DEMO_SEGMENT_S = 180                         # issue 11: a segment within 3 minutes
STOP_S = 20


@pytest.fixture(scope="module")
def fresh_root():
    if os.geteuid() != 0:
        pytest.fail("the fresh-machine test needs root (mmdebstrap, chroot, mounts)")
    remove_stale_roots()
    root = FreshRoot(roots_dir() / str(os.getpid()))
    try:
        yield root.create(clean_root_tarball())
    finally:
        root.destroy()


def indexed_segments(root: Path) -> list[tuple[str, int]]:
    """(path, bytes) of the segments in the demo's index, read-only from outside."""
    db = root / DEMO_DIR / "recordings" / "picorder" / "index.db"
    if not db.exists():
        return []
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute("SELECT path, bytes FROM segment").fetchall()
    except sqlite3.OperationalError:         # the recorder is creating the table right now
        return []


class Output:
    """A child's output file, read as it grows, with the time each line first showed."""

    def __init__(self, path: Path):
        self.path = path
        self.seen: dict[str, float] = {}

    def poll(self) -> str:
        text = self.path.read_text(errors="replace")
        now = time.monotonic()
        for line in text.splitlines():
            self.seen.setdefault(line, now)
        return text

    def time_of(self, pattern: str) -> float | None:
        return next((t for line, t in self.seen.items() if re.search(pattern, line)), None)


def wait(predicate, timeout: float, what: str, out: Output, proc: subprocess.Popen):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc.poll() is not None:
            break
        time.sleep(1)
    pytest.fail(f"{what}: not within {timeout:.0f} s (exit {proc.poll()}); output:\n"
                + out.poll()[-4000:])


def panel_answers(url: str) -> int | None:
    done = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", url],
                          capture_output=True, text=True, timeout=20)
    return int(done.stdout) if done.stdout.isdigit() and done.stdout != "000" else None


def test_make_demo_on_a_fresh_debian_records_and_serves(fresh_root, tmp_path):
    code, output = fresh_root.run(INSTALL_MAKE, timeout=SETUP_TIMEOUT_S)
    assert code == 0, output[-3000:]
    out = Output(tmp_path / "demo.out")
    started = time.monotonic()
    with open(out.path, "w") as sink:
        # The root shares the host's network: the panel gets a free port, not 8080.
        demo = fresh_root.popen(f"make demo DEMO_ARGS='--panel-port {free_port()}'", sink)
    try:
        url = wait(lambda: (m := PANEL_RE.search(out.poll())) and m.group(1),
                   SETUP_TIMEOUT_S, "the demo's panel URL", out, demo)
        installed = out.time_of(r"^setup: ready") or started
        segments = wait(lambda: indexed_segments(fresh_root.path), DEMO_SEGMENT_S,
                        "a segment indexed", out, demo)
        segment_at = time.monotonic()
        assert wait(lambda: panel_answers(url), 30, "the panel to answer", out, demo) in (200, 401)
        path, size = segments[0]
        assert size > 0 and (fresh_root.path / DEMO_DIR / "recordings" / "picorder" / path).stat().st_size
        print(f"fresh root: install {installed - started:.0f} s, panel URL "
              f"{out.time_of(PANEL_RE.pattern) - installed:.0f} s and first segment "
              f"{segment_at - installed:.0f} s after the install")
        text = out.poll()
        # The quiet demo: one line per install step, the summary, then nothing at INFO.
        assert "picorder demo is running" in text and f"/{DEMO_DIR}" in text
        summary_end = text.index("Ctrl-C")
        assert " INFO " not in text[summary_end:], text[summary_end:][:2000]
        assert not (fresh_root.path / "var/lib/picorder").exists(), "the demo used /var/lib"
    finally:
        os.killpg(demo.pid, signal.SIGINT)
        try:
            demo.wait(STOP_S)
        except subprocess.TimeoutExpired:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait(STOP_S)


def test_setup_test_installs_everything_the_suite_checks(fresh_root):
    started = time.monotonic()
    code, output = fresh_root.run("scripts/setup.sh test", timeout=SETUP_TIMEOUT_S)
    assert code == 0, output[-3000:]
    print(f"fresh root: scripts/setup.sh test {time.monotonic() - started:.0f} s")
    code, output = fresh_root.run("scripts/setup.sh test --check", timeout=120)
    assert code == 0 and "everything needed is here" in output, output[-3000:]


def test_the_image_build_finds_its_tools_and_runs_arm64_programs(fresh_root):
    started = time.monotonic()
    code, output = fresh_root.run("image/build.sh --check-tools arm64", timeout=SETUP_TIMEOUT_S)
    assert code == 0 and "build tools ok" in output, output[-3000:]
    print(f"fresh root: image/build.sh --check-tools arm64 {time.monotonic() - started:.0f} s")
