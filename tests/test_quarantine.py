"""Experiments held in quarantine (XNAT's ``quarantine=true``), on real catalog files.

A quarantined experiment is in the catalog (and its exports) but in no review queue,
no count reviewers see and no scan list, until the project's creator or a superuser
releases it; others are refused with a sentence naming who may. Catalogs of schema
version 2 (made before quarantine) upgrade on their first writable opening. The served
import service and ``/data/services/archive`` honour ``quarantine=true`` (see
``test_served_quarantine`` below, with curl).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import pytest
from support import catalog_tables
from widgets_dashboard.dashboard_catalog import (
    ADMIN,
    PROJECT,
    TIER1,
    TIER2,
    DashboardCatalog,
    build,
)

from miqa_nb.catalog import Catalog
from miqa_nb.cli import main
from miqa_nb.core.errors import NotFound, PermissionDenied
from miqa_nb.dashboard.model import overview_table, visible_projects
from miqa_nb.review import ReviewSession
from miqa_nb.store.schema import SCHEMA_VERSION
from miqa_nb.volumes import VolumeCache

V2_SQL = Path(__file__).parent / "data" / "catalog-v2.sql"


@pytest.fixture
def site(tmp_path: Path) -> DashboardCatalog:
    """Project Alpha: E1 (S1, S2) and E2 (S3); tina tier 1, tom tier 2, admin its creator."""
    return build(tmp_path / "site")


@pytest.fixture
def cache() -> Iterator[VolumeCache]:
    with VolumeCache(max_bytes=32 << 20) as c:
        yield c


def queue(cat: Catalog, user: str, cache: VolumeCache) -> list[tuple[str, str]]:
    """The scans ``user``'s review session of Alpha goes through (every state)."""
    session = ReviewSession(cat, PROJECT, user, filter="all", cache=cache, background=False)
    try:
        return session.queue.keys()
    finally:
        session.close()


def _make_creator(cat: Catalog, user: str) -> None:
    """Only superusers create projects: hand Alpha over to ``user``."""
    cat.sql("UPDATE projects SET creator = ? WHERE name = ?", [user, PROJECT])


# ------------------------------------------------------------------- schema


def _version_2_catalog(path: Path) -> Path:
    """A catalog as miqa_nb made them before quarantine (schema version 2), holding a
    project with one experiment."""
    con = duckdb.connect(str(path))
    con.execute(V2_SQL.read_text())
    con.execute("INSERT INTO meta VALUES ('schema_version', '2')")
    con.execute("INSERT INTO users (name, superuser) VALUES ('admin', true), ('ana', false)")
    con.execute("INSERT INTO projects (name, creator) VALUES ('P', 'admin')")
    con.execute("INSERT INTO roles VALUES ('P', 'ana', 'tier1')")
    con.execute("INSERT INTO experiments VALUES ('P', 'E1', NULL)")
    con.execute("INSERT INTO scans VALUES ('P', 'E1', 'S1', 'T1', NULL, NULL, NULL)")
    con.execute("INSERT INTO frames VALUES ('P', 'E1', 'S1', 0, '/data/s1.nii.gz')")
    con.close()
    return path


def test_a_version_2_catalog_is_upgraded_on_its_first_writable_opening(tmp_path: Path) -> None:
    path = _version_2_catalog(tmp_path / "old.duckdb")
    assert "quarantine" not in catalog_tables(path)
    cat = Catalog(path)
    assert SCHEMA_VERSION == "3"
    assert cat.sql("SELECT value FROM meta WHERE key = 'schema_version'")["value"].tolist() == ["3"]
    assert "quarantine" in catalog_tables(path)
    scans = cat.scans("P")
    assert scans["scan"].tolist() == ["S1"] and scans["quarantined"].tolist() == [False]
    assert cat.quarantined().empty
    cat.quarantine_experiment("P", "E1", by="admin")
    assert Catalog(path).scans("P")["quarantined"].tolist() == [True]
    assert Catalog(path).quarantined()["experiment"].tolist() == ["E1"]


def test_reading_a_version_2_file_as_it_is_finds_nothing_quarantined(tmp_path: Path) -> None:
    """The queries of a catalog opened read-only without the table (a version-2 file
    this user may not write): the same answers, nothing held."""
    from miqa_nb.store import quarantine, queries

    path = _version_2_catalog(tmp_path / "old.duckdb")
    con = duckdb.connect(str(path), read_only=True)
    try:
        assert not quarantine.has_quarantine(con)
        assert queries.scans(con, "P")["quarantined"].tolist() == [False]
        assert queries.projects(con)["scans"].tolist() == [1]
        assert quarantine.listing(con).empty
        assert list(quarantine.listing(con).columns) == [
            "project", "experiment", "scans", "frames", "quarantined_by", "since_utc",
        ]  # fmt: skip
    finally:
        con.close()


# ------------------------------------------------------------ hidden, released


def test_a_quarantined_experiment_is_hidden_from_review_until_its_creator_releases_it(
    site: DashboardCatalog, cache: VolumeCache
) -> None:
    cat = site.catalog()
    _make_creator(cat, TIER2)  # a creator who is not a superuser
    everything = [("E1", "S1"), ("E1", "S2"), ("E2", "S3")]
    assert queue(cat, TIER1, cache) == everything
    cat.quarantine_experiment(PROJECT, "E1", by=ADMIN)

    for user in (TIER1, TIER2, ADMIN):  # every review queue, a superuser's too
        assert queue(cat, user, cache) == [("E2", "S3")]
    alpha = visible_projects(cat, TIER1).set_index("project").loc[PROJECT]
    assert (alpha["experiments"], alpha["scans"], alpha["reviewed"]) == (1, 1, 0)
    assert overview_table(cat, PROJECT)["scan"].tolist() == ["S3"]
    held = cat.quarantined(PROJECT)
    assert held[["experiment", "scans", "frames", "quarantined_by"]].values.tolist() == [
        ["E1", 2, 2, ADMIN]
    ]
    # in the catalog all along: its scans, frames and decisions
    assert len(cat.scans(PROJECT)) == 3 and len(cat.decisions(PROJECT)) == 2

    cat.release_quarantine(PROJECT, "E1", by=TIER2)
    assert queue(cat, TIER1, cache) == everything
    alpha = visible_projects(cat, TIER1).set_index("project").loc[PROJECT]
    assert (alpha["experiments"], alpha["scans"], alpha["reviewed"]) == (2, 3, 2)
    assert cat.quarantined().empty


def test_only_the_creator_and_superusers_release(site: DashboardCatalog) -> None:
    cat = site.catalog()
    cat.quarantine_experiment(PROJECT, "E2", by=ADMIN)
    for user in (TIER1, TIER2):  # reviewers (tom is tier 2 but not the creator)
        with pytest.raises(PermissionDenied) as refused:
            cat.release_quarantine(PROJECT, "E2", by=user)
        assert str(refused.value) == (
            f"user {user!r} may not release experiment 'E2' of project {PROJECT!r}: only "
            "the project's creator and superusers may do that (ask one of them)"
        )
        with pytest.raises(PermissionDenied, match="may not quarantine experiment 'E1'"):
            cat.quarantine_experiment(PROJECT, "E1", by=user)
    assert cat.quarantined()["experiment"].tolist() == ["E2"]
    with pytest.raises(NotFound, match=r"'E1' of project 'Alpha' is not in quarantine.*\['E2'\]"):
        cat.release_quarantine(PROJECT, "E1", by=ADMIN)
    with pytest.raises(NotFound, match="no experiment 'E9' in project 'Alpha'"):
        cat.quarantine_experiment(PROJECT, "E9", by=ADMIN)
    cat.release_quarantine(PROJECT, "E2", by=ADMIN)  # a superuser
    assert cat.quarantined().empty


def test_an_import_may_quarantine_what_it_adds_and_exports_include_it(
    site: DashboardCatalog, tmp_path: Path
) -> None:
    cat = site.catalog()
    # the project exported, then read back into a new project held in quarantine
    exported = cat.export_file(tmp_path / "alpha.json", by=ADMIN, project=PROJECT)
    text = exported.read_text().replace(f'"{PROJECT}"', '"Gamma"')
    (tmp_path / "gamma.json").write_text(text)
    cat.import_file(tmp_path / "gamma.json", by=ADMIN, project="Gamma", quarantine=True)
    assert cat.quarantined("Gamma")["experiment"].tolist() == ["E1", "E2"]
    assert cat.projects().set_index("project").loc["Gamma", "scans"] == 0
    assert cat.scans("Gamma")["quarantined"].all()
    # exports hold quarantined experiments: archived data (MIQA's format has no flag)
    again = cat.export_file(tmp_path / "gamma-out.json", by=ADMIN, project="Gamma")
    experiments = json.loads(again.read_text())["projects"]["Gamma"]["experiments"]
    assert sorted(experiments) == ["E1", "E2"]
    # a replacing import without E2 drops it, and its quarantine with it: an E2
    # imported later is not hidden
    data = json.loads(text)
    del data["projects"]["Gamma"]["experiments"]["E2"]
    (tmp_path / "gamma-e1.json").write_text(json.dumps(data))
    cat.import_file(tmp_path / "gamma-e1.json", by=ADMIN, project="Gamma")
    assert cat.sql("SELECT experiment FROM quarantine")["experiment"].tolist() == ["E1"]
    cat.import_file(tmp_path / "gamma.json", by=ADMIN, project="Gamma", mode="append")
    assert cat.scans("Gamma").groupby("experiment")["quarantined"].all().to_dict() == {
        "E1": True,
        "E2": False,
    }


def test_the_quarantine_is_written_in_the_imports_own_transaction(
    site: DashboardCatalog, tmp_path: Path
) -> None:
    """Had the hold failed, nothing of the import is there: never visible unheld."""
    cat = site.catalog()
    exported = cat.export_file(tmp_path / "alpha.json", by=ADMIN, project=PROJECT)
    (tmp_path / "delta.json").write_text(exported.read_text().replace(f'"{PROJECT}"', '"Delta"'))
    cat.sql("DROP TABLE quarantine")  # the hold's write fails (the file stays open as is)
    path = tmp_path / "delta.json"
    with pytest.raises(duckdb.CatalogException, match="quarantine"):  # appends hold only
        cat.import_file(path, by=ADMIN, project="Delta", mode="append", quarantine=True)
    assert cat.scans("Delta").empty and "Delta" not in set(cat.projects()["project"])
    cat.import_file(path, by=ADMIN, project="Delta", mode="append")  # unheld: it works
    assert len(cat.scans("Delta")) == 3


# ---------------------------------------------------------------------- CLI


def test_the_command_line_lists_and_releases(
    site: DashboardCatalog, capsys: pytest.CaptureFixture[str]
) -> None:
    cat = site.catalog()
    base = ["--catalog", str(site.catalog_path)]
    assert main([*base, "--user", ADMIN, "quarantine", "list"]) == 0
    assert capsys.readouterr().out == "no experiment is in quarantine\n"
    cat.quarantine_experiment(PROJECT, "E1", by=ADMIN)
    assert main([*base, "quarantine", "list", PROJECT, "--user", TIER1]) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert header.split()[:6] == [
        "project",
        "experiment",
        "scans",
        "frames",
        "quarantined_by",
        "since_utc",
    ]
    assert row.split()[:5] == [PROJECT, "E1", "2", "2", ADMIN]
    assert main([*base, "--user", TIER1, "quarantine", "release", PROJECT, "E1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"miqa-nb: user {TIER1!r} may not release experiment 'E1'")
    assert "only the project's creator and superusers may do that" in err
    assert cat.quarantined()["experiment"].tolist() == ["E1"]
    assert main([*base, "--user", ADMIN, "quarantine", "release", PROJECT, "E1"]) == 0
    assert capsys.readouterr().out == f"released E1 of {PROJECT} into review\n"
    assert cat.quarantined().empty
    assert main([*base, "--user", ADMIN, "quarantine", "list", "Nowhere"]) == 1
    assert "no project 'Nowhere'" in capsys.readouterr().err


# ------------------------------------------------------------ the real server


@pytest.mark.slow
def test_served_quarantine(tmp_path: Path, cache: VolumeCache) -> None:
    """curl imports with ``quarantine=true`` (and ``triggerPipelines=false``): the scans
    are in no reviewer's queue; a second import's pipelines make its thumbnails, none
    for the first; the reviewer may not release it, the project's creator does, and
    the scans are back in the queue. ``/data/services/archive`` quarantines too."""
    from test_xnat_import import ADMIN as CREATOR
    from test_xnat_import import PASSWORD, curl, served_site, session_zip
    from test_xnat_import import PROJECT as SCANNER
    from test_xnat_import import TIER1 as REVIEWER

    from miqa_nb.volumes.thumbnails import catalog_thumbnail_dir, thumbnail_path

    def send(archive: Path, query: str) -> str:
        status, body = curl(
            "-u", f"{REVIEWER}:{PASSWORD}", "-F", f"file=@{archive}",
            f"{site.url}data/services/import?{query}",
        )  # fmt: skip
        assert status == 200, body
        return body.strip()

    def reviewer_queue() -> set[str]:
        session = ReviewSession(
            site.catalog, SCANNER, REVIEWER, filter="all", cache=cache, background=False
        )
        try:
            keys = session.queue.keys()  # (experiment, scan), in order
            return {experiment for experiment, _scan in keys}
        finally:
            session.close()

    def thumbnails_of(experiment: str) -> list[Path]:
        frames = site.catalog.frames(SCANNER)
        locations = frames.loc[frames["experiment"] == experiment, "location"]
        folder = catalog_thumbnail_dir(site.catalog.path.resolve())
        return [thumbnail_path(location, folder) for location in locations]

    with served_site(tmp_path) as site:
        held = send(
            session_zip(site, "q1", session="S1_Q1"),
            "dest=/archive&quarantine=true&triggerPipelines=false",
        )
        assert held == f"/data/archive/projects/{SCANNER}/subjects/S1/experiments/S1_Q1"
        listed = site.catalog.quarantined(SCANNER)
        assert listed[["experiment", "scans", "quarantined_by"]].values.tolist() == [
            ["S1_Q1", 2, REVIEWER]
        ]
        assert reviewer_queue() == set()
        assert visible_projects(site.catalog, REVIEWER).loc[0, "scans"] == 0

        send(session_zip(site, "q2", session="S1_Q2"), "dest=/archive")  # pipelines: default on
        assert reviewer_queue() == {"S1_Q2"}
        made = thumbnails_of("S1_Q2")
        assert len(made) == 2
        wait_for(lambda: all(p.is_file() for p in made), "the second import's thumbnails")
        # the pipelines run one archive after another: had the first import queued any,
        # they would be done by now
        assert not any(p.exists() for p in thumbnails_of("S1_Q1"))

        base = ["--catalog", str(site.catalog.path)]
        assert main([*base, "--user", REVIEWER, "quarantine", "release", SCANNER, "S1_Q1"]) == 1
        assert reviewer_queue() == {"S1_Q2"}
        assert main([*base, "--user", CREATOR, "quarantine", "release", SCANNER, "S1_Q1"]) == 0
        assert reviewer_queue() == {"S1_Q1", "S1_Q2"}

        # the prearchive's archive call: staged, then archived in quarantine
        (staged,) = send(session_zip(site, "q3", session="S1_Q3"), "dest=/prearchive").split()
        status, body = curl(
            "-u", f"{REVIEWER}:{PASSWORD}",
            "-d", f"src={staged.removeprefix('/data')}&quarantine=true&triggerPipelines=false",
            f"{site.url}data/services/archive",
        )  # fmt: skip
        assert status == 200, body
        assert site.catalog.quarantined(SCANNER)["experiment"].tolist() == ["S1_Q3"]
        assert reviewer_queue() == {"S1_Q1", "S1_Q2"}


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    """Wait until ``condition()`` holds (polling), or fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"waited {timeout:.0f} s for {what}")
        time.sleep(0.1)
