"""Each user's own settings (which key set the review page uses, ...), by name.

A small key-value table, ``user_settings(user_name, key, value)``, added to catalogs
of any age by ``CREATE TABLE IF NOT EXISTS`` (see :mod:`~miqa_nb.store.schema`); a
catalog opened read-only before the table existed has no settings, and reads give
None. Functions over an open catalog connection, called by
:class:`~miqa_nb.catalog.Catalog`; who may change what is checked by the caller.
"""

from __future__ import annotations

import duckdb

from miqa_nb.core.duck import Connection, one
from miqa_nb.core.errors import MiqaError

__all__ = ["MAX_VALUE", "set_user_setting", "user_setting"]

#: The longest value a setting holds (settings are choices, not documents).
MAX_VALUE = 200


def user_setting(con: Connection, user: str, key: str) -> str | None:
    """The value of ``user``'s setting ``key``; None when it was never set."""
    try:
        found = one(
            con, "SELECT value FROM user_settings WHERE user_name = ? AND key = ?", [user, key]
        )
    except duckdb.CatalogException:  # a read-only catalog from before the table existed
        return None
    return None if found is None else str(found[0])


def set_user_setting(con: Connection, user: str, key: str, value: str) -> None:
    """Store ``user``'s setting ``key`` (replacing its old value).

    Raises
    ------
    MiqaError
        ``key`` is empty, or ``value`` is longer than :data:`MAX_VALUE` characters.
    """
    if not key.strip():
        raise MiqaError("a setting needs a name; got an empty one")
    if len(value) > MAX_VALUE:
        raise MiqaError(
            f"setting {key!r} is {len(value)} characters long; settings hold at most "
            f"{MAX_VALUE}: choose a shorter value"
        )
    con.execute(
        "INSERT INTO user_settings VALUES (?, ?, ?) "
        "ON CONFLICT (user_name, key) DO UPDATE SET value = excluded.value",
        [user, key, value],
    )
