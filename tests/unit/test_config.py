"""Camera validation and the camera CLI on a real config.db."""

import json
import stat

import pytest

from recorder import config
from picorder.cli import main
from recorder.config import ConfigError, split_credentials, validate_camera


def test_credentials_are_split_out_of_the_url():
    assert split_credentials("rtsp://ad%40min:p%3Ass@10.0.0.2:554/s1") == (
        "rtsp://10.0.0.2:554/s1", "ad@min", "p:ss")


@pytest.mark.parametrize("url", ["", "rtsp//x", "ftp://h/x", "rtsp://", "rtsp://h:99999/x",
                                 "rtsp://h/ x", "rtsp://[::1/x", "rtsp://h/\x00"])
def test_malformed_urls_get_a_clear_error(url):
    with pytest.raises(ConfigError) as exc:
        validate_camera({"name": "a", "main_url": url})
    assert "main_url" in exc.value.errors


def test_bad_name_and_negative_retention():
    with pytest.raises(ConfigError) as exc:
        validate_camera({"name": "Bad Name", "main_url": "rtsp://h/x", "max_age_days": -1,
                         "max_bytes": 0})
    assert set(exc.value.errors) == {"name", "max_age_days", "max_bytes"}


def run(data, *argv):
    return main(["--data", str(data), *argv])


def test_camera_cli_round_trip(tmp_path, capsys):
    pw = tmp_path / "pw"
    pw.write_text("hunter22\n")
    assert run(tmp_path, "camera", "add", "front", "rtsp://10.0.0.5/s1", "--user", "admin",
               "--password-file", str(pw), "--sub", "rtsp://10.0.0.5/s2") == 0
    assert run(tmp_path, "camera", "set", "front", "--transport", "udp") == 0
    capsys.readouterr()
    assert run(tmp_path, "camera", "list", "--json") == 0
    out = capsys.readouterr().out
    cams = json.loads(out)
    assert cams[0]["transport"] == "udp" and cams[0]["has_password"]
    assert "hunter22" not in out
    assert stat.S_IMODE((tmp_path / "config.db").stat().st_mode) == 0o600
    assert config.Camera.get_by_name("front").password == "hunter22"
    assert run(tmp_path, "camera", "remove", "front") == 0
    assert run(tmp_path, "camera", "remove", "front") == 2
    assert "no camera named 'front'" in capsys.readouterr().err


def test_duplicate_and_unknown(tmp_path, capsys):
    assert run(tmp_path, "camera", "add", "a", "rtsp://h/x") == 0
    assert run(tmp_path, "camera", "add", "a", "rtsp://h/y") == 2
    assert run(tmp_path, "camera", "set", "nope", "--transport", "tcp") == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "no camera named 'nope'" in err


def test_import_inherits_defaults_and_rejects_bad_toml(tmp_path, capsys):
    good = tmp_path / "cams.toml"
    good.write_text('[defaults]\ntransport = "udp"\n\n[cameras.door]\nurl = "rtsp://h/1"\n'
                    '[cameras.yard]\nurl = "rtsp://h/2"\ntransport = "tcp"\n')
    assert run(tmp_path, "import", str(good)) == 0
    assert config.Camera.get_by_name("door").transport == "udp"
    assert config.Camera.get_by_name("yard").transport == "tcp"
    bad = tmp_path / "bad.toml"
    bad.write_text("[defaults\n")
    assert run(tmp_path, "import", str(bad)) == 2
    half = tmp_path / "half.toml"
    half.write_text('[cameras.ok]\nurl = "rtsp://h/1"\n[cameras.BAD]\nurl = "x"\n')
    assert run(tmp_path, "import", str(half)) == 2
    assert config.Camera.get_or_none(config.Camera.name == "ok") is None
    assert "nothing imported" in capsys.readouterr().err
