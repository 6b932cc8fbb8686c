"""picorder's web panel: a Flask application factory served by gunicorn."""

from flask import Flask


def create_app(test_config=None):
    app = Flask(__name__, instance_relative_config=True)
    if test_config:
        app.config.from_mapping(test_config)
    return app
