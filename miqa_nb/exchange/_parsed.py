"""What every reader of an import file hands on: MIQA's columns and keys, and
:class:`ParsedFile` (the structural problems found and the rows as Arrow batches).

Shared by the CSV reader (:mod:`miqa_nb.exchange.formats`) and the JSON reader
(:mod:`miqa_nb.exchange._json`); :mod:`~miqa_nb.exchange.formats` re-exports every
public name, which is where the rest of the package reads them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa

from miqa_nb.core.report import Problem

if TYPE_CHECKING:  # pandas loads on first use: an import never needs it
    import pandas as pd

__all__ = [
    "BATCH_COLUMNS",
    "BATCH_SCHEMA",
    "DECISIONS_TABLE",
    "DECISION_COLUMNS",
    "DECISION_KEYS",
    "MIQA_COLUMNS",
    "REQUIRED_COLUMNS",
    "SCAN_KEYS",
    "UNTRIMMED",
    "ParsedFile",
]

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

#: Columns kept as written (not trimmed of surrounding spaces).
UNTRIMMED: frozenset[str] = frozenset({"experiment_notes", "last_decision_note"})

#: The UTF-8 byte order mark some programs write at the start of a file.
BOM = b"\xef\xbb\xbf"


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
        import pandas as pd

        batches = list(self.batches())
        if not self.ok:
            return pd.DataFrame(columns=[*MIQA_COLUMNS, "_path"])
        con = duckdb.connect()
        try:
            con.register("rows", pa.Table.from_batches(batches, schema=BATCH_SCHEMA))
            return con.execute(f"SELECT {_select(MIQA_COLUMNS)}, _path FROM rows").df()
        finally:
            con.close()


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
