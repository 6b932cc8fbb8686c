"""`picorder panel`, `picorder user ...` and `picorder token ...`: run the panel, manage its accounts."""

import os
import sys
from pathlib import Path

from peewee import IntegrityError

from picorder.cli.common import (
    UserError, add_command, add_group, open_config_from_args, paths_from_args, read_secret_file)
from recorder import accounts, limits
from recorder.paths import ENV_DATA

PROJECT_ROOT = Path(__file__).resolve().parents[2]
GUNICORN_CONF = "gunicorn.conf.py"
APP = "webpanel:create_app()"


def find_gunicorn_conf() -> Path | None:
    """gunicorn.conf.py of a source checkout, else one installed next to the data (appliance)."""
    for candidate in (PROJECT_ROOT / GUNICORN_CONF, Path("/etc/picorder") / GUNICORN_CONF):
        if candidate.is_file():
            return candidate
    return None


def gunicorn_argv(bind: str | None, conf: Path | None) -> list[str]:
    argv = [sys.executable, "-m", "gunicorn"]
    if conf is not None:
        argv += ["-c", str(conf)]
    else:
        argv += ["--worker-class", "gthread", "--threads", str(limits.PANEL_THREADS), "--workers", "2",
                 "--timeout", "60"]
    if bind:
        argv += ["--bind", bind]
    return argv + [APP]


def cmd_panel(args) -> int:
    paths = paths_from_args(args)
    try:
        paths.ensure()
    except OSError as exc:
        raise UserError(f"cannot create the data directory {paths.root}: {exc.strerror}") from exc
    env = dict(os.environ, **{ENV_DATA: str(paths.root)})
    argv = gunicorn_argv(args.bind, find_gunicorn_conf())
    print(f"picorder panel: data in {paths.root}, serving on {args.bind or 'the configured address'}",
          flush=True)
    os.execve(argv[0], argv, env)
    return 0  # not reached


# ----------------------------------------------------------------------- users

def cmd_user_add(args) -> int:
    open_config_from_args(args)
    password = read_secret_file(args.password_file)
    try:
        accounts.add_user(args.name, password, args.role)
    except accounts.AccountError as exc:
        if exc.errors.get("username") == accounts.NAME_TAKEN:
            raise UserError(f"a user named {args.name!r} already exists") from exc
        raise UserError(str(exc)) from exc
    print(f"added {args.role} {args.name}")
    return 0


def cmd_user_list(args) -> int:
    open_config_from_args(args)
    users = list(accounts.User.select().order_by(accounts.User.username))
    if not users:
        print("no users yet: the first visit to the panel creates the admin")
    for user in users:
        print(f"{user.username:<24} {user.role}")
    return 0


def cmd_user_remove(args) -> int:
    open_config_from_args(args)
    user = accounts.User.get_or_none(accounts.User.username == args.name)
    if user is None:
        raise UserError(f"no user named {args.name!r}")
    if user.is_last_admin() and not args.force:
        raise UserError("this is the last admin; add another admin first (or use --force)")
    user.delete_instance()
    print(f"removed user {args.name}")
    return 0


# ---------------------------------------------------------------------- tokens

def cmd_token_create(args) -> int:
    open_config_from_args(args)
    problem = accounts.validate_token_name(args.name)
    if problem:
        raise UserError(problem)
    try:
        _row, token = accounts.ApiToken.issue(args.name, args.role)
    except IntegrityError as exc:
        raise UserError(f"a token named {args.name!r} already exists") from exc
    print(token)
    print(f"(token {args.name!r}, role {args.role}: it is shown only this once; send it as "
          "'Authorization: Bearer TOKEN')", file=sys.stderr)
    return 0


def cmd_token_list(args) -> int:
    open_config_from_args(args)
    for row in accounts.ApiToken.select().order_by(accounts.ApiToken.name):
        used = "never used" if row.last_used_us is None else "used"
        print(f"{row.name:<24} {row.role:<7} {used}")
    return 0


def cmd_token_revoke(args) -> int:
    open_config_from_args(args)
    if not accounts.ApiToken.delete().where(accounts.ApiToken.name == args.name).execute():
        raise UserError(f"no token named {args.name!r}")
    print(f"revoked token {args.name}")
    return 0


def register(sub) -> None:
    add_command(sub, "panel", cmd_panel, "run the web panel (gunicorn)").add_argument(
        "--bind", metavar="ADDR:PORT", default=None,
        help="listen address (default from gunicorn.conf.py: 0.0.0.0:8080)")

    user_sub = add_group(sub, "user", "manage the panel's users")
    p = add_command(user_sub, "add", cmd_user_add, "add a user", "name")
    p.add_argument("--role", choices=accounts.ROLES, required=True)
    p.add_argument("--password-file", required=True, metavar="F",
                   help="file holding the password ('-' for standard input)")
    add_command(user_sub, "list", cmd_user_list, "list users")
    add_command(user_sub, "remove", cmd_user_remove, "remove a user", "name").add_argument(
        "--force", action="store_true", help="even the last admin")

    token_sub = add_group(sub, "token", "manage API tokens (scripts, Prometheus)")
    add_command(token_sub, "create", cmd_token_create, "create a token and print it once",
                "name").add_argument("--role", choices=accounts.ROLES, default="viewer")
    add_command(token_sub, "list", cmd_token_list, "list tokens")
    add_command(token_sub, "revoke", cmd_token_revoke, "revoke a token", "name")
