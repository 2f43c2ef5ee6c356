"""The catalog's storage: one DuckDB file, shared by many processes.

DuckDB lets one process at a time hold a database file (see ``stack-facts.md``), so
no process keeps the file open between operations: :meth:`Store.connect` opens it,
the caller does one unit of work, and the file is closed again. When another process
holds it, opening is retried with jittered exponential back-off for up to
``retry_seconds``; only then does :class:`~miqa_nb.core.errors.CatalogBusy` reach the caller.

:meth:`Store.transaction` runs a block in one transaction: every change to the catalog
is made in one. Opening a file creates or checks its schema (:mod:`miqa_nb.store.schema`).

:meth:`Store.peek` is the fast way to read a little (a token's row): the file is
attached read-only, under a shared lock, to one in-memory DuckDB instance the process
keeps, and detached again; about 1 ms instead of the 12-15 ms that starting a DuckDB
instance costs (DuckDB registers its functions in each new instance).

A catalog this user may only read (a read-only mount, a file or folder without write
permission) is opened read-only: its lock file is taken shared (or not at all when
there is none and none can be made), DuckDB attaches the file ``READ_ONLY``, reads
work, and :meth:`Store.transaction` refuses every change with a
:class:`~miqa_nb.core.errors.WriteError` that says so. A disk that fills up while
the catalog (or an export through it) is written is reported as a ``WriteError``
naming the file, after the transaction was rolled back: nothing was changed.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar, cast
from urllib.parse import urlsplit

import duckdb
import pyarrow as pa

from miqa_nb.core.duck import Connection, append_arrow
from miqa_nb.core.errors import CatalogBusy, MiqaError, WriteError
from miqa_nb.store._pg import is_postgres_url
from miqa_nb.store.schema import open_schema

__all__ = [
    "CATALOG_ENV",
    "MAX_BACKOFF",
    "ROW_GROUP_SIZE",
    "Store",
    "catalog_file",
    "catalog_location",
]

CATALOG_ENV = "MIQA_NB_CATALOG"
#: Longest wait between two attempts at a held lock: short, so that no waiter starves
#: while others, retrying sooner, keep winning (a unit of work takes 20-60 ms).
MAX_BACKOFF = 0.005
#: Rows per DuckDB row group (DuckDB's default is 122,880). DuckDB writes a transaction's
#: full row groups to the file as they fill; what is left is written at commit, on one
#: thread. With smaller groups an import's 100,000 scans are written while inserted
#: (0.13 s less per million frames, ``benchmarks/bench_import.py``).
ROW_GROUP_SIZE = 16_384

#: ``scheme://`` at the start of a location: a URL, not a file.
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def catalog_location(location: str | os.PathLike[str]) -> str | Path:
    """The catalog ``location`` names: a ``postgresql://`` URL as it is, else a file.

    >>> catalog_location("postgresql://ana:secret@db.lab/miqa")
    'postgresql://ana:secret@db.lab/miqa'
    >>> catalog_location("studies/miqa.duckdb").name
    'miqa.duckdb'
    """
    if is_postgres_url(location):
        return str(location)
    return catalog_file(location)


def catalog_file(location: str | os.PathLike[str]) -> Path:
    """The catalog file ``location`` names.

    A URL (``mysql://user:pw@host/db``) is refused with :class:`MiqaError`, naming it
    without its user and password: a catalog is a DuckDB file or a PostgreSQL database
    (:func:`catalog_location`), and a URL taken as a path would make a folder
    ``mysql:`` with a new catalog in it.

    >>> catalog_file("studies/miqa.duckdb").name
    'miqa.duckdb'
    >>> catalog_file("mysql://ana:secret@db.lab/miqa")
    Traceback (most recent call last):
    ...
    miqa_nb.core.errors.MiqaError: the catalog 'mysql://db.lab/miqa' is a URL miqa_nb does not read, ...
    """
    text = os.fspath(location)
    if isinstance(text, str) and _URL.match(text):
        parts = urlsplit(text)
        shown = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"
        raise MiqaError(
            f"the catalog {shown!r} is a URL miqa_nb does not read, and would be taken for a "
            "file name: give a DuckDB file's path (for example miqa.duckdb) or a PostgreSQL "
            "database's URL (postgresql://user@host:port/database), with --catalog or "
            "MIQA_NB_CATALOG"
        )
    return Path(text)


T = TypeVar("T")

#: The process's in-memory DuckDB instance for :meth:`Store.peek`, with the process id
#: that made it (a forked child makes its own), and the lock that makes peeks in one
#: process one at a time (DuckDB attaches a file once per instance).
_peek_host: tuple[int, duckdb.DuckDBPyConnection] | None = None
_peek_lock = threading.Lock()


def _host() -> duckdb.DuckDBPyConnection:
    global _peek_host
    if _peek_host is None or _peek_host[0] != os.getpid():
        _peek_host = (os.getpid(), duckdb.connect())
    return _peek_host[1]


class _Busy(Exception):
    """Raised inside a retry loop while someone else holds the catalog."""


class Store:
    """A DuckDB catalog file, opened briefly for each unit of work.

    (:class:`miqa_nb.store.postgres.PgStore` is the same for a PostgreSQL database.)

    Parameters
    ----------
    path : path-like
        The catalog file; created (with its schema) when missing.
    retry_seconds : float
        How long to keep retrying while other processes hold the file.
    """

    dialect = "duckdb"

    def __init__(self, path: str | os.PathLike[str], *, retry_seconds: float = 60.0) -> None:
        self.path = catalog_file(path).expanduser().resolve()
        #: What opens this catalog again (``Catalog(store.location)``).
        self.location = str(self.path)
        self.retry_seconds = retry_seconds
        self._local = threading.local()
        if not self.path.exists():
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise WriteError(
                    f"cannot create the catalog {self.path}: {exc.strerror or exc}; "
                    "give a path in a folder you can write to"
                ) from exc
        with self.connect() as con:
            open_schema(con, self.path, read_only=self.read_only)

    def read_only_reason(self) -> str | None:
        """Why this user may only read the catalog (None: it may write).

        The file must be writable, and so must its folder, where DuckDB writes its log
        (``<catalog>.wal``) and the lock file is kept. A catalog not made yet is
        writable here: making it reports its own error.
        """
        if not self.path.exists():
            return None
        try:
            on_read_only_mount = bool(os.statvfs(self.path).f_flag & os.ST_RDONLY)
        except OSError:
            on_read_only_mount = False
        if on_read_only_mount:
            return "it is on a read-only file system"
        if not os.access(self.path, os.W_OK):
            return "the file is not writable by this user"
        if not os.access(self.path.parent, os.W_OK):
            return (
                f"its folder {self.path.parent} is not writable by this user, and DuckDB "
                "writes its log there"
            )
        return None

    @property
    def read_only(self) -> bool:
        """Whether this user may only read the catalog (see :meth:`read_only_reason`)."""
        return self.read_only_reason() is not None

    def require_writable(self) -> None:
        """Raise :class:`WriteError` when this user may only read the catalog."""
        reason = self.read_only_reason()
        if reason is not None:
            raise WriteError(
                f"the catalog {self.path} is read-only for this user ({reason}); ask its "
                "owner for write access, or work on a copy; nothing was changed"
            )

    @property
    def lock_path(self) -> Path:
        """The lock file beside the catalog (see :meth:`_acquire`)."""
        return self.path.with_name(self.path.name + ".lock")

    def _retry(self, attempt: Callable[[], T], busy: str) -> T:
        """Call ``attempt`` until it stops raising :class:`_Busy`, within the bound."""
        deadline = time.monotonic() + self.retry_seconds
        delay = 0.001
        while True:
            try:
                return attempt()
            except _Busy as exc:
                if time.monotonic() > deadline:
                    raise CatalogBusy(
                        f"the catalog {self.path} stayed locked by {busy} for "
                        f"{self.retry_seconds:g} s; try again, or look for a stuck process"
                    ) from exc.__cause__
                time.sleep(delay * random.uniform(0.5, 1.5))
                delay = min(delay * 2, MAX_BACKOFF)

    def _acquire(self, shared: bool = False) -> int | None:
        """Take the catalog's lock file (an exclusive ``flock``), waiting within the bound.

        DuckDB locks its file itself, but under contention between processes that open
        and close it many times a second we measured lost writes (399 of 400 decisions
        kept, duckdb 2.0). The lock beside the catalog, held from before DuckDB opens the
        file until after it has closed it, makes access strictly one at a time.

        A held lock is waited for with a blocking ``flock`` in a helper thread, so the
        kernel hands it over as soon as it is free (polling starved some waiters for
        seconds under load); after ``retry_seconds`` the caller gets ``CatalogBusy`` and
        the helper releases the lock whenever it gets it.

        ``shared`` (a read-only catalog) takes a shared lock, on a lock file opened for
        reading when it cannot be written (``flock`` does not need write access); when
        there is no lock file and none can be made, no lock is taken (None): nobody can
        write such a catalog, and DuckDB's own lock keeps out a writer that could.
        """
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o664)
        except OSError as exc:
            if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise WriteError(
                    f"cannot open the lock file {self.lock_path}: {exc.strerror or exc}"
                ) from exc
            try:
                fd = os.open(self.lock_path, os.O_RDONLY)
            except FileNotFoundError:
                if shared:
                    return None
                raise WriteError(
                    f"cannot make the lock file {self.lock_path}: {exc.strerror or exc}; "
                    "the catalog's folder must be writable to change the catalog"
                ) from exc
        mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            pass
        got = threading.Event()
        guard = threading.Lock()
        abandoned = False

        def wait() -> None:
            fcntl.flock(fd, mode)
            with guard:
                if abandoned:
                    fcntl.flock(fd, fcntl.LOCK_UN)
                    os.close(fd)
                else:
                    got.set()

        threading.Thread(target=wait, name="miqa-catalog-lock", daemon=True).start()
        if got.wait(self.retry_seconds):
            return fd
        with guard:
            if got.is_set():
                return fd
            abandoned = True
        raise CatalogBusy(
            f"the catalog {self.path} stayed locked by other processes for "
            f"{self.retry_seconds:g} s; try again, or look for a stuck process"
        )

    def _open(self, read_only: bool = False) -> duckdb.DuckDBPyConnection:
        """Open the DuckDB file; another program (a DuckDB shell?) may hold it."""
        options = "READ_ONLY" if read_only else f"ROW_GROUP_SIZE {ROW_GROUP_SIZE}"

        def attempt() -> duckdb.DuckDBPyConnection:
            con = duckdb.connect()
            try:
                quoted = str(self.path).replace("'", "''")
                con.execute(f"ATTACH '{quoted}' AS catalog ({options})")
                con.execute("USE catalog")
                return con
            except (duckdb.IOException, duckdb.ConnectionException) as exc:
                con.close()
                # DuckDB raises the same exception types for a file another process
                # holds as for any other failure to open it: only the text tells.
                text = str(exc).lower()
                if "lock" in text or "configuration" in text:
                    raise _Busy from exc
                raise MiqaError(f"cannot open the catalog {self.path}: {exc}") from exc

        return self._retry(attempt, "another program (a DuckDB shell?)")

    @contextlib.contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Open the catalog for one unit of work, and close it afterwards.

        Nested calls in one thread share the open connection. A catalog this user may
        only read is opened read-only. A full disk met while writing (the catalog, or
        an export) raises :class:`WriteError` naming the file.
        """
        con = getattr(self._local, "con", None)
        if con is not None:
            yield con
            return
        read_only = self.read_only
        lock = self._acquire(shared=read_only)
        try:
            con = self._open(read_only)
            self._local.con = con
            try:
                yield con
            except duckdb.Error as exc:
                full = _disk_full(exc)
                if full is None:
                    raise
                raise WriteError(
                    f"no space left on device at {full or self.path} (catalog {self.path}); "
                    "free space on that disk and try again; nothing was changed"
                ) from exc
            finally:
                self._local.con = None
                con.close()
        finally:
            if lock is not None:
                fcntl.flock(lock, fcntl.LOCK_UN)
                os.close(lock)

    @contextlib.contextmanager
    def peek(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Open the catalog read-only for a short read, fast (about 1 ms).

        The file is attached ``READ_ONLY`` to the process's in-memory DuckDB instance
        under a shared lock (other readers go on, writers wait), and detached after the
        block; peeks in one process take turns. Nothing can be written through it. Inside
        :meth:`connect` it is that connection; :meth:`connect` inside it is this one.
        """
        con = getattr(self._local, "con", None)
        if con is not None:
            yield con
            return
        with _peek_lock:
            lock = self._acquire(shared=True)
            try:
                cursor = _host().cursor()
                quoted = str(self.path).replace("'", "''")

                def attempt() -> None:
                    try:
                        cursor.execute(f"ATTACH '{quoted}' AS peeked (READ_ONLY)")
                    except (duckdb.IOException, duckdb.ConnectionException) as exc:
                        if "lock" in str(exc).lower():
                            raise _Busy from exc
                        raise MiqaError(f"cannot open the catalog {self.path}: {exc}") from exc

                self._retry(attempt, "another program (a DuckDB shell?)")
                try:
                    cursor.execute("USE peeked")
                    self._local.con = cursor
                    yield cursor
                finally:
                    self._local.con = None
                    cursor.execute("USE memory")
                    cursor.execute("DETACH peeked")
                    cursor.close()
            finally:
                if lock is not None:
                    fcntl.flock(lock, fcntl.LOCK_UN)
                    os.close(lock)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Open the catalog and run the block in one transaction (all or nothing).

        Raises
        ------
        WriteError
            This user may only read the catalog (nothing is begun), or the disk is full
            (the transaction was rolled back).
        """
        with self.connect() as con:
            self.require_writable()
            con.execute("BEGIN TRANSACTION")
            try:
                yield con
            except BaseException:
                # A failed COMMIT, or a write that failed, may have ended it already.
                with contextlib.suppress(duckdb.TransactionException):
                    con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    @contextlib.contextmanager
    def snapshot(
        self,
        con: Connection,
        projects: Sequence[str] | None = None,
        *,
        writing: bool = False,
        tables: Sequence[str] = (),
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        """Where DuckDB SQL over the catalog's rows runs: here the catalog itself (a
        catalog on PostgreSQL copies ``projects``' rows into DuckDB: see
        :meth:`miqa_nb.store.postgres.PgStore.snapshot`)."""
        yield cast(duckdb.DuckDBPyConnection, con)

    def decision_base(self, con: Connection) -> int | None:
        """None: an import's new decisions follow the largest id it sees (the catalog's)."""
        return None

    def write_back(
        self,
        con: Connection,
        work: duckdb.DuckDBPyConnection,
        projects: Sequence[str],
        *,
        appended: bool = False,
    ) -> None:
        """Nothing: :meth:`snapshot` is the catalog itself."""

    @contextlib.contextmanager
    def reading(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The catalog for several reads that must agree (the file lock keeps writers out)."""
        with self.connect() as con:
            yield con

    def read_table(self, con: Connection, table: str) -> pa.Table:
        """A table's rows, as Arrow (its columns in the schema's order)."""
        return cast(duckdb.DuckDBPyConnection, con).sql(f"SELECT * FROM {table}").to_arrow_table()

    def append_table(self, con: Connection, table: str, rows: pa.Table) -> None:
        """Append ``rows`` (a table's columns, in order) to ``table``."""
        append_arrow(cast(duckdb.DuckDBPyConnection, con), table, rows)

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"


#: How DuckDB words a full disk: the OS's ENOSPC message, with the file it was writing.
_NO_SPACE = os.strerror(errno.ENOSPC)
_FILE_IN_MESSAGE = re.compile(r'file \\?"([^"\\]+)\\?"')  # quoted, or in JSON: \"...\"


def _disk_full(exc: BaseException) -> str | None:
    """For an error caused by a full disk: the file being written ('' when DuckDB does
    not name it); None for any other error."""
    text = str(exc)
    if _NO_SPACE not in text:
        return None
    found = _FILE_IN_MESSAGE.search(text)
    return found.group(1) if found else ""
