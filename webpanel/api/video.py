"""Video routes: any time range as a progressive MP4, the live fMP4 stream, JPEG snapshots."""

import logging
import threading
import time
from collections import OrderedDict
from pathlib import Path

from flask import Blueprint, Response, current_app, request, stream_with_context
from werkzeug.http import quote_etag, unquote_etag

from recorder import export, layout, limits
from recorder import live as live_mod
from recorder.index import Index, NoIndex
from recorder.status import stream_health
from recorder.wallclock import now_us
from webpanel import index_reader, recorder_client, snapshots
from webpanel.auth import login_required
from webpanel.inputs import (FieldErrors, camera_range, get_camera, iso, json_error, parse_time,
                             stream_arg)

logger = logging.getLogger(__name__)

bp = Blueprint("video", __name__, url_prefix="/api")

MAX_RUNS_HEADER = 50


# ----------------------------------------------------------------- range movies

class MovieCache:
    """Recently built range movies, so Range requests (seeking) do not rebuild them.

    Bounded by the frames of their sample tables (the memory they hold); the
    newest movie is always kept, so a 24-hour movie being played stays cached.
    """

    def __init__(self, items: int, max_frames: int, ttl_s: float):
        self.items, self.max_frames, self.ttl_s = items, max_frames, ttl_s
        self._lock = threading.Lock()
        self._data: OrderedDict = OrderedDict()

    def get(self, key):
        with self._lock:
            hit = self._data.get(key)
            if hit is None or time.monotonic() - hit[0] > self.ttl_s:
                self._data.pop(key, None)
                return None
            self._data.move_to_end(key)
            return hit[1]

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def drop_oversized(self) -> None:
        """Before another build: forget a movie kept only because it was the newest."""
        with self._lock:
            for key in [k for k, (_t, m) in self._data.items() if m.frames > self.max_frames]:
                del self._data[key]

    def put(self, key, movie) -> None:
        with self._lock:
            self._data[key] = (time.monotonic(), movie)
            self._data.move_to_end(key)
            while len(self._data) > 1 and (
                    len(self._data) > self.items
                    or sum(m.frames for _t, m in self._data.values()) > self.max_frames):
                self._data.popitem(last=False)


movies = MovieCache(limits.RANGE_CACHE_ITEMS, limits.RANGE_CACHE_MAX_FRAMES,
                    limits.RANGE_CACHE_TTL_S)


def require_picorder_dir() -> Path:
    pdir = recorder_client.picorder_dir()
    if pdir is None:
        raise json_error(503, "no recording disk: adopt a disk or directory first")
    return pdir


def build_movie(pdir: Path, camera: str, stream: str, start_us: int, end_us: int):
    """The RangeMovie for the request (cached), or a clear 4xx."""
    key = (str(pdir), camera, stream, start_us, end_us)
    movie = movies.get(key)
    if movie is not None:
        return movie
    movies.drop_oversized()     # so two day-long movies are never held at once
    try:
        with index_reader.open_readonly(pdir) as index:
            tail = tail_for(index, camera, stream, end_us)
            movie = export.build_range(index, camera, stream, start_us, end_us, tail)
    except NoIndex as exc:
        raise json_error(404, f"no recording of {camera} yet ({exc})") from exc
    except export.NoRecording as exc:
        raise json_error(404, str(exc)) from exc
    except ValueError as exc:
        raise FieldErrors({"end": str(exc)}) from exc
    except OSError as exc:
        logger.exception("cannot build %s/%s %d-%d", camera, stream, start_us, end_us)
        raise json_error(503, f"cannot read the recordings: {exc.strerror or exc}") from exc
    movies.put(key, movie)
    return movie


def tail_for(index: Index, camera: str, stream: str, end_us: int) -> list:
    """What is not indexed yet, if [.., end_us) reaches past the newest indexed segment."""
    return index_reader.unindexed_tail(index, camera, stream, now_us(), clock_trusted,
                                       reaching_us=end_us)


def clock_trusted() -> bool:
    """The recorder's clock trust now (False when it does not answer)."""
    state = recorder_client.get_state()
    return bool(state.running and state.status and state.status.clock.trusted)


def runs_header(movie) -> tuple[str, bool]:
    """How media time maps to wall time: "wall_start_us-wall_end_us@media_start_us, ..."."""
    runs = list(movie.runs)
    text = ", ".join(f"{a}-{b}@{m}" for a, b, m in runs[:MAX_RUNS_HEADER])
    return text, len(runs) > MAX_RUNS_HEADER


def recorded_us(movie) -> int:
    """How much wall time the movie holds: its runs, without the gaps squashed between them."""
    return sum(b - a for a, b, _m in movie.runs)


def byte_range(size: int, etag: str) -> tuple[int, int] | None:
    """The single satisfiable range asked for, None for the whole file; 416 if unsatisfiable."""
    rng = request.range
    if rng is None or len(rng.ranges) != 1 or rng.units != "bytes":
        return None
    if_range = request.if_range
    if if_range.etag is not None and if_range.etag != etag:
        return None
    if if_range.date is not None:
        return None
    span = rng.range_for_length(size)
    if span is None:
        raise json_error(416, f"the range is outside the {size} bytes of this movie",
                         {"Content-Range": f"bytes */{size}"})
    return span[0], span[1] - 1


def download_name(camera: str, start_us: int) -> str:
    stamp = iso(start_us).replace("-", "").replace(":", "").split(".")[0]
    return f"{camera}-{stamp}Z.mp4"


@bp.get("/cameras/<name>/recording.mp4")
@login_required()
def recording(name):
    start_us, end_us, stream = camera_range(name, limits.EXPORT_MAX_S)
    download = request.args.get("download", "0")
    if download not in ("0", "1"):
        raise FieldErrors({"download": "must be 0 or 1"})
    movie = build_movie(require_picorder_dir(), name, stream, start_us, end_us)
    etag, _weak = unquote_etag(movie.etag)
    headers = {"ETag": quote_etag(etag), "Accept-Ranges": "bytes",
               "Cache-Control": "private, max-age=60",
               "X-Picorder-Start-Us": str(movie.start_us), "X-Picorder-End-Us": str(movie.end_us),
               "X-Picorder-Recorded-Us": str(recorded_us(movie))}
    runs, truncated = runs_header(movie)
    headers["X-Picorder-Runs"] = runs
    if truncated:
        headers["X-Picorder-Runs-Truncated"] = "1"
    if download == "1":
        headers["Content-Disposition"] = (
            f'attachment; filename="{download_name(name, movie.start_us)}"')
    if request.if_none_match.contains(etag):
        return Response(status=304, headers=headers)
    span = byte_range(movie.size, etag)
    if span is None:
        first, last, status = 0, movie.size - 1, 200
    else:
        (first, last), status = span, 206
        headers["Content-Range"] = f"bytes {first}-{last}/{movie.size}"
    headers["Content-Length"] = str(last - first + 1)
    body = movie.iter_bytes(first, last) if request.method != "HEAD" else iter(())
    return Response(body, status=status, headers=headers, mimetype="video/mp4",
                    direct_passthrough=True)


# ------------------------------------------------------------------------ live

def _live_stream_state(name: str, stream: str):
    state = recorder_client.get_state(max_age=0)
    if not state.running:
        raise json_error(503, state.message or recorder_client.NOT_RUNNING)
    info = state.stream(name, stream)
    if info is None:
        raise json_error(404, f"{name} has no {stream} stream being recorded")
    if not info.current_segment:
        words = stream_health(info, state.status.clock.now_utc_us or now_us()).words
        raise json_error(503, f"{name}/{stream} is not recording now ({words})")
    return info


@bp.get("/cameras/<name>/live.mp4")
@login_required()
def live(name):
    get_camera(name)
    stream = stream_arg()
    _live_stream_state(name, stream)
    pdir = require_picorder_dir()

    def current_segment():
        return layout.current_file(pdir, name, stream, now_us())

    idle = current_app.config.get("LIVE_IDLE_TIMEOUT_S") or limits.LIVE_IDLE_TIMEOUT_S
    body = stream_with_context(live_mod.follow(pdir, name, stream, current_segment,
                                               idle_timeout=idle))
    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return Response(body, headers=headers, mimetype="video/mp4", direct_passthrough=True)


# -------------------------------------------------------------------- snapshots

@bp.get("/cameras/<name>/snapshot.jpg")
@login_required()
def snapshot(name):
    get_camera(name)
    stream = stream_arg()
    at_us = None
    if request.args.get("at") not in (None, ""):
        errors: dict = {}
        at_us = parse_time(request.args.get("at"), "at", errors)
        if errors:
            raise FieldErrors(errors)
    pdir = require_picorder_dir()
    current = layout.current_file(pdir, name, stream, now_us()) if at_us is None else None
    try:
        shot = snapshots.snapshot(current_app.config, pdir, name, stream, at_us, current)
    except snapshots.NoPicture as exc:
        raise json_error(404, str(exc)) from exc
    except snapshots.Busy as exc:
        raise json_error(503, str(exc), {"Retry-After": "1"}) from exc
    max_age = 3600 if at_us is not None else int(limits.SNAPSHOT_NEWEST_TTL_S)
    headers = {"Cache-Control": f"private, max-age={max_age}",
               "X-Picorder-Time-Us": str(shot.time_us), "X-Picorder-Time": iso(shot.time_us)}
    return Response(shot.jpeg, headers=headers, mimetype="image/jpeg")
