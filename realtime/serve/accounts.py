"""Administrators, their sign-in sessions and the API keys of the service, in one SQLite file.

Schema (``PRAGMA user_version`` = :data:`SCHEMA_VERSION`)::

    users(name PRIMARY KEY, password_hash argon2id, created_at, failed, locked_until)
    sessions(token_sha256 PRIMARY KEY, user -> users, csrf, created_at, expires_at)
    api_keys(id, name UNIQUE, role "read"|"admin", key_sha256 UNIQUE, created_at)

Passwords are hashed with argon2id (argon2-cffi); there is no default account: the first administrator is made with
``rtv serve adduser``. Session tokens and API keys are 256-bit random values; only their sha256 is stored (a
high-entropy secret needs no slow hash). Ten wrong passwords in a row lock the account for
:data:`LOCKOUT_S` seconds (a right password does not open a locked account).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from realtime.errors import ConfigError

SCHEMA_VERSION = 1
MAX_FAILED = 10
LOCKOUT_S = 15 * 60
SESSION_S = 12 * 3600
ROLES = ("read", "admin")
MIN_PASSWORD_CHARS = 10
KEY_PREFIX = "rtv_"

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS users (name TEXT PRIMARY KEY, password_hash TEXT NOT NULL, created_at REAL NOT NULL,"
    " failed INTEGER NOT NULL DEFAULT 0, locked_until REAL NOT NULL DEFAULT 0)",
    "CREATE TABLE IF NOT EXISTS sessions (token_sha256 TEXT PRIMARY KEY, user TEXT NOT NULL REFERENCES users(name)"
    " ON DELETE CASCADE, csrf TEXT NOT NULL, created_at REAL NOT NULL, expires_at REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS api_keys (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
    " role TEXT NOT NULL CHECK (role IN ('read', 'admin')), key_sha256 TEXT NOT NULL UNIQUE, created_at REAL NOT NULL)",
)


class AccountError(ConfigError):
    """A user or key cannot be made (bad name, weak password, exists already)."""


@dataclass(frozen=True)
class Session:
    user: str
    csrf: str
    expires_at: float


@dataclass(frozen=True)
class ApiKey:
    name: str
    role: str


@dataclass(frozen=True)
class LoginResult:
    """``session_token`` set when the password was right and the account open; ``locked_s`` > 0 when locked."""

    session_token: str | None
    session: Session | None
    locked_s: float = 0.0


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class Accounts:
    """The accounts file. Thread-safe (one connection per call, under a lock)."""

    def __init__(self, path: str | Path, clock=time.time, hasher=None) -> None:
        """``hasher``: an ``argon2.PasswordHasher`` (default: argon2-cffi's recommended argon2id parameters)."""
        from argon2 import PasswordHasher

        self.path = Path(path)
        self._lock = threading.Lock()
        self._clock = clock
        self._hasher = hasher if hasher is not None else PasswordHasher()
        if self.path.is_dir():
            raise ConfigError(f"accounts path {self.path} is a folder; pass a file path")
        if not self.path.parent.is_dir():
            raise ConfigError(f"cannot create accounts file {self.path}: folder {self.path.parent} does not exist")
        with self._connect() as conn:
            for sql in _SCHEMA:
                conn.execute(sql)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(str(self.path), timeout=5.0)
        conn.execute("PRAGMA foreign_keys = ON")
        return conn

    # ------------------------------------------------------------------------------------------------------ users
    def add_user(self, name: str, password: str) -> None:
        name = _check_user_name(name)
        if len(password) < MIN_PASSWORD_CHARS:
            raise AccountError(f"the password must be at least {MIN_PASSWORD_CHARS} characters")
        digest = self._hasher.hash(password)
        with self._lock, self._connect() as conn:
            try:
                conn.execute("INSERT INTO users (name, password_hash, created_at) VALUES (?, ?, ?)",
                             (name, digest, self._clock()))
            except sqlite3.IntegrityError:
                raise AccountError(f"user {name!r} exists already") from None

    def users(self) -> list[str]:
        with self._lock, self._connect() as conn:
            return [r[0] for r in conn.execute("SELECT name FROM users ORDER BY name")]

    def login(self, name: str, password: str) -> LoginResult:
        """Check a password; a right one on an open account makes a session. Failures are counted per account."""
        from argon2.exceptions import InvalidHashError, VerificationError

        now = self._clock()
        with self._lock, self._connect() as conn:
            row = conn.execute("SELECT password_hash, failed, locked_until FROM users WHERE name = ?",
                               (name,)).fetchone()
            if row is None:
                try:  # same work as for a real account, so timing does not tell which names exist
                    self._hasher.verify(self._dummy_hash, password)
                except (VerificationError, InvalidHashError):
                    pass
                return LoginResult(None, None)
            digest, failed, locked_until = row
            if locked_until > now:
                return LoginResult(None, None, locked_s=locked_until - now)
            try:
                self._hasher.verify(digest, password)
            except (VerificationError, InvalidHashError):
                failed += 1
                locked = now + LOCKOUT_S if failed >= MAX_FAILED else 0.0
                conn.execute("UPDATE users SET failed = ?, locked_until = ? WHERE name = ?",
                             (0 if locked else failed, locked, name))
                return LoginResult(None, None, locked_s=(locked - now) if locked else 0.0)
            conn.execute("UPDATE users SET failed = 0, locked_until = 0 WHERE name = ?", (name,))
            token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
            session = Session(name, csrf, now + SESSION_S)
            conn.execute("DELETE FROM sessions WHERE expires_at < ?", (now,))
            conn.execute("INSERT INTO sessions VALUES (?, ?, ?, ?, ?)", (_sha(token), name, csrf, now,
                                                                           session.expires_at))
        return LoginResult(token, session)

    def session(self, token: str | None) -> Session | None:
        if not token:
            return None
        with self._lock, self._connect() as conn:
            row = conn.execute("SELECT user, csrf, expires_at FROM sessions WHERE token_sha256 = ?",
                               (_sha(token),)).fetchone()
        if row is None or row[2] < self._clock():
            return None
        return Session(*row)

    def logout(self, token: str | None) -> None:
        if token:
            with self._lock, self._connect() as conn:
                conn.execute("DELETE FROM sessions WHERE token_sha256 = ?", (_sha(token),))

    # ------------------------------------------------------------------------------------------------------- keys
    def add_key(self, name: str, role: str) -> str:
        """Make an API key; returns the secret (shown once; only its hash is kept)."""
        name = _check_user_name(name)
        if role not in ROLES:
            raise AccountError(f"role {role!r} is not one of {', '.join(ROLES)}")
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        with self._lock, self._connect() as conn:
            try:
                conn.execute("INSERT INTO api_keys (name, role, key_sha256, created_at) VALUES (?, ?, ?, ?)",
                             (name, role, _sha(secret), self._clock()))
            except sqlite3.IntegrityError:
                raise AccountError(f"an API key named {name!r} exists already") from None
        return secret

    def remove_key(self, name: str) -> bool:
        with self._lock, self._connect() as conn:
            return conn.execute("DELETE FROM api_keys WHERE name = ?", (name,)).rowcount > 0

    def keys(self) -> list[ApiKey]:
        with self._lock, self._connect() as conn:
            return [ApiKey(n, r) for n, r in conn.execute("SELECT name, role FROM api_keys ORDER BY name")]

    def has_keys(self) -> bool:
        with self._lock, self._connect() as conn:
            return conn.execute("SELECT count(*) FROM api_keys").fetchone()[0] > 0

    def key(self, secret: str | None) -> ApiKey | None:
        if not secret:
            return None
        digest = _sha(secret)
        with self._lock, self._connect() as conn:
            rows = conn.execute("SELECT name, role, key_sha256 FROM api_keys").fetchall()
        for name, role, stored in rows:  # constant-time comparison of the digests
            if hmac.compare_digest(stored, digest):
                return ApiKey(name, role)
        return None


def _check_user_name(name: str) -> str:
    name = str(name).strip()
    if not (1 <= len(name) <= 64) or not all(c.isalnum() or c in "._-@" for c in name):
        raise AccountError(f"name {name!r}: use 1-64 letters, digits or . _ - @")
    return name
