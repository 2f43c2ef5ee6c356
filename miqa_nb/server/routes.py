"""XNAT's routes and start-up sweeps, shared by ``miqa-nb serve`` and the extension.

:func:`xnat_routes` lists XNAT's REST calls the server answers (its session, sign-in
checks and version, the import, its progress, the user's cache, the prearchive);
:func:`signin_routes` the catalog's sign-in pages. Both give paths relative to the
base URL: :class:`~miqa_nb.server.app.MiqaServer` and the Jupyter Server extension
(:mod:`miqa_nb.server.extension`) put them under theirs. :func:`sweep_at_start` puts
right what a stopped server left, before the first request.
"""

from __future__ import annotations

import logging
from typing import Any

from tornado import web

from miqa_nb.server.cache import CACHE_ROUTES
from miqa_nb.server.handlers import (
    AuthCheckHandler,
    JSessionHandler,
    PasswordHandler,
    ServicesAuthHandler,
    SignInHandler,
    SignOutHandler,
    VersionHandler,
)
from miqa_nb.server.prearchive import PREARCHIVE_ROUTES, clean_archiving
from miqa_nb.server.status import StatusHandler
from miqa_nb.server.xnat import ImportHandler, clean_staging, resume_receiving

__all__ = ["RetryAfter", "signin_routes", "sweep_at_start", "xnat_routes"]


def xnat_routes() -> list[tuple[str, type[web.RequestHandler]]]:
    """XNAT's REST calls: ``(path, handler)``, each path relative to the base URL."""
    return [
        ("/data/JSESSION", JSessionHandler),
        ("/data/services/auth", ServicesAuthHandler),
        ("/data/auth", AuthCheckHandler),
        ("/data/version", VersionHandler),
        ("/data/services/import", ImportHandler),
        (r"/data/status/([^/]+)", StatusHandler),
        *CACHE_ROUTES,
        *PREARCHIVE_ROUTES,
    ]


def signin_routes() -> list[tuple[str, type[web.RequestHandler]]]:
    """The catalog's sign-in pages (for :class:`~miqa_nb.server.identity.CatalogIdentityProvider`)."""
    return [
        ("/login", SignInHandler),
        ("/signin", SignInHandler),
        ("/login/password", PasswordHandler),
        ("/logout", SignOutHandler),
        ("/signout", SignOutHandler),
    ]


def sweep_at_start(log: logging.Logger | logging.LoggerAdapter[Any]) -> None:
    """Put right what a stopped server left: upload staging folders, half-done
    archiving, and RECEIVING prearchive entries (built once quiet)."""
    for folder in clean_staging():
        log.info("removed the staging folder %s of an upload a stopped server left", folder)
    for line in clean_archiving():  # .archiving-* folders, entries left ARCHIVING
        log.info("%s", line)
    resume_receiving()


class RetryAfter(web.OutputTransform):
    """Writes ``Retry-After`` on a 429 answer (a braked sign-in), whichever handler sent
    it: Tornado clears a handler's headers when it sends an error page."""

    def __init__(self, request: Any) -> None:
        self.request = request

    def transform_first_chunk(
        self, status_code: int, headers: Any, chunk: bytes, finishing: bool
    ) -> tuple[int, Any, bytes]:
        wait = getattr(self.request, "miqa_retry_after", None)
        if status_code == 429 and wait:
            headers["Retry-After"] = wait
        return status_code, headers, chunk
