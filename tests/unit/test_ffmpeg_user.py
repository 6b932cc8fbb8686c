"""The unprivileged ffmpeg user: choice, spawn arguments, a real spawn, directories and lists."""

import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest

from recorder import ffmpeg, ffmpeg_user
from recorder.ffmpeg import StreamSpec
from recorder.ffmpeg_user import FfmpegUser, FfmpegUserError
from recorder.events import SEGMENTS
from recorder.spawner import FfmpegSpawner, PipeHub

NOBODY = pwd.getpwnam("nobody")
USER = FfmpegUser("nobody", NOBODY.pw_uid, NOBODY.pw_gid)
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="changing users needs root (CI runs as root)")

# Run by the spawner in ffmpeg's place: who am I, my umask, my open descriptors, and the
# signal I get when the recorder dies (prctl PR_GET_PDEATHSIG).
CHILD_REPORT = """
import ctypes, os, sys
with open("/proc/self/status") as fh:
    status = [line for line in fh if line.split(":")[0] in ("Uid", "Gid", "Groups", "Umask")]
sig = ctypes.c_int(-1)
ctypes.CDLL(None).prctl(2, ctypes.byref(sig), 0, 0, 0)
status.append(f"PdeathSig: {sig.value}\\n")
fds = []
for fd in range(1024):
    try:
        os.fstat(fd)
    except OSError:
        continue
    fds.append(str(fd))
out = os.fdopen(int(sys.argv[1]), "w")
out.write("".join(status) + "fds: " + " ".join(fds) + "\\n")
"""


@pytest.fixture
def open_tmp():
    """A temporary directory other users may pass through (pytest's tmp_path is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="picorder-ffuser-"))
    os.chmod(path, 0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_an_explicit_user_is_used_when_the_recorder_is_root():
    user = ffmpeg_user.resolve({ffmpeg_user.ENV_FFMPEG_USER: "nobody"}, euid=0)
    assert user == USER


def test_a_missing_explicit_user_is_a_clear_error():
    with pytest.raises(FfmpegUserError, match="no-such-user-xyz: there is no such user"):
        ffmpeg_user.resolve({ffmpeg_user.ENV_FFMPEG_USER: "no-such-user-xyz"}, euid=0)


def test_root_or_an_unprivileged_recorder_keeps_its_own_user():
    assert ffmpeg_user.resolve({ffmpeg_user.ENV_FFMPEG_USER: "root"}, euid=0) is None
    assert ffmpeg_user.resolve({ffmpeg_user.ENV_FFMPEG_USER: "nobody"}, euid=1000) is None
    assert ffmpeg_user.resolve({}, euid=1000) is None


def test_the_default_is_the_dedicated_user_if_it_exists():
    try:
        pw = pwd.getpwnam(ffmpeg_user.DEFAULT_FFMPEG_USER)
    except KeyError:
        assert ffmpeg_user.resolve({}, euid=0) is None
    else:
        assert ffmpeg_user.resolve({}, euid=0) == FfmpegUser(pw.pw_name, pw.pw_uid, pw.pw_gid)


def test_spawn_arguments_drop_to_the_user_with_no_groups_and_umask_027():
    kwargs = FfmpegSpawner(hub=None, user=USER).popen_kwargs((5, 6), 7)
    assert kwargs["user"] == NOBODY.pw_uid and kwargs["group"] == NOBODY.pw_gid
    assert kwargs["extra_groups"] == [] and kwargs["umask"] == 0o027
    assert kwargs["pass_fds"] == (5, 6) and kwargs["close_fds"] is True
    assert kwargs["stdin"] == subprocess.DEVNULL and kwargs["stderr"] == 7
    assert kwargs["start_new_session"] is True and kwargs["env"]["TZ"] == "UTC"
    plain = FfmpegSpawner(hub=None).popen_kwargs((5, 6), 7)
    assert not {"user", "group", "extra_groups", "umask"} & plain.keys()


@as_root
def test_a_real_spawn_runs_as_the_user_with_only_its_pipes():
    """The production spawner, with /bin/sh standing in for ffmpeg, reports who it is."""
    lines, done = [], threading.Event()
    seen = {}

    def argv_fn(progress_fd, segments_fd):
        seen["fds"] = {0, 1, 2, progress_fd, segments_fd}
        return ["/usr/bin/python3", "-c", CHILD_REPORT, str(segments_fd)]

    def sink(kind, got):
        if kind == SEGMENTS:
            if got is None:
                done.set()
            else:
                lines.extend(got)

    hub = PipeHub()
    hub.start()
    child = FfmpegSpawner(hub, USER)(argv_fn, sink)
    assert done.wait(10), "the child did not finish"
    assert child.proc.wait(5) == 0
    fields = {line.split(":")[0]: line.split(":", 1)[1].split() for line in lines}
    assert fields["Uid"] == [str(NOBODY.pw_uid)] * 4
    assert fields["Gid"] == [str(NOBODY.pw_gid)] * 4
    assert fields["Groups"] == []
    assert fields["Umask"] == ["0027"]
    assert {int(fd) for fd in fields["fds"]} == seen["fds"]
    # Set after the switch to the user (a credential change clears it), kept through exec.
    assert fields["PdeathSig"] == [str(int(signal.SIGTERM))]


@as_root
def test_day_directories_belong_to_the_user_and_the_recordings_group(open_tmp):
    picorder_dir = open_tmp / "picorder"
    picorder_dir.mkdir(mode=0o750)
    os.chown(picorder_dir, 0, 4242)           # the panel's group, as on the appliance
    ffmpeg_user.make_day_dirs(picorder_dir, "cam1", "main", ["2026/11/21", "2026/11/22"], USER)
    for day in ("21", "22"):
        st = os.stat(picorder_dir / "cam1/main/2026/11" / day)
        assert (st.st_uid, st.st_gid) == (NOBODY.pw_uid, 4242)
        assert stat.S_IMODE(st.st_mode) == 0o2750
    for path in (picorder_dir, picorder_dir / "cam1", picorder_dir / "cam1/main",
                 picorder_dir / "cam1/main/2026", picorder_dir / "cam1/main/2026/11"):
        st = os.stat(path)
        assert st.st_uid == 0 and st.st_mode & stat.S_IXOTH and not st.st_mode & stat.S_IWOTH
        assert not st.st_mode & stat.S_IROTH or path != picorder_dir
    assert ffmpeg_user.unreachable(picorder_dir / "cam1/main/2026/11/21", USER) is None


@as_root
def test_credentials_list_is_the_users_alone_in_a_directory_it_cannot_list(tmp_path):
    runtime = tmp_path / "run"
    spec = StreamSpec("cam1", "main", "rtsp://h/x", username="u", password="p4ss")
    path = ffmpeg.write_source_file(runtime, spec, 7, owner=USER)
    st, dst = os.stat(path), os.stat(runtime)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (NOBODY.pw_uid, NOBODY.pw_gid, 0o600)
    assert (dst.st_uid, dst.st_gid, stat.S_IMODE(dst.st_mode)) == (0, NOBODY.pw_gid, 0o710)
    ffmpeg.write_source_file(runtime, spec, 8)      # no user: private to the recorder again
    assert stat.S_IMODE(os.stat(runtime).st_mode) == 0o700


def test_a_directory_the_user_cannot_pass_is_named(open_tmp):
    closed = open_tmp / "closed"
    (closed / "inner").mkdir(parents=True)
    os.chmod(closed, 0o700)
    other = FfmpegUser("someone", 54321, 54321)
    assert ffmpeg_user.unreachable(closed / "inner" / "x.ffconcat", other) == closed
    assert ffmpeg_user.unreachable(closed / "inner", None) is None


@as_root
def test_a_stream_whose_directory_the_user_cannot_reach_backs_off_with_a_clear_error(open_tmp):
    from recorder.process import State, StreamProcess
    from recorder.timekeeping import Clock, Timekeeper
    closed = open_tmp / "closed"
    closed.mkdir(mode=0o700)
    spawned = []
    proc = StreamProcess(StreamSpec("cam1", "main", "rtsp://h/x"),
                         picorder_dir=closed / "picorder", runtime_dir=open_tmp / "run",
                         spawn=lambda argv_fn, sink: spawned.append(argv_fn),
                         timekeeper=Timekeeper(open_tmp / "last_time", clock=Clock(),
                                               ntp_check=lambda: True),
                         emit=lambda event: None, ffmpeg_user=USER)
    proc.start()
    assert spawned == []
    assert (proc.state, proc.problem) == (State.BACKOFF, ffmpeg.DISK_ERROR)
    assert f"ffmpeg's user nobody may not pass through {closed}" in proc.last_error
    assert list((open_tmp / "run").iterdir()) == []      # its credentials list is gone again
