"""The systemd units as the picorder role installs them: its templates rendered by Ansible."""

import shutil
import subprocess
from pathlib import Path

import pytest

ANSIBLE = Path(__file__).resolve().parents[2] / "ansible"
ROLE = ANSIBLE / "roles" / "picorder"


def render_units(names: list[str], dest_dir: Path) -> dict[str, str]:
    """templates/NAME.j2 of the picorder role, rendered by Ansible's template module with the
    role's defaults and vars, as {name: text}."""
    if shutil.which("ansible") is None:
        pytest.fail("ansible is missing: run `make test`, which installs it")
    result = {}
    for name in names:
        dest = dest_dir / name
        done = subprocess.run(
            ["ansible", "localhost", "-i", "localhost,", "-c", "local",
             "-m", "ansible.builtin.template",
             "-a", f"src={ROLE / 'templates' / (name + '.j2')} dest={dest}",
             "-e", f"@{ROLE / 'defaults' / 'main.yml'}", "-e", f"@{ROLE / 'vars' / 'main.yml'}"],
            cwd=ANSIBLE, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        result[name] = dest.read_text()
    return result
