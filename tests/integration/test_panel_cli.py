"""`picorder panel` runs the panel under gunicorn with gunicorn.conf.py."""

import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from recorder.sim.launcher import PROJECT_ROOT, free_port

pytestmark = pytest.mark.integration


def test_picorder_panel_serves_the_first_run_setup(tmp_path):
    port = free_port()
    data = tmp_path / "data"
    proc = subprocess.Popen([sys.executable, "-m", "picorder", "panel", "--data", str(data),
                             "--bind", f"127.0.0.1:{port}"], cwd=PROJECT_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/auth/setup", timeout=2) as r:
                    page = r.read().decode()
                break
            except (urllib.error.URLError, ConnectionError):
                assert proc.poll() is None, proc.stdout.read()
                assert time.monotonic() < deadline, "the panel did not start"
                time.sleep(0.2)
        assert "Create the admin account" in page or "admin" in page.lower()
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=5)
        assert refused.value.code == 401
        assert (data / "secret_key").stat().st_mode & 0o777 == 0o600
        assert (data / "config.db").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    assert "gthread" in out                      # gunicorn.conf.py was used
