"""The panel's main pages: dashboard and cameras, recordings, the synced view, live."""

import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for

from recorder import config, limits
from recorder.config import Camera, ConfigError, Setting
from recorder.status import (BAD, OFF, OK, WARN, RecorderStatus, StreamHealth, StreamStatus,
                             Summary, stream_health, summarize)
from recorder.wallclock import now_us
from webpanel.auth import current_user, login_required
from webpanel.inputs import get_camera
from webpanel.recorder_client import recorder_status, reload_best_effort
from webpanel.views.camera_form import camera_form_values, save_camera_form, saved_message

logger = logging.getLogger(__name__)

bp = Blueprint("pages", __name__)

SETUP_DONE_KEY = "setup_wizard"          # Setting: "done" once the wizard was finished
ENABLED_FORM = {"1": True, "0": False}   # the dashboard's Enable/Disable buttons send these


# ------------------------------------------------------------------ helpers

def utc_text(us: int | None) -> str:
    """A UTC fallback text; the page's script rewrites it in the browser's time zone."""
    if not us:
        return "never"
    return datetime.fromtimestamp(us / 1e6, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclass
class CameraView:
    """A camera card: configuration plus its streams' state in words."""

    cam: Camera
    streams: list[StreamStatus] = field(default_factory=list)
    health: list[StreamHealth] = field(default_factory=list)
    recorder_running: bool = True

    @property
    def main(self) -> StreamStatus | None:
        return next((s for s in self.streams if s.stream == "main"), None)

    @property
    def shown(self) -> tuple[StreamStatus | None, StreamHealth]:
        """The stream the badge speaks for: the worst one, the main stream on a tie."""
        if not self.cam.enabled:
            return None, StreamHealth(OFF, "disabled")
        if not self.recorder_running:
            return None, StreamHealth(WARN, "unknown")
        if not self.streams:
            return None, StreamHealth(WARN, "starting")
        pairs = sorted(zip(self.streams, self.health),
                       key=lambda p: (-LEVEL_RANK[p[1].level], p[0].stream != "main"))
        return pairs[0]

    @property
    def level(self) -> str:
        return self.shown[1].level


LEVEL_RANK = {OFF: 0, OK: 1, WARN: 2, BAD: 3}


def ago_text(seconds: float) -> str:
    """A duration for "recording stopped N min ago"."""
    seconds = int(max(0, seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 2 * 3600:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} days"


def camera_views(status: RecorderStatus | None) -> list[CameraView]:
    """Every camera with its streams' state, problems first, then by name as users see it."""
    now = (status.clock.now_utc_us if status else None) or now_us()
    by_camera: dict[str, list[StreamStatus]] = {}
    for s in status.streams if status else []:
        by_camera.setdefault(s.camera, []).append(s)
    views = []
    for cam in Camera.select():
        streams = sorted(by_camera.get(cam.name, []), key=lambda s: s.stream != "main")
        views.append(CameraView(cam, streams, [stream_health(s, now) for s in streams],
                                status is not None))
    return sorted(views, key=lambda v: (-LEVEL_RANK[v.level] if v.level == BAD else 0,
                                        (v.cam.display_name or v.cam.name).lower()))


def dashboard_summary(views: list[CameraView]) -> Summary:
    return summarize([v.level for v in views])


def wizard_pending() -> bool:
    return Setting.read(SETUP_DONE_KEY) != "done"


# ------------------------------------------------------------------ dashboard

@bp.route("/")
@login_required()
def dashboard():
    if wizard_pending() and current_user.is_admin:
        return redirect(url_for("wizard.step", step="clock"))
    return render_template("dashboard.html", **dashboard_context())


def dashboard_context() -> dict:
    status, problem = recorder_status()
    views = camera_views(status)
    return {"cameras": views, "summary": dashboard_summary(views), "status": status,
            "recorder_problem": problem, "ago_text": ago_text}


@bp.route("/dashboard/states")
@login_required()
def dashboard_states():
    """The summary and each card's state, for the dashboard's refresh (an HTML fragment)."""
    return render_template("_dashboard_states.html", **dashboard_context())


@bp.route("/cameras/new", methods=["GET", "POST"])
@login_required(role="admin")
def camera_new():
    if request.method == "POST":
        cam, errors = save_camera_form(request.form, None)
        if cam:
            flash(*saved_message(cam, request.form, "added"))
            return redirect(url_for("pages.dashboard"))
        return render_template("camera_form.html", cam=None, errors=errors,
                               form=camera_form_values(None, request.form)), 400
    return render_template("camera_form.html", cam=None, form=camera_form_values(None), errors={})


@bp.route("/cameras/<name>/edit", methods=["GET", "POST"])
@login_required(role="admin")
def camera_edit(name):
    cam = get_camera(name)
    if request.method == "POST":
        saved, errors = save_camera_form(request.form, cam)
        if saved:
            flash(*saved_message(saved, request.form, "saved; only this camera restarts"))
            return redirect(url_for("pages.dashboard"))
        cam = get_camera(name)          # the unsaved values must not leak into the page
        return render_template("camera_form.html", cam=cam, errors=errors,
                               form=camera_form_values(cam, request.form)), 400
    return render_template("camera_form.html", cam=cam, form=camera_form_values(cam), errors={})


@bp.route("/cameras/<name>/enabled", methods=["POST"])
@login_required(role="admin")
def camera_enable(name):
    cam = get_camera(name)
    value = request.form.get("enabled")
    try:
        config.save_camera({"enabled": ENABLED_FORM.get(value, value)}, cam)
    except ConfigError as exc:
        flash(f"Camera {cam.name} not changed: {exc}", "error")
        return redirect(url_for("pages.dashboard"))
    reload_best_effort()
    flash(f"Camera {cam.name} {'enabled' if cam.enabled else 'disabled'}.", "success")
    return redirect(url_for("pages.dashboard"))


@bp.route("/cameras/<name>/delete", methods=["POST"])
@login_required(role="admin")
def camera_delete(name):
    cam = get_camera(name)
    if request.form.get("confirm") != cam.name:
        flash(f"Type the camera's name ({cam.name}) to remove it.", "error")
        return redirect(url_for("pages.camera_edit", name=cam.name))
    cam.delete_instance()
    reload_best_effort()
    flash(f"Camera {name} removed; its recordings stay until retention deletes them.", "success")
    return redirect(url_for("pages.dashboard"))


# ------------------------------------------------------------------ video pages

@bp.route("/recordings")
@login_required()
def recordings_index():
    first = Camera.select().order_by(Camera.name).first()
    if first is None:
        return render_template("recordings.html", cam=None, cameras=[])
    return redirect(url_for("pages.recordings", name=first.name, **request.args))


@bp.route("/recordings/<name>")
@login_required()
def recordings(name):
    cam = get_camera(name)
    cameras = list(Camera.select().order_by(Camera.name))
    return render_template("recordings.html", cam=cam, cameras=cameras,
                           export_max_s=current_app.config.get("EXPORT_MAX_S") or export_max_s())


@bp.route("/synced")
@login_required()
def synced():
    """Every camera (or those in ?camera=) playing together from one wall time."""
    cameras = list(Camera.select().order_by(Camera.name))
    chosen = request.args.getlist("camera")
    for name in chosen:
        get_camera(name)
    return render_template("synced.html", cameras=cameras,
                           chosen=set(chosen) or {c.name for c in cameras})


def export_max_s() -> int:
    return limits.EXPORT_MAX_S


@bp.route("/live")
@login_required()
def live():
    cams = [c for c in Camera.select().order_by(Camera.name) if c.enabled]
    return render_template("live.html", cameras=cams)
