"""The import graph keeps its layers: picorder -> webpanel -> recorder, and no cycles.

The rules are the [tool.importlinter] contracts in pyproject.toml (docs/design.md);
import-linter reads the real import graph of the three packages.
"""

import subprocess
import sys
from pathlib import Path

from helpers import PROJECT

# In a process of its own: import-linter configures logging and disables the loggers
# that exist (the recorder's), which left later tests' caplog empty.
LINT = ("import sys; from importlinter.cli import lint_imports; "
        "sys.exit(lint_imports(config_filename=sys.argv[1], no_cache=True, no_logo=True))")


def _lint(config: Path, monkeypatch) -> int:
    return subprocess.run([sys.executable, "-c", LINT, str(config)], cwd=PROJECT,
                          capture_output=True).returncode


def test_the_tree_keeps_its_layers_and_has_no_cycles(monkeypatch):
    assert _lint(PROJECT / "pyproject.toml", monkeypatch) == 0


def test_an_arrow_against_the_layers_is_reported(monkeypatch, tmp_path):
    # The same checker, told the recorder sits above the panel, must see the panel's imports.
    config = tmp_path / "reversed.toml"
    config.write_text('[tool.importlinter]\nroot_packages = ["recorder", "webpanel"]\n'
                      '[[tool.importlinter.contracts]]\nname = "reversed"\ntype = "layers"\n'
                      'layers = ["recorder", "webpanel"]\n')
    assert _lint(config, monkeypatch) == 1


def test_one_helper_reads_the_wall_clock_in_microseconds():
    """recorder.wallclock.now_us is the one "now, in epoch µs" (timekeeping.Clock, the clock
    tests replace, wraps the same call); no module keeps a copy of its own."""
    import re
    pattern = re.compile(r"time\.time_ns\(\)\s*//\s*1_?000\b|time\.time\(\)\s*\*\s*(1e6|1_000_000)")
    allowed = {PROJECT / "recorder" / "wallclock.py", PROJECT / "recorder" / "timekeeping.py"}
    copies = [str(p.relative_to(PROJECT)) for package in ("picorder", "recorder", "webpanel")
              for p in sorted((PROJECT / package).rglob("*.py"))
              if p not in allowed and pattern.search(p.read_text())]
    assert copies == []
