"""The catalog on PostgreSQL, chosen by a URL: ``postgresql://user:password@host:port/db``.

:class:`PgStore` is :class:`~miqa_nb.store.database.Store`'s counterpart: the same
tables (:mod:`miqa_nb.store.schema`, with PostgreSQL's names for two types and indexes
for the joins), the same methods (``connect``, ``peek``, ``transaction``), so
:class:`~miqa_nb.catalog.Catalog` and the functions of :mod:`miqa_nb.store` run
unchanged on it. What differs:

- **No file lock.** Each thread keeps one connection open (a new one costs a server
  process); PostgreSQL's transactions keep work apart, and :func:`~miqa_nb.store._pg.hold`
  takes advisory locks on what must be one at a time: the decision log's next id, a
  claim being checked and taken, a project being imported. A lock waited for longer
  than ``retry_seconds`` is :class:`~miqa_nb.core.errors.CatalogBusy`, as on DuckDB.
- **Bulk work in DuckDB.** An import's comparison with the catalog, its backup and the
  exports are DuckDB SQL (:mod:`miqa_nb.exchange`). :meth:`PgStore.snapshot` copies the
  rows of the projects concerned out of PostgreSQL (``COPY``, through Arrow) into an
  in-memory DuckDB catalog of the same schema, where that SQL runs as it does on a
  file; an import then writes those projects' rows back (:meth:`PgStore.write_back`,
  ``COPY`` again) in the transaction that holds their locks.
- **Local files.** What miqa_nb keeps beside a catalog file (backups, converted scans,
  the prearchive, thumbnails) goes under ``$MIQA_NB_LOCAL_DIR`` (default
  ``~/.local/share/miqa_nb/<host>-<port>-<database>``), named as if the catalog were
  the file ``catalog`` there.

The URL is never shown with its password (:func:`shown_url`).
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import duckdb
import pyarrow as pa

from miqa_nb.core.duck import Connection, append_arrow
from miqa_nb.core.errors import CatalogBusy, MiqaError, WriteError
from miqa_nb.store._pg import (
    DECISION_LOG,
    PG_SCHEMES,
    PgConnection,
    arrow_type,
    hold,
    is_postgres_url,
)
from miqa_nb.store.schema import READABLE_VERSIONS, SCHEMA, SCHEMA_VERSION, UPGRADES

__all__ = ["LOCAL_DIR_ENV", "PG_SCHEMES", "PgStore", "is_postgres_url", "shown_url"]

LOCAL_DIR_ENV = "MIQA_NB_LOCAL_DIR"
#: How reads that must agree begin (a copy for DuckDB, a catalog copied elsewhere).
_READ = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"

#: The catalog's tables with a ``project`` column: a snapshot copies the projects' rows.
PROJECT_TABLES = ("experiments", "scans", "frames", "decisions", "quarantine")
#: The tables an ``append`` import only adds to (quarantine rows it may replace).
APPENDED_TABLES = ("experiments", "scans", "frames", "decisions")
#: What a snapshot copies in full (small tables) besides those.
WHOLE_TABLES = ("meta", "users", "projects", "roles", "scan_types")
#: Indexes for the joins the queries make (DuckDB's zone maps do without).
_INDEXES = """
CREATE INDEX IF NOT EXISTS experiments_key ON experiments (project, name);
CREATE INDEX IF NOT EXISTS scans_key ON scans (project, experiment, name);
CREATE INDEX IF NOT EXISTS frames_key ON frames (project, experiment, scan, frame_number);
CREATE INDEX IF NOT EXISTS decisions_scan ON decisions (project, experiment, scan, id);
CREATE UNIQUE INDEX IF NOT EXISTS decisions_id ON decisions (id);
CREATE INDEX IF NOT EXISTS claims_expiry ON claims (expires_utc);
"""


def shown_url(url: str) -> str:
    """``url`` without its user's password.

    >>> shown_url("postgresql://ana:secret@db.lab:5433/miqa")
    'postgresql://ana@db.lab:5433/miqa'
    """
    parts = urlsplit(url)
    user, _, _host = parts.netloc.rpartition("@")
    name = user.partition(":")[0]
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{name}@{host}" if name else host
    return f"{parts.scheme}://{netloc}{parts.path}"


def _in_postgres(sql: str) -> str:
    """The schema's SQL in PostgreSQL's words (DuckDB's ``DOUBLE``)."""
    return re.sub(r"\bDOUBLE\b", "DOUBLE PRECISION", sql)


def _local_dir(url: str) -> Path:
    chosen = os.environ.get(LOCAL_DIR_ENV)
    if chosen:
        return Path(chosen).expanduser().resolve()
    parts = urlsplit(url)
    slug = "-".join(
        p for p in (parts.hostname or "local", str(parts.port or 5432), parts.path.strip("/")) if p
    )
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", unquote(slug))
    return Path.home() / ".local" / "share" / "miqa_nb" / slug


class PgStore:
    """A catalog in a PostgreSQL database.

    Parameters
    ----------
    url : str
        ``postgresql://user:password@host:port/database`` (anything libpq takes: a
        password may come from ``~/.pgpass`` or ``PGPASSWORD`` instead).
    retry_seconds : float
        How long to wait for a lock another process holds before
        :class:`~miqa_nb.core.errors.CatalogBusy`.
    """

    dialect = "postgres"
    read_only = False

    def __init__(self, url: str, *, retry_seconds: float = 60.0) -> None:
        try:
            import psycopg  # noqa: F401
        except ImportError as exc:  # pragma: no cover - psycopg is a dependency
            raise MiqaError(
                "a catalog on PostgreSQL needs psycopg: pip install 'psycopg[binary]'"
            ) from exc
        self.location = url
        self.shown = shown_url(url)
        self.retry_seconds = retry_seconds
        self.local_dir = _local_dir(url)
        #: What miqa_nb names as if the catalog were a file (backups go beside it).
        self.path = self.local_dir / "catalog"
        self._local = threading.local()
        with self.connect() as con:
            self._open_schema(con)

    def __repr__(self) -> str:
        return f"PgStore({self.shown!r})"

    # ------------------------------------------------------------ connections

    def _raw(self) -> Any:
        """This thread's connection (made when missing, broken or from another process)."""
        import psycopg

        held = getattr(self._local, "raw", None)
        if held is not None and held[0] == os.getpid():
            raw = held[1]
            if not raw.closed and not raw.broken:
                return raw
        try:
            raw = psycopg.connect(
                self.location,
                autocommit=True,
                connect_timeout=max(1, int(min(self.retry_seconds, 30))),
                options=f"-c lock_timeout={int(self.retry_seconds * 1000)} -c timezone=UTC",
                application_name="miqa_nb",
            )
        except psycopg.Error as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            reason = reason.replace(self.location, self.shown)
            raise MiqaError(
                f"cannot connect to the catalog {self.shown}: {reason}; check that the server "
                "runs, the URL (host, port, database, user) and the password (in the URL, "
                "~/.pgpass or PGPASSWORD)"
            ) from None
        self._local.raw = (os.getpid(), raw)
        return raw

    @contextlib.contextmanager
    def connect(self) -> Iterator[PgConnection]:
        """The catalog for one unit of work (nested calls in a thread share it)."""
        import psycopg

        con = getattr(self._local, "con", None)
        if con is not None:
            yield con
            return
        con = PgConnection(self._raw())
        self._local.con = con
        try:
            yield con
        except psycopg.errors.LockNotAvailable as exc:
            raise CatalogBusy(
                f"the catalog {self.shown} stayed locked by other work for "
                f"{self.retry_seconds:g} s; try again, or look for a stuck process"
            ) from exc
        except psycopg.errors.DiskFull as exc:
            raise WriteError(
                f"the PostgreSQL server of the catalog {self.shown} is out of disk space; "
                "nothing was changed"
            ) from exc
        except psycopg.errors.InsufficientPrivilege as exc:
            raise WriteError(
                f"the catalog {self.shown} refused this user: {str(exc).splitlines()[0]}; "
                "ask its owner for the privileges miqa_nb needs; nothing was changed"
            ) from exc
        finally:
            self._local.con = None

    peek = connect

    @contextlib.contextmanager
    def transaction(self) -> Iterator[PgConnection]:
        """Run the block in one transaction (all or nothing); nested blocks join it."""
        with self._outermost("BEGIN", commit_on_error=False) as con:
            yield con

    @contextlib.contextmanager
    def _outermost(self, begin: str, *, commit_on_error: bool) -> Iterator[PgConnection]:
        """Begin a transaction with ``begin`` unless one is open (then join it); at the
        end commit it, or roll it back after an error unless ``commit_on_error`` (a
        read-only transaction has nothing to undo)."""
        with self.connect() as con:
            if getattr(self._local, "depth", 0):
                yield con
                return
            con.execute(begin)
            self._local.depth = 1
            try:
                yield con
            except BaseException:
                self._local.depth = 0
                with contextlib.suppress(Exception):
                    con.execute("COMMIT" if commit_on_error else "ROLLBACK")
                raise
            self._local.depth = 0
            con.execute("COMMIT")

    def read_only_reason(self) -> str | None:
        """None: PostgreSQL's privileges decide, and a refusal is a ``WriteError``."""
        return None

    def require_writable(self) -> None:
        """Nothing to check before: see :meth:`read_only_reason`."""

    def close(self) -> None:
        """Close this thread's connection."""
        held = getattr(self._local, "raw", None)
        if held is not None:
            held[1].close()
            self._local.raw = None

    # ------------------------------------------------------------ schema

    def _open_schema(self, con: PgConnection) -> None:
        """Create the tables of a new catalog, or check and upgrade its version.

        A catalog of this version is only read (DDL, even ``IF NOT EXISTS``, would
        lock the tables against the reviewers writing); otherwise the work is done
        under an advisory lock, so two processes opening a new database make it once."""
        if self._version(con) == SCHEMA_VERSION:
            return
        with self.transaction():
            hold(con, "miqa_nb schema")
            version = self._version(con)
            found = version is not None
            if version is not None and version not in READABLE_VERSIONS:
                raise MiqaError(
                    f"{self.shown} has catalog schema version {version}; this miqa_nb "
                    f"reads versions up to {SCHEMA_VERSION}: upgrade miqa_nb"
                )
            while version in UPGRADES:
                version, sql = UPGRADES[version]
                con.execute(_in_postgres(sql))
                con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [version])
            con.execute(_in_postgres(SCHEMA) + _INDEXES)
            if not found:
                con.execute(
                    "INSERT INTO meta VALUES ('schema_version', ?) ON CONFLICT DO NOTHING",
                    [SCHEMA_VERSION],
                )

    def _version(self, con: PgConnection) -> str | None:
        """The catalog's schema version, or None where there is no catalog yet."""
        found = con.execute(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() "
            "AND table_name = 'meta'"
        ).fetchone()
        if found is None:
            return None
        row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return None if row is None else str(row[0])

    # ------------------------------------------------------------ DuckDB copies

    @contextlib.contextmanager
    def snapshot(
        self,
        con: Connection,
        projects: Sequence[str] | None = None,
        *,
        writing: bool = False,
        tables: Sequence[str] = WHOLE_TABLES + PROJECT_TABLES,
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        """The catalog's rows of ``projects`` (None: all) in an in-memory DuckDB catalog
        (its ``tables``; the others are there, empty).

        With ``writing``, a transaction is begun first and the decision log's lock and
        each project's are held until it ends (when the block ends: committed, or
        rolled back on an error): nothing changes those projects between this copy and
        :meth:`write_back`. Otherwise the copy is read in one repeatable-read
        transaction, so its tables agree with each other.
        """
        con = _pg_connection(con)
        with contextlib.ExitStack() as stack:
            if writing:
                stack.enter_context(self.transaction())
                hold(con, DECISION_LOG)
                for project in sorted(set(projects or ())):
                    hold(con, f"miqa_nb project\x1f{project}")
            else:
                stack.enter_context(self._outermost(_READ, commit_on_error=True))
            work = duckdb.connect()
            stack.callback(work.close)
            work.execute(SCHEMA)
            for table in tables:
                where, params = "", []
                if table in PROJECT_TABLES and projects is not None:
                    where, params = "WHERE project = ANY(?)", [list(projects)]
                append_arrow(work, table, self.read_table(con, table, where, params))
            # How many rows each table had as copied: an append's new rows come after.
            counts = " UNION ALL ".join(
                f"SELECT '{table}' AS name, count(*) AS n FROM {table}" for table in PROJECT_TABLES
            )
            work.execute(f"CREATE TEMP TABLE copied AS {counts}").fetchall()
            yield work

    @contextlib.contextmanager
    def reading(self) -> Iterator[PgConnection]:
        """The catalog for several reads that must agree (one repeatable-read snapshot)."""
        with self._outermost(_READ, commit_on_error=True) as con:
            yield con

    def read_table(
        self, con: Connection, table: str, where: str = "", params: Sequence[Any] = ()
    ) -> pa.Table:
        """A table's rows (``where``, with ``?`` placeholders), as Arrow typed as DuckDB's
        catalog types them."""
        schema = table_schema(table)
        names = ", ".join(f'"{name}"' for name in schema.names)
        return _pg_connection(con).copy_out(
            f"SELECT {names} FROM {table} {where}", list(params), schema
        )

    def append_table(self, con: Connection, table: str, rows: pa.Table) -> None:
        """Append ``rows`` (a table's columns) to ``table`` by ``COPY``."""
        _pg_connection(con).copy_in(table, rows)

    def decision_base(self, con: Connection) -> int:
        """The largest decision id in the whole catalog (0 when none): an import's new
        decisions follow it (the decision log's lock is held: see :meth:`snapshot`)."""
        row = con.execute("SELECT coalesce(max(id), 0) FROM decisions").fetchone()
        return int(row[0]) if row else 0

    def write_back(
        self,
        con: Connection,
        work: duckdb.DuckDBPyConnection,
        projects: Sequence[str],
        *,
        appended: bool = False,
    ) -> None:
        """Give ``projects`` in PostgreSQL the rows they have in the snapshot ``work``
        (inside the transaction :meth:`snapshot` began with ``writing``).

        With ``appended`` (an import that only added rows: :data:`APPENDED_TABLES`), the
        rows added to the snapshot are inserted and the others are left alone; otherwise
        the projects' rows are replaced."""
        con = _pg_connection(con)
        chosen = sorted(set(projects))
        for name, creator, import_path, export_path, orientation, created in work.execute(
            "SELECT name, creator, import_path, export_path, anatomy_orientation, created_utc "
            "FROM projects WHERE list_contains(?, name)",
            [chosen],
        ).fetchall():
            con.execute(
                "INSERT INTO projects VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING",
                [name, creator, import_path, export_path, orientation, created],
            )
        for table in PROJECT_TABLES:
            if appended and table in APPENDED_TABLES:
                # DuckDB numbers a table's rows in the order they came: the copied ones
                # first (and an append deletes none of them).
                select = f"SELECT * FROM {table} WHERE rowid >= $n"
                params: dict[str, Any] = {"n": _copied(work, table)}
            else:
                con.execute(f"DELETE FROM {table} WHERE project = ANY(?)", [chosen])
                select = f"SELECT * FROM {table} WHERE list_contains($chosen, project)"
                params = {"chosen": chosen}
            con.copy_in(table, work.sql(select, params=params).to_arrow_table())


def _copied(work: duckdb.DuckDBPyConnection, table: str) -> int:
    """How many rows of ``table`` :meth:`PgStore.snapshot` copied into ``work``."""
    rows = work.execute("SELECT n FROM copied WHERE name = ?", [table]).fetchall()
    return int(rows[0][0]) if rows else 0


def _pg_connection(con: Connection) -> PgConnection:
    """``con``, which a :class:`PgStore` made (its methods are given back their own)."""
    if not isinstance(con, PgConnection):
        raise TypeError(f"a PostgreSQL catalog was given another connection: {con!r}")
    return con


_schemas: dict[str, pa.Schema] = {}


def table_schema(table: str) -> pa.Schema:
    """A catalog table's columns as Arrow types (from DuckDB's schema: both the same)."""
    if not _schemas:
        with duckdb.connect() as con:
            con.execute(SCHEMA)
            rows = con.execute(
                "SELECT table_name, column_name, data_type FROM information_schema.columns "
                "ORDER BY table_name, ordinal_position"
            ).fetchall()
        for name in {r[0] for r in rows}:
            _schemas[name] = pa.schema([(c, arrow_type(t)) for n, c, t in rows if n == name])
    return _schemas[table]
