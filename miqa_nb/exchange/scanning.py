"""Scans of an import file's raw bytes, vectorised: what a parser would choke on.

This module owns two questions asked of bytes, before or instead of a parser:

- :func:`json_too_deep`: where a JSON text nests deeper than a bound. Python's
  ``json`` module recurses once per level, so a file nested 100,000 deep would end in a
  ``RecursionError``; asked first, the reader refuses it with the place and the bound.
- :func:`long_csv_values`: the CSV values (and rows) longer than a bound. pyarrow's
  reader needs a row inside one block; a longer row stops it with a message about
  blocks, which this scan turns into the row, the column and the size.

Both read the file in blocks of :data:`SCAN_BYTES` with NumPy, carrying what a block
leaves open (inside a string or not, the depth, a run of backslashes) into the next:
memory stays bounded by the block, whatever the file holds. Neither validates the
syntax: a parser still reads the file (JSON) or has already refused it (CSV).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["SCAN_BYTES", "Deep", "LongValue", "json_too_deep", "long_csv_values"]

#: The size of the blocks the scans read.
SCAN_BYTES = 16 << 20

_QUOTE, _BACKSLASH, _LF, _CR = ord('"'), ord("\\"), ord("\n"), ord("\r")
_OPEN, _CLOSE = ord("{"), ord("}")


def _blocks(data: bytes | memoryview, size: int) -> Iterator[tuple[int, np.ndarray]]:
    view = memoryview(data)
    for start in range(0, len(view), size):
        yield start, np.frombuffer(view[start : start + size], dtype=np.uint8)


# -------------------------------------------------------------------------- JSON


@dataclass(frozen=True)
class Deep:
    """Where a JSON text first nests deeper than the bound.

    Attributes
    ----------
    offset : int
        The byte of the ``[`` or ``{`` that goes one level too deep.
    line, column : int
        The same place as a text editor counts it (from 1; the column in bytes).
    path : str or None
        Its JSON path (``$["projects"]["P"][0]...``), or None when the text before it
        is not JSON.
    """

    offset: int
    line: int
    column: int
    path: str | None


def json_too_deep(data: bytes, limit: int, *, block: int = SCAN_BYTES) -> Deep | None:
    """Where the JSON text ``data`` (UTF-8) nests deeper than ``limit`` levels of objects
    and lists; None if it does not.

    Brackets inside strings do not count (a quote after an odd run of backslashes does
    not end a string). Text that is not JSON may be counted wrongly; the parser reads
    it after this and refuses it no later than where the counts part.

    >>> json_too_deep(b'{"a": [1, {"b": "[[[["}]}', 2)
    Deep(offset=10, line=1, column=11, path='$["a"][1]')
    >>> json_too_deep(b'{"a": [1, {"b": "[[[["}]}', 3) is None
    True
    """
    in_string = False
    depth = 0
    backslashes = 0  # the run of backslashes that ends the previous block
    openers: dict[int, int] = {}  # level -> offset of the last opener at that level
    for start, d in _blocks(data, block):
        quotes = np.flatnonzero(d == _QUOTE)
        quotes = quotes[~_escaped(d, quotes, backslashes)]
        folded = d | 0x20  # [ and ] fold onto { and }
        brackets = np.flatnonzero((folded == _OPEN) | (folded == _CLOSE))
        outside = (np.searchsorted(quotes, brackets) + in_string) % 2 == 0
        brackets = brackets[outside]
        step = np.where(folded[brackets] == _OPEN, 1, -1)
        depths = depth + np.cumsum(step)
        over = np.flatnonzero(depths > limit)
        end = over[0] if len(over) else len(brackets)
        opening = np.flatnonzero(step[:end] > 0)
        levels, last = np.unique(depths[opening][::-1], return_index=True)
        for level, position in zip(levels.tolist(), last.tolist(), strict=True):
            openers[level] = start + int(brackets[opening[len(opening) - 1 - position]])
        if len(over):
            return _deep(
                data, start + int(brackets[end]), [openers[k] for k in range(1, limit + 1)]
            )
        in_string = (in_string + len(quotes)) % 2 == 1
        depth = int(depths[-1]) if len(depths) else depth
        backslashes = _trailing_backslashes(d, backslashes)
    return None


def _escaped(d: np.ndarray, quotes: np.ndarray, carried: int) -> np.ndarray:
    """Per quote of block ``d``: whether an odd run of backslashes comes just before it
    (``carried``: the run that ends the previous block)."""
    escaped = np.zeros(len(quotes), dtype=bool)
    candidates = np.flatnonzero(
        np.where(quotes > 0, d[np.maximum(quotes - 1, 0)] == _BACKSLASH, carried > 0)
    )
    if not len(candidates):
        return escaped
    before = quotes[candidates] - 1  # the backslash before each (-1: in the block before)
    # Runs are short (``\"``, ``\\\"``): look back a few bytes; only long runs (a
    # hostile file) take the pass over every backslash of the block.
    runs = np.zeros(len(candidates), dtype=np.int64)
    open_ = before >= 0
    for step in range(8):
        at = before - step
        more = open_ & (at >= 0)
        more[more] = d[at[more]] == _BACKSLASH
        runs += more
        reached_start = open_ & (at < 0)
        runs[reached_start] += carried
        open_ = more
        if not open_.any():
            break
    else:
        slashes = np.flatnonzero(d == _BACKSLASH)
        run_starts = slashes[np.insert(np.diff(slashes) > 1, 0, True)]
        inside = before >= 0
        first = run_starts[np.searchsorted(run_starts, before[inside], side="right") - 1]
        runs[inside] = before[inside] - first + 1 + np.where(first == 0, carried, 0)
    runs[before < 0] = carried
    escaped[candidates] = runs % 2 == 1
    return escaped


def _trailing_backslashes(d: np.ndarray, carried: int) -> int:
    """The run of backslashes that ends block ``d`` (0 when it ends otherwise)."""
    size = 64
    while size < len(d):
        others = np.flatnonzero(d[-size:] != _BACKSLASH)
        if len(others):
            return size - 1 - int(others[-1])
        size *= 64
    others = np.flatnonzero(d != _BACKSLASH)
    if not len(others):
        return carried + len(d)
    return len(d) - 1 - int(others[-1])


class _Object(list):
    """A JSON object read as its list of (key, value) pairs (duplicate keys kept)."""


def _deep(data: bytes, offset: int, openers: list[int]) -> Deep:
    """The :class:`Deep` at ``offset``; ``openers`` are the offsets of the brackets
    that enclose it, outermost first."""
    line = data.count(b"\n", 0, offset) + 1
    column = offset - (data.rfind(b"\n", 0, offset) + 1) + 1
    closers = "".join("}" if data[o] == ord("{") else "]" for o in reversed(openers))
    try:
        # The text before the bracket, with null in its place and the open levels
        # closed, is JSON whose last value at each level is on the way to it.
        head = data[:offset].decode("utf-8") + "null" + closers
        node: Any = json.loads(head, object_pairs_hook=_Object)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return Deep(offset, line, column, None)
    path = "$"
    for _ in openers:
        if isinstance(node, _Object) and node:
            key, node = node[-1]
            path += f"[{json.dumps(key, ensure_ascii=False)}]"
        elif isinstance(node, list) and node:
            path += f"[{len(node) - 1}]"
            node = node[-1]
    return Deep(offset, line, column, path)


# --------------------------------------------------------------------------- CSV


@dataclass(frozen=True)
class LongValue:
    """A CSV value (``column`` its position in the row, from 0) or a whole row
    (``column`` None) longer than the bound: ``size`` bytes, in record ``row`` (the
    header is row 1; empty lines are not counted, as the reader skips them)."""

    row: int
    column: int | None
    size: int


def long_csv_values(
    path: str | os.PathLike[str],
    longest_value: int,
    longest_row: int,
    *,
    listed: int = 20,
    block: int = SCAN_BYTES,
) -> list[LongValue]:
    """The first ``listed`` values longer than ``longest_value`` bytes, and rows longer
    than ``longest_row`` bytes (only those without a value too long), in a CSV file
    quoted with ``"`` (doubled inside a value).

    A line ends in ``\\n``, ``\\r\\n`` or ``\\r``; separators inside quotes do not count.
    The sizes include a value's quotes.
    """
    found: list[LongValue] = []
    in_quotes = False
    row, column = 1, 0
    field_start = row_start = 0
    row_long = False  # the current row has a value too long already
    with open(path, "rb") as handle:
        start = 0
        while chunk := handle.read(block):
            while chunk.endswith(b"\r"):  # keep \r\n in one block
                more = handle.read(1)
                if not more:
                    break
                chunk += more
            d = np.frombuffer(chunk, dtype=np.uint8)
            quotes = np.flatnonzero(d == _QUOTE)
            seps = np.flatnonzero((d == ord(",")) | (d == _LF) | (d == _CR))
            seps = seps[(np.searchsorted(quotes, seps) + in_quotes) % 2 == 0]
            following = d[np.minimum(seps + 1, len(d) - 1)]
            seps = seps[~((d[seps] == _CR) & (seps + 1 < len(d)) & (following == _LF))]
            preceding = d[np.maximum(seps - 1, 0)]
            crlf = (d[seps] == _LF) & (seps > 0) & (preceding == _CR)  # \r\n ends once
            ends = d[seps] != ord(",")
            at = seps + start
            stop = at - crlf  # where the value ends (before the \r of \r\n)
            starts = np.concatenate(([field_start], at[:-1] + 1))
            # Per separator: the row and column of the value it ends.
            row_starts = np.concatenate(([row_start], at[ends] + 1))
            index = np.cumsum(ends) - ends  # the line ends before each separator
            nonempty = stop[ends] > row_starts[:-1]
            rows = row + np.concatenate(([0], np.cumsum(nonempty)))[index]
            last_end = np.maximum.accumulate(np.where(ends, np.arange(len(seps)), -1))
            last_end = np.concatenate(([-1], last_end[:-1]))
            columns = np.where(last_end < 0, column + np.arange(len(seps)), 0)
            columns = np.where(last_end >= 0, np.arange(len(seps)) - last_end - 1, columns)
            sizes = stop - starts
            for i in np.flatnonzero(sizes > longest_value)[: listed - len(found)].tolist():
                found.append(LongValue(int(rows[i]), int(columns[i]), int(sizes[i])))
            long_rows = stop[ends] - row_starts[:-1]
            had_long = np.zeros(len(long_rows), dtype=bool)
            if len(long_rows):
                value_rows = rows[sizes > longest_value]
                had_long = np.isin(rows[ends], value_rows)
                had_long[0] |= row_long
            for i in np.flatnonzero((long_rows > longest_row) & ~had_long)[: listed - len(found)]:
                found.append(LongValue(int(rows[ends][i]), None, int(long_rows[i])))
            if len(found) >= listed:
                return found
            # Carry what the block leaves open.
            in_quotes = (in_quotes + len(quotes)) % 2 == 1
            if len(seps):
                field_start = int(at[-1]) + 1
                if ends.any():
                    row_start = int(row_starts[-1])
                    row = int(rows[ends][-1]) + int(nonempty[-1])
                    row_long = bool((sizes[np.flatnonzero(ends)[-1] + 1 :] > longest_value).any())
                    column = len(seps) - 1 - int(np.flatnonzero(ends)[-1])
                else:
                    row_long = row_long or bool((sizes > longest_value).any())
                    column += len(seps)
            start += len(chunk)
    end = start  # the last value and row, when the file does not end in a line break
    if end - field_start > longest_value and len(found) < listed:
        found.append(LongValue(row, column, end - field_start))
    elif end - row_start > longest_row and not row_long and len(found) < listed:
        found.append(LongValue(row, None, end - row_start))
    return found
