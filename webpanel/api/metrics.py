"""Monitoring: Prometheus /metrics and cameraleech-compatible Zabbix endpoints."""

import logging

from flask import Blueprint, Response, jsonify
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.process_collector import ProcessCollector

from recorder.config import Camera
from recorder.index import NoIndex, queries
from recorder.status import StreamStatus
from recorder.wallclock import now_us
from webpanel import index_reader, recorder_client
from webpanel.api.status import status_json
from webpanel.auth import login_required
from webpanel.inputs import get_camera, json_error

logger = logging.getLogger(__name__)

bp = Blueprint("metrics", __name__)

STREAM_STATES = ("STOPPED", "STARTING", "RUNNING", "BACKOFF", "STOPPING", "FATAL")
STREAM_LABELS = ["camera", "stream"]


def _gauge(name, doc, labels=None):
    return GaugeMetricFamily(name, doc, labels=labels)


class RecorderCollector:
    """Turns one recorder status (and the disk) into metric families."""

    def __init__(self, state: recorder_client.RecorderState, storage: dict,
                 oldest_us: int | None, activity: dict | None = None):
        self.state, self.storage, self.oldest_us = state, storage, oldest_us
        self.activity = activity or {}      # (camera, window) -> (periods, seconds)

    def collect(self):
        up = _gauge("picorder_recorder_up", "1 if the recorder answers on its control socket")
        up.add_metric([], 1 if self.state.running else 0)
        yield up
        clock = self.state.status.clock if self.state.status else None
        trusted = _gauge("picorder_clock_trusted", "1 if the wall clock is trustworthy")
        trusted.add_metric([], 1 if clock and clock.trusted else 0)
        yield trusted
        yield from self.stream_metrics()
        yield from self.disk_metrics()
        yield from self.activity_metrics()

    def activity_metrics(self):
        count = _gauge("picorder_activity_periods",
                       "periods of activity in the last hour or day", ["camera", "window"])
        seconds = _gauge("picorder_activity_seconds",
                         "seconds of activity in the last hour or day", ["camera", "window"])
        for (camera, window), (n, secs) in sorted(self.activity.items()):
            count.add_metric([camera, window], n)
            seconds.add_metric([camera, window], secs)
        yield count
        yield seconds

    def stream_metrics(self):
        now = now_us()
        state = _gauge("picorder_stream_state", "1 for the stream's current state",
                       STREAM_LABELS + ["state"])
        gauges = {
            "fps": _gauge("picorder_stream_fps", "frames per second", STREAM_LABELS),
            "bitrate_kbps": _gauge("picorder_stream_bitrate_kbps", "bitrate in kbit/s",
                                   STREAM_LABELS),
            "uptime_s": _gauge("picorder_stream_uptime_seconds", "time since ffmpeg started",
                               STREAM_LABELS),
        }
        counters = {
            "frames": CounterMetricFamily("picorder_stream_frames", "frames received",
                                          labels=STREAM_LABELS),
            "dropped": CounterMetricFamily("picorder_stream_dropped_frames", "frames dropped",
                                           labels=STREAM_LABELS),
            "duplicated": CounterMetricFamily("picorder_stream_duplicated_frames",
                                              "frames duplicated", labels=STREAM_LABELS),
            "restarts": CounterMetricFamily("picorder_stream_restarts", "ffmpeg restarts",
                                            labels=STREAM_LABELS),
            "bytes_written": CounterMetricFamily("picorder_stream_written_bytes",
                                                 "bytes written", labels=STREAM_LABELS),
        }
        age = _gauge("picorder_stream_last_segment_age_seconds",
                     "seconds since the stream's newest finished segment", STREAM_LABELS)
        for item in self.state.streams():
            labels = [item.camera, item.stream]
            for name in STREAM_STATES:
                state.add_metric(labels + [name], 1 if item.state == name else 0)
            for key, family in list(gauges.items()) + list(counters.items()):
                family.add_metric(labels, float(getattr(item, key) or 0))
            last = item.last_segment_utc_us
            if last:
                age.add_metric(labels, max(0, now - last) / 1e6)
        yield state
        yield from gauges.values()
        yield from counters.values()
        yield age

    def disk_metrics(self):
        storage_state = _gauge("picorder_storage_state", "1 for the storage's current state",
                               ["state"])
        for name in ("recording", "disk missing", "no disk"):
            storage_state.add_metric([name], 1 if self.storage.get("state") == name else 0)
        yield storage_state
        for key, name, doc in (("total_bytes", "picorder_disk_total_bytes", "recording disk size"),
                               ("free_bytes", "picorder_disk_free_bytes", "free space")):
            if key in self.storage:
                family = _gauge(name, doc)
                family.add_metric([], self.storage[key])
                yield family
        if self.oldest_us is not None:
            family = _gauge("picorder_disk_retention_days", "age of the oldest recording, in days")
            family.add_metric([], max(0, now_us() - self.oldest_us) / 86_400e6)
            yield family


ACTIVITY_WINDOWS = {"1h": 3600, "24h": 86400}


def index_figures() -> tuple[int | None, dict]:
    """What a scrape reads of the recording disk's index.db, in one read-only open: the
    oldest recording's start and activity_counts (None and {} without an index)."""
    pdir = recorder_client.picorder_dir()
    if pdir is None:
        return None, {}
    try:
        with index_reader.open_readonly(pdir) as index:
            return queries.oldest_start_us(index), activity_counts(index)
    except NoIndex:
        return None, {}


def activity_counts(index) -> dict:
    """(camera, window) -> (periods, seconds of activity) over ACTIVITY_WINDOWS."""
    now = now_us()
    out = {}
    for cam in Camera.select(Camera.name).order_by(Camera.name):
        for window, span_s in ACTIVITY_WINDOWS.items():
            found = index_reader.activity(index, cam.name, now - span_s * 1_000_000, now)
            out[(cam.name, window)] = (len(found), sum(p.end_us - p.start_us
                                                       for p in found) / 1e6)
    return out


def build_registry() -> CollectorRegistry:
    state = recorder_client.get_state()
    status = status_json()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RecorderCollector(state, status["storage"], *index_figures()))
    ProcessCollector(namespace="picorder_panel", registry=registry)
    pid = state.status.pid if state.status else None
    if state.running and isinstance(pid, int):
        ProcessCollector(namespace="picorder_recorder", pid=lambda: pid, registry=registry)
    return registry


@bp.get("/metrics")
@login_required()
def metrics():
    return Response(generate_latest(build_registry()), mimetype=CONTENT_TYPE_LATEST)


# --------------------------------------------------------- Zabbix (cameraleech)

def _main_stream(name: str) -> StreamStatus | None:
    get_camera(name)
    return recorder_client.get_state().stream(name, "main")


ZABBIX_METRICS = {
    # cameraleech name -> (status key, format)
    "frame": ("frames", "%d"),
    "fps": ("fps", "%f"),
    "bitrate": ("bitrate_kbps", "%d"),
    "outtime": ("uptime_s", "%d"),
    "dupframes": ("duplicated", "%d"),
    "dropframes": ("dropped", "%d"),
    "restarts": ("restarts", "%d"),
}


@bp.get("/api/zabbix/cameras.json")
@login_required()
def zabbix_discovery():
    names = [c.name for c in Camera.select(Camera.name).order_by(Camera.name)]
    return jsonify({"data": [{"{#CAMERA}": n} for n in names]})


@bp.get("/api/zabbix/camera/<name>/<metric>")
@login_required()
def zabbix_item(name, metric):
    if metric not in ZABBIX_METRICS:
        raise json_error(404, f"unknown metric {metric!r}; known: {', '.join(ZABBIX_METRICS)}")
    key, fmt = ZABBIX_METRICS[metric]
    value = getattr(_main_stream(name), key, 0) or 0
    return Response(fmt % value, mimetype="text/plain")
