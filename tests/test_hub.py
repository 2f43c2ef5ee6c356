"""``miqa-nb hub`` without a browser: the hub's login over the catalog, its command.

The hub itself, its proxy and two reviewers in Chromium: ``tests/browser/test_hub.py``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest
import requests
from tornado import web

from miqa_nb.catalog import Catalog
from miqa_nb.cli import main
from miqa_nb.core.errors import MiqaError
from miqa_nb.hub import CONFIG_FILE, CatalogAuthenticator, find_proxy, hub_command
from miqa_nb.serve import free_port

PASSWORD = "Rosa's long passphrase"


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A catalog with ``admin`` and ``Rosa`` (a capital: catalog names keep their
    case), who has a password; ``nopass`` has none."""
    path = tmp_path_factory.mktemp("hub") / "c.duckdb"
    cat = Catalog(path)
    cat.add_user("admin")
    cat.add_user("Rosa", by="admin")
    cat.add_user("nopass", by="admin")
    cat.set_password("Rosa", PASSWORD, by="admin")
    return path


def browser_from(address: str) -> SimpleNamespace:
    """What the hub's login handler hands an authenticator: the request, its address."""
    return SimpleNamespace(request=SimpleNamespace(remote_ip=address))


def run_loop(coroutine):
    """Run ``coroutine`` in an event loop of its own, as the hub's, on a thread of its
    own: earlier tests (kernels, widgets) may leave a loop marked running here."""
    with concurrent.futures.ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, coroutine).result()


def sign_in(authenticator: CatalogAuthenticator, name: str, password: str, address: str):
    """The hub's own entry point: authenticate, normalize, check who is allowed."""
    data = {"username": name, "password": password}
    return run_loop(authenticator.get_authenticated_user(browser_from(address), data))


def test_the_catalogs_password_signs_in_under_the_catalogs_name(catalog: Path) -> None:
    """Rosa's password signs Rosa in as "Rosa" (JupyterHub would have made her "rosa",
    whom the catalog does not know); spaces around the name do not matter."""
    auth = CatalogAuthenticator(catalog=str(catalog))
    assert sign_in(auth, "Rosa", PASSWORD, "192.0.2.1")["name"] == "Rosa"
    assert sign_in(auth, " Rosa ", PASSWORD, "192.0.2.1")["name"] == "Rosa"


@pytest.mark.parametrize(
    ("name", "password"),
    [
        ("Rosa", "not her passphrase"),
        ("rosa", PASSWORD),  # another name
        ("nobody", PASSWORD),  # not in the catalog
        ("nopass", ""),  # no password set, none given
        ("", PASSWORD),
    ],
)
def test_anything_else_is_refused(catalog: Path, name: str, password: str) -> None:
    auth = CatalogAuthenticator(catalog=str(catalog))
    assert sign_in(auth, name, password, "192.0.2.2") is None


def test_a_hub_without_its_catalog_does_not_start(tmp_path: Path) -> None:
    """A mistyped catalog stops the hub at start-up, naming it, instead of starting an
    empty catalog there that nobody can sign in to."""
    missing = tmp_path / "typo.duckdb"
    with pytest.raises(MiqaError, match=f"no catalog file at {missing}: set MIQA_NB_CATALOG"):
        CatalogAuthenticator(catalog=str(missing))
    assert not missing.exists()


def test_failed_sign_ins_are_braked_per_name_and_address(catalog: Path) -> None:
    """After 10 wrong passwords for Rosa, even the right one is refused (429) for a
    while, from that address and from any other: guessing gains nothing."""
    auth = CatalogAuthenticator(catalog=str(catalog))
    for n in range(10):
        assert sign_in(auth, "Rosa", f"guess {n}", "192.0.2.3") is None
    for address in ("192.0.2.3", "198.51.100.7"):
        with pytest.raises(web.HTTPError) as refused:
            sign_in(auth, "Rosa", PASSWORD, address)
        assert refused.value.status_code == 429
    # another user from another address is not held up
    assert sign_in(auth, "admin", "wrong", "203.0.113.9") is None


def test_the_password_check_leaves_the_hub_answering(catalog: Path) -> None:
    """argon2 takes a good part of a second; meanwhile the hub's event loop goes on
    serving others (the check runs on a worker thread)."""

    async def scenario() -> tuple[str | None, int, float]:
        auth = CatalogAuthenticator(catalog=str(catalog))
        ticks = 0
        done = asyncio.Event()

        async def others() -> None:
            nonlocal ticks
            while not done.is_set():
                await asyncio.sleep(0.005)
                ticks += 1

        ticker = asyncio.create_task(others())
        started = time.perf_counter()
        name = await auth.authenticate(
            browser_from("192.0.2.4"), {"username": "Rosa", "password": PASSWORD}
        )
        took = time.perf_counter() - started
        done.set()
        await ticker
        return name, ticks, took

    name, ticks, took = run_loop(scenario())
    assert name == "Rosa"
    # a loop blocked for the whole check would tick once or twice
    assert ticks >= max(3, int(took / 0.005 / 4)), (ticks, took)


def test_a_missing_proxy_named_by_its_variable_is_said() -> None:
    with pytest.raises(MiqaError, match="MIQA_NB_PROXY=/nowhere/chp: no such program"):
        find_proxy({"MIQA_NB_PROXY": "/nowhere/chp", "PATH": ""})


def test_the_hub_command_names_its_configuration_and_ports_and_no_secret() -> None:
    command = hub_command(port=8123, ip="127.0.0.1", hub_port=8124, proxy_api_port=8125)
    assert command[1:5] == ["-m", "jupyterhub", "-f", str(CONFIG_FILE.resolve())]
    assert "--port=8123" in command and "--JupyterHub.hub_port=8124" in command
    assert "--ConfigurableHTTPProxy.api_url=http://127.0.0.1:8125" in command
    assert not any("token" in part.lower() or "secret" in part.lower() for part in command)
    assert CONFIG_FILE.is_file()


def test_miqa_nb_hub_without_a_catalog_says_so(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "nowhere.duckdb"
    assert main(["hub", "--catalog", str(missing), "--port", "1"]) == 1
    err = capsys.readouterr().err
    assert f"no catalog file at {missing}" in err and "miqa-nb users add" in err


@pytest.mark.slow
def test_miqa_nb_hub_serves_the_login_and_stops_with_its_proxy(
    catalog: Path, tmp_path: Path
) -> None:
    """``miqa-nb hub`` says where it listens once the hub answers there (its login form,
    through configurable-http-proxy); stopped as a service manager stops it (SIGTERM),
    it takes the hub and the proxy with it."""
    port = free_port()
    command = [sys.executable, "-m", "miqa_nb.cli", "hub", "--catalog", str(catalog)]
    command += ["--port", str(port), "--state-dir", str(tmp_path / "state")]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path
    )
    started = psutil.Process(process.pid)
    try:
        said = ""  # its lines among the hub's log
        while "reviewers sign in" not in said and process.poll() is None:
            said = process.stdout.readline()  # type: ignore[union-attr]
        assert said.strip() == (
            f"http://127.0.0.1:{port}/: reviewers sign in with their catalog user and password"
        ), said
        login = requests.get(f"http://127.0.0.1:{port}/hub/login", timeout=30)
        assert login.status_code == 200 and 'id="password_input"' in login.text
        children = started.children(recursive=True)
        names = " ".join(" ".join(child.cmdline()) for child in children)
        assert "jupyterhub" in names and "configurable-http-proxy" in names, names
        assert (tmp_path / "state" / "jupyterhub.sqlite").is_file()
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 128 + signal.SIGTERM
        _gone, alive = psutil.wait_procs(children, timeout=30)
        assert not alive, alive
    finally:  # on a failure too: the hub and its proxy go with the command
        left = started.children(recursive=True) if process.poll() is None else []
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for child in psutil.wait_procs(left, timeout=30)[1]:
            child.kill()
