"""MIQA import/export files: read them into plain tables, write tables back out.

This module owns the *shape* of the files (the specification in
``miqa-import-export.md`` and what the MIQA application writes) and nothing else: it
does not judge values. Readers return :class:`ParsedFile`: the structural problems
found (wrong delimiter, unknown columns or keys, bad encoding...) and a way to load the
frame rows as Arrow record batches of strings (``''`` for missing; surrounding spaces are
the reader's business, see :data:`UNTRIMMED`). CSV files are read by pyarrow's parallel
CSV reader, files over :data:`STREAM_BYTES` by its streaming reader (bounded memory);
never row by row in Python.
Writers are atomic: they write a temporary file beside the target, then rename it.
"""

from __future__ import annotations

import contextlib
import csv
import difflib
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any, Literal

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

from miqa_nb.core import files
from miqa_nb.core.errors import VocabularyError, WriteError
from miqa_nb.core.report import Problem
from miqa_nb.core.vocabulary import Timestamp
from miqa_nb.exchange import limits, scanning

#: The 16 columns MIQA writes, in its order (the specification's 15 plus experiment_notes).
MIQA_COLUMNS: tuple[str, ...] = (
    "project_name",
    "experiment_name",
    "scan_name",
    "scan_type",
    "frame_number",
    "file_location",
    "experiment_notes",
    "subject_id",
    "session_id",
    "scan_link",
    "last_decision",
    "last_decision_creator",
    "last_decision_note",
    "last_decision_created",
    "identified_artifacts",
    "location_of_interest",
)
REQUIRED_COLUMNS: tuple[str, ...] = MIQA_COLUMNS[:6]
DECISION_COLUMNS: tuple[str, ...] = MIQA_COLUMNS[10:]
#: Keys of one decision in JSON files, and the CSV column each matches.
DECISION_KEYS: dict[str, str] = {
    "decision": "last_decision",
    "creator": "last_decision_creator",
    "note": "last_decision_note",
    "created": "last_decision_created",
    "user_identified_artifacts": "identified_artifacts",
    "location": "location_of_interest",
}
SCAN_KEYS: dict[str, str] = {
    "type": "scan_type",
    "subject_id": "subject_id",
    "session_id": "session_id",
    "scan_link": "scan_link",
}
#: Columns of the decisions table read from JSON files.
DECISIONS_TABLE: tuple[str, ...] = (
    "project_name",
    "experiment_name",
    "scan_name",
    *DECISION_COLUMNS,
    "_order",
    "_path",
)

_BOM = b"\xef\xbb\xbf"


#: Columns kept as written (not trimmed of surrounding spaces).
UNTRIMMED: frozenset[str] = frozenset({"experiment_notes", "last_decision_note"})


#: CSV files larger than this are read in a stream of blocks (bounded memory) rather
#: than at once with both cores.
STREAM_BYTES = 256 << 20
#: The size of the blocks pyarrow parses (in parallel, or one after another when streamed).
BLOCK_BYTES = 4 << 20
#: Columns of the record batches :meth:`ParsedFile.batches` yields.
BATCH_COLUMNS: tuple[str, ...] = (*MIQA_COLUMNS, "_row", "_path")
BATCH_SCHEMA = pa.schema(
    [*((c, pa.string()) for c in MIQA_COLUMNS), ("_row", pa.int64()), ("_path", pa.string())]
)


@dataclass
class ParsedFile:
    """What a reader found in an import file.

    Attributes
    ----------
    path : str
    kind : {'csv', 'json'}
    problems : list of Problem
        Structural problems; :meth:`batches` appends those it meets while reading.
    decisions : DataFrame or None
        JSON files only: every decision, ``_order`` 0 for the newest of a scan.
    """

    path: str
    kind: str
    problems: list[Problem] = field(default_factory=list)
    decisions: pd.DataFrame | None = None
    _batches: Callable[[], Iterator[pa.RecordBatch]] | None = None

    @property
    def ok(self) -> bool:
        """False once an error has been found."""
        return not any(p.severity == "error" for p in self.problems)

    def batches(self) -> Iterator[pa.RecordBatch]:
        """The frame rows, in the file's order, as record batches of
        :data:`BATCH_SCHEMA`: the 16 MIQA columns as written (``''`` when missing),
        ``_row`` (the CSV line, header = 1) and ``_path`` (the JSON path of the frame).

        Nothing is yielded when the header already failed. A problem met while reading
        is recorded in :attr:`problems` and ends the batches; check :attr:`ok` after.
        """
        if self._batches is None or not self.ok:
            return iter(())
        return self._batches()

    def frame(self) -> pd.DataFrame:
        """The rows as a DataFrame, trimmed as an import reads them (for analysis;
        imports stay in Arrow and DuckDB)."""
        batches = list(self.batches())
        if not self.ok:
            return pd.DataFrame(columns=[*MIQA_COLUMNS, "_path"])
        con = duckdb.connect()
        try:
            con.register("rows", pa.Table.from_batches(batches, schema=BATCH_SCHEMA))
            return con.execute(f"SELECT {_select(MIQA_COLUMNS)}, _path FROM rows").df()
        finally:
            con.close()


def read(path: str | os.PathLike[str]) -> ParsedFile:
    """Read a MIQA import file; ``.json`` is JSON, anything else is read as CSV."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        return read_json(path)
    return read_csv(path)


def _select(present: Iterable[str]) -> str:
    """SELECT list giving the 16 columns, trimmed, '' for missing or absent ones."""
    present = set(present)
    parts = []
    for column in MIQA_COLUMNS:
        if column not in present:
            parts.append(f"'' AS \"{column}\"")
        elif column in UNTRIMMED:
            parts.append(f'coalesce("{column}", \'\') AS "{column}"')
        else:
            parts.append(f'coalesce(trim("{column}"), \'\') AS "{column}"')
    return ", ".join(parts)


# --------------------------------------------------------------------------- CSV


def read_csv(path: str | os.PathLike[str]) -> ParsedFile:
    """Read a CSV import file's header; :meth:`ParsedFile.load` reads the rows.

    The header is read by name: the specification's 15 columns or MIQA's 16, in any
    order; the six required columns must be there and an unknown column is an error.
    """
    name = str(path)
    parsed = ParsedFile(name, "csv")

    def problem(check: str, message: str, **where: Any) -> None:
        parsed.problems.append(Problem("error", check, message, file=name, **where))

    try:
        with open(path, "rb") as handle:
            head = handle.read(1 << 16)
    except OSError as exc:
        problem("unreadable", f"cannot read the file: {exc.strerror or exc}")
        return parsed
    if not head.strip(_BOM + b" \r\n\t"):
        problem("empty-file", "the file is empty; an import file needs a header row and rows")
        return parsed
    if head.startswith(_BOM):
        parsed.problems.append(
            Problem(
                "warning",
                "byte-order-mark",
                "the file starts with a UTF-8 byte order mark (as Excel writes); it was ignored",
                file=name,
                row=1,
            )
        )
        head = head[len(_BOM) :]
    first_line = head.split(b"\n", 1)[0].split(b"\r", 1)[0]  # lines end in \n, \r\n or \r
    try:
        header_text = first_line.decode("utf-8")
    except UnicodeDecodeError as exc:
        problem(
            "encoding",
            f"the header is not UTF-8 (byte {first_line[exc.start : exc.start + 1]!r} at "
            f"position {exc.start}); save the file as UTF-8",
            row=1,
        )
        return parsed
    header = next(csv.reader([header_text]))
    columns = [c.strip().lower() for c in header]
    if len(columns) == 1 and any(sep in header_text for sep in (";", "\t", "|")):
        sep = next(s for s in (";", "\t", "|") if s in header_text)
        problem(
            "delimiter",
            f"the file is {'tab' if sep == chr(9) else repr(sep)}-delimited; MIQA import files "
            "are comma-separated: save it as CSV with commas",
            row=1,
            value=header_text[:80],
            expected=",".join(REQUIRED_COLUMNS),
        )
        return parsed
    for index, column in enumerate(columns):
        if column not in MIQA_COLUMNS:
            close = difflib.get_close_matches(column, MIQA_COLUMNS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problem(
                "unknown-column",
                f"unknown column {header[index]!r}{hint}; columns are {', '.join(MIQA_COLUMNS)}",
                row=1,
                column=header[index],
                value=header[index],
                expected=", ".join(MIQA_COLUMNS),
            )
        elif columns.index(column) != index:
            problem("duplicate-column", f"column {column!r} appears twice", row=1, column=column)
    for column in REQUIRED_COLUMNS:
        if column not in columns:
            problem(
                "missing-column",
                f"the required column {column!r} is missing; the first six columns "
                f"({', '.join(REQUIRED_COLUMNS)}) are required",
                row=1,
                column=column,
                expected=column,
            )
    parsed._batches = lambda: _csv_batches(Path(path), columns, parsed)
    return parsed


def _csv_options(columns: list[str], newlines: bool) -> dict[str, Any]:
    """pyarrow's options for an import CSV: every column as text, nothing as null.

    No handler of bad rows: pyarrow decodes a bad row's text before it calls one, so a
    row that is not UTF-8 could not be handed over (Python would print "Exception
    ignored" to the user). A bad row stops the read instead; :func:`_diagnose` then
    names every bad line."""
    return {
        "read_options": pa_csv.ReadOptions(
            column_names=columns, skip_rows=1, block_size=BLOCK_BYTES
        ),
        "parse_options": pa_csv.ParseOptions(
            delimiter=",",
            quote_char='"',
            double_quote=True,
            escape_char=False,
            newlines_in_values=newlines,
        ),
        "convert_options": pa_csv.ConvertOptions(
            column_types=dict.fromkeys(columns, pa.string()),
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    }


def _csv_batches(path: Path, columns: list[str], parsed: ParsedFile) -> Iterator[pa.RecordBatch]:
    """Read the rows with pyarrow (every column as text); see :meth:`ParsedFile.batches`."""
    first_row = 2
    yielded = False
    try:
        if os.path.getsize(path) > STREAM_BYTES:
            stream: Iterator[pa.RecordBatch] = pa_csv.open_csv(
                path, **_csv_options(columns, newlines=True)
            )
        else:
            try:
                # A quarter faster: blocks are cut at any line end. A cut inside a quoted
                # value (a note of several lines) leaves the parser out of step with the
                # blocks, and pyarrow raises ArrowInvalid: then read again, cutting
                # between rows only. pyarrow raises that one type for every problem (its
                # message alone tells them apart), so any of them is read again: a file
                # that is really broken fails the second read too, and only it pays.
                table = pa_csv.read_csv(path, **_csv_options(columns, newlines=False))
            except pa.ArrowInvalid:
                table = pa_csv.read_csv(path, **_csv_options(columns, newlines=True))
            stream = iter(table.to_batches())
            del table
        for batch in stream:
            if batch.num_rows == 0:
                continue
            yield _complete(batch, first_row)
            yielded = True
            first_row += batch.num_rows
    except pa.ArrowInvalid as exc:
        parsed.problems.extend(_diagnose(path, columns, exc))
        return
    if not yielded:
        parsed.problems.append(
            Problem(
                "error",
                "no-rows",
                "the file has a header but no rows; add one row per frame",
                file=str(path),
                row=2,
            )
        )


#: How many bad lines of a CSV file are listed one by one (the rest are counted).
LISTED_BAD_LINES = 20


def _diagnose(path: Path, columns: list[str], exc: pa.ArrowInvalid) -> list[Problem]:
    """The problems of a CSV file pyarrow could not read: its values longer than
    :data:`~miqa_nb.exchange.limits.MAX_VALUE_BYTES` and rows longer than a block (which
    pyarrow cannot read), else its first byte that is not UTF-8 (the first thing to fix:
    such text also shows as a parse error), else every line whose number of fields is
    not the header's, else pyarrow's own message.

    Only a broken file comes here. Long values are found by a scan of the bytes
    (:func:`~miqa_nb.exchange.scanning.long_csv_values`): pyarrow raises one error type
    for every problem, and only its message (which is no interface) would tell a row
    too long for a block. The rest is read again with Python's ``csv`` module, which
    splits rows as pyarrow's options do (``"`` quotes, doubled inside)."""
    name = str(path)
    expected = len(columns)
    long = _long_values(path, columns)
    if long:
        return long
    bad = _find_bad_utf8(path)
    if bad:
        row, position, byte = bad
        return [
            Problem(
                "error",
                "encoding",
                f"line {row} is not UTF-8 (byte {byte} at character {position}; Latin-1 "
                "or Windows-1252 text?); save the file as UTF-8",
                file=name,
                row=row,
                value=byte,
                expected="UTF-8 text",
            )
        ]
    problems: list[Problem] = []
    more = 0
    # The csv module's bound on a value (128 KiB by default) is process-wide: raised to
    # ours while this file is read, then put back (a read that meets another thread's
    # bound ends in a csv.Error, reported below, not a traceback).
    bound = csv.field_size_limit(max(csv.field_size_limit(), limits.MAX_VALUE_BYTES + 2))
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        start = 2
        try:
            next(reader, None)
            start = reader.line_num + 1
            for fields in reader:
                if fields and len(fields) != expected:
                    if len(problems) < LISTED_BAD_LINES:
                        text = ",".join(fields)
                        problems.append(
                            Problem(
                                "error",
                                "malformed-csv",
                                f"the CSV cannot be parsed at line {start}: {len(fields)} fields "
                                f"where the header has {expected} ({text[:60]!r}); check quoting "
                                "and the number of commas",
                                file=name,
                                row=start,
                                value=text[:200],
                                expected=f"{expected} fields",
                            )
                        )
                    else:
                        more += 1
                start = reader.line_num + 1
        except csv.Error as error:
            problems.append(
                Problem(
                    "error",
                    "malformed-csv",
                    f"the CSV cannot be parsed at line {reader.line_num}: {error}",
                    file=name,
                    row=reader.line_num,
                )
            )
        finally:
            csv.field_size_limit(bound)
    if more:
        problems.append(
            Problem(
                "error",
                "malformed-csv",
                f"{more} more lines cannot be parsed",
                file=name,
                count=more,
            )
        )
    if not problems:
        problems.append(
            Problem(
                "error",
                "malformed-csv",
                f"the CSV cannot be parsed: {exc}; check quoting and the number of commas",
                file=name,
            )
        )
    return problems


def _long_values(path: Path, columns: list[str]) -> list[Problem]:
    """The values and rows of a CSV file too long to read (see :func:`_diagnose`)."""
    found = scanning.long_csv_values(
        path, limits.MAX_VALUE_BYTES, BLOCK_BYTES, listed=LISTED_BAD_LINES
    )
    problems = []
    for long in found:
        column: str | None = None
        if long.column is None:  # pyarrow reads a row over one block, but not always
            what = f"row {long.row} is"
            bound = f"more than {BLOCK_BYTES:,} bytes is too long a row to read"
            expected = f"at most {BLOCK_BYTES:,} bytes per row"
        else:
            column = columns[long.column] if long.column < len(columns) else f"#{long.column + 1}"
            what = f"the value of {column!r} in row {long.row} is"
            bound = f"a value may be at most {limits.MAX_VALUE_BYTES:,} bytes"
            expected = f"at most {limits.MAX_VALUE_BYTES:,} bytes"
        problems.append(
            Problem(
                "error",
                "too-long",
                f"{what} {long.size:,} bytes long; {bound}: shorten it (the file was not "
                "read further)",
                file=str(path),
                row=long.row,
                column=column,
                expected=expected,
            )
        )
    return problems


def _complete(batch: pa.RecordBatch, first_row: int) -> pa.RecordBatch:
    """``batch`` in :data:`BATCH_SCHEMA`: absent columns empty, ``_row`` counted."""
    n = batch.num_rows
    present = set(batch.schema.names)
    empty = pa.repeat(pa.scalar("", pa.string()), n)
    arrays = [batch.column(c) if c in present else empty for c in MIQA_COLUMNS]
    arrays.append(pa.array(np.arange(first_row, first_row + n, dtype=np.int64)))
    arrays.append(pa.nulls(n, pa.string()))
    return pa.RecordBatch.from_arrays(arrays, schema=BATCH_SCHEMA)


def _find_bad_utf8(path: Path) -> tuple[int, int, str] | None:
    """(line, column, byte) of the first byte that is not UTF-8; None if there is none."""
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                return number, exc.start + 1, f"0x{line[exc.start]:02x}"
    return None


# -------------------------------------------------------------------------- JSON


def _jpath(*keys: str) -> str:
    return "$" + "".join(f"[{json.dumps(k, ensure_ascii=False)}]" for k in keys)


def _scalar(value: Any) -> str | None:
    """A scalar as text ('' for null); None when the value is not a scalar."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    return None


def read_json(path: str | os.PathLike[str]) -> ParsedFile:
    """Read a JSON import file: ``projects -> experiments -> scans -> frames``.

    A scan carries ``last_decision`` (the specification) or ``decisions`` (MIQA: every
    decision); an experiment may carry ``notes``. Unknown keys and wrongly nested values
    are reported with their JSON path. A scan's decisions are ordered as MIQA orders
    them (:func:`decision_order`). What MIQA's own importer would refuse or read
    otherwise (``"notes": null``; ``decisions`` beside ``last_decision``) is a warning.
    """
    name = str(path)
    parsed = ParsedFile(name, "json")
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        parsed.problems.append(
            _json_problem(name, "unreadable", f"cannot read the file: {exc.strerror or exc}", "$")
        )
        return parsed
    data = data[len(_BOM) :] if data.startswith(_BOM) else data
    deep = scanning.json_too_deep(data, limits.MAX_JSON_DEPTH)
    if deep is not None:
        parsed.problems.append(_too_deep(name, deep.path, deep.line, deep.column))
        return parsed
    try:
        document = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        parsed.problems.append(
            _json_problem(
                name, "encoding", f"the file is not UTF-8 ({exc.reason}); save it as UTF-8", "$"
            )
        )
        return parsed
    except json.JSONDecodeError as exc:
        parsed.problems.append(
            _json_problem(
                name,
                "malformed-json",
                f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}",
                "$",
                row=exc.lineno,
            )
        )
        return parsed
    except RecursionError:  # pragma: no cover - the depth is bounded above; a safety net
        parsed.problems.append(_too_deep(name, None, None, None))
        return parsed
    reader = _JsonReader(name)
    reader.read(document)
    parsed.problems.extend(reader.problems)
    if not reader.rows and not parsed.problems:
        parsed.problems.append(
            _json_problem(
                name,
                "no-rows",
                "the file holds no frames; add projects, experiments, scans and frames",
                "$",
            )
        )
    parsed.decisions = pd.DataFrame(reader.decisions, columns=list(DECISIONS_TABLE))
    frame = pd.DataFrame(reader.rows, columns=[*MIQA_COLUMNS, "_path"], dtype=object)
    parsed._batches = lambda: _frame_batches(frame)
    return parsed


def _too_deep(file: str, where: str | None, line: int | None, column: int | None) -> Problem:
    at = f" at line {line}, column {column}" if line is not None else ""
    return _json_problem(
        file,
        "json-too-deep",
        f"the JSON nests deeper than {limits.MAX_JSON_DEPTH} levels{at}; a MIQA file nests "
        f"{limits.FORMAT_DEPTH} (projects, experiments, scans, frames or decisions): this "
        "is not an import file, and it was not read further",
        where or "$",
        row=line,
        expected=f"at most {limits.MAX_JSON_DEPTH} levels of objects and lists",
    )


def _json_problem(
    file: str,
    check: str,
    message: str,
    where: str,
    severity: Literal["error", "warning"] = "error",
    **more: Any,
) -> Problem:
    return Problem(severity, check, message, file=file, path=where, **more)


def _frame_batches(frame: pd.DataFrame) -> Iterator[pa.RecordBatch]:
    """The rows of a JSON file as record batches of :data:`BATCH_SCHEMA`."""
    table = pa.Table.from_pandas(frame.assign(_row=None)[list(BATCH_COLUMNS)], schema=BATCH_SCHEMA)
    yield from table.to_batches()


def decision_order(created: list[str]) -> list[int]:
    """Each decision's place in its scan's history (0 the newest), given their
    ``created`` texts in the order a file lists them (newest first).

    As MIQA orders them (``docs/miqa-rules.md``, rule D1): by ``created``, newest first,
    a decision without a (readable) time before any with one (PostgreSQL sorts nulls
    first in MIQA's ``-created`` order); times compare as written, wall clock, whatever
    their UTC offsets (MIQA drops the offset); ties keep the list's order.

    >>> decision_order(["2022-01-01 10:00:00", "2022-01-02 09:00:00", "", "2022-01-02 09:00"])
    [3, 1, 0, 2]
    """
    keys = []
    for position, text in enumerate(created):
        try:
            wall = Timestamp.parse(text).wall if text.strip() else None
        except VocabularyError:
            wall = None
        since = 0 if wall is None else (wall - datetime.min) // timedelta(microseconds=1)
        keys.append((wall is not None, -since, position))
    ranked = sorted(range(len(created)), key=keys.__getitem__)
    order = [0] * len(created)
    for place, index in enumerate(ranked):
        order[index] = place
    return order


class _JsonReader:
    """Walks a parsed JSON document into frame rows and decisions, noting problems."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []
        self.rows: list[dict[str, Any]] = []
        self.decisions: list[dict[str, Any]] = []

    def problem(self, check: str, message: str, where: str, **more: Any) -> None:
        self.problems.append(_json_problem(self.file, check, message, where, **more))

    def mapping(self, value: Any, where: str, what: str, keys: tuple[str, ...] | None) -> dict:
        """``value`` if it is an object (its unknown keys reported), else ``{}``."""
        if not isinstance(value, dict):
            self.problem(
                "json-structure",
                f"{what} must be a JSON object; found {type(value).__name__}",
                where,
                value=_preview(value),
            )
            return {}
        allowed = () if keys is None else keys
        for key in value if keys is not None else ():
            if key not in allowed:
                self.problem(
                    "unknown-key",
                    f"unknown key {key!r} in {what}; allowed keys are {', '.join(allowed)}",
                    where + f"[{json.dumps(key, ensure_ascii=False)}]",
                    column=key,
                    value=key,
                    expected=", ".join(allowed),
                )
        return value

    def text(self, container: dict, key: str, where: str) -> str:
        """A scalar value as text (``''`` for null or absent)."""
        found = _scalar(container.get(key))
        if found is None:
            self.problem(
                "json-structure",
                f"{key!r} must be a string or null, not a nested value",
                where + f"[{json.dumps(key)}]",
                column=key,
                value=_preview(container.get(key)),
            )
            return ""
        return found

    def read(self, document: Any) -> None:
        top = self.mapping(document, "$", "the document", ("projects",))
        if isinstance(document, dict) and "projects" not in document:
            self.problem("json-structure", "the document needs a top-level 'projects' object", "$")
        projects = self.mapping(top.get("projects", {}), _jpath("projects"), "'projects'", None)
        for project, pvalue in projects.items():
            pwhere = _jpath("projects", project)
            pdict = self.mapping(pvalue, pwhere, f"project {project!r}", ("experiments",))
            experiments = self.mapping(
                pdict.get("experiments", {}), pwhere + '["experiments"]', "'experiments'", None
            )
            for experiment, evalue in experiments.items():
                self.experiment(project, experiment, evalue)

    def experiment(self, project: str, experiment: str, evalue: Any) -> None:
        ewhere = _jpath("projects", project, "experiments", experiment)
        edict = self.mapping(evalue, ewhere, f"experiment {experiment!r}", ("scans", "notes"))
        if "notes" in edict and edict["notes"] is None:
            self.problem(
                "miqa-refuses",
                f'experiment {experiment!r} has "notes": null, which MIQA refuses (it '
                'writes "" for no notes); read here as no notes',
                ewhere + '["notes"]',
                severity="warning",
                column="notes",
                expected='a string ("" for none)',
            )
        notes = self.text(edict, "notes", ewhere)
        scans = self.mapping(edict.get("scans", {}), ewhere + '["scans"]', "'scans'", None)
        if not scans and isinstance(evalue, dict):
            self.problem(
                "empty-experiment",
                f"experiment {experiment!r} has no scans; add scans or remove it",
                ewhere,
            )
        for scan, svalue in scans.items():
            swhere = ewhere + _jpath("scans", scan)[1:]
            sdict = self.mapping(
                svalue,
                swhere,
                f"scan {scan!r}",
                (*SCAN_KEYS, "frames", "last_decision", "decisions"),
            )
            base = {
                **dict.fromkeys(MIQA_COLUMNS, ""),
                "project_name": project,
                "experiment_name": experiment,
                "scan_name": scan,
                "experiment_notes": notes,
                **{col: self.text(sdict, key, swhere) for key, col in SCAN_KEYS.items()},
            }
            frames = self.mapping(sdict.get("frames", {}), swhere + '["frames"]', "'frames'", None)
            if not frames and isinstance(svalue, dict):
                self.problem(
                    "empty-scan",
                    f"scan {scan!r} has no frames; add at least one frame or remove it",
                    swhere,
                )
            for number, fvalue in frames.items():
                fwhere = swhere + _jpath("frames", number)[1:]
                fdict = self.mapping(fvalue, fwhere, f"frame {number!r}", ("file_location",))
                self.rows.append(
                    {
                        **base,
                        "frame_number": number,
                        "file_location": self.text(fdict, "file_location", fwhere),
                        "_path": fwhere,
                    }
                )
            self.history(project, experiment, scan, sdict, swhere)

    def history(self, project: str, experiment: str, scan: str, sdict: dict, swhere: str) -> None:
        """A scan's decisions: ``last_decision`` and the ``decisions`` list, in MIQA's order."""
        listed: list[tuple[Any, str]] = []
        if sdict.get("last_decision") is not None:
            listed.append((sdict["last_decision"], swhere + '["last_decision"]'))
        given = sdict.get("decisions")
        if given is not None and not isinstance(given, list):
            self.problem("json-structure", "'decisions' must be a list", swhere + '["decisions"]')
        elif given is not None:
            if listed and given:
                self.problem(
                    "miqa-differs",
                    f"scan {scan!r} has both 'last_decision' and 'decisions'; MIQA would keep "
                    "only 'last_decision', here both are kept",
                    swhere,
                    severity="warning",
                )
            listed.extend((d, swhere + f'["decisions"][{n}]') for n, d in enumerate(given))
        found: list[dict[str, Any]] = []
        for dvalue, dwhere in listed:
            ddict = self.mapping(dvalue, dwhere, "a decision", tuple(DECISION_KEYS))
            found.append(
                {
                    "project_name": project,
                    "experiment_name": experiment,
                    "scan_name": scan,
                    **{col: self.text(ddict, key, dwhere) for key, col in DECISION_KEYS.items()},
                    "_path": dwhere,
                }
            )
        order = decision_order([d["last_decision_created"] for d in found])
        for decision, place in zip(found, order, strict=True):
            decision["_order"] = place
        self.decisions.extend(found)


def _preview(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


# ------------------------------------------------------------------------ writing


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``
    (:func:`miqa_nb.core.files.atomic_path`).

    A path that cannot be written raises :class:`WriteError` naming it, and leaves
    nothing behind (an earlier file at ``path`` stays as it was)."""
    target = Path(path)
    if target.is_dir():
        raise WriteError(
            f"cannot write {target}: it is a folder; give a file path (.csv, or .json for JSON)"
        )
    existing = next((p for p in target.parents if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise WriteError(f"cannot write {target}: {existing} is a file, not a folder")
    try:
        with files.atomic_path(target) as tmp:
            yield tmp
    except OSError as exc:
        raise _write_error(target, exc) from exc


def _write_error(target: Path, exc: OSError) -> WriteError:
    return WriteError(
        f"cannot write {target}: {exc.strerror or exc}; give a path in a folder you can write to"
    )


def write_csv(copy_to: Callable[[Path], None], path: str | os.PathLike[str]) -> Path:
    """Write a CSV atomically; ``copy_to(tmp)`` writes the rows (a DuckDB ``COPY``)."""
    with atomic_path(path) as tmp:
        copy_to(tmp)
    return Path(path)


def write_json(
    scans: pd.DataFrame, experiments: pd.DataFrame, path: str | os.PathLike[str]
) -> Path:
    """Write the nested JSON export atomically.

    ``scans`` has ``project, experiment, scan, body`` with ``body`` the scan's JSON
    object already rendered (one line per scan keeps large exports readable and fast);
    ``experiments`` has ``project, experiment, notes``. Both sorted.
    """
    dump = json.dumps
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as out:
        _write_nested(out, scans, experiments, dump)
    return Path(path)


def _write_nested(out: IO[str], scans: pd.DataFrame, experiments: pd.DataFrame, dump: Any) -> None:
    notes = {
        (p, e): n
        for p, e, n in zip(
            experiments["project"], experiments["experiment"], experiments["notes"], strict=True
        )
    }
    out.write('{\n  "projects": {')
    project = experiment = None
    first_scan = True
    for p, e, s, body in zip(
        scans["project"], scans["experiment"], scans["scan"], scans["body"], strict=True
    ):
        if p != project:
            if project is not None:
                out.write(_close_experiment(notes[(project, experiment)], dump))
                out.write("\n      }\n    },")
            out.write(f'\n    {dump(p, ensure_ascii=False)}: {{\n      "experiments": {{')
            project, experiment = p, None
        if e != experiment:
            if experiment is not None:
                out.write(_close_experiment(notes[(project, experiment)], dump) + ",")
            out.write(f'\n        {dump(e, ensure_ascii=False)}: {{\n          "scans": {{')
            experiment = e
            first_scan = True
        out.write(
            ("" if first_scan else ",") + f"\n            {dump(s, ensure_ascii=False)}: {body}"
        )
        first_scan = False
    if project is not None:
        out.write(_close_experiment(notes[(project, experiment)], dump))
        out.write("\n      }\n    }")
    out.write("\n  }\n}\n")


def _close_experiment(notes: str | None, dump: Any) -> str:
    return f'\n          }},\n          "notes": {dump(notes, ensure_ascii=False)}\n        }}'
