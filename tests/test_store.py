"""Several processes share one catalog file: no lost writes, locks retried, never held."""

import multiprocessing as mp
import re
import subprocess
import sys
import time

import duckdb
import pytest
from support import frame_row

from miqa_nb import Catalog, CatalogBusy, MiqaError


def _review(path: str, user: str, scans: list[str], barrier) -> list[int]:
    cat = Catalog(path, retry_seconds=60)
    barrier.wait()
    return [cat.record_decision("P", "E1", scan, "U", by=user) for scan in scans]


def test_processes_record_decisions_at_once(catalog, write_csv):
    catalog.import_file(write_csv([frame_row(scan=f"S{n}") for n in range(10)]), by="admin")
    users = [f"r{n}" for n in range(4)]
    for user in users:
        catalog.add_user(user, by="admin")
        catalog.set_role("P", user, "tier2", by="admin")
    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager:
        barrier = manager.Barrier(len(users))
        with ctx.Pool(len(users)) as pool:
            results = pool.starmap(
                _review,
                [(catalog.location, u, [f"S{n}" for n in range(10)], barrier) for u in users],
            )
    ids = sorted(i for r in results for i in r)
    assert ids == list(range(1, 41))
    decisions = catalog.decisions()
    assert len(decisions) == 40 and decisions.groupby("creator").size().tolist() == [10] * 4


def test_catalog_is_not_held_between_operations(catalog):
    catalog.users()
    con = duckdb.connect(str(catalog.path))  # would fail if this process still held it
    con.close()
    code = f"import duckdb; duckdb.connect({str(catalog.path)!r}).close()"
    subprocess.run([sys.executable, "-c", code], check=True)


def _hold(path: str, seconds: float) -> subprocess.Popen:
    code = (
        f"import duckdb, time, sys; c = duckdb.connect({path!r}); print('held', flush=True); "
        f"time.sleep({seconds}); c.close()"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_lock_is_retried_transparently(catalog):
    holder = _hold(str(catalog.path), 0.8)
    start = time.monotonic()
    assert catalog.users()["name"].tolist() == ["admin"]
    assert time.monotonic() - start > 0.3  # it waited for the other process
    holder.wait()


def test_a_lock_past_the_bound_is_a_clear_error(catalog):
    impatient = Catalog(catalog.path, retry_seconds=60)
    impatient.store.retry_seconds = 0.3
    holder = _hold(str(catalog.path), 3)
    with pytest.raises(CatalogBusy, match="stayed locked by another program"):
        impatient.users()
    holder.kill()
    holder.wait()


def test_catalog_busy_while_another_miqa_process_works(catalog):
    import fcntl
    import os

    fd = os.open(catalog.store.lock_path, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)  # as another miqa_nb process would, mid-operation
    try:
        catalog.store.retry_seconds = 0.2
        with pytest.raises(CatalogBusy, match="stayed locked by other processes"):
            catalog.users()
    finally:
        os.close(fd)
    assert catalog.users()["name"].tolist() == ["admin"]


def test_a_catalog_of_another_schema_version_is_refused(catalog):
    con = duckdb.connect(str(catalog.path))
    con.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    con.close()
    with pytest.raises(MiqaError, match=r"has catalog schema version 99.*upgrade miqa_nb"):
        Catalog(catalog.path)


def test_a_file_that_is_not_a_catalog_is_a_clear_error(tmp_path):
    path = tmp_path / "notes.duckdb"
    path.write_text("not a database")
    with pytest.raises(MiqaError, match=re.escape(f"cannot open the catalog {path}")):
        Catalog(path)
    assert path.read_text() == "not a database"
