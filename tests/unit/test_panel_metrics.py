"""/metrics and the Zabbix endpoints from the recorder's status (over its control socket)."""

import re
import time

import pytest

from helpers.panel import (FakeRecorder, admin_session, issue_token, make_app, recorder_status,
                           stream_status)
from recorder.index import Activity, Index, queries
from recorder.paths import DataPaths


@pytest.fixture
def panel(tmp_path):
    root = tmp_path / "root"
    (root / "picorder").mkdir(parents=True)
    index = Index.open(root / "picorder" / "index.db")
    now = time.time_ns() // 1000
    queries.insert_segment(index, camera="door", stream="main", path="door/main/a.mp4",
                           start_us=now - 3 * 86_400_000_000,
                           end_us=now - 3 * 86_400_000_000 + 60e6, duration_us=60_000_000,
                           bytes=1, frames=900)
    # Two periods of activity in the last hour (3 s and 2 s), one more a day ago.
    for path, start, levels in (("door/sub/b.mp4", now - 600e6, [0, 200, 200, 200, 0, 0, 0,
                                                                   0, 150, 150]),
                                ("door/sub/c.mp4", now - 20 * 3600e6, [120])):
        queries.insert_segment(index, camera="door", stream="sub", path=path, start_us=start,
                               end_us=start + 10e6, duration_us=10_000_000, bytes=1, frames=150)
        Activity.insert(path=path, camera="door", start_us=start, end_us=start + 10e6,
                        levels=bytes(levels)).execute(index.db)
    index.close()
    streams = [stream_status("door", "main", last_segment_utc_us=now - 30_000_000),
               stream_status("door", "sub", state="BACKOFF", problem="unreachable", fps=0.0),
               stream_status("yard", "main", state="FATAL", problem="auth failed")]
    recorder = FakeRecorder(DataPaths(tmp_path / "data").control_socket,
                            lambda: recorder_status(root, streams))
    app = make_app(tmp_path)
    admin = admin_session(app)
    for name in ("door", "yard"):
        assert admin.post("/api/cameras", json={"name": name, "main_url": "rtsp://h/1"}
                          ).status_code == 201
    yield app, admin, recorder
    recorder.close()


def sample(text: str, name: str, **labels) -> float:
    """The value of one sample in Prometheus text format (labels in any order)."""
    want = {k: str(v) for k, v in labels.items()}
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        key, value = line.rsplit(" ", 1)
        metric, _, label_text = key.partition("{")
        found = dict(re.findall(r'(\w+)="([^"]*)"', label_text))
        if metric == name and found == want:
            return float(value)
    raise AssertionError(f"no sample {name} {want}")


def test_prometheus_metrics_per_stream_disk_and_process(panel):
    app, _admin, _recorder = panel
    token = issue_token(app, "prom", "viewer")
    response = app.test_client().get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200 and response.mimetype == "text/plain"
    text = response.get_data(as_text=True)
    assert sample(text, "picorder_recorder_up") == 1
    assert sample(text, "picorder_stream_state", camera="door", stream="main",
                  state="RUNNING") == 1
    assert sample(text, "picorder_stream_state", camera="yard", stream="main", state="FATAL") == 1
    assert sample(text, "picorder_stream_fps", camera="door", stream="main") == 15
    assert sample(text, "picorder_stream_bitrate_kbps", camera="door", stream="main") == 1024
    assert sample(text, "picorder_stream_dropped_frames_total", camera="door", stream="main") == 2
    assert sample(text, "picorder_stream_duplicated_frames_total", camera="door",
                  stream="main") == 3
    assert sample(text, "picorder_stream_restarts_total", camera="door", stream="main") == 1
    assert 29 < sample(text, "picorder_stream_last_segment_age_seconds", camera="door",
                       stream="main") < 60
    assert sample(text, "picorder_disk_free_bytes") > 0
    assert sample(text, "picorder_disk_total_bytes") >= sample(text, "picorder_disk_free_bytes")
    assert 2.9 < sample(text, "picorder_disk_retention_days") < 3.1
    assert sample(text, "picorder_panel_process_resident_memory_bytes") > 1e6
    assert sample(text, "picorder_recorder_process_cpu_seconds_total") >= 0
    assert sample(text, "picorder_activity_periods", camera="door", window="1h") == 2
    assert sample(text, "picorder_activity_seconds", camera="door", window="1h") == 5
    assert sample(text, "picorder_activity_periods", camera="door", window="24h") == 3
    assert sample(text, "picorder_activity_periods", camera="yard", window="24h") == 0


def test_zabbix_discovery_and_items_like_cameraleech(panel):
    _app, admin, _recorder = panel
    assert admin.get("/api/zabbix/cameras.json").get_json() == {
        "data": [{"{#CAMERA}": "door"}, {"{#CAMERA}": "yard"}]}
    assert admin.get("/api/zabbix/camera/door/fps").get_data() == b"15.000000"
    assert admin.get("/api/zabbix/camera/door/frame").get_data() == b"1500"
    assert admin.get("/api/zabbix/camera/door/dropframes").get_data() == b"2"
    assert admin.get("/api/zabbix/camera/door/dupframes").get_data() == b"3"
    assert admin.get("/api/zabbix/camera/door/bitrate").get_data() == b"1024"
    assert admin.get("/api/zabbix/camera/nope/fps").status_code == 404
    assert admin.get("/api/zabbix/camera/door/colour").status_code == 404


def test_status_and_camera_changes_reach_the_recorder(panel):
    _app, admin, recorder = panel
    status = admin.get("/api/status").get_json()
    assert status["recorder"]["running"] is True and status["clock"]["trusted"] is True
    assert [s["state"] for s in status["streams"]] == ["RUNNING", "BACKOFF", "FATAL"]
    door = admin.get("/api/cameras/door").get_json()
    assert [s["stream"] for s in door["streams"]] == ["main", "sub"]
    before = sum(1 for c in recorder.commands if c["cmd"] == "reload")
    assert admin.patch("/api/cameras/door", json={"transport": "udp"}).status_code == 200
    assert sum(1 for c in recorder.commands if c["cmd"] == "reload") == before + 1


def test_metrics_say_when_the_recorder_is_not_running(tmp_path):
    app = make_app(tmp_path)
    admin = admin_session(app)
    text = admin.get("/metrics").get_data(as_text=True)
    assert sample(text, "picorder_recorder_up") == 0
    assert "picorder_recorder_process" not in text
