"""The scan types a catalog accepts beyond MIQA's: new types, and other names for types.

Table ``scan_types``: a row with ``alias_of`` NULL is a type of the catalog's own; one
with ``alias_of`` set is another name for that type. A name means one type, in any
case. Functions over an open catalog connection, called by
:class:`~miqa_nb.catalog.Catalog` inside its transactions; permissions are checked by
the caller, before.
"""

from __future__ import annotations

from miqa_nb.core.duck import Connection, one
from miqa_nb.core.errors import MiqaError
from miqa_nb.core.vocabulary import ScanTypes

__all__ = ["add_scan_type", "remove_scan_type", "scan_types"]


def scan_types(con: Connection) -> ScanTypes:
    """The scan types this catalog accepts (MIQA's, plus its own)."""
    rows = con.execute("SELECT name, alias_of FROM scan_types").fetchall()
    return ScanTypes(
        extra=tuple(n for n, a in rows if a is None),
        aliases={n: a for n, a in rows if a is not None},
    )


def add_scan_type(con: Connection, name: str, alias_of: str | None) -> str:
    """Accept ``name`` as a new type, or as another name for ``alias_of``; returns the
    type the name means. A name that already means that type changes nothing; one that
    means another type is refused."""
    known = scan_types(con)
    target = None if alias_of is None else known.parse(alias_of)
    means = known.known(name)
    if means is not None:
        if (means == target) if target else (means.lower() == name.lower()):
            return means  # already so
        what = "the scan type" if means.lower() == name.lower() else "a name of"
        raise MiqaError(
            f"{name!r} is already {what} {means!r} (names match in any case), and a "
            "name means one type only; choose another name"
        )
    con.execute("INSERT INTO scan_types VALUES (?, ?)", [name, target])
    return target or name


def remove_scan_type(con: Connection, name: str) -> list[str]:
    """Remove a type (with its other names) or a name the catalog added; returns the
    names removed, the one asked for first. MIQA's own names, and types scans have,
    are refused."""
    found = one(con, "SELECT name, alias_of FROM scan_types WHERE lower(name) = lower(?)", [name])
    if found is None:
        builtin = scan_types(con).known(name) is not None
        raise MiqaError(
            f"scan type {name!r} is one of MIQA's names; it cannot be removed"
            if builtin
            else f"scan type {name!r} is not one this catalog added, so there is nothing to "
            "remove; the catalog's own types and names are listed beside MIQA's"
        )
    stored, alias_of = found
    if alias_of is None:
        (used,) = one(con, "SELECT count(*) FROM scans WHERE type = ?", [stored]) or (0,)
        if used:
            raise MiqaError(
                f"{used} scan(s) have type {stored!r}; import them with another type "
                "(or remove their projects) before removing it"
            )
    removed = [
        str(r[0])
        for r in con.execute(
            "DELETE FROM scan_types WHERE name = ? OR alias_of = ? RETURNING name",
            [stored, stored],
        ).fetchall()
    ]
    return sorted(removed, key=lambda n: (n != stored, n.lower()))
