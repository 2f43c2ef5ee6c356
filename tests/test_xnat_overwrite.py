"""``overwrite=delete``, the prearchive's ``move``, archiving under other names, the
statuses shown during actions, and what a server killed while archiving leaves.

The catalog's ``replace-experiments`` import (what ``overwrite=delete`` uses) is tested
on a catalog file first; then everything on the real signed-in server with curl,
requests and pyxnat's raw calls (its ``PreArchive.move`` fails on Python 3 before it
sends anything).
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import json
import os
import signal
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import requests
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

from miqa_nb.catalog import Catalog
from miqa_nb.core.errors import PermissionDenied
from miqa_nb.serve import start

OTHER = "Other"


# ------------------------------------------------------------ the catalog's part


def _rows(folder: Path, rows: list[tuple[str, str, str]]) -> Path:
    """A MIQA CSV of ``(experiment, scan, file)`` rows of project P (files made)."""
    lines = ["project_name,experiment_name,scan_name,scan_type,frame_number,file_location"]
    for experiment, scan, name in rows:
        (folder / name).touch()
        lines.append(f"P,{experiment},{scan},T1,0,{name}")
    path = folder / f"import-{len(list(folder.glob('import-*')))}.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_replace_experiments_swaps_one_experiment_after_a_backup(tmp_path: Path) -> None:
    cat = Catalog(tmp_path / "c.duckdb", data_roots=[tmp_path])
    cat.add_user("ana", superuser=True)
    cat.add_user("rev", by="ana")
    cat.import_file(
        _rows(tmp_path, [("E1", "S1", "a.nii.gz"), ("E1", "S2", "b.nii.gz"),
                         ("E2", "S1", "c.nii.gz")]),
        by="ana",
    )  # fmt: skip
    cat.set_role("P", "rev", "tier1", by="ana")
    cat.record_decision("P", "E1", "S1", "U", by="ana")
    cat.record_decision("P", "E2", "S1", "U", by="ana")
    new = _rows(tmp_path, [("E1", "S3", "d.nii.gz")])
    # a reviewer may not remove the decision another user made on E1
    with pytest.raises(PermissionDenied, match="remove 1 decisions"):
        cat.import_file(new, by="rev", project="P", mode="replace-experiments")
    assert sorted(cat.scans("P")["scan"]) == ["S1", "S1", "S2"]
    report = cat.import_file(new, by="ana", project="P", mode="replace-experiments")
    scans = cat.scans("P")
    assert sorted(zip(scans["experiment"], scans["scan"], strict=True)) == [
        ("E1", "S3"), ("E2", "S1"),
    ]  # fmt: skip
    decisions = cat.decisions("P")
    assert list(decisions["experiment"]) == ["E2"]  # E1's went with its images
    changes = {row[0]: row[1:] for row in report.change_counts}
    assert changes["scans"][:2] == (1, 2) and changes["decisions"][:2] == (0, 1)
    backup = json.loads(cat.backups()[-1].read_text(encoding="utf-8"))
    text = json.dumps(backup)
    assert "b.nii.gz" in text and "d.nii.gz" not in text  # the state before


# ------------------------------------------------------------------ the server


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with served_site(tmp_path_factory.mktemp("overwrite")) as served:
        served.catalog.create_project(OTHER, by=ADMIN)
        yield served


def _data(site: Site) -> Path:
    return site.catalog.path.with_name(site.catalog.path.stem + "-data")


def _files(site: Site) -> list[Path]:
    return sorted(p for p in _data(site).rglob("*") if p.is_file())


def _prearchive(site: Site) -> Path:
    return site.catalog.path.with_name(site.catalog.path.stem + "-prearchive")


def _one_series_zip(site: Site, name: str, session: str, number: int, extra: bool = False) -> Path:
    """A zip of one T1 series numbered ``number`` of ``session`` (and, with ``extra``, a
    file that is not DICOM)."""
    folder = site.root / name
    write_series(
        site.template, folder / "s", study_uid=f"1.2.826.0.1.3680043.8.498.{number}77",
        SeriesNumber=number, SeriesDescription="t1_mprage_sag",
        PatientComments=f"Project:{PROJECT} Subject:S1 Session:{session}",
    )  # fmt: skip
    archive = site.root / f"{name}.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(folder.rglob("*.dcm")):
            zf.write(path, path.relative_to(folder).as_posix())
        if extra:
            zf.writestr("s/notes.txt", "not a DICOM file")
    return archive


def _state(site: Site, experiment: str) -> tuple[list[tuple[str, str]], int, list[Path]]:
    frames = site.catalog.frames(PROJECT)
    mine = frames[frames["experiment"] == experiment]
    decisions = site.catalog.decisions(PROJECT)
    return (
        sorted(zip(mine["scan"], mine["location"], strict=True)),
        int((decisions["experiment"] == experiment).sum()),
        _files(site),
    )


def test_overwrite_delete_replaces_the_series_after_a_backup(site: Site) -> None:
    url = f"{site.url}data/services/import?dest=/archive"
    status, body = curl("-u", f"{ADMIN}:{PASSWORD}", "-F",
                        f"file=@{session_zip(site, 'd1', session='S1_D1')}", url)  # fmt: skip
    assert status == 200, body
    site.catalog.record_decision(PROJECT, "S1_D1", "2", "U", by=ADMIN)
    before = _state(site, "S1_D1")
    old = [Path(location) for _scan, location in before[0]]
    assert [scan for scan, _ in before[0]] == ["2", "3"] and before[1] == 1
    backups = set(site.catalog.backups())
    replacement = _one_series_zip(site, "d1b", "S1_D1", 4)
    delete = url + "&overwrite=delete"

    # refusals change nothing: a collaborator; a reviewer facing another user's
    # decision; a file that is not DICOM
    status, text = curl("-u", f"{COLLAB}:{PASSWORD}", "-F", f"file=@{replacement}", delete)
    assert status == 403, text
    status, text = curl("-u", f"{TIER1}:{PASSWORD}", "-F", f"file=@{replacement}", delete)
    assert status == 403 and "remove 1 decisions" in text, text
    bad = _one_series_zip(site, "d1c", "S1_D1", 5, extra=True)
    status, text = curl("-u", f"{ADMIN}:{PASSWORD}", "-F", f"file=@{bad}", delete)
    assert status == 400 and "notes.txt" in text
    assert _state(site, "S1_D1") == before
    assert set(site.catalog.backups()) == backups

    with open(replacement, "rb") as handle:
        answer = requests.post(
            url, params={"overwrite": "delete"}, files={"file": handle},
            auth=(ADMIN, PASSWORD), timeout=300,
        )  # fmt: skip
    assert answer.status_code == 200, answer.text
    assert answer.text.strip() == f"/data/archive/projects/{PROJECT}/subjects/S1/experiments/S1_D1"
    scans, decisions, _ = _state(site, "S1_D1")
    assert [scan for scan, _ in scans] == ["4"] and decisions == 0
    assert all(Path(location).is_file() for _, location in scans)
    assert not any(path.exists() for path in old)  # removed once the import committed
    assert not any(path.parent.exists() for path in old)
    (backup,) = set(site.catalog.backups()) - backups
    held = json.loads(backup.read_text(encoding="utf-8"))
    text = json.dumps(held)
    assert all(str(path) in text for path in old) and scans[0][1] not in text

    # the same from the prearchive: a CONFLICT entry archived with overwrite=delete
    uri = _stage(site, session_zip(site, "d1d", session="S1_D1"))
    assert _listing(site, TIER1)["S1_D1"]["status"] == "CONFLICT"
    status, body = curl("-u", f"{TIER1}:{PASSWORD}", "-d", f"src={uri}", "-d",
                        "overwrite=delete", f"{site.url}data/services/archive")  # fmt: skip
    assert status == 200, body
    again, _, _ = _state(site, "S1_D1")
    assert [scan for scan, _ in again] == ["2", "3"] and not Path(scans[0][1]).exists()
    assert "S1_D1" not in _listing(site, TIER1)


def _stage(site: Site, archive: Path, user: str = TIER1, dest: str = "/prearchive") -> str:
    status, body = curl("-u", f"{user}:{PASSWORD}", "-F", f"file=@{archive}",
                        f"{site.url}data/services/import?dest={dest}")  # fmt: skip
    assert status == 200, body
    (uri,) = body.split()
    return uri


def _listing(site: Site, user: str) -> dict[str, dict[str, str]]:
    status, body = curl(
        "-u", f"{user}:{PASSWORD}", f"{site.url}data/prearchive/projects?format=json"
    )
    assert status == 200, body
    return {r["folderName"]: r for r in json.loads(body)["ResultSet"]["Result"]}


def _move(site: Site, user: str, body: str) -> tuple[int, str]:
    return curl("-u", f"{user}:{PASSWORD}", "-d", body,
                f"{site.url}data/services/prearchive/move?format=csv")  # fmt: skip


def test_move_needs_both_projects_and_sets_the_status_again(site: Site) -> None:
    one = _stage(site, session_zip(site, "m1", session="S1_M1"))
    two = _stage(site, session_zip(site, "m2", session="S1_M2"))
    # tina reviews Scanner only: refused, and neither entry moved
    status, text = _move(site, TIER1, f"src={one},{two}&newProject={OTHER}&async=false")
    assert status == 403 and "may not" in text, text
    rows = _listing(site, TIER1)
    assert rows["S1_M1"]["project"] == rows["S1_M2"]["project"] == PROJECT
    assert rows["S1_M1"]["status"] == "READY"

    # an experiment S1_M2 archived in Other: moved there, the entry is a CONFLICT
    site.catalog.set_role(OTHER, TIER1, "tier1", by=ADMIN)
    status, body = curl("-u", f"{ADMIN}:{PASSWORD}", "-F",
                        f"file=@{session_zip(site, 'm2o', session='S1_M2')}",
                        f"{site.url}data/services/import?dest=/archive/projects/{OTHER}")  # fmt: skip
    assert status == 200, body
    pyxnat = pytest.importorskip("pyxnat")
    interface = pyxnat.Interface(site.url.rstrip("/"), TIER1, PASSWORD)
    reply = interface._exec(  # the request pyxnat's PreArchive.move would send
        "/data/services/prearchive/move?format=csv", "POST",
        f"src={one}&src={two}&newProject={OTHER}&async=true",
        {"content-type": "application/x-www-form-urlencoded"},
    )  # fmt: skip
    moved = list(csv.DictReader(io.StringIO(reply.decode() if isinstance(reply, bytes) else reply)))
    assert [(r["folderName"], r["project"], r["status"]) for r in moved] == [
        ("S1_M1", OTHER, "READY"), ("S1_M2", OTHER, "CONFLICT"),
    ]  # fmt: skip
    for row, uri in zip(moved, (one, two), strict=True):
        ts = uri.split("/")[5]
        assert row["url"] == f"/prearchive/projects/{OTHER}/{ts}/{row['folderName']}"
        assert (_prearchive(site) / OTHER / ts / row["folderName"] / "prearchive.json").is_file()
        assert not (_prearchive(site) / PROJECT / ts / row["folderName"]).exists()
    rows = _listing(site, TIER1)
    assert (rows["S1_M1"]["project"], rows["S1_M2"]["status"]) == (OTHER, "CONFLICT")
    # and archived from its new place into Other
    status, body = curl("-u", f"{TIER1}:{PASSWORD}", "-d", f"src=/data{moved[0]['url']}",
                        f"{site.url}data/services/archive")  # fmt: skip
    assert status == 200 and body.strip().endswith(f"{OTHER}/subjects/S1/experiments/S1_M1")
    assert not site.catalog.scans(OTHER).query("experiment == 'S1_M1'").empty


def test_unassigned_moves_and_archives_into_a_project_by_superusers(site: Site) -> None:
    lost = _stage(site, session_zip(site, "u1", session="S1_U1", project="Nowhere"), dest="")
    lost2 = _stage(site, session_zip(site, "u2", session="S1_U2", project="Nowhere"), dest="")
    assert lost.startswith("/data/prearchive/projects/Unassigned/")
    status, _ = _move(site, TIER1, f"src={lost}&newProject={PROJECT}")
    assert status == 403
    # one source tina may move (Scanner to Other), one she may not: nothing moves
    mine = _stage(site, session_zip(site, "u3", session="S1_U3"))
    site.catalog.set_role(OTHER, TIER1, "tier1", by=ADMIN)
    status, _ = _move(site, TIER1, f"src={mine},{lost}&newProject={OTHER}")
    assert status == 403
    assert _listing(site, TIER1)["S1_U3"]["project"] == PROJECT
    status, _ = curl("-u", f"{TIER1}:{PASSWORD}", "-d", f"src={lost2}", "-d",
                     f"project={PROJECT}", f"{site.url}data/services/archive")  # fmt: skip
    assert status == 403
    assert {"S1_U1", "S1_U2"} <= set(_listing(site, ADMIN))
    status, body = _move(site, ADMIN, f"src={lost}&newProject={PROJECT}")
    assert status == 200, body
    (row,) = csv.DictReader(io.StringIO(body))
    assert (row["project"], row["status"]) == (PROJECT, "READY")
    assert _listing(site, TIER1)["S1_U1"]["project"] == PROJECT  # tina sees it now
    # archived straight from Unassigned, under the names dest gives
    dest = f"/archive/projects/{PROJECT}/subjects/S9/experiments/S9_U2"
    status, body = curl("-u", f"{ADMIN}:{PASSWORD}", "-d", f"src={lost2}", "-d", f"dest={dest}",
                        f"{site.url}data/services/archive")  # fmt: skip
    assert status == 200, body
    assert body.strip() == f"/data{dest}"
    scans = site.catalog.scans(PROJECT).query("experiment == 'S9_U2'")
    assert sorted(scans["scan"]) == ["2", "3"]
    assert "S1_U2" not in _listing(site, ADMIN)


def test_archive_under_another_label_and_project(site: Site) -> None:
    uri = _stage(site, session_zip(site, "r1", session="S1_R1"))
    site.catalog.set_role(OTHER, TIER1, None, by=ADMIN)
    status, text = curl("-u", f"{TIER1}:{PASSWORD}", "-d", f"src={uri}", "-d",
                        f"project={OTHER}", f"{site.url}data/services/archive")  # fmt: skip
    assert status == 403, text
    assert _listing(site, TIER1)["S1_R1"]["status"] == "READY"
    status, body = curl("-u", f"{TIER1}:{PASSWORD}", "-d", f"src={uri}", "-d",
                        "session=S1_RENAMED", f"{site.url}data/services/archive")  # fmt: skip
    assert status == 200, body
    assert body.strip().endswith(f"{PROJECT}/subjects/S1/experiments/S1_RENAMED")
    assert sorted(site.catalog.scans(PROJECT).query("experiment == 'S1_RENAMED'")["scan"]) == [
        "2", "3",
    ]  # fmt: skip
    assert site.catalog.scans(PROJECT).query("experiment == 'S1_R1'").empty


def test_an_entry_acted_on_shows_it_and_is_settled_once_nobody_acts(site: Site) -> None:
    uri = _stage(site, session_zip(site, "b1", session="S1_B1"))
    _, _, _, _, _, ts, folder = uri.split("/")
    entry = _prearchive(site) / PROJECT / ts / folder
    record = json.loads((entry / "prearchive.json").read_text(encoding="utf-8"))
    with open(entry / ".in-use", "ab") as lock:  # as a request moving it holds it
        fcntl.flock(lock, fcntl.LOCK_EX)
        busy = {**record, "status": "MOVING"}
        (entry / "prearchive.json").write_text(json.dumps(busy), encoding="utf-8")
        assert _listing(site, TIER1)["S1_B1"]["status"] == "MOVING"
        status, text = curl("-u", f"{TIER1}:{PASSWORD}", "-d", f"src={uri}",
                            f"{site.url}data/services/prearchive/delete")  # fmt: skip
        assert status == 409 and "being moved" in text, text
        assert (entry / "prearchive.json").is_file()
    # nobody holds it any more (as after a killed server): READY again, never stuck
    row = _listing(site, TIER1)["S1_B1"]
    assert row["status"] == "READY"


# ------------------------------------------------------------- a killed archive


def _children(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def test_a_server_killed_while_archiving_leaves_nothing_stuck(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    with served_site(tmp_path_factory.mktemp("killarchive")) as site:
        # several series: the archive lasts long enough to be caught in the middle
        folder = site.root / "k1"
        study = "1.2.826.0.1.3680043.8.498.4242"
        for number in range(2, 8):
            write_series(
                site.template, folder / f"s{number}", study_uid=study, SeriesNumber=number,
                SeriesDescription="t1_mprage_sag",
                PatientComments=f"Project:{PROJECT} Subject:S1 Session:S1_K1",
            )  # fmt: skip
        archive = site.root / "k1.zip"
        with zipfile.ZipFile(archive, "w") as zf:
            for path in sorted(folder.rglob("*.dcm")):
                zf.write(path, path.relative_to(folder).as_posix())
        uri = _stage(site, archive)
        _, _, _, _, _, ts, name = uri.split("/")
        record = _prearchive(site) / PROJECT / ts / name / "prearchive.json"
        server = site.server

        def archive_it() -> None:
            with contextlib.suppress(requests.RequestException):
                requests.post(f"{site.url}data/services/archive", data={"src": uri},
                              auth=(TIER1, PASSWORD), timeout=300)  # fmt: skip

        caller = threading.Thread(target=archive_it)
        caller.start()
        deadline, seen = time.monotonic() + 120, False
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError):
                status = json.loads(record.read_text(encoding="utf-8"))["status"]
                if status == "ARCHIVING" and any(_data(site).glob(".archiving-*/*/*/*/*")):
                    seen = True
                    break
            time.sleep(0.005)
        assert seen, "never caught the entry ARCHIVING with converted files in its work folder"
        kernels = _children(server.process.pid)
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait(30)
        caller.join(60)
        for kernel in kernels:
            with contextlib.suppress(psutil.NoSuchProcess):
                kernel.kill()
        psutil.wait_procs(kernels, timeout=30)
        assert list(_data(site).glob(".archiving-*"))  # what the kill left
        assert json.loads(record.read_text(encoding="utf-8"))["status"] == "ARCHIVING"

        again = start(site.catalog.path, log=site.root / "server2.log", pool_size=1)
        try:
            again.wait_ready(timeout=180)
            assert not list(_data(site).glob(".archiving-*"))
            # the entry has a status again, true to the catalog (nothing committed)
            assert site.catalog.scans(PROJECT).query("experiment == 'S1_K1'").empty
            on_disk = json.loads(record.read_text(encoding="utf-8"))
            assert on_disk["status"] == "READY" and "stopped" in on_disk["message"]
            # no converted file that no frame points at
            used = {str(Path(p).parent) for p in site.catalog.frames()["location"]}
            scan_folders = [p for p in _data(site).glob("*/*/*") if p.is_dir()]
            assert all(str(p) in used for p in scan_folders), scan_folders
            status, body = curl("-u", f"{TIER1}:{PASSWORD}", "-d", f"src={uri}",
                                f"{again.url}data/services/archive")  # fmt: skip
            assert status == 200, body
            scans = site.catalog.scans(PROJECT).query("experiment == 'S1_K1'")
            assert sorted(scans["scan"], key=int) == [str(n) for n in range(2, 8)]
        finally:
            again.stop()


def test_sweep_removes_only_what_a_stopped_archive_journaled_and_nobody_uses(
    tmp_path: Path,
) -> None:
    from miqa_nb.ingest.archiving import LOCK_NAME, data_folder, hold, sweep_data

    cat = Catalog(tmp_path / "c.duckdb")
    cat.add_user("ana", superuser=True)
    data = data_folder(cat)
    used, placed, foreign = (
        data / "P" / "E1" / "2",
        data / "P" / "E2" / "2",
        data / "P" / "E3" / "2",
    )
    for folder in (used, placed, foreign):
        folder.mkdir(parents=True)
        (folder / "scan.nii.gz").write_bytes(b"x")
        (folder / "scan.json").write_text("{}")
    csv_file = tmp_path / "rows.csv"
    csv_file.write_text(
        "project_name,experiment_name,scan_name,scan_type,frame_number,file_location\n"
        f"P,E1,2,T1,0,{used / 'scan.nii.gz'}\n",
        encoding="utf-8",
    )
    Catalog(cat.path, data_roots=[data]).import_file(csv_file, by="ana")
    stopped, live = data / ".archiving-stopped", data / ".archiving-live"
    for work in (stopped, live):
        work.mkdir()
        (work / LOCK_NAME).touch()
        journal = {"placed": [str(placed), str(used)], "replaced": []}
        (work / "journal.json").write_text(json.dumps(journal), encoding="utf-8")
    with hold(live / LOCK_NAME):  # another server archiving right now
        removed = sweep_data(cat)
    assert sorted(removed) == sorted([placed, stopped])
    assert not placed.exists() and not placed.parent.exists()
    assert used.is_dir() and foreign.is_dir() and live.is_dir()  # in use, not journaled, live
