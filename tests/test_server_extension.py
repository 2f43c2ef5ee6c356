"""XNAT's import service and prearchive in a plain Jupyter Server (the extension).

A real ``jupyter server`` process (its own port, config and runtime folders) with the
``miqa_nb.server`` extension enabled, in the two ways a lab signs in:

- the catalog's sign-in (``c.ServerApp.identity_provider_class`` set to
  ``CatalogIdentityProvider``), under a base URL: curl ``-u user:password``, API
  tokens, ``JSESSIONID`` and pyxnat's ``PreArchive`` work as on ``miqa-nb serve``;
- Jupyter's own token (a personal server): a request the token lets in acts as the
  catalog user ``MIQA_NB_USER`` names, and with none named XNAT's calls answer 403
  naming the fix.

Sessions of real anatomy (``test_xnat_import.session_zip``) arrive as scans in the
catalog; unauthenticated requests and users without rights change nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import pytest
import requests
from test_xnat_import import (
    ADMIN,
    COLLAB,
    PASSWORD,
    PROJECT,
    TIER1,
    _template,
    curl,
    session_zip,
    site_catalog,
)

from miqa_nb.catalog import Catalog
from miqa_nb.server.xnat import LOCK_NAME

pytestmark = pytest.mark.slow

TOKEN = "a-token-for-the-tests-only"
CATALOG_SIGNIN = "miqa_nb.server.identity.CatalogIdentityProvider"
#: What a pip install puts in ``etc/jupyter/jupyter_server_config.d/``.
SHIPPED_CONFIG = Path(__file__).parents[1] / "jupyter-config" / "miqa_nb.server.json"


@dataclass
class Lab:
    """A running Jupyter Server with the extension, over its own catalog."""

    url: str
    catalog: Catalog
    root: Path
    template: nib.Nifti1Image
    log: Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def jupyter_server(
    root: Path, *args: str, owner: str | None = None, base_url: str = "/", by_command: bool = False
) -> Iterator[Lab]:
    """``jupyter server`` with the extension enabled on the command line (or, with
    ``by_command``, by ``jupyter server extension enable`` over the config file the
    package installs), over a new catalog in ``root``; ``owner`` is ``MIQA_NB_USER``
    (unset when None)."""
    cat = site_catalog(root)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("MIQA_NB_USER", "JUPYTERHUB_USER")}
    env.update(
        MIQA_NB_CATALOG=str(cat.path),
        JUPYTER_CONFIG_DIR=str(root / "config"),
        JUPYTER_RUNTIME_DIR=str(root / "runtime"),
        JUPYTER_DATA_DIR=str(root / "data"),
        PYTHONPATH=os.pathsep.join([str(Path(__file__).parents[1]), env.get("PYTHONPATH", "")]),
    )
    if owner is not None:
        env["MIQA_NB_USER"] = owner
    left = root / "c-staging" / "import-left-by-a-killed-server"  # swept at start
    left.mkdir(parents=True)
    (left / LOCK_NAME).touch()
    (left / "upload.part").write_bytes(b"half an upload")
    log = root / "server.log"
    enable = ["--ServerApp.jpserver_extensions=miqa_nb.server=True"]
    if by_command:
        enable = []
        listed = root / "config" / "jupyter_server_config.d" / "miqa_nb.server.json"
        listed.parent.mkdir(parents=True)
        shutil.copy(SHIPPED_CONFIG, listed)  # as pip puts it in etc/jupyter (disabled)
        subprocess.run(
            [sys.executable, "-m", "jupyter_server.extension.serverextension", "enable",
             "--user", "miqa_nb.server"],
            env=env, check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        assert json.loads(listed.read_text())["ServerApp"]["jpserver_extensions"] == {
            "miqa_nb.server": True
        }
    command = [
        sys.executable, "-m", "jupyter_server", "--no-browser", "--allow-root",
        f"--port={port}", "--ip=127.0.0.1", f"--ServerApp.base_url={base_url}",
        f"--ServerApp.root_dir={root}",
        *enable, *args,
    ]  # fmt: skip
    with open(log, "wb") as out:
        process = subprocess.Popen(command, cwd=root, env=env, stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}{base_url}"
    try:
        deadline = time.monotonic() + 120
        while True:  # the extension is loaded before the server listens
            assert process.poll() is None, log.read_text()
            with contextlib.suppress(requests.ConnectionError):
                requests.get(url + "data/version", timeout=10)
                break
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        yield Lab(url, cat, root, _template(), log)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def signed_in(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """The catalog's sign-in, under the base URL ``/lab/``."""
    root = tmp_path_factory.mktemp("catalog-signin")
    with jupyter_server(
        root, f"--ServerApp.identity_provider_class={CATALOG_SIGNIN}", base_url="/lab/"
    ) as lab:
        yield lab


@pytest.fixture(scope="module")
def personal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """Jupyter's token; the server is tina's."""
    root = tmp_path_factory.mktemp("personal")
    with jupyter_server(root, f"--IdentityProvider.token={TOKEN}", owner=TIER1) as lab:
        yield lab


def _data_files(lab: Lab) -> list[Path]:
    data = lab.catalog.path.with_name(lab.catalog.path.stem + "-data")
    return sorted(p for p in data.rglob("*") if p.is_file()) if data.exists() else []


def _experiments(lab: Lab) -> list[str]:
    return sorted(set(lab.catalog.scans(PROJECT)["experiment"]))


# --- the catalog's sign-in


def test_catalog_signin_curl_imports_under_the_base_url(signed_in: Lab) -> None:
    assert signed_in.url.endswith("/lab/")
    assert not (signed_in.root / "c-staging" / "import-left-by-a-killed-server").exists()
    archive = session_zip(signed_in, "a1", session="S1_A1")  # type: ignore[arg-type]
    status, body = curl(
        "-u", f"{TIER1}:{PASSWORD}", "-F", f"file=@{archive}",
        f"{signed_in.url}data/services/import?dest=/archive/projects/{PROJECT}",
    )  # fmt: skip
    assert status == 200, body
    assert body.strip() == f"/data/archive/projects/{PROJECT}/subjects/S1/experiments/S1_A1"
    scans = signed_in.catalog.scans(PROJECT)
    assert sorted(scans.loc[scans["experiment"] == "S1_A1", "scan"]) == ["2", "3"]
    # not served outside the base URL
    status, _ = curl("-u", f"{TIER1}:{PASSWORD}", signed_in.url.replace("/lab/", "/data/auth"))
    assert status == 404


def test_catalog_signin_tokens_and_jsession(signed_in: Lab) -> None:
    _, token = signed_in.catalog.create_token(TIER1, by=TIER1)
    status, body = curl("-H", f"Authorization: token {token}", f"{signed_in.url}data/auth")
    assert (status, body) == (200, f"User '{TIER1}' is logged in")
    status, sid = curl("-u", f"{TIER1}:{PASSWORD}", f"{signed_in.url}data/JSESSION")
    assert status == 200 and len(sid) > 20
    status, body = curl("--cookie", f"JSESSIONID={sid}", f"{signed_in.url}data/auth")
    assert (status, body) == (200, f"User '{TIER1}' is logged in")
    status, body = curl(f"{signed_in.url}login")  # the catalog's sign-in page
    assert status == 200 and "Sign in to miqa-nb" in body


def test_catalog_signin_pyxnat_prearchive_lists_a_staged_session(signed_in: Lab) -> None:
    pyxnat = pytest.importorskip("pyxnat")
    from pyxnat.core.manage import PreArchive

    archive = session_zip(signed_in, "a2", session="S1_A2")  # type: ignore[arg-type]
    status, body = curl(
        "-u", f"{TIER1}:{PASSWORD}", "-F", f"file=@{archive}",
        f"{signed_in.url}data/services/import?dest=/prearchive/projects/{PROJECT}",
    )  # fmt: skip
    assert status == 200, body
    (uri,) = body.split()
    assert uri.startswith(f"/data/prearchive/projects/{PROJECT}/") and uri.endswith("/S1_A2")
    interface = pyxnat.Interface(signed_in.url.rstrip("/"), TIER1, PASSWORD)
    pre = PreArchive(interface)
    triple = uri.removeprefix("/data/prearchive/projects/").split("/")
    assert [list(row) for row in pre.get()] == [triple]
    assert pre.status(triple) == "READY"
    assert "S1_A2" not in _experiments(signed_in)


def test_catalog_signin_refusals_write_nothing(signed_in: Lab) -> None:
    archive = session_zip(signed_in, "a3", session="S1_A3")  # type: ignore[arg-type]
    before, rows = _data_files(signed_in), len(signed_in.catalog.frames(PROJECT))
    url = f"{signed_in.url}data/services/import?dest=/archive/projects/{PROJECT}"
    status, _ = curl("-F", f"file=@{archive}", url)  # nobody
    assert status == 401
    status, _ = curl("-u", f"{TIER1}:wrong password", "-F", f"file=@{archive}", url)
    assert status == 401
    status, text = curl("-u", f"{COLLAB}:{PASSWORD}", "-F", f"file=@{archive}", url)
    assert status == 403 and "may not" in text
    assert _data_files(signed_in) == before
    assert len(signed_in.catalog.frames(PROJECT)) == rows
    assert "S1_A3" not in _experiments(signed_in)


# --- Jupyter's token: the server's owner


def test_personal_token_imports_as_the_owner(personal: Lab) -> None:
    archive = session_zip(personal, "p1", session="S1_P1")  # type: ignore[arg-type]
    status, body = curl(
        "-H", f"Authorization: token {TOKEN}", "-F", f"file=@{archive}",
        f"{personal.url}data/services/import?dest=/archive/projects/{PROJECT}",
    )  # fmt: skip
    assert status == 200, body
    assert body.strip() == f"/data/archive/projects/{PROJECT}/subjects/S1/experiments/S1_P1"
    assert _experiments(personal) == ["S1_P1"]
    status, body = curl(f"{personal.url}data/auth?token={TOKEN}")
    assert (status, body) == (200, f"User '{TIER1}' is logged in")


def test_personal_refuses_whom_the_token_does_not_let_in(personal: Lab) -> None:
    archive = session_zip(personal, "p2", session="S1_P2")  # type: ignore[arg-type]
    before = _data_files(personal)
    url = f"{personal.url}data/services/import?dest=/archive/projects/{PROJECT}"
    status, _ = curl("-F", f"file=@{archive}", url)
    assert status == 401
    status, _ = curl("-H", "Authorization: token not-the-token", "-F", f"file=@{archive}", url)
    assert status == 401
    # the catalog's passwords are not this server's sign-in
    status, _ = curl("-u", f"{ADMIN}:{PASSWORD}", "-F", f"file=@{archive}", url)
    assert status == 401
    status, text = curl(f"{personal.url}data/JSESSION?token={TOKEN}")
    assert status == 403 and "CatalogIdentityProvider" in text and "<" not in text
    assert _data_files(personal) == before and "S1_P2" not in _experiments(personal)
    staging = personal.catalog.path.with_name(personal.catalog.path.stem + "-staging")
    assert not staging.exists() or not any(staging.iterdir())


def test_personal_server_naming_no_owner_answers_403_naming_the_fix(
    tmp_path: Path,
) -> None:
    with jupyter_server(tmp_path, f"--IdentityProvider.token={TOKEN}", by_command=True) as lab:
        archive = session_zip(lab, "n1", session="S1_N1")  # type: ignore[arg-type]
        status, text = curl(
            "-H", f"Authorization: token {TOKEN}", "-F", f"file=@{archive}",
            f"{lab.url}data/services/import?dest=/archive/projects/{PROJECT}",
        )  # fmt: skip
        assert status == 403 and "MIQA_NB_USER" in text, text
        assert _data_files(lab) == [] and len(lab.catalog.frames(PROJECT)) == 0
        status, _ = curl("-F", f"file=@{archive}", f"{lab.url}data/services/import")
        assert status == 401


def test_a_server_letting_everyone_in_answers_403(tmp_path: Path) -> None:
    """No token, no password: Jupyter lets every request in; XNAT's calls do not."""
    with jupyter_server(
        tmp_path, "--IdentityProvider.token=", "--ServerApp.password=", owner=TIER1
    ) as lab:
        archive = session_zip(lab, "e1", session="S1_E1")  # type: ignore[arg-type]
        status, text = curl(
            "-F", f"file=@{archive}",
            f"{lab.url}data/services/import?dest=/archive/projects/{PROJECT}",
        )  # fmt: skip
        assert status == 403, text  # (Jupyter's XSRF check may refuse it first)
        assert _data_files(lab) == [] and len(lab.catalog.frames(PROJECT)) == 0
        status, text = curl(f"{lab.url}data/prearchive/projects?format=json")
        assert status == 403 and "lets every request in" in text, text
        status, text = curl(f"{lab.url}data/auth")
        assert status == 403 and "IdentityProvider.token" in text, text
