"""Small helpers for DuckDB's Python API, shared by the layers that run SQL."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import duckdb

__all__ = [
    "one",
    "typed_table",
]


def one(
    con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] | None = None
) -> tuple[Any, ...] | None:
    """The first row of a query, or None (fetching every row: DuckDB 2 refuses other work
    on a connection while a result is unfinished)."""
    rows = con.execute(sql, params).fetchall()
    return rows[0] if rows else None


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
    come out as the wrong type, so every column is cast to the type given.
    """
    import pandas as pd

    frame = pd.DataFrame(dict(columns), dtype=object)
    con.register(f"{name}_df", frame)
    select = ", ".join(f'CAST("{c}" AS {t}) AS "{c}"' for c, t in types.items())
    kind = "TEMP TABLE" if temp else "TABLE"
    con.execute(f"CREATE OR REPLACE {kind} {name} AS SELECT {select} FROM {name}_df")
    con.unregister(f"{name}_df")
