"""The server application: Voila's app with sign-in, kernel ownership and TLS.

:class:`MiqaServer` is Voila's standalone application (a Jupyter Server web
application: Jupyter Server's handlers, identity provider, authorizer and kernel
manager) serving the dashboard notebook with pre-heated kernels, changed where the
dashboard needs it:

- identity: :class:`~miqa_nb.server.identity.CatalogIdentityProvider` (set in
  ``voila_app/voila.json``); the sign-in pages and XNAT's ``data/JSESSION`` are added
  under the base URL (:mod:`miqa_nb.server.handlers`), with what the ``xnat`` client
  (xnatpy) signs in by (``data/services/auth``, ``data/auth``, ``data/version``).
  Spawned by JupyterHub, :class:`~miqa_nb.server.hub.HubIdentityProvider` instead,
  whose sign-in pages send browsers to the hub's OAuth (:mod:`miqa_nb.server.hub`);
- XNAT's services: the import (:mod:`miqa_nb.server.xnat`), its progress
  (:mod:`miqa_nb.server.status`), the user's cache (:mod:`miqa_nb.server.cache`) and
  the prearchive (:mod:`miqa_nb.server.prearchive`);
- kernels: :class:`~miqa_nb.server.kernels.MiqaKernelManager` gives each kernel a key,
  the page handler records which signed-in page takes which kernel, and
  :class:`~miqa_nb.server.kernels.OwnerAuthorizer` keeps every kernel to its user;
- Voila's ``voila/query/<kernel>`` websocket, which told any caller the request of the
  page that took a kernel, is not served (kernels ask ``miqa/kernel/page`` with their
  key instead), and Voila's shutdown request is checked against the kernel's owner;
- the access log names method, path (never the query string: it may hold a one-time
  link), status, user and time;
- once listening, the server renders the page once for itself (the first page a fresh
  Voila server renders is seconds slower than the next: templates, exporter), in a
  kernel of its own that it then ends, and only then answers ``miqa/ready`` with 200
  (503 before), which :mod:`miqa_nb.serve` waits for before it prints the address;
- ``--certfile``/``--keyfile`` serve HTTPS (Jupyter Server's option names); a
  non-local address without them is served with a warning.

Run as ``python -m miqa_nb.server NOTEBOOK [options]`` (see :mod:`miqa_nb.serve`).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import ipaddress
import logging
import ssl
from typing import Any, ClassVar

import tornado.ioloop
from jupyter_core.utils import ensure_async
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.httpclient import AsyncHTTPClient
from traitlets import Unicode
from voila.app import Voila
from voila.request_info_handler import RequestInfoSocketHandler
from voila.shutdown_kernel_handler import VoilaShutdownKernelHandler
from voila.tornado.handler import TornadoVoilaHandler

from miqa_nb.server.handlers import KernelSelfHandler, ShutdownHandler
from miqa_nb.server.hub import HubIdentityProvider, hub_routes
from miqa_nb.server.identity import WARM_UP_USER
from miqa_nb.server.kernels import PAGE_REQUEST, REGISTRY, Page, track_pages
from miqa_nb.server.routes import RetryAfter, signin_routes, sweep_at_start, xnat_routes

__all__ = ["MiqaServer", "PageHandler", "ReadyHandler", "RetryAfter", "is_local", "main"]

access_log = logging.getLogger("miqa_nb.server.access")


class ReadyHandler(web.RequestHandler):
    """``miqa/ready``: 200 once the server has warmed up, 503 before (says nothing else)."""

    def initialize(self, server: MiqaServer) -> None:
        self.server = server

    def get(self) -> None:
        self.set_header("Cache-Control", "no-store")
        if not self.server.warmed:
            self.set_status(503)
        self.finish("ready\n" if self.server.warmed else "warming up\n")


class PageHandler(TornadoVoilaHandler):
    """Voila's page, whose kernel is recorded as the signed-in user's.

    Reading ``xsrf_token`` sets the ``_xsrf`` cookie, which Voila's page reads for its
    shutdown request when it is closed (Voila's own page handler never sets it, so
    every such request was refused and closed pages kept their kernels).
    """

    @web.authenticated
    async def get(self, path: str | None = None) -> None:
        provider = self.identity_provider
        session = provider.browser_session(self) if hasattr(provider, "browser_session") else ""
        PAGE_REQUEST.set(Page(self.current_user.username, self.request.query, session or ""))
        self.xsrf_token  # noqa: B018 - sets the cookie when missing
        await super().get(path)


def is_local(ip: str) -> bool:
    """Whether ``ip`` only listens on this machine (a loopback address)."""
    if ip in ("localhost", ""):
        return ip == "localhost"
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


def log_request(handler: web.RequestHandler, logger: logging.Logger = access_log) -> None:
    """One access-log line, without the query string (as Jupyter Server logs: answers
    below 300 and 304 at debug level, redirects at info, refusals as warnings)."""
    status = handler.get_status()
    request = handler.request
    user = getattr(handler, "_jupyter_current_user", None)
    if status < 300 or status == 304 or isinstance(handler, ReadyHandler):  # polled at start
        level = logging.DEBUG
    else:
        level = logging.INFO if status < 400 else logging.WARNING if status < 500 else logging.ERROR
    logger.log(
        level,
        "%d %s %s (%s%s) %.1f ms",
        status,
        request.method,
        request.path,
        request.remote_ip,
        f" {user.username}" if user is not None else "",
        1000.0 * request.request_time(),
    )


class MiqaServer(Voila):
    """Voila's application behind the catalog's sign-in (see the module)."""

    name = "miqa-nb-server"
    certfile = Unicode("", help="SSL/TLS certificate file (serve HTTPS).").tag(config=True)
    keyfile = Unicode("", help="SSL/TLS private key file.").tag(config=True)
    aliases: ClassVar[dict[str, str]] = {
        **Voila.aliases,
        "ip": "Voila.ip",
        "certfile": "MiqaServer.certfile",
        "keyfile": "MiqaServer.keyfile",
    }

    def init_settings(self) -> dict[str, Any]:
        settings: dict[str, Any] = super().init_settings()
        track_pages(self.kernel_manager)
        settings["log_function"] = functools.partial(log_request, logger=self.log)
        settings["xsrf_cookie_kwargs"] = {"samesite": "Strict"}
        return settings

    def init_handlers(self) -> list[Any]:
        def at(path: str) -> str:
            return str(url_path_join(self.server_url, path))

        provider = self.identity_provider
        signin: list[tuple[Any, ...]] = (
            hub_routes(provider)
            if isinstance(provider, HubIdentityProvider)
            else list(signin_routes())
        )
        ours: list[Any] = [
            *((at(path), *rest) for path, *rest in signin + list(xnat_routes())),
            (at("/miqa/ready"), ReadyHandler, {"server": self}),
            (
                at(r"/miqa/kernel/?(page|connections|)"),
                KernelSelfHandler,
                {"kernel_manager": self.kernel_manager},
            ),
            (at(r"/voila/api/shutdown/(?P<kernel_id>[\w-]+)"), ShutdownHandler),
        ]
        theirs = []
        for handler in super().init_handlers():
            cls = handler[1]
            if cls in (RequestInfoSocketHandler, VoilaShutdownKernelHandler):
                continue
            if cls is TornadoVoilaHandler:
                handler = (handler[0], PageHandler, *handler[2:])
            theirs.append(handler)
        return ours + theirs

    warmed = False

    async def _warm_up(self, scheme: str) -> None:
        """Render the page once, as nobody (the page refuses), then end its kernel.

        It asks for another theme than the pool's, so Voila renders it in a kernel of
        its own and the pre-heated kernels stay for the reviewers.
        """
        provider = self.identity_provider
        host = "127.0.0.1" if self.ip in ("", "0.0.0.0") else self.ip
        if ":" in host:
            host = f"[{host}]"
        url = f"{scheme}://{host}:{self.port}{self.base_url}?theme=dark"
        secret = provider.open_warm_up()
        try:
            await AsyncHTTPClient().fetch(
                url,
                headers={"Authorization": f"warm-up {secret}"},
                request_timeout=300,
                validate_cert=False,  # our own certificate, perhaps self-signed
            )
        except Exception as exc:  # the first reviewer's page pays it, that is all
            self.log.warning("the warm-up page failed: %s", exc)
        finally:
            provider.close_warm_up()
            for kernel_id in REGISTRY.kernels_owned_by(WARM_UP_USER):
                with contextlib.suppress(KeyError):
                    await ensure_async(self.kernel_manager.shutdown_kernel(kernel_id))
            # What start-up made (a few hundred thousand objects: Jupyter, Voila,
            # DuckDB, pandas...) lives as long as the server: out of the collector's
            # reach, a full collection during a request (an import) walks what was
            # made since, not all of them again (about 0.1 s each time)
            gc.collect()
            gc.freeze()
            self.warmed = True

    def listen(self) -> None:
        """Listen on ``ip:port`` (HTTPS with a certificate); run until stopped."""
        self.app.add_transform(RetryAfter)
        sweep_at_start(self.log)
        ssl_options = None
        if self.certfile:
            ssl_options = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ssl_options.load_cert_chain(self.certfile, self.keyfile or None)
        elif not is_local(self.ip):
            self.log.warning(
                "miqa-nb serve listens on %s without TLS: passwords and session cookies "
                "cross the network in clear. Give --certfile and --keyfile.",
                self.ip or "every address",
            )
        self.app.listen(self.port, self.ip, ssl_options=ssl_options)
        scheme = "https" if ssl_options else "http"
        self.log.info("miqa-nb server at %s://%s:%d%s", scheme, self.ip, self.port, self.base_url)
        self.ioloop = tornado.ioloop.IOLoop.current()
        self.ioloop.add_callback(self._warm_up, scheme)
        try:
            self.ioloop.start()
        except KeyboardInterrupt:
            self.log.info("Stopping...")
        finally:
            self.stop()


main = MiqaServer.launch_instance
