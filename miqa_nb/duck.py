"""Small helpers for DuckDB's Python API, shared by the layers that run SQL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import duckdb


def one(
    con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] | None = None
) -> tuple | None:
    """The first row of a query, or None (fetching every row: DuckDB 2 refuses other work
    on a connection while a result is unfinished)."""
    rows = con.execute(sql, params).fetchall()
    return rows[0] if rows else None
