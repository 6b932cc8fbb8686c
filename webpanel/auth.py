"""Who is asking: sessions and tokens, roles, the sign-in rate limit, who may create the admin."""

import functools
import hashlib
import ipaddress
import logging
import math
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import current_app, g, jsonify, render_template, request, session
from peewee import IntegrityError, fn
from werkzeug.local import LocalProxy

from recorder import accounts, config, limits
from recorder.accounts import (ApiToken, LoginAttempt, SessionGeneration, User, password_method,
                               setup_code_required, validate_token)
from recorder.wallclock import now_us
from webpanel import security
from webpanel.inputs import FieldErrors, json_error, wants_json

logger = logging.getLogger(__name__)

# Reachable without signing in. "static" serves the login page's stylesheet.
PUBLIC_ENDPOINTS = frozenset({"auth.login", "auth.setup", "static"})
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class Identity:
    """Who makes the current request: a signed-in user or an API token."""

    name: str
    role: str
    via: str                 # "session" or "token"
    user_id: int | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def is_authenticated(self) -> bool:
        return True


current_user = LocalProxy(lambda: g.get("identity"))


def password_version(user: User) -> str:
    """Changes with the password, so a password change ends other sessions."""
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:16]


def _identity_from_token(header: str) -> Identity:
    token = ApiToken.lookup(header[len("Bearer "):].strip())
    if token is None:
        raise json_error(401, "invalid or revoked API token",
                         {"WWW-Authenticate": 'Bearer realm="picorder"'})
    now = now_us()
    if token.last_used_us is None or now - token.last_used_us > limits.TOKEN_TOUCH_S * 1_000_000:
        # Rarely, so Prometheus scrapes do not wear the SD card.
        ApiToken.update(last_used_us=now).where(ApiToken.id == token.id).execute()
    return Identity(token.name, token.role, "token")


def _identity_from_session() -> Identity | None:
    uid = session.get("uid")
    if not isinstance(uid, int):
        return None
    user = User.get_or_none(User.id == uid)
    if (user is None or session.get("pwv") != password_version(user)
            or session.get("gen") != SessionGeneration.current(user.id)):
        session.clear()
        return None
    return Identity(user.username, user.role, "session", user.id)


def load_identity() -> None:
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        g.identity = _identity_from_token(header)
    else:
        g.identity = _identity_from_session()


def refuse_anonymous():
    """401: JSON for API clients, the login (or first-run setup) form for browsers."""
    if wants_json() or not request.accept_mimetypes.accept_html:
        raise json_error(401, "sign in first, or send an API token as 'Authorization: Bearer ...'",
                         {"WWW-Authenticate": 'Bearer realm="picorder"'})
    nxt = request.full_path.rstrip("?") if request.method == "GET" else "/"
    if not User.admin_exists():
        return setup_page({}, {}, 401, nxt)
    return render_template("auth/login.html", next=nxt, errors={}, form={}), 401


def guard():
    """Before every request: who is it, may they come in, and CSRF for sessions."""
    load_identity()
    if request.endpoint not in PUBLIC_ENDPOINTS and g.identity is None:
        return refuse_anonymous()
    if request.method in UNSAFE_METHODS and (g.identity is None or g.identity.via != "token"):
        # Bearer tokens are never sent by a browser on its own, so they need no CSRF token.
        security.csrf.protect()
    return None


# What identifies a disk or the box, and the cameras' log-in names: enough to clone
# a recording disk or to guess a camera's password (security review L7). Admins only.
ADMIN_ONLY_FIELDS = frozenset({"fs_uuid", "uuid", "disk_id", "box_id", "marker_disk_id",
                               "marker_box_id", "serial", "root", "mount_points", "username"})


def for_role(data, role: str | None = None):
    """data as the signed-in identity may see it: viewers get no ADMIN_ONLY_FIELDS."""
    if (role or current_user.role) == "admin":
        return data
    if isinstance(data, dict):
        return {k: for_role(v, "viewer") for k, v in data.items() if k not in ADMIN_ONLY_FIELDS}
    if isinstance(data, list):
        return [for_role(v, "viewer") for v in data]
    return data


def login_required(role: str = "viewer"):
    """Decorator: require a signed-in user or token; role="admin" for admins only."""
    def decorate(view):
        @functools.wraps(view)
        def wrapped(*args, **kwargs):
            identity = g.get("identity")
            if identity is None:
                raise json_error(401, "sign in first")
            if role == "admin" and not identity.is_admin:
                raise json_error(403, "this needs the admin role")
            return view(*args, **kwargs)
        return wrapped
    return decorate


# ------------------------------------------------------------------ rate limit

def attempt_keys(username: str) -> list[str]:
    """Per address, and per user name from that address: never per user name alone,
    so a stranger's wrong guesses cannot lock the real user out from elsewhere."""
    addr = request.remote_addr or "-"
    return [f"addr:{addr}", f"pair:{username.strip().lower()[:64]}|{addr}"]


def wait_s(failures: int, last_us: int, now: int) -> int:
    """Seconds the next attempt must wait: none for the first few failures, then a
    delay that doubles with each further failure (capped)."""
    if failures < limits.LOGIN_FREE_FAILURES:
        return 0
    delay = min(limits.LOGIN_DELAY_BASE_S * 2 ** (failures - limits.LOGIN_FREE_FAILURES),
                limits.LOGIN_DELAY_MAX_S)
    return max(0, math.ceil((last_us + delay * 1_000_000 - now) / 1_000_000))


def claim_attempt(keys: list[str]) -> tuple[int, int]:
    """Check the keys and count this attempt as a failure in one write transaction.

    Returns (seconds to wait, 0 when the attempt may go on; its time stamp). Counting
    before the password is checked is what makes parallel guesses count too.
    """
    now = now_us()
    with config.db.atomic("IMMEDIATE"):
        LoginAttempt.delete().where(
            LoginAttempt.at_us < now - limits.LOGIN_WINDOW_S * 1_000_000).execute()
        wait = 0
        for key in keys:
            failures, last = (LoginAttempt.select(fn.COUNT(LoginAttempt.id), fn.MAX(LoginAttempt.at_us))
                              .where(LoginAttempt.key == key).tuples().get())
            if failures:
                wait = max(wait, wait_s(failures, last, now))
        if wait:
            return wait, now
        LoginAttempt.insert_many([{"key": k, "at_us": now} for k in keys]).execute()
    return 0, now


def forgive_attempt(keys: list[str], at_us: int) -> None:
    """After a right password: this attempt was no failure, nor were the pair's earlier ones."""
    addr_key, pair_key = keys
    LoginAttempt.delete().where(
        (LoginAttempt.key == pair_key)
        | ((LoginAttempt.key == addr_key) & (LoginAttempt.at_us == at_us))).execute()


def hash_method() -> str:
    """The hash of new passwords: the box's, unless the app's PASSWORD_HASH_METHOD names one
    (tests choose a cheaper one; the box never does)."""
    return current_app.config.get("PASSWORD_HASH_METHOD") or password_method()


def add_user(username, password, role) -> User:
    """A new user (accounts.add_user, with the app's hash); FieldErrors for bad input or a
    name that is taken."""
    try:
        return accounts.add_user(username, password, role, hash_method())
    except accounts.AccountError as exc:
        raise FieldErrors(exc.errors) from exc


def issue_token(name, role) -> tuple[ApiToken, str]:
    """A new API token: its row and the token itself (shown only once); FieldErrors if bad."""
    errors = validate_token(name, role)
    if errors:
        raise FieldErrors(errors)
    try:
        return ApiToken.issue(name, role)
    except IntegrityError as exc:
        raise FieldErrors({"name": "a token with this name exists"}) from exc


@functools.cache
def _dummy_hash(method: str) -> str:
    user = User(username="")
    user.set_password("not the password of anyone", method)
    return user.password_hash


def check_login(username: str, password: str) -> User | None:
    """The user if the password is right; as slow for unknown names as for known ones."""
    user = User.get_or_none(User.username == username)
    if user is None:
        # Hash anyway, with the same method, so the time does not tell which names exist.
        User(password_hash=_dummy_hash(hash_method())
             ).check_password(password)
        return None
    return user if user.check_password(password) else None


# ------------------------------------------------------- what the sign-in pages share

def safe_next(default: str = "/") -> str:
    """Only local paths, so ?next= cannot send the user to another site."""
    nxt = request.values.get("next") or ""
    # Browsers drop tabs and newlines from URLs and read a backslash as a slash,
    # so "/\t/evil.example" would become "//evil.example": refuse them all.
    if (not nxt.startswith("/") or nxt.startswith("//") or "\\" in nxt
            or any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in nxt)):
        return default
    parts = urlsplit(nxt)
    if parts.scheme or parts.netloc:
        return default
    return nxt


# Where the box's owner sits: private (RFC 1918, IPv6 unique local), link-local and
# loopback networks.  Not ipaddress's is_private, which also counts documentation ranges.
LOCAL_NETWORKS = tuple(ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "127.0.0.0/8",
    "fc00::/7", "fe80::/10", "::1/128"))


def seconds_since_boot() -> float:
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def _client_address():
    try:
        addr = ipaddress.ip_address(request.remote_addr or "")
    except ValueError:
        return None
    return getattr(addr, "ipv4_mapped", None) or addr


def setup_refusal() -> str | None:
    """Why this visitor may not create the admin now (security review L10), or None."""
    addr = _client_address()
    if addr is None or not any(addr in net for net in LOCAL_NETWORKS):
        return ("The admin account can only be created from the local network "
                "(a private or link-local address).")
    window = current_app.config.get("SETUP_WINDOW_S")
    if window and seconds_since_boot() > window:
        return (f"Setup is closed: the admin account can only be created in the first "
                f"{int(window) // 60} minutes after the box starts. Power-cycle the box "
                "(unplug it, plug it in again) to reopen setup for another "
                f"{int(window) // 60} minutes, or set admin_password in picorder.txt on "
                "the SD card.")
    return None


def setup_page(form: dict, errors: dict, status: int, nxt: str | None = None):
    """The first-run form (or its errors in JSON), for the setup view and anonymous visitors."""
    if request.is_json and request.method == "POST":
        return jsonify({"errors": errors}), status
    shown = {k: v for k, v in form.items() if "password" not in k and k != "setup_code"}
    return render_template("auth/setup.html", form=shown, errors=errors,
                           next=nxt if nxt is not None else safe_next(),
                           closed=setup_refusal(), needs_code=setup_code_required()), status


def init_app(app) -> None:
    app.before_request(guard)
    app.context_processor(lambda: {"current_user": g.get("identity")})
