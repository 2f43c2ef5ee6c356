"""XNAT's import service and prearchive in any Jupyter Server: the server extension.

Enabled as Jupyter Server enables its extensions::

    jupyter server extension enable miqa_nb.server
    jupyter server --ServerApp.jpserver_extensions='{"miqa_nb.server": true}'

it adds :func:`~miqa_nb.server.routes.xnat_routes` (the same list ``miqa-nb serve``
serves) under the server's base URL, and runs the same start-up sweeps
(:func:`~miqa_nb.server.routes.sweep_at_start`). The catalog is ``MIQA_NB_CATALOG``,
else ``./miqa.duckdb``, as for ``miqa-nb serve``; without a catalog file there, the
routes are not added and the log says why.

Who sends a request, two ways:

- the lab signs in with the catalog: ``c.ServerApp.identity_provider_class =
  "miqa_nb.server.identity.CatalogIdentityProvider"``. Then curl ``-u user:password``,
  API tokens and ``JSESSIONID`` work as on ``miqa-nb serve``, and the extension adds the
  catalog's sign-in pages (``login``, ``logout``, ``login/password``) for browsers;
- a personal server keeps Jupyter's own token (or JupyterHub's sign-in): the server is
  one person's, and a request it lets in acts as the catalog user ``MIQA_NB_USER``
  (else ``JUPYTERHUB_USER``) names (:func:`~miqa_nb.server.identity.act_as_owner`);
  with neither set, XNAT's calls answer 403 naming the fix. XNAT's sessions
  (``data/JSESSION``, ``data/services/auth``) need the catalog's sign-in and answer 403.

A request nobody signed in is never let through (XNAT's 401), and a server that lets
every request in (no token, no password) answers XNAT's calls with 403.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from jupyter_server.utils import url_path_join

from miqa_nb.catalog import catalog_location, default_catalog_path
from miqa_nb.server.identity import CatalogIdentityProvider
from miqa_nb.server.routes import RetryAfter, signin_routes, sweep_at_start, xnat_routes
from miqa_nb.store.database import CATALOG_ENV
from miqa_nb.store.postgres import shown_url

__all__ = ["load"]


def _resolved(location: str | os.PathLike[str]) -> Path | str:
    """A catalog file's absolute path, or a PostgreSQL database's URL as it is."""
    found = catalog_location(location)
    return found if isinstance(found, str) else found.resolve()


def _shown(location: Path | str) -> str:
    """A catalog as logged: a URL without its password."""
    return shown_url(location) if isinstance(location, str) else str(location)


def _catalog(serverapp: Any) -> Path | str | None:
    """The served catalog, or None (logged) when the routes cannot be added.

    With the catalog's sign-in configured to another catalog than ``MIQA_NB_CATALOG``
    names, the sign-in's wins when the variable is not set (it is set, for the routes
    and the kernels); when both are set and differ, nothing is added.
    """
    provider = serverapp.identity_provider
    if isinstance(provider, CatalogIdentityProvider):
        signs_in = _resolved(provider.catalog)
        if not os.environ.get(CATALOG_ENV):
            os.environ[CATALOG_ENV] = str(signs_in)
        elif _resolved(default_catalog_path()) != signs_in:
            serverapp.log.error(
                "miqa_nb.server: users sign in with the catalog %s but %s names %s; XNAT's "
                "calls are not served. Name one catalog in both.",
                _shown(signs_in),
                CATALOG_ENV,
                _shown(default_catalog_path()),
            )
            return None
    catalog = _resolved(default_catalog_path())
    if isinstance(catalog, Path) and not catalog.is_file():
        serverapp.log.error(
            "miqa_nb.server: no catalog file at %s, so XNAT's calls are not served. Set %s "
            "to the catalog file (create one with `miqa-nb users add NAME --catalog FILE`) "
            "and start the server again.",
            catalog,
            CATALOG_ENV,
        )
        return None
    return catalog


def load(serverapp: Any) -> None:
    """Add XNAT's routes to ``serverapp`` (a ``jupyter_server.serverapp.ServerApp``)."""
    catalog = _catalog(serverapp)
    if catalog is None:
        return
    routes = xnat_routes()
    signs_in = isinstance(serverapp.identity_provider, CatalogIdentityProvider)
    if signs_in:
        routes = signin_routes() + routes
        serverapp.web_app.add_transform(RetryAfter)
    base_url = serverapp.web_app.settings["base_url"]
    serverapp.web_app.add_handlers(
        ".*$", [(url_path_join(base_url, path), handler) for path, handler in routes]
    )
    sweep_at_start(serverapp.log)
    serverapp.log.info(
        "miqa_nb.server: XNAT's import service and prearchive at %sdata/ for the catalog %s (%s)",
        base_url,
        _shown(catalog),
        "catalog sign-in" if signs_in else "the server's owner: MIQA_NB_USER",
    )
