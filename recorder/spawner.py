"""Real ffmpeg processes: spawning them, reading their pipes, and stopping a dead recorder's.

StreamProcess (recorder.process) is given a `spawn`: FfmpegSpawner in
production, a fake in unit tests. The spawner starts ffmpeg with three pipes
(progress, segment list, stderr) that one PipeHub thread reads for every stream.
"""

import logging
import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Protocol

from recorder import ffmpeg, limits
from recorder.children import die_with_parent
from recorder.events import PROGRESS, SEGMENTS, STDERR
from recorder.ffmpeg_user import FfmpegUser
from recorder.progress import ProgressFramer

logger = logging.getLogger(__name__)


class Child(Protocol):
    pid: int

    def poll(self) -> int | None: ...
    def request_stop(self) -> None: ...
    def kill(self) -> None: ...


# (pipe kind, what one read brought; None: EOF). For PROGRESS that is a (report, arrival
# monotonic us) pair, for the other pipes the read's complete lines.
LineSink = Callable[[str, object], None]
Spawn = Callable[[Callable[[int, int], list[str]], LineSink], Child]


class PipeHub:
    """One thread reading every ffmpeg pipe and passing what each read brought to its sink.

    A line pipe's sink gets the read's complete lines; a progress pipe's sink gets
    the read's newest report with the monotonic time it was read. After each round
    the thread waits `batch_s`, so that one wake-up serves many streams.
    """

    def __init__(self, mono_us: Callable[[], int] | None = None,
                 batch_s: float = limits.PIPE_BATCH_S) -> None:
        self._mono_us = mono_us or (lambda: time.monotonic_ns() // 1000)
        self._batch_s = batch_s
        self._selector = selectors.DefaultSelector()
        self._lock = threading.Lock()
        self._pending: list[tuple[int, Callable, ProgressFramer | None]] = []
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._buffers: dict[int, bytes] = {}
        self._thread = threading.Thread(target=self._loop, name="ffmpeg-pipes", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def add(self, fd: int, sink: Callable[[object], None], progress: bool = False) -> None:
        """Read `fd` (the hub closes it at EOF) and pass what it brings to `sink` (None at EOF).

        `progress`: the pipe carries `-progress` reports; the sink gets
        (ProgressBlock, monotonic us) for the newest complete report of each read.
        """
        with self._lock:
            self._pending.append((fd, sink, ProgressFramer() if progress else None))
        try:
            os.write(self._wake_w, b"x")
        except BlockingIOError:
            pass

    def _loop(self) -> None:
        while True:
            for key, _ in self._selector.select():
                if key.data is None:
                    os.read(self._wake_r, 4096)
                    self._register_pending()
                else:
                    self._read(key.fd, *key.data)
            if self._batch_s:
                time.sleep(self._batch_s)

    def _register_pending(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        for fd, sink, framer in pending:
            self._buffers[fd] = b""
            self._selector.register(fd, selectors.EVENT_READ, (sink, framer))

    def _read(self, fd: int, sink: Callable[[object], None],
              framer: ProgressFramer | None) -> None:
        try:
            data = os.read(fd, 65536)
        except OSError:
            logger.exception("reading an ffmpeg pipe failed")
            data = b""
        if not data:
            rest = self._buffers.pop(fd, b"")
            self._selector.unregister(fd)
            os.close(fd)
            if rest.strip():
                sink([rest.decode("utf-8", "replace")])
            sink(None)
            return
        if framer is not None:
            block = framer.feed(data)
            if block is not None:
                sink((block, self._mono_us()))
            return
        *raw, self._buffers[fd] = (self._buffers[fd] + data).replace(b"\r", b"\n").split(b"\n")
        lines = [line.decode("utf-8", "replace") for line in raw if line]
        if lines:
            sink(lines)


class PopenChild:
    """A real ffmpeg: SIGINT asks it to finish its segment and exit."""

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        self.pid = proc.pid

    def poll(self) -> int | None:
        return self.proc.poll()

    def request_stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()


def stop_orphans(runtime_dir: Path, grace_s: float = limits.STOP_GRACE_S) -> list[int]:
    """Stop ffmpeg processes a killed recorder left behind (found by their list file).

    ffmpeg ignores SIGPIPE, so an orphan keeps recording after its recorder died;
    a new recorder must not run a second ffmpeg beside it, nor let recovery cut
    the file it is still writing. SIGINT (it finishes its segment), then SIGKILL.
    """
    marker = (str(runtime_dir) + os.sep).encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            args = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(a.startswith(marker) and a.endswith(ffmpeg.SOURCE_SUFFIX.encode()) for a in args):
            found.append(int(entry))
    if not found:
        return []
    logger.warning("stopping %d ffmpeg processes left by a previous recorder: %s",
                   len(found), found)
    _signal_all(found, signal.SIGINT)
    left = wait_gone(found, grace_s)
    if left:
        _signal_all(left, signal.SIGKILL)
        wait_gone(left, limits.KILL_WAIT_S)
    return found


def _signal_all(pids: list[int], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


def wait_gone(pids: list[int], timeout: float) -> list[int]:
    """Wait up to `timeout` for every pid to end; return those still running."""
    deadline = time.monotonic() + timeout
    while True:
        left = [pid for pid in pids if pid_alive(pid)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def pid_alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


class FfmpegSpawner:
    """The production `spawn`: ffmpeg with a progress pipe, a segment-list pipe and stderr.

    With a `user`, ffmpeg runs as that user, in its own group only, umask 027
    (recorder.ffmpeg_user). Either way it inherits no descriptor but /dev/null
    and its three pipes, and it ends (SIGTERM: it closes its segment) when the
    recorder dies, even by SIGKILL (recorder.children).
    """

    def __init__(self, hub: PipeHub, user: FfmpegUser | None = None):
        self.hub = hub
        self.user = user

    def popen_kwargs(self, pass_fds: tuple[int, ...], stderr: int) -> dict:
        """Everything but argv that ffmpeg is started with."""
        kwargs = {"stdin": subprocess.DEVNULL, "stdout": subprocess.DEVNULL, "stderr": stderr,
                  "pass_fds": pass_fds, "close_fds": True, "env": ffmpeg.ffmpeg_env(),
                  "start_new_session": True, "preexec_fn": die_with_parent(signal.SIGTERM)}
        if self.user is not None:
            kwargs.update(self.user.popen_kwargs())
        return kwargs

    def __call__(self, argv_fn: Callable[[int, int], list[str]], sink: LineSink) -> PopenChild:
        prog_r, prog_w = os.pipe()
        seg_r, seg_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            argv = argv_fn(progress_fd=prog_w, segments_fd=seg_w)
            proc = subprocess.Popen(argv, **self.popen_kwargs((prog_w, seg_w), err_w))
        except BaseException:
            for fd in (prog_r, seg_r, err_r):
                os.close(fd)
            raise
        finally:
            for fd in (prog_w, seg_w, err_w):
                os.close(fd)
        self.hub.add(prog_r, partial(sink, PROGRESS), progress=True)
        self.hub.add(seg_r, partial(sink, SEGMENTS))
        self.hub.add(err_r, partial(sink, STDERR))
        return PopenChild(proc)
