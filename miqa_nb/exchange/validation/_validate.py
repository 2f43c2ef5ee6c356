"""The front door: :func:`validate` reads, stages and checks a file; :func:`check` too,
for the report only."""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable
from typing import Any

from miqa_nb.core.report import Problem, Report
from miqa_nb.core.vocabulary import ScanTypes
from miqa_nb.exchange import formats
from miqa_nb.exchange.validation._battery import run_battery
from miqa_nb.exchange.validation._files import FILE_CHECKS
from miqa_nb.exchange.validation._rows import split_rows
from miqa_nb.exchange.validation._scans import SCAN_CHECKS
from miqa_nb.exchange.validation._staged import Staged, build, counts
from miqa_nb.exchange.validation._staging import connect, staging
from miqa_nb.exchange.validation._values import VALUE_CHECKS

__all__ = ["check", "validate"]


def validate(
    path: str | os.PathLike[str],
    *,
    roots: Iterable[str | os.PathLike[str]] | None = None,
    scan_types: ScanTypes | None = None,
    users: Collection[str] | None = None,
    project: str | None = None,
    progress: bool = False,
) -> Staged:
    """Check an import file and stage its content.

    The file is read (:mod:`~miqa_nb.exchange.formats`); a structural problem stops
    there. Otherwise its rows are staged, and the batteries run: the value checks,
    then, when they found no error, the checks across rows, then the check of frame
    files. The problems are listed errors first, then in the file's order.

    Parameters
    ----------
    path : path-like
        A CSV or JSON import file.
    roots : list of path-like, optional
        Folders frame files may live in; default ``MIQA_NB_DATA_ROOTS`` or the file's folder.
    scan_types : ScanTypes, optional
        The scan types to accept (MIQA's by default).
    users : collection of str, optional
        The catalog's user names: every decision's creator must be one. Not checked
        when not given (a file checked without a catalog).
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
    con = connect()
    staged = Staged(report, con)
    steps = ("reading", "checking values", "checking file locations", "staging")
    with _bar(len(steps), os.path.basename(path), progress) as bar:
        bar.set_postfix_str(steps[0])
        parsed = formats.read(path)
        runs, frames = split_rows(parsed.batches())
        report.extend(parsed.problems)
        if runs is None or frames is None or not report.ok:
            return staged
        with staging(
            con,
            path,
            parsed,
            runs,
            frames,
            roots=roots,
            scan_types=scan_types,
            users=users,
            project=project,
        ) as staged_rows:
            bar.update()
            bar.set_postfix_str(steps[1])
            report.extend(run_battery(VALUE_CHECKS, staged_rows))
            if report.ok:  # the checks across rows read numbers and canonical types
                report.extend(run_battery(SCAN_CHECKS, staged_rows))
            bar.update()
            bar.set_postfix_str(steps[2])
            report.extend(run_battery(FILE_CHECKS, staged_rows))
            report.problems.sort(key=_position)
        bar.update()
        bar.set_postfix_str(steps[3])
        if report.ok:
            build(staged_rows, staged)
        report.counts = counts(con, staged)
        staged.projects = [
            r[0]
            for r in con.execute("SELECT DISTINCT project_name FROM runs ORDER BY 1").fetchall()
        ]
        if report.ok:  # only the v_* tables are needed from here on
            staged_rows.drop_rows()
        bar.update()
    return staged


def check(path: str | os.PathLike[str], **options: Any) -> Report:
    """:func:`validate` for its report only (the staging database is freed at once)."""
    staged = validate(path, **options)
    staged.close()
    return staged.report


class _NoBar:
    """What :func:`_bar` gives when no bar is shown: its methods do nothing."""

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self) -> None:
        return None

    def set_postfix_str(self, text: str) -> None:
        return None


def _bar(total: int, desc: str, shown: bool) -> Any:
    """A tqdm progress bar over ``total`` steps, or none (tqdm, and the asyncio it
    imports, load only when a bar is shown)."""
    if not shown:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc)


def _position(problem: Problem) -> tuple[int, int, str]:
    """Sort key: errors first, then by row (or JSON path), as a user reads the file."""
    return (
        problem.severity != "error",
        problem.row if problem.row is not None else 1 << 62,
        problem.path or "",
    )
