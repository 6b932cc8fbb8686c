"""Allow `python -m recorder`."""

from recorder.cli import main

raise SystemExit(main())
