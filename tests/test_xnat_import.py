"""XNAT's ``/data/services/import`` on the real signed-in server, with real clients.

A session built from real anatomy (the MNI152 template that nilearn ships, written
slice by slice as DICOM by :mod:`dicom_support`) is sent as XNAT's documentation
writes it: curl ``-F file=@session.zip`` and ``--data-binary`` with ``inbody=true``,
``requests``, and pyxnat's ``_exec``. It arrives as reviewable scans whose geometry is
the source's; refusals leave nothing behind.
"""

from __future__ import annotations

import contextlib
import subprocess
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import requests
from dicom_support import write_series
from nilearn.datasets import load_mni152_template

from miqa_nb.catalog import Catalog
from miqa_nb.serve import Server, start

pytestmark = pytest.mark.slow

ADMIN, TIER1, COLLAB = "admin", "tina", "carl"
PASSWORD = "a long enough passphrase"
PROJECT = "Scanner"


@dataclass
class Site:
    server: Server
    catalog: Catalog
    root: Path
    template: nib.Nifti1Image

    @property
    def url(self) -> str:
        return self.server.url


def _template() -> nib.Nifti1Image:
    """The MNI152 template at 2 mm, cropped to a block (fast to write and convert)."""
    img = load_mni152_template(resolution=2)
    block = np.asarray(img.dataobj, dtype=np.float64)[20:70, 25:85, 20:60]
    data = np.rint(block / block.max() * 1000).astype(np.int16)  # as a scanner stores it
    affine = img.affine.copy()
    affine[:3, 3] = img.affine[:3, :3] @ [20, 25, 20] + img.affine[:3, 3]
    return nib.Nifti1Image(data, affine)


def session_zip(site: Site, name: str, *, session: str, project: str = PROJECT) -> Path:
    """A zip of one session: a T1 series and a T2 series of the template."""
    folder = site.root / name
    study = f"1.2.826.0.1.3680043.8.498.{abs(hash(name)) % 10**12}"
    comments = f"Project:{project} Subject:S1 Session:{session}"
    write_series(
        site.template, folder / "t1", study_uid=study, SeriesNumber=2,
        SeriesDescription="t1_mprage_sag", PatientComments=comments,
    )  # fmt: skip
    write_series(
        site.template, folder / "t2", study_uid=study, SeriesNumber=3,
        SeriesDescription="t2_tse_tra", PatientComments=comments,
    )  # fmt: skip
    archive = site.root / f"{name}.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(folder).as_posix())
    return archive


def site_catalog(root: Path) -> Catalog:
    """``root/c.duckdb``: admin (superuser), tina (tier 1) and carl (collaborator) in
    project Scanner, all with a password."""
    cat = Catalog(root / "c.duckdb")
    cat.add_user(ADMIN, superuser=True)
    for user in (TIER1, COLLAB):
        cat.add_user(user, by=ADMIN)
    for user in (ADMIN, TIER1, COLLAB):
        cat.set_password(user, PASSWORD, by=ADMIN)
    cat.create_project(PROJECT, by=ADMIN)
    cat.set_role(PROJECT, TIER1, "tier1", by=ADMIN)
    cat.set_role(PROJECT, COLLAB, "collaborator", by=ADMIN)
    return cat


@contextlib.contextmanager
def served_site(root: Path) -> Iterator[Site]:
    """A served catalog in ``root``: admin (superuser), tina (tier 1) and carl
    (collaborator) in project Scanner, all with a password."""
    cat = site_catalog(root)
    server = start(root / "c.duckdb", log=root / "server.log", pool_size=1)
    try:
        server.wait_ready(timeout=180)
        yield Site(server, cat, root, _template())
    finally:
        server.stop()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with served_site(tmp_path_factory.mktemp("xnat")) as served:
        yield served


def curl(*args: str) -> tuple[int, str]:
    done = subprocess.run(
        ["curl", "-s", "-o", "-", "-w", "\n%{http_code}", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    body, _, status = done.stdout.rpartition("\n")
    return int(status), body


def _data_files(site: Site) -> list[Path]:
    data = site.catalog.path.with_name(site.catalog.path.stem + "-data")
    return sorted(p for p in data.rglob("*") if p.is_file()) if data.exists() else []


def test_curl_multipart_archives_a_session_as_reviewable_scans(site: Site) -> None:
    archive = session_zip(site, "mr1", session="S1_MR1")
    status, body = curl(
        "-u", f"{TIER1}:{PASSWORD}", "-F", f"file=@{archive}",
        f"{site.url}data/services/import?import-handler=DICOM-zip&dest=/archive",
    )  # fmt: skip
    assert status == 200, body
    assert body.strip() == f"/data/archive/projects/{PROJECT}/subjects/S1/experiments/S1_MR1"
    scans = site.catalog.scans(PROJECT).set_index("scan")
    assert list(scans.index) == ["2", "3"]
    assert scans.loc["2", "type"] == "T1" and scans.loc["3", "type"] == "T2"
    assert set(scans["state"].astype(str)) == {"unreviewed"}  # in the review queue at once
    frames = site.catalog.frames(PROJECT)
    converted = nib.load(frames.loc[frames["scan"] == "2", "location"].iloc[0])
    # geometry exact: the converted volume sits where the source does, voxels equal
    source = nib.as_closest_canonical(site.template)
    target = nib.as_closest_canonical(converted)
    assert np.allclose(target.affine, source.affine, atol=0.01)
    assert np.allclose(np.asarray(target.dataobj), np.asarray(source.dataobj), atol=1.0)


def test_curl_inbody_and_a_conflict_then_append(site: Site) -> None:
    archive = session_zip(site, "mr2", session="S1_MR2")
    url = f"{site.url}data/services/import?inbody=true&dest=/archive/projects/{PROJECT}"
    status, body = curl("-u", f"{ADMIN}:{PASSWORD}", "--data-binary", f"@{archive}", url)
    assert status == 200, body
    before = _data_files(site)
    again, text = curl("-u", f"{ADMIN}:{PASSWORD}", "--data-binary", f"@{archive}", url)
    assert again == 409 and "already archived" in text
    assert _data_files(site) == before
    appended, _ = curl(
        "-u", f"{ADMIN}:{PASSWORD}", "--data-binary", f"@{archive}", url + "&overwrite=append"
    )
    assert appended == 200  # nothing new to add: the same two scans
    scans = site.catalog.scans(PROJECT)
    assert sorted(scans.loc[scans["experiment"] == "S1_MR2", "scan"]) == ["2", "3"]


def test_requests_with_a_token_and_pyxnat_exec(site: Site) -> None:
    archive = session_zip(site, "mr3", session="S1_MR3")
    _, token = site.catalog.create_token(TIER1, by=TIER1)
    with open(archive, "rb") as handle:
        answer = requests.post(
            f"{site.url}data/services/import",
            params={"dest": "/archive"},
            files={"file": ("mr3.zip", handle, "application/zip")},
            headers={"Authorization": f"token {token}"},
            timeout=300,
        )
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"].startswith("text/uri-list")
    pyxnat = pytest.importorskip("pyxnat")
    interface = pyxnat.Interface(site.url.rstrip("/"), TIER1, PASSWORD)
    archive4 = session_zip(site, "mr4", session="S1_MR4")
    reply = interface._exec(
        "/data/services/import?inbody=true&dest=/archive",
        "POST",
        archive4.read_bytes(),
        {"Content-Type": "application/zip"},
    )
    text = reply.decode() if isinstance(reply, bytes) else str(reply)
    assert "/experiments/S1_MR4" in text


def test_refusals_leave_nothing_behind(site: Site) -> None:
    archive = session_zip(site, "mr5", session="S1_MR5")
    before, rows = _data_files(site), len(site.catalog.frames(PROJECT))
    url = f"{site.url}data/services/import?dest=/archive"
    status, _ = curl("-F", f"file=@{archive}", url)  # nobody
    assert status == 401
    status, text = curl("-u", f"{COLLAB}:{PASSWORD}", "-F", f"file=@{archive}", url)
    assert status == 403 and "may not" in text
    bad = site.root / "notdicom.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("scan/readme.txt", "not a DICOM file")
    status, text = curl("-u", f"{ADMIN}:{PASSWORD}", "-F", f"file=@{bad}", url)
    assert status == 400 and "readme.txt" in text
    evil = site.root / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../../evil.dcm", b"x")
    status, text = curl("-u", f"{ADMIN}:{PASSWORD}", "-F", f"file=@{evil}", url)
    assert status == 400 and "evil.dcm" in text
    two = site.root / "two-studies.zip"  # two studies sent as one named session
    with zipfile.ZipFile(two, "w") as zf:
        for name in ("mr7", "mr8"):
            with zipfile.ZipFile(session_zip(site, name, session="S1_MR7")) as one:
                for member in one.namelist():
                    zf.writestr(f"{name}/{member}", one.read(member))
    named = f"{url}/projects/{PROJECT}/subjects/S1/experiments/S1_MR7"
    status, text = curl("-u", f"{ADMIN}:{PASSWORD}", "-F", f"file=@{two}", named)
    assert status == 400, text
    assert text.startswith("Upload included files for multiple imaging sessions.")
    assert "2 studies" in text
    unknown = session_zip(site, "mr6", session="S1_MR6", project="Nowhere")
    status, _ = curl("-u", f"{ADMIN}:{PASSWORD}", "-F", f"file=@{unknown}", url)
    assert status == 404
    assert _data_files(site) == before and len(site.catalog.frames(PROJECT)) == rows
    staging = site.catalog.path.with_name(site.catalog.path.stem + "-staging")
    assert not any(staging.iterdir())
    assert not (site.root.parent / "evil.dcm").exists()
