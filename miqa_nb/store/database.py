"""The catalog's storage: one DuckDB file, shared by many processes.

DuckDB lets one process at a time hold a database file (see ``stack-facts.md``), so
no process keeps the file open between operations: :meth:`Store.connect` opens it,
the caller does one unit of work, and the file is closed again. When another process
holds it, opening is retried with jittered exponential back-off for up to
``retry_seconds``; only then does :class:`~miqa_nb.core.errors.CatalogBusy` reach the caller.

:meth:`Store.transaction` runs a block in one transaction: every change to the catalog
is made in one. Opening a file creates or checks its schema (:mod:`miqa_nb.store.schema`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import duckdb

from miqa_nb.core.errors import CatalogBusy, MiqaError
from miqa_nb.store.schema import open_schema

__all__ = ["CATALOG_ENV", "MAX_BACKOFF", "ROW_GROUP_SIZE", "Store"]

CATALOG_ENV = "MIQA_NB_CATALOG"
#: Longest wait between two attempts at a held lock: short, so that no waiter starves
#: while others, retrying sooner, keep winning (a unit of work takes 20-60 ms).
MAX_BACKOFF = 0.005
#: Rows per DuckDB row group (DuckDB's default is 122,880). DuckDB writes a transaction's
#: full row groups to the file as they fill; what is left is written at commit, on one
#: thread. With smaller groups an import's 100,000 scans are written while inserted
#: (0.13 s less per million frames, ``benchmarks/bench_import.py``).
ROW_GROUP_SIZE = 16_384


T = TypeVar("T")


class _Busy(Exception):
    """Raised inside a retry loop while someone else holds the catalog."""


class Store:
    """A DuckDB catalog file, opened briefly for each unit of work.

    Parameters
    ----------
    path : path-like
        The catalog file; created (with its schema) when missing.
    retry_seconds : float
        How long to keep retrying while other processes hold the file.
    """

    def __init__(self, path: str | os.PathLike[str], *, retry_seconds: float = 60.0) -> None:
        self.path = Path(path).expanduser().resolve()
        self.retry_seconds = retry_seconds
        self._local = threading.local()
        if not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.connect() as con:
            open_schema(con, self.path)

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

    def _acquire(self) -> int:
        """Take the catalog's lock file (an exclusive ``flock``), waiting within the bound.

        DuckDB locks its file itself, but under contention between processes that open
        and close it many times a second we measured lost writes (399 of 400 decisions
        kept, duckdb 2.0). The lock beside the catalog, held from before DuckDB opens the
        file until after it has closed it, makes access strictly one at a time.

        A held lock is waited for with a blocking ``flock`` in a helper thread, so the
        kernel hands it over as soon as it is free (polling starved some waiters for
        seconds under load); after ``retry_seconds`` the caller gets ``CatalogBusy`` and
        the helper releases the lock whenever it gets it.
        """
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o664)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            pass
        got = threading.Event()
        guard = threading.Lock()
        abandoned = False

        def wait() -> None:
            fcntl.flock(fd, fcntl.LOCK_EX)
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

    def _open(self) -> duckdb.DuckDBPyConnection:
        """Open the DuckDB file; another program (a DuckDB shell?) may hold it."""

        def attempt() -> duckdb.DuckDBPyConnection:
            con = duckdb.connect()
            try:
                quoted = str(self.path).replace("'", "''")
                con.execute(f"ATTACH '{quoted}' AS catalog (ROW_GROUP_SIZE {ROW_GROUP_SIZE})")
                con.execute("USE catalog")
                return con
            except (duckdb.IOException, duckdb.ConnectionException) as exc:
                con.close()
                text = str(exc).lower()
                if "lock" in text or "configuration" in text:
                    raise _Busy from exc
                raise MiqaError(f"cannot open the catalog {self.path}: {exc}") from exc

        return self._retry(attempt, "another program (a DuckDB shell?)")

    @contextlib.contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Open the catalog for one unit of work, and close it afterwards.

        Nested calls in one thread share the open connection.
        """
        con = getattr(self._local, "con", None)
        if con is not None:
            yield con
            return
        lock = self._acquire()
        try:
            con = self._open()
            self._local.con = con
            try:
                yield con
            finally:
                self._local.con = None
                con.close()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
            os.close(lock)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Open the catalog and run the block in one transaction (all or nothing)."""
        with self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"
