"""The simulated cameras check their GStreamer elements at start, and so the demo fails at start.

A machine without gstreamer1.0-x is made by pointing GStreamer at a copy of the system's
plugin directory without the Pango plugin (timeoverlay, textoverlay), with its own registry.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from recorder.sim.launcher import SYSTEM_PYTHON, free_port
from helpers.recorder import PROJECT

pytestmark = pytest.mark.integration

MISSING = "GStreamer elements missing: timeoverlay, textoverlay (install gstreamer1.0-x)"
START_S = 30


@pytest.fixture
def env_without_pango(tmp_path) -> dict[str, str]:
    """An environment in which GStreamer has every system plugin but Pango's."""
    pango = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import gi; gi.require_version('Gst', '1.0');"
         "from gi.repository import Gst; Gst.init(None);"
         "print(Gst.Registry.get().find_plugin('pango').get_filename())"],
        capture_output=True, text=True, check=True).stdout.strip()
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    for lib in Path(pango).parent.glob("*.so"):
        if lib.name != Path(pango).name:
            (plugins / lib.name).symlink_to(lib)
    return dict(os.environ, GST_PLUGIN_SYSTEM_PATH_1_0=str(plugins), GST_PLUGIN_PATH_1_0="",
                GST_REGISTRY_1_0=str(tmp_path / "registry.bin"), PYTHONPATH=str(PROJECT))


def sim(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([SYSTEM_PYTHON, "-m", "recorder.sim.rtsp_server", *args],
                          capture_output=True, text=True, env=env, timeout=START_S)


def test_the_element_check_passes_where_every_element_is_installed():
    done = sim("--check-elements", env=dict(os.environ, PYTHONPATH=str(PROJECT)))
    assert (done.returncode, done.stdout) == (0, "OK\n"), done.stderr


def first_line(*args: str, env: dict[str, str]) -> str:
    """What the simulated camera says first when started with these options."""
    proc = subprocess.Popen([SYSTEM_PYTHON, "-m", "recorder.sim.rtsp_server", "--port",
                             str(free_port()), *args], stdout=subprocess.PIPE, text=True,
                            env=env)
    try:
        return proc.stdout.readline()
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()


@pytest.mark.parametrize("codec", ["h264", "hevc", "vp8"])
def test_every_codec_passes_the_check_and_serves(codec):
    env = dict(os.environ, PYTHONPATH=str(PROJECT))
    assert first_line("--codec", codec, env=env).startswith("READY")


def test_the_simulated_camera_names_its_missing_elements_and_their_package(env_without_pango):
    done = sim("--port", str(free_port()), "--cameras", "1", env=env_without_pango)
    assert (done.returncode, done.stdout) == (2, f"ERROR {MISSING}\n")


def test_a_clip_server_needs_no_overlay(env_without_pango, tmp_path):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"")
    assert first_line("--clip", str(clip), env=env_without_pango).startswith("READY")


def test_the_demo_stops_at_start_with_the_cameras_error(env_without_pango, tmp_path):
    data = tmp_path / "data"
    done = subprocess.run(
        [sys.executable, "-m", "picorder", "demo", "--data", str(data), "--cameras", "1",
         "--panel-port", str(free_port())],
        capture_output=True, text=True, env=env_without_pango, cwd=PROJECT, timeout=START_S)
    assert done.returncode == 2
    assert done.stderr.strip().endswith(
        f"picorder: error: simulated cameras cannot start: {MISSING}"), done.stderr
    assert "running" not in done.stdout


def test_setup_stops_naming_the_missing_elements_and_package(env_without_pango):
    done = subprocess.run([str(PROJECT / "scripts" / "setup.sh"), "demo", "--check"],
                          capture_output=True, text=True, env=env_without_pango, timeout=START_S)
    assert done.returncode == 1
    assert done.stderr == ("setup: demo cannot run on this machine; missing:\n"
                           f"  - simulated cameras: {MISSING}\n")
