"""The import service under stress, on the real signed-in server with real clients.

- Three sessions sent at once from three threads all arrive whole, each as its own
  experiment with its two scans, and nothing is left in ``<catalog>-staging/``.
- A server killed (SIGKILL) in the middle of an upload leaves the catalog as it was and
  the half-received upload never imported; a server started again on the same catalog
  archives the same session whole, and removes the killed upload's staging folder
  (``<catalog>-staging/import-*``, whose lock the killed process held) at start-up.
"""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import socket
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import psutil
import pytest
import requests
from dicom_support import write_series
from nilearn.datasets import load_mni152_template

from miqa_nb.catalog import Catalog
from miqa_nb.serve import Server, start

pytestmark = pytest.mark.slow

ADMIN = "admin"
PASSWORD = "a long enough passphrase"
PROJECT = "Scanner"


def _template() -> nib.Nifti1Image:
    """The MNI152 template at 2 mm, cropped to a block (fast to write and convert)."""
    img = load_mni152_template(resolution=2)
    block = np.asarray(img.dataobj, dtype=np.float64)[20:70, 25:85, 20:60]
    data = np.rint(block / block.max() * 1000).astype(np.int16)
    affine = img.affine.copy()
    affine[:3, 3] = img.affine[:3, :3] @ [20, 25, 20] + img.affine[:3, 3]
    return nib.Nifti1Image(data, affine)


def session_zip(root: Path, template: nib.Nifti1Image, session: str) -> Path:
    """A zip of one session (a T1 and a T2 series) labelled ``session`` in its headers."""
    folder = root / session
    study = f"1.2.826.0.1.3680043.8.498.{abs(hash(session)) % 10**12}"
    comments = f"Project:{PROJECT} Subject:S1 Session:{session}"
    write_series(
        template, folder / "t1", study_uid=study, SeriesNumber=2,
        SeriesDescription="t1_mprage_sag", PatientComments=comments,
    )  # fmt: skip
    write_series(
        template, folder / "t2", study_uid=study, SeriesNumber=3,
        SeriesDescription="t2_tse_tra", PatientComments=comments,
    )  # fmt: skip
    archive = root / f"{session}.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(folder).as_posix())
    return archive


def new_catalog(root: Path) -> Catalog:
    cat = Catalog(root / "c.duckdb")
    cat.add_user(ADMIN, superuser=True)
    cat.set_password(ADMIN, PASSWORD, by=ADMIN)
    cat.create_project(PROJECT, by=ADMIN)
    return cat


def serve(root: Path) -> Server:
    server = start(root / "c.duckdb", log=root / "server.log", pool_size=1)
    server.wait_ready(timeout=180)
    return server


def staging(cat: Catalog) -> Path:
    return cat.path.with_name(cat.path.stem + "-staging")


def data_files(cat: Catalog) -> list[Path]:
    data = cat.path.with_name(cat.path.stem + "-data")
    return sorted(p for p in data.rglob("*") if p.is_file()) if data.exists() else []


def leftovers(cat: Catalog) -> list[str]:
    folder = staging(cat)
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def import_url(server: Server) -> str:
    return f"{server.url}data/services/import?import-handler=DICOM-zip&dest=/archive"


def test_three_sessions_sent_at_once_all_arrive_whole(tmp_path: Path) -> None:
    cat = new_catalog(tmp_path)
    template = _template()
    labels = ["S1_MR1", "S1_MR2", "S1_MR3"]
    archives = {label: session_zip(tmp_path, template, label) for label in labels}
    server = serve(tmp_path)
    try:
        barrier = threading.Barrier(len(labels))
        answers: dict[str, tuple[int, str]] = {}

        def send(label: str) -> None:
            with open(archives[label], "rb") as body:
                barrier.wait()  # the three requests start together
                answer = requests.post(
                    import_url(server),
                    files={"file": (f"{label}.zip", body, "application/zip")},
                    auth=(ADMIN, PASSWORD),
                    timeout=300,
                )
            answers[label] = (answer.status_code, answer.text)

        threads = [threading.Thread(target=send, args=(label,)) for label in labels]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=360)
        assert not any(t.is_alive() for t in threads)
        for label in labels:
            status, text = answers[label]
            assert status == 200, (label, text)
            uri = f"/data/archive/projects/{PROJECT}/subjects/S1/experiments/{label}"
            assert text.strip() == uri
    finally:
        server.stop()
    scans = cat.scans(PROJECT)
    for label in labels:
        mine = scans.loc[scans["experiment"] == label]
        assert sorted(mine["scan"].astype(str)) == ["2", "3"], label
    frames = cat.frames(PROJECT)
    assert len(frames) == 2 * len(labels)
    for location in frames["location"]:
        assert Path(location).is_file(), location
        assert np.asarray(nib.load(location).dataobj).shape == template.shape
    # every converted file is a frame of the catalog or its sidecar: nothing stray
    images = {Path(p).resolve() for p in frames["location"]}
    stray = [p for p in data_files(cat) if p.suffix != ".json" and p.resolve() not in images]
    assert stray == []
    assert leftovers(cat) == []


@dataclass
class Killed:
    """What a server killed in the middle of an upload left, and the server after it."""

    catalog: Catalog
    archive: Path
    scans_before: list[tuple[str, str, str]]
    files_before: list[Path]
    left_after_kill: list[str]
    server: Server


def _children(server: Server) -> list[psutil.Process]:
    try:
        return psutil.Process(server.process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _scans(cat: Catalog) -> list[tuple[str, str, str]]:
    scans = cat.scans(PROJECT)
    return sorted(
        zip(
            scans["experiment"].astype(str),
            scans["scan"].astype(str),
            scans["type"].astype(str),
            strict=True,
        )
    )


@pytest.fixture(scope="module")
def killed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Killed]:
    root = tmp_path_factory.mktemp("killed")
    cat = new_catalog(root)
    template = _template()
    first = session_zip(root, template, "S1_MR1")
    server = serve(root)
    with open(first, "rb") as body:
        answer = requests.post(
            import_url(server), files={"file": body}, auth=(ADMIN, PASSWORD), timeout=300
        )
    assert answer.status_code == 200, answer.text
    scans_before, files_before = _scans(cat), data_files(cat)
    assert len(scans_before) == 2

    archive = session_zip(root, template, "S1_MR2")
    payload = archive.read_bytes()
    half = len(payload) // 2
    token = base64.b64encode(f"{ADMIN}:{PASSWORD}".encode()).decode()
    path = f"{server.base_url}data/services/import?inbody=true&dest=/archive"
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        f"Authorization: Basic {token}\r\nContent-Type: application/zip\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    ).encode()
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    try:
        sock.sendall(head + payload[:half])
        # wait until the server has written the half it received to its staging folder
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            parts = list(staging(cat).glob("import-*/upload-*.part"))
            if parts and parts[0].stat().st_size >= half:
                break
            time.sleep(0.05)
        else:
            pytest.fail(f"the server never wrote the half upload: {leftovers(cat)}")
        kernels = _children(server)
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait(30)
    finally:
        sock.close()
    for kernel in kernels:  # the killed server's kernels: nobody ends them otherwise
        with contextlib.suppress(psutil.NoSuchProcess):
            kernel.kill()
    psutil.wait_procs(kernels, timeout=30)
    left = leftovers(cat)
    again = serve(root)
    try:
        yield Killed(cat, archive, scans_before, files_before, left, again)
    finally:
        again.stop()


def test_a_killed_upload_leaves_the_catalog_as_it_was(killed: Killed) -> None:
    # the kill left the half upload in its staging folder, and nothing else changed
    # one import-* folder holding the half body (and the lock the killed server held)
    folder, part = [n for n in killed.left_after_kill if not n.endswith("/.in-use")]
    assert folder.startswith("import-") and part.startswith(f"{folder}/upload-")
    assert part.endswith(".part")
    assert _scans(killed.catalog) == killed.scans_before
    assert data_files(killed.catalog) == killed.files_before
    # never imported: the restarted server archives that session whole, not as a conflict
    with open(killed.archive, "rb") as body:
        answer = requests.post(
            import_url(killed.server), files={"file": body}, auth=(ADMIN, PASSWORD), timeout=300
        )
    assert answer.status_code == 200, answer.text
    assert _scans(killed.catalog) == sorted(
        [*killed.scans_before, ("S1_MR2", "2", "T1"), ("S1_MR2", "3", "T2")]
    )


def test_a_restarted_server_removes_a_killed_upload_from_staging(killed: Killed) -> None:
    # the restarted server has answered miqa/ready: its start-up is over
    stale = [name for name in killed.left_after_kill if name in leftovers(killed.catalog)]
    assert stale == []
