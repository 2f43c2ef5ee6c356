"""The battery: checks as small independent functions, and the runner that collects
what they find (after nibabel's ``batteryrunners``).

This module owns the shape of a check and how its findings become problems:

- A :class:`Check` wraps a function of the staged rows (:class:`Staging`) that
  returns what it found, and names the staged tables it reads (:func:`reads`). It
  reads only what :func:`~miqa_nb.exchange.validation._staging.stage` made, never a
  table another check made, so checks run in any order, or alone.
- A check finds either :class:`~miqa_nb.core.report.Problem` objects, or
  :class:`Rule` objects: an SQL condition on a staged table, for the runner to
  describe (one problem per distinct offending value, with its first row, JSON path
  and count). A check's rules on one table are tested together in one counting
  pass, and described only when they fail, so a clean file costs one scan per table.
- :func:`run_battery` runs checks in order and returns their problems.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from miqa_nb.core.report import Problem, Severity
from miqa_nb.exchange.validation._staging import Staging

__all__ = ["MAX_LISTED", "Check", "Finding", "Rule", "describe", "reads", "run_battery"]

#: At most this many distinct offending values are listed per rule (the rest are counted).
MAX_LISTED = 200


@dataclass(frozen=True)
class Rule:
    """A rule checked in SQL: the rows of ``table`` where ``condition`` holds break it.

    Each distinct value of ``column`` in those rows is one problem: ``check``,
    ``message`` (a sentence, or a function of the value), ``severity``, ``expected``.
    """

    table: str
    column: str
    condition: str
    check: str
    message: Callable[[str], str] | str
    severity: Severity = "error"
    expected: str | None = None


#: What a check returns: problems it described, or rules for the runner to test.
Finding = Problem | Rule


@dataclass(frozen=True)
class Check:
    """One check of the battery: ``function(staging)`` returns what it finds, reading
    only the staged sources named in ``reads``."""

    function: Callable[[Staging], Iterable[Finding]]
    reads: tuple[str, ...]

    @property
    def name(self) -> str:
        """The check's function's name."""
        return self.function.__name__

    def __call__(self, staging: Staging) -> list[Problem]:
        """Run this check alone: its problems."""
        return run_battery((self,), staging)


def reads(*sources: str) -> Callable[[Callable[[Staging], Iterable[Finding]]], Check]:
    """Make a function a :class:`Check` that reads the staged ``sources``."""

    def wrap(function: Callable[[Staging], Iterable[Finding]]) -> Check:
        return Check(function, sources)

    return wrap


def run_battery(checks: Iterable[Check], staging: Staging) -> list[Problem]:
    """Run ``checks`` in order; return every problem they find.

    Raises
    ------
    RuntimeError
        When a check reads a source that staging did not make (a bug, not bad input).
    """
    problems: list[Problem] = []
    for check in checks:
        missing = set(check.reads) - staging.sources
        if missing:
            raise RuntimeError(
                f"check {check.name!r} reads {sorted(missing)}, which staging does not make; "
                f"it makes {sorted(staging.sources)}"
            )
        rules: list[Rule] = []
        for finding in check.function(staging):
            if isinstance(finding, Rule):
                rules.append(finding)
            else:
                problems.append(finding)
        problems.extend(_test(rules, staging))
    return problems


def _test(rules: list[Rule], staging: Staging) -> list[Problem]:
    """The problems of ``rules``: one counting pass per table (when it has several
    rules), then a description of each rule that fails."""
    problems: list[Problem] = []
    for table in dict.fromkeys(r.table for r in rules):
        mine = [r for r in rules if r.table == table]
        if len(mine) > 1:
            counts = staging.q(
                "SELECT "
                + ", ".join(f"count(*) FILTER (WHERE {r.condition})" for r in mine)
                + f" FROM {table}"
            )[0]
            mine = [r for r, n in zip(mine, counts, strict=True) if n]
        for rule in mine:
            problems.extend(describe(rule, staging))
    return problems


def describe(rule: Rule, staging: Staging) -> list[Problem]:
    """One problem per distinct value breaking ``rule`` (at most :data:`MAX_LISTED`,
    then one that says there are more), in the file's order, each with its first row,
    JSON path and how many rows share it."""
    rows = staging.q(
        f'SELECT "{rule.column}", min(_row), arg_min(_path, coalesce(_row, 0)), sum(_n)::BIGINT '
        f"FROM {rule.table} WHERE {rule.condition} GROUP BY 1 ORDER BY 2 NULLS LAST, 3 "
        f"LIMIT {MAX_LISTED + 1}"
    )
    problems = []
    for value, row, path, count in rows[:MAX_LISTED]:
        message = rule.message if isinstance(rule.message, str) else rule.message(value)
        where: dict[str, Any] = dict(row=row, path=path, column=rule.column, value=value)
        problems.append(
            staging.problem(
                rule.severity, rule.check, message, expected=rule.expected, count=count, **where
            )
        )
    if len(rows) > MAX_LISTED:
        problems.append(
            staging.problem(
                rule.severity,
                rule.check,
                f"more distinct values fail this check in {rule.column!r}",
            )
        )
    return problems
