"""The panel's application factory: config, database, security, blueprints."""

import logging
import os
import secrets
from pathlib import Path

from flask import Flask, g, jsonify, render_template, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import HTTPException

from recorder import config
from recorder.paths import DataPaths, resolve_data_dir
from webpanel.inputs import wants_json

logger = logging.getLogger(__name__)

SECRET_KEY_BYTES = 32


def load_secret_key(paths: DataPaths) -> str:
    """Read the session signing key, creating it (mode 0600) on first run."""
    try:
        return paths.secret_key.read_text().strip()
    except FileNotFoundError:
        pass
    key = secrets.token_hex(SECRET_KEY_BYTES)
    tmp = paths.secret_key.with_name(f".{paths.secret_key.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    try:
        # link() fails if another worker won the race: then use its key.
        os.link(tmp, paths.secret_key)
    except FileExistsError:
        key = paths.secret_key.read_text().strip()
    finally:
        tmp.unlink()
    logger.info("created a new session key in %s", paths.secret_key)
    return key


class LocalProxyFix:
    """The client's address from X-Forwarded-For, for requests over a local socket only.

    gunicorn gives a Unix socket's peer as an empty REMOTE_ADDR. Only the local nginx
    connects there, and it sets the header to the address it saw; a TCP client's
    header is ignored, so nobody on the network can choose their address.
    """

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        forwarded = environ.get("HTTP_X_FORWARDED_FOR", "")
        if not environ.get("REMOTE_ADDR") and forwarded:
            environ["REMOTE_ADDR"] = forwarded.rsplit(",", 1)[-1].strip()
        return self.wsgi_app(environ, start_response)


class JSONProvider(DefaultJSONProvider):
    """Flask's JSON, but a body nested too deeply is bad JSON (400), not a crash (500)."""

    def loads(self, s, **kwargs):
        try:
            return super().loads(s, **kwargs)
        except RecursionError as exc:
            raise ValueError("the JSON is nested too deeply") from exc


def handle_http_error(exc: HTTPException):
    """Answer API clients in JSON: {"error": "..."} or {"errors": {field: "..."}}."""
    if exc.response is not None:
        return exc.response
    if wants_json() or not request.accept_mimetypes.accept_html:
        response = jsonify(getattr(exc, "json_body", None) or {"error": exc.description})
        response.status_code = exc.code or 500
        for key, value in exc.get_headers():
            if key.lower() != "content-type":
                response.headers[key] = value
        response.headers.update(getattr(exc, "extra_headers", {}))
        return response
    return exc


def handle_unexpected(exc: Exception):
    logger.exception("unhandled error on %s %s", request.method, request.path)
    if wants_json():
        return jsonify({"error": "internal error; see the panel's log"}), 500
    return render_template("base.html", message="Internal error; see the panel's log."), 500


def open_config_db(app: Flask) -> None:
    """Open config.db once (migrating it); requests reconnect per thread."""
    config.open_config(DataPaths(Path(app.config["DATA_DIR"])).config_db)
    config.db.close()

    @app.before_request
    def _connect():
        config.db.connect(reuse_if_open=True)

    @app.teardown_appcontext
    def _close(exc):
        if not config.db.is_closed():
            config.db.close()
        g.pop("identity", None)


def create_app(test_config=None):
    """Build the panel: config, database, security, blueprints."""
    # Named after the package, so templates, static files and the instance folder
    # are the package's.
    app = Flask("webpanel", instance_relative_config=True)
    app.json = JSONProvider(app)
    app.config.from_mapping(
        DATA_DIR=None,
        SECRET_KEY=None,
        RECORDING_ROOT=None,       # override of the recorder's root (tests, servers)
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_NAME="picorder_session",
        PERMANENT_SESSION_LIFETIME=30 * 24 * 3600,
        MAX_CONTENT_LENGTH=1024 * 1024,
        JSON_SORT_KEYS=False,
    )
    if test_config is None:
        app.config.from_pyfile("config.py", silent=True)
        # PICORDER_PANEL_RECORDING_ROOT=/data/nvr etc. (gunicorn passes the environment on).
        app.config.from_prefixed_env("PICORDER_PANEL")
    else:
        app.config.from_mapping(test_config)
    paths = DataPaths(Path(app.config["DATA_DIR"] or resolve_data_dir()))
    paths.ensure()
    app.config["DATA_DIR"] = str(paths.root)
    if not app.config["SECRET_KEY"]:
        app.config["SECRET_KEY"] = load_secret_key(paths)

    open_config_db(app)
    from webpanel import auth, security, streams
    from webpanel.api import disks, metrics, resources, tools, video
    from webpanel.views import auth as auth_views, pages, setup, system

    if app.config.get("TRUST_LOCAL_PROXY", True):
        app.wsgi_app = LocalProxyFix(app.wsgi_app)
    security.init_app(app)
    auth.init_app(app)
    streams.init_app(app)
    for blueprint in (auth_views.bp, resources.bp, disks.bp, video.bp, metrics.bp,
                      pages.bp, setup.bp, system.bp, tools.bp):
        app.register_blueprint(blueprint)
    app.jinja_env.globals["utc_text"] = pages.utc_text
    app.register_error_handler(HTTPException, handle_http_error)
    app.register_error_handler(Exception, handle_unexpected)
    return app
