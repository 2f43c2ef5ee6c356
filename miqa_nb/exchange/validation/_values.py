"""Checks of values, row by row: required values, names, numbers, vocabulary, links.

This module owns :data:`VALUE_CHECKS`, the checks that look at each value on its
own (a run stands for its rows; see :mod:`~miqa_nb.exchange.validation._rows`).
Each is a :class:`~miqa_nb.exchange.validation._battery.Check` reading only staged
tables. Vectorised tests on the Arrow columns clear the common case; SQL describes a
problem only when one is there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pyarrow as pa
import pyarrow.compute as pc

from miqa_nb.core.rules import NAME_CONTROLS, control_class
from miqa_nb.exchange import formats
from miqa_nb.exchange.formats import DECISION_COLUMNS
from miqa_nb.exchange.validation._battery import Check, Finding, Rule, reads
from miqa_nb.exchange.validation._rows import (
    FRAME_COLUMNS,
    MAX_TEXT,
    NAME_COLUMNS,
    plain_names,
    plain_numbers,
)
from miqa_nb.exchange.validation._staging import VOCABULARIES, Staging
from miqa_nb.exchange.validation._text import TEXT_CHECKS, shown

__all__ = [
    "VALUE_CHECKS",
    "decision_given",
    "frame_numbers",
    "known_creators",
    "names_are_one_line",
    "only_this_project",
    "required_in_frames",
    "required_in_runs",
    "vocabulary",
    "web_links",
]


def _required(table: str, column: str) -> Rule:
    return Rule(
        table,
        column,
        f"\"{column}\" = ''",
        "required-value",
        f"{column} is empty; it is required on every row",
        expected="a value",
    )


@reads("frames")
def required_in_frames(staging: Staging) -> Iterator[Finding]:
    """Frame numbers and file locations are given on every row."""
    for column in formats.REQUIRED_COLUMNS:
        if column in FRAME_COLUMNS and _has_empty(staging.frames.column(column)):
            yield _required("frames", column)


def _has_empty(values: pa.ChunkedArray) -> bool:
    """Whether a value is ``''`` (its shortest is 0 bytes long)."""
    shortest: int | None = pc.min(pc.binary_length(values)).as_py()
    return shortest == 0


@reads("runs")
def required_in_runs(staging: Staging) -> Iterator[Finding]:
    """Names and scan type are given on every row."""
    for column in formats.REQUIRED_COLUMNS:
        if column not in FRAME_COLUMNS:
            yield _required("runs", column)


@reads("frames")
def frame_numbers(staging: Staging) -> Iterator[Finding]:
    """A frame number is a whole number >= 0 (at most nine digits, leading zeros aside)."""
    if plain_numbers(staging.frames.column("frame_number")):
        return
    yield Rule(
        "frames",
        "frame_number",
        "frame_number <> '' AND (NOT regexp_full_match(frame_number, '[0-9]+') "
        "OR length(ltrim(frame_number, '0')) > 9)",
        "frame-number",
        lambda v: f"frame_number must be a whole number >= 0 (0, 1, 2...); {v!r} was provided",
        expected="an integer >= 0",
    )


def _control_message(column: str) -> Callable[[str], str]:
    def message(value: str) -> str:
        return (
            f"{column} holds a control character ({shown(value)}; a tab or line break?); "
            "names are one line of text: remove the character"
        )

    return message


@reads("runs")
def names_are_one_line(staging: Staging) -> Iterator[Finding]:
    """Names and subject and session IDs are one line of at most :data:`MAX_TEXT`
    characters."""
    for column in (*NAME_COLUMNS, "subject_id", "session_id"):
        if plain_names(staging.runs.column(column)):
            continue
        yield Rule(
            "runs",
            column,
            f"regexp_matches(\"{column}\", '{control_class(NAME_CONTROLS)}')",
            "control-character",
            _control_message(column),
            expected="printable text",
        )
        yield Rule(
            "runs",
            column,
            f'length("{column}") > {MAX_TEXT}',
            "too-long",
            f"{column} is longer than {MAX_TEXT} characters",
            expected=f"at most {MAX_TEXT} characters",
        )


@reads("runs")
def only_this_project(staging: Staging) -> Iterator[Finding]:
    """A project import holds only that project's rows."""
    project = staging.project
    if project is None:
        return
    yield Rule(
        "runs",
        "project_name",
        f"project_name <> {_quote(project)}",
        "other-project",
        lambda v: (
            f"row belongs to project {v!r}, but this is an import into project "
            f"{project!r}; remove other projects' rows or run a global import"
        ),
        expected=project,
    )


@reads("runs")
def web_links(staging: Staging) -> Iterator[Finding]:
    """A scan link is a web address (a warning: it is shown as text otherwise)."""
    yield Rule(
        "runs",
        "scan_link",
        "scan_link <> '' AND NOT regexp_matches(lower(scan_link), '^https?://')",
        "link-not-web",
        "scan_link is not an http(s) address; it will be shown as text, not a link",
        severity="warning",
        expected="http:// or https:// address",
    )


@reads("runs", "decisions")
def decision_given(staging: Staging) -> Iterator[Finding]:
    """A decision has its code: CSV columns of a decision are empty when the code is,
    and every decision of a JSON history has one."""
    if staging.kind == "csv":
        others = " OR ".join(f"\"{c}\" <> ''" for c in DECISION_COLUMNS[1:])
        yield Rule(
            "runs",
            "last_decision",
            f"last_decision = '' AND ({others})",
            "decision-missing",
            "last_decision is empty but other decision columns have values; "
            "give the decision code or clear the decision columns",
            expected="U, UE, Q? or UN",
        )
    else:
        yield Rule(
            "decisions",
            "last_decision",
            "last_decision = ''",
            "decision-missing",
            "a decision without a decision code; give U, UE, Q? or UN",
            expected="U, UE, Q? or UN",
        )


@reads("decisions", "users")
def known_creators(staging: Staging) -> Iterator[Finding]:
    """A decision's creator is a user of the catalog: an import credits decisions to
    the catalog's users, never to a new name. Not checked when the users are not known
    (a file checked without a catalog)."""
    if staging.users is None:
        return
    yield Rule(
        "decisions",
        "last_decision_creator",
        "last_decision_creator <> '' AND last_decision_creator NOT IN (SELECT name FROM users)",
        "unknown-creator",
        lambda v: (
            f"decision creator {v!r} is not a user of the catalog; a superuser adds the "
            f"user first (`miqa-nb users add {v}`), or correct the name"
        ),
        expected="a user of the catalog",
    )


def vocabulary(name: str, check: str) -> Check:
    """The check that the values of vocabulary ``name`` (see :data:`VOCABULARIES`) are
    known: one problem per value staging rejected, with the vocabulary's reason."""
    table, column = VOCABULARIES[name]
    rejected = f"{name}_rejected"

    def known(staging: Staging) -> Iterator[Finding]:
        reasons = dict(staging.q(f"SELECT value, reason FROM {rejected}"))
        if reasons:
            yield Rule(
                table,
                column,
                f'"{column}" IN (SELECT value FROM {rejected})',
                check,
                reasons.__getitem__,
            )

    known.__name__ = f"known_{name}"
    return Check(known, (table, rejected))


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


#: The value checks, in the order their problems are listed (before sorting by row).
VALUE_CHECKS: tuple[Check, ...] = (
    required_in_frames,
    frame_numbers,
    vocabulary("scan_type", "unknown-scan-type"),
    required_in_runs,
    names_are_one_line,
    *TEXT_CHECKS,
    only_this_project,
    web_links,
    decision_given,
    vocabulary("decision", "unknown-decision"),
    known_creators,
    vocabulary("artifact", "unknown-artifact"),
    vocabulary("time", "bad-time"),
    vocabulary("location", "bad-location"),
)
