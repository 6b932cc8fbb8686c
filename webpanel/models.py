"""The panel's tables in config.db: users, API tokens and login attempts."""

import hashlib
import importlib.metadata
import secrets
import sys
import time
import unicodedata
from importlib.metadata import version as _werkzeug_version

from peewee import BigIntegerField, CharField, IntegerField
from werkzeug.security import check_password_hash, generate_password_hash

from recorder import config
from recorder.config import BaseModel

ROLES = ("admin", "viewer")
ROLE_ERROR = "the role must be 'admin' or 'viewer'"
PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_LENGTH = 1024
USERNAME_MAX_LENGTH = 64
TOKEN_PREFIX = "pct_"


def _password_method() -> str:
    """scrypt where Werkzeug (2.3+) and hashlib support it, else PBKDF2 (bookworm's 2.2)."""
    try:
        major, minor = (int(p) for p in importlib.metadata.version("werkzeug").split(".")[:2])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        major, minor = 0, 0
    if (major, minor) >= (2, 3) and hasattr(hashlib, "scrypt"):
        return "scrypt"
    return "pbkdf2:sha256:600000"


PASSWORD_METHOD = _password_method()
# Werkzeug before 2.3 (Debian bookworm's 2.2.2, used by the appliance) has no scrypt
# method and fails with "unsupported" on it.
if tuple(int(x) for x in _werkzeug_version("werkzeug").split(".")[:2]) < (2, 3):
    PASSWORD_METHOD = "pbkdf2:sha256:600000"


def now_us() -> int:
    return time.time_ns() // 1000


class User(BaseModel):
    """A person who signs in to the panel."""

    username = CharField(unique=True)
    password_hash = CharField()
    role = CharField(default="viewer")
    created_us = BigIntegerField(default=now_us)

    def set_password(self, password: str) -> None:
        # Tests may choose a cheaper method (config PASSWORD_HASH_METHOD); the box never does.
        # Flask only if it is loaded: the first-boot step sets passwords without it.
        flask = sys.modules.get("flask")
        method = (flask.current_app.config.get("PASSWORD_HASH_METHOD")
                  if flask is not None and flask.has_app_context() else None)
        self.password_hash = generate_password_hash(password, method=method or PASSWORD_METHOD)

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def to_public(self) -> dict:
        return {"id": self.id, "username": self.username, "role": self.role,
                "created_us": self.created_us}

    @classmethod
    def admin_exists(cls) -> bool:
        return cls.select().where(cls.role == "admin").exists()


class ApiToken(BaseModel):
    """A bearer token for scripts and Prometheus; only its SHA-256 is stored."""

    name = CharField(unique=True)
    token_hash = CharField(unique=True)
    role = CharField(default="viewer")
    created_us = BigIntegerField(default=now_us)
    last_used_us = BigIntegerField(null=True)

    @staticmethod
    def hash_token(token: str) -> str:
        # Tokens carry 256 random bits, so a fast hash is enough (no guessing).
        return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()

    @classmethod
    def issue(cls, name: str, role: str) -> tuple["ApiToken", str]:
        """Create a token; return the row and the clear token (shown only once)."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        row = cls.create(name=name, role=role, token_hash=cls.hash_token(token))
        return row, token

    @classmethod
    def lookup(cls, token: str) -> "ApiToken | None":
        if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        return cls.get_or_none(cls.token_hash == cls.hash_token(token))

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def to_public(self) -> dict:
        return {"id": self.id, "name": self.name, "role": self.role,
                "created_us": self.created_us, "last_used_us": self.last_used_us}


class LoginAttempt(BaseModel):
    """A failed login, kept a short while for rate limiting across workers."""

    key = CharField(index=True)        # "addr:<ip>" or "user:<name>"
    at_us = BigIntegerField(index=True)
    count = IntegerField(default=1)


class SessionGeneration(BaseModel):
    """Per user: sessions carry the generation they began in; logout starts a new one."""

    user_id = IntegerField(primary_key=True)
    generation = IntegerField(default=0)

    @classmethod
    def current(cls, user_id: int) -> int:
        row = cls.get_or_none(cls.user_id == user_id)
        return row.generation if row else 0

    @classmethod
    def bump(cls, user_id: int) -> None:
        cls.insert(user_id=user_id, generation=1).on_conflict(
            conflict_target=[cls.user_id],
            update={cls.generation: cls.generation + 1}).execute()


# Unicode categories refused in user names: controls, format characters (zero-width
# and direction marks), separators, private use, unassigned and surrogates.  Names
# that look alike but differ would otherwise be two accounts.
USERNAME_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp"})


def _bad_username_char(name: str) -> bool:
    return any(c.isspace() or unicodedata.category(c) in USERNAME_REFUSED_CATEGORIES
               for c in name)


def validate_user(username, password, role) -> dict[str, str]:
    """Return one clear message per bad field (empty when all is well)."""
    errors = {}
    if not isinstance(username, str) or not username.strip():
        errors["username"] = "a user name is required"
    elif len(username) > USERNAME_MAX_LENGTH or _bad_username_char(username):
        errors["username"] = (f"at most {USERNAME_MAX_LENGTH} characters, without spaces, "
                              "control or invisible characters")
    elif unicodedata.normalize("NFKC", username) != username:
        errors["username"] = "use the plain form of these characters (Unicode NFKC)"
    if not isinstance(password, str) or len(password) < PASSWORD_MIN_LENGTH:
        errors["password"] = f"the password must have at least {PASSWORD_MIN_LENGTH} characters"
    elif len(password) > PASSWORD_MAX_LENGTH:
        errors["password"] = f"the password must have at most {PASSWORD_MAX_LENGTH} characters"
    if role not in ROLES:
        errors["role"] = ROLE_ERROR
    return errors


SETUP_CODE_SETTING = "setup_code_hash"


def set_setup_code(code: str) -> None:
    """Require `code` (picorder.txt's setup_code) to create the first admin; only its hash is kept."""
    config.Setting.write(SETUP_CODE_SETTING, generate_password_hash(code, method=PASSWORD_METHOD))


def setup_code_required() -> bool:
    return config.Setting.read(SETUP_CODE_SETTING) is not None


def check_setup_code(code) -> bool:
    stored = config.Setting.read(SETUP_CODE_SETTING)
    return stored is None or (isinstance(code, str) and check_password_hash(stored, code.strip()))


def validate_token_name(name) -> str | None:
    if not isinstance(name, str) or not name.strip() or len(name) > USERNAME_MAX_LENGTH:
        return f"a name of 1-{USERNAME_MAX_LENGTH} characters is required"
    if any(ord(c) < 32 for c in name):
        return "the name must not contain control characters"
    return None


def validate_token(name, role) -> dict[str, str]:
    """One clear message per bad field of a new token (empty when all is well)."""
    errors = {}
    problem = validate_token_name(name)
    if problem:
        errors["name"] = problem
    if role not in ROLES:
        errors["role"] = ROLE_ERROR
    return errors


PANEL_MODELS = [User, ApiToken, LoginAttempt, SessionGeneration]
for _model in PANEL_MODELS:
    if _model not in config.CONFIG_MODELS:
        config.CONFIG_MODELS.append(_model)
