"""The server spawned by JupyterHub for one reviewer: the hub's sign-in, not the catalog's.

JupyterHub (``miqa-nb hub``, :mod:`miqa_nb.hub`) starts ``miqa-nb serve`` for each
reviewer with ``JUPYTERHUB_API_TOKEN``, ``JUPYTERHUB_CLIENT_ID`` and the rest of its
``JUPYTERHUB_*`` variables; :mod:`miqa_nb.serve` then gives the server
:class:`HubIdentityProvider`. A browser is signed in by the hub's OAuth, as
JupyterHub's own single-user servers do:

1. a page without this server's OAuth cookie is sent to ``login`` here
   (:class:`HubSignInHandler`), which keeps where it was going in a state cookie and
   sends the browser to the hub's ``api/oauth2/authorize`` for this server's OAuth
   client;
2. the hub signs the reviewer in (its login form: the catalog's passwords, see
   :class:`miqa_nb.hub.CatalogAuthenticator`) and, for the server's own user only,
   answers with a code at ``oauth_callback`` here (:class:`HubCallbackHandler`), which
   trades it for a token, keeps the token in a signed cookie and goes on to the page;
3. every later request's token is checked with the hub (cached for a while by
   :class:`~jupyterhub.services.auth.HubOAuth`): its user must hold the scopes the hub
   gave this server (``JUPYTERHUB_OAUTH_ACCESS_SCOPES``) *and* be the server's user
   (``JUPYTERHUB_USER``). Another reviewer, even the hub's administrator, who may be
   let through by the hub, gets nothing here: the kernels act as ``JUPYTERHUB_USER``.

Scripts keep what :class:`~miqa_nb.server.identity.CatalogIdentityProvider` gives
them (HTTP Basic with the catalog's password or an API token, XNAT's ``JSESSIONID``),
for the server's user only. ``logout`` ends this server's cookie and the kernels of
the pages it opened, then signs out of the hub.
"""

from __future__ import annotations

import hashlib
from typing import Any

from jupyter_server.auth.decorator import allow_unauthenticated
from jupyter_server.auth.identity import User
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.utils import url_path_join
from jupyterhub.services.auth import HubOAuth, HubOAuthCallbackHandler
from tornado import web
from tornado.httputil import url_concat
from traitlets import Instance, default

from miqa_nb.server.identity import CatalogIdentityProvider
from miqa_nb.server.kernels import end_pages

__all__ = [
    "HubCallbackHandler",
    "HubIdentityProvider",
    "HubSignInHandler",
    "HubSignOutHandler",
    "hub_routes",
]


class HubIdentityProvider(CatalogIdentityProvider):
    """The catalog's identity provider whose browsers are signed in by the hub's OAuth."""

    hub_auth = Instance(HubOAuth)

    @default("hub_auth")
    def _default_hub_auth(self) -> HubOAuth:
        return HubOAuth(parent=self)  # reads the JUPYTERHUB_* variables

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if self.hub_user is None:
            raise ValueError(
                "HubIdentityProvider serves one hub user, and JUPYTERHUB_USER is unset: "
                "start the server from JupyterHub (miqa-nb hub)"
            )

    async def get_user_cookie(self, handler: web.RequestHandler) -> User | None:
        """The hub's user behind this server's OAuth cookie, if it is the server's user."""
        model = await self.hub_auth.get_user(handler, sync=False)
        if not model:
            return None
        if not self.hub_auth.check_scopes(self.hub_auth.access_scopes, model):
            self.log.warning("refused %s: no access to this server", model.get("name"))
            return None
        user = self._admit(str(model["name"]))
        if user is None:
            self.log.warning("refused %s: this server is %s's", model.get("name"), self.hub_user)
        return user

    def browser_session(self, handler: web.RequestHandler) -> str | None:
        """This browser's sign-in: a digest of its OAuth token (the pages it opened
        end with it), or None."""
        token = handler.get_secure_cookie(self.hub_auth.cookie_name)
        return hashlib.sha256(token).hexdigest() if token else None

    def end_session(self, handler: web.RequestHandler) -> str | None:
        """Forget this browser's OAuth cookie; the session's id."""
        sid = self.browser_session(handler)
        self.hub_auth.clear_cookie(handler)
        return sid

    def start_session(self, handler: web.RequestHandler, user: User) -> str:
        raise web.HTTPError(404)  # browsers sign in at the hub

    def hub_url(self, path: str) -> str:
        """An address of the hub (``path`` under its prefix, ``/hub/``)."""
        auth = self.hub_auth
        return str(auth.hub_host + url_path_join(auth.hub_prefix, path))


class _HubHandler(JupyterHandler):
    @property
    def provider(self) -> HubIdentityProvider:
        provider = self.identity_provider
        assert isinstance(provider, HubIdentityProvider)
        return provider

    def safe_next(self) -> str:
        """The ``next`` address if it is a path on this server, else the dashboard."""
        target = self.get_argument("next", "")
        if (
            not target.startswith(self.base_url)
            or target.startswith("//")
            or "\\" in target
            or "://" in target
        ):
            return str(self.base_url)
        return target


class HubSignInHandler(_HubHandler):
    """``login``: on to the hub's OAuth, coming back to ``next`` (default the dashboard)."""

    @allow_unauthenticated
    def get(self) -> None:
        auth = self.provider.hub_auth
        params: dict[str, str] = {}
        verifier = None
        if auth.pkce_enabled:
            verifier, challenge, method = auth.generate_pkce_code_challenge()
            params.update(code_challenge=challenge, code_challenge_method=method)
        params["state"] = auth.set_state_cookie(
            self, next_url=self.safe_next(), code_verifier=verifier
        )
        self.set_header("Cache-Control", "no-store")
        self.redirect(url_concat(auth.login_url, params))


class HubSignOutHandler(_HubHandler):
    """``logout``: this browser's pages here end, its cookie goes; then the hub's sign-out."""

    @allow_unauthenticated
    async def get(self) -> None:
        await end_pages(self.provider.end_session(self), self.kernel_manager)
        self.redirect(self.provider.hub_url("logout"))

    post = get


class HubCallbackHandler(HubOAuthCallbackHandler):
    """``oauth_callback``: the hub's answer (a code) becomes this server's cookie."""

    def initialize(self, hub_auth: HubOAuth) -> None:
        self.hub_auth = hub_auth

    @allow_unauthenticated
    async def get(self) -> None:
        await super().get()


def hub_routes(provider: HubIdentityProvider) -> list[tuple[Any, ...]]:
    """The sign-in routes of a hub-spawned server, relative to its base URL."""
    return [
        ("/login", HubSignInHandler),
        ("/signin", HubSignInHandler),
        ("/logout", HubSignOutHandler),
        ("/signout", HubSignOutHandler),
        ("/oauth_callback", HubCallbackHandler, {"hub_auth": provider.hub_auth}),
    ]
