"""Where frame files are: resolve import-file locations safely inside the data roots.

The rules (``docs/design.md`` says why):

- A relative location resolves against the import file's folder (the specification).
  MIQA's own files resolve against the folder above it: when a location without ``..``
  is not found under the import file's folder but is found under its parent, that file
  is used and a warning says so.
- After resolving ``..`` and symlinks, every file must lie inside the data roots
  (``MIQA_NB_DATA_ROOTS``, a list of folders separated by ``os.pathsep``; by default the
  import file's folder). Anything else is an error, whatever the path looked like.
- ``s3://`` locations are kept as given. A missing file is a warning.

Resolution works on distinct folders, not files (one ``realpath`` and one directory
listing per folder), so a million frames in a hundred thousand folders resolve quickly.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

import duckdb

from miqa_nb.duck import typed_table
from miqa_nb.vocabulary import FRAME_SUFFIXES

ROOTS_ENV = "MIQA_NB_DATA_ROOTS"

#: Statuses of a resolved location, and whether each stops an import.
OK, S3, MISSING, GRANDPARENT = "ok", "s3", "missing", "grandparent"
SUFFIX, OUTSIDE, ESCAPES, SYMLINK = "suffix", "outside-roots", "escapes-roots", "symlink-escapes"
ERRORS = frozenset({SUFFIX, OUTSIDE, ESCAPES, SYMLINK})


@dataclass(frozen=True)
class DataRoots:
    """The folders frame files may live in (real paths, symlinks resolved)."""

    folders: tuple[str, ...]

    @classmethod
    def from_setting(
        cls, roots: Iterable[str | os.PathLike[str]] | None, default: str | os.PathLike[str]
    ) -> DataRoots:
        """Use ``roots``; else the ``MIQA_NB_DATA_ROOTS`` variable; else ``default``."""
        if roots is None:
            env = os.environ.get(ROOTS_ENV, "")
            roots = [p for p in env.split(os.pathsep) if p] or [default]
        return cls(tuple(os.path.realpath(os.fspath(r)) for r in roots))

    def contains(self, real_path: str) -> bool:
        """True when ``real_path`` lies inside one of the roots (or is one)."""
        return (real_path.rstrip(os.sep) + os.sep).startswith(self._prefixes)

    def sql_contains(self, column: str) -> str:
        """SQL: whether real path ``column`` lies inside one of the roots (as :meth:`contains`)."""
        tests = [
            f"starts_with(rtrim({column}, '/') || '/', '{p.replace(chr(39), chr(39) * 2)}')"
            for p in self._prefixes
        ]
        return "(" + " OR ".join(tests or ["false"]) + ")"

    @cached_property
    def _prefixes(self) -> tuple[str, ...]:
        return tuple(root.rstrip(os.sep) + os.sep for root in self.folders)

    def __str__(self) -> str:
        return os.pathsep.join(self.folders)


class _Folders:
    """Real paths and listings of folders, each looked up once (symlinks resolved)."""

    def __init__(self) -> None:
        self._real: dict[str, tuple[str, bool]] = {}
        self._listings: dict[str, dict[str, bool]] = {}

    def listing(self, real_folder: str) -> dict[str, bool]:
        """Names in a folder, each mapped to whether it is a symlink ({} when absent)."""
        found = self._listings.get(real_folder)
        if found is None:
            try:
                with os.scandir(real_folder) as entries:
                    found = {entry.name: entry.is_symlink() for entry in entries}
            except OSError:
                found = {}
            self._listings[real_folder] = found
        return found

    def real(self, folder: str) -> tuple[str, bool]:
        """``os.path.realpath`` of a normalised absolute folder, and whether it exists,
        walking cached parents (nothing is listed below a folder that does not exist)."""
        found = self._real.get(folder)
        if found is None:
            parent, _, name = folder.rpartition("/")
            if not name:
                found = (folder or "/", True)
            else:
                real_parent, parent_exists = self.real(parent or "/")
                path = real_parent.rstrip("/") + "/" + name
                entry = self.listing(real_parent).get(name) if parent_exists else None
                if entry:  # a symlink
                    path = os.path.realpath(path)
                    found = (path, os.path.isdir(path))
                else:
                    found = (path, entry is not None)
            self._real[folder] = found
        return found


_SUFFIX_SQL = " OR ".join(f"ends_with(tail, '{s}')" for s in FRAME_SUFFIXES)
_TAIL = max(len(s) for s in FRAME_SUFFIXES)
#: Locations that need ``os.path.normpath`` (``.``/``..`` segments, doubled slashes).
_NEEDS_NORM = r"(^|/)\.\.?(/|$)|//"
_DOTDOT = r"(^|/)\.\.(/|$)"


def resolve(
    con: duckdb.DuckDBPyConnection,
    values: str,
    import_file: str | os.PathLike[str],
    roots: DataRoots,
) -> None:
    """Resolve the distinct file locations in table ``values`` (column ``value``).

    Creates table ``location_resolved``: ``value``, ``resolved`` (the real absolute path,
    or the ``s3://`` URL; NULL for errors) and ``status`` (``ok``, ``s3``, ``missing``,
    ``grandparent`` or one of :data:`ERRORS`). :func:`describe` words a status.

    The work is per folder: SQL splits candidates into folder and name, each distinct
    folder is resolved once (its real path through cached parents, one listing), and
    SQL joins files back to their folder's listing.
    """
    base = os.path.dirname(os.path.abspath(import_file))
    grandparent = os.path.dirname(base)
    folders = _Folders()
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE loc_in AS
            SELECT value,
                   lower(value[:5]) = 's3://' AS s3,
                   ({_SUFFIX_SQL}) AND strpos(value, chr(0)) = 0 AS suffix_ok,
                   starts_with(value, '/') AS absolute,
                   -- cheap prefilters first: most locations have no dot segments
                   (starts_with(value, '.') OR contains(value, '/.'))
                       AND regexp_matches(value, '{_DOTDOT}') AS dotdot,
                   (starts_with(value, '.') OR contains(value, '/.') OR contains(value, '//'))
                       AND regexp_matches(value, '{_NEEDS_NORM}') AS needs_norm
            FROM (SELECT value, lower(value[-{_TAIL}:]) AS tail FROM {values})"""
    )
    # Candidates: (value, kind, normalised absolute path). Rare odd paths go through Python.
    odd = con.execute(
        "SELECT value, absolute FROM loc_in WHERE needs_norm AND suffix_ok AND NOT s3"
    ).fetchall()
    typed_table(
        con,
        "loc_normalised",
        {
            "value": [v for v, _ in odd],
            "candidate": [os.path.normpath(v if a else os.path.join(base, v)) for v, a in odd],
        },
        {"value": "VARCHAR", "candidate": "VARCHAR"},
        temp=True,
    )
    heads = [
        r[0]
        for r in con.execute(
            "SELECT DISTINCT split_part(value, '/', 1) FROM loc_in "
            "WHERE NOT absolute AND NOT dotdot AND suffix_ok AND NOT s3"
        ).fetchall()
    ]
    typed_table(
        con,
        "loc_heads",
        {"head": [h for h in heads if os.path.lexists(os.path.join(grandparent, h))]},
        {"head": "VARCHAR"},
        temp=True,
    )
    con.execute(
        """CREATE OR REPLACE TEMP TABLE loc_cand AS
            SELECT *, parse_dirpath(candidate) AS dir, parse_filename(candidate) AS name FROM (
            SELECT i.value, 'parent' AS kind, i.absolute,
                   coalesce(n.candidate,
                            CASE WHEN i.absolute THEN i.value ELSE $base || '/' || i.value END)
                       AS candidate
            FROM loc_in i LEFT JOIN loc_normalised n USING (value)
            WHERE i.suffix_ok AND NOT i.s3
            UNION ALL
            SELECT value, 'grandparent', false, $grand || '/' || value FROM loc_in
            WHERE NOT absolute AND NOT dotdot AND NOT needs_norm AND suffix_ok AND NOT s3
              AND split_part(value, '/', 1) IN (SELECT head FROM loc_heads))""",
        {"base": base.rstrip("/"), "grand": grandparent.rstrip("/")},
    )
    dirs = [r[0] for r in con.execute("SELECT DISTINCT dir FROM loc_cand").fetchall()]
    resolved = [folders.real(d or "/") for d in dirs]
    real_grandparent = folders.real(grandparent)[0]
    gp_root = DataRoots((real_grandparent,))
    typed_table(
        con,
        "loc_real_dirs",
        {"dir": dirs, "real_dir": [r for r, _ in resolved]},
        {"dir": "VARCHAR", "real_dir": "VARCHAR"},
        temp=True,
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE loc_dirs AS
            SELECT *, {roots.sql_contains("real_dir")} AS inside,
                   {gp_root.sql_contains("real_dir")} AS inside_gp
            FROM loc_real_dirs"""
    )
    existing = sorted({r for r, exists in resolved if exists})
    names, links, owners = [], [], []
    for real_dir in existing:
        for name, is_link in folders.listing(real_dir).items():
            owners.append(real_dir)
            names.append(name)
            links.append(is_link)
    typed_table(
        con,
        "loc_entries",
        {"real_dir": owners, "name": names, "is_link": links},
        {"real_dir": "VARCHAR", "name": "VARCHAR", "is_link": "BOOLEAN"},
        temp=True,
    )
    con.execute(
        """CREATE OR REPLACE TEMP TABLE loc_found AS
           SELECT c.value, c.kind, c.absolute,
                  rtrim(d.real_dir, '/') || '/' || c.name AS real,
                  e.name IS NOT NULL AS present, coalesce(e.is_link, false) AS is_link,
                  d.inside, d.inside_gp
           FROM loc_cand c JOIN loc_dirs d USING (dir)
           LEFT JOIN loc_entries e ON e.real_dir = d.real_dir AND e.name = c.name"""
    )
    # Files that are themselves symlinks (rare): resolve each one.
    links_found = con.execute("SELECT DISTINCT real FROM loc_found WHERE is_link").fetchall()
    if links_found:
        targets = [os.path.realpath(r) for (r,) in links_found]
        typed_table(
            con,
            "loc_links",
            {
                "real": [r for (r,) in links_found],
                "target": targets,
                "present": [os.path.exists(t) for t in targets],
                "inside": [roots.contains(t) for t in targets],
                "inside_gp": [gp_root.contains(t) for t in targets],
            },
            {
                "real": "VARCHAR",
                "target": "VARCHAR",
                "present": "BOOLEAN",
                "inside": "BOOLEAN",
                "inside_gp": "BOOLEAN",
            },
            temp=True,
        )
        con.execute(
            """UPDATE loc_found f SET real = l.target, present = l.present,
                      inside = l.inside, inside_gp = l.inside_gp
               FROM loc_links l WHERE f.is_link AND f.real = l.real"""
        )
    con.execute(
        f"""CREATE OR REPLACE TABLE location_resolved AS
            SELECT p.value,
                   CASE WHEN p.inside AND p.present THEN p.real
                        WHEN g.present AND (g.inside OR g.inside_gp) THEN g.real
                        WHEN p.inside THEN p.real END AS resolved,
                   CASE WHEN p.inside AND p.present THEN '{OK}'
                        WHEN g.present AND (g.inside OR g.inside_gp) THEN '{GRANDPARENT}'
                        WHEN p.inside THEN '{MISSING}'
                        WHEN p.is_link THEN '{SYMLINK}'
                        WHEN NOT p.absolute THEN '{ESCAPES}'
                        ELSE '{OUTSIDE}' END AS status,
                   p.real AS looked_at
            FROM loc_found p
            LEFT JOIN (SELECT * FROM loc_found WHERE kind = 'grandparent') g USING (value)
            WHERE p.kind = 'parent'
            UNION ALL
            SELECT value, CASE WHEN s3 THEN value END, CASE WHEN s3 THEN '{S3}' ELSE '{SUFFIX}' END,
                   NULL
            FROM loc_in WHERE s3 OR NOT suffix_ok"""
    )
    for table in (
        "loc_in", "loc_normalised", "loc_heads", "loc_cand", "loc_real_dirs", "loc_dirs",
        "loc_entries", "loc_found", "loc_links",
    ):  # fmt: skip
        con.execute(f"DROP TABLE IF EXISTS {table}")  # up to a million rows each: free them


def describe(
    status: str, looked_at: str | None, import_file: str | os.PathLike[str], roots: DataRoots
) -> str:
    """A sentence for the report about one location's status."""
    base = os.path.dirname(os.path.abspath(import_file))
    allowed = f"the data roots ({roots}); set {ROOTS_ENV} to allow another folder"
    return {
        SUFFIX: f"a frame file must end in {', '.join(FRAME_SUFFIXES)}",
        GRANDPARENT: (
            f"not found under {base}, but found under {os.path.dirname(base)} (where MIQA "
            "resolves relative paths); write paths relative to the import file's folder"
        ),
        MISSING: f"file not found: {looked_at}",
        SYMLINK: f"a symlink that leads to {looked_at}, outside {allowed}",
        ESCAPES: f"'..' or a symlinked folder leads to {looked_at}, outside {allowed}",
        OUTSIDE: f"{looked_at} is outside {allowed}",
    }.get(status, "")
