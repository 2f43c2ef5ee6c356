"""The rows of an import file as *runs* and *frames*, in Arrow, and tests on raw bytes.

This module owns the split of a file's rows (:func:`split_rows`) and the vectorised
tests that clear the common case without a copy (:func:`trimmed`, :func:`plain_numbers`,
:func:`plain_names`). It knows nothing of DuckDB or of the report.

A *run* is a stretch of consecutive rows with the same names and scan-level values
(:data:`RUN_COLUMNS`): a scan's frames, in any file MIQA or a script writes. Checking
one row per run, weighted by its length ``_n``, gives exactly the result of checking
every row, at a tenth of the cost.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from miqa_nb.core import arrow
from miqa_nb.exchange.formats import DECISION_COLUMNS

__all__ = [
    "FRAME_COLUMNS",
    "MAX_TEXT",
    "NAME_COLUMNS",
    "RUN_COLUMNS",
    "SCAN_LEVEL",
    "SPACES",
    "bytes_pass",
    "plain_names",
    "plain_numbers",
    "split_rows",
    "trimmed",
]

NAME_COLUMNS = ("project_name", "experiment_name", "scan_name")
SCAN_LEVEL = ("scan_type", "subject_id", "session_id", "scan_link", *DECISION_COLUMNS)
#: The columns a run of rows shares (everything but the frame's number and file).
RUN_COLUMNS = (*NAME_COLUMNS, "experiment_notes", *SCAN_LEVEL)
FRAME_COLUMNS = ("frame_number", "file_location")
#: The longest name, in characters.
MAX_TEXT = 255


def split_rows(batches: Iterable[pa.RecordBatch]) -> tuple[pa.Table | None, pa.Table | None]:
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
                starts_run[1:] |= arrow.to_numpy(differs)
        starts = np.flatnonzero(starts_run)
        if latest is not None and not starts_run[0]:  # the latest run goes on
            lengths[latest[0]][latest[1]] += starts[0] if len(starts) else n
        first = arrow.from_numpy(starts.astype(np.int64))
        runs.append(
            pa.RecordBatch.from_arrays(
                [
                    arrow.from_numpy(np.arange(count, count + len(starts), dtype=np.int64)),
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
                    arrow.from_numpy(np.cumsum(starts_run, dtype=np.int64) + (count - 1)),
                    *(batch.column(c) for c in (*FRAME_COLUMNS, "_row", "_path")),
                ],
                names=["_run", *FRAME_COLUMNS, "_row", "_path"],
            )
        )
        count += len(starts)
        last_row = [batch.column(c)[n - 1].as_py() for c in RUN_COLUMNS]
    if not runs:
        return None, None
    table = pa.Table.from_batches(runs).append_column(
        "_n", arrow.from_numpy(np.concatenate(lengths))
    )
    return table, pa.Table.from_batches(frames)


def trimmed(table: pa.Table, columns: Iterable[str]) -> pa.Table:
    """``table`` with the values of ``columns`` trimmed of surrounding spaces (as DuckDB's
    ``trim``; a column is copied only when one of its values has such a space)."""
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


def bytes_pass(column: pa.ChunkedArray, longest: int | None, flags: np.ndarray | None) -> bool:
    """True when no value of ``column`` is longer than ``longest`` bytes or holds a byte
    that ``flags`` (a table of 256 booleans) flags: a test of the common case on the raw
    bytes, without a copy (a value that fails it is looked at closely, in SQL). None
    skips that test."""
    return _bytes_pass(column, longest, None if flags is None else flags.__getitem__)


def _bytes_pass(
    column: pa.ChunkedArray,
    longest: int | None,
    bad: Callable[[np.ndarray], np.ndarray] | None,
) -> bool:
    """:func:`bytes_pass`, with ``bad`` a function of the bytes that flags some."""
    for offsets, data in _raw(column):
        if data is None:
            return False
        if longest is not None and len(offsets) > 1 and np.diff(offsets).max() > longest:
            return False
        if (
            bad is not None
            and offsets[-1] > offsets[0]
            and bad(data[offsets[0] : offsets[-1]]).any()
        ):
            return False
    return True


def plain_numbers(column: pa.ChunkedArray) -> bool:
    """Every value is empty or 1-9 ASCII digits."""
    return _bytes_pass(column, 9, lambda b: (b < ord("0")) | (b > ord("9")))


def plain_names(column: pa.ChunkedArray) -> bool:
    """No value holds a control character or is longer than :data:`MAX_TEXT` bytes."""
    return _bytes_pass(column, MAX_TEXT, lambda b: (b < 0x20) | (b == 0x7F))
