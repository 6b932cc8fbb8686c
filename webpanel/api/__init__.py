"""The panel's JSON, video and metrics API, a blueprint a module (registered by app.create_app)."""
