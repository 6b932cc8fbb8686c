"""The import graph keeps its layers: picorder -> webpanel -> recorder, and no cycles.

The rules are the [tool.importlinter] contracts in pyproject.toml (docs/design.md);
import-linter reads the real import graph of the three packages.
"""

from pathlib import Path

from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[2]


def _lint(config: Path, monkeypatch) -> int:
    monkeypatch.chdir(ROOT)
    return lint_imports(config_filename=str(config), no_cache=True, no_logo=True)


def test_the_tree_keeps_its_layers_and_has_no_cycles(monkeypatch):
    assert _lint(ROOT / "pyproject.toml", monkeypatch) == 0


def test_an_arrow_against_the_layers_is_reported(monkeypatch, tmp_path):
    # The same checker, told the recorder sits above the panel, must see the panel's imports.
    config = tmp_path / "reversed.toml"
    config.write_text('[tool.importlinter]\nroot_packages = ["recorder", "webpanel"]\n'
                      '[[tool.importlinter.contracts]]\nname = "reversed"\ntype = "layers"\n'
                      'layers = ["recorder", "webpanel"]\n')
    assert _lint(config, monkeypatch) == 1
