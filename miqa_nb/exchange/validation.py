"""Validate an import file: one report of every problem, and the clean tables.

:func:`validate` reads a file (:mod:`miqa_nb.exchange.formats`) as Arrow record batches and
splits its rows into two tables:

- ``runs``: one row per *run* of consecutive rows with the same names and scan-level
  values (a scan's frames, in any file MIQA or a script writes), with ``_row`` (its
  first row) and ``_n`` (its length). Every check of those columns runs here, on a
  tenth of the rows, with the same result as on all of them: each run stands for
  ``_n`` identical rows.
- ``frames``: per row, its run, ``frame_number`` and ``file_location``.

``runs`` is staged in an in-memory DuckDB database and checked there with SQL.
Vocabulary (scan types, decisions, artifacts, times, locations) is checked on
*distinct* values with :mod:`miqa_nb.core.vocabulary`, so a million rows cost a few thousand
parses. Cross-row rules (duplicate frames, scan-level values that disagree) are SQL.
``frames`` stays in Arrow: vectorised tests (NumPy, Arrow compute) clear the common
case, and SQL over a view of it describes the problems they find.

When the report has no error, the staging database holds the validated tables
``v_experiments``, ``v_scans`` and ``v_decisions`` in the catalog's column layout, and
:attr:`Staged.frames` the frames, ready to be written in one transaction.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from tqdm.auto import tqdm

from miqa_nb.core.duck import one, typed_table
from miqa_nb.core.errors import VocabularyError
from miqa_nb.core.report import Problem, Report
from miqa_nb.core.vocabulary import (
    Decision,
    Location,
    ScanTypes,
    Timestamp,
    parse_artifacts,
)
from miqa_nb.exchange import formats, locations
from miqa_nb.exchange.formats import DECISION_COLUMNS

#: At most this many distinct offending values are listed per check (the rest are counted).
MAX_LISTED = 200
NAME_COLUMNS = ("project_name", "experiment_name", "scan_name")
SCAN_LEVEL = ("scan_type", "subject_id", "session_id", "scan_link", *DECISION_COLUMNS)
#: The columns a run of rows shares (everything but the frame's number and file).
RUN_COLUMNS = (*NAME_COLUMNS, "experiment_notes", *SCAN_LEVEL)
FRAME_COLUMNS = ("frame_number", "file_location")
MAX_TEXT = 255
#: Decision times and locations as MIQA writes them, parsed by DuckDB; any other spelling
#: goes through :mod:`miqa_nb.core.vocabulary`, which gives the same values for these.
_PLAIN_TIME = "%Y-%m-%d %H:%M:%S"
_PLAIN_TIME_RE = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"
_DECIMAL = r"(-?[0-9]{1,15}(?:\.[0-9]{1,15})?)"
_PLAIN_LOCATION = f"^i={_DECIMAL};j={_DECIMAL};k={_DECIMAL}$"
#: DuckDB's memory bound for staging an import (it spills to disk beyond).
STAGING_MEMORY = "1GB"


@dataclass
class Staged:
    """A validated import: the report and, when it has no error, the staged tables."""

    report: Report
    con: duckdb.DuckDBPyConnection
    projects: list[str] = field(default_factory=list)
    #: The frames, in Arrow (a million rows are not copied into the staging database):
    #: locations in parts (see :class:`locations.Resolved`).
    frames: pa.Table | None = None
    #: The other levels (experiments, scans, decisions), in the catalog's layout.
    tables: dict[str, pa.Table] = field(default_factory=dict)

    def table(self, level: str) -> pa.Table:
        """A staged level as Arrow (not frames: see :meth:`attach_frames`)."""
        return self.tables[level]

    def attach_frames(self, con: duckdb.DuckDBPyConnection, name: str = "v_frames") -> None:
        """View ``name`` on ``con``: the frames in the catalog's layout (joined as read)."""
        assert self.frames is not None
        con.register(f"{name}_parts", self.frames)
        con.execute(
            f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT project, experiment, scan, "
            f"frame_number, {locations.PATH_SQL.format(value='file_location')} AS location "
            f"FROM {name}_parts"
        )

    def detach_frames(self, con: duckdb.DuckDBPyConnection, name: str = "v_frames") -> None:
        con.execute(f"DROP VIEW IF EXISTS {name}")
        con.unregister(f"{name}_parts")

    def close(self) -> None:
        """Free the staging database."""
        self.frames = None
        self.tables = {}
        self.con.close()


def validate(
    path: str | os.PathLike[str],
    *,
    roots: Iterable[str | os.PathLike[str]] | None = None,
    scan_types: ScanTypes | None = None,
    project: str | None = None,
    progress: bool = False,
) -> Staged:
    """Check an import file and stage its content.

    Parameters
    ----------
    path : path-like
        A CSV or JSON import file.
    roots : list of path-like, optional
        Folders frame files may live in; default ``MIQA_NB_DATA_ROOTS`` or the file's folder.
    scan_types : ScanTypes, optional
        The scan types to accept (MIQA's by default).
    project : str, optional
        For a project import: every row must belong to this project.
    progress : bool
        Show a progress bar over the steps.

    Returns
    -------
    Staged
        ``report`` lists every problem; ``report.ok`` tells whether it can be imported.
    """
    path = os.fspath(path)
    report = Report(file=path)
    con = duckdb.connect(config={"memory_limit": STAGING_MEMORY})
    con.execute("SET preserve_insertion_order = true")
    staged = Staged(report, con)
    steps = ("reading", "checking values", "checking file locations", "staging")
    with tqdm(total=len(steps), desc=os.path.basename(path), disable=not progress) as bar:
        bar.set_postfix_str(steps[0])
        parsed = formats.read(path)
        runs, frames = _split(parsed.batches())
        report.extend(parsed.problems)
        if runs is None or not report.ok:
            return staged
        frames = _trimmed(frames, FRAME_COLUMNS)
        roots_ = locations.DataRoots.from_setting(roots, os.path.dirname(os.path.abspath(path)))
        # The locations are resolved (in DuckDB, Arrow and the file system, which let go
        # of the GIL) on a second connection while the rows are staged and checked.
        with ThreadPoolExecutor(1) as pool, con.cursor() as second:
            resolving = pool.submit(
                locations.resolve, second, frames.column("file_location"), path, roots_
            )
            runs = _stage_rows(con, runs, frames, parsed)
            bar.update()
            bar.set_postfix_str(steps[1])
            checker = _Checker(con, report, scan_types or ScanTypes(), runs, frames)
            checker.run(parsed.kind, project)
            bar.update()
            bar.set_postfix_str(steps[2])
            checker.check_locations(path, roots_, resolving.result())
        bar.update()
        bar.set_postfix_str(steps[3])
        if report.ok:
            staged.tables = _build_tables(con)
            staged.frames = checker.frames_table()
            staged.attach_frames(con)
        report.counts = _counts(con, staged)
        staged.projects = [
            r[0]
            for r in con.execute("SELECT DISTINCT project_name FROM runs ORDER BY 1").fetchall()
        ]
        if report.ok:  # only the v_* tables are needed from here on
            con.execute("DROP VIEW frames")
            con.execute("DROP TABLE runs")
            con.unregister("frames_in")
        bar.update()
    return staged


def check(path: str | os.PathLike[str], **options: Any) -> Report:
    """:func:`validate` for its report only (the staging database is freed at once)."""
    staged = validate(path, **options)
    staged.close()
    return staged.report


def _split(batches: Iterable[pa.RecordBatch]) -> tuple[pa.Table | None, pa.Table | None]:
    """Split rows into ``runs`` (each first row of a run of equal :data:`RUN_COLUMNS`,
    with ``_run``, ``_row``, ``_path`` and the run's length ``_n``) and ``frames``
    (``_run``, the frame columns, ``_row``, ``_path``); None when there are no rows.

    Works batch by batch, so a streamed file is never whole in memory; a run that goes
    on in the next batch stays one run.
    """
    runs: list[pa.RecordBatch] = []
    frames: list[pa.RecordBatch] = []
    lengths: list[np.ndarray] = []
    latest: tuple[int, int] | None = None  # where the length of the latest run is
    last_row: list[Any] | None = None
    count = 0
    for batch in batches:
        n = batch.num_rows
        if not n:
            continue
        starts_run = np.zeros(n, dtype=bool)
        starts_run[0] = last_row != [batch.column(c)[0].as_py() for c in RUN_COLUMNS]
        if n > 1:
            head, tail = batch.slice(0, n - 1), batch.slice(1)
            for column in RUN_COLUMNS:
                differs = pc.not_equal(tail.column(column), head.column(column))
                starts_run[1:] |= differs.to_numpy(zero_copy_only=False)
        starts = np.flatnonzero(starts_run)
        if latest is not None and not starts_run[0]:  # the latest run goes on
            lengths[latest[0]][latest[1]] += starts[0] if len(starts) else n
        first = pa.array(starts, pa.int64())
        runs.append(
            pa.RecordBatch.from_arrays(
                [
                    pa.array(np.arange(count, count + len(starts), dtype=np.int64)),
                    *(batch.column(c).take(first) for c in (*RUN_COLUMNS, "_row", "_path")),
                ],
                names=["_run", *RUN_COLUMNS, "_row", "_path"],
            )
        )
        lengths.append(np.diff(np.append(starts, n)))
        if len(starts):
            latest = (len(lengths) - 1, len(starts) - 1)
        frames.append(
            pa.RecordBatch.from_arrays(
                [
                    pa.array(np.cumsum(starts_run, dtype=np.int64) + (count - 1)),
                    *(batch.column(c) for c in (*FRAME_COLUMNS, "_row", "_path")),
                ],
                names=["_run", *FRAME_COLUMNS, "_row", "_path"],
            )
        )
        count += len(starts)
        last_row = [batch.column(c)[n - 1].as_py() for c in RUN_COLUMNS]
    if not runs:
        return None, None
    table = pa.Table.from_batches(runs).append_column("_n", pa.array(np.concatenate(lengths)))
    return table, pa.Table.from_batches(frames)


def _stage_rows(
    con: duckdb.DuckDBPyConnection, runs: pa.Table, frames: pa.Table, parsed: formats.ParsedFile
) -> pa.Table:
    """Table ``runs`` (trimmed, see :data:`formats.UNTRIMMED`), ``json_decisions`` (the
    decisions of a JSON file) and view ``frames`` over the frame rows (trimmed already),
    which stay in Arrow (``_n`` = 1 so that checks count rows alike in both). Returns the
    runs as trimmed."""
    runs = _trimmed(runs, [c for c in RUN_COLUMNS if c not in formats.UNTRIMMED])
    con.register("runs_in", runs)
    con.execute("CREATE TABLE runs AS SELECT * FROM runs_in")
    con.unregister("runs_in")
    con.register("frames_in", frames)
    con.execute("CREATE TEMP VIEW frames AS SELECT *, 1 AS _n FROM frames_in")
    decisions = parsed.decisions
    if decisions is None:
        decisions = pd.DataFrame(columns=list(formats.DECISIONS_TABLE))
    decisions = decisions.astype({"_order": "int64"})
    con.register("decisions_in", decisions)
    select = ", ".join(
        f'"{c}"' if c in formats.UNTRIMMED else f'trim("{c}") AS "{c}"'
        for c in formats.DECISIONS_TABLE[:-2]
    )
    con.execute(f"CREATE TABLE json_decisions AS SELECT {select}, _order, _path FROM decisions_in")
    con.unregister("decisions_in")
    return runs


def _trimmed(table: pa.Table, columns: Iterable[str]) -> pa.Table:
    for column in columns:
        i = table.schema.get_field_index(column)
        table = table.set_column(i, column, _trim(table.column(i)))
    return table


#: Unicode's space separators (category Zs): what DuckDB's ``trim`` removes.
SPACES = " \u00a0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u202f\u205f\u3000"
#: The bytes these can start and end with in UTF-8 (a quick test for "none to trim").
_SPACE_FIRST = np.isin(np.arange(256), [0x20, 0xC2, 0xE1, 0xE2, 0xE3])
_SPACE_LAST = np.isin(np.arange(256), [0x20, 0xA0, 0x9F, 0xAF, *range(0x80, 0x8B)])


def _trim(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Values without surrounding spaces, as DuckDB's ``trim`` (a copy only when needed)."""
    for offsets, data in _raw(column):
        ends = offsets[1:][offsets[1:] > offsets[:-1]]  # non-empty values
        starts = offsets[:-1][offsets[1:] > offsets[:-1]]
        if data is None or _SPACE_FIRST[data[starts]].any() or _SPACE_LAST[data[ends - 1]].any():
            return pc.utf8_trim(column, SPACES)
    return column


def _raw(column: pa.ChunkedArray) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """Per chunk: the value offsets, and the bytes they index (None: nulls, look closer)."""
    for chunk in column.chunks:
        _, offsets_buffer, data_buffer = chunk.buffers()
        offsets = np.frombuffer(offsets_buffer, dtype=np.int32)[
            chunk.offset : chunk.offset + len(chunk) + 1
        ]
        if chunk.null_count or data_buffer is None:
            yield (
                offsets,
                None if chunk.null_count or offsets[-1] > offsets[0] else np.empty(0, np.uint8),
            )
        else:
            yield offsets, np.frombuffer(data_buffer, dtype=np.uint8)


def _bytes_pass(
    column: pa.ChunkedArray, longest: int, bad: Callable[[np.ndarray], np.ndarray]
) -> bool:
    """True when no value of ``column`` is longer than ``longest`` bytes or holds a byte
    that ``bad`` flags: a test of the common case on the raw bytes, without a copy (a
    value that fails it is looked at closely, in SQL)."""
    for offsets, data in _raw(column):
        if data is None:
            return False
        if len(offsets) > 1 and np.diff(offsets).max() > longest:
            return False
        if offsets[-1] > offsets[0] and bad(data[offsets[0] : offsets[-1]]).any():
            return False
    return True


def _plain_numbers(column: pa.ChunkedArray) -> bool:
    """Every value is empty or 1-9 ASCII digits."""
    return _bytes_pass(column, 9, lambda b: (b < ord("0")) | (b > ord("9")))


def _plain_names(column: pa.ChunkedArray) -> bool:
    """No value holds a control character or is longer than :data:`MAX_TEXT` bytes."""
    return _bytes_pass(column, MAX_TEXT, lambda b: (b < 0x20) | (b == 0x7F))


class _Checker:
    """The checks, each adding problems to the report."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        report: Report,
        scan_types: ScanTypes,
        runs: pa.Table,
        frames: pa.Table,
    ):
        self.con = con
        #: The runs as staged (Arrow, table ``runs`` in SQL), for vectorised tests.
        self.runs = runs
        self.report = report
        self.scan_types = scan_types
        #: The frame rows (Arrow, view ``frames`` in SQL): checked with vectorised tests
        #: first, and in SQL only where those find a problem to describe.
        self.frames = frames
        self.numbers: pa.ChunkedArray | None = None
        self.resolved: locations.Resolved | None = None
        self._deferred: list[
            tuple[str, str, str, str, Callable[[str], str] | str, str, str | None]
        ] = []

    def q(self, sql: str, *params: Any) -> list[tuple]:
        return self.con.execute(sql, list(params) if params else None).fetchall()

    def add(self, severity: str, check: str, message: str, **where: Any) -> None:
        self.report.add(severity, check, message, **where)  # type: ignore[arg-type]

    def offending(
        self,
        table: str,
        column: str,
        condition: str,
        check: str,
        message: Callable[[str], str] | str,
        *,
        severity: str = "error",
        expected: str | None = None,
        defer: bool = False,
    ) -> None:
        """One problem per distinct offending value: first row, JSON path, count.

        With ``defer``, the check waits for :meth:`flush`, which tests every deferred
        condition in one pass over the table and looks closer only at those that fail.
        """
        if defer:
            self._deferred.append((table, column, condition, check, message, severity, expected))
            return
        rows = self.q(
            f'SELECT "{column}", min(_row), arg_min(_path, coalesce(_row, 0)), sum(_n)::BIGINT '
            f"FROM {table} WHERE {condition} GROUP BY 1 ORDER BY 2 NULLS LAST, 3 "
            f"LIMIT {MAX_LISTED + 1}"
        )
        for value, row, path, count in rows[:MAX_LISTED]:
            self.add(
                severity,
                check,
                message if isinstance(message, str) else message(value),
                row=row,
                path=path,
                column=column,
                value=value,
                expected=expected,
                count=count,
            )
        if len(rows) > MAX_LISTED:
            self.add(severity, check, f"more distinct values fail this check in {column!r}")

    def flush(self) -> None:
        """Run the deferred checks: one counting pass per table, details where needed."""
        deferred, self._deferred = self._deferred, []
        for table in dict.fromkeys(d[0] for d in deferred):
            mine = [d for d in deferred if d[0] == table]
            counts = self.q(
                "SELECT "
                + ", ".join(f"count(*) FILTER (WHERE {d[2]})" for d in mine)
                + f" FROM {table}"
            )[0]
            for (tbl, column, condition, check, message, severity, expected), n in zip(
                mine, counts, strict=True
            ):
                if n:
                    self.offending(
                        tbl,
                        column,
                        condition,
                        check,
                        message,
                        severity=severity,
                        expected=expected,
                    )

    def run(self, kind: str, project: str | None) -> None:
        self.check_required()
        self.check_names()
        if project is not None:
            self.offending(
                "runs",
                "project_name",
                f"project_name <> {_quote(project)}",
                "other-project",
                lambda v: (
                    f"row belongs to project {v!r}, but this is an import into project "
                    f"{project!r}; remove other projects' rows or run a global import"
                ),
                expected=project,
                defer=True,
            )
        self.check_frame_numbers()
        self.map_vocabulary(
            "runs", "scan_type", self.scan_types.parse, "unknown-scan-type", "scan_type_map"
        )
        self.check_links()
        self.flush()
        self.find_split_scans()
        self.check_decisions(kind)
        if not self.report.ok:
            return
        self.check_duplicates()
        if kind == "csv":
            self.check_scan_agreement()
            self.check_experiment_notes()

    def find_split_scans(self) -> None:
        """Table ``split_runs``: the runs of scans whose rows are not all in one run
        (``first``: the scan's first run). Only those can disagree with themselves.
        Scans are grouped by a hash of their names: a collision only adds runs to look at."""
        names = "project_name, experiment_name, scan_name"
        self.con.execute(
            f"""CREATE TEMP TABLE split_runs AS
                SELECT _run, _run = min(_run) OVER (PARTITION BY {names}) AS first
                FROM runs WHERE hash({names}) IN (
                    SELECT hash({names}) FROM runs GROUP BY 1 HAVING count(*) > 1)"""
        )

    def check_required(self) -> None:
        for column in formats.REQUIRED_COLUMNS:
            in_frames = column in FRAME_COLUMNS
            if in_frames and not pc.any(pc.equal(self.frames.column(column), "")).as_py():
                continue
            self.offending(
                "frames" if in_frames else "runs",
                column,
                f"\"{column}\" = ''",
                "required-value",
                f"{column} is empty; it is required on every row",
                expected="a value",
                defer=not in_frames,
            )

    def check_names(self) -> None:
        for column in (*NAME_COLUMNS, "subject_id", "session_id"):
            if _plain_names(self.runs.column(column)):
                continue
            self.offending(
                "runs",
                column,
                f"regexp_matches(\"{column}\", '[\\x00-\\x1f\\x7f]')",
                "control-character",
                f"{column} holds a control character (a tab or line break?); "
                "names are one line of text",
                expected="printable text",
                defer=True,
            )
            self.offending(
                "runs",
                column,
                f'length("{column}") > {MAX_TEXT}',
                "too-long",
                f"{column} is longer than {MAX_TEXT} characters",
                expected=f"at most {MAX_TEXT} characters",
                defer=True,
            )

    def check_frame_numbers(self) -> None:
        if _plain_numbers(self.frames.column("frame_number")):
            return
        self.offending(
            "frames",
            "frame_number",
            "frame_number <> '' AND (NOT regexp_full_match(frame_number, '[0-9]+') "
            "OR length(ltrim(frame_number, '0')) > 9)",
            "frame-number",
            lambda v: f"frame_number must be a whole number >= 0 (0, 1, 2...); {v!r} was provided",
            expected="an integer >= 0",
        )

    def map_vocabulary(
        self,
        table: str,
        column: str,
        parse: Callable[[str], Any],
        check: str,
        map_table: str | None = None,
        *,
        parsed_by_sql: str | None = None,
    ) -> dict[str, Any]:
        """Parse each distinct value once; report the bad ones; return ``value -> parsed``.

        With ``map_table``, also store the mapping (as text) for joins. Values in
        table ``parsed_by_sql`` (column ``value``) are already parsed and skipped.
        """
        skip = (
            f" WHERE {column} NOT IN (SELECT value FROM {parsed_by_sql})" if parsed_by_sql else ""
        )
        distinct = [r[0] for r in self.q(f'SELECT DISTINCT "{column}" FROM {table}{skip}')]
        parsed: dict[str, Any] = {}
        bad: dict[str, str] = {}
        for value in distinct:
            if value is None or value == "":
                continue
            try:
                parsed[value] = parse(value)
            except VocabularyError as exc:
                bad[value] = str(exc)
        if bad:
            self.con.register("bad_values", pd.DataFrame({"v": list(bad)}, dtype=object))
            self.offending(
                table,
                column,
                f'"{column}" IN (SELECT v FROM bad_values)',
                check,
                lambda v: bad[v],
            )
            self.con.unregister("bad_values")
        if map_table is not None:
            typed_table(
                self.con,
                map_table,
                {"value": list(parsed), "parsed": [str(v) for v in parsed.values()]},
                {"value": "VARCHAR", "parsed": "VARCHAR"},
            )
        return parsed

    def check_links(self) -> None:
        self.offending(
            "runs",
            "scan_link",
            "scan_link <> '' AND NOT regexp_matches(lower(scan_link), '^https?://')",
            "link-not-web",
            lambda v: "scan_link is not an http(s) address; it will be shown as text, not a link",
            severity="warning",
            expected="http:// or https:// address",
            defer=True,
        )

    def check_decisions(self, kind: str) -> None:
        if kind == "csv":
            others = " OR ".join(f"\"{c}\" <> ''" for c in DECISION_COLUMNS[1:])
            self.offending(
                "runs",
                "last_decision",
                f"last_decision = '' AND ({others})",
                "decision-missing",
                lambda v: (
                    "last_decision is empty but other decision columns have values; "
                    "give the decision code or clear the decision columns"
                ),
                expected="U, UE, Q? or UN",
            )
            # One decision per scan (a scan of several runs: each distinct one, so that
            # every value is checked; disagreement between rows is reported later).
            columns = ", ".join(f'"{c}"' for c in DECISION_COLUMNS)
            self.con.execute(
                f"""CREATE TABLE decisions_in AS
                SELECT project_name, experiment_name, scan_name, {columns},
                       0 AS _order, _row, NULL::VARCHAR AS _path, 1 AS _n
                FROM runs WHERE last_decision <> '' AND _run NOT IN (SELECT _run FROM split_runs)
                UNION ALL
                SELECT project_name, experiment_name, scan_name, {columns},
                       0, min(_row), NULL, 1
                FROM runs SEMI JOIN split_runs USING (_run) WHERE last_decision <> ''
                GROUP BY ALL"""
            )
        else:
            self.con.execute(
                "CREATE TABLE decisions_in AS SELECT * EXCLUDE (_path), "
                "NULL::BIGINT AS _row, _path, 1 AS _n FROM json_decisions"
            )
            self.offending(
                "decisions_in",
                "last_decision",
                "last_decision = ''",
                "decision-missing",
                lambda v: "a decision without a decision code; give U, UE, Q? or UN",
                expected="U, UE, Q? or UN",
            )
        self.map_vocabulary(
            "decisions_in",
            "last_decision",
            lambda v: Decision.parse(v).value,
            "unknown-decision",
            "decision_map",
        )
        self.map_vocabulary(
            "decisions_in",
            "identified_artifacts",
            lambda v: ";".join(parse_artifacts(v)),
            "unknown-artifact",
            "artifact_map",
        )
        # The common spellings are parsed by DuckDB (exactly as the vocabulary would);
        # Python parses the others (time zones, fractions...) and words the bad ones.
        self.con.execute(
            f"""CREATE TABLE time_map AS
                SELECT value, strptime(value, '{_PLAIN_TIME}') AS wall, NULL::INTEGER AS utcoffset
                FROM (SELECT DISTINCT last_decision_created AS value FROM decisions_in)
                WHERE regexp_full_match(value, '{_PLAIN_TIME_RE}')
                  AND try_strptime(value, '{_PLAIN_TIME}') IS NOT NULL"""
        )
        times = self.map_vocabulary(
            "decisions_in",
            "last_decision_created",
            Timestamp.parse,
            "bad-time",
            parsed_by_sql="time_map",
        )
        self.extend_map(
            "time_map",
            {
                "value": list(times),
                "wall": [t.wall for t in times.values()],
                "utcoffset": [t.utcoffset_minutes for t in times.values()],
            },
            {"value": "VARCHAR", "wall": "TIMESTAMP", "utcoffset": "INTEGER"},
        )
        self.con.execute(
            f"""CREATE TABLE location_map AS
                SELECT value, CAST(p.i AS DOUBLE) AS i, CAST(p.j AS DOUBLE) AS j,
                       CAST(p.k AS DOUBLE) AS k
                FROM (SELECT value, regexp_extract(value, '{_PLAIN_LOCATION}', ['i', 'j', 'k']) AS p
                      FROM (SELECT DISTINCT location_of_interest AS value FROM decisions_in)
                      WHERE regexp_full_match(value, '{_PLAIN_LOCATION}'))"""
        )
        points = self.map_vocabulary(
            "decisions_in",
            "location_of_interest",
            Location.parse,
            "bad-location",
            parsed_by_sql="location_map",
        )
        self.extend_map(
            "location_map",
            {
                "value": list(points),
                "i": [p.i for p in points.values()],
                "j": [p.j for p in points.values()],
                "k": [p.k for p in points.values()],
            },
            {"value": "VARCHAR", "i": "DOUBLE", "j": "DOUBLE", "k": "DOUBLE"},
        )

    def extend_map(self, table: str, columns: dict[str, list], types: dict[str, str]) -> None:
        """Add the values Python parsed to the map table DuckDB started."""
        typed_table(self.con, f"{table}_more", columns, types, temp=True)
        self.con.execute(f"INSERT INTO {table} SELECT * FROM {table}_more")
        self.con.execute(f"DROP TABLE {table}_more")

    def check_duplicates(self) -> None:
        """No frame number twice in a scan. A scan whose frames are all below 64 is
        cleared by a bit mask (one bit per frame number: as many bits as frames); only
        the others are grouped by frame number."""
        numbers = pc.cast(self.frames.column("frame_number"), pa.int64())
        self.numbers = numbers
        value = numbers.to_numpy()
        run = self.frames.column("_run").to_numpy()
        starts = np.flatnonzero(np.r_[True, run[1:] != run[:-1]])
        small = value < 64
        bits = np.where(
            small, np.left_shift(np.uint64(1), np.where(small, value, 0).astype(np.uint64)), 0
        ).astype(np.uint64)
        n = np.diff(np.r_[starts, len(run)])
        big = np.add.reduceat(~small, starts)
        mask = np.bitwise_or.reduceat(bits, starts)
        # A run with a frame number twice, or of 64 and more, is looked at closely; so
        # is a scan split in several runs whose masks overlap.
        doubtful = run[starts][(big > 0) | (np.bitwise_count(mask) != n)]
        split = self.q("SELECT _run FROM split_runs")
        if split:
            at = np.searchsorted(run[starts], np.array([r for (r,) in split], dtype=np.int64))
            self.con.register(
                "run_masks",
                pa.table({"_run": run[starts][at], "n": n[at], "big": big[at], "mask": mask[at]}),
            )
            more = self.q(
                """SELECT unnest(list(r._run))
                   FROM runs r JOIN run_masks m USING (_run)
                   GROUP BY r.project_name, r.experiment_name, r.scan_name
                   HAVING sum(m.big) > 0 OR bit_count(bit_or(m.mask)) <> sum(m.n)"""
            )
            self.con.unregister("run_masks")
            doubtful = np.union1d(doubtful, np.array([r for (r,) in more], dtype=np.int64))
        if not len(doubtful):
            return
        self.con.register("doubtful", pa.table({"_run": doubtful.astype(np.int64)}))
        rows = self.q(
            """SELECT project_name, experiment_name, scan_name, frame_number::BIGINT,
                      list(f._row ORDER BY f._row), list(f._path ORDER BY f._path), count(*)
               FROM frames f SEMI JOIN doubtful d USING (_run) JOIN runs r USING (_run)
               GROUP BY 1, 2, 3, 4 HAVING count(*) > 1
               ORDER BY min(f._row) NULLS LAST LIMIT ?""",
            MAX_LISTED,
        )
        self.con.unregister("doubtful")
        for project, experiment, scan, number, row_list, paths, count in rows:
            where = (
                f"rows {row_list[0]} and {row_list[1]}"
                if row_list[0] is not None
                else f"{paths[0]} and {paths[1]}"
            )
            self.add(
                "error",
                "duplicate-frame",
                f"frame {number} of scan {scan!r} (experiment {experiment!r}, project "
                f"{project!r}) appears {count} times ({where}); each frame number must be "
                "unique within a scan",
                row=row_list[0],
                path=paths[0],
                column="frame_number",
                value=str(number),
                expected="unique per scan",
                count=count,
            )

    def check_scan_agreement(self) -> None:
        """Scan-level values must agree across a scan's rows (after canonical mapping):
        looked at in scans of several runs (a run's rows agree by construction)."""
        if not one(self.con, "SELECT 1 FROM split_runs LIMIT 1"):
            return
        self.con.execute(
            """CREATE TEMP VIEW scan_values AS
               SELECT r.*, coalesce(m.parsed, r.scan_type) AS canonical_type
               FROM runs r SEMI JOIN split_runs USING (_run)
               LEFT JOIN scan_type_map m ON r.scan_type = m.value"""
        )
        compare = {c: f'"{c}"' for c in SCAN_LEVEL} | {"scan_type": "canonical_type"}
        # min <> max finds disagreement as count(DISTINCT) > 1 would, at a fraction of the cost.
        flags = ", ".join(f'min({e}) <> max({e}) AS "{c}"' for c, e in compare.items())
        any_flag = " OR ".join(f"min({e}) <> max({e})" for e in compare.values())
        self.con.execute(
            f"""CREATE TEMP TABLE bad_scans AS
                SELECT project_name, experiment_name, scan_name, min(_row) AS first_row, {flags}
                FROM scan_values GROUP BY 1, 2, 3 HAVING {any_flag}
                ORDER BY first_row LIMIT {MAX_LISTED}"""
        )
        for column, expr in compare.items():
            rows = self.q(
                f"""WITH v AS (
                      SELECT s.project_name, s.experiment_name, s.scan_name, s._row,
                             {expr} AS val, s."{column}" AS raw
                      FROM scan_values s SEMI JOIN bad_scans b
                        ON s.project_name = b.project_name AND s.experiment_name = b.experiment_name
                       AND s.scan_name = b.scan_name AND b."{column}"),
                    f AS (SELECT project_name, experiment_name, scan_name,
                                 arg_min(val, _row) AS val1, arg_min(raw, _row) AS raw1,
                                 min(_row) AS row1 FROM v GROUP BY ALL)
                    SELECT f.experiment_name, f.scan_name, f.raw1, f.row1,
                           arg_min(v.raw, v._row), min(v._row)
                    FROM f JOIN v USING (project_name, experiment_name, scan_name)
                    WHERE v.val <> f.val1 GROUP BY ALL ORDER BY f.row1"""
            )
            for experiment, scan, first, row1, second, row2 in rows:
                self.add(
                    "error",
                    "scan-conflict",
                    f"{column} of scan {scan!r} (experiment {experiment!r}) disagrees: row "
                    f"{row1} has {first!r}, row {row2} has {second!r}; a scan's rows must "
                    "give the same scan-level values",
                    row=row2,
                    column=column,
                    value=second,
                    expected=first,
                )

    def check_experiment_notes(self) -> None:
        rows = self.q(
            f"""SELECT project_name, experiment_name,
                       arg_min(experiment_notes, _row), min(_row),
                       arg_max(experiment_notes, _row), max(_row)
                FROM runs WHERE experiment_notes <> '' GROUP BY 1, 2
                HAVING min(experiment_notes) <> max(experiment_notes) LIMIT {MAX_LISTED}"""
        )
        for _project, experiment, first, row1, second, row2 in rows:
            self.add(
                "error",
                "experiment-conflict",
                f"experiment_notes of experiment {experiment!r} disagree: row {row1} has "
                f"{_short(first)!r}, row {row2} has {_short(second)!r}; give the note once or "
                "the same note on every row",
                row=row2,
                column="experiment_notes",
                value=second,
                expected=first,
            )

    def check_locations(
        self, path: str, roots: locations.DataRoots, resolved: locations.Resolved
    ) -> None:
        """Report the file locations that :func:`locations.resolve` did not find fit."""
        values = self.frames.column("file_location")
        self.resolved = resolved
        for status in resolved.statuses():
            if status in (locations.OK, locations.S3, locations.EMPTY):
                continue
            rows = np.flatnonzero(resolved.is_(status))
            # The first distinct values with this problem, in file order.
            first = pa.array(rows[: MAX_LISTED * 20])
            listed: dict[str, tuple] = {}
            texts = values.take(first).to_pylist()
            for value, looked_at, row, jpath in zip(
                texts,
                resolved.paths(texts, rows[: MAX_LISTED * 20]),
                self.frames.column("_row").take(first).to_pylist(),
                self.frames.column("_path").take(first).to_pylist(),
                strict=True,
            ):
                if value not in listed and len(listed) < MAX_LISTED:
                    listed[value] = (looked_at, row, jpath)
            among = pc.is_in(values, value_set=pa.array(list(listed), pa.string()))
            counts = {
                c["values"].as_py(): c["counts"].as_py()
                for c in pc.value_counts(values.filter(among))
            }
            severity = "error" if status in locations.ERRORS else "warning"
            check = "missing-file" if status == locations.MISSING else f"location-{status}"
            for value, (looked_at, row, jpath) in listed.items():
                self.add(
                    severity,
                    check,
                    locations.describe(status, looked_at, path, roots),
                    row=row,
                    path=jpath,
                    column="file_location",
                    value=value,
                    count=counts.get(value, 1),
                )
            more = len(rows) - sum(counts.values())
            if more:
                self.add(
                    severity,
                    check,
                    f"{more:,} more rows have the same problem ({status})",
                    column="file_location",
                    count=more,
                )
        self.report.problems.sort(key=_position)

    def frames_table(self) -> pa.Table:
        """``v_frames``: the frames in the catalog's layout (after a clean report)."""
        assert self.numbers is not None and self.resolved is not None
        names = self.con.sql(
            "SELECT project_name, experiment_name, scan_name FROM runs ORDER BY _run"
        ).to_arrow_table()
        # Plain text, not dictionaries over the runs: DuckDB inserts text faster.
        run = pa.array(self.frames.column("_run").to_numpy().astype(np.int32))
        return pa.table(
            {
                "project": names.column(0).combine_chunks().take(run),
                "experiment": names.column(1).combine_chunks().take(run),
                "scan": names.column(2).combine_chunks().take(run),
                "frame_number": pc.cast(self.numbers, pa.int32()),
                "file_location": self.frames.column("file_location"),
                **self.resolved.columns(),
            }
        )


def _build_tables(con: duckdb.DuckDBPyConnection) -> dict[str, pa.Table]:
    """The validated tables, in the catalog's layout (empty text becomes NULL), as Arrow
    (each registered on ``con`` as ``v_<level>``)."""
    tables: dict[str, pa.Table] = {}

    def build(level: str, select: str) -> None:
        tables[level] = con.sql(select).to_arrow_table()
        con.register(f"v_{level}", tables[level])

    build(
        "experiments",
        """SELECT project_name AS project, experiment_name AS name,
                  nullif(max(experiment_notes), '') AS note
           FROM runs GROUP BY 1, 2""",
    )
    build(
        "scans",
        """SELECT project_name AS project, experiment_name AS experiment, scan_name AS name,
                  m.parsed AS type, nullif(subject_id, '') AS subject_id,
                  nullif(session_id, '') AS session_id, nullif(scan_link, '') AS link
           FROM runs r JOIN scan_type_map m ON r.scan_type = m.value
           WHERE r._run NOT IN (SELECT _run FROM split_runs WHERE NOT first)""",
    )
    absent = "NULL::VARCHAR"
    build(
        "decisions",
        f"""SELECT project_name AS project, experiment_name AS experiment, scan_name AS scan,
                  -_order AS seq, dm.parsed AS decision,
                  nullif(last_decision_creator, '') AS creator,
                  nullif(last_decision_note, '') AS note,
                  t.wall AS created, t.utcoffset AS created_utcoffset,
                  nullif(am.parsed, '') AS artifacts_present, {absent} AS artifacts_absent,
                  nullif(location_of_interest, '') AS location,
                  lm.i AS loc_i, lm.j AS loc_j, lm.k AS loc_k
           FROM decisions_in d
           JOIN decision_map dm ON d.last_decision = dm.value
           LEFT JOIN artifact_map am ON d.identified_artifacts = am.value
           LEFT JOIN time_map t ON d.last_decision_created = t.value
           LEFT JOIN location_map lm ON d.location_of_interest = lm.value""",
    )
    return tables


def _counts(con: duckdb.DuckDBPyConnection, staged: Staged) -> dict[str, int]:
    if staged.frames is None:
        (rows,) = one(con, "SELECT sum(_n)::BIGINT FROM runs") or (0,)
        return {"rows": rows}
    scans = staged.tables["scans"]
    return {
        "projects": len(pc.unique(scans.column("project"))),
        "experiments": staged.tables["experiments"].num_rows,
        "scans": scans.num_rows,
        "frames": staged.frames.num_rows,
        "decisions": staged.tables["decisions"].num_rows,
    }


def _position(problem: Problem) -> tuple[int, int, str]:
    """Sort key: errors first, then by row (or JSON path), as a user reads the file."""
    return (
        problem.severity != "error",
        problem.row if problem.row is not None else 1 << 62,
        problem.path or "",
    )


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


__all__ = ["Staged", "validate"]
