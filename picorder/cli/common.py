"""What the subcommands share: the user-error type, --data, config.db and the recording root."""

import argparse
import sys
from pathlib import Path

from peewee import DatabaseError

from recorder import config, storage
from recorder.paths import DataPaths, resolve_data_dir


class UserError(Exception):
    """An error caused by the user's input; printed without a traceback."""


# Every subcommand takes `--data` after its name too (`picorder recorder --data DIR`).
DATA_OPTION = argparse.ArgumentParser(add_help=False)
DATA_OPTION.add_argument("--data", metavar="DIR", default=argparse.SUPPRESS,
                         help="state directory holding config.db")


def add_group(sub, name: str, help: str):
    """A command with actions of its own (`picorder disk ACTION`); return the actions' parsers."""
    actions = sub.add_parser(name, help=help).add_subparsers(dest=f"{name}_command",
                                                             metavar="ACTION")
    actions.required = True
    return actions


def add_command(sub, name: str, func, help: str, *positionals: str,
                parents: tuple = (), **kwargs) -> argparse.ArgumentParser:
    """A (sub)command that runs func(args), with its positional arguments and --data."""
    parser = sub.add_parser(name, help=help, parents=[*parents, DATA_OPTION], **kwargs)
    for positional in positionals:
        parser.add_argument(positional)
    parser.set_defaults(func=func)
    return parser


def add_root_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", metavar="DIR",
                        help="recording root holding picorder/index.db (default: the configured one)")


def paths_from_args(args) -> DataPaths:
    """The data directory named by --data, $PICORDER_DATA or the default."""
    return DataPaths(resolve_data_dir(getattr(args, "data", None)))


def open_config_from_args(args) -> DataPaths:
    """Open config.db in the data directory named by --data / $PICORDER_DATA."""
    paths = paths_from_args(args)
    try:
        paths.ensure()
        config.open_config(paths.config_db)
    except OSError as exc:
        raise UserError(f"cannot open the data directory {paths.root}: {exc.strerror}") from exc
    return paths


def read_secret_file(path: str) -> str:
    """Read a password from a file ('-' for standard input), without its newline."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
    except OSError as exc:
        raise UserError(f"cannot read the password file {path}: {exc.strerror}") from exc
    return text.rstrip("\r\n")


def recording_root(args, paths: DataPaths) -> Path:
    """--root, else the configured recording root, else the default recordings directory."""
    if args.root:
        return Path(args.root).expanduser().absolute()
    try:
        config.open_config(paths.config_db)
        root = storage.recording_root_from_config()
    except (OSError, DatabaseError) as exc:
        raise UserError(f"cannot read the configured recording root: {exc}; "
                        "pass --root DIR") from exc
    if root is None:
        if (paths.default_recordings / "picorder" / "index.db").is_file():
            return paths.default_recordings
        raise UserError("no recording disk or directory is configured; pass --root DIR")
    return Path(root)


def recordings_dir(args, paths: DataPaths) -> Path:
    """The recording root's picorder/ directory (--root, else the configured one), with its index."""
    picorder_dir = recording_root(args, paths) / "picorder"
    if not (picorder_dir / "index.db").is_file():
        raise UserError(f"no recordings index at {picorder_dir / 'index.db'}")
    return picorder_dir


def reason(exc: Exception) -> str:
    """An OSError's text without its errno, anything else's message."""
    return getattr(exc, "strerror", None) or str(exc)
