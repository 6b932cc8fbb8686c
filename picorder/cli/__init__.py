"""The `picorder` command: a router to the subcommands' modules."""

import argparse
import logging
import sys

from picorder.cli import camera, check, disk, export, panel, service
from picorder.cli.common import UserError
from recorder import __version__

# Each module exposes register(subparsers); its parsers set func=handler(args) -> int.
COMMANDS = [camera, panel, check, disk, export, service]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="picorder", description="picorder network video recorder")
    parser.add_argument("--version", action="version", version=f"picorder {__version__}")
    parser.add_argument("--data", metavar="DIR",
                        help="state directory holding config.db (default: $PICORDER_DATA, "
                             "/var/lib/picorder as root, else the XDG state directory)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for command in COMMANDS:
        command.register(sub)
    return parser


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
