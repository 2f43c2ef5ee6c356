"""Who may use the served dashboard, and the XSRF cookie its page needs to close itself.

Loaded by the Voila process that :mod:`miqa_nb.serve` starts (``--Voila.identity_provider_class``),
never by a kernel or the command line.

Why this exists
---------------
When a page is closed or reloaded, Voila's page sends ``POST voila/api/shutdown/<kernel>``
(``navigator.sendBeacon``) so that its kernel ends. The request carries the login
cookie, not the token, so jupyter_server checks it against cross-site forgery: the
form field ``_xsrf`` must match the ``_xsrf`` cookie. The page reads that cookie from
``document.cookie`` -- but nothing ever set it: Tornado sets the cookie only when a
handler reads ``xsrf_token``, which jupyter_server's own pages do while rendering their
templates and Voila's page handler never does. The field is then empty and every
shutdown is refused (403, "'_xsrf' argument missing from POST"), so closed pages kept
their kernels and, through them, their claims.

:class:`PageIdentityProvider` is Voila's identity provider (token or login cookie,
unchanged) that, once a ``GET`` of the dashboard page is authenticated, reads the
handler's ``xsrf_token`` -- which sets the ``_xsrf`` cookie when the browser has none,
as any jupyter_server page does. The check itself stays on for every request; only
the page now has what it needs to pass it.
"""

from __future__ import annotations

from typing import Any

from jupyter_server.auth.identity import User
from tornado import web
from voila.handler import VoilaHandler
from voila.voila_identity_provider import VoilaIdentityProvider

__all__ = ["PageIdentityProvider"]


class PageIdentityProvider(VoilaIdentityProvider):
    """Voila's identity provider that gives the dashboard page its ``_xsrf`` cookie."""

    async def _get_user(self, handler: web.RequestHandler) -> User | None:
        user: User | None = await super()._get_user(handler)
        if user is not None and handler.request.method == "GET" and _is_page(handler):
            # jupyter_server's prepare() sets current_user to this user next; Tornado's
            # xsrf_token reads it (for the cookie's lifetime), so set it first.
            handler.current_user = user
            handler.xsrf_token  # noqa: B018 - reading it sets the cookie when missing
        return user


def _is_page(handler: Any) -> bool:
    return isinstance(handler, VoilaHandler)
