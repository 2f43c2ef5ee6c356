"""XNAT's ``import-handler=gradual-DICOM`` and ``dest=/prearchive/projects/P/TS[/SESSION]``
on the real signed-in server, with curl, requests and pyxnat.

A session of real anatomy (the MNI152 template written slice by slice as DICOM by
:mod:`dicom_support`) is sent one file a request, in order and all at once: every
answer names the one prearchive entry of the study, RECEIVING while files arrive;
once quiet (``MIQA_NB_RECEIVING_QUIET``, short here) it is built, and archived with
its scans when its headers say ``AA:true``. An upload sent into an existing entry is
merged into it; one of another study is refused. A RECEIVING entry left by a stopped
server is built by the next one.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from dicom_support import write_series
from test_xnat_import import (
    ADMIN,
    PASSWORD,
    PROJECT,
    TIER1,
    Site,
    curl,
    served_site,
    session_zip,
)

from miqa_nb.catalog import Catalog
from miqa_nb.ingest.gradual import RECEIVING, receive, receiving_lock
from miqa_nb.serve import start

pytestmark = pytest.mark.slow

#: Seconds of quiet before an entry is built, for this module's server.
QUIET = 4.0
GRADUAL = "data/services/import?import-handler=gradual-DICOM"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MIQA_NB_RECEIVING_QUIET", str(QUIET))
        with served_site(tmp_path_factory.mktemp("gradual")) as served:
            yield served


def series_files(site: Site, name: str, comments: str) -> tuple[list[Path], list[Path], str]:
    """A study of two series (T1 as scan 2, T2 as scan 3), one file a slice."""
    study = f"1.2.826.0.1.3680043.8.498.{abs(hash(name)) % 10**12}"
    folder = site.root / name
    t1 = write_series(
        site.template, folder / "t1", study_uid=study, SeriesNumber=2,
        SeriesDescription="t1_mprage_sag", PatientComments=comments,
    )  # fmt: skip
    t2 = write_series(
        site.template, folder / "t2", study_uid=study, SeriesNumber=3,
        SeriesDescription="t2_tse_tra", PatientComments=comments,
    )  # fmt: skip
    return t1, t2, study


def _prearchive(site: Site) -> Path:
    return site.catalog.path.with_name(site.catalog.path.stem + "-prearchive")


def records(site: Site, label: str) -> list[dict[str, Any]]:
    """The prearchive records of the entries of ``label``."""
    found = []
    for path in sorted(_prearchive(site).glob("*/*/*/prearchive.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        if record["label"] == label:
            found.append({**record, "path": path.parent})
    return found


def wait_for(condition: Callable[[], Any], timeout: float = 240.0) -> Any:
    """Poll ``condition`` until it is truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.25)
    raise AssertionError(f"not done within {timeout} s")


def experiment_scans(site: Site, label: str) -> list[str]:
    scans = site.catalog.scans(PROJECT)
    return sorted(scans.loc[scans["experiment"] == label, "scan"].astype(str))


def test_a_series_sent_file_by_file_with_curl_is_archived_once_quiet(site: Site) -> None:
    t1, t2, study = series_files(site, "g1", f"Project:{PROJECT} Subject:S1 Session:G1 AA:true")
    answers = set()
    for path in [*t1, *t2]:
        status, body = curl(
            "-u", f"{TIER1}:{PASSWORD}", "-F", f"file=@{path}", f"{site.url}{GRADUAL}"
        )  # fmt: skip
        assert status == 200, body
        answers.add(body.strip())
    (uri,) = answers  # every file went to the one entry of the study
    assert uri.startswith(f"/data/prearchive/projects/{PROJECT}/") and uri.endswith("/G1")
    (record,) = records(site, "G1")
    # still receiving right after the last file (built only once quiet)
    assert record["status"] == RECEIVING and record["study_uid"] == study
    assert experiment_scans(site, "G1") == []
    wait_for(lambda: experiment_scans(site, "G1") == ["2", "3"])
    assert records(site, "G1") == []  # archived: the entry is gone
    frames = site.catalog.frames(PROJECT)
    scans = site.catalog.scans(PROJECT).set_index("scan")
    assert scans.loc["2", "type"] == "T1" and scans.loc["3", "type"] == "T2"
    located = frames.loc[frames["experiment"] == "G1", "location"]
    assert len(located) == 2 and all(Path(p).is_file() for p in located)


def test_concurrent_files_land_in_one_entry_built_ready(site: Site) -> None:
    t1, t2, study = series_files(site, "g2", f"Project:{PROJECT} Subject:S2 Session:G2")
    _, token = site.catalog.create_token(TIER1, by=TIER1)

    def send(path: Path) -> str:
        answer = requests.post(
            f"{site.url}{GRADUAL}",
            params={"inbody": "true", "dest": f"/prearchive/projects/{PROJECT}"},
            data=path.read_bytes(),
            headers={"Authorization": f"token {token}", "Content-Type": "application/dicom"},
            timeout=120,
        )
        assert answer.status_code == 200, answer.text
        assert answer.headers["Content-Type"].startswith("text/uri-list")
        return answer.text.strip()

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = set(pool.map(send, [*t1[1:], *t2]))
    pyxnat = pytest.importorskip("pyxnat")
    interface = pyxnat.Interface(site.url.rstrip("/"), TIER1, PASSWORD)
    reply = interface._exec(
        f"/{GRADUAL}&inbody=true&dest=/prearchive/projects/{PROJECT}",
        "POST",
        t1[0].read_bytes(),
        {"Content-Type": "application/dicom"},
    )
    answers.add((reply.decode() if isinstance(reply, bytes) else str(reply)).strip())
    assert len(answers) == 1, answers
    wait_for(lambda: records(site, "G2") and records(site, "G2")[0]["status"] != RECEIVING)
    (record,) = records(site, "G2")
    assert record["status"] == "READY" and record["study_uid"] == study
    assert [(s["id"], s["files"]) for s in record["scans"]] == [("2", len(t1)), ("3", len(t2))]
    for scan in record["scans"]:
        files = list((record["path"] / "SCANS" / scan["folder"] / "DICOM").iterdir())
        assert len(files) == scan["files"]
    assert experiment_scans(site, "G2") == []  # staged, not archived (no AA:true)
    # the built entry is archived as the others are
    uri = next(iter(answers))
    status, body = curl(
        "-u", f"{TIER1}:{PASSWORD}", "-X", "POST",
        f"{site.url}data/services/archive?src={uri.removeprefix('/data')}",
    )  # fmt: skip
    assert status == 200, body
    assert experiment_scans(site, "G2") == ["2", "3"]


def test_files_received_by_many_threads_at_once_share_one_entry(site: Site) -> None:
    """Without the server's pacing: 16 threads of this process receive the files of
    one study at the same moment, as the request threads of a busy server do."""
    t1, t2, study = series_files(site, "g6", f"Project:{PROJECT} Subject:S6 Session:G6")
    catalog = Catalog(site.catalog.path)
    folders = []
    for n, path in enumerate([*t1, *t2]):
        one = site.root / f"g6-one-{n}"
        one.mkdir()
        (one / path.name).write_bytes(path.read_bytes())
        folders.append(one)
    start_together = threading.Barrier(16)

    def send(folder: Path) -> str:
        if folder in folders[:16]:
            start_together.wait(timeout=60)
        (entry,) = receive(catalog, folder, by=TIER1, options={"where": "headers"})
        return entry.url

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch between any two steps: races show
    try:
        with ThreadPoolExecutor(max_workers=16) as pool:
            urls = set(pool.map(send, folders))
    finally:
        sys.setswitchinterval(interval)
    assert len(urls) == 1, urls
    (record,) = records(site, "G6")
    assert record["study_uid"] == study
    held = sorted(p.name for p in (record["path"] / "SCANS").rglob("*.dcm"))
    assert len(held) == len(t1) + len(t2)


def test_a_file_waits_while_another_process_holds_the_entries_lock(site: Site) -> None:
    t1, _, _ = series_files(site, "g7", f"Project:{PROJECT} Subject:S7 Session:G7")
    answers: list[tuple[int, str]] = []
    with receiving_lock(Catalog(site.catalog.path)):
        sender = threading.Thread(
            target=lambda: answers.append(
                curl("-u", f"{TIER1}:{PASSWORD}", "-F", f"file=@{t1[0]}", f"{site.url}{GRADUAL}")
            )
        )
        sender.start()
        sender.join(timeout=3.0)
        assert sender.is_alive() and answers == []  # the server waits for the lock
        assert records(site, "G7") == []
    sender.join(timeout=120)
    ((status, body),) = answers
    assert status == 200 and body.strip().endswith("/G7"), body
    assert len(records(site, "G7")) == 1


def test_an_upload_merges_into_an_existing_entry(site: Site) -> None:
    t1, t2, _ = series_files(site, "g3", f"Project:{PROJECT} Subject:S3 Session:G3")
    first = site.root / "g3-t1.zip"
    with zipfile.ZipFile(first, "w") as zf:
        for path in t1:
            zf.write(path, f"t1/{path.name}")
    second = site.root / "g3-t2.zip"
    with zipfile.ZipFile(second, "w") as zf:
        for path in t2:
            zf.write(path, f"t2/{path.name}")
    status, body = curl(
        "-u", f"{TIER1}:{PASSWORD}", "-F", f"file=@{first}",
        f"{site.url}data/services/import?dest=/prearchive/projects/{PROJECT}",
    )  # fmt: skip
    assert status == 200, body
    uri = body.strip()
    (record,) = records(site, "G3")
    assert [s["id"] for s in record["scans"]] == ["2"]
    into = uri.removeprefix("/data")
    # another study into that entry: refused, the entry unchanged
    other = session_zip(site, "g3-other", session="G3_OTHER")
    status, text = curl(
        "-u", f"{TIER1}:{PASSWORD}", "-F", f"file=@{other}",
        f"{site.url}data/services/import?import-handler=DICOM-zip&dest={into}",
    )  # fmt: skip
    assert status == 409 and "holds study" in text, text
    assert [s["id"] for s in records(site, "G3")[0]["scans"]] == ["2"]
    # the same study's second series, named by the timestamp alone: merged and rebuilt
    status, body = curl(
        "-u", f"{TIER1}:{PASSWORD}", "-F", f"file=@{second}",
        f"{site.url}data/services/import?dest={into.rsplit('/', 1)[0]}",
    )  # fmt: skip
    assert status == 200, body
    assert body.strip() == uri
    (record,) = records(site, "G3")
    assert record["status"] == "READY"
    assert [(s["id"], s["files"]) for s in record["scans"]] == [("2", len(t1)), ("3", len(t2))]
    status, text = curl(
        "-u", f"{TIER1}:{PASSWORD}", "-F", f"file=@{second}",
        f"{site.url}data/services/import?dest=/prearchive/projects/{PROJECT}/20000101_000000000",
    )  # fmt: skip
    assert status == 404, text


def test_an_unknown_handler_is_refused_naming_the_accepted_ones(site: Site) -> None:
    archive = session_zip(site, "g4", session="G4")
    status, text = curl(
        "-u", f"{ADMIN}:{PASSWORD}", "-F", f"file=@{archive}",
        f"{site.url}data/services/import?import-handler=DICOM-tar&dest=/archive",
    )  # fmt: skip
    assert status == 400
    assert "DICOM-tar" in text and "gradual-DICOM" in text and "XAR" in text
    assert experiment_scans(site, "G4") == []
    # a file that is not DICOM, sent file by file: named, and no entry is made
    before = sorted(_prearchive(site).glob("*/*/*/prearchive.json"))
    note = site.root / "notes.txt"
    note.write_text("not a DICOM file")
    status, text = curl("-u", f"{ADMIN}:{PASSWORD}", "-F", f"file=@{note}", f"{site.url}{GRADUAL}")
    assert status == 400 and "notes.txt" in text, text
    assert sorted(_prearchive(site).glob("*/*/*/prearchive.json")) == before


def test_a_receiving_entry_can_be_deleted_but_not_archived_or_moved(site: Site) -> None:
    t1, _, _ = series_files(site, "g7", f"Project:{PROJECT} Subject:S7 Session:G7")
    for path in t1[:3]:
        status, body = curl(
            "-u", f"{TIER1}:{PASSWORD}", "-F", f"file=@{path}", f"{site.url}{GRADUAL}"
        )  # fmt: skip
        assert status == 200, body
    src = body.strip().removeprefix("/data")
    auth = (TIER1, PASSWORD)
    with receiving_lock(Catalog(site.catalog.path)):  # no build meanwhile
        found = records(site, "G7")
        assert [r["status"] for r in found] == [RECEIVING], found
        archived = requests.post(
            f"{site.url}data/services/archive", data={"src": src}, auth=auth, timeout=60
        )
        assert archived.status_code == 409, archived.text
        assert "RECEIVING" in archived.text and "wait until it is READY" in archived.text
        moved = requests.post(
            f"{site.url}data/services/prearchive/move",
            data={"src": src, "newProject": PROJECT},
            auth=auth,
            timeout=60,
        )
        assert moved.status_code == 409, moved.text
        (record,) = records(site, "G7")
        assert record["status"] == RECEIVING and experiment_scans(site, "G7") == []
        deleted = requests.post(
            f"{site.url}data/services/prearchive/delete", data={"src": src}, auth=auth, timeout=60
        )
        assert deleted.status_code == 200, deleted.text
    assert records(site, "G7") == []


def test_a_receiving_entry_left_by_a_stopped_server_is_built_by_the_next(site: Site) -> None:
    t1, _, _ = series_files(site, "g5", f"Project:{PROJECT} Subject:S5 Session:G5 AA:true")
    site.server.stop()
    catalog = Catalog(site.catalog.path)
    for n, path in enumerate(t1[:5]):  # as a server would have received them
        one = site.root / f"g5-one-{n}"
        one.mkdir()
        (one / path.name).write_bytes(path.read_bytes())
        receive(catalog, one, by=TIER1, options={"where": "headers"})
    (record,) = records(site, "G5")
    assert record["status"] == RECEIVING
    site.server = start(site.catalog.path, log=site.root / "server2.log", pool_size=1)
    try:
        site.server.wait_ready(timeout=180)
        wait_for(lambda: experiment_scans(site, "G5") == ["2"])
        assert records(site, "G5") == []
    finally:
        site.server.stop()
