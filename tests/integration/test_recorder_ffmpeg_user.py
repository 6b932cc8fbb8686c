"""The recorder runs as root (as on the appliance: group = the panel's group, umask 027);
every ffmpeg it starts runs as an unprivileged user, and the panel's group can still
read what it records."""

import grp
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from recorder.ffmpeg_user import ENV_FFMPEG_USER
from recorder.service import ENV_RUNTIME_DIR
from helpers.recorder import RecorderProcess, picorder, rows, set_setting, wait_for

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root (CI runs as root)")]

PASSWORD = "Pr1v pw'x"
SEGMENT_S = 4
NOBODY = pwd.getpwnam("nobody").pw_uid

# Run as a third user in the panel's group: read a segment and the index (like the panel).
PANEL_READ = """
import sqlite3, sys
with open(sys.argv[1], "rb") as fh:
    assert fh.read(8)[4:8] == b"ftyp"
db = sqlite3.connect("file:" + sys.argv[2] + "?mode=ro", uri=True)
print(db.execute("SELECT COUNT(*) FROM segment").fetchone()[0])
"""
# Run as any user: exit 13 if opening the file is refused.
TRY_OPEN = """
import sys
try:
    open(sys.argv[1], sys.argv[2]).close()
except PermissionError:
    sys.exit(13)
"""


@pytest.fixture
def accounts():
    """A system user for ffmpeg (with its own group) and a group standing in for `picorder`."""
    tag = f"t{os.getpid() % 100000}"
    user, group = f"picorder-rec-{tag}", f"picorder-grp-{tag}"
    subprocess.run(["groupadd", "--system", group], check=True)
    subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                    "--shell", "/usr/sbin/nologin", user], check=True)
    try:
        yield pwd.getpwnam(user), grp.getgrnam(group).gr_gid
    finally:
        subprocess.run(["userdel", user], check=False)
        subprocess.run(["groupdel", group], check=False)


@pytest.fixture
def base():
    """A directory other users may pass through (pytest's tmp_path is 0700 root)."""
    path = Path(tempfile.mkdtemp(prefix="picorder-ffuser-"))
    os.chmod(path, 0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def as_user(uid: int, gid: int, code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["/usr/bin/python3", "-c", code, *args], user=uid, group=gid,
                          extra_groups=[], capture_output=True, text=True, timeout=30)


def proc_ids(pid: int) -> dict[str, list[str]]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {k: v.split() for k, _, v in (line.partition(":") for line in lines)
            if k in ("Uid", "Gid", "Groups")}


def test_every_ffmpeg_runs_as_the_unprivileged_user(accounts, base, sim_cameras, monkeypatch):
    user, panel_gid = accounts
    data, recordings, runtime = base / "data", base / "rec", base / "run"
    data.mkdir(mode=0o700)
    recordings.mkdir(mode=0o755)
    sim = sim_cameras(cameras=1, fps=15, gop=15, user="viewer", password=PASSWORD)
    picorder(data, "camera", "add", "cam1", sim.url(1), "--sub", sim.url(1, sub=True),
             "--user", "viewer", "--password-file", "-", input=PASSWORD + "\n")
    set_setting(data, "segment_seconds", str(SEGMENT_S))
    set_setting(data, "recordings_dir", str(recordings))
    monkeypatch.setenv(ENV_FFMPEG_USER, user.pw_name)
    monkeypatch.setenv(ENV_RUNTIME_DIR, str(runtime))
    rec = RecorderProcess(data, popen_kwargs={"group": panel_gid, "umask": 0o027}).start()
    try:
        p = recordings / "picorder"
        for stream in ("main", "sub"):
            wait_for(lambda: len(rows(p, "cam1", stream)) >= 2, 30, f"two {stream} segments")
        ffmpegs = [pid for pid in rec.children()
                   if Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].endswith(b"ffmpeg")]
        assert len(ffmpegs) == 2, rec.log()
        for pid in ffmpegs:
            ids = proc_ids(pid)
            assert ids["Uid"] == [str(user.pw_uid)] * 4
            assert ids["Gid"] == [str(user.pw_gid)] * 4
            assert ids["Groups"] == []
            assert PASSWORD not in Path(f"/proc/{pid}/cmdline").read_text(errors="replace")

        # The credential lists: ffmpeg's, 0600, in a directory only its group may pass.
        st = os.stat(runtime)
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, user.pw_gid, 0o710)
        lists = list(runtime.iterdir())
        assert len(lists) == 2
        for path in lists:
            st = os.stat(path)
            assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (user.pw_uid, 0o600)
            assert as_user(NOBODY, panel_gid, TRY_OPEN, str(path), "r").returncode == 13

        # Segments: ffmpeg's files in the panel's group; index.db root's.
        segment = p / rows(p, "cam1")[0].path
        st = os.stat(segment)
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (user.pw_uid, panel_gid, 0o640)
        st = os.stat(segment.parent)
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (user.pw_uid, panel_gid, 0o2750)
        for name in ("index.db", "index.db-wal", "index.db-shm"):
            assert os.stat(p / name).st_uid == 0, name

        # The panel's group reads segments and the index; ffmpeg's user cannot touch the
        # index, and the panel cannot write recordings.
        read = as_user(NOBODY, panel_gid, PANEL_READ, str(segment), str(p / "index.db"))
        assert read.returncode == 0 and int(read.stdout) >= 4, read.stderr
        assert as_user(user.pw_uid, user.pw_gid, TRY_OPEN, str(p / "index.db"), "r").returncode == 13
        assert as_user(NOBODY, panel_gid, TRY_OPEN, str(segment.parent / "x.mp4"),
                       "w").returncode == 13
        assert rec.terminate() < 10
    finally:
        rec.kill()
    assert "ffmpeg runs as " + user.pw_name in rec.log()
