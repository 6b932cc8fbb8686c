"""picorder's web panel: a Flask application factory served by gunicorn.

The factory lives in webpanel.app, imported only when the panel is built.
"""


def create_app(test_config=None):
    """Build the panel (gunicorn: 'webpanel:create_app()')."""
    from webpanel.app import create_app as build

    return build(test_config)
