"""First-run setup wizard after the admin account: clock, disk, first camera, retention, done."""

import logging

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from recorder import limits
from recorder.config import Camera, Setting
from webpanel.auth import login_required
from webpanel.recorder_client import recorder_call, recorder_status
from webpanel.views import storage_forms
from webpanel.views.camera_form import camera_form_values, save_camera_form, saved_message
from webpanel.views.pages import SETUP_DONE_KEY

logger = logging.getLogger(__name__)

bp = Blueprint("wizard", __name__, url_prefix="/setup")

STEPS = [("admin", "Admin account"), ("clock", "Clock"), ("disk", "Disk"),
         ("camera", "First camera"), ("retention", "Retention"), ("done", "Done")]
STEP_NAMES = [s for s, _ in STEPS]


def next_step(step: str) -> str:
    return STEP_NAMES[STEP_NAMES.index(step) + 1]


def render_step(step: str, status_code: int = 200, **context):
    context.setdefault("errors", {})
    return render_template(f"setup/{step}.html", step=step, steps=STEPS,
                           step_index=STEP_NAMES.index(step), **context), status_code


@bp.route("/<step>", methods=["GET", "POST"])
@login_required(role="admin")
def step(step):
    handlers = {"clock": clock_step, "disk": disk_step, "camera": camera_step,
                "retention": retention_step, "done": done_step}
    if step not in handlers:
        abort(404, "no such setup step")
    return handlers[step]()


def clock_step():
    errors = {}
    if request.method == "POST":
        trust = request.form.get("action") == "trust"
        errors = set_clock_from_form(request.form, "trust_clock" if trust else "set_clock")
        if not errors:
            flash(TRUSTED_MESSAGE if trust else "The box's clock was set from this browser.",
                  "success")
            return redirect(url_for("wizard.step", step="clock"))
    status, problem = recorder_status(max_age=0)      # the box's time, compared to the second
    return render_step("clock", 400 if errors else 200, clock=status.clock if status else None,
                       recorder_problem=problem, errors=errors,
                       tolerance_s=limits.CLOCK_OFFER_TOLERANCE_S)


TRUSTED_MESSAGE = ("The box's clock is trusted now. What it recorded since the recorder started "
                   "is marked trusted, and so is everything it records from now on.")


def set_clock_from_form(form, command: str = "set_clock") -> dict:
    """Send the browser's time to the recorder (set_clock, or trust_clock: trust the box's
    time as it is, which agrees with the browser's); return field errors."""
    text = form.get("browser_utc_ms", "")
    try:
        utc_ms = int(float(text))
    except ValueError:
        return {"browser_utc_ms": "the browser's time was not sent; is JavaScript on?"}
    if not 946_684_800_000 <= utc_ms <= 4_102_444_800_000:
        return {"browser_utc_ms": "the browser's time is not plausible (before 2000 or after 2100)"}
    _, error = recorder_call(command, utc_us=utc_ms * 1000)
    return {"browser_utc_ms": error} if error else {}


def disk_step():
    errors = {}
    if request.method == "POST":
        message, errors = storage_forms.handle_disk_form(request.form)
        if not errors:
            flash(message, "success")
            return redirect(url_for("wizard.step", step="disk"))
    return render_step("disk", 400 if errors else 200, errors=errors,
                       **storage_forms.disk_context())


def camera_step():
    if request.method == "POST":
        cam, errors = save_camera_form(request.form, None)
        if cam:
            flash(*saved_message(cam, request.form, "added"))
            return redirect(url_for("wizard.step", step="retention"))
        return render_step("camera", 400, form=camera_form_values(None, request.form),
                           errors=errors, cameras=list(Camera.select()))
    return render_step("camera", form=camera_form_values(None), cameras=list(Camera.select()))


def retention_step():
    if request.method == "POST":
        errors = storage_forms.save_retention_defaults(request.form)
        if not errors:
            return redirect(url_for("wizard.step", step="done"))
        return render_step("retention", 400, errors=errors, form=request.form,
                           **storage_forms.retention_context())
    return render_step("retention", form=storage_forms.retention_form_values(),
                       **storage_forms.retention_context())


def done_step():
    if request.method == "POST":
        Setting.write(SETUP_DONE_KEY, "done")
        return redirect(url_for("pages.dashboard"))
    return render_step("done", cameras=list(Camera.select()))
