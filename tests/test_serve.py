"""``miqa-nb serve``: the server's command, its environment, sign-in links, JupyterHub;
and the real command on a free port, asked for pages the way a reviewer's browser asks."""

from __future__ import annotations

import http.client
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
import requests

from miqa_nb.catalog import Catalog
from miqa_nb.core.errors import MiqaError
from miqa_nb.serve import (
    APP_DIR,
    NOTEBOOK,
    base_url_from_env,
    free_port,
    serve_main,
    server_command,
    server_environment,
    start,
)


def test_server_command_holds_no_secret() -> None:
    cmd = server_command("/c/lab.duckdb", port=8123, base_url="/user/ana/")
    assert cmd[:3] == [sys.executable, "-m", "miqa_nb.server"]
    assert cmd[3] == str(APP_DIR / NOTEBOOK)
    for flag in (
        "--no-browser",
        "--Voila.ip=127.0.0.1",
        "--port=8123",
        "--base_url=/user/ana/",
        "--show_tracebacks=False",
        "--preheat_kernel=True",
        "--pool_size=1",
    ):
        assert flag in cmd
    assert not any("token" in part for part in cmd)  # `ps` shows the command line
    cold = server_command("/c/lab.duckdb", port=1, preheat=False)
    assert "--preheat_kernel=False" in cold and "--pool_size=0" in cold
    tls = server_command("/c/lab.duckdb", port=1, ip="0.0.0.0", certfile="c.pem", keyfile="k.pem")
    assert "--Voila.ip=0.0.0.0" in tls
    assert f"--certfile={Path('c.pem').resolve()}" in tls
    with pytest.raises(MiqaError, match="--keyfile needs --certfile"):
        server_command("/c/lab.duckdb", port=1, keyfile="k.pem")


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [(None, "/"), ("", "/"), ("/", "/"), ("/user/ana/", "/user/ana/"), ("user/ana", "/user/ana/")],
)
def test_base_url_from_jupyterhub(prefix: str | None, expected: str) -> None:
    env = {} if prefix is None else {"JUPYTERHUB_SERVICE_PREFIX": prefix}
    assert base_url_from_env(env) == expected


def test_server_environment(tmp_path: Path) -> None:
    env = server_environment(
        "rel.duckdb",
        tmp_path / "private",
        environ={"MIQA_NB_USER": "root", "PATH": "/bin"},
        upload_dir="up",
    )
    assert env["MIQA_NB_CATALOG"] == str(Path("rel.duckdb").resolve())
    assert env["MIQA_NB_IDENTITY"] == "server"
    assert "MIQA_NB_USER" not in env  # the page's user never comes from the server's shell
    assert env["PATH"] == "/bin"
    assert env["MIQA_NB_UPLOAD_DIR"] == str(Path("up").resolve())
    for name in ("JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "JUPYTER_CONFIG_DIR", "IPYTHONDIR"):
        assert env[name].startswith(str(tmp_path / "private"))
    assert env["MPLCONFIGDIR"].startswith(str(tmp_path / "private"))
    hub = server_environment("c.duckdb", tmp_path, environ={"JUPYTERHUB_USER": "ana"})
    assert hub["MIQA_NB_IDENTITY"] == "hub"


def test_the_app_folder_holds_the_notebook_and_settings() -> None:
    settings = json.loads((APP_DIR / "voila.json").read_text())
    assert settings["VoilaConfiguration"]["show_tracebacks"] is False
    assert settings["VoilaConfiguration"]["file_allowlist"] == []
    nb = nbformat.read(APP_DIR / NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs for c in code)  # committed without outputs
    assert "Dashboard.from_environment().show()" in code[-1].source


def test_start_needs_a_catalog(tmp_path: Path) -> None:
    with pytest.raises(MiqaError, match="no catalog file"):
        start(tmp_path / "missing.duckdb")
    err = io.StringIO()
    sys_stderr, sys.stderr = sys.stderr, err
    try:
        assert serve_main(["--catalog", str(tmp_path / "missing.duckdb")]) == 1
    finally:
        sys.stderr = sys_stderr
    assert "no catalog file" in err.getvalue()


@pytest.mark.slow
def test_real_server_asks_for_sign_in(tmp_path: Path) -> None:
    catalog = tmp_path / "c.duckdb"
    Catalog(catalog).add_user("ana")
    server = start(catalog, log=tmp_path / "server.log", preheat=False)
    try:
        server.wait_ready()
        base = f"http://127.0.0.1:{server.port}/"
        assert server.url == base
        status, location, _ = _get(server.port, "/voila/api/shutdown/x")
        assert (status, location.split("?")[0]) == (302, "/login")
        link = server.signin_link("ana", project="P q")
        assert link.startswith(base + "login?link=") and link.endswith(
            "&next=/%3Fproject%3DP%2520q"
        )
    finally:
        server.stop()
    assert server.process.poll() is not None
    assert not server.private_dir.exists()


# --- the real ``miqa-nb serve``, met the way a reviewer's browser meets it ---------

#: How the last line ``miqa-nb serve`` prints for anyone ends (a known user's link follows).
LAST_LINE = "miqa-nb users link NAME`"


@dataclass
class Served:
    """A running ``miqa-nb serve`` process and what it printed."""

    process: subprocess.Popen[str]
    port: int
    printed: list[str]
    log: Path  # its stderr: Voila's log and its kernels'
    log_at_print: str  # the log as it was when the address was printed
    home: Path

    def lines_after(self, start: int, wanted: str, timeout: float = 30) -> str:
        """The log from character ``start`` on, once it holds ``wanted`` (or at timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.log.read_text(errors="replace")[start:]
            if wanted in text or time.monotonic() > deadline:
                return text
            time.sleep(0.2)


def _serve(root: Path, user: str, catalog: str | None = None) -> Served:
    """Run ``miqa-nb serve`` on the catalog ``root/c.duckdb`` (or ``catalog``) in a clean
    environment (``MIQA_NB_USER=user``, an empty HOME) and read what it prints before it
    waits."""
    home = root / "home"
    home.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MIQA_NB_", "JUPYTER", "XDG_", "IPYTHONDIR", "MPLCONFIGDIR"))
    }
    env.update(HOME=str(home), MIQA_NB_USER=user)
    port = free_port()
    log = root / "serve.log"
    command = [sys.executable, "-m", "miqa_nb.cli", "--catalog", catalog or str(root / "c.duckdb")]
    command += ["serve", "--port", str(port), "--link-for", user]
    with open(log, "wb") as err:
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=err,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
        )
    assert process.stdout is not None
    printed: list[str] = []
    log_at_print = ""
    while not printed or LAST_LINE not in printed[-1]:
        line = process.stdout.readline()
        if not line:
            process.kill()
            raise AssertionError(
                f"serve ended before printing its address; log:\n{log.read_text()}"
            )
        if not printed:
            log_at_print = log.read_text(errors="replace")
        printed.append(line.rstrip("\n"))
    return Served(process, port, printed, log, log_at_print, home)


def _stop(served: Served) -> tuple[int, str]:
    """Ctrl-C: serve's exit status and the rest of what it printed."""
    served.process.send_signal(signal.SIGINT)
    try:
        status = served.process.wait(60)
    finally:
        served.process.kill()
    assert served.process.stdout is not None
    with served.process.stdout:  # read() includes what readline() buffered already
        return status, served.process.stdout.read()


def _wait_until_serving(served: Served, timeout: float = 60) -> None:
    """Wait until ``miqa-nb serve`` sits in ``waitpid`` on Voila (Linux: its wchan)."""
    wchan = Path(f"/proc/{served.process.pid}/wchan")
    seen = set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and wchan.exists():
        seen.add(wchan.read_text())
        if "do_wait" in seen:
            return
        time.sleep(0.1)
    if seen <= {"0"}:  # "0" is also what a running process shows
        pytest.skip("this system does not show where a process waits (/proc/PID/wchan)")
    raise AssertionError(f"serve never settled to wait for Voila (it waited in {seen})")


def _get(port: int, path: str) -> tuple[int, str, str]:
    """GET without following redirects: status, Location header, body."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        connection.request("GET", path)
        answer = connection.getresponse()
        return answer.status, answer.getheader("Location") or "", answer.read().decode()
    finally:
        connection.close()


def _listening(port: int) -> set[tuple[str, str]]:
    """(table, local address in hex) of every socket listening on ``port`` (Linux)."""
    found = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:
                found.add((table, address))
    return found


@pytest.fixture(scope="module")
def ana(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """``miqa-nb serve`` started by ana (MIQA_NB_USER), who created project 'Brain study'."""
    root = tmp_path_factory.mktemp("served")
    cat = Catalog(root / "c.duckdb")
    cat.add_user("ana")
    cat.create_project("Brain study", by="ana")
    served = _serve(root, "ana")
    served.printed.append(served.process.stdout.readline().rstrip("\n"))  # type: ignore[union-attr]
    try:
        yield served
    finally:
        _stop(served)


def _signed_in(served: Served) -> tuple[requests.Session, str]:
    """A browser-like session signed in with the link ``serve`` printed; the page
    address the link led to."""
    link = served.printed[-1].split(": ", 1)[1]
    session = requests.Session()
    answer = session.get(link, timeout=120)
    return session, answer.url


@pytest.mark.slow
def test_serve_prints_a_one_time_link_that_signs_in_and_opens_the_dashboard(ana: Served) -> None:
    base = f"http://127.0.0.1:{ana.port}/"
    assert f"  {base}" in ana.printed
    assert ana.printed[-1].startswith(f"  one-time sign-in link for ana: {base}login?link=")
    link = ana.printed[-1].split(": ", 1)[1]
    session = requests.Session()
    first = session.get(link, allow_redirects=False, timeout=60)
    assert first.status_code == 302
    # ana has no password yet: the link asks for one, and goes on to her project
    assert first.headers["Location"].startswith("/login/password?next=")
    cookie = first.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    start = len(ana.log.read_text(errors="replace"))
    page = session.get(base + "?project=Brain%20study", timeout=120)
    assert page.status_code == 200 and "miqa-dashboard" in page.text
    # the page found ana in the catalog: no refusal, no error in the kernels' log
    after = ana.lines_after(start, "dashboard refused", timeout=3)
    assert "dashboard refused" not in after and "miqa_nb.dashboard ERROR" not in after
    again = requests.get(link, allow_redirects=False, timeout=60)  # one use only
    assert again.status_code == 403 and "used or has expired" in again.text


@pytest.mark.slow
def test_serve_on_a_postgresql_catalog_never_prints_its_password(pg_server, tmp_path) -> None:
    url = pg_server.new_database().replace("//miqa@", "//miqa:never-shown@")
    cat = Catalog(url)  # trust authentication here: the password is not checked
    cat.add_user("ana")
    cat.create_project("Brain study", by="ana")
    served = _serve(tmp_path, "ana", catalog=url)
    try:
        served.printed.append(served.process.stdout.readline().rstrip("\n"))  # type: ignore[union-attr]
        shown = url.replace(":never-shown@", "@")
        assert f"miqa-nb dashboard for {shown}" in served.printed
        session, _ = _signed_in(served)
        start = len(served.log.read_text(errors="replace"))
        page = session.get(f"http://127.0.0.1:{served.port}/?project=Brain%20study", timeout=120)
        assert page.status_code == 200 and "miqa-dashboard" in page.text
        after = served.lines_after(start, "dashboard opened for ana", timeout=60)
        assert "dashboard opened for ana" in after and "dashboard refused" not in after
    finally:
        _, rest = _stop(served)
    assert "never-shown" not in "\n".join(served.printed) + rest + served.log.read_text()


@pytest.mark.slow
@pytest.mark.parametrize("query", ["", "?user=ana", "?token=sesame&user=ana"])
def test_without_signing_in_the_server_refuses(ana: Served, query: str) -> None:
    for path in ("/", "/api/kernels"):  # the page, and Jupyter's API behind it
        status, location, page = _get(ana.port, path + query)
        assert (status, location.split("?")[0]) == (302, "/login"), path
        assert "miqa-dashboard" not in page and "kernel" not in page


@pytest.mark.slow
def test_the_address_never_chooses_the_pages_user(ana: Served) -> None:
    """A signed-in page's user is the sign-in's: ``&user=stranger`` in its address (and
    the MIQA_NB_USER of the shell that started the server) change nothing: were it
    taken, the page would refuse 'stranger', whom the catalog does not know."""
    session = requests.Session()
    cat = Catalog(ana.home.parent / "c.duckdb")
    base = f"http://127.0.0.1:{ana.port}/"
    secret = cat.create_signin_link("ana", by="ana")
    assert session.get(f"{base}login?link={secret}", timeout=60).status_code == 200
    start = len(ana.log.read_text(errors="replace"))
    page = session.get(base + "?user=stranger", timeout=120)
    assert page.status_code == 200
    after = ana.lines_after(start, "dashboard opened for", timeout=60)
    assert "dashboard opened for ana" in after and "dashboard refused" not in after


@pytest.mark.slow
def test_serve_warms_the_page_up_before_printing_and_keeps_two_kernels_ready(ana: Served) -> None:
    """Before the address is printed the server has rendered the page once (as nobody:
    refused), in a kernel of its own that it then ended: the pre-heated kernels stay
    for the first two reviewers."""
    assert "dashboard refused: User '(warm-up)' is not in this catalog" in ana.log_at_print
    assert "Using pre-heated kernel" not in ana.log_at_print
    assert "is filled with 2 kernel(s)" in ana.lines_after(0, "is filled with 2 kernel(s)", 60)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads /proc/net/tcp (Linux)")
def test_serve_listens_on_loopback_only_and_leaves_home_alone(ana: Served) -> None:
    assert _listening(ana.port) == {("tcp", "0100007F")}  # 127.0.0.1, no IPv6, no 0.0.0.0
    session = requests.Session()
    secret = Catalog(ana.home.parent / "c.duckdb").create_signin_link("ana", by="ana")
    page = session.get(f"http://127.0.0.1:{ana.port}/login?link={secret}&next=/", timeout=120)
    assert page.status_code == 200  # one more page rendered
    # Jupyter's files go to the server's private folder; the one thing in home is the
    # empty folder ipyvolume makes when imported (the pooled kernels import it for 3D)
    found = sorted(p.relative_to(ana.home).as_posix() for p in ana.home.rglob("*"))
    assert found == [".ipyvolume", ".ipyvolume/datasets"]
    assert not any((ana.home / ".ipyvolume" / "datasets").iterdir())


@pytest.mark.slow
def test_serve_for_an_unknown_user_prints_no_ready_link_and_stops_on_ctrl_c(
    tmp_path: Path,
) -> None:
    Catalog(tmp_path / "c.duckdb").add_user("ana")
    served = _serve(tmp_path, "stranger")
    _wait_until_serving(served)  # everything serve prints is printed by then
    status, rest = _stop(served)
    assert status == 0 and rest == ""  # nothing after the general address
    assert not any("sign-in link for" in line for line in served.printed)
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", served.port), 2):
        pass  # Voila stopped with it


def _children(pid: int) -> list[int]:
    found = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in found.read_text().split()] if found.exists() else []


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


@pytest.mark.slow
@pytest.mark.skipif(
    not Path("/proc/self/task").exists() or not any(Path("/proc/self/task").glob("*/children")),
    reason="finds the server's child processes in /proc (Linux)",
)
def test_a_terminated_server_leaves_no_voila_or_kernel(tmp_path: Path) -> None:
    """``kill PID`` (what a service manager sends) stops Voila and its kernels too,
    and frees the port: not only Ctrl-C."""
    Catalog(tmp_path / "c.duckdb").add_user("ana")
    served = _serve(tmp_path, "ana")
    serve = served.process
    try:
        (voila,) = _children(serve.pid)
        deadline = time.monotonic() + 60
        while not (kernels := _children(voila)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert kernels  # pre-heated ones
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(30) == 128 + signal.SIGTERM
        deadline = time.monotonic() + 20
        while any(map(_alive, [voila, *kernels])) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [p for p in [voila, *kernels] if _alive(p)]
        with pytest.raises(OSError), socket.create_connection(("127.0.0.1", served.port), 2):
            pass
    finally:
        serve.kill()
        serve.wait()


def test_idle_minutes_reach_the_kernels(tmp_path: Path) -> None:
    env = server_environment("c.duckdb", tmp_path, environ={}, idle_minutes=0.5)
    assert env["MIQA_NB_IDLE_MINUTES"] == "0.5"
    assert "MIQA_NB_IDLE_MINUTES" not in server_environment("c.duckdb", tmp_path, environ={})
    with pytest.raises(MiqaError, match="--idle-minutes must be more than 0; 0 was provided"):
        server_environment("c.duckdb", tmp_path, environ={}, idle_minutes=0)


def test_a_page_watch_needs_a_served_kernel() -> None:
    from miqa_nb.dashboard.lifeline import PageWatch

    served = {
        "MIQA_NB_SERVE_URL": "http://127.0.0.1:1/base/",
        "MIQA_NB_KERNEL_KEY": "key",
        "VOILA_KERNEL_ID": "0e5c9f3a-0000-4000-8000-000000000000",
    }
    watch = PageWatch.from_environment(served, on_gone=lambda: None)
    assert watch is not None
    assert watch.kernel == "0e5c9f3a-0000-4000-8000-000000000000"
    assert watch.connections() is None  # nobody answers: no decision is taken
    for missing in served:  # a notebook, or a kernel started by another server
        rest = {k: v for k, v in served.items() if k != missing}
        if missing != "VOILA_KERNEL_ID":
            assert PageWatch.from_environment(rest, on_gone=lambda: None) is None


@pytest.mark.slow
def test_under_jupyterhub_the_server_admits_the_hubs_user_only(tmp_path: Path) -> None:
    """With ``JUPYTERHUB_USER`` set (the hub verified that user and spawned this server
    for them) the server is theirs: their link opens their dashboard (``?user=ana`` in
    its address changes nothing), their token works for scripts, anybody else's
    credentials open nothing."""
    catalog = tmp_path / "c.duckdb"
    cat = Catalog(catalog)
    cat.add_user("ana")
    cat.add_user("tom", by="ana")
    cat.set_password("ana", "ana's passphrase", by="ana")
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTERHUB_")}
    env["JUPYTERHUB_USER"] = "tom"
    log = tmp_path / "server.log"
    server = start(catalog, log=log, environ=env)
    try:
        server.wait_ready()
        tom = requests.Session()
        page = tom.get(server.signin_link("tom"), timeout=120)
        assert page.status_code == 200 and page.url.startswith(server.url + "login/password")
        assert tom.get(server.url + "?user=ana", timeout=120).status_code == 200
        deadline = time.monotonic() + 60
        while "dashboard opened for" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "dashboard opened for tom" in log.read_text()
        assert "dashboard refused" not in log.read_text()
        ana = requests.Session()
        refused = ana.get(server.signin_link("ana"), allow_redirects=False, timeout=60)
        assert refused.status_code == 403
        basic = requests.get(
            server.url + "data/JSESSION", auth=("ana", "ana's passphrase"), timeout=60
        )
        assert basic.status_code == 401
        # scripts: the hub's user signs in with a token; another user's token opens nothing
        _, toms = cat.create_token("tom", by="tom")
        _, anas = cat.create_token("ana", by="ana")
        for token, status in ((toms, 200), (anas, 401)):
            answer = requests.get(
                server.url + "data/JSESSION",
                headers={"Authorization": f"token {token}"},
                timeout=60,
            )
            assert answer.status_code == status
    finally:
        server.stop()
