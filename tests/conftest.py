"""Fixtures shared by every test: data directories and simulated cameras."""

import shutil

import pytest

from helpers.mp4 import require_ffmpeg
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


@pytest.fixture
def ffmpeg_available():
    require_ffmpeg()
    assert shutil.which(SYSTEM_PYTHON)
