"""Segment files named by a disk's own index.db, reached without following any link.

A disk is data, never instructions (docs/design.md decision 7): whoever brings a disk
(or clones one) writes its index.db and may put links on it. So a path from the
index is used only if it matches the segment layout
(CAM/STREAM/YYYY/MM/DD/HH-MM-SS.mp4, docs/design.md decision 2), and it is reached by
opening each directory below the recording root with O_NOFOLLOW: nothing outside
the root can be read, truncated or deleted through it.
"""

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from recorder import layout
from recorder.config import SLUG_RE
from recorder.paths import UnsafePath

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def is_segment_path(rel: str) -> bool:
    """rel is CAM/STREAM/YYYY/MM/DD/HH-MM-SS.mp4 with camera and stream names as config allows."""
    match = layout.SEGMENT_PATH_RE.fullmatch(rel) if isinstance(rel, str) else None
    return (match is not None and "\n" not in rel
            and all(SLUG_RE.fullmatch(match[key]) for key in ("camera", "stream")))


def check(rel: str) -> str:
    """rel itself if it is a segment path of our layout; UnsafePath otherwise."""
    if not is_segment_path(rel):
        raise UnsafePath(f"{str(rel)[:200]!r} is not a segment path "
                         "(CAMERA/STREAM/YYYY/MM/DD/HH-MM-SS.mp4)")
    return rel


def check_below(rel: str) -> str:
    """rel itself if it is a relative path of plain names ending in .mp4; UnsafePath otherwise.

    What the panel may read: files that other tools (tests, imports) named
    differently, but never anything outside the root.
    """
    if (not isinstance(rel, str) or not rel.endswith(".mp4") or "\0" in rel
            or any(part in ("", ".", "..") for part in rel.split("/"))):
        raise UnsafePath(f"{str(rel)[:200]!r} is not a file path below the recording root")
    return rel


@contextmanager
def parent_fd(picorder_dir: Path, rel: str, *, strict: bool = True
              ) -> Iterator[tuple[int, str]]:
    """(descriptor of the segment's directory, file name), every directory opened no-follow.

    strict: rel must match the segment layout (whatever root deletes or cuts);
    otherwise any plain relative path (check_below). A link anywhere below
    picorder_dir raises UnsafePath; a missing directory raises FileNotFoundError.
    """
    *dirs, name = (check(rel) if strict else check_below(rel)).split("/")
    fd = os.open(picorder_dir, DIR_FLAGS)
    try:
        for part in dirs:
            try:
                child = os.open(part, DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise UnsafePath(f"{rel}: {part} is not a directory of the disk") from exc
                raise
            os.close(fd)
            fd = child
        yield fd, name
    finally:
        os.close(fd)


def unlink(picorder_dir: Path, rel: str) -> None:
    """Delete one segment file (a link at its name is deleted, never followed)."""
    with parent_fd(picorder_dir, rel) as (fd, name):
        os.unlink(name, dir_fd=fd)


def open_fd(picorder_dir: Path, rel: str, flags: int = os.O_RDONLY, *,
            strict: bool = True) -> int:
    """Open one segment file without following a link; UnsafePath if it is not a plain file.

    Reading only (flags O_RDONLY) may pass strict=False (see parent_fd)."""
    with parent_fd(picorder_dir, rel, strict=strict or flags != os.O_RDONLY) as (dir_fd, name):
        try:
            fd = os.open(name, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                         dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise UnsafePath(f"{rel} is a link") from exc
            raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UnsafePath(f"{rel} is not a plain file")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_for_reading(picorder_dir: Path, rel: str):
    """A binary file object for reading one file below the root (see check_below)."""
    return os.fdopen(open_fd(picorder_dir, rel, strict=False), "rb")
