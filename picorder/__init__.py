"""picorder's entry points, above the recorder and the panel: the `picorder` command
(picorder.cli) and the appliance's first boot (picorder.firstboot)."""
