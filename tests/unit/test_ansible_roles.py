"""The Ansible roles stay lint-clean (ansible-lint, yamllint) and keep the house style."""

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from helpers.units import render_units

ANSIBLE = Path(__file__).resolve().parents[2] / "ansible"
UNITS = Path(__file__).resolve().parents[1] / "fixtures" / "units"


def run(argv: list[str]) -> subprocess.CompletedProcess:
    if shutil.which(argv[0]) is None:
        pytest.fail(f"{argv[0]} is missing: run `make test`, which installs it")
    return subprocess.run(argv, cwd=ANSIBLE, capture_output=True, text=True, timeout=300)


def test_yamllint_is_clean():
    done = run(["yamllint", "-s", "-c", ".yamllint", "."])
    assert done.returncode == 0, done.stdout + done.stderr


def test_ansible_lint_is_clean():
    done = run(["ansible-lint", "--nocolor", "site.yml"])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def test_templates_start_with_ansible_managed_and_modes_are_quoted():
    for template in ANSIBLE.glob("roles/*/templates/*.j2"):
        assert template.read_text().startswith("{{ ansible_managed | comment }}"), template
    for tasks in ANSIBLE.glob("roles/*/tasks/*.yml"):
        for task in yaml.safe_load(tasks.read_text()) or []:
            assert task["name"][0].isupper(), f"{tasks}: task names are sentences"
            for module, args in task.items():
                if module.startswith("ansible.") and isinstance(args, dict) and "mode" in args:
                    assert isinstance(args["mode"], str), f"{tasks}: {task['name']}: quote the mode"
            modules = [k for k in task if "." in k]
            assert modules, f"{tasks}: {task['name']}: use fully-qualified module names"


def test_every_default_is_prefixed_with_its_role_name():
    for defaults in ANSIBLE.glob("roles/*/defaults/main.yml"):
        role = defaults.parent.parent.name
        for key in yaml.safe_load(defaults.read_text()):
            assert key.startswith(role + "_"), (defaults, key)


def test_a_panel_setting_restarts_the_panel_only():
    """Recording goes on when gunicorn's settings, the panel's environment or its unit change."""
    role = ANSIBLE / "roles" / "picorder"
    handlers = {h["name"]: h for h in yaml.safe_load((role / "handlers/main.yml").read_text())}
    restarted = {name: h["ansible.builtin.systemd"]["name"] for name, h in handlers.items()
                 if "ansible.builtin.systemd" in h}
    assert restarted == {"Restart the recorder": "picorder-recorder.service",
                         "Restart the panel": "picorder-panel.service"}
    tasks = {t["name"]: t for t in yaml.safe_load((role / "tasks/services.yml").read_text())}
    for name in ("Install the panel's gunicorn settings", "Write the panel's environment file",
                 "Install the panel's systemd unit"):
        assert tasks[name]["notify"] == "Restart the panel"
    assert tasks["Install the recorder's systemd unit"]["notify"] == "Restart the recorder"


def test_the_roles_reach_nothing_outside_themselves_but_the_checkout_they_are_given():
    for path in ANSIBLE.glob("roles/**/*"):
        if path.is_file():
            assert "playbook_dir" not in path.read_text(errors="replace"), path


def test_the_units_render_to_what_the_image_had(tmp_path):
    """The unit templates, with the role's defaults and vars, are the units the image had as
    plain files (tests/fixtures/units), below Ansible's managed header."""
    names = sorted(p.name for p in UNITS.glob("*.service"))
    assert names == ["picorder-panel.service", "picorder-recorder.service"]
    for name, text in render_units(names, tmp_path).items():
        header = "#\n# Ansible managed\n#\n"
        assert text.startswith(header), text[:200]
        assert text[len(header):] == (UNITS / name).read_text(), name
