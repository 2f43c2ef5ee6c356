"""XNAT's user cache and ``src`` on the import, on the real server with real clients.

Files are put in the cache as XNAT's clients put them (curl ``-X PUT --data-binary``,
a multipart form as XNAT's web uploader sends it, ``requests``, pyxnat's ``_exec``),
listed, read back, deleted, then imported with ``src``: one archive, several archives
and single DICOM files as one upload, all or nothing; as in XNAT, the default importer
takes the files out of the cache and ``DICOM-zip`` leaves them. A server killed in
the middle of a PUT leaves no cached file, and the next one sweeps the half body.
"""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import socket
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import nibabel as nib
import numpy as np
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

from miqa_nb.serve import start

pytestmark = pytest.mark.slow

CACHE = "data/user/cache/resources"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with served_site(tmp_path_factory.mktemp("cache")) as served:
        yield served


def _folder(site: Site, suffix: str) -> Path:
    return site.catalog.path.with_name(site.catalog.path.stem + suffix)


def _state(site: Site) -> tuple[list[Path], int, list[Path], list[Path]]:
    """What an import may change: data files, frames, prearchive files, staging folders."""

    def files(folder: Path) -> list[Path]:
        return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []

    staging = _folder(site, "-staging")
    return (
        files(_folder(site, "-data")),
        len(site.catalog.frames(PROJECT)),
        files(_folder(site, "-prearchive")),
        sorted(staging.iterdir()) if staging.exists() else [],
    )


def put(site: Site, user: str, resource: str, name: str, path: Path) -> tuple[int, str]:
    return curl(
        "-u", f"{user}:{PASSWORD}", "-X", "PUT", "--data-binary", f"@{path}",
        f"{site.url}{CACHE}/{resource}/files/{name}",
    )  # fmt: skip


def test_put_list_get_delete_with_curl(site: Site) -> None:
    archive = session_zip(site, "c1", session="S1_C1")
    status, body = put(site, TIER1, "up1", "c1.zip", archive)
    assert status == 200, body
    assert body.strip() == "/data/user/cache/resources/up1/files/c1.zip"
    stored = _folder(site, "-cache") / TIER1 / "up1" / "c1.zip"
    assert stored.read_bytes() == archive.read_bytes()
    auth = (TIER1, PASSWORD)
    listed = requests.get(f"{site.url}{CACHE}/up1/files", params={"format": "json"}, auth=auth)
    assert listed.status_code == 200
    rows = listed.json()["ResultSet"]["Result"]
    assert rows == [
        {
            "Name": "c1.zip",
            "Size": str(archive.stat().st_size),
            "URI": "/data/user/cache/resources/up1/files/c1.zip",
            "collection": "up1",
        }
    ]
    csv_text = requests.get(f"{site.url}{CACHE}/up1/files?format=csv", auth=auth).text
    assert csv_text.splitlines() == [
        "Name,Size,URI,collection",
        f"c1.zip,{archive.stat().st_size},/data/user/cache/resources/up1/files/c1.zip,up1",
    ]
    got = requests.get(f"{site.url}{CACHE}/up1/files/c1.zip", auth=auth)
    assert got.status_code == 200 and got.content == archive.read_bytes()
    # a user sees only their own cache: the same address is empty for another
    other = (ADMIN, PASSWORD)
    assert requests.get(f"{site.url}{CACHE}/up1/files/c1.zip", auth=other).status_code == 404
    assert requests.get(f"{site.url}{CACHE}/up1/files", auth=other).status_code == 404
    assert requests.delete(f"{site.url}{CACHE}/up1/files/c1.zip", auth=other).status_code == 404
    assert stored.is_file()
    assert requests.get(f"{site.url}{CACHE}/up1/files").status_code == 401  # nobody
    assert requests.delete(f"{site.url}{CACHE}/up1/files/c1.zip", auth=auth).status_code == 200
    assert not stored.exists()
    assert requests.get(f"{site.url}{CACHE}/up1/files/c1.zip", auth=auth).status_code == 404
    # a whole resource goes at once; "files" alone names nothing to delete
    for name in ("a.zip", "b.zip"):
        assert put(site, TIER1, "up1b", name, archive)[0] == 200
    assert requests.delete(f"{site.url}{CACHE}/up1b/files", auth=auth).status_code == 400
    assert requests.delete(f"{site.url}{CACHE}/up1b", auth=other).status_code == 404
    assert requests.delete(f"{site.url}{CACHE}/up1b", auth=auth).status_code == 200
    assert not (_folder(site, "-cache") / TIER1 / "up1b").exists()


def test_multipart_put_and_post_store_the_file_not_the_form(site: Site) -> None:
    archive = session_zip(site, "c2", session="S1_C2")
    # XNAT's web uploader PUTs a FormData holding the file
    status, body = curl(
        "-u", f"{TIER1}:{PASSWORD}", "-X", "PUT", "-F", f"file=@{archive}",
        f"{site.url}{CACHE}/up2/files/c2.zip",
    )  # fmt: skip
    assert status == 200, body
    assert (_folder(site, "-cache") / TIER1 / "up2" / "c2.zip").read_bytes() == archive.read_bytes()
    with open(archive, "rb") as handle:
        answer = requests.post(
            f"{site.url}{CACHE}/up2/files/again.zip",
            files={"file": ("whatever.zip", handle, "application/zip")},
            auth=(TIER1, PASSWORD),
        )
    assert answer.status_code == 200, answer.text
    assert (_folder(site, "-cache") / TIER1 / "up2" / "again.zip").read_bytes() == (
        archive.read_bytes()
    )


@pytest.mark.parametrize(
    ("resource", "name", "problem"),
    [
        ("up3", "%2E%2E", "'.' or '..'"),
        ("%2E%2E", "x.zip", "'.' or '..'"),
        ("up3", "a%2Fb.zip", "'/'"),
        ("up3", ".hidden", "hidden"),
        (".hidden", "x.zip", "hidden"),
        ("up3", "sub/x.zip", "'/'"),
    ],
)
def test_names_that_would_escape_are_refused(
    site: Site, resource: str, name: str, problem: str
) -> None:
    before = sorted(site.root.rglob("*"))
    answer = requests.put(
        f"{site.url}{CACHE}/{resource}/files/{name}", data=b"x" * 10, auth=(TIER1, PASSWORD)
    )
    assert answer.status_code == 400 and problem in answer.text, answer.text
    assert sorted(site.root.rglob("*")) == before


def test_src_imports_a_cached_archive(site: Site) -> None:
    archive = session_zip(site, "c4", session="S1_C4")
    assert put(site, TIER1, "up4", "c4.zip", archive)[0] == 200
    stored = _folder(site, "-cache") / TIER1 / "up4" / "c4.zip"
    status, body = curl(
        "-u", f"{TIER1}:{PASSWORD}", "-X", "POST",
        f"{site.url}data/services/import?src=/data/user/cache/resources/up4/files/c4.zip"
        "&dest=/archive&import-handler=DICOM-zip",
    )  # fmt: skip
    assert status == 200, body
    assert body.strip() == f"/data/archive/projects/{PROJECT}/subjects/S1/experiments/S1_C4"
    scans = site.catalog.scans(PROJECT)
    assert sorted(scans.loc[scans["experiment"] == "S1_C4", "scan"]) == ["2", "3"]
    assert stored.is_file()  # XNAT's DICOM-zip importer only reads the cached file
    assert not any(_folder(site, "-staging").iterdir())
    # XNAT's default importer moves the file out of the cache: once imported, it is gone
    status, body = curl(
        "-u", f"{TIER1}:{PASSWORD}", "-X", "POST",
        f"{site.url}data/services/import?src=/user/cache/resources/up4/files/c4.zip"
        "&dest=/archive&overwrite=append",
    )  # fmt: skip
    assert status == 200, body
    assert not stored.exists() and not stored.parent.exists()


def test_src_as_fields_of_a_multipart_form(site: Site) -> None:
    # as XNAT's own remote uploads send it: a form of fields, no file
    src = _cache_put(site, "up9", "c9.zip", session_zip(site, "c9", session="S1_C9"))
    status, body = curl(
        "-u", f"{TIER1}:{PASSWORD}", "-F", f"src={src}", "-F", "dest=/archive",
        f"{site.url}data/services/import",
    )  # fmt: skip
    assert status == 200, body
    assert body.strip() == f"/data/archive/projects/{PROJECT}/subjects/S1/experiments/S1_C9"
    status, body = curl(
        "-u", f"{TIER1}:{PASSWORD}", "-F", "dest=/archive", f"{site.url}data/services/import"
    )
    assert status == 400 and "holds no file" in body


def _cache_put(site: Site, resource: str, name: str, path: Path) -> str:
    assert put(site, TIER1, resource, name, path)[0] == 200
    return f"/data/user/cache/resources/{resource}/files/{name}"


def test_several_src_are_one_upload(site: Site) -> None:
    # two archives, one comma separated argument and one repeated
    for name in ("c5", "c6"):
        archive = session_zip(site, name, session=f"S1_{name.upper()}")
        assert put(site, TIER1, "up5", f"{name}.zip", archive)[0] == 200
    answer = requests.post(
        f"{site.url}data/services/import",
        params=[
            (
                "src",
                "/user/cache/resources/up5/files/c5.zip,/user/cache/resources/up5/files/c6.zip",
            ),
            ("dest", "/prearchive/projects/" + PROJECT),
        ],
        auth=(TIER1, PASSWORD),
    )
    assert answer.status_code == 200, answer.text
    uris = answer.text.split()
    assert len(uris) == 2 and all(
        u.startswith(f"/data/prearchive/projects/{PROJECT}/") for u in uris
    )
    assert sorted(u.rsplit("/", 1)[1] for u in uris) == ["S1_C5", "S1_C6"]
    # single DICOM files of one series, each a cached file: one scan of all the slices
    block = nib.Nifti1Image(
        np.asarray(site.template.dataobj)[:, :, 10:18], site.template.affine.copy()
    )
    slices = write_series(
        block, site.root / "single", SeriesNumber=7, SeriesDescription="t1_single",
        PatientComments=f"Project:{PROJECT} Subject:S2 Session:S2_SINGLE",
    )  # fmt: skip
    for path in slices:
        assert put(site, TIER1, "up6", path.name, path)[0] == 200
    src = ",".join(f"/data/user/cache/resources/up6/files/{p.name}" for p in slices)
    status, body = curl(
        "-u",
        f"{TIER1}:{PASSWORD}",
        "-X",
        "POST",
        "--data-urlencode",
        f"src={src}",
        "--data-urlencode",
        "dest=/archive",
        f"{site.url}data/services/import",
    )  # fmt: skip  (the parameters as a form, as XNAT's web uploader sends them)
    assert status == 200, body
    assert body.strip() == f"/data/archive/projects/{PROJECT}/subjects/S2/experiments/S2_SINGLE"
    frames = site.catalog.frames(PROJECT)
    converted = nib.load(frames.loc[frames["experiment"] == "S2_SINGLE", "location"].iloc[0])
    assert converted.shape[:3] == block.shape
    assert not (_folder(site, "-cache") / TIER1 / "up6").exists()  # imported: taken out
    source, target = nib.as_closest_canonical(block), nib.as_closest_canonical(converted)
    assert np.allclose(target.affine, source.affine, atol=0.01)


def test_src_refusals_leave_nothing_behind(site: Site) -> None:
    good = session_zip(site, "c7", session="S1_C7")
    bad = site.root / "notdicom.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("scan/readme.txt", "not a DICOM file")
    for user in (TIER1, COLLAB):
        assert put(site, user, "up7", "good.zip", good)[0] == 200
    assert put(site, TIER1, "up7", "bad.zip", bad)[0] == 200
    before = _state(site)
    url = f"{site.url}data/services/import?dest=/archive&src="
    auth = ("-u", f"{TIER1}:{PASSWORD}", "-X", "POST")
    good_src = "/user/cache/resources/up7/files/good.zip"
    bad_src = "/user/cache/resources/up7/files/bad.zip"
    # one good and one bad archive: all or nothing
    status, text = curl(*auth, f"{url}{good_src},{bad_src}")
    assert status == 400 and "readme.txt" in text, text
    for src, expected, says in [
        ("/prearchive/projects/Scanner/x/y", 400, "src uri is invalid"),  # not the cache
        ("/user/cache/resources/up7/files/..", 400, "src uri is invalid"),
        ("/user/cache/resources/up7/files/missing.zip", 404, "Unknown src file"),
        ("/user/cache/resources/nothere/files/good.zip", 404, "Unknown src file"),
    ]:
        status, text = curl(*auth, url + src)
        assert status == expected and text.startswith(says), (src, text)
    # another user's cache: the address names no user, so it is your own, where the
    # file is not (404, saying nothing of anyone else's files)
    status, _ = curl("-u", f"{ADMIN}:{PASSWORD}", "-X", "POST", f"{url}{good_src}")
    assert status == 404
    # a collaborator may not import, even their own cached file
    status, text = curl("-u", f"{COLLAB}:{PASSWORD}", "-X", "POST", f"{url}{good_src}")
    assert status == 403 and "may not" in text
    # a form of parameters is small: a long one is refused, not kept in memory
    long_form = requests.post(
        f"{site.url}data/services/import",
        data={"src": good_src, "dest": "/archive", "pad": "x" * 200_000},
        auth=(TIER1, PASSWORD),
    )
    assert long_form.status_code == 400 and "form is longer" in long_form.text
    assert _state(site) == before
    assert (_folder(site, "-cache") / TIER1 / "up7" / "good.zip").is_file()


def test_pyxnat_puts_in_the_cache_and_imports_with_src(site: Site) -> None:
    pyxnat = pytest.importorskip("pyxnat")
    interface = pyxnat.Interface(site.url.rstrip("/"), TIER1, PASSWORD)
    archive = session_zip(site, "c8", session="S1_C8")
    interface._exec(
        "/data/user/cache/resources/up8/files/c8.zip",
        "PUT",
        archive.read_bytes(),
        {"Content-Type": "application/zip"},
    )
    reply = interface._exec(
        "/data/services/import?src=/user/cache/resources/up8/files/c8.zip&dest=/archive", "POST"
    )
    text = reply.decode() if isinstance(reply, bytes) else str(reply)
    assert text.strip() == f"/data/archive/projects/{PROJECT}/subjects/S1/experiments/S1_C8"


def test_a_server_killed_mid_put_leaves_no_cached_file(tmp_path: Path) -> None:
    """A PUT cut by kill -9: no file of that name in the cache, and the half body is
    swept from staging by the next server's start-up."""
    with served_site(tmp_path) as killed_site:
        archive = session_zip(killed_site, "k1", session="S1_K1")
        payload = archive.read_bytes()
        half = len(payload) // 2
        server = killed_site.server
        token = base64.b64encode(f"{TIER1}:{PASSWORD}".encode()).decode()
        head = (
            f"PUT {server.base_url}{CACHE}/upk/files/k1.zip HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{server.port}\r\nAuthorization: Basic {token}\r\n"
            f"Content-Type: application/zip\r\nContent-Length: {len(payload)}\r\n\r\n"
        ).encode()
        staging = _folder(killed_site, "-staging")
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            sock.sendall(head + payload[:half])
            deadline = time.monotonic() + 60
            while not any(p.stat().st_size >= half for p in staging.glob("import-*/upload-*")):
                assert time.monotonic() < deadline, "the server never wrote the half body"
                time.sleep(0.05)
            kernels = psutil.Process(server.process.pid).children(recursive=True)
            os.kill(server.process.pid, signal.SIGKILL)
            server.process.wait(30)
        for kernel in kernels:  # nobody ends a killed server's kernels otherwise
            with contextlib.suppress(psutil.NoSuchProcess):
                kernel.kill()
        psutil.wait_procs(kernels, timeout=30)
    cached = _folder(killed_site, "-cache") / TIER1 / "upk"
    assert not (cached / "k1.zip").exists()
    assert [p.name for p in staging.iterdir()] != []  # the half body, until a restart
    again = start(tmp_path / "c.duckdb", log=tmp_path / "server2.log", pool_size=1)
    try:
        again.wait_ready(timeout=180)
        assert list(staging.iterdir()) == []
        answer = requests.get(f"{again.url}{CACHE}/upk/files", auth=(TIER1, PASSWORD), timeout=60)
        assert answer.status_code == 404  # the resource was never made
    finally:
        again.stop()
