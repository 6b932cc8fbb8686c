"""Start the simulated RTSP cameras as a child process of the system Python."""

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from recorder.children import die_with_parent

SYSTEM_PYTHON = "/usr/bin/python3"     # has GStreamer's bindings (python3-gi)
READY_TIMEOUT_S = 15.0
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class SimCameras:
    """A running simulated RTSP server with `cameras` mounts /cam1 ... /camN."""

    cameras: int = 2
    port: int = 0
    fps: int = 15
    gop: int = 15
    kbps: int = 1000
    width: int = 640
    height: int = 360
    codec: str = "h264"
    patterns: str = "noise"          # or "picture": what the demo shows
    clip: str | None = None          # serve this MP4 on every mount instead of encoding
    # Faults (recorder.sim.rtsp_server): times in seconds after the stream's first frame.
    jumps: list[tuple[float, float]] = field(default_factory=list)     # (seconds, at)
    clock_rate: float = 1.0
    freezes: list[tuple[float, float]] = field(default_factory=list)   # (seconds, at)
    resizes: list[tuple[tuple[int, int], float]] = field(default_factory=list)
    stamp: bool = False              # each frame's wall time (UTC us) as a QR code
    scenes: list[str] = field(default_factory=list)   # camera N plays scenes[N-1] (scenes.py)
    scene_truth: Path | None = None  # where the scenes' start times are appended
    user: str | None = None
    password: str | None = None
    proc: subprocess.Popen | None = field(default=None, repr=False)

    def url(self, n: int = 1, sub: bool = False) -> str:
        """The camera's URL, without credentials."""
        return f"rtsp://127.0.0.1:{self.port}/cam{n}" + ("/sub" if sub else "")

    def start(self) -> "SimCameras":
        if not self.port:
            self.port = free_port()
        argv = [SYSTEM_PYTHON, "-m", "recorder.sim.rtsp_server", "--port", str(self.port),
                "--cameras", str(self.cameras), "--fps", str(self.fps), "--gop", str(self.gop),
                "--kbps", str(self.kbps), "--width", str(self.width),
                "--height", str(self.height), "--codec", self.codec,
                "--patterns", self.patterns]
        if self.clip:
            argv += ["--clip", str(self.clip)]
        argv += self.fault_args()
        if self.user:
            argv += ["--user", self.user, "--password-file", "-"]
        env = dict(os.environ, PYTHONPATH=str(PROJECT_ROOT))
        # The cameras end with whoever started them, even if it is killed with SIGKILL.
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, env=env, start_new_session=True,
                                     preexec_fn=die_with_parent(signal.SIGTERM))
        if self.user:
            self.proc.stdin.write((self.password or "") + "\n")
            self.proc.stdin.flush()
        self.proc.stdin.close()
        deadline = time.monotonic() + READY_TIMEOUT_S
        line = self.proc.stdout.readline()
        if not line.startswith("READY") or time.monotonic() > deadline:
            self.stop()
            if line.startswith("ERROR "):    # the server's own start-up check
                raise RuntimeError(f"simulated cameras cannot start: {line[6:].strip()}")
            raise RuntimeError(f"simulated cameras did not start (got {line!r})")
        return self

    def fault_args(self) -> list[str]:
        """The server's options for this camera's faults."""
        argv = []
        for seconds, at in self.jumps:
            argv.append(f"--jump={seconds}@{at}")
        if self.clock_rate != 1.0:
            argv += ["--clock-rate", repr(self.clock_rate)]
        for seconds, at in self.freezes:
            argv.append(f"--freeze={seconds}@{at}")
        for (width, height), at in self.resizes:
            argv += ["--resize", f"{width}x{height}@{at}"]
        if self.stamp:
            argv.append("--stamp")
        for scene in self.scenes:
            argv += ["--scene", scene]
        if self.scene_truth:
            argv += ["--scene-truth", str(self.scene_truth)]
        return argv

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc and self.proc.stdout:
            self.proc.stdout.close()

    def kill(self) -> None:
        """Take the cameras off the network abruptly (an outage)."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def freeze(self) -> None:
        """SIGSTOP: the connection stays open but no data flows (a stall)."""
        os.kill(self.proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)

    def __enter__(self) -> "SimCameras":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
