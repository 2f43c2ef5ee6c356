"""A PostgreSQL connection that the store's functions use as they use DuckDB's.

The functions of :mod:`miqa_nb.store` run SQL both engines accept (``ON CONFLICT``,
``FILTER (WHERE ...)``, window functions in subqueries) on whichever connection they
are given. :class:`PgConnection` wraps a psycopg connection in the part of DuckDB's
Python API they call: ``execute(sql, params)`` with ``?`` (or ``$name``) placeholders,
then ``fetchall()``, ``fetchone()`` or ``df()``. ``df()`` gives the DataFrame DuckDB
would give for the same rows (the rows pass through Arrow and DuckDB's conversion), so
both backends hand out the same column types.

:func:`hold` takes a PostgreSQL advisory lock until the transaction ends: what DuckDB's
one writer at a time gives for free (a decision's id is the largest so far plus one; a
claim checked, then taken) PostgreSQL gives by a lock on that key alone, so reviewers
of different experiments do not wait for each other. On DuckDB it does nothing.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv

if TYPE_CHECKING:
    import pandas as pd
    import psycopg

__all__ = [
    "DECISION_LOG",
    "PG_SCHEMES",
    "PgConnection",
    "arrow_type",
    "hold",
    "is_postgres_url",
    "to_csv_bytes",
]

#: The lock that gives decisions their ids one at a time on PostgreSQL (and that an
#: import holds while it writes).
DECISION_LOG = "miqa_nb decisions"
#: The URL schemes of a catalog on PostgreSQL.
PG_SCHEMES = ("postgresql", "postgres")


def is_postgres_url(location: object) -> bool:
    """Whether ``location`` names a catalog on PostgreSQL (``postgresql://...``).

    >>> is_postgres_url("postgresql://db.lab/miqa"), is_postgres_url("miqa.duckdb")
    (True, False)
    """
    if not isinstance(location, str) or "://" not in location:
        return False
    return location.split("://", 1)[0].lower() in PG_SCHEMES


#: PostgreSQL type oids -> Arrow types, for the columns the catalog's queries return.
_OIDS: dict[int, pa.DataType] = {
    16: pa.bool_(),
    20: pa.int64(),
    21: pa.int16(),
    23: pa.int32(),
    700: pa.float32(),
    701: pa.float64(),
    1700: pa.float64(),
    25: pa.string(),
    1043: pa.string(),
    19: pa.string(),
    114: pa.string(),
    3802: pa.string(),
    1114: pa.timestamp("us"),
}

#: ``?`` and ``$name`` outside quotes; quoted text and ``%`` are kept as they are.
_TOKENS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|\?|\$[A-Za-z_]\w*|%")

_converter: duckdb.DuckDBPyConnection | None = None


def _duck() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB instance that turns Arrow tables into DataFrames."""
    global _converter
    if _converter is None:
        _converter = duckdb.connect()
    return _converter


def translate(sql: str) -> str:
    """DuckDB's placeholders in psycopg's style.

    >>> translate("SELECT '?', x FROM t WHERE a = ? AND b LIKE 'a%' AND c = $user")
    "SELECT '?', x FROM t WHERE a = %s AND b LIKE 'a%%' AND c = %(user)s"
    """

    def one(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "?":
            return "%s"
        if token == "%":
            return "%%"
        if token.startswith("$"):
            return f"%({token[1:]})s"
        return token.replace("%", "%%")

    return _TOKENS.sub(one, sql)


def _plain(value: Any) -> Any:
    """A parameter psycopg adapts: NumPy scalars as Python's."""
    if isinstance(value, np.generic):
        return value.item()
    return value


class _Result:
    """The rows of one statement, read as DuckDB's result would be."""

    def __init__(self, description: Sequence[Any] | None, rows: list[tuple[Any, ...]]) -> None:
        self.description = description
        self.rows = rows

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self.rows

    def fetchone(self) -> tuple[Any, ...] | None:
        return self.rows[0] if self.rows else None

    def arrow(self) -> pa.Table:
        """The rows as an Arrow table typed by the columns' PostgreSQL types."""
        if self.description is None:
            return pa.table({})
        columns = {}
        for i, column in enumerate(self.description):
            kind = _OIDS.get(column.type_code)
            values = [row[i] for row in self.rows]
            if column.type_code == 1700:
                values = [None if v is None else float(v) for v in values]
            columns[column.name] = pa.array(values, type=kind)
        return pa.table(columns)

    def df(self) -> pd.DataFrame:
        """The rows as the DataFrame DuckDB gives for the same columns."""
        table = self.arrow()
        # A cursor of its own: threads of one process (a review's writer) convert at once.
        with _duck().cursor() as cursor:
            frame: pd.DataFrame = cursor.from_arrow(table).df()
        return frame


class PgConnection:
    """A psycopg connection with the calls of DuckDB's that the store makes."""

    dialect = "postgres"

    def __init__(self, raw: psycopg.Connection[Any]) -> None:
        self.raw = raw

    def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> _Result:
        query: Any = sql
        if params is None:
            args: Any = None
        elif isinstance(params, Mapping):
            query, args = translate(sql), {k: _plain(v) for k, v in params.items()}
        else:
            query, args = translate(sql), [_plain(v) for v in params]
        with self.raw.cursor() as cursor:
            cursor.execute(query, args)
            rows = cursor.fetchall() if cursor.description is not None else []
            return _Result(cursor.description, rows)

    def advisory_lock(self, key: str) -> None:
        """Hold ``key`` until the transaction ends (others holding it are waited for)."""
        self.execute("SELECT pg_advisory_xact_lock(hashtextextended(?, 0))", [key])

    def copy_in(self, table: str, rows: pa.Table) -> None:
        """Append ``rows`` (columns named as the table's) to ``table`` by ``COPY``."""
        if rows.num_rows == 0:
            return
        columns = ", ".join(f'"{c}"' for c in rows.column_names)
        with (
            self.raw.cursor() as cursor,
            cursor.copy(f"COPY {table} ({columns}) FROM STDIN (FORMAT csv)") as copy,
        ):
            for chunk in to_csv_bytes(rows):
                copy.write(chunk)

    def copy_out(self, select: str, params: Sequence[Any], schema: pa.Schema) -> pa.Table:
        """The rows of ``select`` (PostgreSQL ``?`` placeholders) as Arrow, by ``COPY``."""
        buffer = io.BytesIO()
        query = translate(f"COPY ({select}) TO STDOUT (FORMAT csv)")
        with (
            self.raw.cursor() as cursor,
            cursor.copy(query, [_plain(v) for v in params]) as copy,
        ):
            for data in copy:
                buffer.write(data)
        if buffer.tell() == 0:
            return schema.empty_table()
        buffer.seek(0)
        return pa_csv.read_csv(
            buffer,
            read_options=pa_csv.ReadOptions(column_names=schema.names, block_size=1 << 24),
            parse_options=pa_csv.ParseOptions(newlines_in_values=True),
            convert_options=pa_csv.ConvertOptions(
                column_types=schema,
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
                true_values=["t"],
                false_values=["f"],
            ),
        )


def to_csv_bytes(rows: pa.Table) -> Iterator[bytes]:
    """``rows`` as CSV for PostgreSQL's ``COPY``: NULL unquoted and empty, text quoted
    (so an empty text stays empty), times in ISO form."""
    rows = pa.table(
        {
            name: column.cast(column.type.value_type)
            if pa.types.is_dictionary(column.type)
            else column
            for name, column in zip(rows.column_names, rows.columns, strict=True)
        }
    )
    for batch in rows.to_batches(max_chunksize=65_536):
        sink = io.BytesIO()
        pa_csv.write_csv(
            batch,
            sink,
            write_options=pa_csv.WriteOptions(include_header=False, quoting_style="needed"),
        )
        yield sink.getvalue()


def arrow_type(sql_type: str) -> pa.DataType:
    """The Arrow type of a catalog column of DuckDB type ``sql_type``."""
    kind = sql_type.upper()
    if kind == "BIGINT":
        return pa.int64()
    if kind == "INTEGER":
        return pa.int32()
    if kind == "DOUBLE":
        return pa.float64()
    if kind == "BOOLEAN":
        return pa.bool_()
    if kind.startswith("TIMESTAMP"):
        return pa.timestamp("us")
    return pa.string()


def hold(con: Any, key: str) -> None:
    """Hold ``key`` until the transaction ends: an advisory lock on PostgreSQL; nothing
    on DuckDB (its catalog file is written by one process at a time)."""
    lock = getattr(con, "advisory_lock", None)
    if lock is not None:
        lock(key)
