"""Sign-in credentials: each user's password, API tokens and one-time sign-in links.

Nothing is kept in clear. A password is kept as an argon2id hash (argon2-cffi's
``PasswordHasher``, as Jupyter Server hashes its passwords): checking one costs about
0.1 s of CPU on purpose. Tokens and links are high-entropy random secrets, so their
SHA-256 is enough and checking one costs microseconds:

- an API token reads ``miqa_<id>_<secret>``: ``id`` (:data:`TOKEN_ID_LENGTH`
  letters and digits) finds its row, the SHA-256 of the whole token is compared with
  :func:`hmac.compare_digest`. It is shown once, when made.
- a sign-in link's secret is used once (:func:`use_signin_link` marks it used in the
  caller's transaction) and expires within minutes.

Every write of a credential stores a new random ``credentials_version`` in ``meta``
(:func:`credentials_version`), so a server may cache what it verified and check again
only when that value changed.

Functions over an open catalog connection, called by :class:`~miqa_nb.catalog.Catalog`;
who may change whose credentials is checked by the caller, before. A catalog of schema
version 1 opened read-only has none of these tables: reads find no credential there.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets
import string
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import argon2
import duckdb

from miqa_nb.core.duck import Connection, one
from miqa_nb.core.errors import MiqaError, NotFound

if TYPE_CHECKING:  # pandas loads on first use: an import never needs it
    import pandas as pd

__all__ = [
    "LINK_MINUTES",
    "MAX_PASSWORD",
    "MAX_TOKEN_DAYS",
    "MIN_PASSWORD",
    "TOKEN_COLUMNS",
    "TOKEN_ID_LENGTH",
    "TOKEN_PREFIX",
    "TOUCH_SECONDS",
    "create_signin_link",
    "create_token",
    "credentials_version",
    "has_password",
    "hash_password",
    "parse_token",
    "password_hash",
    "require_password_length",
    "revoke_token",
    "set_password",
    "token_user",
    "tokens",
    "touch_token",
    "use_signin_link",
    "users_with_password",
    "verify_password",
]

#: A password's length, in characters: at least, at most.
MIN_PASSWORD, MAX_PASSWORD = 8, 1024
#: A token reads ``miqa_<id>_<secret>``.
TOKEN_PREFIX = "miqa"
#: Letters and digits in a token's id (62**10: ids do not collide by chance).
TOKEN_ID_LENGTH = 10
#: The longest life a token may be given, in days (no expiry: give none).
MAX_TOKEN_DAYS = 3650.0
#: The longest life of a sign-in link, in minutes (it is a password sent by mail or chat).
LINK_MINUTES = 24 * 60.0
#: A token's ``last_used_utc`` is written at most this often.
TOUCH_SECONDS = 60.0
#: What :func:`tokens` shows: never the secret or its hash.
TOKEN_COLUMNS = ("id", "created_utc", "expires_utc", "revoked_utc", "last_used_utc")

_ID_ALPHABET = string.ascii_letters + string.digits
_TOKEN = re.compile(
    rf"{TOKEN_PREFIX}_([A-Za-z0-9]{{{TOKEN_ID_LENGTH}}})_([A-Za-z0-9_-]{{32,128}})", re.ASCII
)
_SECRET = re.compile(r"[A-Za-z0-9_-]{32,128}", re.ASCII)

#: RFC 9106's second choice (argon2-cffi's defaults), written out so the dummy hash
#: below costs what a real one costs.
_HASHER = argon2.PasswordHasher(
    time_cost=3, memory_cost=65536, parallelism=4, hash_len=32, salt_len=16, type=argon2.Type.ID
)
#: Checked when a user is unknown or has no password, so that timing does not tell.
_DUMMY_HASH = "$argon2id$v=19$m=65536,t=3,p=4$ovychaMAvgd2MpmKKblQBQ$XaFVrHLIFy+eppQ5Fb03L4mv2auNaMKaGGxKBSMgtJA"


# ---------------------------------------------------------------- passwords


def require_password_length(password: str) -> None:
    """Refuse a password shorter than :data:`MIN_PASSWORD` or longer than
    :data:`MAX_PASSWORD` characters.

    >>> require_password_length("short")
    Traceback (most recent call last):
    ...
    miqa_nb.core.errors.MiqaError: a password needs at least 8 characters; this one has 5: choose a longer one
    """
    if len(password) < MIN_PASSWORD:
        raise MiqaError(
            f"a password needs at least {MIN_PASSWORD} characters; this one has "
            f"{len(password)}: choose a longer one"
        )
    if len(password) > MAX_PASSWORD:
        raise MiqaError(
            f"a password may have at most {MAX_PASSWORD} characters; this one has "
            f"{len(password)}: choose a shorter one"
        )


def hash_password(password: str) -> str:
    """The argon2id hash of ``password`` (a PHC string, ``$argon2id$...``), after
    :func:`require_password_length`. Pure CPU: call it outside the catalog's lock."""
    require_password_length(password)
    return _HASHER.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """Whether ``password`` matches the hash ``stored``; with None (no such user, no
    password) a dummy hash is checked, so both cost one argon2 verification."""
    if not isinstance(password, str) or len(password) > MAX_PASSWORD:
        return False  # never a password: refused without the work
    try:
        return _HASHER.verify(stored or _DUMMY_HASH, password) and stored is not None
    except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
        return False


def set_password(con: Connection, user: str, hashed: str, now: datetime) -> None:
    """Store ``user``'s password hash (made by :func:`hash_password`)."""
    if not hashed.startswith("$argon2id$"):
        raise MiqaError("set_password takes the hash from hash_password(), not a password")
    con.execute(
        "INSERT INTO passwords VALUES (?, ?, ?) ON CONFLICT (user_name) DO UPDATE "
        "SET hash = excluded.hash, changed_utc = excluded.changed_utc",
        [user, hashed, now],
    )
    _bump_version(con)


def password_hash(con: Connection, user: str) -> str | None:
    """``user``'s password hash; None without one (or without the table: version 1)."""
    try:
        found = one(con, "SELECT hash FROM passwords WHERE user_name = ?", [user])
    except duckdb.CatalogException:
        return None
    return None if found is None else str(found[0])


def has_password(con: Connection, user: str) -> bool:
    """Whether ``user`` has a password."""
    return password_hash(con, user) is not None


def users_with_password(con: Connection) -> frozenset[str]:
    """The users that have a password."""
    try:
        rows = con.execute("SELECT user_name FROM passwords").fetchall()
    except duckdb.CatalogException:
        return frozenset()
    return frozenset(name for (name,) in rows)


# ------------------------------------------------------------------- tokens


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def parse_token(token: str) -> tuple[str, str] | None:
    """A well-formed token's ``(id, sha256)``; None for anything else.

    >>> parse_token("miqa_abcDEF1234_" + "x" * 43)[0]
    'abcDEF1234'
    >>> parse_token("miqa_abc_" + "x" * 43) is None
    True
    """
    found = _TOKEN.fullmatch(token) if isinstance(token, str) else None
    return None if found is None else (found.group(1), _sha256(token))


def _token_expiry(now: datetime, days: float | None) -> datetime | None:
    if days is None:
        return None
    if not (isinstance(days, int | float) and math.isfinite(days) and 0 < days <= MAX_TOKEN_DAYS):
        raise MiqaError(
            f"a token expires after more than 0 and at most {MAX_TOKEN_DAYS:g} days; "
            f"{days!r} was provided (give no expiry for a token that never expires)"
        )
    return now + timedelta(days=days)


def create_token(
    con: Connection, user: str, now: datetime, expires_days: float | None = None
) -> tuple[str, str]:
    """Make a token for ``user``; return ``(id, token)``. Only its SHA-256 is kept."""
    expires = _token_expiry(now, expires_days)
    while True:
        token_id = "".join(secrets.choice(_ID_ALPHABET) for _ in range(TOKEN_ID_LENGTH))
        if one(con, "SELECT 1 FROM api_tokens WHERE id = ?", [token_id]) is None:
            break
    token = f"{TOKEN_PREFIX}_{token_id}_{secrets.token_urlsafe(32)}"
    con.execute(
        "INSERT INTO api_tokens (id, user_name, sha256, created_utc, expires_utc) "
        "VALUES (?, ?, ?, ?, ?)",
        [token_id, user, _sha256(token), now, expires],
    )
    _bump_version(con)
    return token_id, token


def tokens(con: Connection, user: str) -> pd.DataFrame:
    """``user``'s tokens, oldest first: :data:`TOKEN_COLUMNS` (no secret, no hash)."""
    columns = ", ".join(TOKEN_COLUMNS)
    try:
        return con.execute(
            f"SELECT {columns} FROM api_tokens WHERE user_name = ? ORDER BY created_utc, id",
            [user],
        ).df()
    except duckdb.CatalogException:  # version 1, read-only: no tokens
        return con.execute(
            "SELECT " + ", ".join(f"NULL::{_type(c)} AS {c}" for c in TOKEN_COLUMNS) + " LIMIT 0"
        ).df()


def _type(column: str) -> str:
    return "VARCHAR" if column == "id" else "TIMESTAMP"


def revoke_token(con: Connection, user: str, token_id: str, now: datetime) -> None:
    """Revoke ``user``'s token ``token_id`` (revoking it again changes nothing).

    Raises
    ------
    NotFound
        ``user`` has no token ``token_id``.
    """
    if (
        one(con, "SELECT 1 FROM api_tokens WHERE id = ? AND user_name = ?", [token_id, user])
        is None
    ):
        raise NotFound(
            f"user {user!r} has no token {token_id!r}; `miqa-nb users tokens {user}` lists "
            "its tokens"
        )
    con.execute(
        "UPDATE api_tokens SET revoked_utc = ? WHERE id = ? AND revoked_utc IS NULL",
        [now, token_id],
    )
    _bump_version(con)


def token_user(
    con: Connection, token_id: str, digest: str, now: datetime
) -> tuple[str, bool] | None:
    """The user of the token with id ``token_id`` and SHA-256 ``digest`` (from
    :func:`parse_token`), if it is known, not revoked and not expired, and whether its
    last use is older than :data:`TOUCH_SECONDS` (see :func:`touch_token`); else None.
    Reads only."""
    try:
        found = one(
            con,
            "SELECT user_name, sha256, expires_utc, revoked_utc, last_used_utc "
            "FROM api_tokens WHERE id = ?",
            [token_id],
        )
    except duckdb.CatalogException:  # version 1, read-only: no tokens
        return None
    if found is None:
        return None
    user, stored, expires, revoked, last_used = found
    if not hmac.compare_digest(stored, digest):
        return None
    if revoked is not None or (expires is not None and expires <= now):
        return None
    due = last_used is None or (now - last_used).total_seconds() >= TOUCH_SECONDS
    return str(user), due


def touch_token(con: Connection, token_id: str, now: datetime) -> None:
    """Note that token ``token_id`` was used at ``now`` (not a change of credentials:
    :func:`credentials_version` stays)."""
    con.execute("UPDATE api_tokens SET last_used_utc = ? WHERE id = ?", [now, token_id])


# -------------------------------------------------------------- sign-in links


def create_signin_link(con: Connection, user: str, now: datetime, minutes: float) -> str:
    """Make a one-time sign-in secret for ``user``, valid for ``minutes``; only its
    SHA-256 is kept. Links that expired a day ago or more are deleted meanwhile."""
    if not (
        isinstance(minutes, int | float) and math.isfinite(minutes) and 0 < minutes <= LINK_MINUTES
    ):
        raise MiqaError(
            f"a sign-in link lasts more than 0 and at most {LINK_MINUTES:g} minutes; "
            f"{minutes!r} was provided"
        )
    con.execute("DELETE FROM signin_links WHERE expires_utc < ?", [now - timedelta(days=1)])
    secret = secrets.token_urlsafe(32)
    con.execute(
        "INSERT INTO signin_links (sha256, user_name, created_utc, expires_utc) "
        "VALUES (?, ?, ?, ?)",
        [_sha256(secret), user, now, now + timedelta(minutes=minutes)],
    )
    _bump_version(con)
    return secret


def use_signin_link(con: Connection, secret: str, now: datetime) -> str | None:
    """Mark the link ``secret`` used and return its user; None when it is unknown,
    used already or expired. Call it in a transaction, so that one use wins."""
    if not (isinstance(secret, str) and _SECRET.fullmatch(secret)):
        return None
    # One statement checks and marks: of two uses at once, the second waits for the
    # first's row (PostgreSQL) or the file (DuckDB), then finds it used.
    found = one(
        con,
        "UPDATE signin_links SET used_utc = ? "
        "WHERE sha256 = ? AND used_utc IS NULL AND expires_utc > ? RETURNING user_name",
        [now, _sha256(secret), now],
    )
    if found is None:
        return None
    _bump_version(con)
    return str(found[0])


# ------------------------------------------------------------------ version


def _bump_version(con: Connection) -> None:
    """Give ``credentials_version`` a new random value (never seen before: a catalog
    restored from a copy does not bring back an old one with other contents)."""
    con.execute(
        "INSERT INTO meta VALUES ('credentials_version', ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [secrets.token_hex(8)],
    )


def credentials_version(con: Connection) -> str:
    """A value that changes at every write of a password, token or link ('0' before
    the first); compare it for equality only."""
    found = one(con, "SELECT value FROM meta WHERE key = 'credentials_version'")
    return "0" if found is None else str(found[0])
