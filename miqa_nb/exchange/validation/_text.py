"""Checks of text, value by value: its size, its control characters, its formulas.

This module owns :data:`TEXT_CHECKS`, run with the value checks. The rules are written
once elsewhere: the bound of a value and the characters a spreadsheet runs as a
formula in :mod:`miqa_nb.exchange.limits`, the control characters a note or a name
may not hold in :mod:`miqa_nb.core.rules` (which the catalog asks too, for the notes
typed in a review). Vectorised tests on the raw bytes of the Arrow columns clear the
common case; SQL describes a problem only when one is there.

Which columns are checked for what:

- every value: at most :data:`~miqa_nb.exchange.limits.MAX_VALUE_BYTES` (names are
  bounded more tightly by ``names_are_one_line``);
- no control character (:data:`~miqa_nb.core.rules.NAME_CONTROLS`) in the scan type,
  link, decision creator or file location (names and IDs: ``names_are_one_line``);
  notes may hold tabs and line breaks, no other (:data:`~miqa_nb.core.rules.NOTE_CONTROLS`);
- a warning for a value a spreadsheet would run as a formula, in the columns people
  type text into: names, notes, subject and session IDs, the link, the decision's
  creator. Not in frame numbers, times, locations of interest, decision codes or
  artifacts (numbers or vocabulary, refused otherwise when they are anything else),
  nor in a value that is a plain number (``-3`` is read as a number, not run).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pyarrow as pa

from miqa_nb.core.rules import NAME_CONTROLS, NOTE_CONTROLS, control_class
from miqa_nb.exchange import limits
from miqa_nb.exchange.validation._battery import MAX_LISTED, Check, Finding, Rule, reads
from miqa_nb.exchange.validation._rows import NAME_COLUMNS, RUN_COLUMNS, bytes_pass
from miqa_nb.exchange.validation._staging import Staging

__all__ = ["FORMULA_COLUMNS", "TEXT_CHECKS", "no_control_characters", "no_formulas", "values_fit"]

#: Notes: tabs and line breaks allowed.
NOTE_COLUMNS = ("experiment_notes", "last_decision_note")
#: Other text that must be one line, beside the names and IDs (checked with the names).
LINE_COLUMNS = ("scan_type", "scan_link", "last_decision_creator")
#: The columns whose values are checked for formulas.
FORMULA_COLUMNS = (
    *NAME_COLUMNS,
    "experiment_notes",
    "subject_id",
    "session_id",
    "scan_link",
    "last_decision_creator",
    "last_decision_note",
)
#: The decision columns a JSON file's histories hold as text.
_JSON_TEXT = ("last_decision_creator", "last_decision_note")


def _flags(characters: str) -> np.ndarray:
    flags = np.zeros(256, dtype=bool)
    flags[[ord(c) for c in characters]] = True
    return flags


_NAME_BYTES, _NOTE_BYTES = _flags(NAME_CONTROLS), _flags(NOTE_CONTROLS)
_FORMULA_BYTES = _flags(limits.FORMULA_START)


def shown(value: str) -> str:
    """A value as a message shows it: escaped (``repr``), the first 60 characters."""
    return repr(value) if len(value) <= 60 else repr(value[:57]) + "..."


def _first_bytes_pass(column: pa.ChunkedArray) -> bool:
    """No value of ``column`` begins with a byte of :data:`limits.FORMULA_START`."""
    for chunk in column.chunks:
        _, offsets_buffer, data_buffer = chunk.buffers()
        if chunk.null_count:
            return False
        if data_buffer is None:
            continue
        offsets = np.frombuffer(offsets_buffer, dtype=np.int32)[
            chunk.offset : chunk.offset + len(chunk) + 1
        ]
        starts = offsets[:-1][offsets[1:] > offsets[:-1]]
        if _FORMULA_BYTES[np.frombuffer(data_buffer, dtype=np.uint8)[starts]].any():
            return False
    return True


@reads("runs", "frames", "decisions")
def values_fit(staging: Staging) -> Iterator[Finding]:
    """No value is longer than :data:`~miqa_nb.exchange.limits.MAX_VALUE_BYTES`."""
    bound = limits.MAX_VALUE_BYTES
    places = [("runs", c, staging.runs.column(c)) for c in RUN_COLUMNS]
    places.append(("frames", "file_location", staging.frames.column("file_location")))
    if staging.kind == "json":
        places.extend(("decisions", c, None) for c in _JSON_TEXT)
    for table, column, values in places:
        if values is not None and bytes_pass(values, bound, None):
            continue
        found = staging.q(
            f'SELECT left("{column}", 40), strlen("{column}"), _row, _path FROM {table} '
            f'WHERE strlen("{column}") > {bound} ORDER BY _row NULLS LAST, _path '
            f"LIMIT {MAX_LISTED}"
        )
        for head, size, row, path in found:
            yield staging.problem(
                "error",
                "too-long",
                f"{column} is {size:,} bytes long ({shown(head)}...); a value may be at most "
                f"{bound:,} bytes: shorten it",
                row=row,
                path=path,
                column=column,
                value=head + "...",
                expected=f"at most {bound:,} bytes",
            )


def _control_rule(table: str, column: str, note: bool) -> Rule:
    characters = NOTE_CONTROLS if note else NAME_CONTROLS
    rule = (
        "a note may hold tabs and line breaks, no other control character"
        if note
        else "it must be one line of printable text"
    )
    return Rule(
        table,
        column,
        f"regexp_matches(\"{column}\", '{control_class(characters)}')",
        "control-character",
        lambda v: f"{column} holds a control character ({shown(v)}); {rule}: remove the character",
        expected="tabs and line breaks, no other control character" if note else "one line",
    )


@reads("runs", "frames", "decisions")
def no_control_characters(staging: Staging) -> Iterator[Finding]:
    """No control character in a note but tabs and line breaks, none at all in the scan
    type, link, creator or file location."""
    for column in (*NOTE_COLUMNS, *LINE_COLUMNS):
        note = column in NOTE_COLUMNS
        flags = _NOTE_BYTES if note else _NAME_BYTES
        if not bytes_pass(staging.runs.column(column), None, flags):
            yield _control_rule("runs", column, note)
    if not bytes_pass(staging.frames.column("file_location"), None, _NAME_BYTES):
        yield _control_rule("frames", "file_location", False)
    if staging.kind == "json":
        for column in _JSON_TEXT:
            yield _control_rule("decisions", column, column in NOTE_COLUMNS)


def _formula_message(column: str) -> Callable[[str], str]:
    def message(value: str) -> str:
        return (
            f"{column} {shown(value)} begins with {value[:1]!r}: a spreadsheet opening a CSV "
            "export runs it as a formula. Keep it if it is meant as text: the dashboard's "
            "exports (and `miqa-nb export --spreadsheet-safe`) write it with a ' in front"
        )

    return message


@reads("runs", "decisions")
def no_formulas(staging: Staging) -> Iterator[Finding]:
    """A warning for each value a spreadsheet would run as a formula."""
    columns = [c for c in FORMULA_COLUMNS if not _first_bytes_pass(staging.runs.column(c))]
    places = [("runs", c) for c in columns]
    if staging.kind == "json":
        places.extend(("decisions", c) for c in _JSON_TEXT)
    for table, column in places:
        yield Rule(
            table,
            column,
            limits.formula_sql(f'"{column}"'),
            "formula",
            _formula_message(column),
            severity="warning",
            expected="text that does not begin with =, +, -, @, a tab or a carriage return",
        )


#: The checks of text, in the order their problems are listed (before sorting by row).
TEXT_CHECKS: tuple[Check, ...] = (values_fit, no_control_characters, no_formulas)
