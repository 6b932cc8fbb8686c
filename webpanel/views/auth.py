"""The sign-in pages: log in, create the first admin, log out (JSON for scripts too)."""

import logging

from flask import (Blueprint, current_app, g, jsonify, redirect, render_template, request,
                   session, url_for)

from recorder import config
from recorder.accounts import (SessionGeneration, User, check_setup_code, setup_code_required,
                               validate_user)
from webpanel import auth
from webpanel.inputs import FieldErrors, json_error

logger = logging.getLogger(__name__)

bp = Blueprint("auth", __name__, url_prefix="/auth")


def _form() -> dict:
    if request.is_json:
        body = request.get_json(silent=True)
        return body if isinstance(body, dict) else {}
    return request.form.to_dict()


def _sign_in(user: User) -> None:
    session.clear()
    session.permanent = True
    session["uid"] = user.id
    session["pwv"] = auth.password_version(user)
    session["gen"] = SessionGeneration.current(user.id)


def _form_response(template: str, form: dict, errors: dict, status: int):
    if request.is_json:
        return jsonify({"errors": errors}), status
    shown = {k: v for k, v in form.items() if "password" not in k}
    return render_template(template, form=shown, errors=errors, next=auth.safe_next()), status


@bp.route("/login", methods=["GET", "POST"])
def login():
    if request.method == "GET":
        if not User.admin_exists():
            return redirect(url_for("auth.setup", next=auth.safe_next()))
        return render_template("auth/login.html", form={}, errors={}, next=auth.safe_next())
    form = _form()
    username = form.get("username") if isinstance(form.get("username"), str) else ""
    password = form.get("password") if isinstance(form.get("password"), str) else ""
    keys = auth.attempt_keys(username)
    wait, attempt_us = auth.claim_attempt(keys)
    if wait:
        logger.warning("login throttled for %r from %s", username[:64], request.remote_addr)
        errors = {"password": f"too many failed attempts; wait {wait} s"}
        response, status = _form_response("auth/login.html", form, errors, 429)
        response = current_app.make_response((response, status))
        response.headers["Retry-After"] = str(wait)
        return response
    user = auth.check_login(username, password)
    if user is None:
        logger.info("failed login for %r from %s", username[:64], request.remote_addr)
        return _form_response("auth/login.html", form,
                              {"password": "wrong user name or password"}, 401)
    auth.forgive_attempt(keys, attempt_us)
    _sign_in(user)
    logger.info("user %s signed in from %s", user.username, request.remote_addr)
    if request.is_json:
        return jsonify({"user": user.to_public()})
    return redirect(auth.safe_next())


def _check_setup_code(form: dict) -> dict:
    """{} when no code is needed or the right one came; wrong codes count like logins."""
    if not setup_code_required():
        return {}
    keys = [f"addr:{request.remote_addr or '-'}", f"pair:(setup)|{request.remote_addr or '-'}"]
    wait, attempt_us = auth.claim_attempt(keys)
    if wait:
        return {"setup_code": f"too many wrong codes; wait {wait} s"}
    if not check_setup_code(form.get("setup_code")):
        logger.warning("wrong setup code from %s", request.remote_addr)
        return {"setup_code": "this is not the setup_code of picorder.txt"}
    auth.forgive_attempt(keys, attempt_us)
    return {}


@bp.route("/setup", methods=["GET", "POST"])
def setup():
    """First visit: create the admin account; closed once an admin exists."""
    if User.admin_exists():
        if request.is_json:
            raise json_error(403, "setup is closed: an admin account exists")
        return redirect(url_for("auth.login"))
    if request.method == "GET":
        return auth.setup_page({}, {}, 403 if auth.setup_refusal() else 200)
    form = _form()
    refusal = auth.setup_refusal()
    if refusal:
        logger.warning("refused to create the admin for %s: %s", request.remote_addr, refusal)
        return auth.setup_page(form, {"setup": refusal}, 403)
    username, password = form.get("username"), form.get("password")
    errors = validate_user(username, password, "admin")
    if not errors and "confirm" in form and form.get("confirm") != password:
        errors["confirm"] = "the two passwords differ"
    if errors:
        return auth.setup_page(form, errors, 400)
    errors = _check_setup_code(form)
    if errors:
        return auth.setup_page(form, errors, 403)
    try:
        with config.db.atomic("IMMEDIATE"):
            if User.admin_exists():
                raise json_error(403, "setup is closed: an admin account exists")
            user = auth.add_user(username, password, "admin")
    except FieldErrors as exc:
        return auth.setup_page(form, exc.errors, 400)
    logger.info("created the admin account %s from %s", user.username, request.remote_addr)
    _sign_in(user)
    if request.is_json:
        return jsonify({"user": user.to_public()}), 201
    return redirect(auth.safe_next())


@bp.route("/logout", methods=["POST"])
def logout():
    identity = g.get("identity")
    if identity is not None and identity.via == "session":
        # Ends this user's every session, server-side: a copied cookie stops working too.
        SessionGeneration.bump(identity.user_id)
    session.clear()
    if request.is_json:
        return jsonify({"ok": True})
    return redirect(url_for("auth.login"))
