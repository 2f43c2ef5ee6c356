"""``http-session-listener`` and ``GET /data/status/ID`` on the real server.

With ``src`` and a listener the import answers at once (``Submitted for
prearchival``/``archival``) and runs in the background; a poller reads XNAT's
messages until ``COMPLETED`` or ``FAILED``. With a body it answers as it always did,
and the listener's record still ends ``COMPLETED``. Records are each user's own.
"""

from __future__ import annotations

import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from test_xnat_import import ADMIN, PASSWORD, PROJECT, TIER1, Site, served_site, session_zip

from miqa_nb.core.errors import NotFound
from miqa_nb.server.status import StatusBoard

TINA = (TIER1, PASSWORD)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with served_site(tmp_path_factory.mktemp("status")) as served:
        yield served


def _cache(site: Site, resource: str, name: str, path: Path) -> str:
    url = f"{site.url}data/user/cache/resources/{resource}/files/{name}"
    answer = requests.put(url, data=path.read_bytes(), auth=TINA, timeout=60)
    assert answer.status_code == 200, answer.text
    return f"/user/cache/resources/{resource}/files/{name}"


def poll(site: Site, listener: str, timeout: float = 300) -> list[dict[str, str]]:
    """The listener's messages once the import has ended (a person's pace: every 0.2 s)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = requests.get(
            f"{site.url}data/status/{listener}", params={"format": "json"}, auth=TINA, timeout=30
        )
        assert answer.status_code == 200, answer.text
        msgs = answer.json()["msgs"]
        assert len(msgs) == 1
        if msgs[0] and msgs[0][-1]["status"] in ("COMPLETED", "FAILED"):
            return list(msgs[0])
        assert all(m["status"] == "PROCESSING" for m in msgs[0])
        time.sleep(0.2)
    raise AssertionError(f"the import of {listener} did not end within {timeout} s")


@pytest.mark.slow
def test_src_with_a_listener_answers_at_once_then_completes(site: Site) -> None:
    src = _cache(site, "st1", "s1.zip", session_zip(site, "s1", session="S1_ST1"))
    answer = requests.post(
        f"{site.url}data/services/import",
        params={
            "src": src,
            "dest": f"/prearchive/projects/{PROJECT}",
            "http-session-listener": "up-1",
        },
        auth=TINA,
        timeout=60,
    )
    assert answer.status_code == 200 and answer.text == "Submitted for prearchival"
    msgs = poll(site, "up-1")
    texts = [m["msg"] for m in msgs]
    assert texts[:3] == ["Determining destination", "Beginning import", "Populating session"]
    assert msgs[-1]["status"] == "COMPLETED"
    assert texts[-1].startswith(f"Prearchive:/data/prearchive/projects/{PROJECT}/")
    assert texts[-1].endswith("/S1_ST1")
    listed = requests.get(f"{site.url}data/prearchive/projects/{PROJECT}", auth=TINA).json()
    urls = {"/data" + row["url"] for row in listed["ResultSet"]["Result"]}
    assert texts[-1].removeprefix("Prearchive:") in urls
    # records are per user: the same ID is unknown to another, as is an unused ID
    other = requests.get(f"{site.url}data/status/up-1?format=json", auth=(ADMIN, PASSWORD))
    assert other.status_code == 404
    assert requests.get(f"{site.url}data/status/never?format=json", auth=TINA).status_code == 404
    assert requests.get(f"{site.url}data/status/up-1?format=json").status_code == 401
    staging = site.catalog.path.with_name(site.catalog.path.stem + "-staging")
    assert not any(staging.iterdir())


@pytest.mark.slow
def test_the_answer_comes_before_the_import_ends(site: Site) -> None:
    src = _cache(site, "st2", "s2.zip", session_zip(site, "s2", session="S1_ST2"))
    answer = requests.post(
        f"{site.url}data/services/import",
        params={"src": src, "dest": "/archive", "http-session-listener": "up-2"},
        auth=TINA,
        timeout=60,
    )
    assert answer.status_code == 200 and answer.text == "Submitted for archival"
    first = requests.get(f"{site.url}data/status/up-2?format=json", auth=TINA).json()
    assert first["msgs"][0][0] == {"msg": "Determining destination", "status": "PROCESSING"}
    assert first["msgs"][0][-1]["status"] == "PROCESSING"  # converting takes seconds
    msgs = poll(site, "up-2")
    assert [m["msg"] for m in msgs][-2:] == [
        "Archiving",
        f"Archive:/data/archive/projects/{PROJECT}/subjects/S1/experiments/S1_ST2",
    ]
    scans = site.catalog.scans(PROJECT)
    assert sorted(scans.loc[scans["experiment"] == "S1_ST2", "scan"]) == ["2", "3"]


@pytest.mark.slow
def test_a_failed_background_import_says_why_and_leaves_nothing(site: Site) -> None:
    bad = site.root / "notdicom.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("scan/readme.txt", "not a DICOM file")
    src = _cache(site, "st3", "bad.zip", bad)
    frames = len(site.catalog.frames(PROJECT))
    answer = requests.post(
        f"{site.url}data/services/import",
        params={"src": src, "dest": "/archive", "http-session-listener": "up-3"},
        auth=TINA,
    )
    assert answer.status_code == 200 and answer.text == "Submitted for archival"
    msgs = poll(site, "up-3")
    assert msgs[-1]["status"] == "FAILED"
    assert "Upload did not include parsable files" in msgs[-1]["msg"]
    assert "readme.txt" in msgs[-1]["msg"]
    assert len(site.catalog.frames(PROJECT)) == frames
    staging = site.catalog.path.with_name(site.catalog.path.stem + "-staging")
    assert not any(staging.iterdir())


@pytest.mark.slow
def test_a_refusal_answered_at_once_is_recorded_failed(site: Site) -> None:
    answer = requests.post(
        f"{site.url}data/services/import",
        params={
            "src": "/user/cache/resources/st5/files/missing.zip",
            "dest": "/archive",
            "http-session-listener": "up-5",
        },
        auth=TINA,
    )
    assert answer.status_code == 404 and "missing.zip" in answer.text
    msgs = poll(site, "up-5", timeout=5)
    assert msgs[-1]["status"] == "FAILED" and "missing.zip" in msgs[-1]["msg"]


@pytest.mark.slow
def test_a_body_is_imported_at_once_and_its_listener_completes(site: Site) -> None:
    archive = session_zip(site, "s4", session="S1_ST4")
    with open(archive, "rb") as handle:
        answer = requests.post(
            f"{site.url}data/services/import",
            params={"dest": "/archive", "http-session-listener": "up-4"},
            files={"file": ("s4.zip", handle, "application/zip")},
            auth=TINA,
        )
    uri = f"/data/archive/projects/{PROJECT}/subjects/S1/experiments/S1_ST4"
    assert answer.status_code == 200 and answer.text.strip() == uri
    assert answer.headers["Content-Type"].startswith("text/uri-list")
    msgs = poll(site, "up-4", timeout=5)  # already ended when the answer came
    assert msgs[-1] == {"msg": f"Archive:{uri}", "status": "COMPLETED"}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_records_are_kept_an_hour_after_they_end_and_bounded_per_user() -> None:
    clock = Clock()
    board = StatusBoard(keep_seconds=3600, max_per_user=2, clock=clock)
    board.start("tina", "a")
    board.add("tina", "a", "PROCESSING", "Beginning import")
    clock.now = 10_000.0  # a running import is kept however long it runs
    assert board.messages("tina", "a") == [("PROCESSING", "Beginning import")]
    board.add("tina", "a", "COMPLETED", "Archive:/data/x")
    clock.now += 3599
    assert board.messages("tina", "a")[-1] == ("COMPLETED", "Archive:/data/x")
    with pytest.raises(NotFound):
        board.messages("carl", "a")
    clock.now += 2
    with pytest.raises(NotFound, match="more than an hour ago"):
        board.messages("tina", "a")
    for listener in ("b", "c", "d"):  # at most two: the oldest ended one goes first
        board.start("tina", listener)
        if listener == "b":
            board.add("tina", "b", "FAILED", "no")
    assert board.messages("tina", "c") == [] and board.messages("tina", "d") == []
    with pytest.raises(NotFound):
        board.messages("tina", "b")
