"""Users, their roles in projects, and a user's :class:`~miqa_nb.core.permissions.Standing`.

Functions over an open catalog connection, called by :class:`~miqa_nb.catalog.Catalog`
inside its transactions; permissions are checked by the caller, before.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from miqa_nb.core.duck import Connection, one
from miqa_nb.core.errors import MiqaError, PermissionDenied
from miqa_nb.core.permissions import Standing
from miqa_nb.core.vocabulary import Role

if TYPE_CHECKING:  # pandas loads on first use: an import never needs it
    import pandas as pd

__all__ = ["add_user", "count_users", "roles", "set_role", "standing", "user_names", "users"]


def users(con: Connection) -> pd.DataFrame:
    """Users and whether each is a superuser."""
    return con.execute("SELECT name, superuser, created_utc FROM users ORDER BY name").df()


def user_names(con: Connection) -> frozenset[str]:
    """The names of the catalog's users."""
    return frozenset(name for (name,) in con.execute("SELECT name FROM users").fetchall())


def count_users(con: Connection) -> int:
    """How many users the catalog has."""
    (n_users,) = one(con, "SELECT count(*) FROM users") or (0,)
    return int(n_users)


def add_user(con: Connection, name: str, *, superuser: bool) -> None:
    """Add a user; a name taken already is refused."""
    if one(con, "SELECT 1 FROM users WHERE name = ?", [name]):
        raise MiqaError(f"user {name!r} exists already")
    con.execute("INSERT INTO users (name, superuser) VALUES (?, ?)", [name, superuser])


def standing(
    con: Connection, user: str, project: str | None = None, *, catalog: str | Path
) -> Standing:
    """A user's standing (superuser, creator, role) in ``project``, or globally.

    Raises
    ------
    PermissionDenied
        ``user`` is not in the catalog (``catalog`` names its file in the message).
    """
    found = one(con, "SELECT superuser FROM users WHERE name = ?", [user])
    if found is None:
        raise PermissionDenied(
            f"user {user!r} is not in the catalog {catalog}; a superuser adds users "
            f"with `miqa-nb users add {user}`"
        )
    if project is None:
        return Standing(user, bool(found[0]))
    creator = one(con, "SELECT creator FROM projects WHERE name = ?", [project])
    role = one(con, "SELECT role FROM roles WHERE project = ? AND user_name = ?", [project, user])
    return Standing(
        user,
        bool(found[0]),
        project,
        creator is not None and creator[0] == user,
        Role(role[0]) if role else None,
    )


def set_role(con: Connection, project: str, user: str, role: Role | None) -> None:
    """Give ``user`` ``role`` in ``project``; None removes the role it had."""
    con.execute("DELETE FROM roles WHERE project = ? AND user_name = ?", [project, user])
    if role is not None:
        con.execute("INSERT INTO roles VALUES (?, ?, ?)", [project, user, role.value])


def roles(con: Connection, project: str | None = None) -> pd.DataFrame:
    """Who holds which role, per project (creators included as role 'creator')."""
    where = "" if project is None else "WHERE project = ?"
    return con.execute(
        f"""SELECT * FROM (
              SELECT project, user_name AS user, role FROM roles
              UNION ALL SELECT name, creator, 'creator' FROM projects WHERE creator IS NOT NULL) r
            {where} ORDER BY 1, 2""",
        None if project is None else [project],
    ).df()
