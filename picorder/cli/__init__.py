"""The `picorder` command: a router to the subcommands' modules."""

import argparse
import importlib
import logging
import sys

from recorder import __version__
from recorder.paths import DataPaths, resolve_data_dir

# Each module exposes register(subparsers); its parsers set func=handler(args) -> int.
COMMAND_MODULES = [
    "picorder.cli.camera",
    "picorder.cli.panel",
    "picorder.cli.check",
    "picorder.cli.disk",
    "picorder.cli.export",
    "picorder.cli.service",
]


class UserError(Exception):
    """An error caused by the user's input; printed without a traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="picorder", description="picorder network video recorder")
    parser.add_argument("--version", action="version", version=f"picorder {__version__}")
    parser.add_argument("--data", metavar="DIR",
                        help="state directory holding config.db (default: $PICORDER_DATA, "
                             "/var/lib/picorder as root, else the XDG state directory)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def add_data_option(parser: argparse.ArgumentParser) -> None:
    """Let `--data` also follow the subcommand (`picorder recorder --data DIR`)."""
    parser.add_argument("--data", metavar="DIR", default=argparse.SUPPRESS,
                        help="state directory holding config.db")


def paths_from_args(args) -> DataPaths:
    """The data directory named by --data, $PICORDER_DATA or the default."""
    return DataPaths(resolve_data_dir(getattr(args, "data", None)))


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    try:
        return args.func(args) or 0
    except UserError as exc:
        print(f"picorder: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
