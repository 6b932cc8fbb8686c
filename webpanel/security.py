"""CSRF protection for forms and JSON, and the security headers of every response."""

import logging

from flask import jsonify, render_template, request
from flask_wtf.csrf import CSRFError, CSRFProtect

from webpanel.inputs import wants_json

logger = logging.getLogger(__name__)

csrf = CSRFProtect()

# Everything is served by the panel itself (no CDN); video may come from blob: URLs (MSE).
DEFAULT_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; "
               "img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; "
               "worker-src 'self' blob:; object-src 'none'; base-uri 'self'; "
               "form-action 'self'; frame-ancestors 'none'")


def add_security_headers(response):
    headers = response.headers
    headers.setdefault("Content-Security-Policy", DEFAULT_CSP)
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    return response


def csrf_refused(exc: CSRFError):
    logger.info("refused %s %s: %s", request.method, request.path, exc.description)
    message = f"missing or bad CSRF token ({exc.description}); send it as X-CSRFToken"
    if wants_json() or request.is_json or not request.accept_mimetypes.accept_html:
        return jsonify({"error": message}), 400
    return render_template("base.html", message="The form expired; please try again."), 400


def init_app(app) -> None:
    # auth.guard calls csrf.protect() itself so that bearer-token requests skip it.
    app.config.setdefault("WTF_CSRF_CHECK_DEFAULT", False)
    # The token lives as long as the session, so a panel left open keeps working.
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)
    csrf.init_app(app)
    app.after_request(add_security_headers)
    app.register_error_handler(CSRFError, csrf_refused)
