"""Fixtures shared by every test: data directories and simulated cameras."""

import shutil

import pytest

from recorder.paths import DataPaths
from recorder.sim.launcher import SYSTEM_PYTHON, SimCameras


@pytest.fixture
def data_paths(tmp_path) -> DataPaths:
    """A fresh, empty picorder data directory."""
    paths = DataPaths(tmp_path / "data")
    paths.ensure()
    return paths


@pytest.fixture
def sim_cameras():
    """Factory for simulated RTSP cameras, stopped at the end of the test."""
    started = []

    def start(**kwargs) -> SimCameras:
        sim = SimCameras(**kwargs).start()
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.stop()


def need_ffmpeg():
    if not shutil.which("ffmpeg"):
        pytest.fail("ffmpeg is not installed: run `make test`, which installs it")


@pytest.fixture
def ffmpeg_available():
    need_ffmpeg()
    assert shutil.which(SYSTEM_PYTHON)
