"""Storage and system pages: disks and retention, the box, users, tokens, backup, power."""

import json
import logging
from datetime import datetime, timezone
from pathlib import Path

from flask import (Blueprint, Response, abort, current_app, flash, redirect, render_template,
                   request, url_for)

from recorder.accounts import ApiToken, User
from recorder.config import Camera, ConfigError
from webpanel import config_backup, host_facts
from webpanel.auth import add_user, current_user, issue_token, login_required
from webpanel.inputs import FieldErrors, get_camera
from webpanel.recorder_client import recorder_call, recorder_status, reload_best_effort
from webpanel.views import storage_forms

logger = logging.getLogger(__name__)

bp = Blueprint("system", __name__)


# ------------------------------------------------------------------ storage page

@bp.route("/storage", methods=["GET"])
@login_required()
def storage():
    return render_storage()


def render_storage(errors: dict | None = None, status_code: int = 200, forms: dict | None = None):
    return render_template("storage.html", errors=errors or {}, forms=forms or {},
                           cameras=list(Camera.select().order_by(Camera.name)),
                           retention=storage_forms.retention_form_values(),
                           **storage_forms.disk_context()), status_code


@bp.route("/storage/disks", methods=["POST"])
@login_required(role="admin")
def storage_disks():
    message, errors = storage_forms.handle_disk_form(request.form)
    if errors:
        return render_storage({"disk": errors}, 400)
    flash(message, "success")
    return redirect(url_for("system.storage"))


@bp.route("/storage/retention", methods=["POST"])
@login_required(role="admin")
def storage_retention():
    errors = storage_forms.save_retention_defaults(request.form)
    if errors:
        return render_storage({"retention": errors}, 400, {"retention": request.form})
    flash("Retention saved.", "success")
    return redirect(url_for("system.storage"))


@bp.route("/storage/cameras/<name>", methods=["POST"])
@login_required(role="admin")
def storage_camera(name):
    cam = get_camera(name)
    errors = storage_forms.save_camera_retention(cam, request.form)
    if errors:
        return render_storage({f"cam:{name}": errors}, 400, {f"cam:{name}": request.form})
    flash(f"Retention of {name} saved.", "success")
    return redirect(url_for("system.storage"))


# ------------------------------------------------------------------ system page

@bp.route("/system")
@login_required()
def system():
    return render_system()


def render_system(errors: dict | None = None, status_code: int = 200, forms: dict | None = None,
                  new_token: str | None = None):
    status, problem = recorder_status()
    return render_template(
        "system.html", facts=host_facts.system_facts(), status=status, recorder_problem=problem,
        log_lines=(host_facts.recorder_log(Path(current_app.config["DATA_DIR"]))
                   if current_user.is_admin else []),
        users=list(User.select().order_by(User.username)),
        tokens=list(ApiToken.select().order_by(ApiToken.name)),
        errors=errors or {}, forms=forms or {}, new_token=new_token), status_code


# ------------------------------------------------------------------ users and tokens

@bp.route("/system/users", methods=["POST"])
@login_required(role="admin")
def user_add():
    form = request.form
    username, role = form.get("username", "").strip(), form.get("role")
    try:
        add_user(username, form.get("password", ""), role)
    except FieldErrors as exc:
        return render_system({"user": exc.errors}, 400,
                             {"user": {"username": username, "role": role}})
    flash(f"User {username} added.", "success")
    return redirect(url_for("system.system") + "#users")


@bp.route("/system/users/<int:user_id>/delete", methods=["POST"])
@login_required(role="admin")
def user_delete(user_id):
    user = User.get_or_none(User.id == user_id) or abort(404, "no such user")
    if user.id == current_user.user_id:
        flash("You cannot remove yourself.", "error")
    elif user.is_last_admin():
        flash("The last admin cannot be removed.", "error")
    else:
        user.delete_instance()
        flash(f"User {user.username} removed.", "success")
    return redirect(url_for("system.system") + "#users")


@bp.route("/system/tokens", methods=["POST"])
@login_required(role="admin")
def token_add():
    name, role = request.form.get("name", "").strip(), request.form.get("role")
    try:
        _, token = issue_token(name, role)
    except FieldErrors as exc:
        return render_system({"token": exc.errors}, 400, {"token": {"name": name, "role": role}})
    return render_system(new_token=token)


@bp.route("/system/tokens/<int:token_id>/delete", methods=["POST"])
@login_required(role="admin")
def token_delete(token_id):
    token = ApiToken.get_or_none(ApiToken.id == token_id) or abort(404, "no such token")
    token.delete_instance()
    flash(f"Token {token.name} revoked.", "success")
    return redirect(url_for("system.system") + "#tokens")


# ------------------------------------------------------------------ backup and restore

@bp.route("/system/backup.json")
@login_required(role="admin")
def backup():
    """Cameras (with their passwords), users (hashed passwords) and settings."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    headers = {"Content-Disposition": f'attachment; filename="picorder-config-{stamp}.json"',
               "Cache-Control": "no-store"}
    return Response(json.dumps(config_backup.document(), indent=2), mimetype="application/json",
                    headers=headers)


@bp.route("/system/restore", methods=["POST"])
@login_required(role="admin")
def restore():
    upload = request.files.get("backup")
    if upload is None or not upload.filename:
        return render_system({"restore": {"backup": "choose a backup file"}}, 400)
    doc, error = config_backup.parse_backup(upload.read())
    if error:
        return render_system({"restore": {"backup": error}}, 400)
    try:
        config_backup.restore(doc)
    except ConfigError as exc:          # two cameras of one name: the transaction is undone
        return render_system({"restore": {"backup": f"nothing restored: {exc}"}}, 400)
    reload_best_effort()
    flash(f"Restored {len(doc['cameras'])} cameras, {len(doc['users'])} users and "
          f"{len(doc['settings'])} settings.", "success")
    return redirect(url_for("system.system"))


# ------------------------------------------------------------------ power

@bp.route("/system/power", methods=["POST"])
@login_required(role="admin")
def power():
    action = request.form.get("action")
    if action not in ("reboot", "poweroff"):
        return render_system({"power": {"action": "choose reboot or shut down"}}, 400)
    if request.form.get("confirm") != "yes":
        return render_system({"power": {"confirm": "tick the box to confirm"}}, 400)
    _, error = recorder_call(action)
    if error:
        flash(f"The box cannot {action} now: {error}", "error")
    else:
        flash("The box is going down; this page stops answering in a few seconds.", "success")
    return redirect(url_for("system.system"))
