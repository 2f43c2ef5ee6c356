"""``miqa-nb serve``: the reviewer dashboard behind the catalog's sign-in.

This module owns how the dashboard is served; what it shows is
``voila_app/dashboard.ipynb`` (which calls :mod:`miqa_nb.dashboard.app`), and the
server process itself is :mod:`miqa_nb.server` (Voila's application with sign-in).

Contract
--------
- The server listens on 127.0.0.1 unless ``--ip`` says otherwise (with
  ``--certfile``/``--keyfile`` for HTTPS; a non-local address without them is served
  with a warning), ``--no-browser``, tracebacks hidden from pages
  (``--show_tracebacks=False``; the dashboard shows readable messages and logs
  tracebacks to this process's stderr), and pre-heated kernels. Settings that do not
  depend on the run are in ``voila_app/voila.json``.
- Every request is a catalog user's (:mod:`miqa_nb.server.identity`): the browser signs
  in on the sign-in page (or with a one-time link, :meth:`Server.signin_link`),
  scripts with HTTP Basic, an API token or XNAT's ``JSESSIONID``. No secret is on a
  command line or in the kernels' environment, except each kernel's own key.
- Every page gets its own kernel; all kernels share one catalog file, which
  serialises access across processes (:mod:`miqa_nb.store.database`).
- Kernels learn the catalog from ``MIQA_NB_CATALOG`` and how to find their user from
  ``MIQA_NB_IDENTITY``: ``hub`` under JupyterHub (``JUPYTERHUB_USER``: the hub verified
  it, and the server admits nobody else), else ``server``: the kernel asks the server,
  with its key, which signed-in page took it (:mod:`miqa_nb.dashboard.lifeline`).
- Behind JupyterHub (``JUPYTERHUB_SERVICE_PREFIX`` set), Voila's ``--base_url`` is
  that prefix and the port defaults to the one in ``JUPYTERHUB_SERVICE_URL``. Spawned
  by JupyterHub (:func:`under_hub`: ``miqa-nb hub``, :mod:`miqa_nb.hub`), browsers sign
  in at the hub, whose OAuth admits the server's own user only
  (:class:`miqa_nb.server.hub.HubIdentityProvider`), and one kernel waits pre-heated
  (the server is one reviewer's).
- Voila, Jupyter and the kernels write to a private folder (``JUPYTER_*``,
  ``IPYTHONDIR``, ``MPLCONFIGDIR``), never to the home folder.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import ssl
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

from miqa_nb.catalog import catalog_location, default_catalog_path
from miqa_nb.core.errors import MiqaError
from miqa_nb.core.processes import free_port, log_tail, start_logged, stop_process
from miqa_nb.dashboard.lifeline import IDLE_MINUTES_ENV, SERVE_URL_ENV
from miqa_nb.dashboard.model import IDENTITY_ENV
from miqa_nb.dashboard.uploads import UPLOAD_DIR_ENV
from miqa_nb.store.database import CATALOG_ENV

__all__ = [
    "APP_DIR",
    "NOTEBOOK",
    "Server",
    "add_serve_options",
    "base_url_from_env",
    "free_port",
    "serve",
    "serve_main",
    "server_command",
    "server_environment",
    "start",
    "under_hub",
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


#: What JupyterHub sets in a server it spawned, and its OAuth needs (the API token is
#: a secret: never on a command line, never in a kernel's environment).
HUB_ENV = ("JUPYTERHUB_API_TOKEN", "JUPYTERHUB_CLIENT_ID", "JUPYTERHUB_USER")
#: The identity provider of a server JupyterHub spawned.
HUB_IDENTITY = "miqa_nb.server.hub.HubIdentityProvider"


def under_hub(environ: Mapping[str, str]) -> bool:
    """Whether JupyterHub spawned this server: every variable of :data:`HUB_ENV` set.

    >>> under_hub({"JUPYTERHUB_USER": "ana"})  # a user alone: the catalog's sign-in
    False
    """
    return all(environ.get(name) for name in HUB_ENV)


def base_url_from_env(environ: Mapping[str, str]) -> str:
    """``JUPYTERHUB_SERVICE_PREFIX`` (with slashes at both ends), else ``/``."""
    prefix = environ.get("JUPYTERHUB_SERVICE_PREFIX", "").strip()
    if not prefix:
        return "/"
    return "/" + prefix.strip("/") + "/" if prefix.strip("/") else "/"


def _hub_port(environ: Mapping[str, str]) -> int | None:
    url = environ.get("JUPYTERHUB_SERVICE_URL", "")
    return urlsplit(url).port if url else None


def server_command(
    catalog: str | os.PathLike[str],
    *,
    port: int,
    base_url: str = "/",
    ip: str = HOST,
    certfile: str | os.PathLike[str] | None = None,
    keyfile: str | os.PathLike[str] | None = None,
    app_dir: str | os.PathLike[str] = APP_DIR,
    preheat: bool = True,
    pool_size: int = 1,
    python: str = sys.executable,
    hub: bool = False,
) -> list[str]:
    """The command line that starts the server on the dashboard notebook.

    It holds no secret (any local user may read it with ``ps``). ``catalog`` is not on
    it (the server and kernels read ``MIQA_NB_CATALOG``, see
    :func:`server_environment`); it is taken so a caller cannot forget it. ``hub``:
    JupyterHub spawned the server (:func:`under_hub`), whose OAuth signs browsers in.
    """
    if not str(catalog):
        raise MiqaError("the dashboard needs a catalog file")
    if keyfile and not certfile:
        raise MiqaError("--keyfile needs --certfile (the certificate of that key)")
    command = [
        python,
        "-m",
        "miqa_nb.server",
        str(Path(app_dir) / NOTEBOOK),
        "--no-browser",
        f"--Voila.ip={ip}",
        f"--port={int(port)}",
        f"--base_url={base_url}",
        "--show_tracebacks=False",
        f"--preheat_kernel={preheat}",
        f"--pool_size={int(pool_size) if preheat else 0}",
    ]
    if hub:
        command.append(f"--Voila.identity_provider_class={HUB_IDENTITY}")
    if certfile:
        command.append(f"--certfile={Path(certfile).resolve()}")
    if keyfile:
        command.append(f"--keyfile={Path(keyfile).resolve()}")
    return command


def _location(catalog: str | os.PathLike[str]) -> Path | str:
    """The catalog as the server's processes name it: a file's absolute path, or a
    PostgreSQL database's URL as given."""
    found = catalog_location(catalog)
    return found if isinstance(found, str) else found.resolve()


def _shown(catalog: str | os.PathLike[str]) -> str:
    """The catalog as printed: a URL without its password."""
    found = _location(catalog)
    if isinstance(found, Path):
        return str(found)
    from miqa_nb.store.postgres import shown_url

    return shown_url(found)


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
    ``JUPYTERHUB_USER`` is set, else ``server``), the private ``JUPYTER_*`` folders,
    ``MIQA_NB_UPLOAD_DIR`` and ``MIQA_NB_IDLE_MINUTES`` (after how long without an
    action a review gives its claims up) when given. ``MIQA_NB_USER`` is removed: a
    served page's user comes from the hub or the page URL, never from the server's shell.
    """
    env = dict(os.environ if environ is None else environ)
    env[CATALOG_ENV] = str(_location(catalog))
    env[IDENTITY_ENV] = "hub" if env.get("JUPYTERHUB_USER") else "server"
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
    base_url: str
    private_dir: Path
    catalog: Path | str
    log_path: Path | None = None
    ip: str = HOST
    scheme: str = "http"
    _owns_private_dir: bool = field(default=False, repr=False)

    @property
    def url(self) -> str:
        """The dashboard's address (it asks a browser to sign in)."""
        host = HOST if self.ip in ("", "0.0.0.0", "::") else self.ip
        return f"{self.scheme}://{host}:{self.port}{self.base_url}"

    def signin_link(self, user: str, *, project: str | None = None, minutes: float = 30) -> str:
        """A one-time sign-in link for ``user`` that opens the dashboard (on
        ``project``'s review when given). Made by the catalog's file owner: whoever may
        write the catalog may make one (``miqa-nb users link`` does the same)."""
        from miqa_nb.catalog import Catalog

        secret = Catalog(self.catalog).create_signin_link(user, by=user, minutes=minutes)
        target = self.base_url + (f"?project={quote(project)}" if project else "")
        return f"{self.url}login?link={quote(secret)}&next={quote(target)}"

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Wait until the server has warmed up (``miqa/ready`` answers 200: it has
        rendered the page once, so the first reviewer's page is as quick as the next);
        raise if it exits or takes too long."""
        deadline = time.monotonic() + timeout
        context = None
        if self.scheme == "https":  # our own server, perhaps with a self-signed certificate
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise MiqaError(
                    f"the server exited with status {self.process.returncode} before it "
                    "answered" + self._log_tail()
                )
            try:
                with urllib.request.urlopen(
                    self.url + "miqa/ready", timeout=5, context=context
                ) as answer:
                    if answer.status == 200:
                        return
            except (OSError, ValueError):  # not listening yet, or 503: warming up
                pass
            time.sleep(0.2)
        raise MiqaError(
            f"the server did not get ready on port {self.port} within {timeout:.0f} s"
            + self._log_tail()
        )

    def _log_tail(self, lines: int = 30) -> str:
        return log_tail(self.log_path, lines)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server (and with it, its kernels); remove the private folder it owns."""
        stop_process(self.process, timeout)
        if self._owns_private_dir:
            shutil.rmtree(self.private_dir, ignore_errors=True)


def start(
    catalog: str | os.PathLike[str],
    *,
    port: int | None = None,
    ip: str = HOST,
    certfile: str | os.PathLike[str] | None = None,
    keyfile: str | os.PathLike[str] | None = None,
    private_dir: str | os.PathLike[str] | None = None,
    upload_dir: str | os.PathLike[str] | None = None,
    log: IO[bytes] | str | os.PathLike[str] | None = None,
    preheat: bool = True,
    pool_size: int = 1,
    app_dir: str | os.PathLike[str] = APP_DIR,
    idle_minutes: float | None = None,
    environ: Mapping[str, str] | None = None,
) -> Server:
    """Start the dashboard's server in the background; return at once.

    Parameters
    ----------
    catalog : path-like
        The catalog file; it must exist. Its users sign in.
    port : int, optional
        Default: the port of ``JUPYTERHUB_SERVICE_URL``, else a free one.
    ip : str
        The address to listen on (default 127.0.0.1, this machine only).
    certfile, keyfile : path-like, optional
        Serve HTTPS with this certificate and key.
    private_dir : path-like, optional
        Folder for Jupyter's files; default a new temporary folder, removed by
        :meth:`Server.stop`.
    upload_dir : path-like, optional
        Where uploaded scans go (default beside the catalog).
    preheat, pool_size
        Keep ``pool_size`` kernels started and the notebook's imports done, waiting
        for a page (each page still gets a kernel of its own).
    log : file, path or None
        Where the server's output (and the kernels' logs and tracebacks) goes; default
        this process's stdout/stderr.
    idle_minutes : float, optional
        A review page gives its claims up after this long without an action
        (default 10).
    environ : mapping, optional
        The environment the server starts from (default this process's).
    """
    catalog = _location(catalog)
    if isinstance(catalog, Path) and not catalog.is_file():
        raise MiqaError(
            f"no catalog file at {catalog}; create one with `miqa-nb users add NAME --catalog "
            f"{catalog}` or `miqa-nb demo`"
        )
    if not (Path(app_dir) / NOTEBOOK).is_file():
        raise MiqaError(f"the dashboard notebook {Path(app_dir) / NOTEBOOK} is missing")
    for name, given in (("--certfile", certfile), ("--keyfile", keyfile)):
        if given and not Path(given).is_file():
            raise MiqaError(f"{name} {given}: no such file")
    port = port or _hub_port(os.environ) or free_port()
    owns = private_dir is None
    private = Path(private_dir or tempfile.mkdtemp(prefix="miqa-nb-serve-"))
    for sub in PRIVATE_DIRS.values():
        (private / sub).mkdir(parents=True, exist_ok=True)
    base_url = base_url_from_env(os.environ)
    command = server_command(
        catalog,
        port=port,
        base_url=base_url,
        ip=ip,
        certfile=certfile,
        keyfile=keyfile,
        app_dir=app_dir,
        preheat=preheat,
        pool_size=pool_size,
        hub=under_hub(os.environ if environ is None else environ),
    )
    env = server_environment(
        catalog, private, environ=environ, upload_dir=upload_dir, idle_minutes=idle_minutes
    )
    _trust(Path(app_dir) / NOTEBOOK, Path(env["JUPYTER_DATA_DIR"]))
    scheme = "https" if certfile else "http"
    # a page's kernel asks the server, with its own key, which page took it and whether
    # that page is still open: see miqa_nb.dashboard.lifeline
    host = HOST if ip in ("", "0.0.0.0", "::") else ip
    env[SERVE_URL_ENV] = f"{scheme}://{host}:{port}{base_url}"
    # Voila reads voila.json from its working folder
    process, log_path = start_logged(command, cwd=app_dir, env=env, log=log)
    return Server(process, port, base_url, private, catalog, log_path, ip, scheme, owns)


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
    open_browser: bool = False,
    *,
    stream: IO[str] | None = None,
    links_for: Sequence[str] = (),
    ip: str = HOST,
    certfile: str | os.PathLike[str] | None = None,
    keyfile: str | os.PathLike[str] | None = None,
    idle_minutes: float | None = None,
) -> int:
    """Serve the dashboard until interrupted; print its address first.

    Each user of ``links_for`` whom the catalog knows gets a one-time sign-in link
    (to their first project's review). Returns the server's exit status (0 after
    Ctrl-C).
    """
    out = stream or sys.stdout
    with _exit_on_termination():
        # two pre-heated kernels: the first two reviewers get one each (one under a
        # hub, whose server is one reviewer's)
        server = start(
            catalog,
            port=port,
            ip=ip,
            certfile=certfile,
            keyfile=keyfile,
            pool_size=1 if under_hub(os.environ) else 2,
            idle_minutes=idle_minutes,
        )
        try:
            server.wait_ready()
            print(f"miqa-nb dashboard for {_shown(catalog)}", file=out)
            print(f"  {server.url}", file=out)
            if os.environ.get("JUPYTERHUB_USER"):
                print(f"  (signed-in user: {os.environ['JUPYTERHUB_USER']} only)", file=out)
            else:
                print(
                    "  sign in with your catalog user and password; a superuser makes a",
                    file=out,
                )
                print("  one-time link with `miqa-nb users link NAME`", file=out)
            for user in links_for:
                link = _ready_link(server, user)
                if link:
                    print(f"  one-time sign-in link for {user}: {link}", file=out)
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


def _ready_link(server: Server, user: str) -> str:
    """A one-time link signing ``user`` in to the first project they may see, or ''."""
    from miqa_nb.catalog import Catalog

    try:
        cat = Catalog(server.catalog)
        cat.standing(user)  # refuses a name the catalog does not know
        projects = [
            str(p) for p in cat.projects()["project"] if cat.standing(user, str(p)).can_read
        ]
        return server.signin_link(user, project=projects[0] if projects else None)
    except MiqaError as exc:  # not a user of this catalog, or a read-only catalog
        print(f"miqa-nb serve: no sign-in link for {user}: {exc}", file=sys.stderr)
        return ""


def serve_main(args: argparse.Namespace | Sequence[str] | None = None) -> int:
    """Run ``miqa-nb serve``: ``args`` has ``catalog`` (path or None), ``port``, ``ip``,
    ``certfile``, ``keyfile``, ``link_for`` (None for defaults), or is an argument list
    to parse.

    Returns the exit status; a missing catalog prints a message and returns 1.
    """
    if not isinstance(args, argparse.Namespace):
        args = _parser().parse_args(args)
    named = getattr(args, "catalog", None)
    try:
        return serve(
            catalog_location(named) if named else default_catalog_path(),
            port=getattr(args, "port", None),
            open_browser=getattr(args, "open_browser", False),
            links_for=list(getattr(args, "link_for", None) or ()),
            ip=getattr(args, "ip", None) or HOST,
            certfile=getattr(args, "certfile", None),
            keyfile=getattr(args, "keyfile", None),
            idle_minutes=getattr(args, "idle_minutes", None),
        )
    except MiqaError as exc:
        print(f"miqa-nb serve: {exc}", file=sys.stderr)
        return 1


def add_serve_options(parser: argparse.ArgumentParser) -> None:
    """The options of ``miqa-nb serve`` (shared with the command line's parser)."""
    parser.add_argument("--port", type=int, default=None, help="port (default: a free one)")
    parser.add_argument(
        "--ip", default=None, help="address to listen on (default 127.0.0.1: this machine only)"
    )
    parser.add_argument("--certfile", default=None, help="TLS certificate: serve HTTPS")
    parser.add_argument("--keyfile", default=None, help="TLS private key of --certfile")
    parser.add_argument(
        "--link-for",
        action="append",
        default=None,
        metavar="USER",
        help="print a one-time sign-in link for USER (repeatable)",
    )
    parser.add_argument(
        "--idle-minutes",
        type=float,
        default=None,
        metavar="M",
        help="a review page gives its claims up after M minutes without an action, and "
        "says so (default 10)",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="miqa-nb serve", description="serve the dashboard")
    parser.add_argument("--catalog", default=None)
    parser.add_argument("--open-browser", action="store_true")
    add_serve_options(parser)
    return parser
