"""The unprivileged user every ffmpeg runs as, and the directories and files it may use.

docs/design.md decision 7: anything that parses network input runs unprivileged.
The recorder runs as root (it mounts disks); each ffmpeg it starts runs as a
dedicated system user (default `picorder-rec`, or $PICORDER_FFMPEG_USER), in
that user's own primary group, with no supplementary groups and umask 027.

The user is chosen by the environment only (the root-owned systemd unit sets
it), never by config.db: the network-facing panel writes config.db and must
not be able to make ffmpeg run as root or as the panel's own user.

What ffmpeg may touch:
- its day directories P/<camera>/<stream>/YYYY/MM/DD: owned by it, group =
  the group of P (the panel's group `picorder` on the appliance), mode 2750,
  so its files are <ffmpeg user>:picorder 0640 - readable by the panel,
  writable by no one else. The directories above them are root's, with o+x
  only (ffmpeg can pass through, not list); index.db and the marker stay root's.
- its ffconcat list (the camera credentials): owned by it, 0600, in the
  runtime directory, root:<ffmpeg group> 0710 (it can pass through, not list;
  other users cannot even pass through).

When the recorder is not root, ffmpeg runs as the recorder's user, unchanged.
When it is root and neither the variable nor the user `picorder-rec` exists,
ffmpeg stays root with a warning, rather than fall back to `nobody`: files
owned by `nobody` are writable by every other daemon that runs as nobody.
"""

import logging
import os
import pwd
import stat
from dataclasses import dataclass
from pathlib import Path

from recorder.paths import inside

logger = logging.getLogger(__name__)

ENV_FFMPEG_USER = "PICORDER_FFMPEG_USER"
DEFAULT_FFMPEG_USER = "picorder-rec"
FFMPEG_UMASK = 0o027
DAY_DIR_MODE = 0o2750            # setgid: ffmpeg's files get the panel's group
SOURCE_DIR_MODE = 0o710          # ffmpeg's group may pass through, nobody may list
PRIVATE_DIR_MODE = 0o700


class FfmpegUserError(RuntimeError):
    """The configured ffmpeg user cannot be used; the message is for the user."""


@dataclass(frozen=True)
class FfmpegUser:
    """Who ffmpeg runs as when it is not the recorder's own user."""

    name: str
    uid: int
    gid: int                     # its primary group (only group it has)

    def popen_kwargs(self) -> dict:
        """subprocess.Popen arguments that start a child as this user."""
        return {"user": self.uid, "group": self.gid, "extra_groups": [], "umask": FFMPEG_UMASK}


def resolve(environ: dict | None = None, euid: int | None = None) -> FfmpegUser | None:
    """The user ffmpeg runs as; None: the recorder's own user (not root, or no such user)."""
    environ = os.environ if environ is None else environ
    euid = os.geteuid() if euid is None else euid
    wanted = environ.get(ENV_FFMPEG_USER, "").strip()
    if euid != 0:
        if wanted and _uid_of(wanted) != euid:
            logger.warning("%s=%s ignored: only a recorder running as root can start ffmpeg "
                           "as another user", ENV_FFMPEG_USER, wanted)
        return None
    if not wanted:
        try:
            pw = pwd.getpwnam(DEFAULT_FFMPEG_USER)
        except KeyError:
            logger.warning("ffmpeg runs as root: create the system user %s (or set %s) so "
                           "that the camera streams are parsed unprivileged",
                           DEFAULT_FFMPEG_USER, ENV_FFMPEG_USER)
            return None
    else:
        pw = _lookup(wanted)
    if pw.pw_uid == 0:
        logger.warning("%s=%s: ffmpeg runs as root", ENV_FFMPEG_USER, wanted)
        return None
    user = FfmpegUser(pw.pw_name, pw.pw_uid, pw.pw_gid)
    logger.info("ffmpeg runs as %s (uid %d, gid %d)", user.name, user.uid, user.gid)
    return user


def _lookup(name: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwuid(int(name)) if name.isdigit() else pwd.getpwnam(name)
    except (KeyError, ValueError) as exc:
        raise FfmpegUserError(f"{ENV_FFMPEG_USER}={name}: there is no such user (create it: "
                              f"useradd --system --no-create-home --shell /usr/sbin/nologin "
                              f"{name})") from exc


def _uid_of(name: str) -> int | None:
    try:
        return _lookup(name).pw_uid
    except FfmpegUserError:
        return None


# ------------------------------------------------------------------ directories

def prepare_source_dir(runtime_dir: Path, user: FfmpegUser | None) -> None:
    """The directory of the ffconcat lists: private, or passable by ffmpeg's group only."""
    runtime_dir.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
    st = os.stat(runtime_dir)
    if user is None:
        if stat.S_IMODE(st.st_mode) != PRIVATE_DIR_MODE:
            os.chmod(runtime_dir, PRIVATE_DIR_MODE)
        return
    if (st.st_uid, st.st_gid) != (os.geteuid(), user.gid):
        os.chown(runtime_dir, os.geteuid(), user.gid)
    if stat.S_IMODE(st.st_mode) != SOURCE_DIR_MODE:
        os.chmod(runtime_dir, SOURCE_DIR_MODE)


def give_file(fd: int, user: FfmpegUser | None) -> None:
    """Hand an open file (an ffconcat list, mode 0600) to ffmpeg's user."""
    if user is not None:
        os.fchown(fd, user.uid, user.gid)


def make_day_dirs(picorder_dir: Path, camera: str, stream: str, days: list[str],
                  user: FfmpegUser | None) -> None:
    """Create P/camera/stream/YYYY/MM/DD for each day, writable by ffmpeg's user."""
    base = inside(picorder_dir, camera, stream)
    for day in days:
        inside(base, *day.split("/")).mkdir(parents=True, exist_ok=True)
    if user is None:
        return
    reader_gid = os.stat(picorder_dir).st_gid
    passable = {picorder_dir, picorder_dir / camera, base}
    for day in days:
        parts = Path(day).parts
        passable.update(base.joinpath(*parts[:n]) for n in range(1, len(parts)))
        _own_day_dir(base / day, user.uid, reader_gid)
    for path in passable:
        _let_pass(path)


def _let_pass(path: Path) -> None:
    mode = os.stat(path).st_mode
    if not mode & stat.S_IXOTH:
        os.chmod(path, stat.S_IMODE(mode) | stat.S_IXOTH)


def _own_day_dir(path: Path, uid: int, gid: int) -> None:
    st = os.stat(path)
    if (st.st_uid, st.st_gid) != (uid, gid):
        os.chown(path, uid, gid)
    if stat.S_IMODE(st.st_mode) != DAY_DIR_MODE:
        os.chmod(path, DAY_DIR_MODE)


def unreachable(path: Path, user: FfmpegUser | None) -> Path | None:
    """The first directory on the way to `path` that `user` may not pass through, or None."""
    if user is None:
        return None
    groups = {user.gid}
    for directory in reversed([path, *path.parents]):
        try:
            st = os.stat(directory)
        except OSError:
            return directory
        if not stat.S_ISDIR(st.st_mode):
            continue
        if st.st_uid == user.uid:
            bit = stat.S_IXUSR
        elif st.st_gid in groups:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            return directory
    return None
