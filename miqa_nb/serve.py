"""``miqa-nb serve``: the reviewer dashboard, served by Voila.

This module owns how the dashboard is served; what it shows is
``voila_app/dashboard.ipynb`` (which calls :mod:`miqa_nb.dashboard.app`).

Contract
--------
- Voila listens on 127.0.0.1 with a token (random unless given), ``--no-browser``,
  tracebacks hidden from pages (``--show_tracebacks=False``; the dashboard shows
  readable messages and logs tracebacks to this process's stderr), and pre-heated
  kernels. Settings that do not depend on the run are in ``voila_app/voila.json``.
- Every page gets its own kernel; all kernels share one catalog file, which
  serialises access across processes (:mod:`miqa_nb.store.database`).
- Kernels learn the catalog from ``MIQA_NB_CATALOG`` and how to find their user from
  ``MIQA_NB_IDENTITY``: ``hub`` under JupyterHub (``JUPYTERHUB_USER``; the query string
  is ignored), else ``query``: the page URL carries ``?token=...&user=NAME`` and the
  notebook reads it with :func:`voila.utils.get_query_string`, which also works with
  pre-heated kernels (the kernel waits for the request's details). Standalone, the
  token is the only secret: whoever holds it may open the page as any catalog user.
- Behind JupyterHub (``JUPYTERHUB_SERVICE_PREFIX`` set), Voila's ``--base_url`` is
  that prefix and the port defaults to the one in ``JUPYTERHUB_SERVICE_URL``.
- Voila, Jupyter and the kernels write to a private folder (``JUPYTER_*``,
  ``IPYTHONDIR``, ``MPLCONFIGDIR``), never to the home folder.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import webbrowser
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import quote, urlsplit

from miqa_nb.catalog import default_catalog_path
from miqa_nb.core.errors import MiqaError
from miqa_nb.dashboard.lifeline import IDLE_MINUTES_ENV, SERVE_TOKEN_ENV, SERVE_URL_ENV
from miqa_nb.dashboard.model import IDENTITY_ENV
from miqa_nb.dashboard.uploads import UPLOAD_DIR_ENV
from miqa_nb.store.database import CATALOG_ENV

__all__ = [
    "APP_DIR",
    "NOTEBOOK",
    "Server",
    "base_url_from_env",
    "free_port",
    "serve",
    "serve_main",
    "server_environment",
    "start",
    "voila_command",
]

#: ``voila_app/`` of the source tree (``MIQA_NB_VOILA_APP`` overrides it).
APP_DIR = Path(
    os.environ.get("MIQA_NB_VOILA_APP", Path(__file__).resolve().parents[1] / "voila_app")
)
NOTEBOOK = "dashboard.ipynb"
HOST = "127.0.0.1"
#: Folders Jupyter, IPython and Matplotlib would otherwise create in the home folder.
PRIVATE_DIRS = {
    "JUPYTER_DATA_DIR": "data",
    "JUPYTER_RUNTIME_DIR": "runtime",
    "JUPYTER_CONFIG_DIR": "config",
    "IPYTHONDIR": "ipython",
    "MPLCONFIGDIR": "matplotlib",
}


def base_url_from_env(environ: Mapping[str, str]) -> str:
    """``JUPYTERHUB_SERVICE_PREFIX`` (with slashes at both ends), else ``/``."""
    prefix = environ.get("JUPYTERHUB_SERVICE_PREFIX", "").strip()
    if not prefix:
        return "/"
    return "/" + prefix.strip("/") + "/" if prefix.strip("/") else "/"


def _hub_port(environ: Mapping[str, str]) -> int | None:
    url = environ.get("JUPYTERHUB_SERVICE_URL", "")
    return urlsplit(url).port if url else None


def free_port(host: str = HOST) -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def voila_command(
    catalog: str | os.PathLike[str],
    *,
    port: int,
    token: str,
    base_url: str = "/",
    app_dir: str | os.PathLike[str] = APP_DIR,
    preheat: bool = True,
    pool_size: int = 1,
    python: str = sys.executable,
) -> list[str]:
    """The command line that starts Voila on the dashboard notebook.

    ``catalog`` is not on the command line (kernels read ``MIQA_NB_CATALOG``, see
    :func:`server_environment`); it is taken so a caller cannot forget it.
    """
    if not token:
        raise MiqaError("the dashboard needs a token; pass one or let serve() choose one")
    if not str(catalog):
        raise MiqaError("the dashboard needs a catalog file")
    return [
        python,
        "-m",
        "voila",
        str(Path(app_dir) / NOTEBOOK),
        "--no-browser",
        f"--Voila.ip={HOST}",
        f"--port={int(port)}",
        f"--token={token}",
        f"--base_url={base_url}",
        "--show_tracebacks=False",
        f"--preheat_kernel={preheat}",
        f"--pool_size={int(pool_size) if preheat else 0}",
    ]


def server_environment(
    catalog: str | os.PathLike[str],
    private_dir: str | os.PathLike[str],
    *,
    environ: Mapping[str, str] | None = None,
    upload_dir: str | os.PathLike[str] | None = None,
    idle_minutes: float | None = None,
) -> dict[str, str]:
    """The environment of the Voila process, which its kernels inherit.

    Sets ``MIQA_NB_CATALOG`` (absolute), ``MIQA_NB_IDENTITY`` (``hub`` when
    ``JUPYTERHUB_USER`` is set, else ``query``), the private ``JUPYTER_*`` folders,
    ``MIQA_NB_UPLOAD_DIR`` and ``MIQA_NB_IDLE_MINUTES`` (after how long without an
    action a review gives its claims up) when given. ``MIQA_NB_USER`` is removed: a
    served page's user comes from the hub or the page URL, never from the server's shell.
    """
    env = dict(os.environ if environ is None else environ)
    env[CATALOG_ENV] = str(Path(catalog).resolve())
    env[IDENTITY_ENV] = "hub" if env.get("JUPYTERHUB_USER") else "query"
    env.pop("MIQA_NB_USER", None)
    for name, sub in PRIVATE_DIRS.items():
        env[name] = str(Path(private_dir) / sub)
    if upload_dir is not None:
        env[UPLOAD_DIR_ENV] = str(Path(upload_dir).resolve())
    if idle_minutes is not None:
        if not idle_minutes > 0:
            raise MiqaError(f"--idle-minutes must be more than 0; {idle_minutes!r} was provided")
        env[IDLE_MINUTES_ENV] = f"{idle_minutes:g}"
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass
class Server:
    """A running dashboard server (see :func:`start`)."""

    process: subprocess.Popen[bytes]
    port: int
    token: str
    base_url: str
    private_dir: Path
    log_path: Path | None = None
    _owns_private_dir: bool = field(default=False, repr=False)

    @property
    def url(self) -> str:
        """The dashboard's address, token included."""
        return f"http://{HOST}:{self.port}{self.base_url}?token={quote(self.token)}"

    def url_for(self, user: str) -> str:
        """The dashboard's address for one reviewer (standalone: ``&user=NAME``)."""
        return f"{self.url}&user={quote(user)}"

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until Voila accepts connections; raise if it exits or takes too long."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise MiqaError(
                    f"Voila exited with status {self.process.returncode} before it answered"
                    + self._log_tail()
                )
            try:
                with socket.create_connection((HOST, self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise MiqaError(
            f"Voila did not answer on port {self.port} within {timeout:.0f} s" + self._log_tail()
        )

    def warm_up(self, timeout: float = 60.0) -> None:
        """Have Voila render the page once, without a user (a refusal page).

        The first page a fresh Voila server renders takes seconds longer than the next
        ones (template and exporter set-up); doing it here keeps that wait off the first
        reviewer. It asks for another theme than the pre-heated pages', so Voila renders
        it in a kernel of its own: the pool stays full for the reviewers, and no
        replacement kernel starts while the first of them opens the page.
        """
        try:
            with urllib.request.urlopen(self.url + "&theme=dark", timeout=timeout) as answer:
                answer.read()
        except OSError as exc:  # best effort: the page itself will say what is wrong
            print(f"miqa-nb serve: warm-up request failed: {exc}", file=sys.stderr)

    def _log_tail(self, lines: int = 30) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        text = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        return "; its log ends:\n" + "\n".join(text)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop Voila (and with it, its kernels) and remove the private folder it owns."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        if self._owns_private_dir:
            shutil.rmtree(self.private_dir, ignore_errors=True)


def start(
    catalog: str | os.PathLike[str],
    *,
    port: int | None = None,
    token: str | None = None,
    private_dir: str | os.PathLike[str] | None = None,
    upload_dir: str | os.PathLike[str] | None = None,
    log: IO[bytes] | str | os.PathLike[str] | None = None,
    preheat: bool = True,
    pool_size: int = 1,
    app_dir: str | os.PathLike[str] = APP_DIR,
    idle_minutes: float | None = None,
    environ: Mapping[str, str] | None = None,
) -> Server:
    """Start Voila on the dashboard in the background; return at once.

    Parameters
    ----------
    catalog : path-like
        The catalog file; it must exist.
    port : int, optional
        Default: the port of ``JUPYTERHUB_SERVICE_URL``, else a free one.
    token : str, optional
        Default: a random one (``secrets.token_urlsafe``).
    private_dir : path-like, optional
        Folder for Jupyter's files; default a new temporary folder, removed by
        :meth:`Server.stop`.
    upload_dir : path-like, optional
        Where uploaded scans go (default beside the catalog).
    preheat, pool_size
        Keep ``pool_size`` kernels started and the notebook's imports done, waiting
        for a page (each page still gets a kernel of its own).
    log : file, path or None
        Where Voila's output (and the kernels' logs and tracebacks) goes; default
        this process's stdout/stderr.
    idle_minutes : float, optional
        A review page gives its claims up after this long without an action
        (default 10).
    environ : mapping, optional
        The environment Voila starts from (default this process's).
    """
    catalog = Path(catalog)
    if not catalog.is_file():
        raise MiqaError(
            f"no catalog file at {catalog}; create one with `miqa-nb users add NAME --catalog "
            f"{catalog}` or `miqa-nb demo`"
        )
    if not (Path(app_dir) / NOTEBOOK).is_file():
        raise MiqaError(f"the dashboard notebook {Path(app_dir) / NOTEBOOK} is missing")
    port = port or _hub_port(os.environ) or free_port()
    token = token or secrets.token_urlsafe(24)
    owns = private_dir is None
    private = Path(private_dir or tempfile.mkdtemp(prefix="miqa-nb-serve-"))
    for sub in PRIVATE_DIRS.values():
        (private / sub).mkdir(parents=True, exist_ok=True)
    base_url = base_url_from_env(os.environ)
    command = voila_command(
        catalog,
        port=port,
        token=token,
        base_url=base_url,
        app_dir=app_dir,
        preheat=preheat,
        pool_size=pool_size,
    )
    env = server_environment(
        catalog, private, environ=environ, upload_dir=upload_dir, idle_minutes=idle_minutes
    )
    _trust(Path(app_dir) / NOTEBOOK, Path(env["JUPYTER_DATA_DIR"]))
    # a page's kernel asks the server whether its page is still open (and, once it has
    # gone, to end the kernel): see miqa_nb.dashboard.lifeline
    env[SERVE_URL_ENV] = f"http://{HOST}:{port}{base_url}"
    env[SERVE_TOKEN_ENV] = token
    log_path: Path | None = None
    out: IO[bytes] | int | None = None
    if isinstance(log, str | os.PathLike):
        log_path = Path(log)
        out = open(log_path, "ab")  # noqa: SIM115 - handed to the child, closed below
    elif log is not None:
        out = log
    try:
        process = subprocess.Popen(
            command,
            cwd=app_dir,  # Voila reads voila.json from its working folder
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT if out is not None else None,
            stdin=subprocess.DEVNULL,
        )
    finally:
        if log_path is not None and out is not None and not isinstance(out, int):
            out.close()
    return Server(process, port, token, base_url, private, log_path, owns)


def _trust(notebook: Path, data_dir: Path) -> None:
    """Sign the dashboard notebook in the server's own notary (its Jupyter data folder).

    Jupyter trusts a notebook whose signature its notary holds; unsigned, every page
    logs "Notebook dashboard.ipynb is not trusted", a warning nobody can act on. The
    notebook has no outputs to trust; signing only says it is ours.
    """
    import nbformat
    from nbformat.sign import NotebookNotary

    try:
        notary = NotebookNotary(data_dir=str(data_dir))
        notary.sign(nbformat.read(notebook, as_version=4))
        notary.store.close()
    except Exception as exc:  # best effort: an unsigned notebook is served all the same
        print(f"miqa-nb serve: could not sign {notebook.name}: {exc}", file=sys.stderr)


def serve(
    catalog: str | os.PathLike[str],
    port: int | None = None,
    token: str | None = None,
    open_browser: bool = False,
    *,
    stream: IO[str] | None = None,
    user: str | None = None,
    idle_minutes: float | None = None,
) -> int:
    """Serve the dashboard until interrupted; print its address first.

    ``user``, when the catalog knows them, also gets a ready link to their first
    project's review. Returns Voila's exit status (0 after Ctrl-C).
    """
    out = stream or sys.stdout
    with _exit_on_termination():
        # two pre-heated kernels: the first two reviewers get one each
        server = start(catalog, port=port, token=token, pool_size=2, idle_minutes=idle_minutes)
        try:
            server.wait_ready()
            server.warm_up()
            hub = bool(os.environ.get("JUPYTERHUB_USER"))
            print(f"miqa-nb dashboard for {Path(catalog).resolve()}", file=out)
            if hub:
                print(f"  {server.url}  (reviewer: {os.environ['JUPYTERHUB_USER']})", file=out)
            else:
                print(f"  {server.url}&user=NAME", file=out)
                print(
                    "  NAME is a user of the catalog (miqa-nb users list); add &project=P to",
                    file=out,
                )
                print("  open project P's review where NAME left off", file=out)
                link = _ready_link(server, catalog, user)
                if link:
                    print(f"  for you ({user}): {link}", file=out)
            out.flush()
            if open_browser:
                webbrowser.open(server.url)
            return server.process.wait()
        except KeyboardInterrupt:
            return 0
        finally:
            server.stop()


@contextmanager
def _exit_on_termination() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP (a service manager's stop, a closed
    terminal) end this process through its ``finally`` blocks, which stop Voila and its
    kernels; Python's default ends it at once and leaves them running, holding the port.
    (Signal handlers can only be set on the main thread; elsewhere this does nothing.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def leave(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = {sig: signal.signal(sig, leave) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _ready_link(server: Server, catalog: str | os.PathLike[str], user: str | None) -> str:
    """``user``'s link to the review of the first project they may see, or ''."""
    if not user:
        return ""
    from miqa_nb.catalog import Catalog

    try:
        cat = Catalog(catalog)
        cat.standing(user)  # refuses a name the catalog does not know
        projects = [
            str(p) for p in cat.projects()["project"] if cat.standing(user, str(p)).can_read
        ]
    except MiqaError:  # not a user of this catalog: only the general address
        return ""
    link = server.url_for(user)
    return f"{link}&project={quote(projects[0])}" if projects else link


def serve_main(args: argparse.Namespace | Sequence[str] | None = None) -> int:
    """Run ``miqa-nb serve``: ``args`` has ``catalog`` (path or None), ``port`` and
    ``token`` (None for defaults), or is an argument list to parse.

    Returns the exit status; a missing catalog prints a message and returns 1.
    """
    if not isinstance(args, argparse.Namespace):
        args = _parser().parse_args(args)
    catalog = getattr(args, "catalog", None) or default_catalog_path()
    try:
        return serve(
            catalog,
            port=getattr(args, "port", None),
            token=getattr(args, "token", None),
            open_browser=getattr(args, "open_browser", False),
            user=getattr(args, "user", None) or os.environ.get("MIQA_NB_USER"),
            idle_minutes=getattr(args, "idle_minutes", None),
        )
    except MiqaError as exc:
        print(f"miqa-nb serve: {exc}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="miqa-nb serve", description="serve the dashboard")
    parser.add_argument("--catalog", type=Path, default=None)
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--token", default=None)
    parser.add_argument("--open-browser", action="store_true")
    parser.add_argument(
        "--idle-minutes",
        type=float,
        default=None,
        metavar="M",
        help="a review page gives its claims up after M minutes without an action (10)",
    )
    return parser
