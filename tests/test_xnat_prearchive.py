"""XNAT's prearchive on the real signed-in server, with curl and pyxnat's ``PreArchive``.

Sessions of real anatomy (the MNI152 template written as DICOM, as in
``test_xnat_import``) are staged with ``dest=/prearchive``, listed, browsed and deleted
by pyxnat's ``manage.PreArchive``, archived with ``POST /data/services/archive``; a
second upload of an archived session is a CONFLICT; a collaborator sees nothing and
changes nothing.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from dicom_support import write_series
from test_xnat_import import (
    ADMIN,
    COLLAB,
    PASSWORD,
    PROJECT,
    TIER1,
    Site,
    curl,
    served_site,
    session_zip,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with served_site(tmp_path_factory.mktemp("prearchive")) as served:
        yield served


def stage(site: Site, archive: Path, user: str = TIER1, dest: str = "/prearchive") -> list[str]:
    status, body = curl(
        "-u", f"{user}:{PASSWORD}", "-F", f"file=@{archive}",
        f"{site.url}data/services/import?dest={dest}",
    )  # fmt: skip
    assert status == 200, body
    return body.split()


def listing(site: Site, user: str, fmt: str, path: str = "") -> list[dict[str, str]]:
    url = f"{site.url}data/prearchive/projects{path}?format={fmt}"
    status, body = curl("-u", f"{user}:{PASSWORD}", url)
    assert status == 200, body
    if fmt == "json":
        result = json.loads(body)["ResultSet"]
        assert result["totalRecords"] == str(len(result["Result"]))
        return list(result["Result"])
    return list(csv.DictReader(io.StringIO(body)))


def _prearchive(site: Site) -> Path:
    return site.catalog.path.with_name(site.catalog.path.stem + "-prearchive")


def _triple(uri: str) -> list[str]:
    parts = uri.strip("/").split("/")
    assert parts[:3] == ["data", "prearchive", "projects"], uri
    return parts[3:6]


def test_staged_session_is_listed_in_json_and_csv(site: Site) -> None:
    (uri,) = stage(site, session_zip(site, "p1", session="S1_P1"))
    project, ts, folder = _triple(uri)
    assert (project, folder) == (PROJECT, "S1_P1") and len(ts) == 18
    for fmt in ("json", "csv"):
        rows = [r for r in listing(site, TIER1, fmt) if r["folderName"] == "S1_P1"]
        assert len(rows) == 1, rows
        row = rows[0]
        assert row["status"] == "READY" and row["subject"] == "S1" and row["timestamp"] == ts
        assert row["url"] == f"/prearchive/projects/{PROJECT}/{ts}/S1_P1"
        assert row["tag"].startswith("1.2.826.0.1.3680043.8.498.")
        assert list(row)[:3] == ["project", "timestamp", "folderName"]
    assert [r["folderName"] for r in listing(site, TIER1, "csv", f"/{PROJECT}")].count("S1_P1") == 1
    assert site.catalog.scans(PROJECT).query("experiment == 'S1_P1'").empty  # not archived


def test_pyxnat_prearchive_browses_and_deletes(site: Site) -> None:
    pyxnat = pytest.importorskip("pyxnat")
    from pyxnat.core.manage import PreArchive

    (uri,) = stage(site, session_zip(site, "p2", session="S1_P2"))
    triple = _triple(uri)
    interface = pyxnat.Interface(site.url.rstrip("/"), TIER1, PASSWORD)
    pre = PreArchive(interface)
    assert triple in pre.get()
    assert pre.status(triple) == "READY"
    assert pre.get_uri(triple) == uri.removeprefix("/data")
    assert pre.get_scans(triple) == ["2", "3"]
    assert pre.get_resources(triple, "2") == "DICOM"  # one row: a value
    files = pre.get_files(triple, "2", "DICOM")
    assert len(files) == 40 and all(name.endswith(".dcm") for name in files)  # 40 slices
    reply = pre.reset(triple)  # action=build: read the files again
    assert (reply.decode() if isinstance(reply, bytes) else str(reply)).strip() == uri
    assert pre.status(triple) == "READY"
    pre.delete(pre.get_uri(triple))
    assert triple not in pre.get()
    assert not (_prearchive(site) / PROJECT / triple[1] / "S1_P2").exists()
    status, _ = curl(
        "-u", f"{TIER1}:{PASSWORD}", "-d", f"src={uri}",
        f"{site.url}data/services/prearchive/delete",
    )  # fmt: skip
    assert status == 404


def test_archive_from_prearchive_then_conflict(site: Site) -> None:
    archive = session_zip(site, "p3", session="S1_P3")
    (uri,) = stage(site, archive)
    status, body = curl(
        "-u", f"{TIER1}:{PASSWORD}", "-d", f"src={uri.removeprefix('/data')}",
        f"{site.url}data/services/archive",
    )  # fmt: skip
    assert status == 200, body
    assert body.strip() == f"/data/archive/projects/{PROJECT}/subjects/S1/experiments/S1_P3"
    scans = site.catalog.scans(PROJECT)
    assert sorted(scans.loc[scans["experiment"] == "S1_P3", "scan"]) == ["2", "3"]
    assert not [r for r in listing(site, TIER1, "json") if r["folderName"] == "S1_P3"]
    # the same session again: staged, but CONFLICT; archiving it is refused
    (again,) = stage(site, archive)
    (row,) = [r for r in listing(site, TIER1, "json") if r["folderName"] == "S1_P3"]
    assert row["status"] == "CONFLICT"
    status, body = curl(
        "-u", f"{TIER1}:{PASSWORD}", "-d", f"src={again}", f"{site.url}data/services/archive"
    )
    assert status == 409 and "already archived" in body
    status, body = curl(
        "-u", f"{TIER1}:{PASSWORD}", "-d", f"src={again}", "-d", "overwrite=append",
        f"{site.url}data/services/archive",
    )  # fmt: skip
    assert status == 200, body
    assert not [r for r in listing(site, TIER1, "json") if r["folderName"] == "S1_P3"]


def test_collaborator_sees_nothing_and_changes_nothing(site: Site) -> None:
    (uri,) = stage(site, session_zip(site, "p4", session="S1_P4"))
    assert listing(site, COLLAB, "json") == [] and listing(site, COLLAB, "csv") == []
    triple = _triple(uri)
    entry = _prearchive(site) / PROJECT / triple[1] / "S1_P4"
    for service in ("archive", "prearchive/delete"):
        status, body = curl(
            "-u", f"{COLLAB}:{PASSWORD}", "-d", f"src={uri}", f"{site.url}data/services/{service}"
        )
        assert status == 403 and "may not" in body, (service, body)
    status, _ = curl("-u", f"{COLLAB}:{PASSWORD}", f"{site.url}data{uri[5:]}/scans?format=json")
    assert status == 403
    assert (entry / "prearchive.json").is_file()
    assert site.catalog.scans(PROJECT).query("experiment == 'S1_P4'").empty
    status, body = curl(f"{site.url}data/prearchive/projects?format=json")  # nobody
    assert status == 401 and not body.lstrip().startswith("<")


def test_unassigned_is_for_superusers_and_headers_route_by_default(site: Site) -> None:
    # no dest: the headers route it, and without AA:true it waits in the prearchive
    (uri,) = stage(site, session_zip(site, "p5", session="S1_P5"), dest="")
    assert uri.startswith(f"/data/prearchive/projects/{PROJECT}/")
    (lost,) = stage(site, session_zip(site, "p6", session="S1_P6", project="Nowhere"), dest="")
    assert lost.startswith("/data/prearchive/projects/Unassigned/")
    assert [r for r in listing(site, ADMIN, "json") if r["project"] == "Unassigned"]
    assert not [r for r in listing(site, TIER1, "json") if r["project"] == "Unassigned"]
    status, _ = curl(
        "-u",
        f"{TIER1}:{PASSWORD}",
        "-d",
        f"src={lost}",
        f"{site.url}data/services/prearchive/delete",
    )
    assert status == 403
    status, _ = curl(
        "-u",
        f"{ADMIN}:{PASSWORD}",
        "-d",
        f"src={lost}",
        f"{site.url}data/services/prearchive/delete",
    )
    assert status == 200


def test_headers_with_aa_true_archive_at_once(site: Site) -> None:
    folder = site.root / "aa"
    write_series(
        site.template, folder / "t1", SeriesNumber=2, SeriesDescription="t1_mprage_sag",
        PatientComments=f"Project:{PROJECT} Subject:S2 Session:S2_AA AA:true",
    )  # fmt: skip
    archive = site.root / "aa.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(folder.rglob("*.dcm")):
            zf.write(path, path.relative_to(folder).as_posix())
    (uri,) = stage(site, archive, dest="")
    assert uri == f"/data/archive/projects/{PROJECT}/subjects/S2/experiments/S2_AA"
    assert not [r for r in listing(site, TIER1, "json") if r["folderName"] == "S2_AA"]
