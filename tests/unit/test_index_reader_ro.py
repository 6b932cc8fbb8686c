"""The panel, as an unprivileged user, reads an index the recorder has closed."""

import os
import pwd
import shutil
import tempfile
import traceback
from pathlib import Path

import pytest

from recorder.index import Index, queries
from webpanel import index_reader

@pytest.fixture
def public_tmp():
    """A directory other users may traverse (pytest's base directory is root's only)."""
    path = Path(tempfile.mkdtemp(prefix="picorder-ro-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def read_count_as(uid: int, gid: int, pdir: Path) -> int:
    """Fork, drop to uid/gid, count the index's rows; -1 on any error."""
    pid = os.fork()
    if pid == 0:                                   # child: the modules are already loaded
        code = 255
        try:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            with index_reader.open_readonly(pdir) as index:
                code = index.select().count()
        except Exception:                          # noqa: BLE001 (report anything, then exit)
            traceback.print_exc()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run the reader as another user")
def test_unprivileged_reader_after_the_recorder_closed_the_index(public_tmp):
    pdir = public_tmp / "picorder"
    pdir.mkdir()
    with Index.open(pdir / "index.db") as index:
        queries.insert_segment(index, camera="c", stream="main", path="c/main/a.mp4", start_us=1,
                               end_us=2, duration_us=1, bytes=1)
    assert not (pdir / "index.db-wal").exists()     # a clean close removes the WAL files
    for p in (public_tmp, pdir):
        p.chmod(0o755)
    (pdir / "index.db").chmod(0o644)
    nobody = pwd.getpwnam("nobody")
    assert read_count_as(nobody.pw_uid, nobody.pw_gid, pdir) == 1
    assert not (pdir / "index.db-shm").exists()
