"""End-to-end fixtures: simulated cameras, the real recorder and the panel under gunicorn, Chromium.

One stack is shared by every test of a module (recordings need minutes of video),
with short segments so that the index follows closely behind the cameras.
"""

from pathlib import Path

import pytest

from e2e_support import CHROMIUM, CHROMIUM_ARGS, running_stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """Simulated cameras + `picorder recorder` + the panel under gunicorn, on a fresh box."""
    with running_stack(tmp_path_factory.mktemp("e2e")) as st:
        yield st


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed: run `make test`, which installs it")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


