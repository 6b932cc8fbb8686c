"""`picorder camera ...` and `picorder import`: manage cameras in config.db."""

import argparse
import json
import sys
import tomllib
from pathlib import Path

from picorder.cli.common import (UserError, add_command, add_group, open_config_from_args,
                                 read_secret_file)
from recorder import config
from recorder.config import Camera, ConfigError, validate_camera


def save_camera(fields: dict, existing: Camera | None = None) -> Camera:
    """config.save_camera, with every field problem as a UserError."""
    try:
        return config.save_camera(fields, existing)
    except ConfigError as exc:
        raise UserError(str(exc)) from exc


def _fields_from_args(args) -> dict:
    fields = {}
    for key in ("display_name", "transport", "max_age_days", "max_bytes", "min_days"):
        value = getattr(args, key, None)
        if value is not None:
            fields[key] = value
    if getattr(args, "url", None) is not None:
        fields["main_url"] = args.url
    if getattr(args, "sub", None) is not None:
        fields["sub_url"] = args.sub
    if getattr(args, "user", None) is not None:
        fields["username"] = args.user
    if getattr(args, "password_file", None):
        fields["password"] = read_secret_file(args.password_file)
    if getattr(args, "enable", None) is not None:
        fields["enabled"] = args.enable
    return fields


def cmd_add(args) -> int:
    open_config_from_args(args)
    fields = _fields_from_args(args)
    fields["name"] = args.name
    cam = save_camera(fields)
    print(f"added camera {cam.name}")
    return 0


def cmd_set(args) -> int:
    open_config_from_args(args)
    try:
        cam = Camera.get_by_name(args.name)
    except KeyError as exc:
        raise UserError(exc.args[0]) from exc
    fields = _fields_from_args(args)
    if args.new_name:
        fields["name"] = args.new_name
    if not fields:
        raise UserError("nothing to change: give at least one option")
    save_camera(fields, cam)
    print(f"updated camera {cam.name}")
    return 0


def cmd_remove(args) -> int:
    open_config_from_args(args)
    deleted = Camera.delete().where(Camera.name == args.name).execute()
    if not deleted:
        raise UserError(f"no camera named {args.name!r}")
    print(f"removed camera {args.name} (its recordings stay until retention deletes them)")
    return 0


def cmd_list(args) -> int:
    open_config_from_args(args)
    cams = [c.to_public() for c in Camera.select().order_by(Camera.name)]
    if args.json:
        json.dump(cams, sys.stdout, indent=2)
        print()
        return 0
    if not cams:
        print("no cameras configured; add one with: picorder camera add NAME URL")
    for cam in cams:
        state = "enabled" if cam["enabled"] else "disabled"
        sub = f" sub={cam['sub_url']}" if cam["sub_url"] else ""
        print(f"{cam['name']:<20} {state:<9} {cam['transport']} {cam['main_url']}{sub}")
    return 0


def load_import_file(path: Path) -> list[dict]:
    """Read a cameraleech-style TOML file: [defaults] inherited by [cameras.NAME]."""
    try:
        doc = tomllib.loads(path.read_text())
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is not valid TOML: {exc}") from exc
    defaults = doc.get("defaults", {})
    cameras = doc.get("cameras")
    unknown = set(doc) - {"defaults", "cameras"}
    if unknown:
        raise UserError(f"{path}: unknown sections: {', '.join(sorted(unknown))}")
    if not isinstance(defaults, dict) or not isinstance(cameras, dict) or not cameras:
        raise UserError(f"{path}: expected [defaults] and at least one [cameras.NAME] table")
    aliases = {"url": "main_url", "sub": "sub_url", "user": "username"}
    result = []
    for name, table in cameras.items():
        if not isinstance(table, dict):
            raise UserError(f"{path}: cameras.{name} must be a table")
        merged = {aliases.get(k, k): v for k, v in {**defaults, **table}.items()}
        merged["name"] = name
        result.append(merged)
    return result


def check_import_file(path: Path) -> list[dict]:
    """The file's cameras, each checked; a UserError naming every bad one."""
    entries = load_import_file(path)
    problems = []
    for entry in entries:
        try:
            validate_camera(entry)
        except ConfigError as exc:
            problems.append(f"cameras.{entry['name']}: {exc}")
    if problems:
        raise UserError("nothing imported:\n  " + "\n  ".join(problems))
    return entries


def store_cameras(entries: list[dict]) -> tuple[int, int]:
    """Add or update each camera, all or none; return (added, updated)."""
    added = 0
    with config.db.atomic():
        for entry in entries:
            cam = Camera.get_or_none(Camera.name == entry["name"])
            save_camera(entry, cam)
            added += cam is None
    return added, len(entries) - added


def cmd_import(args) -> int:
    entries = check_import_file(Path(args.file))
    open_config_from_args(args)
    added, updated = store_cameras(entries)
    print(f"imported {added} new and {updated} updated cameras")
    return 0


# The options of `camera add` and `camera set`.
CAMERA_OPTIONS = argparse.ArgumentParser(add_help=False)
CAMERA_OPTIONS.add_argument("--sub", metavar="URL", help="sub stream URL ('' to remove it)")
CAMERA_OPTIONS.add_argument("--transport", choices=config.TRANSPORTS)
CAMERA_OPTIONS.add_argument("--user", metavar="U", help="user name for the camera")
CAMERA_OPTIONS.add_argument("--password-file", metavar="F",
                            help="file holding the camera password ('-' for standard input)")
CAMERA_OPTIONS.add_argument("--display-name", dest="display_name", metavar="TEXT")
CAMERA_OPTIONS.add_argument("--max-age-days", dest="max_age_days", type=int, metavar="N")
CAMERA_OPTIONS.add_argument("--max-bytes", dest="max_bytes", type=int, metavar="N")
CAMERA_OPTIONS.add_argument("--min-days", dest="min_days", type=int, metavar="N")
_ENABLE = CAMERA_OPTIONS.add_mutually_exclusive_group()
_ENABLE.add_argument("--enable", dest="enable", action="store_const", const=True)
_ENABLE.add_argument("--disable", dest="enable", action="store_const", const=False)


def register(sub) -> None:
    cam_sub = add_group(sub, "camera", "add, list, change and remove cameras")
    p = add_command(cam_sub, "add", cmd_add, "add a camera", "name", parents=(CAMERA_OPTIONS,))
    p.add_argument("url", help="main stream URL, e.g. rtsp://192.168.1.20:554/stream1")
    p = add_command(cam_sub, "set", cmd_set, "change a camera", "name", parents=(CAMERA_OPTIONS,))
    p.add_argument("--url", metavar="URL", help="new main stream URL")
    p.add_argument("--rename", dest="new_name", metavar="NAME",
                   help="refused: recordings are filed under the name (use --display-name)")
    add_command(cam_sub, "remove", cmd_remove, "remove a camera", "name")
    add_command(cam_sub, "list", cmd_list, "list cameras").add_argument("--json", action="store_true")
    add_command(sub, "import", cmd_import, "import cameras from a cameraleech-style TOML file", "file")
