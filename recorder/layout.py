"""Where segment files live: <disk>/picorder/<camera>/<stream>/YYYY/MM/DD/HH-MM-SS.mp4 (UTC).

The one place that knows the layout: ffmpeg's output pattern, recovery's and
the snapshot code's reading of a name, and the panel's search for the newest
files (the segment being written and those not indexed yet).
"""

import os
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

# strftime pattern of a segment below its stream directory (ffmpeg runs with TZ=UTC)
SEGMENT_NAME = "%Y/%m/%d/%H-%M-%S.mp4"
DAY_DIR = "%Y/%m/%d"
# camera/stream/YYYY/MM/DD/HH-MM-SS.mp4, names in UTC
SEGMENT_PATH_RE = re.compile(
    r"^(?P<camera>[^/]+)/(?P<stream>[^/]+)/(?P<y>\d{4})/(?P<mo>\d{2})/(?P<d>\d{2})/"
    r"(?P<h>\d{2})-(?P<mi>\d{2})-(?P<s>\d{2})\.mp4$")
FILE_NAME_RE = re.compile(r"^\d{2}-\d{2}-\d{2}\.mp4$")


def stream_dir(picorder_dir: Path, camera: str, stream: str) -> Path:
    return Path(picorder_dir) / camera / stream


def segment_rel(camera: str, stream: str, wall_us: int) -> str:
    """The relative path of the segment ffmpeg opens at `wall_us`."""
    when = datetime.fromtimestamp(wall_us // 1_000_000, timezone.utc)
    return f"{camera}/{stream}/{when.strftime(SEGMENT_NAME)}"


def name_start_us(rel: str) -> tuple[str, str, int] | None:
    """(camera, stream, start_us) from a segment's relative path; None if not our layout."""
    match = SEGMENT_PATH_RE.match(rel)
    if not match:
        return None
    g = match.groupdict()
    try:
        when = datetime(int(g["y"]), int(g["mo"]), int(g["d"]), int(g["h"]), int(g["mi"]),
                        int(g["s"]), tzinfo=timezone.utc)
    except ValueError:
        return None
    return g["camera"], g["stream"], int(when.timestamp()) * 1_000_000


def files_after(picorder_dir: Path, camera: str, stream: str, after_us: int, now_us: int,
                limit: int) -> list[str]:
    """Relative paths of the stream's newest files named after `after_us`, oldest first.

    Only the day directories from after_us's day to tomorrow (of now_us) are
    listed, and at most `limit` files are returned: the newest ones.
    """
    base = stream_dir(picorder_dir, camera, stream)
    first = datetime.fromtimestamp(max(after_us, now_us - 2 * 86_400_000_000) / 1e6,
                                   timezone.utc).date()
    last = datetime.fromtimestamp(now_us / 1e6, timezone.utc).date() + timedelta(days=1)
    found: list[tuple[int, str]] = []
    day = first
    while day <= last:
        sub = day.strftime(DAY_DIR)
        try:
            names = os.listdir(base / sub)
        except OSError:             # no such day (yet), or not readable: nothing of it to show
            names = []
        for name in names:
            if not FILE_NAME_RE.match(name):
                continue
            rel = f"{camera}/{stream}/{sub}/{name}"
            parsed = name_start_us(rel)
            if parsed is not None and parsed[2] > after_us:
                found.append((parsed[2], rel))
        day += timedelta(days=1)
    found.sort()
    return [rel for _t, rel in found[-limit:]] if limit > 0 else []


def current_file(picorder_dir: Path, camera: str, stream: str, now_us: int) -> str | None:
    """Relative path of the file ffmpeg is writing for camera/stream now, or None.

    ffmpeg names a segment by the box's clock when it opens it (SEGMENT_NAME), so
    the file being written is the newest name that is not after the clock; a
    name after it was written before the clock stepped back. One directory is
    listed: today's (UTC), or yesterday's just after midnight.
    """
    base = stream_dir(picorder_dir, camera, stream)
    today = datetime.fromtimestamp(now_us // 1_000_000, timezone.utc)
    for day in (today, today - timedelta(days=1)):
        sub = day.strftime(DAY_DIR)
        try:
            names = os.listdir(base / sub)
        except OSError:
            continue
        best = None
        for name in names:
            if not FILE_NAME_RE.match(name):
                continue
            parsed = name_start_us(f"{camera}/{stream}/{sub}/{name}")
            if parsed is not None and parsed[2] <= now_us and (best is None or name > best):
                best = name
        if best is not None:
            return f"{camera}/{stream}/{sub}/{best}"
    return None
