"""Move validated imports into the catalog.

Everything here works on an open catalog connection inside the caller's transaction;
permissions and backups are the :class:`~miqa_nb.catalog.Catalog`'s business.

- :func:`attach_staged` makes a validated import's tables visible to the catalog
  connection (as Arrow tables: no copy through Python objects).
- :func:`diff` says, per level, what an import would add, remove and change.
- :func:`foreign_decisions` finds the decisions it would add or remove that are not
  the importing user's own of the codes it may record (only a project's creator and
  superusers may import those; :func:`~miqa_nb.core.permissions.require_own_decisions`).
- :func:`apply` writes it: ``replace`` gives the file's projects exactly the file's
  state; ``append`` adds what is new and keeps what exists; ``replace-experiments``
  gives the file's experiments exactly the file's state (their scans, frames and
  decisions in the catalog are removed) and keeps the projects' other experiments.

Exports are :mod:`miqa_nb.exchange.export`'s business.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import pyarrow as pa

from miqa_nb.core import arrow
from miqa_nb.core.duck import one
from miqa_nb.exchange.validation import Staged

#: Replace the file's experiments only (what XNAT's ``overwrite=delete`` does to a session).
REPLACE_EXPERIMENTS = "replace-experiments"
MODES = ("replace", "append", REPLACE_EXPERIMENTS)

#: level -> (key columns, value columns)
LEVELS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "experiments": (("project", "name"), ("note",)),
    "scans": (("project", "experiment", "name"), ("type", "subject_id", "session_id", "link")),
    "frames": (("project", "experiment", "scan", "frame_number"), ("location",)),
}
#: Columns of the ``decisions`` table an import writes (``id`` is assigned on insert).
DECISION_COLUMNS = (
    "project",
    "experiment",
    "scan",
    "decision",
    "creator",
    "note",
    "created",
    "created_utcoffset",
    "artifacts_present",
    "artifacts_absent",
    "location",
    "loc_i",
    "loc_j",
    "loc_k",
)
#: What makes two decisions the same one (an export carries no more than this).
DECISION_FIELDS = tuple(
    c for c in DECISION_COLUMNS if c not in ("artifacts_absent", "loc_i", "loc_j", "loc_k")
)


def attach_staged(con: duckdb.DuckDBPyConnection, staged: Staged) -> None:
    """Register the staged tables ``v_*`` and ``v_projects`` on the catalog connection."""
    for table in ("experiments", "scans", "decisions"):
        con.register(f"v_{table}", staged.table(table))
    staged.attach_frames(con)
    con.register("v_projects", pa.table({"name": arrow.texts(staged.projects)}))


def detach_staged(con: duckdb.DuckDBPyConnection, staged: Staged) -> None:
    for table in ("experiments", "scans", "decisions", "projects"):
        con.unregister(f"v_{table}")
    staged.detach_frames(con)


def _in_projects(mode: str = "replace", level: str = "") -> str:
    """The catalog rows of ``level`` an import in ``mode`` is about: those of the file's
    projects, or (``replace-experiments``) of the file's experiments only."""
    if mode != REPLACE_EXPERIMENTS:
        return "project IN (SELECT name FROM v_projects)"
    name = "name" if level == "experiments" else "experiment"
    return f"(project, {name}) IN (SELECT project, name FROM v_experiments)"


def diff(con: duckdb.DuckDBPyConnection, mode: str) -> list[tuple[str, int, int, int, int, int]]:
    """Per level: what the staged import would add, remove, change, leave unchanged,
    and (``append``) the conflicts it would leave as they are (the columns of
    :data:`~miqa_nb.core.report.CHANGE_COLUMNS`, :attr:`Report.change_counts
    <miqa_nb.core.report.Report.change_counts>`)."""
    rows: list[tuple[str, int, int, int, int, int]] = []
    (new_projects,) = one(
        con, "SELECT count(*) FROM v_projects WHERE name NOT IN (SELECT name FROM projects)"
    ) or (0,)
    (in_file,) = one(con, "SELECT count(*) FROM v_projects") or (0,)
    rows.append(("projects", new_projects, 0, 0, in_file - new_projects, 0))
    for level, (keys, values) in LEVELS.items():
        if not one(con, f"SELECT 1 FROM {level} WHERE {_in_projects(mode, level)} LIMIT 1"):
            # Nothing of these projects in the catalog yet: all is new (no join to run).
            (in_file,) = one(con, f"SELECT count(*) FROM v_{level}") or (0,)
            rows.append((level, in_file, 0, 0, 0, 0))
            continue
        on = " AND ".join(f"v.{k} = c.{k}" for k in keys)
        same = " AND ".join(f"v.{c} IS NOT DISTINCT FROM c.{c}" for c in values)
        added, removed, changed, unchanged = one(
            con,
            f"""SELECT count(*) FILTER (c.{keys[-1]} IS NULL),
                       count(*) FILTER (v.{keys[-1]} IS NULL),
                       count(*) FILTER (v.{keys[-1]} IS NOT NULL AND c.{keys[-1]} IS NOT NULL
                                        AND NOT ({same})),
                       count(*) FILTER (v.{keys[-1]} IS NOT NULL AND c.{keys[-1]} IS NOT NULL
                                        AND {same})
                FROM v_{level} v
                FULL OUTER JOIN (SELECT * FROM {level} WHERE {_in_projects(mode, level)}) c
                ON {on}""",
        ) or (0, 0, 0, 0)
        if mode == "append":
            rows.append((level, added, 0, 0, unchanged, changed))
        else:
            rows.append((level, added, removed, changed, unchanged, 0))
    fields = ", ".join(DECISION_FIELDS)
    (in_file,) = one(con, "SELECT count(*) FROM v_decisions") or (0,)
    file_only, catalog_only = in_file, 0  # all new: the catalog has none of theirs
    scope = _in_projects(mode)
    if one(con, f"SELECT 1 FROM decisions WHERE {scope} LIMIT 1"):
        (file_only,) = one(
            con,
            f"SELECT count(*) FROM (SELECT {fields} FROM v_decisions EXCEPT ALL "
            f"SELECT {fields} FROM decisions WHERE {scope})",
        ) or (0,)
        (catalog_only,) = one(
            con,
            f"SELECT count(*) FROM (SELECT {fields} FROM decisions WHERE {scope} "
            f"EXCEPT ALL SELECT {fields} FROM v_decisions)",
        ) or (0,)
    removed = catalog_only if mode != "append" else 0
    rows.append(("decisions", file_only, removed, 0, in_file - file_only, 0))
    return rows


def foreign_decisions(
    con: duckdb.DuckDBPyConnection,
    mode: str,
    user: str,
    codes: Sequence[str],
    limit: int = 5,
) -> tuple[int, int, list[str]]:
    """Decisions the staged import would add, or (``replace``) remove, that are not
    ``user``'s own with one of ``codes``: how many it would add, how many remove, and
    the first few of them described (``added 'UN' by 'admin' on E1/S1``).

    Decisions count as :func:`diff` and :func:`apply` count them: identical decisions
    in the file and the catalog are neither added nor removed. A decision credited to
    nobody is not ``user``'s own.
    """
    fields = ", ".join(DECISION_FIELDS)
    foreign = "(creator IS DISTINCT FROM $user OR NOT list_contains($codes, decision))"
    params = {"user": user, "codes": list(codes)}
    in_catalog = f"SELECT {fields} FROM decisions WHERE {_in_projects(mode)} AND {foreign}"
    described = (
        "'{verb} ' || to_json(decision) || ' by ' || coalesce(to_json(creator)::VARCHAR, 'nobody') "
        "|| ' on ' || experiment || '/' || scan"
    )

    def side(verb: str, select: str) -> tuple[int, list[str]]:
        ((count, first),) = con.execute(
            f"""WITH d AS ({select})
                SELECT (SELECT count(*) FROM d),
                       (SELECT list(t ORDER BY project, experiment, scan, t) FROM
                          (SELECT project, experiment, scan, {described.format(verb=verb)} AS t
                           FROM d ORDER BY ALL LIMIT {limit}))""",
            params,
        ).fetchall()
        return int(count), list(first or [])

    file_side = f"SELECT {fields} FROM v_decisions WHERE {foreign}"
    if mode == "append":
        same = " AND ".join(f"v.{c} IS NOT DISTINCT FROM c.{c}" for c in DECISION_FIELDS)
        added = side(
            "add",
            f"SELECT {fields} FROM v_decisions v WHERE {foreign} "
            f"AND NOT EXISTS (SELECT 1 FROM decisions c WHERE {same})",
        )
        return added[0], 0, added[1]
    added = side("add", f"{file_side} EXCEPT ALL {in_catalog}")
    removed = side("remove", f"{in_catalog} EXCEPT ALL {file_side}")
    return added[0], removed[0], (added[1] + removed[1])[:limit]


def conflicts(con: duckdb.DuckDBPyConnection, limit: int = 200) -> list[tuple[str, str, str]]:
    """For ``append``: (level, key, what differs) where the file disagrees with the catalog."""
    found: list[tuple[str, str, str]] = []
    for level, (keys, values) in LEVELS.items():
        on = " AND ".join(f"v.{k} = c.{k}" for k in keys)
        differs = " OR ".join(f"v.{c} IS DISTINCT FROM c.{c}" for c in values)
        key = " || ' / ' || ".join(f"CAST(v.{k} AS VARCHAR)" for k in keys)
        detail = " || '; ' || ".join(
            f"'{c}: catalog ' || coalesce(to_json(c.{c})::VARCHAR, 'null') || ', file ' || "
            f"coalesce(to_json(v.{c})::VARCHAR, 'null')"
            for c in values
        )
        for k, d in con.execute(
            f"SELECT {key}, {detail} FROM v_{level} v JOIN {level} c ON {on} WHERE {differs} "
            f"ORDER BY 1 LIMIT {limit}"
        ).fetchall():
            found.append((level, k, d))
    return found


def apply(
    con: duckdb.DuckDBPyConnection, mode: str, creator: str, *, after_id: int | None = None
) -> None:
    """Write the staged import (inside the caller's transaction).

    New decisions get the ids after ``after_id``, by default the largest ``con``
    holds (a copy of some projects passes the whole catalog's)."""
    con.execute(
        "INSERT INTO projects (name, creator) SELECT name, ? FROM v_projects "
        "WHERE name NOT IN (SELECT name FROM projects)",
        [creator],
    )
    if mode != "append":
        for level in ("decisions", *LEVELS):
            con.execute(f"DELETE FROM {level} WHERE {_in_projects(mode, level)}")
        for level in LEVELS:
            _insert(con, level, f"SELECT * FROM v_{level}")
        new_decisions = "SELECT * FROM v_decisions"
    else:
        for level, (keys, _values) in LEVELS.items():
            on = " AND ".join(f"v.{k} = c.{k}" for k in keys)
            _insert(
                con,
                level,
                f"SELECT v.* FROM v_{level} v WHERE NOT EXISTS (SELECT 1 FROM {level} c WHERE {on})",
            )
        same = " AND ".join(f"v.{c} IS NOT DISTINCT FROM c.{c}" for c in DECISION_FIELDS)
        new_decisions = (
            f"SELECT v.* FROM v_decisions v "
            f"WHERE NOT EXISTS (SELECT 1 FROM decisions c WHERE {same})"
        )
    columns = ", ".join(DECISION_COLUMNS)
    base = "(SELECT coalesce(max(id), 0) FROM decisions)" if after_id is None else int(after_id)
    con.execute(
        f"""INSERT INTO decisions (id, {columns})
            SELECT {base} + row_number() OVER (ORDER BY project, experiment, scan, seq), {columns}
            FROM ({new_decisions})"""
    )


def _insert(con: duckdb.DuckDBPyConnection, level: str, select: str) -> None:
    if level != "frames":
        con.execute(f"INSERT INTO {level} {select}")
        return
    # Frames are many, and always read in an explicit order: DuckDB inserts them on all
    # cores when it need not keep their order (a third faster for a million).
    con.execute("SET preserve_insertion_order = false")
    try:
        con.execute(f"INSERT INTO frames {select}")
    finally:
        con.execute("RESET preserve_insertion_order")
