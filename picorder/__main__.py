"""Allow `python -m picorder`."""

from picorder.cli import main

raise SystemExit(main())
