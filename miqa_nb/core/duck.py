"""Small helpers for DuckDB's Python API, shared by the layers that run SQL."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import duckdb
import numpy as np
import pyarrow as pa

from miqa_nb.core import arrow

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "Connection",
    "Result",
    "append_arrow",
    "one",
    "typed_table",
]


class Result(Protocol):
    """What a statement gives back, on DuckDB and on PostgreSQL."""

    def fetchall(self) -> list[tuple[Any, ...]]: ...

    def fetchone(self) -> tuple[Any, ...] | None: ...

    def df(self) -> pd.DataFrame: ...


class Connection(Protocol):
    """A catalog connection: DuckDB's, or :class:`miqa_nb.store._pg.PgConnection`
    (``?`` placeholders in SQL both engines accept)."""

    def execute(self, query: str, parameters: Any = None, /) -> Result: ...


def one(con: Connection, sql: str, params: Sequence[Any] | None = None) -> tuple[Any, ...] | None:
    """The first row of a query, or None (fetching every row: DuckDB 2 refuses other work
    on a connection while a result is unfinished)."""
    rows = con.execute(sql, params).fetchall()
    return rows[0] if rows else None


def append_arrow(con: duckdb.DuckDBPyConnection, table: str, rows: pa.Table) -> None:
    """Append ``rows`` (``table``'s columns, in order) to ``table``."""
    if not rows.num_rows:
        return
    con.register("appended_rows", rows)
    try:
        con.execute(f"INSERT INTO {table} SELECT * FROM appended_rows").fetchall()
    finally:
        con.unregister("appended_rows")


def _arrow_array(values: Sequence[Any], sql_type: str) -> pa.Array:
    """``values`` as an Arrow array for a column of ``sql_type``: text, whole numbers,
    numbers and naive datetimes (None: null) are converted from their buffers
    (:mod:`miqa_nb.core.arrow`: no pandas); anything else as pyarrow infers it (the
    SQL cast decides then)."""
    kind = sql_type.upper()
    present = [v for v in values if v is not None]
    missing = np.array([v is None for v in values], dtype=bool)
    if kind == "VARCHAR" and all(isinstance(v, str) for v in present):
        return arrow.texts(values)
    try:
        if kind in ("INTEGER", "BIGINT") and all(type(v) is int for v in present):
            filled = np.array([0 if v is None else v for v in values], dtype=np.int64)
            return arrow.from_numpy(filled, mask=missing)
        if kind == "DOUBLE" and all(type(v) in (int, float) for v in present):
            filled = np.array([0.0 if v is None else v for v in values], dtype=np.float64)
            return arrow.from_numpy(filled, mask=missing)
        if kind == "TIMESTAMP" and all(
            isinstance(v, datetime) and v.tzinfo is None for v in present
        ):
            stamps = np.array([v or datetime(1970, 1, 1) for v in values], "datetime64[us]")
            return arrow.from_numpy(stamps, mask=missing)
    except OverflowError:  # an integer beyond 64 bits: pyarrow says so below
        pass
    return pa.array(values)


def typed_table(
    con: duckdb.DuckDBPyConnection,
    name: str,
    columns: Mapping[str, Sequence[Any]],
    types: Mapping[str, str],
    *,
    temp: bool = False,
) -> None:
    """Create (or replace) table ``name`` from Python lists with explicit column types.

    DuckDB guesses a column's type from its values; an empty or all-NULL list would
    come out as the wrong type, so every column is cast to the type given. The lists
    go through Arrow, not pandas.
    """
    frame = pa.table({c: _arrow_array(columns[c], types.get(c, "")) for c in columns})
    con.register(f"{name}_df", frame)
    select = ", ".join(f'CAST("{c}" AS {t}) AS "{c}"' for c, t in types.items())
    kind = "TEMP TABLE" if temp else "TABLE"
    con.execute(f"CREATE OR REPLACE {kind} {name} AS SELECT {select} FROM {name}_df")
    con.unregister(f"{name}_df")
