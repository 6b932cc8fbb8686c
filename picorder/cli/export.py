"""`picorder export CAMERA START END OUT.mp4`: write a time range as a progressive MP4."""

import logging
import os
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path

from peewee import DatabaseError

from picorder.cli.common import (UserError, add_command, add_root_option, paths_from_args,
                                 reason, recordings_dir)
from recorder.export import NoRecording, build_range
from recorder.index import Index, NoIndex

logger = logging.getLogger(__name__)

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def register(sub) -> None:
    parser = add_command(
        sub, "export", run_export, "write a time range of a camera as an MP4 file",
        "camera", "start", "end",
        description="Write the recording of CAMERA between START and END as one MP4 file "
                    "(no re-encoding; the same bytes the panel serves as recording.mp4). "
                    "Times are ISO 8601 (a time without a zone is UTC) or epoch seconds. "
                    "Gaps in the recording are left out; the runs of continuous recording "
                    "are printed.")
    parser.add_argument("out", metavar="OUT.mp4")
    parser.add_argument("--stream", choices=("main", "sub"), default="main")
    add_root_option(parser)


def parse_time_us(text: str, name: str) -> int:
    """ISO 8601 (UTC unless it says otherwise) or epoch seconds -> epoch µs."""
    text = text.strip()
    try:
        seconds = Decimal(text)           # exact: no float rounding of the microseconds
    except InvalidOperation:
        seconds = None
    if seconds is not None:
        if not seconds.is_finite():
            raise UserError(f"{name}: {text!r} is not a time")
        return int((seconds * 1_000_000).to_integral_value())
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise UserError(f"{name}: {text!r} is neither an ISO 8601 time nor epoch seconds") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return (when - EPOCH) // timedelta(microseconds=1)


def iso(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, tz=timezone.utc).isoformat(timespec="milliseconds")


def run_export(args) -> int:
    start_us = parse_time_us(args.start, "START")
    end_us = parse_time_us(args.end, "END")
    picorder_dir = recordings_dir(args, paths_from_args(args))
    try:
        with Index.open(picorder_dir / "index.db", readonly=True) as index:
            movie = build_range(index, args.camera, args.stream, start_us, end_us)
            write_atomically(Path(args.out), movie)
    except (ValueError, NoRecording) as exc:
        raise UserError(str(exc)) from exc
    except (OSError, DatabaseError, NoIndex) as exc:
        raise UserError(f"export failed: {reason(exc)}") from exc
    print(f"wrote {args.out}: {movie.size} bytes, {movie.frames} frames, "
          f"{iso(movie.start_us)} to {iso(movie.end_us)}")
    if len(movie.runs) > 1:
        print("runs of continuous recording (wall start - wall end @ media time):")
        for wall_start, wall_end, media_us in movie.runs:
            print(f"  {iso(wall_start)} - {iso(wall_end)} @ {media_us / 1e6:.3f} s")
    return 0


def write_atomically(out: Path, movie) -> None:
    """Write the movie next to OUT, fsync, then rename over OUT."""
    part = out.with_name(out.name + ".part")
    try:
        with open(part, "wb") as f:
            for piece in movie.iter_bytes():
                f.write(piece)
            f.flush()
            os.fsync(f.fileno())
        os.replace(part, out)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
