"""`picorder demo` logs to DATA/recorder.log (rotated, redacted) and the System page shows it."""

import logging

import pytest

from helpers.panel import admin_session, make_app
from recorder import limits
from picorder.cli.service import DEMO_LOG_NAME, demo_log_file
from recorder.paths import DataPaths


@pytest.fixture
def demo_log(tmp_path):
    paths = DataPaths(tmp_path / "data")
    paths.ensure()
    handler = demo_log_file(paths)
    logger = logging.getLogger("recorder.demo_test")
    logger.setLevel(logging.INFO)
    yield paths, logger
    logging.getLogger().removeHandler(handler)
    handler.close()


def test_lines_are_written_redacted(demo_log):
    paths, logger = demo_log
    logger.info("cam1/main: cannot open %s", "rtsp://admin:s3cret-pw@10.0.0.9/stream")
    logger.warning("cam1/main: STARTING -> RUNNING")
    text = (paths.root / DEMO_LOG_NAME).read_text()
    assert "cam1/main: STARTING -> RUNNING" in text
    assert "rtsp://***@10.0.0.9/stream" in text and "s3cret-pw" not in text


def test_the_file_rotates_at_its_cap(demo_log):
    paths, logger = demo_log
    line = "x" * 1000
    for _ in range(limits.DEMO_LOG_BYTES // 1000 * (limits.DEMO_LOG_BACKUPS + 2)):
        logger.info(line)
    files = sorted(paths.root.glob(DEMO_LOG_NAME + "*"))
    assert len(files) == limits.DEMO_LOG_BACKUPS + 1
    assert all(f.stat().st_size <= limits.DEMO_LOG_BYTES + 2000 for f in files)


def test_the_system_page_shows_recent_lines(tmp_path, demo_log):
    paths, logger = demo_log
    for n in range(300):
        logger.info("demo line %d", n)
    logger.error("cam2/sub: unreachable via rtsp://bob:hunter22@cam2.lan/sub")
    app = make_app(tmp_path)                      # DATA_DIR is tmp_path/"data" = paths.root
    assert app.config["DATA_DIR"] == str(paths.root)
    page = admin_session(app).get("/system", headers={"Accept": "text/html"}).get_data(
        as_text=True)
    assert "demo line 299" in page and "cam2/sub: unreachable via rtsp://***@cam2.lan/sub" in page
    assert "demo line 0\n" not in page            # only the recent ones
    assert "hunter22" not in page


def test_an_unwritable_log_file_is_reported_not_fatal(tmp_path, caplog):
    paths = DataPaths(tmp_path / "data")
    paths.ensure()
    (paths.root / DEMO_LOG_NAME).mkdir()                  # a directory where the file goes
    before = list(logging.getLogger().handlers)
    assert demo_log_file(paths) is None
    assert logging.getLogger().handlers == before
    assert "logging to the terminal only" in caplog.text
