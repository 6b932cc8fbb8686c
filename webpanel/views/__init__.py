"""The panel's HTML pages, one blueprint per module; app.create_app registers them."""
