"""Tests of the first-boot picorder.txt parser, its application and its scrubbing."""

import logging
import stat

import pytest

from picorder import firstboot
from recorder import config
from picorder.firstboot import Target, parse


@pytest.fixture
def box(tmp_path):
    """A fake root with a zoneinfo file, a data directory and a firmware partition."""
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/hosts").write_text("127.0.0.1\tlocalhost\n127.0.1.1\tpicorder\n")
    zone = root / "usr/share/zoneinfo/Europe/London"
    zone.parent.mkdir(parents=True)
    zone.write_bytes(b"TZif2")
    firmware = tmp_path / "firmware"
    firmware.mkdir()
    target = Target(root=root, data=tmp_path / "data", owner=None,
                    hostname_proc=tmp_path / "proc_hostname", run_systemctl=False)
    return target, firmware


def write_txt(firmware, text: str, crlf: bool = False):
    path = firmware / "picorder.txt"
    path.write_bytes((text.replace("\n", "\r\n") if crlf else text).encode())
    return path


def users():
    from recorder.accounts import User
    return {u.username: u for u in User.select()}


def test_crlf_file_is_applied_and_scrubbed_keeping_crlf(box, caplog):
    target, firmware = box
    path = write_txt(firmware, "# my box\nhostname=Garage\nadmin_password=s3cret-pass!\n"
                               "timezone=Europe/London\n", crlf=True)
    problems = firstboot.run(path, target)
    assert problems == []
    assert (target.root / "etc/hostname").read_text() == "garage\n"
    assert "127.0.1.1\tgarage" in (target.root / "etc/hosts").read_text()
    assert target.hostname_proc.read_text() == "garage"
    assert (target.root / "etc/localtime").readlink().as_posix() == "/usr/share/zoneinfo/Europe/London"
    assert users()["admin"].check_password("s3cret-pass!")
    assert users()["admin"].is_admin
    raw = path.read_bytes()
    assert b"s3cret" not in raw
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    assert b"hostname=Garage" in raw and b"# my box" in raw
    assert b"applied and removed admin_password" in raw
    assert "s3cret" not in caplog.text


def test_unknown_keys_and_junk_lines_are_logged_and_the_rest_applied(box, caplog):
    target, firmware = box
    path = write_txt(firmware, "colour=blue\nthis line has no equals sign\nhostname=cam-box\n")
    with caplog.at_level(logging.WARNING, logger="picorder.firstboot"):
        problems = firstboot.run(path, target)
    messages = [str(p) for p in problems]
    assert any("line 1: unknown key 'colour'" in m for m in messages)
    assert any("line 2: not a key=value line" in m for m in messages)
    assert "unknown key 'colour'" in caplog.text
    assert (target.root / "etc/hostname").read_text() == "cam-box\n"
    text = path.read_text()
    assert "colour=blue" in text                      # the user's lines stay
    assert "problem: line 1: unknown key 'colour' (ignored)" in text


def test_bad_wifi_entry_is_refused_and_everything_else_still_applies(box):
    target, firmware = box
    path = write_txt(firmware, "wifi_ssid=Home\nwifi_psk=short\nhostname=shed\n"
                               "admin_password=long-enough-pw\n")
    problems = firstboot.run(path, target)
    assert [p.line for p in problems] == [2]
    assert "wifi_psk must be 8-63 printable ASCII" in str(problems[0])
    assert not (target.root / "etc/wpa_supplicant").exists()
    assert (target.root / "etc/hostname").read_text() == "shed\n"
    assert users()["admin"].check_password("long-enough-pw")
    assert "short" not in path.read_text().replace("problem", "")


@pytest.mark.parametrize("lines, needle", [
    ("wifi_psk=12345678\n", "wifi_psk without wifi_ssid"),
    ("wifi_ssid=Home\n", "without wifi_psk"),
    ("wifi_ssid=" + "x" * 33 + "\nwifi_psk=12345678\n", "1-32 bytes"),
    ("wifi_ssid=Home\nwifi_psk=12345678\nwifi_country=Britain\n", "two-letter country"),
])
def test_each_kind_of_bad_wifi_is_reported(lines, needle):
    cfg = parse(lines)
    assert cfg.wifi is None
    assert any(needle in str(p) for p in cfg.problems)


def test_good_wifi_writes_a_private_wpa_supplicant_file_without_the_passphrase(box):
    target, firmware = box
    path = write_txt(firmware, 'wifi_country=gb\nwifi_ssid="IEEE"\nwifi_psk=password\n')
    assert firstboot.run(path, target) == []
    conf = target.root / "etc/wpa_supplicant/wpa_supplicant-wlan0.conf"
    text = conf.read_text()
    # IEEE 802.11i annex H.4 test vector: passphrase "password", SSID "IEEE".
    assert "psk=f42c6fc52df0ebef9ebb4b90b38a5f902e83fe1b135a70e23aed762e9710a12e" in text
    assert f"ssid={b'IEEE'.hex()}" in text and "country=GB" in text
    assert "password" not in text
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600
    wants = target.root / "etc/systemd/system/multi-user.target.wants/wpa_supplicant@wlan0.service"
    assert wants.is_symlink()
    scrubbed = path.read_text()
    assert "wifi_psk" not in scrubbed.split("applied and removed")[0]
    assert "wifi_ssid=\"IEEE\"" in scrubbed


def test_admin_password_hash_is_stored_as_given(box):
    from werkzeug.security import generate_password_hash
    target, firmware = box
    hashed = generate_password_hash("from-a-hash-1", method="pbkdf2:sha256:1000")
    path = write_txt(firmware, f"admin_user=boss\nadmin_password_hash={hashed}\n")
    assert firstboot.run(path, target) == []
    assert users()["boss"].check_password("from-a-hash-1")
    assert hashed not in path.read_text()


def test_too_short_admin_password_is_a_problem_not_a_crash(box):
    target, firmware = box
    path = write_txt(firmware, "admin_password=abc\nhostname=ok\n")
    problems = firstboot.run(path, target)
    assert any("admin account not set" in str(p) for p in problems)
    assert "admin" not in users()
    assert (target.root / "etc/hostname").read_text() == "ok\n"


def test_bad_values_are_ignored_one_by_one():
    cfg = parse("hostname=-bad-\ntimezone=../../etc/passwd\nadmin_password_hash=md5$x\n"
                "root_authorized_key=not a key\ncameras_file=../x.toml\ncamera=Bad Name\n"
                "hostname=good\n")
    assert cfg.hostname == "good"
    assert cfg.timezone is None and cfg.admin_password_hash is None
    assert cfg.root_authorized_key is None and cfg.cameras_file is None
    assert cfg.cameras == []
    texts = " | ".join(str(p) for p in cfg.problems)
    for needle in ("hostname given again", "not a zone name", "scrypt: or pbkdf2:",
                   "not an OpenSSH public key", "cameras_file must be", "camera must be"):
        assert needle in texts


def test_unknown_timezone_is_reported_when_applied(box):
    target, firmware = box
    path = write_txt(firmware, "timezone=Mars/Olympus\n")
    problems = firstboot.run(path, target)
    assert [str(p) for p in problems] == ["timezone 'Mars/Olympus' is unknown (ignored)"]
    assert not (target.root / "etc/localtime").exists()


def test_cameras_are_added_and_their_credentials_leave_the_card(box, caplog):
    target, firmware = box
    (firmware / "cams.toml").write_text(
        '[defaults]\ntransport = "tcp"\n[cameras.yard]\nurl = "rtsp://10.0.0.9/s"\n')
    path = write_txt(firmware, "camera=door rtsp://viewer:pa55word@10.0.0.8:554/main\n"
                               "camera=gate not-a-url\ncameras_file=cams.toml\n")
    problems = firstboot.run(path, target)
    assert [p.line for p in problems] == [2]
    cams = {c.name: c for c in config.Camera.select()}
    assert set(cams) == {"door", "yard"}
    assert cams["door"].main_url == "rtsp://10.0.0.8:554/main"
    assert cams["door"].username == "viewer" and cams["door"].password == "pa55word"
    text = path.read_text()
    assert "pa55word" not in text and "camera=" not in text
    assert "pa55word" not in caplog.text


def test_authorized_key_is_added_once(box):
    target, firmware = box
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGnKk0Xm test@host"
    for _ in range(2):
        path = write_txt(firmware, f"root_authorized_key={key}\n")
        assert firstboot.run(path, target) == []
    keys = (target.root / "root/.ssh/authorized_keys").read_text().splitlines()
    assert keys == [key]
    assert stat.S_IMODE((target.root / "root/.ssh/authorized_keys").stat().st_mode) == 0o600


def test_scrubbed_file_reapplies_cleanly(box):
    target, firmware = box
    path = write_txt(firmware, "hostname=twice\nadmin_password=long-enough-pw\nfoo=1\n")
    firstboot.run(path, target)
    first = path.read_text()
    problems = firstboot.run(path, target)
    assert [str(p) for p in problems] == ["line 2: unknown key 'foo' (ignored)"]
    second = path.read_text()
    assert second.count("# picorder first boot") == 1      # old notes replaced, not piled up
    assert first.splitlines()[:2] == second.splitlines()[:2]


def test_main_without_a_file_only_prepares_the_data_directory(tmp_path):
    data = tmp_path / "data"
    assert firstboot.main(["--file", str(tmp_path / "missing.txt"), "--data", str(data),
                           "--owner", "root"]) == 0
    assert (data / "config.db").is_file()


def test_a_failing_step_is_a_problem_and_the_secrets_still_leave_the_card(box, monkeypatch):
    target, firmware = box

    def broken(*_args):
        raise ValueError("[digital envelope routines] unsupported")
    monkeypatch.setattr(firstboot, "apply_admin", broken)
    path = write_txt(firmware, "admin_password=long-enough-pw\nhostname=still-set\n")
    problems = firstboot.run(path, target)
    assert [str(p) for p in problems] == ["admin account not applied (ValueError, see the log)"]
    assert "long-enough-pw" not in path.read_text()
    assert (target.root / "etc/hostname").read_text() == "still-set\n"



def test_a_run_opens_config_db_once(box, monkeypatch):
    """Admin, setup code, cameras and the data directory's owner: one open of config.db
    (each open migrates, after a copy when the schema is old)."""
    import pwd
    import os
    from dataclasses import replace
    target, firmware = box
    target = replace(target, owner=pwd.getpwuid(os.getuid()).pw_name)
    opened = []
    real_open = config.open_config
    monkeypatch.setattr(config, "open_config", lambda path: opened.append(path) or real_open(path))
    path = write_txt(firmware, "admin_password=long-enough-pw\nsetup_code=abc-123-def\n"
                               "camera=cam1 rtsp://10.0.0.3/s\n")
    assert firstboot.run(path, target) == []
    assert opened == [target.data / "config.db"]
    assert users()["admin"].check_password("long-enough-pw")
    assert [c.name for c in config.Camera.select()] == ["cam1"]


def test_config_db_that_cannot_be_opened_is_one_problem_and_the_secrets_leave(box, monkeypatch):
    target, firmware = box

    def broken(path):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(config, "open_config", broken)
    path = write_txt(firmware, "admin_password=long-enough-pw\ncamera=cam1 rtsp://u:pw9@10.0.0.3/s\n"
                               "hostname=still-set\n")
    problems = firstboot.run(path, target)
    assert [str(p) for p in problems] == [
        "config.db not opened (OSError, see the log): admin account, cameras not applied"]
    assert "long-enough-pw" not in path.read_text() and "pw9" not in path.read_text()
    assert (target.root / "etc/hostname").read_text() == "still-set\n"


def test_first_boot_sets_the_admin_password_without_importing_flask(tmp_path):
    """The first-boot step runs before the panel at every boot with a picorder.txt;
    Flask's import costs seconds on a Pi, so it must not come with the user model."""
    import subprocess
    import sys
    (tmp_path / "etc").mkdir()
    (tmp_path / "fw").mkdir()
    (tmp_path / "fw" / "picorder.txt").write_text(
        "admin_password=first-boot-pw\ncamera=cam1 rtsp://10.0.0.9/stream1\n")
    code = """if True:
        import sys
        from pathlib import Path
        from picorder.firstboot import Target, run
        root = Path(sys.argv[1])
        target = Target(root=root, data=root / "data", owner=None,
                        hostname_proc=root / "hostname", run_systemctl=False)
        assert run(root / "fw" / "picorder.txt", target) == []
        from recorder.accounts import User
        assert User.get(User.username == "admin").check_password("first-boot-pw")
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("flask", "jinja2")))
    """
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "[]", out.stdout


# ------------------------------------------------------------------ L6 (security review)

def test_a_camera_value_like_an_option_drops_no_other_camera(box):
    target, firmware = box
    path = write_txt(firmware, "camera=cam1 --help\ncamera=cam2 --password-file=/etc/shadow\n"
                               "camera=cam3 rtsp://u:pw3@10.0.0.3/s\n")
    problems = firstboot.run(path, target)
    assert [c.name for c in config.Camera.select()] == ["cam3"]
    text = path.read_text()
    assert "line 1: camera cam1: the URL must start with" in text
    assert "line 2: camera cam2: the URL must start with" in text
    assert "pw3" not in text and len(problems) == 2


def test_a_refused_camera_is_a_problem_with_its_reason_and_the_others_are_added(box):
    target, firmware = box
    (firmware / "cams.toml").write_text('[cameras.cam2]\nurl = "rtsp://10.0.0.9/other"\n')
    cfg = firstboot.BootConfig(cameras=[firstboot.CameraEntry("cam1", "--help", 1),
                                        firstboot.CameraEntry("cam2", "rtsp://10.0.0.2/s", 2),
                                        firstboot.CameraEntry("cam2", "rtsp://10.0.0.3/s", 3)],
                               cameras_file="cams.toml")
    firstboot.open_box_config(target.data)          # as apply() does, once per run
    problems = firstboot.apply_cameras(target, cfg, firmware)
    assert [str(p) for p in problems] == [
        "line 1: camera cam1 not added: main_url: the URL must start with one of rtsp://, "
        "rtsps://, http://, https://",
        "line 3: camera cam2 not added: name: a camera named 'cam2' already exists"]
    # The file's camera of the same name updates it (as `picorder import` does).
    assert [(c.name, c.main_url) for c in config.Camera.select()] == [
        ("cam2", "rtsp://10.0.0.9/other")]


def test_an_oversized_file_is_not_read_whole_applied_or_cut(box):
    import tracemalloc
    target, firmware = box
    filler = ("# " + "x" * 1020 + "\n") * 8 * 1024                   # 8 MiB of comments
    original = ("admin_password=s3cret-pass!\n" + filler + "wifi_psk=late-secret\n").encode()
    path = firmware / "picorder.txt"
    path.write_bytes(original)
    tracemalloc.start()
    try:
        problems = firstboot.run(path, target)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 * 1024 * 1024, peak
    assert [p.message for p in problems] == [problems[0].message]
    assert "larger than 64 KiB: nothing in it was applied" in problems[0].message
    data = path.read_bytes()
    assert data.startswith(original)                                 # nothing lost
    assert data[len(original):].startswith(b"# picorder first boot ")
    assert b"larger than 64 KiB" in data[len(original):]
    assert not (target.data / "config.db").exists() or not users()
    firstboot.run(path, target)                                     # the next boot
    assert path.read_bytes() == data                                # says it once


def test_a_mistyped_secret_line_leaves_the_card(box):
    target, firmware = box
    path = write_txt(firmware, "hostname=garage\nadmin_password:typo-secret\n"
                               "admin_pasword=other-secret\n# admin_password=commented\n")
    problems = firstboot.run(path, target)
    text = path.read_text()
    assert "typo-secret" not in text and "other-secret" not in text
    assert "# admin_password=commented" in text and "hostname=garage" in text
    assert "line 2: looks like a secret" in text and "line 3: looks like a secret" in text
    assert len(problems) == 2
