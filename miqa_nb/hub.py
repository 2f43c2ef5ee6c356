"""``miqa-nb hub``: JupyterHub for the catalog's reviewers.

The hub is JupyterHub with two classes of ours, which ``jupyterhub_config.py`` (at the
top of the source tree) names and explains:

- :class:`CatalogAuthenticator`: the hub's login form checks the catalog's users and
  passwords (``Catalog.check_password``: argon2, on a worker thread, not the hub's
  event loop); failed sign-ins are braked per user and per address, as the
  dashboard's own sign-in is (:class:`~miqa_nb.server.sessions.Throttle`). A name is
  taken as the catalog writes it (JupyterHub would lower its case).
- :class:`ReviewerSpawner`: each reviewer's server is ``miqa-nb serve``
  (:mod:`miqa_nb.serve`) on the dashboard, started as the hub's own account (no
  system user per reviewer) with the hub's ``MIQA_NB_*`` settings, the catalog named
  by ``MIQA_NB_CATALOG``. JupyterHub's variables tell the server its address, its
  user (``JUPYTERHUB_USER``) and its OAuth client, so browsers sign in once, at the
  hub, and a server admits its own reviewer only (:mod:`miqa_nb.server.hub`).

Every reviewer's server runs as one account, as ``miqa-nb serve`` does for all of them:
a page's kernel can do what that account can, so run the hub under an account whose
business is the catalog and the images, nothing else.

:func:`start_hub` starts JupyterHub (and with it configurable-http-proxy, its proxy,
found by :func:`find_proxy`) in a working folder of its own, which keeps the hub's
state (``jupyterhub.sqlite``, its cookie secret); :func:`hub_main` is the command.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from jupyterhub.auth import Authenticator
from jupyterhub.spawner import LocalProcessSpawner
from tornado import web
from traitlets import Unicode, default

from miqa_nb.catalog import Catalog, catalog_location, default_catalog_path
from miqa_nb.core.errors import MiqaError
from miqa_nb.core.processes import free_port, log_tail, start_logged, stop_process
from miqa_nb.core.settings import ROOTS_ENV
from miqa_nb.server.sessions import Throttle
from miqa_nb.store.database import CATALOG_ENV

__all__ = [
    "CONFIG_FILE",
    "PROXY_ENV",
    "CatalogAuthenticator",
    "Hub",
    "ReviewerSpawner",
    "find_proxy",
    "hub_command",
    "hub_main",
    "start_hub",
]

#: ``jupyterhub_config.py`` of the source tree (``MIQA_NB_HUB_CONFIG`` overrides it).
CONFIG_FILE = Path(
    os.environ.get(
        "MIQA_NB_HUB_CONFIG", Path(__file__).resolve().parents[1] / "jupyterhub_config.py"
    )
)
#: Names the configurable-http-proxy program to run (else :func:`find_proxy` looks).
PROXY_ENV = "MIQA_NB_PROXY"
PROXY = "configurable-http-proxy"
#: Where ``scripts/setup.sh`` installs the proxy, under the virtual environment.
PROXY_IN_VENV = Path("node", "node_modules", ".bin", PROXY)
#: The hub's environment variables its servers inherit besides ``MIQA_NB_*`` (a
#: reviewer's name comes from the hub, never from the hub's shell).
NOT_PASSED = ("MIQA_NB_USER",)


def find_proxy(environ: Mapping[str, str] | None = None) -> str:
    """The configurable-http-proxy program: ``$MIQA_NB_PROXY``, else the one
    ``scripts/setup.sh`` installs under the virtual environment (``.venv/node``), else
    the one on ``PATH``.

    Raises
    ------
    MiqaError
        None is found (the message says how to install it).
    """
    env = os.environ if environ is None else environ
    named = env.get(PROXY_ENV, "")
    if named:
        if not (Path(named).is_file() and os.access(named, os.X_OK)):
            raise MiqaError(f"{PROXY_ENV}={named}: no such program; name the {PROXY} to run")
        return named
    for prefix in (Path(sys.prefix), Path(__file__).resolve().parents[1] / ".venv"):
        candidate = prefix / PROXY_IN_VENV
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    on_path = shutil.which(PROXY, path=env.get("PATH"))
    if on_path:
        return on_path
    raise MiqaError(
        f"JupyterHub's proxy ({PROXY}) is not installed: run `bash scripts/setup.sh` "
        f"(it installs it with npm into .venv/node), or `npm install -g {PROXY}`, or "
        f"set {PROXY_ENV} to the program"
    )


def _catalog_default() -> str:
    return os.environ.get(CATALOG_ENV) or str(default_catalog_path())


def _absolute(catalog: str) -> str:
    """A catalog file's absolute path; an address (``scheme://...``) as it is."""
    return catalog if "://" in catalog else str(Path(catalog).resolve())


class CatalogAuthenticator(Authenticator):
    """JupyterHub's login for the catalog's users (see the module)."""

    catalog = Unicode(
        help="The catalog whose users sign in (default: $MIQA_NB_CATALOG, else ./miqa.duckdb)."
    ).tag(config=True)

    @default("catalog")
    def _default_catalog(self) -> str:
        return _catalog_default()

    @default("allow_all")
    def _default_allow_all(self) -> bool:
        # the catalog is the list of who may sign in: only its users have passwords
        return True

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if "://" not in self.catalog and not Path(self.catalog).is_file():
            # Catalog() would start an empty one there, and nobody could sign in
            raise MiqaError(
                f"the hub's sign-in needs a catalog, and there is no catalog file at "
                f"{Path(self.catalog).resolve()}: set MIQA_NB_CATALOG (or "
                "c.CatalogAuthenticator.catalog) to the catalog whose users sign in"
            )
        self.throttle = Throttle()
        self._catalog: Catalog | None = None

    def normalize_username(self, username: str) -> str:
        """The name as given, less surrounding spaces (catalog names keep their case)."""
        name = username.strip()
        return str(self.username_map.get(name, name))

    def _check(self, name: str, password: str) -> bool:
        if self._catalog is None:
            self._catalog = Catalog(self.catalog)
        return self._catalog.check_password(name, password)

    async def authenticate(self, handler: web.RequestHandler, data: dict[str, str]) -> str | None:
        """The user's name when the catalog takes their password, else None.

        Raises
        ------
        tornado.web.HTTPError
            429 while the name or the address has had too many failures lately.
        """
        name = self.normalize_username(str(data.get("username") or ""))
        password = str(data.get("password") or "")
        keys = [f"addr:{handler.request.remote_ip}"] if handler is not None else []
        if name:
            keys.append(f"user:{name}")
        if self.throttle.retry_after(keys) > 0:
            raise web.HTTPError(429, "too many failed sign-ins; try again in a minute")
        ok = bool(name and password) and await asyncio.get_running_loop().run_in_executor(
            None, self._check, name, password
        )
        if not ok:
            self.throttle.fail(keys)
            self.log.warning("failed sign-in for %r from %s", name, keys[0] if keys else "?")
            return None
        return name


class ReviewerSpawner(LocalProcessSpawner):
    """``miqa-nb serve`` for each reviewer, as the hub's own account (see the module)."""

    catalog = Unicode(
        help="The catalog the reviewers' servers share (default: $MIQA_NB_CATALOG, "
        "else ./miqa.duckdb)."
    ).tag(config=True)

    @default("catalog")
    def _default_catalog(self) -> str:
        return _catalog_default()

    @default("cmd")
    def _default_cmd(self) -> list[str]:
        return [sys.executable, "-m", "miqa_nb.cli", "serve"]

    @default("start_timeout")
    def _default_start_timeout(self) -> int:
        return 180  # a server renders the dashboard once before it says it is ready

    @default("http_timeout")
    def _default_http_timeout(self) -> int:
        return 120

    def make_preexec_fn(self, name: str) -> None:
        return None  # runs as the hub's account: no system user per reviewer

    def user_env(self, env: dict[str, str]) -> dict[str, str]:
        """The hub account's home and login name (the servers run as that account)."""
        for name in ("HOME", "USER", "LOGNAME", "LANG"):
            if os.environ.get(name):
                env[name] = os.environ[name]
        return env

    def get_env(self) -> dict[str, str]:
        """JupyterHub's variables, the hub's ``MIQA_NB_*`` settings, the catalog."""
        env: dict[str, str] = super().get_env()
        for name, value in os.environ.items():
            if name.startswith("MIQA_NB_") and name not in NOT_PASSED:
                env[name] = value
        env[CATALOG_ENV] = _absolute(self.catalog)
        return env

    async def move_certs(self, paths: dict[str, str]) -> dict[str, str]:
        return paths  # the hub's own account reads them where they are


# ------------------------------------------------------------------ the command


@dataclass
class Hub:
    """A running JupyterHub (see :func:`start_hub`)."""

    process: subprocess.Popen[bytes]
    url: str
    state_dir: Path
    log_path: Path | None = None

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until the hub answers through its proxy; raise if it exits first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise MiqaError(
                    f"JupyterHub exited with status {self.process.returncode} before it "
                    "answered" + self._log_tail()
                )
            try:
                with urllib.request.urlopen(self.url + "hub/api/", timeout=5) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise MiqaError(f"JupyterHub did not answer at {self.url} within {timeout:.0f} s")

    def _log_tail(self, lines: int = 30) -> str:
        return log_tail(self.log_path, lines)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the hub; it stops the reviewers' servers and its proxy first."""
        stop_process(self.process, timeout)


def hub_command(
    *,
    port: int = 8000,
    ip: str = "127.0.0.1",
    hub_port: int | None = None,
    proxy_api_port: int | None = None,
    config: str | os.PathLike[str] = CONFIG_FILE,
    python: str = sys.executable,
) -> list[str]:
    """JupyterHub's command line (no secret on it): the config file, where it listens
    (``ip:port``), and, when given, the ports of its own API and of the proxy's API
    (default JupyterHub's, 8081 and 8001, on 127.0.0.1)."""
    command = [
        python,
        "-m",
        "jupyterhub",
        "-f",
        str(Path(config).resolve()),
        f"--port={int(port)}",
        f"--ip={ip}",
    ]
    if hub_port is not None:
        command.append(f"--JupyterHub.hub_port={int(hub_port)}")
    if proxy_api_port is not None:
        command.append(f"--ConfigurableHTTPProxy.api_url=http://127.0.0.1:{int(proxy_api_port)}")
    return command


def start_hub(
    catalog: str | os.PathLike[str],
    *,
    state_dir: str | os.PathLike[str],
    port: int = 8000,
    ip: str = "127.0.0.1",
    hub_port: int | None = None,
    proxy_api_port: int | None = None,
    config: str | os.PathLike[str] = CONFIG_FILE,
    log: IO[bytes] | str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Hub:
    """Start JupyterHub for ``catalog``'s reviewers in the background; return at once.

    ``state_dir`` is its working folder (made if missing): the hub's database and
    cookie secret live there, so a restarted hub knows its users' servers. The hub
    learns the catalog from ``MIQA_NB_CATALOG`` and its proxy from ``MIQA_NB_PROXY``
    (:func:`find_proxy`), set here; ``log`` takes the hub's output (and its servers').
    """
    env = dict(os.environ if environ is None else environ)
    catalog = str(catalog)
    if "://" not in catalog and not Path(catalog).is_file():
        raise MiqaError(
            f"no catalog file at {Path(catalog).resolve()}; give the right --catalog (or "
            "MIQA_NB_CATALOG), or start one with `miqa-nb users add NAME` or `miqa-nb demo`"
        )
    if not Path(config).is_file():
        raise MiqaError(f"the hub's configuration {config} is missing")
    env[CATALOG_ENV] = _absolute(catalog)
    env[PROXY_ENV] = find_proxy(env)
    env["PYTHONUNBUFFERED"] = "1"
    state = Path(state_dir).resolve()
    state.mkdir(parents=True, exist_ok=True)
    command = hub_command(
        port=port, ip=ip, hub_port=hub_port, proxy_api_port=proxy_api_port, config=config
    )
    process, log_path = start_logged(command, cwd=state, env=env, log=log)
    host = "127.0.0.1" if ip in ("", "0.0.0.0", "::") else ip
    return Hub(process, f"http://{host}:{port}/", state, log_path)


def hub_main(args: argparse.Namespace) -> int:
    """Run ``miqa-nb hub`` until interrupted: ``args`` has ``catalog`` (or None),
    ``port``, ``ip``, ``state_dir`` (or None: ``<catalog>-hub`` beside the catalog) and
    ``data_roots`` (None or folders: the servers' ``MIQA_NB_DATA_ROOTS``)."""
    named = getattr(args, "catalog", None)
    try:
        catalog = catalog_location(named) if named else default_catalog_path()
        # beside the catalog file; for a database, in its local folder (store.postgres)
        home = catalog if isinstance(catalog, Path) else Catalog(catalog).path
        state = args.state_dir or home.parent / f"{home.stem}-hub"
        env = dict(os.environ)
        if getattr(args, "data_roots", None):  # --data-root: the servers' data roots
            env[ROOTS_ENV] = os.pathsep.join(str(Path(r).resolve()) for r in args.data_roots)
        # the hub's API and the proxy's are internal (loopback): free ports, so a hub
        # already running on this machine (JupyterHub's 8081 and 8001) is no obstacle
        hub = start_hub(
            catalog,
            state_dir=state,
            port=args.port,
            ip=args.ip,
            hub_port=free_port(),
            proxy_api_port=free_port(),
            environ=env,
        )
    except MiqaError as exc:
        print(f"miqa-nb hub: {exc}", file=sys.stderr)
        return 1

    def leave(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    # a service manager's stop or a closed terminal stops the hub (and through it the
    # reviewers' servers and the proxy) instead of leaving it running
    previous = {sig: signal.signal(sig, leave) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        try:
            hub.wait_ready()
        except MiqaError as exc:
            print(f"miqa-nb hub: {exc}", file=sys.stderr)
            return 1
        print(f"miqa-nb hub for {catalog} (its state in {state})", flush=True)
        print(f"  {hub.url}: reviewers sign in with their catalog user and password", flush=True)
        return hub.process.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        hub.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
