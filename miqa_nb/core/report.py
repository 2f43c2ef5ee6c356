"""The validation report: every problem found in an import file, in one place.

A :class:`Problem` names the file, the row (CSV, counted as a spreadsheet shows it: the
header is row 1) or the JSON path, the column or field, the value found, what was
expected, and how serious it is. A :class:`Report` gathers them with the counts of what
the file holds and, for a dry run, what an import would add, remove and change.

It prints readably (``str(report)``) and is a DataFrame (``report.to_frame()``).
This module has no I/O and knows nothing of catalogs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # pandas loads on first use: an import never needs it
    import pandas as pd

__all__ = [
    "CHANGE_COLUMNS",
    "COLUMNS",
    "SHOWN_PER_CHECK",
    "Problem",
    "Report",
    "Severity",
]

Severity = Literal["error", "warning"]

#: The columns of :attr:`Report.changes`: one row per level (projects, experiments,
#: scans, frames, decisions).
CHANGE_COLUMNS = ("level", "added", "removed", "changed", "unchanged", "conflicts")

#: How many rows of one kind of problem ``str(report)`` shows before summarising.
SHOWN_PER_CHECK = 10


@dataclass(frozen=True)
class Problem:
    """One problem in an import file.

    Parameters
    ----------
    severity : {'error', 'warning'}
        An error stops the import; a warning is reported and the import goes on.
    check : str
        A short stable name for the kind of problem (``'unknown-column'``,
        ``'missing-file'``...), to filter or count by.
    message : str
        What is wrong and how to fix it, in a sentence a user can act on.
    file : str
        The import file.
    row : int or None
        CSV row (the header is row 1); for a problem repeated on several rows, the first.
    path : str or None
        JSON path of the offending value (``$.projects["P"].experiments["E"]``).
    column : str or None
        CSV column or JSON field.
    value : str or None
        The offending value, as found.
    expected : str or None
        What would have been accepted.
    count : int
        How many rows share this exact problem (same check, column and value).
    """

    severity: Severity
    check: str
    message: str
    file: str = ""
    row: int | None = None
    path: str | None = None
    column: str | None = None
    value: str | None = None
    expected: str | None = None
    count: int = 1

    def where(self) -> str:
        """Return where the problem is, as a user would look for it."""
        parts = [self.file] if self.file else []
        if self.row is not None:
            more = f" (and {self.count - 1:,} more rows)" if self.count > 1 else ""
            parts.append(f"row {self.row}{more}")
        if self.path:
            parts.append(self.path)
        if self.column and not self.path:
            parts.append(f"column {self.column!r}")
        return ", ".join(parts)

    def __str__(self) -> str:
        return f"{self.severity}: {self.where()}: {self.message}"


COLUMNS = list(Problem.__dataclass_fields__)


@dataclass
class Report:
    """Every problem found in one import, plus what the import holds or would change.

    Attributes
    ----------
    file : str
        The import file.
    problems : list of Problem
    counts : dict
        What the file holds: projects, experiments, scans, frames, decisions.
    change_counts : list of tuple or None
        For imports and dry runs: per level, how many would be (or were) added,
        removed, changed, kept unchanged and left as conflicts, in the order of
        :data:`CHANGE_COLUMNS`. :attr:`changes` shows them as a DataFrame.
    """

    file: str = ""
    problems: list[Problem] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    change_counts: list[tuple[str, int, int, int, int, int]] | None = None

    @property
    def changes(self) -> pd.DataFrame | None:
        """:attr:`change_counts` as a DataFrame (columns :data:`CHANGE_COLUMNS`), or None.

        Built when asked (an import itself needs no pandas)."""
        if self.change_counts is None:
            return None
        import pandas as pd

        return pd.DataFrame(self.change_counts, columns=list(CHANGE_COLUMNS))

    def add(self, severity: Severity, check: str, message: str, **where: object) -> None:
        """Record a problem (``where`` takes the fields of :class:`Problem`)."""
        where.setdefault("file", self.file)
        self.problems.append(Problem(severity, check, message, **where))  # type: ignore[arg-type]

    def extend(self, problems: Iterable[Problem]) -> None:
        """Record several problems."""
        self.problems.extend(problems)

    @property
    def errors(self) -> list[Problem]:
        """The problems that stop an import."""
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        """The problems that are reported while the import goes on."""
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        """True when there is no error."""
        return not self.errors

    def to_frame(self) -> pd.DataFrame:
        """Return the problems as a DataFrame, one row per problem."""
        import pandas as pd

        frame = pd.DataFrame([asdict(p) for p in self.problems], columns=COLUMNS)
        return frame.astype({"row": "Int64", "count": "int64"})

    def summary(self) -> str:
        """One line: how many errors and warnings, and what the file holds."""
        n_err = sum(p.count for p in self.errors)
        n_warn = sum(p.count for p in self.warnings)
        held = ", ".join(f"{n:,} {what}" for what, n in self.counts.items())
        return f"{self.file}: {n_err:,} error(s), {n_warn:,} warning(s)" + (
            f"; {held}" if held else ""
        )

    def __str__(self) -> str:
        lines = [self.summary()]
        for severity in ("error", "warning"):
            shown: dict[str, int] = {}
            for problem in self.problems:
                if problem.severity != severity:
                    continue
                shown[problem.check] = shown.get(problem.check, 0) + 1
                if shown[problem.check] <= SHOWN_PER_CHECK:
                    lines.append("  " + str(problem))
            for check, n in shown.items():
                if n > SHOWN_PER_CHECK:
                    lines.append(
                        f"  ... and {n - SHOWN_PER_CHECK:,} more {severity}s of kind {check!r}"
                    )
        if self.changes is not None and len(self.changes):
            lines.append("  changes:")
            lines.extend("    " + line for line in self.changes.to_string(index=False).splitlines())
        return "\n".join(lines)

    def _repr_html_(self) -> str:  # pragma: no cover - notebook display
        from html import escape

        return f"<pre>{escape(str(self))}</pre>"
