"""Where picorder keeps its state: the data directory and the files inside it."""

import os
from dataclasses import dataclass
from pathlib import Path

ENV_DATA = "PICORDER_DATA"
# The recorder's own state directory: the unit points it at its StateDirectory=, which only
# root can write (docs/design.md decision 7).  Unset (the demo, a recorder in the foreground,
# where the panel runs as the same user anyway), the recorder keeps it in the data directory.
ENV_STATE_DIR = "PICORDER_STATE_DIR"
CLOCK_FILE_NAME = "last_time"
ROOT_DATA_DIR = Path("/var/lib/picorder")
ROOT_DEMO_DIR = Path("/var/tmp/picorder-demo")
DEMO_MARKER = ".picorder-demo"       # in a data directory `picorder demo` made its own


def _state_home() -> Path:
    """$XDG_STATE_HOME, else ~/.local/state."""
    return Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")


def default_data_dir() -> Path:
    """Return /var/lib/picorder for root, the XDG state directory otherwise."""
    return ROOT_DATA_DIR if os.geteuid() == 0 else _state_home() / "picorder"


def default_demo_dir() -> Path:
    """`picorder demo`'s own data directory: /var/tmp/picorder-demo for root, else in the
    XDG state directory; never the appliance's or a server's state."""
    return ROOT_DEMO_DIR if os.geteuid() == 0 else _state_home() / "picorder-demo"


def resolve_data_dir(cli_value: str | None = None) -> Path:
    """Pick the data directory: --data, then $PICORDER_DATA, then the default."""
    if cli_value:
        return Path(cli_value).expanduser().absolute()
    env = os.environ.get(ENV_DATA)
    if env:
        return Path(env).expanduser().absolute()
    return default_data_dir()


def _in_data_dir(name: str, doc: str) -> property:
    """A DataPaths property: the file or directory `name` in the data directory."""
    return property(lambda paths: paths.root / name, doc=doc)


@dataclass(frozen=True)
class DataPaths:
    """The files and directories below one data directory."""

    root: Path

    config_db = _in_data_dir("config.db", "Cameras, users and settings.")
    control_socket = _in_data_dir("recorder.sock", "The recorder's control socket.")
    secret_key = _in_data_dir("secret_key", "The panel's session key.")
    default_recordings = _in_data_dir(
        "recordings", "Recording directory used until a disk is adopted (demo and servers).")

    @property
    def recorder_state(self) -> Path:
        """What only the recorder writes: $PICORDER_STATE_DIR, else the data directory."""
        env = os.environ.get(ENV_STATE_DIR)
        return Path(env) if env else self.root

    @property
    def clock_file(self) -> Path:
        """Last known good wall-clock time, for boxes without an RTC."""
        return self.recorder_state / CLOCK_FILE_NAME

    old_clock_file = _in_data_dir(
        CLOCK_FILE_NAME, "Where versions before the recorder's own state directory kept "
        "clock_file: in the data directory, which the panel's user owns (read once, to migrate).")

    def ensure(self) -> None:
        """Create the data directory, private to its owner."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)


class UnsafePath(ValueError):
    """A name read from a database or a disk would lead outside its base directory."""


def inside(base: Path, *parts: str) -> Path:
    """base/parts, refusing a part that is empty, '.', '..' or holds '/' or NUL, and a
    result that resolves (links followed) outside base.

    Root uses it for every path built from a name it did not make itself: camera
    names from config.db (the panel's user writes it), segment paths from a disk's
    index.db (docs/design.md decision 7).
    """
    path = Path(base)
    for part in parts:
        if not isinstance(part, str) or part in ("", ".", "..") or "/" in part or "\0" in part:
            raise UnsafePath(f"{part!r} is not a plain name below {base}")
        path = path / part
    real_base = os.path.realpath(base)
    real = os.path.realpath(path)
    if real != real_base and not real.startswith(real_base.rstrip("/") + "/"):
        raise UnsafePath(f"{path} leads outside {base}")
    return path


def refuse_links(path: Path, *suffixes: str) -> None:
    """UnsafePath if `path` (or path + a suffix, such as SQLite's -wal) is a symbolic link.

    For a database on a disk: SQLite would open whatever a link names, such as the
    box's own config.db (docs/design.md decision 7)."""
    for name in (str(path), *(str(path) + s for s in suffixes)):
        if os.path.islink(name):
            raise UnsafePath(f"{name} is a link, not a file of its own")
