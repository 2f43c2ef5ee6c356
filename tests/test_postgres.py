"""The catalog on PostgreSQL: a real server (Debian's), the same API as on a DuckDB file.

The shared suites run on both backends (``BOTH_BACKENDS`` in conftest); here is what
only PostgreSQL has: URLs, copies between the backends, many processes writing at once
without a file lock, locks waited for, imports rolled back half-way through writing.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import threading
from pathlib import Path

import pandas as pd
import psycopg
import pytest
from pandas.testing import assert_frame_equal
from support import frame_row, write_sql

from miqa_nb import Catalog, CatalogBusy, MiqaError
from miqa_nb.cli import main
from miqa_nb.store import _pg

PASSWORD = "correct horse battery"


@pytest.fixture
def pg(pg_server, tmp_path, monkeypatch):
    """A new, empty PostgreSQL database's URL (the catalog's local files in tmp_path)."""
    monkeypatch.setenv("MIQA_NB_LOCAL_DIR", str(tmp_path / "local"))
    return pg_server.new_database()


def _lab(catalog: Catalog, write_csv) -> None:
    """A catalog with some of everything: roles, decisions, notes, passwords, tokens,
    settings, a quarantined experiment, a claim."""
    catalog.add_user("rev", by="admin")
    rows = [
        frame_row(scan="S1", frame=0, last_decision="U", last_decision_creator="rev"),
        frame_row(scan="S1", frame=1, last_decision="U", last_decision_creator="rev"),
        frame_row(scan="S2", scan_type="T2", experiment_notes='a "quoted", note'),
        frame_row(experiment="E2", scan="S3", last_decision="Q?", last_decision_note="ghost?"),
    ]
    catalog.import_file(write_csv(rows), by="admin")
    catalog.set_role("P", "rev", "tier2", by="admin")
    catalog.record_decision(
        "P", "E1", "S2", "UN", by="rev", note="motion\nline two, ünïcode", location=(1, 2.5, 3)
    )
    catalog.record_decision("P", "E1", "S1", "U", by="admin", note="")
    catalog.set_password("rev", PASSWORD, by="admin")
    catalog.create_token("rev", by="admin")
    catalog.set_user_setting("review_keys", "miqa", by="rev")
    catalog.claim("P", "E1", by="rev")
    catalog.quarantine_experiment("P", "E2", by="admin")


def _frames(catalog: Catalog) -> dict[str, pd.DataFrame]:
    return {
        "projects": catalog.projects(),
        "scans": catalog.scans(),
        "frames": catalog.frames(),
        "decisions": catalog.decisions(),
        "users": catalog.users(),
        "roles": catalog.roles(),
        "quarantined": catalog.quarantined(),
    }


def test_the_same_work_gives_the_same_dataframes_on_both_backends(pg, tmp_path, write_csv):
    duck = Catalog(tmp_path / "c.duckdb", clock=lambda: pd.Timestamp("2026-03-01", tz="UTC"))
    post = Catalog(pg, clock=lambda: pd.Timestamp("2026-03-01", tz="UTC"))
    for cat in (duck, post):
        cat.add_user("admin", superuser=True)
        _lab(cat, write_csv)
    on_duck, on_pg = _frames(duck), _frames(post)
    for name, frame in on_duck.items():
        if "created_utc" in frame:  # when each row was made
            frame, other = (
                frame.drop(columns="created_utc"),
                on_pg[name].drop(columns="created_utc"),
            )
        else:
            other = on_pg[name]
        assert_frame_equal(frame, other, check_exact=True, obj=name)
    assert len(on_pg["decisions"]) == 4 and on_pg["decisions"]["id"].tolist() == [1, 2, 3, 4]
    assert post.check_password("rev", PASSWORD) and not post.check_password("rev", "wrong one")


def test_catalog_copy_both_ways_keeps_every_export_byte(pg, tmp_path, write_csv, capsys):
    source = tmp_path / "lab.duckdb"
    cat = Catalog(source)
    cat.add_user("admin", superuser=True)
    _lab(cat, write_csv)
    back = tmp_path / "back.duckdb"
    assert main(["--user", "admin", "catalog", "copy", str(source), pg]) == 0
    out = capsys.readouterr().out
    assert "checked: both catalogs export the same" in out and "4 decisions" in out
    assert main(["--user", "admin", "catalog", "copy", pg, str(back)]) == 0
    exports = {}
    for name, where in (("duck", source), ("pg", pg), ("back", back)):
        copy = Catalog(where)
        exports[name] = (
            copy.export_file(tmp_path / f"{name}.json", by="admin").read_bytes(),
            copy.export_file(tmp_path / f"{name}.csv", by="admin").read_bytes(),
        )
        assert copy.check_password("rev", PASSWORD)  # credentials come along
        assert copy.quarantined()["experiment"].tolist() == ["E2"]
        assert copy.claims()["user"].tolist() == ["rev"]
    assert exports["duck"] == exports["pg"] == exports["back"]
    assert json.loads(exports["pg"][0])["projects"]["P"]["experiments"]["E1"]["notes"] == (
        'a "quoted", note'
    )
    # A target that holds a catalog is refused, and left as it was.
    before = Catalog(pg).decisions()
    assert main(["--user", "admin", "catalog", "copy", str(source), pg]) == 1
    assert "holds a catalog already" in capsys.readouterr().err
    assert_frame_equal(Catalog(pg).decisions(), before)
    # Only a superuser copies.
    assert main(["--user", "rev", "catalog", "copy", str(source), str(tmp_path / "x.duckdb")]) == 1
    assert "superuser" in capsys.readouterr().err
    assert not (tmp_path / "x.duckdb").exists()


def _review(url: str, user: str, scans: list[str], barrier) -> list[int]:
    cat = Catalog(url, retry_seconds=60)
    barrier.wait()
    return [cat.record_decision("P", "E1", scan, "U", by=user) for scan in scans]


def test_processes_record_decisions_at_once_without_losing_one(pg, write_csv):
    cat = Catalog(pg)
    cat.add_user("admin", superuser=True)
    cat.import_file(write_csv([frame_row(scan=f"S{n}") for n in range(10)]), by="admin")
    users = [f"r{n}" for n in range(8)]
    for user in users:
        cat.add_user(user, by="admin")
        cat.set_role("P", user, "tier2", by="admin")
    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager:
        barrier = manager.Barrier(len(users))
        with ctx.Pool(len(users)) as pool:
            results = pool.starmap(
                _review, [(pg, u, [f"S{n}" for n in range(10)], barrier) for u in users]
            )
    ids = sorted(i for r in results for i in r)
    assert ids == list(range(1, 81))  # each id once, in the log's order
    decisions = cat.decisions()
    assert decisions.groupby("creator", observed=True).size().tolist() == [10] * 8


def test_two_reviewers_claiming_at_once_get_one_claim(pg, write_csv):
    cat = Catalog(pg)
    cat.add_user("admin", superuser=True)
    cat.import_file(write_csv([frame_row()]), by="admin")
    for user in ("ana", "ben"):
        cat.add_user(user, by="admin")
        cat.set_role("P", user, "tier1", by="admin")
    start = threading.Barrier(2)
    got = {}

    def claim(user: str) -> None:
        mine = Catalog(pg)
        start.wait()
        got[user] = mine.claim("P", "E1", by=user)

    threads = [threading.Thread(target=claim, args=(u,)) for u in ("ana", "ben")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(c.mine for c in got.values()) == [False, True]
    assert {c.user for c in got.values()} == set(cat.claims()["user"])


def test_a_lock_held_past_the_bound_is_catalog_busy(pg, write_csv):
    cat = Catalog(pg, retry_seconds=0.3)
    cat.add_user("admin", superuser=True)
    cat.import_file(write_csv([frame_row()]), by="admin")
    with psycopg.connect(pg) as other, other.transaction():
        other.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", ["miqa_nb decisions"]
        )
        with pytest.raises(CatalogBusy, match=r"stayed locked by other work for 0.3 s"):
            cat.record_decision("P", "E1", "S1", "U", by="admin")
    assert cat.record_decision("P", "E1", "S1", "U", by="admin") == 1  # free again


def test_an_import_failing_while_written_back_changes_nothing(pg, write_csv, monkeypatch):
    cat = Catalog(pg)
    cat.add_user("admin", superuser=True)
    _lab(cat, write_csv)
    before = _frames(cat)
    real = _pg.PgConnection.copy_in

    def fail_at_frames(self, table, rows):
        if table == "frames":
            raise OSError("the network went away")
        return real(self, table, rows)

    monkeypatch.setattr(_pg.PgConnection, "copy_in", fail_at_frames)
    rows = [frame_row(scan="S9"), frame_row(experiment="E3", scan="S1")]
    with pytest.raises(OSError, match="network went away"):
        cat.import_file(write_csv(rows, name="more.csv"), by="admin")
    monkeypatch.undo()
    after = _frames(Catalog(pg))
    for name, frame in before.items():
        assert_frame_equal(after[name], frame, obj=name)


def test_catalog_sql_reads_through_duckdb_and_refuses_changes(pg, write_csv):
    cat = Catalog(pg)
    cat.add_user("admin", superuser=True)
    _lab(cat, write_csv)
    n = cat.sql("SELECT count(*) AS n FROM frames WHERE list_contains(['S1'], scan)")
    assert n["n"].tolist() == [2]  # DuckDB's SQL (list_contains), PostgreSQL's rows
    with pytest.raises(MiqaError, match=r"only reads the catalog.*DELETE"):
        cat.sql("DELETE FROM decisions")
    assert len(cat.decisions()) == 4


def test_urls_name_the_server_never_the_password(pg_server, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    wrong = f"postgresql://miqa:s3cret@127.0.0.1:{pg_server.port}/no_such_db"
    with pytest.raises(MiqaError) as caught:
        Catalog(wrong)
    text = str(caught.value)
    assert (
        f"cannot connect to the catalog postgresql://miqa@127.0.0.1:{pg_server.port}/no_such_db"
        in text
    )
    assert "no_such_db" in text and "s3cret" not in text
    assert main(["--catalog", wrong, "projects"]) == 1
    err = capsys.readouterr().err
    assert "cannot connect" in err and "s3cret" not in err
    assert list(tmp_path.iterdir()) == []  # no folder "postgresql:", no file


def test_a_database_of_another_schema_version_is_refused(pg):
    Catalog(pg).add_user("admin", superuser=True)
    with psycopg.connect(pg, autocommit=True) as con:
        con.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(MiqaError, match=r"has catalog schema version 99.*upgrade miqa_nb"):
        Catalog(pg)


def test_catalog_and_local_files_follow_the_url(pg, tmp_path, write_csv):
    cat = Catalog(pg)
    assert cat.path == Path(tmp_path / "local" / "catalog")
    cat.add_user("admin", superuser=True)
    _lab(cat, write_csv)
    cat.import_file(write_csv([frame_row(scan="S2")], name="again.csv"), by="admin")
    (backup,) = cat.backups()  # the replacing import backed the project up first
    assert backup.parent == tmp_path / "local" / "catalog-backups"
    saved = json.loads(backup.read_text())
    assert set(saved["projects"]["P"]["experiments"]) == {"E1", "E2"}
    write_sql(cat, "UPDATE projects SET creator = 'rev' WHERE name = 'P'")
    assert cat.standing("rev", "P").creator


@pytest.mark.slow
def test_xnat_import_service_archives_into_a_postgresql_catalog(pg, tmp_path):
    from test_xnat_import import ADMIN, PASSWORD, PROJECT, TIER1, Site, _template, curl, session_zip

    from miqa_nb.serve import start

    cat = Catalog(pg)
    cat.add_user(ADMIN, superuser=True)
    cat.add_user(TIER1, by=ADMIN)
    cat.set_password(TIER1, PASSWORD, by=ADMIN)
    cat.create_project(PROJECT, by=ADMIN)
    cat.set_role(PROJECT, TIER1, "tier1", by=ADMIN)
    server = start(pg, log=tmp_path / "server.log", pool_size=1)
    try:
        server.wait_ready(timeout=180)
        site = Site(server, cat, tmp_path, _template())
        archive = session_zip(site, "mr1", session="S1_MR1")
        status, body = curl(
            "-u", f"{TIER1}:{PASSWORD}", "-F", f"file=@{archive}",
            f"{site.url}data/services/import?import-handler=DICOM-zip&dest=/archive",
        )  # fmt: skip
        assert status == 200, body
        assert body.strip() == f"/data/archive/projects/{PROJECT}/subjects/S1/experiments/S1_MR1"
    finally:
        server.stop()
    scans = cat.scans(PROJECT).set_index("scan")
    assert list(scans.index) == ["2", "3"] and set(scans["state"].astype(str)) == {"unreviewed"}
    frames = cat.frames(PROJECT)
    assert all(Path(f).is_relative_to(tmp_path / "local") for f in frames["location"])


def test_an_append_adds_its_rows_and_leaves_the_others_untouched(pg, write_csv):
    cat = Catalog(pg)
    cat.add_user("admin", superuser=True)
    _lab(cat, write_csv)
    before = _frames(cat)

    def versions() -> dict[str, set[tuple[str, str]]]:
        """Each table's rows, named by what PostgreSQL rewrites on any write (xmin)."""
        with psycopg.connect(pg) as con:
            return {
                table: set(con.execute(f"SELECT ctid::text, xmin::text FROM {table}").fetchall())
                for table in ("experiments", "scans", "frames", "decisions")
            }

    old = versions()
    rows = [
        frame_row(experiment="E3", scan="S7", last_decision="UN", last_decision_note="cut"),
        frame_row(scan="S1", frame=2),  # a new frame of an existing scan
    ]
    report = cat.import_file(write_csv(rows, name="more.csv"), by="admin", mode="append")
    assert not report.errors
    new = versions()
    for table, kept in old.items():
        assert kept <= new[table], table  # every old row as it was: not rewritten
    assert len(new["frames"]) == len(old["frames"]) + 2
    assert len(new["decisions"]) == len(old["decisions"]) + 1
    frames = cat.frames("P")
    assert len(frames) == len(before["frames"]) + 2
    assert cat.decisions().iloc[-1][["scan", "decision", "note"]].tolist() == ["S7", "UN", "cut"]
    assert cat.decisions()["id"].is_unique
