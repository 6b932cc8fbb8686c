"""Camera validation and the camera CLI on a real config.db."""

import json
import sqlite3
import stat

import pytest

from picorder.cli import main
from recorder import accounts, config
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


def test_a_camera_keeps_its_name_and_the_display_name_changes_instead(tmp_path, capsys):
    assert run(tmp_path, "camera", "add", "front", "rtsp://h/x") == 0
    assert run(tmp_path, "camera", "set", "front", "--rename", "garage", "--transport", "udp") == 2
    assert "name: a camera's name cannot change: its recordings are filed under it" in (
        capsys.readouterr().err)
    cam = config.Camera.get_by_name("front")
    assert cam.transport == "tcp" and config.Camera.select().count() == 1
    assert run(tmp_path, "camera", "set", "front", "--display-name", "Garage") == 0
    assert config.Camera.get_by_name("front").display_name == "Garage"


def test_save_camera_is_one_rule_for_every_caller(tmp_path):
    config.open_config(tmp_path / "config.db")
    try:
        cam = config.save_camera({"name": "door", "main_url": "rtsp://u:pw@h/1"})
        assert (cam.username, cam.password, cam.updated_at is not None) == ("u", "pw", True)
        with pytest.raises(config.CameraNameTaken) as taken:
            config.save_camera({"name": "door", "main_url": "rtsp://h/2"})
        assert taken.value.errors == {"name": "a camera named 'door' already exists"}
        with pytest.raises(ConfigError) as renamed:
            config.save_camera({"name": "gate", "transport": "carrier pigeon"}, cam)
        assert renamed.value.errors == {"name": config.NAME_IS_FIXED,
                                        "transport": "must be 'tcp' or 'udp'"}
        assert config.save_camera({"name": "door", "enabled": False}, cam).enabled is False
        assert [(c.name, c.enabled) for c in config.Camera.select()] == [("door", False)]
    finally:
        config.db.close()


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


# config.db as schema version 1 wrote it: no activity column, no account tables.
CONFIG_V1 = """
    CREATE TABLE camera (id INTEGER NOT NULL PRIMARY KEY, name VARCHAR(255) NOT NULL,
        display_name VARCHAR(255) NOT NULL, main_url TEXT NOT NULL, sub_url TEXT,
        username VARCHAR(255), password VARCHAR(255), transport VARCHAR(255) NOT NULL,
        enabled INTEGER NOT NULL, max_age_days INTEGER, max_bytes INTEGER,
        min_days INTEGER, updated_at DATETIME);
    CREATE UNIQUE INDEX camera_name ON camera (name);
    CREATE TABLE setting (key VARCHAR(255) NOT NULL PRIMARY KEY, value TEXT NOT NULL);
    INSERT INTO camera VALUES (1, 'front', '', 'rtsp://h/x', NULL, NULL, NULL, 'tcp',
        1, NULL, NULL, NULL, NULL);
    PRAGMA user_version = 1;"""
# Version 2 added the activity switch; the account tables came only when the panel opened it.
CONFIG_V2 = CONFIG_V1.replace("PRAGMA user_version = 1;", """
    ALTER TABLE camera ADD COLUMN activity INTEGER NOT NULL DEFAULT 1;
    PRAGMA user_version = 2;""")


def old_config(path, script: str) -> None:
    with sqlite3.connect(path) as conn:
        conn.executescript(script)
    conn.close()


def test_config_v1_gets_the_activity_switch_on(tmp_path):
    old_config(tmp_path / "config.db", CONFIG_V1)
    try:
        config.open_config(tmp_path / "config.db")
        assert config.Camera.get(config.Camera.name == "front").activity is True
    finally:
        config.db.close()


def test_a_config_db_without_account_tables_gets_them_and_keeps_its_cameras(tmp_path):
    """A v2 config.db as the CLI or the recorder alone left it (the panel never opened it)."""
    path = tmp_path / "config.db"
    old_config(path, CONFIG_V2)
    try:
        config.open_config(path)
        assert config.db.execute_sql("PRAGMA user_version").fetchone()[0] == len(config.MIGRATIONS)
        assert config.Camera.get_by_name("front").main_url == "rtsp://h/x"
        user = accounts.User(username="admin", role="admin")
        user.set_password("longenough1", "pbkdf2:sha256:1000")
        user.save()
        _row, token = accounts.ApiToken.issue("prometheus", "viewer")
        assert accounts.ApiToken.lookup(token).name == "prometheus"
        assert set(config.db.get_tables()) >= {m._meta.table_name for m in config.CONFIG_MODELS}
    finally:
        config.db.close()
    with sqlite3.connect(tmp_path / "config.db.bak-v2") as backup:
        assert backup.execute("SELECT name FROM camera").fetchall() == [("front",)]
    backup.close()


def test_a_fresh_config_db_has_every_table_without_importing_the_panel(tmp_path):
    import subprocess
    import sys
    code = ("import sys; from pathlib import Path; from recorder import config; "
            "config.open_config(Path(sys.argv[1])); "
            "print(sorted(config.db.get_tables()), "
            "sorted(m for m in sys.modules if m.split('.')[0] in ('webpanel', 'flask')))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "config.db")],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == ("['apitoken', 'camera', 'loginattempt', 'sessiongeneration', "
                           "'setting', 'user'] []")
