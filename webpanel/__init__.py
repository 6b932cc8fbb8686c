"""picorder's web panel: a Flask application factory served by gunicorn.

The factory lives in webpanel.app; this package imports nothing else, so that
other programs can use the panel's models (the first-boot step does) without
paying for Flask's import at boot.
"""


def create_app(test_config=None):
    """Build the panel (gunicorn: 'webpanel:create_app()')."""
    from webpanel.app import create_app as build

    return build(test_config)
