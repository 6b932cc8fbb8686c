"""config.db's account tables: the panel's users, API tokens, login attempts and sessions.

They live in the recorder package because everything that opens config.db (the CLI,
first boot, the recorder, the panel) creates every table of it: recorder/config.py
lists them all in CONFIG_MODELS. Werkzeug's hashing is imported only when a password is
set or checked, so the recorder, which never does, does not load it.
"""

import functools
import hashlib
import importlib.metadata
import secrets
import unicodedata

from peewee import BigIntegerField, CharField, IntegerField, IntegrityError

from recorder.configdb import BaseModel, Setting, db
from recorder.wallclock import now_us

ROLES = ("admin", "viewer")
ROLE_ERROR = "the role must be 'admin' or 'viewer'"
PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_LENGTH = 1024
USERNAME_MAX_LENGTH = 64
TOKEN_PREFIX = "pct_"
SCRYPT = "scrypt"
PBKDF2 = "pbkdf2:sha256:600000"


@functools.cache
def password_method() -> str:
    """The box's hash for new passwords: scrypt where Werkzeug (2.3+) and hashlib have it.

    Werkzeug before 2.3 (Debian bookworm's 2.2.2, used by the appliance) has no scrypt
    method and fails with "unsupported" on it: PBKDF2 there.
    """
    try:
        major, minor = (int(p) for p in importlib.metadata.version("werkzeug").split(".")[:2])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        major, minor = 0, 0
    if (major, minor) >= (2, 3) and hasattr(hashlib, "scrypt"):
        return SCRYPT
    return PBKDF2


def hash_secret(secret: str, method: str | None = None) -> str:
    """Werkzeug's salted hash of a password or setup code (`method`: the box's by default)."""
    from werkzeug.security import generate_password_hash
    return generate_password_hash(secret, method=method or password_method())


def check_secret(stored: str, secret: str) -> bool:
    from werkzeug.security import check_password_hash
    return check_password_hash(stored, secret)


class User(BaseModel):
    """A person who signs in to the panel."""

    username = CharField(unique=True)
    password_hash = CharField()
    role = CharField(default="viewer")
    created_us = BigIntegerField(default=now_us)

    def set_password(self, password: str, method: str | None = None) -> None:
        """Keep the password's hash; `method` is the box's unless the caller names one
        (the panel's tests name a cheaper one, PASSWORD_HASH_METHOD)."""
        self.password_hash = hash_secret(password, method)

    def check_password(self, password: str) -> bool:
        return check_secret(self.password_hash, password)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def to_public(self) -> dict:
        return {"id": self.id, "username": self.username, "role": self.role,
                "created_us": self.created_us}

    @classmethod
    def admin_exists(cls) -> bool:
        return cls.select().where(cls.role == "admin").exists()

    def is_last_admin(self) -> bool:
        """The box's only admin: it may neither be removed nor become a viewer."""
        return self.is_admin and User.select().where(User.role == "admin").count() <= 1


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


NAME_TAKEN = "this name is taken"


class AccountError(ValueError):
    """A user was not added: one clear message per bad field."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))


def add_user(username, password, role, method: str | None = None) -> User:
    """The one way to add a user (pages, API, CLI): validate_user's rules, the password's
    salted hash (`method`: the box's unless named), a name not taken; AccountError if not."""
    errors = validate_user(username, password, role)
    if errors:
        raise AccountError(errors)
    user = User(username=username, role=role)
    user.set_password(password, method)
    try:
        with db.atomic():           # a savepoint inside the caller's transaction, if any
            user.save()
    except IntegrityError as exc:
        raise AccountError({"username": NAME_TAKEN}) from exc
    return user


SETUP_CODE_SETTING = "setup_code_hash"


def set_setup_code(code: str) -> None:
    """Require `code` (picorder.txt's setup_code) to create the first admin; only its hash is kept."""
    Setting.write(SETUP_CODE_SETTING, hash_secret(code))


def setup_code_required() -> bool:
    return Setting.read(SETUP_CODE_SETTING) is not None


def check_setup_code(code) -> bool:
    stored = Setting.read(SETUP_CODE_SETTING)
    return stored is None or (isinstance(code, str) and check_secret(stored, code.strip()))


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
