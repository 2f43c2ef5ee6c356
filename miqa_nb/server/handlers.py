"""The server's own pages and endpoints, beside Voila's.

- ``login`` (also ``signin``): the sign-in page (GET the form; POST name and password)
  and one-time sign-in links (``?link=SECRET``). A wrong name and a wrong password get
  the same answer. After a link, a user without a password is asked to set one.
- ``logout`` (also ``signout``): ends the browser's session and the kernels of the
  pages it opened, and clears the cookie.
- ``login/password``: a signed-in user sets their password.
- ``data/JSESSION``: XNAT's session for scripts. ``GET`` authenticated by Basic or a
  token (a sign-in) answers a new session id as text and sets it as the ``JSESSIONID``
  cookie; ``GET`` with only that cookie answers the same id, as XNAT does (xnatpy's
  keep-alive calls it so); ``DELETE`` ends it. Unauthenticated calls under ``data/`` get 401 with a Basic
  challenge, as XNAT answers, not a redirect to the sign-in page.
- ``data/services/auth`` (``PUT`` with a form's ``username`` and ``password``) and
  ``data/auth`` (who is signed in): how the ``xnat`` Python client (xnatpy) signs in;
  ``data/version``: the XNAT version whose calls the server follows.
- ``miqa/kernel/...``: a kernel's own questions, authenticated by its key
  (:mod:`miqa_nb.server.kernels`): which page it serves, whether that page is still
  connected, and its own shutdown.
- ``voila/api/shutdown/<kernel>``: Voila's page asks for its kernel's end when closed;
  allowed to the kernel's own user only.

Pages are plain HTML built with escaped values, no script.
"""

from __future__ import annotations

import html
import json
from typing import Any
from urllib.parse import urlencode, urlsplit

from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import allow_unauthenticated
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.utils import url_path_join
from tornado import web

from miqa_nb.core.errors import MiqaError
from miqa_nb.server.identity import JSESSION_COOKIE, CatalogIdentityProvider, act_as_owner
from miqa_nb.server.kernels import REGISTRY, end_pages

__all__ = [
    "AuthCheckHandler",
    "JSessionHandler",
    "KernelSelfHandler",
    "PasswordHandler",
    "ServicesAuthHandler",
    "ShutdownHandler",
    "SignInHandler",
    "SignOutHandler",
    "VersionHandler",
]

#: Why XNAT's sessions are refused in a server signing in by other means.
NEEDS_CATALOG_SIGNIN = (
    "XNAT's sessions and sign-in need the catalog's sign-in "
    "(c.ServerApp.identity_provider_class = "
    "'miqa_nb.server.identity.CatalogIdentityProvider'); this server signs in with its "
    "own token: send it with each call (Authorization: token TOKEN)."
)
#: The same answer for an unknown user and a wrong password.
WRONG = "Wrong user name or password."

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:26rem;margin:4rem auto;padding:0 1rem}"
    "label{display:block;margin:.8rem 0 .2rem}input{width:100%;padding:.4rem;font-size:1rem}"
    "button{margin-top:1rem;padding:.5rem 1.2rem;font-size:1rem}.error{color:#a00}"
)


def _page(title: str, body: str) -> str:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )


class _Base(JupyterHandler):
    async def prepare(self, *args: Any, **kwargs: Any) -> Any:
        done = await super().prepare(*args, **kwargs)
        act_as_owner(self)  # another identity provider signed it in: the owner's
        return done

    @property
    def provider(self) -> CatalogIdentityProvider:
        """The catalog's identity provider; 403 naming it when the server has another
        (XNAT's sessions and sign-in need the catalog's passwords)."""
        provider = self.identity_provider
        if not isinstance(provider, CatalogIdentityProvider):
            raise web.HTTPError(403, reason=NEEDS_CATALOG_SIGNIN)
        return provider

    def safe_next(self) -> str:
        """The ``next`` address if it stays on this server under its base URL."""
        target = self.get_argument("next", "") or self.base_url
        parts = urlsplit(target)
        if (
            parts.scheme
            or parts.netloc
            or not parts.path.startswith(self.base_url)
            or target.startswith("//")
            or "\\" in target
        ):
            return str(self.base_url)
        return target

    def _challenge(self) -> None:
        """XNAT's 401 for a call without a signed-in user: a Basic challenge."""
        self.set_status(401)
        self.set_header("WWW-Authenticate", 'Basic realm="XNAT"')
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish("Authentication required: a user name and password or API token\n")

    def write_page(self, title: str, body: str, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(_page(title, body))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        reason = self._reason if status_code != 429 else "Too many failed sign-ins"
        if self.request.path.startswith(url_path_join(self.base_url, "data/")):
            self.set_status(status_code)  # XNAT's calls: plain text, as XNAT answers
            self.set_header("Content-Type", "text/plain; charset=utf-8")
            self.finish(reason + "\n")
            return
        self.write_page("miqa-nb", f"<p class='error'>{html.escape(reason)}</p>", status_code)


class SignInHandler(_Base):
    """The sign-in page and one-time sign-in links."""

    def form(self, message: str = "", name: str = "", status: int = 200) -> None:
        error = f"<p class='error' role='alert'>{html.escape(message)}</p>" if message else ""
        action = html.escape(self.base_url + "login?" + urlencode({"next": self.safe_next()}))
        body = (
            f"{error}<form method='post' action='{action}'>{self.xsrf_form_html()}"
            "<label for='user'>User name</label>"
            f"<input id='user' name='user' autocomplete='username' value='{html.escape(name)}'"
            " autofocus required>"
            "<label for='password'>Password</label>"
            "<input id='password' name='password' type='password'"
            " autocomplete='current-password' required>"
            "<button type='submit'>Sign in</button></form>"
        )
        self.write_page("Sign in to miqa-nb", body, status)

    @allow_unauthenticated
    async def get(self) -> None:
        secret = self.get_argument("link", "")
        if not secret:
            self.form()
            return
        user = await self.provider.sign_in_by_link(self, secret)
        if user is None:
            self.form(
                "This sign-in link has been used or has expired. Ask a superuser for a "
                "new one, or sign in with your password.",
                status=403,
            )
            return
        self.provider.start_session(self, user)
        target = self.safe_next()
        if not await self.provider.credentials.has_password(user.username):
            target = self.base_url + "login/password?" + urlencode({"next": target})
        self.redirect(target)

    @allow_unauthenticated
    async def post(self) -> None:
        name = self.get_body_argument("user", "").strip()
        password = self.get_body_argument("password", "")
        user = await self.provider.sign_in(self, name, password)
        if user is None:
            self.form(WRONG, name=name, status=401)
            return
        self.provider.start_session(self, user)
        self.redirect(self.safe_next())


class SignOutHandler(_Base):
    """Sign out: the session and its pages' kernels end, the cookie goes."""

    @allow_unauthenticated
    async def get(self) -> None:
        await end_pages(self.provider.end_session(self), self.kernel_manager)
        link = html.escape(self.base_url + "login")
        self.write_page("Signed out", f"<p>You have signed out. <a href='{link}'>Sign in</a></p>")

    post = get


class PasswordHandler(_Base):
    """A signed-in user sets their password."""

    def form(self, message: str = "", status: int = 200) -> None:
        error = f"<p class='error' role='alert'>{html.escape(message)}</p>" if message else ""
        target = self.safe_next()
        action = html.escape(self.base_url + "login/password?" + urlencode({"next": target}))
        user = self.current_user.username
        body = (
            f"<p>Signed in as <b>{html.escape(user)}</b>. Choose a password (at least 8 "
            "characters) to sign in next time.</p>"
            f"{error}<form method='post' action='{action}'>{self.xsrf_form_html()}"
            "<label for='password'>New password</label>"
            "<input id='password' name='password' type='password' autocomplete='new-password'"
            " required>"
            "<label for='again'>Again</label>"
            "<input id='again' name='again' type='password' autocomplete='new-password' required>"
            "<button type='submit'>Set password</button></form>"
            f"<p><a href='{html.escape(target)}'>Not now</a></p>"
        )
        self.write_page("Set your password", body, status)

    @web.authenticated
    async def get(self) -> None:
        self.form()

    @web.authenticated
    async def post(self) -> None:
        password = self.get_body_argument("password", "")
        if password != self.get_body_argument("again", ""):
            self.form("The two passwords differ; type the same one twice.", 400)
            return
        try:
            await self.provider.credentials.set_password(self.current_user.username, password)
        except MiqaError as exc:
            self.form(str(exc), 400)
            return
        self.redirect(self.safe_next())


class JSessionHandler(_Base):
    """XNAT's ``/data/JSESSION``: a session id for scripts.

    A sign-in (Basic or a token in the ``Authorization`` header, or a browser's sign-in
    cookie) gets a new session; a call with only a live ``JSESSIONID`` cookie gets that
    session's id again, as XNAT answers (its idle time starts again), so a client's
    keep-alive does not open a session per beat.
    """

    @allow_unauthenticated
    async def get(self) -> None:
        if self.current_user is None:
            self._challenge()
            return
        current = self._current_api_session()
        if current is not None:
            self.set_header("Content-Type", "text/plain; charset=utf-8")
            self.set_header("Cache-Control", "no-store")
            self.finish(current)
            return
        self._issue(self.current_user.username)

    def _current_api_session(self) -> str | None:
        """The id of the ``JSESSIONID`` session that signed this request in, if it did
        (no ``Authorization`` header, which would decide first)."""
        if self.request.headers.get("Authorization"):
            return None
        sid = self.get_cookie(JSESSION_COOKIE)
        session = self.provider.sessions.get(sid) if sid else None
        if session is None or session.kind != "api":
            return None
        return sid if session.user == self.current_user.username else None

    def _issue(self, user: str) -> None:
        """Answer a new API session of ``user``: its id as text and as the cookie."""
        sid = self.provider.sessions.start(user, "api")
        self.set_cookie(
            JSESSION_COOKIE,
            sid,
            path=self.base_url,
            httponly=True,
            samesite="Strict",
            secure=self.request.protocol == "https",
        )
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(sid)

    def check_xsrf_cookie(self) -> None:
        """Unauthenticated calls get XNAT's 401 challenge (below), not an XSRF 403."""
        if getattr(self, "_jupyter_current_user", None) is None:
            return
        super().check_xsrf_cookie()

    @allow_unauthenticated
    async def delete(self) -> None:
        sid = self.get_cookie(JSESSION_COOKIE)
        if self.current_user is None or not sid:
            self._challenge()
            return
        self.provider.sessions.end(sid)
        self.clear_cookie(JSESSION_COOKIE, path=self.base_url)
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish("")


class ServicesAuthHandler(JSessionHandler):
    """XNAT's ``PUT data/services/auth`` (xnatpy signs in so): the form's ``username``
    and ``password`` (braked like the sign-in page) give a new session id, as text and
    as the ``JSESSIONID`` cookie; wrong ones 401.

    No XSRF check applies before sign-in: a page of another site cannot send a PUT
    without the browser asking this server first (CORS), which it does not allow.
    """

    @allow_unauthenticated
    async def put(self) -> None:
        name = self.get_body_argument("username", "").strip()
        password = self.get_body_argument("password", "")
        user = await self.provider.sign_in(self, name, password)
        if user is None:
            self.set_status(401)
            self.set_header("Content-Type", "text/plain; charset=utf-8")
            self.finish(WRONG + "\n")
            return
        self._issue(user.username)


class AuthCheckHandler(_Base):
    """XNAT's ``GET data/auth``: says who is signed in (``User 'NAME' is logged in``)."""

    @allow_unauthenticated
    async def get(self) -> None:
        if self.current_user is None:
            self._challenge()
            return
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(f"User '{self.current_user.username}' is logged in")


class VersionHandler(_Base):
    """XNAT's ``GET data/version``: the XNAT version whose REST calls this server
    follows (1.8.0: the import service and prearchive as XNAT 1.8 documents them,
    without 1.8.3's ``Ignore-Unparsable`` and ``Direct-Archive``, which xnatpy then
    does not send). xnatpy asks it before it reads a prearchive session."""

    @allow_unauthenticated
    async def get(self) -> None:
        if self.current_user is None:
            self._challenge()
            return
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(XNAT_VERSION)


#: The XNAT version whose REST calls the server follows (see VersionHandler).
XNAT_VERSION = "1.8.0"


class KernelSelfHandler(web.RequestHandler):
    """A kernel's questions about itself, with ``Authorization: kernel ID KEY``."""

    def initialize(self, kernel_manager: Any) -> None:
        self.kernel_manager = kernel_manager

    def _kernel(self) -> str:
        scheme, _, rest = self.request.headers.get("Authorization", "").partition(" ")
        kernel_id, _, key = rest.strip().partition(" ")
        if scheme.lower() != "kernel" or not REGISTRY.kernel_for(kernel_id, key.strip()):
            raise web.HTTPError(403)
        return kernel_id

    def check_xsrf_cookie(self) -> None:
        """No cookies here: the kernel's key is in a header."""

    async def get(self, what: str) -> None:
        kernel_id = self._kernel()
        self.set_header("Content-Type", "application/json")
        if what == "page":
            wait = min(float(self.get_argument("wait", "30")), 120.0)
            page = await REGISTRY.wait_page(kernel_id, wait)
            if page is None:
                self.set_status(204)
                self.finish()
                return
            self.finish(json.dumps({"user": page.user, "query": page.query}))
        elif what == "connections":
            model = self.kernel_manager.kernel_model(kernel_id)
            self.finish(json.dumps({"connections": int(model.get("connections", 0))}))
        else:
            raise web.HTTPError(404)

    async def delete(self, what: str) -> None:
        kernel_id = self._kernel()
        if what != "":
            raise web.HTTPError(404)
        await ensure_async(self.kernel_manager.shutdown_kernel(kernel_id))
        self.set_status(204)
        self.finish()


class ShutdownHandler(_Base):
    """Voila's page-closed request, for the kernel's own user only."""

    @web.authenticated
    async def post(self, kernel_id: str) -> None:
        self.kernel_id = kernel_id
        if not self.authorizer.is_authorized(self, self.current_user, "write", "kernels"):
            raise web.HTTPError(403)
        try:
            await ensure_async(self.kernel_manager.shutdown_kernel(kernel_id))
        except KeyError as exc:
            raise web.HTTPError(404) from exc
        self.set_status(204)
        self.finish()
