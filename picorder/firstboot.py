"""First boot of the appliance: apply picorder.txt from the firmware partition, then scrub it.

picorder.txt is a key=value file the user edits on their PC after flashing the SD
card. Each valid setting is applied; each problem (unknown key, bad value, bad Wi-Fi
entry) is logged and written back into the file as a comment, and the rest still
applies. Secrets (passwords, the Wi-Fi passphrase, camera URLs) are removed from the
file once applied, so the card never keeps them.

Run by picorder-firstboot.service as `python -m picorder.firstboot`; the recorder
service runs `python -m picorder.firstboot --prepare-data` before it starts.
"""

import argparse
import hashlib
import logging
import os
import pwd
import re
import stat
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

logger = logging.getLogger(__name__)

DEFAULT_FILE = Path("/boot/firmware/picorder.txt")
DEFAULT_DATA = Path("/var/lib/picorder")
DEFAULT_OWNER = "picorder"
MAX_FILE_BYTES = 64 * 1024
SETUP_CODE_MIN_LENGTH = 6
WIFI_IFACE = "wlan0"

KNOWN_KEYS = {
    "hostname", "timezone", "admin_user", "admin_password", "admin_password_hash",
    "wifi_country", "wifi_ssid", "wifi_psk", "camera", "cameras_file",
    "root_authorized_key", "setup_code",
}
SECRET_KEYS = {"admin_password", "admin_password_hash", "wifi_psk", "setup_code"}
REPEATABLE_KEYS = {"camera"}
ONE_SHOT_KEYS = SECRET_KEYS | {"camera", "cameras_file"}

HOSTNAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
TIMEZONE_RE = re.compile(r"^[A-Za-z0-9_+-]+(?:/[A-Za-z0-9_+-]+)*$")
COUNTRY_RE = re.compile(r"^[A-Z]{2}$")
HEX_PSK_RE = re.compile(r"^[0-9a-fA-F]{64}$")
USERNAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
HASH_PREFIXES = ("scrypt:", "pbkdf2:")
SSH_KEY_RE = re.compile(r"^(ssh-(ed25519|rsa)|ecdsa-sha2-nistp\d+|sk-\S+) [A-Za-z0-9+/=]+( .*)?$")
# A line that is no known key=value but holds one of these looks like a mistyped
# secret (`admin_password:x`, `admin_pasword=x`): it leaves the card too.
SECRET_HINTS = ("pass", "psk", "secret")


@dataclass
class Problem:
    """One problem found in picorder.txt; never carries a secret value."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


@dataclass
class CameraEntry:
    name: str
    url: str
    line: int


@dataclass
class WifiConfig:
    ssid: str
    psk_hex: str
    country: str | None


@dataclass
class BootConfig:
    """The valid settings of a picorder.txt, and what was wrong with the rest."""

    hostname: str | None = None
    timezone: str | None = None
    admin_user: str = "admin"
    admin_password: str | None = None
    admin_password_hash: str | None = None
    wifi: WifiConfig | None = None
    cameras: list[CameraEntry] = field(default_factory=list)
    cameras_file: str | None = None
    root_authorized_key: str | None = None
    setup_code: str | None = None       # the first visit must give it to create the admin
    problems: list[Problem] = field(default_factory=list)
    crlf: bool = False


# ------------------------------------------------------------------ parsing

def split_lines(text: str) -> tuple[list[str], bool]:
    """Split on any line ending; say whether the file used CRLF."""
    crlf = "\r\n" in text
    text = text.lstrip("\ufeff")
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n"), crlf


def mistyped_secret(raw: str) -> bool:
    """The line is not a known key=value setting but looks as if it holds a secret."""
    line = raw.strip()
    if not line or line.startswith("#"):
        return False
    key, sep, _value = line.partition("=")
    if sep and key.strip().lower() in KNOWN_KEYS:
        return False
    return any(hint in line.lower() for hint in SECRET_HINTS)


def read_pairs(lines: list[str], problems: list[Problem]) -> list[tuple[int, str, str]]:
    """(line number, lower-case key, value) for each key=value line."""
    pairs = []
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key = key.strip().lower()
        if mistyped_secret(line):
            problems.append(Problem(number, "looks like a secret but is not a known key=value "
                                            "setting: not applied, and removed from this file"))
            continue
        if not sep or not key:
            problems.append(Problem(number, "not a key=value line (ignored)"))
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        pairs.append((number, key, value))
    return pairs


def wifi_psk_hex(ssid: str, passphrase: str) -> str:
    """WPA2 pre-shared key from the passphrase (IEEE 802.11i PBKDF2), as wpa_supplicant wants."""
    if HEX_PSK_RE.match(passphrase):
        return passphrase.lower()
    key = hashlib.pbkdf2_hmac("sha1", passphrase.encode(), ssid.encode(), 4096, 32)
    return key.hex()


def check_wifi(values: dict[str, tuple[int, str]], problems: list[Problem]) -> WifiConfig | None:
    """A valid Wi-Fi network, or None with the reasons logged as problems."""
    if "wifi_ssid" not in values and "wifi_psk" not in values:
        return None
    line_ssid, ssid = values.get("wifi_ssid", (0, ""))
    line_psk, psk = values.get("wifi_psk", (0, ""))
    line_country, country = values.get("wifi_country", (0, ""))
    bad = []
    if not ssid:
        bad.append(Problem(line_psk, "wifi_psk without wifi_ssid: Wi-Fi not configured"))
    elif len(ssid.encode()) > 32 or any(ord(c) < 32 for c in ssid):
        bad.append(Problem(line_ssid, "wifi_ssid must be 1-32 bytes without control characters: "
                                      "Wi-Fi not configured"))
    if ssid and not psk:
        bad.append(Problem(line_ssid, "wifi_ssid without wifi_psk (open networks are not "
                                      "supported): Wi-Fi not configured"))
    elif psk and not HEX_PSK_RE.match(psk) and not (
            8 <= len(psk) <= 63 and all(32 <= ord(c) < 127 for c in psk)):
        bad.append(Problem(line_psk, "wifi_psk must be 8-63 printable ASCII characters or "
                                     "64 hex digits: Wi-Fi not configured"))
    if country and not COUNTRY_RE.match(country.upper()):
        bad.append(Problem(line_country, "wifi_country must be a two-letter country code "
                                         "such as GB: Wi-Fi not configured"))
    if bad:
        problems.extend(bad)
        return None
    return WifiConfig(ssid=ssid, psk_hex=wifi_psk_hex(ssid, psk),
                      country=country.upper() or None)


@dataclass(frozen=True)
class SimpleKey:
    """How one single-valued key of picorder.txt is checked and kept."""

    valid: Callable[[str], bool]
    problem: str                            # said when refused; {value!r} may name the value
    kept: Callable[[str], str] = str        # the value as it is kept


SIMPLE_KEYS = {
    "hostname": SimpleKey(lambda v: bool(HOSTNAME_RE.match(v.lower())),
                          "hostname must be 1-63 letters, digits or '-', not starting or ending "
                          "with '-' (ignored)", str.lower),
    "timezone": SimpleKey(lambda v: bool(TIMEZONE_RE.match(v)) and ".." not in v,
                          "timezone {value!r} is not a zone name such as Europe/London (ignored)"),
    "admin_user": SimpleKey(lambda v: bool(USERNAME_RE.match(v)),
                            "admin_user must be 1-64 letters, digits, '.', '_' or '-' "
                            "(using 'admin')"),
    "admin_password": SimpleKey(bool, "admin_password is empty (ignored)"),
    "admin_password_hash": SimpleKey(lambda v: v.startswith(HASH_PREFIXES) and "$" in v,
                                     "admin_password_hash must be a scrypt: or pbkdf2: hash as "
                                     "the panel writes them (ignored)"),
    "setup_code": SimpleKey(lambda v: len(v) >= SETUP_CODE_MIN_LENGTH,
                            f"setup_code must have at least {SETUP_CODE_MIN_LENGTH} characters "
                            "(ignored)"),
    "cameras_file": SimpleKey(lambda v: bool(v) and "/" not in v and not v.startswith("."),
                              "cameras_file must be a file name on the boot partition, such as "
                              "cameras.toml (ignored)"),
    "root_authorized_key": SimpleKey(lambda v: bool(SSH_KEY_RE.match(v)),
                                     "root_authorized_key is not an OpenSSH public key line "
                                     "(ignored)"),
}


def _check_simple(cfg: BootConfig, key: str, line: int, value: str) -> None:
    """Validate one single-valued key into cfg, or record a problem."""
    rule = SIMPLE_KEYS[key]
    if rule.valid(value):
        setattr(cfg, key, rule.kept(value))
    else:
        cfg.problems.append(Problem(line, rule.problem.format(value=value)))


def _check_camera(cfg: BootConfig, line: int, value: str) -> None:
    from recorder.config import SLUG_RE, check_url
    name, _, url = value.partition(" ")
    url = url.strip()
    if not SLUG_RE.fullmatch(name) or not url:
        cfg.problems.append(Problem(line, "camera must be 'camera=NAME URL' with a lower-case "
                                          "name (camera not added)"))
        return
    problem = check_url(url)
    if problem:
        cfg.problems.append(Problem(line, f"camera {name}: {problem} (camera not added)"))
        return
    cfg.cameras.append(CameraEntry(name=name, url=url, line=line))


def parse(text: str) -> BootConfig:
    """Parse picorder.txt: every valid setting, plus a problem for everything else."""
    lines, crlf = split_lines(text)
    cfg = BootConfig(crlf=crlf)
    seen: dict[str, tuple[int, str]] = {}
    for line, key, value in read_pairs(lines, cfg.problems):
        if key not in KNOWN_KEYS:
            cfg.problems.append(Problem(line, f"unknown key {key[:40]!r} (ignored)"))
            continue
        if key == "camera":
            _check_camera(cfg, line, value)
            continue
        if key in seen:
            cfg.problems.append(Problem(line, f"{key} given again; line {seen[key][0]} "
                                              "is ignored"))
        seen[key] = (line, value)
    for key, (line, value) in seen.items():
        if not key.startswith("wifi_"):
            _check_simple(cfg, key, line, value)
    cfg.wifi = check_wifi(seen, cfg.problems)
    if cfg.admin_password and cfg.admin_password_hash:
        cfg.problems.append(Problem(seen["admin_password_hash"][0],
                                    "both admin_password and admin_password_hash given: "
                                    "using admin_password"))
        cfg.admin_password_hash = None
    return cfg


def scrubbed_text(text: str, problems: list[Problem], when: datetime) -> str:
    """The file without its secrets and one-shot entries, with the problems as comments."""
    lines, crlf = split_lines(text)
    out = []
    removed = []
    for raw in lines:
        key = raw.strip().partition("=")[0].strip().lower()
        if "=" in raw and not raw.strip().startswith("#") and key in ONE_SHOT_KEYS:
            removed.append(key)
            continue
        if mistyped_secret(raw):
            removed.append("a line that looks like a secret")
            continue
        if raw.startswith("# picorder first boot"):
            continue
        out.append(raw)
    while out and not out[-1].strip():
        out.pop()
    stamp = when.strftime("%Y-%m-%d %H:%M UTC")
    if removed:
        names = ", ".join(sorted(set(removed)))
        out.append(f"# picorder first boot {stamp}: applied and removed {names}")
    for problem in problems:
        out.append(f"# picorder first boot {stamp}: problem: {problem}")
    newline = "\r\n" if crlf else "\n"
    return newline.join(out) + newline


# ------------------------------------------------------------------ applying

@dataclass
class Target:
    """Where the settings go; tests point every path into a temporary directory."""

    root: Path = Path("/")
    data: Path = DEFAULT_DATA
    owner: str | None = DEFAULT_OWNER
    hostname_proc: Path | None = Path("/proc/sys/kernel/hostname")
    run_systemctl: bool = True

    def path(self, absolute: str) -> Path:
        return self.root / absolute.lstrip("/")


def write_file(path: Path, text: str, mode: int = 0o644) -> None:
    """Write a file atomically (temporary file, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def apply_hostname(target: Target, name: str) -> None:
    write_file(target.path("/etc/hostname"), name + "\n")
    hosts = target.path("/etc/hosts")
    lines = hosts.read_text().splitlines() if hosts.exists() else ["127.0.0.1\tlocalhost"]
    lines = [ln for ln in lines if not ln.startswith("127.0.1.1")]
    lines.insert(1, f"127.0.1.1\t{name}")
    write_file(hosts, "\n".join(lines) + "\n")
    if target.hostname_proc is not None:
        target.hostname_proc.write_text(name)
    logger.info("hostname set to %s", name)


def apply_timezone(target: Target, zone: str) -> bool:
    zonefile = target.path("/usr/share/zoneinfo") / zone
    if not zonefile.is_file():
        return False
    localtime = target.path("/etc/localtime")
    localtime.unlink(missing_ok=True)
    localtime.symlink_to(Path("/usr/share/zoneinfo") / zone)
    write_file(target.path("/etc/timezone"), zone + "\n")
    logger.info("time zone set to %s", zone)
    return True


def wpa_supplicant_conf(wifi: WifiConfig) -> str:
    """wpa_supplicant's file; the SSID as hex and the PSK pre-hashed, so nothing needs quoting."""
    lines = ["# written by picorder first boot from picorder.txt",
             "ctrl_interface=DIR=/run/wpa_supplicant GROUP=netdev", "update_config=0"]
    if wifi.country:
        lines.append(f"country={wifi.country}")
    lines += ["", "network={", f"\tssid={wifi.ssid.encode().hex()}", f"\tpsk={wifi.psk_hex}",
              "\tkey_mgmt=WPA-PSK", "}"]
    return "\n".join(lines) + "\n"


def apply_wifi(target: Target, wifi: WifiConfig) -> None:
    conf = target.path(f"/etc/wpa_supplicant/wpa_supplicant-{WIFI_IFACE}.conf")
    write_file(conf, wpa_supplicant_conf(wifi), mode=0o600)
    unit = f"wpa_supplicant@{WIFI_IFACE}.service"
    wants = target.path("/etc/systemd/system/multi-user.target.wants") / unit
    wants.parent.mkdir(parents=True, exist_ok=True)
    if not wants.is_symlink():
        wants.symlink_to("/lib/systemd/system/wpa_supplicant@.service")
    if target.run_systemctl:
        subprocess.run(["systemctl", "start", "--no-block", unit], check=False,
                       timeout=30, stdin=subprocess.DEVNULL)
    logger.info("Wi-Fi network configured on %s (SSID %r)", WIFI_IFACE, wifi.ssid)


def apply_authorized_key(target: Target, key: str) -> None:
    path = target.path("/root/.ssh/authorized_keys")
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    existing = path.read_text().splitlines() if path.exists() else []
    if key not in existing:
        write_file(path, "\n".join(existing + [key]) + "\n", mode=0o600)
        logger.info("SSH key added for root")


def open_box_config(data: Path):
    """Open config.db (every table of it, the panel's users included)."""
    from recorder import config
    from recorder.paths import DataPaths
    paths = DataPaths(data)
    paths.ensure()
    config.open_config(paths.config_db)
    return paths


def apply_admin(target: Target, cfg: BootConfig) -> Problem | None:
    """Create or update the panel's admin account (config.db open); a problem if the password
    is refused."""
    from recorder.accounts import User, validate_user
    if cfg.admin_password is not None:
        errors = validate_user(cfg.admin_user, cfg.admin_password, "admin")
        if errors:
            text = "; ".join(f"{k}: {v}" for k, v in errors.items())
            return Problem(0, f"admin account not set: {text}")
    user = User.get_or_none(User.username == cfg.admin_user)
    if user is None:
        user = User(username=cfg.admin_user, role="admin", password_hash="")
    user.role = "admin"
    if cfg.admin_password is not None:
        user.set_password(cfg.admin_password)
    else:
        user.password_hash = cfg.admin_password_hash
    user.save()
    logger.info("panel admin account %s set", cfg.admin_user)
    return None


def apply_setup_code(target: Target, code: str) -> None:
    """Keep the setup code's hash (config.db open): the panel asks the first visitor for it."""
    from recorder.accounts import set_setup_code
    set_setup_code(code)
    logger.info("panel setup code set")


def apply_cameras(target: Target, cfg: BootConfig, firmware_dir: Path) -> list[Problem]:
    """Add the cameras with save_camera (config.db open), as `picorder camera add` and
    `picorder import` do."""
    from picorder.cli.camera import check_import_file, store_cameras
    from picorder.cli.common import UserError
    from recorder.config import ConfigError, save_camera
    problems = []
    for cam in cfg.cameras:
        try:
            save_camera({"name": cam.name, "main_url": cam.url})
        except ConfigError as exc:
            problems.append(Problem(cam.line, f"camera {cam.name} not added: {exc}"))
    if cfg.cameras_file:
        path = firmware_dir / cfg.cameras_file
        if not path.is_file():
            problems.append(Problem(0, f"cameras_file {cfg.cameras_file} not found"))
            return problems
        try:
            store_cameras(check_import_file(path))
        except UserError as exc:        # one line per bad camera: the log, not the file
            logger.error("picorder.txt: cameras_file %s: %s", cfg.cameras_file, exc)
            problems.append(Problem(0, f"cameras from {cfg.cameras_file} not imported "
                                       "(see the log)"))
    return problems


# The files of the data directory that root creates and the panel's user must own.
OWNED_FILES = ("config.db", "config.db-wal", "config.db-shm", "secret_key")


def prepare_data(data: Path, owner: str | None) -> None:
    """Create config.db if needed and hand the data directory to the panel's user.

    The recorder runs as root; SQLite gives its WAL files the database file's owner,
    so the panel (unprivileged) can keep writing config.db. The panel's user may
    plant links in the directory, so root changes the owner of the directory and of
    the named files only, each opened without following links (docs/design.md decision 7).
    """
    paths = open_box_config(data)
    if owner is not None:
        give_data_dir(paths.root, owner)


def give_data_dir(root: Path, owner: str) -> None:
    """Hand the data directory and its named files to the panel's user (prepare_data)."""
    pw = pwd.getpwnam(owner)
    dir_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.fchown(dir_fd, pw.pw_uid, pw.pw_gid)
        for name in OWNED_FILES:
            _give_file(dir_fd, name, pw.pw_uid, pw.pw_gid)
    finally:
        os.close(dir_fd)


def _give_file(dir_fd: int, name: str, uid: int, gid: int) -> None:
    """chown one plain file of the data directory; links and anything odd are left alone."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        fd = os.open(name, flags, dir_fd=dir_fd)
    except FileNotFoundError:
        return
    except OSError as exc:
        logger.warning("data directory: %s is not a plain file (%s); its owner is left alone",
                       name, exc.strerror)
        return
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            logger.warning("data directory: %s is not a plain file with one link; its owner "
                           "is left alone", name)
            return
        os.fchown(fd, uid, gid)
    finally:
        os.close(fd)


STEP_ERRORS = (OSError, ValueError, LookupError, subprocess.SubprocessError)


def _step(what: str, func, *args) -> list[Problem]:
    """Run one setting's step; a failure becomes a problem and the other steps still run."""
    from peewee import PeeweeException
    try:
        result = func(*args)
    except (*STEP_ERRORS, PeeweeException) as exc:
        logger.exception("picorder.txt: %s failed", what)
        return [Problem(0, f"{what} not applied ({type(exc).__name__}, see the log)")]
    if isinstance(result, Problem):
        return [result]
    if isinstance(result, list):
        return result
    if result is False:
        return [Problem(0, f"{what} is unknown (ignored)")]
    return []


def apply(cfg: BootConfig, target: Target, firmware_dir: Path) -> list[Problem]:
    """Apply every valid setting; return the problems met while applying."""
    problems = []
    if cfg.hostname:
        problems += _step("hostname", apply_hostname, target, cfg.hostname)
    if cfg.timezone:
        problems += _step(f"timezone {cfg.timezone!r}", apply_timezone, target, cfg.timezone)
    if cfg.wifi:
        problems += _step("Wi-Fi", apply_wifi, target, cfg.wifi)
    if cfg.root_authorized_key:
        problems += _step("root_authorized_key", apply_authorized_key, target,
                          cfg.root_authorized_key)
    steps = []
    if cfg.admin_password or cfg.admin_password_hash:
        steps.append(("admin account", apply_admin, (target, cfg)))
    if cfg.setup_code:
        steps.append(("setup code", apply_setup_code, (target, cfg.setup_code)))
    if cfg.cameras or cfg.cameras_file:
        steps.append(("cameras", apply_cameras, (target, cfg, firmware_dir)))
    if not steps and not target.owner:
        return problems
    # config.db is opened once per run: for these steps, and for run()'s data directory owner.
    refused = _open_config(target, [what for what, _, _ in steps])
    if refused:
        return problems + [refused]
    for what, func, args in steps:
        problems += _step(what, func, *args)
    return problems


def _open_config(target: Target, steps: list[str]) -> Problem | None:
    """Open config.db for the run; a problem naming the steps it stops if it cannot be."""
    from peewee import PeeweeException
    try:
        open_box_config(target.data)
    except (*STEP_ERRORS, PeeweeException) as exc:
        logger.exception("picorder.txt: cannot open config.db")
        stopped = f": {', '.join(steps)} not applied" if steps else ""
        return Problem(0, f"config.db not opened ({type(exc).__name__}, see the log){stopped}")
    return None


def run(file: Path, target: Target) -> list[Problem]:
    """Read, apply and scrub picorder.txt; return every problem (also logged)."""
    with open(file, "rb") as fh:
        raw = fh.read(MAX_FILE_BYTES + 1)
    if len(raw) > MAX_FILE_BYTES:
        problems = [refuse_large_file(file, raw)]
        if target.owner:
            prepare_data(target.data, target.owner)
        return problems
    text = raw.decode("utf-8", errors="replace")
    cfg = parse(text)
    problems = list(cfg.problems)
    try:
        problems += apply(cfg, target, file.parent)
    finally:
        # Whatever happened, the secrets leave the card.
        for problem in problems:
            logger.warning("picorder.txt %s", problem)
        write_file(file, scrubbed_text(text, problems, datetime.now(timezone.utc)))
    if target.owner:
        give_data_dir(target.data, target.owner)       # config.db: created by apply()
    logger.info("picorder.txt applied with %d problem(s)", len(problems))
    return problems


TOO_LARGE = f"is larger than {MAX_FILE_BYTES // 1024} KiB: nothing in it was applied"


def refuse_large_file(file: Path, head: bytes) -> Problem:
    """Apply nothing from an over-large picorder.txt, keep it whole, and say so at its end."""
    problem = Problem(0, f"picorder.txt {TOO_LARGE} and it is left as it is (secrets "
                         "included): shorten it to the settings you want")
    logger.warning("picorder.txt %s", problem)
    newline = b"\r\n" if b"\r\n" in head else b"\n"
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    note = f"# picorder first boot {stamp}: problem: {problem}".encode()
    with open(file, "r+b") as fh:
        size = fh.seek(0, os.SEEK_END)
        fh.seek(max(0, size - 4096))
        tail = fh.read()
        if TOO_LARGE.encode() in tail:
            return problem                  # said so at an earlier boot
        fh.seek(size)
        fh.write((b"" if tail.endswith(b"\n") else newline) + note + newline)
        fh.flush()
        os.fsync(fh.fileno())
    return problem


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m picorder.firstboot",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, default=DEFAULT_FILE)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--owner", default=DEFAULT_OWNER,
                        help="user who owns the data directory (the panel's user)")
    parser.add_argument("--prepare-data", action="store_true",
                        help="only create config.db and fix the data directory's owner")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.prepare_data:
        prepare_data(args.data, args.owner)
        return 0
    if not args.file.is_file():
        logger.info("no %s: nothing to apply", args.file)
        prepare_data(args.data, args.owner)
        return 0
    run(args.file, Target(data=args.data, owner=args.owner))
    return 0


if __name__ == "__main__":
    sys.exit(main())
