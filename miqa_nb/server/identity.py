"""Who sends each request: Jupyter Server's ``IdentityProvider`` over the catalog.

A request is a catalog user's when it carries, in this order (the first one given
decides; a wrong one is not made good by another):

1. ``Authorization: Basic`` with the user's name and their password or one of their
   API tokens (how curl ``-u``, ``requests`` and pyxnat sign in to XNAT);
   ``Authorization: token TOKEN`` (or ``Bearer``), an API token alone;
2. a ``JSESSIONID`` cookie holding a session from ``GET /data/JSESSION`` (XNAT's
   session, for scripts);
3. the signed login cookie the sign-in page sets (browsers).

Requests authenticated by a header or ``JSESSIONID`` are marked token-authenticated,
so Jupyter Server skips its XSRF check for them (a browser never sends such a header
on its own, and the ``JSESSIONID`` cookie is ``SameSite=Strict``); requests by the
login cookie are XSRF-checked on every change, as in Jupyter Server.

Passwords are checked with argon2 by the catalog, and a verified one is remembered
while the catalog's credentials are unchanged (:class:`Credentials`), so a script
that sends its password with every call does not pay argon2 each time; API tokens are
checked by their SHA-256 in the catalog on every call (a read of about 1.5 ms). Failed attempts are braked per user and per address
(:class:`~miqa_nb.server.sessions.Throttle`: 10 a minute, then 429).

Served under JupyterHub (``JUPYTERHUB_USER`` set), the server belongs to that user:
nobody else is let in, whatever their credentials.

The provider works in any Jupyter Server (``c.ServerApp.identity_provider_class``),
where the extension (:mod:`miqa_nb.server.extension`) adds its sign-in pages. In a
Jupyter Server signing requests in by its own means (its token, JupyterHub's), the
XNAT calls act as the server's owner instead (:func:`act_as_owner`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import inspect
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from jupyter_server.auth.identity import IdentityProvider, User
from tornado import web
from traitlets import Unicode, default

from miqa_nb.catalog import Catalog, catalog_location, default_catalog_path
from miqa_nb.core.identity import named_user
from miqa_nb.server.sessions import Sessions, Throttle

__all__ = [
    "JSESSION_COOKIE",
    "WARM_UP_USER",
    "CatalogIdentityProvider",
    "Credentials",
    "act_as_owner",
]

#: XNAT's session cookie.
JSESSION_COOKIE = "JSESSIONID"
#: Who renders the page once at start-up (no catalog user: the page refuses it).
WARM_UP_USER = "(warm-up)"
#: How long a verified password is remembered while the catalog's credentials are unchanged.
REMEMBER_SECONDS = 600.0

T = TypeVar("T")


class Credentials:
    """The catalog's passwords, tokens and sign-in links, checked off the event loop.

    API tokens are checked in the catalog on every request (a short read, about 1.5 ms:
    ``Catalog.token_user``), so a revoked or expired token is refused at once. A
    password, slow to check on purpose (argon2), is remembered once verified: by an
    HMAC under a key of this process, with the catalog's ``credentials_version``, which
    every change of a password, token or link renews -- so a changed password is
    checked again -- and for at most :data:`REMEMBER_SECONDS`.
    """

    def __init__(self, catalog: str | os.PathLike[str]) -> None:
        self.catalog = Catalog(catalog)
        self.path = self.catalog.path
        self._key = secrets.token_bytes(32)
        self._verified: dict[bytes, tuple[str, str, float]] = {}

    async def _run(self, call: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(None, call)

    async def token_user(self, token: str) -> str | None:
        """The user of API token ``token``, or None."""
        return await self._run(lambda: self.catalog.token_user(token))

    async def password_ok(self, user: str, password: str) -> bool:
        """Whether ``password`` is ``user``'s password."""
        digest = hmac.new(self._key, f"{user}\0{password}".encode(), hashlib.sha256).digest()
        version = await self._run(self.catalog.credentials_version)
        hit = self._verified.get(digest)
        if hit and hit[:2] == (user, version) and time.monotonic() - hit[2] < REMEMBER_SECONDS:
            return True
        self._verified.pop(digest, None)
        ok = await self._run(lambda: self.catalog.check_password(user, password))
        if ok:
            if len(self._verified) > 10_000:  # a bound; entries are cheap to redo
                self._verified.clear()
            self._verified[digest] = (user, version, time.monotonic())
        return ok

    async def use_link(self, secret: str) -> str | None:
        """The user a one-time sign-in link was made for (the link is used up)."""
        return await self._run(lambda: self.catalog.use_signin_link(secret))

    async def has_password(self, user: str) -> bool:
        return await self._run(lambda: self.catalog.has_password(user))

    async def set_password(self, user: str, password: str) -> None:
        """Set ``user``'s own password (the catalog's rules and errors)."""
        await self._run(lambda: self.catalog.set_password(user, password, by=user))


class CatalogIdentityProvider(IdentityProvider):
    """Jupyter Server's identity provider for the catalog's users (see the module)."""

    catalog = Unicode(
        help="The catalog file whose users may sign in (default: $MIQA_NB_CATALOG, "
        "else ./miqa.duckdb)."
    ).tag(config=True)

    @default("catalog")
    def _default_catalog(self) -> str:
        return str(default_catalog_path())

    @default("cookie_options")
    def _default_cookie_options(self) -> dict[str, Any]:
        return {"samesite": "Lax", "httponly": True}

    @default("cookie_name")
    def _default_cookie_name(self) -> str:
        return "miqa-nb-signin"

    def __init__(self, **kwargs: Any) -> None:
        kwargs["token"] = ""  # no shared token: every request is a user's
        super().__init__(**kwargs)
        database = bool(self.catalog) and isinstance(catalog_location(self.catalog), str)
        if not self.catalog or not (database or Path(self.catalog).is_file()):
            raise ValueError(
                f"the sign-in needs a catalog file, and there is none at {self.catalog!r}: "
                "set MIQA_NB_CATALOG (or c.CatalogIdentityProvider.catalog) to the catalog "
                "whose users sign in (a file, or a postgresql:// database)"
            )
        self.credentials = Credentials(self.catalog)
        self.sessions = Sessions()
        self.throttle = Throttle()
        self.hub_user = os.environ.get("JUPYTERHUB_USER") or None
        self._warm_up_secret: str | None = None

    def open_warm_up(self) -> str:
        """A secret, known only to this process, that admits one request as
        :data:`WARM_UP_USER` until :meth:`close_warm_up` (the server's own warm-up)."""
        self._warm_up_secret = secrets.token_urlsafe(32)
        return self._warm_up_secret

    def close_warm_up(self) -> None:
        self._warm_up_secret = None

    # --- what Jupyter Server asks

    @property
    def auth_enabled(self) -> bool:
        return True

    @property
    def login_available(self) -> bool:
        return True

    def get_handlers(self) -> list[tuple[str, object]]:
        return []  # the server adds the sign-in pages under its base URL itself

    def user_to_cookie(self, user: User) -> str:
        raise NotImplementedError("the login cookie holds a session id: use start_session")

    def user_from_cookie(self, cookie_value: str) -> User | None:
        session = self.sessions.get(cookie_value)
        if session is None or session.kind != "browser":
            return None
        return self._admit(session.user)

    async def _get_user(self, handler: web.RequestHandler) -> User | None:
        if getattr(handler, "_jupyter_current_user", None):
            return handler._jupyter_current_user  # type: ignore[attr-defined]
        header = handler.request.headers.get("Authorization", "")
        if header:
            user = await self._from_header(handler, header)
            if user is not None:
                handler._token_authenticated = True  # type: ignore[attr-defined]
            return user
        jsession = handler.get_cookie(JSESSION_COOKIE)
        if jsession:
            session = self.sessions.get(jsession)
            if session is not None and session.kind == "api":
                handler._token_authenticated = True  # type: ignore[attr-defined]
                return self._admit(session.user)
        cookie_user = self.get_user_cookie(handler)
        found = cookie_user if not inspect.isawaitable(cookie_user) else await cookie_user
        if found is None and handler.get_cookie(self.get_cookie_name(handler)) is not None:
            self.clear_login_cookie(handler)  # ended or forged: forget it
        return found

    # --- credentials

    def _admit(self, name: str) -> User | None:
        if self.hub_user is not None and name != self.hub_user:
            return None
        return User(username=name, name=name, display_name=name)

    def throttle_keys(self, handler: web.RequestHandler, user: str | None) -> list[str]:
        keys = [f"addr:{handler.request.remote_ip}"]
        if user:
            keys.append(f"user:{user}")
        return keys

    def check_throttle(self, handler: web.RequestHandler, user: str | None) -> None:
        """Refuse with 429 while ``user`` or the address has too many recent failures."""
        wait = self.throttle.retry_after(self.throttle_keys(handler, user))
        if wait > 0:
            # kept on the request: sending the error clears the handler's headers, and
            # the server's RetryAfter transform writes it on whatever answers the 429
            handler.request.miqa_retry_after = str(int(wait) + 1)  # type: ignore[attr-defined]
            raise web.HTTPError(429, "too many failed sign-ins; try again in a minute")

    async def _from_header(self, handler: web.RequestHandler, header: str) -> User | None:
        scheme, _, value = header.strip().partition(" ")
        scheme, value = scheme.lower(), value.strip()
        name: str | None = None
        if scheme == "warm-up":
            expected = self._warm_up_secret
            if expected and hmac.compare_digest(value.encode(), expected.encode()):
                return User(username=WARM_UP_USER, name=WARM_UP_USER)
            return None
        if scheme == "basic":
            try:
                decoded = base64.b64decode(value, validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                decoded = ""
            given, _, secret = decoded.partition(":")
            self.check_throttle(handler, given or None)
            if given and secret:
                if secret.startswith("miqa_"):
                    owner = await self.credentials.token_user(secret)
                    name = given if owner == given else None
                elif await self.credentials.password_ok(given, secret):
                    name = given
            if name is None:
                self.throttle.fail(self.throttle_keys(handler, given or None))
        elif scheme in ("token", "bearer"):
            self.check_throttle(handler, None)
            name = await self.credentials.token_user(value) if value else None
            if name is None:
                self.throttle.fail(self.throttle_keys(handler, None))
        return self._admit(name) if name else None

    async def sign_in(self, handler: web.RequestHandler, name: str, password: str) -> User | None:
        """Check a sign-in form's name and password (braked); the user, or None."""
        self.check_throttle(handler, name or None)
        if name and password and await self.credentials.password_ok(name, password):
            user = self._admit(name)
            if user is not None:
                return user
        self.throttle.fail(self.throttle_keys(handler, name or None))
        return None

    async def sign_in_by_link(self, handler: web.RequestHandler, secret: str) -> User | None:
        """Use a one-time sign-in link (braked per address); the user, or None."""
        self.check_throttle(handler, None)
        name = await self.credentials.use_link(secret) if secret else None
        user = self._admit(name) if name else None
        if user is None:
            self.throttle.fail(self.throttle_keys(handler, None))
        return user

    # --- sessions

    def start_session(self, handler: web.RequestHandler, user: User) -> str:
        """Sign ``user`` in on this browser: a new session in the signed login cookie."""
        sid = self.sessions.start(user.username, "browser")
        options: dict[str, Any] = dict(self.cookie_options)
        secure = self.secure_cookie
        if secure is None:
            secure = handler.request.protocol == "https"
        if secure:
            options["secure"] = True
        options.setdefault("path", handler.base_url)  # type: ignore[attr-defined]
        # a browser-session cookie: it ends with the browser, the session on the server
        # after 8 idle or 24 hours (whichever comes first)
        handler.set_secure_cookie(self.get_cookie_name(handler), sid, expires_days=None, **options)
        return sid

    def browser_session(self, handler: web.RequestHandler) -> str | None:
        """The id of this browser's session (from its signed cookie), or None."""
        raw = handler.get_secure_cookie(self.get_cookie_name(handler))
        return raw.decode() if raw else None

    def end_session(self, handler: web.RequestHandler) -> str | None:
        """Sign this browser out: end its session and clear the cookie; its id."""
        sid = self.browser_session(handler)
        if sid:
            self.sessions.end(sid)
        self.clear_login_cookie(handler)
        return sid


#: Why a Jupyter Server that lets every request in answers no XNAT call.
NO_AUTH = (
    "This Jupyter Server lets every request in (no token, no password), so XNAT's calls "
    "are refused: give the server a token (IdentityProvider.token), or sign in with the "
    "catalog (c.ServerApp.identity_provider_class = "
    "'miqa_nb.server.identity.CatalogIdentityProvider')."
)
#: Why a personal server's XNAT calls are refused when it names no catalog user.
NO_OWNER = (
    "This Jupyter Server signs requests in with its own token, so XNAT's calls act as "
    "the server's owner, and none is named: set MIQA_NB_USER to your catalog user name "
    "before starting the server (or sign in with the catalog: "
    "c.ServerApp.identity_provider_class = "
    "'miqa_nb.server.identity.CatalogIdentityProvider')."
)


def act_as_owner(handler: Any) -> None:
    """Make a request a catalog user's when another identity provider signed it in.

    With :class:`CatalogIdentityProvider` the signed-in user is the catalog user and
    nothing changes; a request nobody signed in stays so. Otherwise (Jupyter's token,
    JupyterHub) the server is one person's: the request acts as the user
    ``MIQA_NB_USER`` or ``JUPYTERHUB_USER`` names
    (:func:`~miqa_nb.core.identity.named_user`). Called after Jupyter Server's
    ``prepare``.

    Raises
    ------
    tornado.web.HTTPError
        403 when the server lets every request in (no token, no password), or when
        neither variable names a user (the reason names the fix).
    """
    provider = handler.identity_provider
    user = getattr(handler, "_jupyter_current_user", None)
    if isinstance(provider, CatalogIdentityProvider) or user is None:
        return
    if not provider.auth_enabled:
        raise web.HTTPError(403, reason=NO_AUTH)
    name = named_user()
    if name is None:
        raise web.HTTPError(403, reason=NO_OWNER)
    owner = User(username=name, name=name, display_name=name)
    handler.current_user = handler._jupyter_current_user = owner
