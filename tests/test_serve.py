"""``miqa-nb serve``: the Voila command, its environment, the token, JupyterHub."""

from __future__ import annotations

import io
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import pytest

from miqa_nb import serve as serve_mod
from miqa_nb.catalog import Catalog
from miqa_nb.core.errors import MiqaError
from miqa_nb.serve import (
    APP_DIR,
    NOTEBOOK,
    base_url_from_env,
    serve_main,
    server_environment,
    start,
    voila_command,
)


def test_voila_command() -> None:
    cmd = voila_command("/c/lab.duckdb", port=8123, token="tok", base_url="/user/ana/")
    assert cmd[:3] == [sys.executable, "-m", "voila"]
    assert cmd[3] == str(APP_DIR / NOTEBOOK)
    for flag in (
        "--no-browser",
        "--Voila.ip=127.0.0.1",
        "--port=8123",
        "--token=tok",
        "--base_url=/user/ana/",
        "--show_tracebacks=False",
        "--preheat_kernel=True",
        "--pool_size=1",
    ):
        assert flag in cmd
    cold = voila_command("/c/lab.duckdb", port=1, token="t", preheat=False)
    assert "--preheat_kernel=False" in cold and "--pool_size=0" in cold
    with pytest.raises(MiqaError, match="token"):
        voila_command("/c/lab.duckdb", port=1, token="")


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
    assert env["MIQA_NB_IDENTITY"] == "query"
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


def test_serve_prints_the_url_and_stops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """serve() with a fake Voila: prints the address with the token, stops the server."""
    catalog = tmp_path / "c.duckdb"
    Catalog(catalog).add_user("ana")
    calls: list[str] = []

    class FakeServer:
        url = "http://127.0.0.1:9/?token=tok"

        class process:
            @staticmethod
            def wait() -> int:
                return 0

        def wait_ready(self) -> None:
            calls.append("ready")

        def warm_up(self) -> None:
            calls.append("warm-up")

        def stop(self) -> None:
            calls.append("stop")

    started: dict[str, object] = {}

    def fake_start(*args: object, **kwargs: object) -> FakeServer:
        started.update(kwargs)
        return FakeServer()

    monkeypatch.setattr(serve_mod, "start", fake_start)
    out = io.StringIO()
    assert serve_mod.serve(catalog, token="tok", stream=out) == 0
    assert "http://127.0.0.1:9/?token=tok&user=NAME" in out.getvalue()
    assert "&project=P" in out.getvalue()
    assert "for you" not in out.getvalue()  # no user given
    # the page is rendered once before the address is printed; a kernel stays pre-heated
    assert calls == ["ready", "warm-up", "stop"] and started["pool_size"] == 2


@pytest.mark.slow
def test_real_server_needs_the_token(tmp_path: Path) -> None:
    catalog = tmp_path / "c.duckdb"
    Catalog(catalog).add_user("ana")
    server = start(catalog, token="sesame", log=tmp_path / "voila.log", preheat=False)
    try:
        server.wait_ready()
        base = f"http://127.0.0.1:{server.port}/"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(base + "voila/api/shutdown/x", timeout=10)
        assert refused.value.code in (401, 403)
        assert server.url == base + "?token=sesame"
        assert server.url_for("a b") == base + "?token=sesame&user=a%20b"
    finally:
        server.stop()
    assert server.process.poll() is not None
    assert not server.private_dir.exists()


@pytest.mark.slow
def test_warm_up_renders_the_page_once_and_leaves_the_pool_full(tmp_path: Path) -> None:
    catalog = tmp_path / "c.duckdb"
    Catalog(catalog).add_user("ana")
    server = start(catalog, log=tmp_path / "voila.log", pool_size=1)
    try:
        server.wait_ready()
        server.warm_up()
        log = (tmp_path / "voila.log").read_text(errors="replace")
        # Voila rendered the dashboard in a kernel of its own: the pool's kernel (the
        # first reviewer's) was neither used nor is it being replaced.
        assert log.count("Kernel started") == 2
        assert "Using pre-heated kernel" not in log
        assert "dashboard refused" in log  # the page was rendered, without a user
    finally:
        server.stop()


def test_serve_prints_a_ready_link_for_a_known_user(tmp_path: Path, monkeypatch) -> None:
    catalog = tmp_path / "c.duckdb"
    cat = Catalog(catalog)
    cat.add_user("ana")
    cat.create_project("Brain study", by="ana")

    class FakeServer:
        url = "http://127.0.0.1:9/?token=tok"

        def url_for(self, user: str) -> str:
            return f"{self.url}&user={user}"

        class process:
            @staticmethod
            def wait() -> int:
                return 0

        def wait_ready(self) -> None: ...
        def warm_up(self) -> None: ...
        def stop(self) -> None: ...

    monkeypatch.setattr(serve_mod, "start", lambda *a, **k: FakeServer())
    out = io.StringIO()
    serve_mod.serve(catalog, stream=out, user="ana")
    assert (
        "for you (ana): http://127.0.0.1:9/?token=tok&user=ana&project=Brain%20study"
        in out.getvalue()
    )
    out = io.StringIO()
    serve_mod.serve(catalog, stream=out, user="stranger")
    assert "for you" not in out.getvalue()


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
    import signal
    import socket
    import subprocess
    import time

    catalog = tmp_path / "c.duckdb"
    Catalog(catalog).add_user("ana")
    serve = subprocess.Popen(
        [sys.executable, "-m", "miqa_nb.cli", "--catalog", str(catalog), "serve"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert serve.stdout is not None
        address = ""
        while "token=" not in address:
            address = serve.stdout.readline()
            assert address, "serve ended before printing its address"
        port = int(address.split(":")[2].split("/")[0])
        (voila,) = _children(serve.pid)
        kernels = _children(voila)
        assert kernels  # pre-heated ones
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(30) == 128 + signal.SIGTERM
        deadline = time.monotonic() + 20
        while any(map(_alive, [voila, *kernels])) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [p for p in [voila, *kernels] if _alive(p)]
        with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
            pass
    finally:
        serve.kill()
        serve.wait()
