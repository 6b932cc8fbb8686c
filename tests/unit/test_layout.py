"""recorder.layout: the file being written, found from the directory alone (live view, snapshots)."""

from datetime import datetime, timezone

from recorder import layout


def _us(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()) * 1_000_000


def _touch(pdir, rel):
    path = pdir / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")


def test_the_current_file_is_the_newest_name_not_after_the_clock(tmp_path):
    for rel in ("c/main/2026/03/04/10-00-00.mp4", "c/main/2026/03/04/10-01-00.mp4",
                "c/main/2026/03/04/10-59-00.mp4",       # written before the clock stepped back
                "c/main/2026/03/04/notes.txt", "c/sub/2026/03/04/10-01-30.mp4"):
        _touch(tmp_path, rel)
    now = _us("2026-03-04T10:01:20")
    assert layout.current_file(tmp_path, "c", "main", now) == "c/main/2026/03/04/10-01-00.mp4"
    assert layout.current_file(tmp_path, "c", "main", _us("2026-03-04T10:59:00")) == \
        "c/main/2026/03/04/10-59-00.mp4"
    assert layout.current_file(tmp_path, "c", "sub", now) is None      # its file is after now
    assert layout.current_file(tmp_path, "nobody", "main", now) is None


def test_just_after_midnight_the_file_of_yesterday_is_current(tmp_path):
    _touch(tmp_path, "c/main/2026/03/04/23-59-30.mp4")
    now = _us("2026-03-05T00:00:10")
    assert layout.current_file(tmp_path, "c", "main", now) == "c/main/2026/03/04/23-59-30.mp4"
    _touch(tmp_path, "c/main/2026/03/05/00-00-05.mp4")
    assert layout.current_file(tmp_path, "c", "main", now) == "c/main/2026/03/05/00-00-05.mp4"
