"""Staging: the file's rows as tables in an in-memory DuckDB database, for the checks.

This module owns the one step every check relies on. :func:`staging` turns what
:mod:`~miqa_nb.exchange.validation._rows` split (runs and frames, in Arrow) into the
tables the checks read, and yields them as a :class:`Staging`:

- ``runs``: a view over the runs, which stay in Arrow: one row per run, with
  ``_run``, ``_row`` (its first row), ``_path`` (JSON) and ``_n`` (its length); values
  trimmed of surrounding spaces (but for :data:`formats.UNTRIMMED`).
- ``frames``: a view over the frame rows, which stay in Arrow (``_n`` = 1, so that
  rows are counted alike in both).
- ``split_runs``: the runs of scans whose rows are not all in one run (``first``: the
  scan's first run). Only those can disagree with themselves or repeat a frame across
  runs.
- ``decisions``: one row per decision (CSV: each distinct decision of a scan; JSON:
  every decision of its history), with ``_order``, ``_row``, ``_path``, ``_n``.
- per vocabulary (:data:`VOCABULARIES`): ``<name>_map``, each good value and what it
  parses to, and ``<name>_rejected``, each bad value and why. Each distinct value is
  parsed once: MIQA's plain time and location spellings by DuckDB, the others by
  :mod:`miqa_nb.core.vocabulary`, which gives the same values for those.
- ``users``: the catalog's user names (``name``), which decisions may be credited to;
  empty when they are not known (:attr:`Staging.users` is None: a file checked
  without a catalog).
- ``locations``: what :func:`locations.resolve` finds for each frame's file. It is
  resolved on a second connection while the rows are staged and checked (DuckDB,
  Arrow and the file system let go of the GIL): :attr:`Staging.resolved` waits for it.

Every table is made here, before any check runs; no check makes one another reads.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from miqa_nb.core import arrow
from miqa_nb.core.duck import typed_table
from miqa_nb.core.errors import VocabularyError
from miqa_nb.core.report import Problem, Severity
from miqa_nb.core.vocabulary import Decision, Location, ScanTypes, Timestamp, parse_artifacts
from miqa_nb.exchange import formats, locations
from miqa_nb.exchange.formats import DECISION_COLUMNS
from miqa_nb.exchange.validation._rows import FRAME_COLUMNS, RUN_COLUMNS, trimmed

if TYPE_CHECKING:  # pandas loads on first use: an import never needs it
    import pandas as pd

__all__ = ["STAGING_MEMORY", "VOCABULARIES", "Staging", "connect", "staging"]

#: DuckDB's memory bound for staging an import (it spills to disk beyond).
STAGING_MEMORY = "1GB"
#: Per vocabulary: the staged table and column its values are in. Staging makes
#: ``<name>_map`` and ``<name>_rejected`` of each.
VOCABULARIES: dict[str, tuple[str, str]] = {
    "scan_type": ("runs", "scan_type"),
    "decision": ("decisions", "last_decision"),
    "artifact": ("decisions", "identified_artifacts"),
    "time": ("decisions", "last_decision_created"),
    "location": ("decisions", "location_of_interest"),
}
#: Decision times and locations as MIQA writes them, parsed by DuckDB; any other spelling
#: goes through :mod:`miqa_nb.core.vocabulary`, which gives the same values for these.
_PLAIN_TIME = "%Y-%m-%d %H:%M:%S"
_PLAIN_TIME_RE = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"
_DECIMAL = r"(-?[0-9]{1,15}(?:\.[0-9]{1,15})?)"
_PLAIN_LOCATION = f"^i={_DECIMAL};j={_DECIMAL};k={_DECIMAL}$"
#: The run columns trimmed of surrounding spaces (all but the untrimmed notes).
_TRIMMED = [c for c in RUN_COLUMNS if c not in formats.UNTRIMMED]
_TABLES = (
    "runs",
    "frames",
    "split_runs",
    "decisions",
    "users",
    *(f"{name}_{part}" for name in VOCABULARIES for part in ("map", "rejected")),
)


@dataclass
class Staging:
    """A file's rows, staged: what every check reads (and nothing a check made).

    Attributes
    ----------
    con : duckdb.DuckDBPyConnection
        The in-memory database holding the tables named in :attr:`sources`.
    file : str
        The import file.
    kind : {'csv', 'json'}
    project : str or None
        For a project import, the project every row must belong to.
    roots : locations.DataRoots
        The folders frame files may live in.
    runs, frames : pyarrow.Table
        The same rows as tables ``runs`` and ``frames``, for vectorised tests.
    resolving : concurrent.futures.Future
        The resolution of the frames' locations, under way (see :attr:`resolved`).
    sources : frozenset of str
        What is staged: the table names, and ``locations`` (:attr:`resolved`).
    users : frozenset of str or None
        The catalog's user names (table ``users``); None when not known.
    """

    con: duckdb.DuckDBPyConnection
    file: str
    kind: str
    project: str | None
    roots: locations.DataRoots
    runs: pa.Table
    frames: pa.Table
    resolving: Future[locations.Resolved]
    sources: frozenset[str] = frozenset()
    users: frozenset[str] | None = None

    def q(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """The rows of a query on the staging database."""
        return self.con.execute(sql, list(params) if params else None).fetchall()

    def problem(self, severity: Severity, check: str, message: str, **where: Any) -> Problem:
        """A :class:`Problem` in this file."""
        return Problem(severity, check, message, file=self.file, **where)

    @cached_property
    def numbers(self) -> pa.ChunkedArray:
        """The frame numbers as integers (valid once the frame-number checks pass)."""
        return pc.cast(self.frames.column("frame_number"), pa.int64())

    def drop_rows(self) -> None:
        """Free the rows (``runs`` and ``frames``); the other tables stay."""
        self.con.execute("DROP VIEW frames")
        self.con.execute("DROP VIEW runs")
        self.con.unregister("frames_in")
        self.con.unregister("runs_in")

    @property
    def resolved(self) -> locations.Resolved:
        """Where each frame's file is (waits for the resolution to finish)."""
        return self.resolving.result()


def connect() -> duckdb.DuckDBPyConnection:
    """A fresh in-memory staging database (rows keep the order they were inserted in)."""
    con = duckdb.connect(config={"memory_limit": STAGING_MEMORY})
    con.execute("SET preserve_insertion_order = true")
    return con


@contextmanager
def staging(
    con: duckdb.DuckDBPyConnection,
    file: str,
    parsed: formats.ParsedFile,
    runs: pa.Table,
    frames: pa.Table,
    *,
    roots: Iterable[str | os.PathLike[str]] | None = None,
    scan_types: ScanTypes | None = None,
    users: Collection[str] | None = None,
    project: str | None = None,
) -> Iterator[Staging]:
    """Stage the rows of ``file`` (split by :func:`~._rows.split_rows`) on ``con``:
    every table the checks read (see the module's description).

    The frames' locations are resolved on a second connection meanwhile; leaving the
    context waits for that to finish. ``roots`` defaults to ``MIQA_NB_DATA_ROOTS``, else
    the file's folder; ``scan_types`` to MIQA's; ``users`` (the catalog's user names) to
    not known.
    """
    runs, frames = trimmed(runs, _TRIMMED), trimmed(frames, FRAME_COLUMNS)
    data_roots = locations.DataRoots.from_setting(roots, os.path.dirname(os.path.abspath(file)))
    # The pool is left first (it waits for the resolver), then the cursor it used is closed.
    with con.cursor() as second, ThreadPoolExecutor(1) as pool:
        resolving = pool.submit(
            locations.resolve, second, frames.column("file_location"), file, data_roots
        )
        _make_tables(con, parsed, runs, frames, scan_types or ScanTypes())
        known_users = None if users is None else frozenset(users)
        _stage_users(con, known_users or frozenset())
        yield Staging(
            con,
            file,
            parsed.kind,
            project,
            data_roots,
            runs,
            frames,
            resolving,
            frozenset((*_TABLES, "locations")),
            known_users,
        )


def _make_tables(
    con: duckdb.DuckDBPyConnection,
    parsed: formats.ParsedFile,
    runs: pa.Table,
    frames: pa.Table,
    scan_types: ScanTypes,
) -> None:
    # Views: the rows stay in Arrow (a copy into DuckDB cost more than the checks'
    # scans of them gain).
    con.register("runs_in", runs)
    con.execute("CREATE TEMP VIEW runs AS SELECT * FROM runs_in")
    con.register("frames_in", frames)
    con.execute("CREATE TEMP VIEW frames AS SELECT *, 1 AS _n FROM frames_in")
    _stage_split_runs(con)
    if parsed.kind == "csv":
        _stage_csv_decisions(con)
    else:
        _stage_json_decisions(con, parsed.decisions)
    _stage_vocabularies(con, scan_types)


def _stage_users(con: duckdb.DuckDBPyConnection, users: frozenset[str]) -> None:
    """Table ``users`` (from Arrow: no round trip through pandas)."""
    con.register("users_in", pa.table({"name": arrow.texts(sorted(users))}))
    con.execute("CREATE TABLE users AS SELECT name FROM users_in")
    con.unregister("users_in")


def _stage_split_runs(con: duckdb.DuckDBPyConnection) -> None:
    """Table ``split_runs``. Scans are grouped by a hash of their names: a collision
    only adds runs to look at."""
    names = "project_name, experiment_name, scan_name"
    con.execute(
        f"""CREATE TEMP TABLE split_runs AS
            SELECT _run, _run = min(_run) OVER (PARTITION BY {names}) AS first
            FROM runs WHERE hash({names}) IN (
                SELECT hash({names}) FROM runs GROUP BY 1 HAVING count(*) > 1)"""
    )


def _stage_csv_decisions(con: duckdb.DuckDBPyConnection) -> None:
    """One decision per scan (a scan of several runs: each distinct one, so that every
    value is checked; disagreement between its rows is a check's business)."""
    columns = ", ".join(f'"{c}"' for c in DECISION_COLUMNS)
    con.execute(
        f"""CREATE TABLE decisions AS
        SELECT project_name, experiment_name, scan_name, {columns},
               0 AS _order, _row, NULL::VARCHAR AS _path, 1 AS _n
        FROM runs WHERE last_decision <> '' AND _run NOT IN (SELECT _run FROM split_runs)
        UNION ALL
        SELECT project_name, experiment_name, scan_name, {columns},
               0, min(_row), NULL, 1
        FROM runs SEMI JOIN split_runs USING (_run) WHERE last_decision <> ''
        GROUP BY ALL"""
    )


def _stage_json_decisions(con: duckdb.DuckDBPyConnection, decisions: pd.DataFrame | None) -> None:
    """Every decision of a JSON file's histories, trimmed as the runs are."""
    import pandas as pd

    if decisions is None:
        decisions = pd.DataFrame(columns=list(formats.DECISIONS_TABLE))
    decisions = decisions.astype({"_order": "int64"})
    con.register("decisions_in", decisions)
    select = ", ".join(
        f'"{c}"' if c in formats.UNTRIMMED else f'trim("{c}") AS "{c}"'
        for c in formats.DECISIONS_TABLE[:-2]
    )
    con.execute(
        f"CREATE TABLE decisions AS SELECT {select}, _order, NULL::BIGINT AS _row, _path, "
        "1 AS _n FROM decisions_in"
    )
    con.unregister("decisions_in")


def _stage_vocabularies(con: duckdb.DuckDBPyConnection, scan_types: ScanTypes) -> None:
    """``<name>_map`` and ``<name>_rejected`` of each of :data:`VOCABULARIES`."""
    _parse_distinct(con, "scan_type", scan_types.parse)
    _parse_distinct(con, "decision", lambda v: Decision.parse(v).value)
    _parse_distinct(con, "artifact", lambda v: ";".join(parse_artifacts(v)))
    # The common spellings are parsed by DuckDB (exactly as the vocabulary would);
    # Python parses the others (time zones, fractions...) and words the bad ones.
    con.execute(
        f"""CREATE TABLE time_map AS
            SELECT value, strptime(value, '{_PLAIN_TIME}') AS wall, NULL::INTEGER AS utcoffset
            FROM (SELECT DISTINCT last_decision_created AS value FROM decisions)
            WHERE regexp_full_match(value, '{_PLAIN_TIME_RE}')
              AND try_strptime(value, '{_PLAIN_TIME}') IS NOT NULL"""
    )
    times = _parse_distinct(con, "time", Timestamp.parse, parsed_by_sql=True)
    _extend_map(
        con,
        "time_map",
        {
            "value": list(times),
            "wall": [t.wall for t in times.values()],
            "utcoffset": [t.utcoffset_minutes for t in times.values()],
        },
        {"value": "VARCHAR", "wall": "TIMESTAMP", "utcoffset": "INTEGER"},
    )
    con.execute(
        f"""CREATE TABLE location_map AS
            SELECT value, CAST(p.i AS DOUBLE) AS i, CAST(p.j AS DOUBLE) AS j,
                   CAST(p.k AS DOUBLE) AS k
            FROM (SELECT value, regexp_extract(value, '{_PLAIN_LOCATION}', ['i', 'j', 'k']) AS p
                  FROM (SELECT DISTINCT location_of_interest AS value FROM decisions)
                  WHERE regexp_full_match(value, '{_PLAIN_LOCATION}'))"""
    )
    points = _parse_distinct(con, "location", Location.parse, parsed_by_sql=True)
    _extend_map(
        con,
        "location_map",
        {
            "value": list(points),
            "i": [p.i for p in points.values()],
            "j": [p.j for p in points.values()],
            "k": [p.k for p in points.values()],
        },
        {"value": "VARCHAR", "i": "DOUBLE", "j": "DOUBLE", "k": "DOUBLE"},
    )


def _parse_distinct(
    con: duckdb.DuckDBPyConnection,
    name: str,
    parse: Callable[[str], Any],
    *,
    parsed_by_sql: bool = False,
) -> dict[str, Any]:
    """Parse each distinct value of vocabulary ``name`` once; return ``value -> parsed``.

    Makes ``<name>_rejected`` (value, reason) and, unless DuckDB made ``<name>_map``
    already (``parsed_by_sql``: the values in it are skipped), ``<name>_map`` (value,
    parsed as text)."""
    table, column = VOCABULARIES[name]
    skip = f" WHERE {column} NOT IN (SELECT value FROM {name}_map)" if parsed_by_sql else ""
    distinct = con.execute(f'SELECT DISTINCT "{column}" FROM {table}{skip}').fetchall()
    parsed: dict[str, Any] = {}
    rejected: dict[str, str] = {}
    for (value,) in distinct:
        if value is None or value == "":
            continue
        try:
            parsed[value] = parse(value)
        except VocabularyError as exc:
            rejected[value] = str(exc)
    if rejected:
        reasons = {"value": list(rejected), "reason": list(rejected.values())}
        typed_table(con, f"{name}_rejected", reasons, {"value": "VARCHAR", "reason": "VARCHAR"})
    else:  # the common case, without a round trip through pandas
        con.execute(f"CREATE TABLE {name}_rejected (value VARCHAR, reason VARCHAR)")
    if not parsed_by_sql:
        typed_table(
            con,
            f"{name}_map",
            {"value": list(parsed), "parsed": [str(v) for v in parsed.values()]},
            {"value": "VARCHAR", "parsed": "VARCHAR"},
        )
    return parsed


def _extend_map(
    con: duckdb.DuckDBPyConnection,
    table: str,
    columns: Mapping[str, Sequence[object]],
    types: Mapping[str, str],
) -> None:
    """Add the values Python parsed to the map table DuckDB started."""
    typed_table(con, f"{table}_more", columns, types, temp=True)
    con.execute(f"INSERT INTO {table} SELECT * FROM {table}_more")
    con.execute(f"DROP TABLE {table}_more")
