"""MIQA import/export files: read them into plain tables, write tables back out.

This module owns the *shape* of the files (the specification in
``miqa-import-export.md`` and what the MIQA application writes) and nothing else: it
does not judge values. Readers return :class:`ParsedFile`: the structural problems
found (wrong delimiter, unknown columns or keys, bad encoding...) and a way to load the
frame rows as Arrow record batches of strings (``''`` for missing; surrounding spaces are
the reader's business, see :data:`UNTRIMMED`). CSV files are read by pyarrow's parallel
CSV reader, files over :data:`STREAM_BYTES` by its streaming reader (bounded memory);
never row by row in Python. The JSON reader is :mod:`~miqa_nb.exchange._json`, the
shape both readers return :mod:`~miqa_nb.exchange._parsed`; this module re-exports them.
Writers are atomic: they write a temporary file beside the target, then rename it.
"""

from __future__ import annotations

import contextlib
import csv
import difflib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv

from miqa_nb.core import arrow, files
from miqa_nb.core.errors import WriteError
from miqa_nb.core.report import Problem
from miqa_nb.exchange import limits, scanning
from miqa_nb.exchange._json import decision_order, read_json
from miqa_nb.exchange._parsed import (
    BATCH_COLUMNS,
    BATCH_SCHEMA,
    DECISION_COLUMNS,
    DECISION_KEYS,
    DECISIONS_TABLE,
    MIQA_COLUMNS,
    REQUIRED_COLUMNS,
    SCAN_KEYS,
    UNTRIMMED,
    ParsedFile,
)
from miqa_nb.exchange._parsed import BOM as _BOM

if TYPE_CHECKING:  # pandas loads on first use: an import never needs it
    import pandas as pd

__all__ = [
    "BATCH_COLUMNS",
    "BATCH_SCHEMA",
    "BLOCK_BYTES",
    "DECISIONS_TABLE",
    "DECISION_COLUMNS",
    "DECISION_KEYS",
    "LISTED_BAD_LINES",
    "MIQA_COLUMNS",
    "REQUIRED_COLUMNS",
    "SCAN_KEYS",
    "STREAM_BYTES",
    "UNTRIMMED",
    "ParsedFile",
    "atomic_path",
    "decision_order",
    "read",
    "read_csv",
    "read_json",
    "write_csv",
    "write_json",
]


#: CSV files larger than this are read in a stream of blocks (bounded memory) rather
#: than at once with both cores.
STREAM_BYTES = 256 << 20
#: The size of the blocks pyarrow parses (in parallel, or one after another when streamed).
BLOCK_BYTES = 4 << 20


def read(path: str | os.PathLike[str]) -> ParsedFile:
    """Read a MIQA import file; ``.json`` is JSON, anything else is read as CSV."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        return read_json(path)
    return read_csv(path)


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
    empty = arrow.texts([""]).take(arrow.from_numpy(np.zeros(n, dtype=np.int32)))
    arrays = [batch.column(c) if c in present else empty for c in MIQA_COLUMNS]
    arrays.append(arrow.from_numpy(np.arange(first_row, first_row + n, dtype=np.int64)))
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
