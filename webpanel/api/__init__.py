"""The panel's JSON, video and metrics API, one blueprint per module; app.create_app registers them."""
