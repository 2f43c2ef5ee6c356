"""Which page a kernel serves, and a credential of its own for each kernel.

Every kernel the server starts gets a random key in its environment
(``MIQA_NB_KERNEL_KEY``), known otherwise only to this process. When a signed-in user's
page takes a kernel (a pre-heated one from Voila's pool, or one started for the page),
the server records the page -- its user and query string -- against the kernel. The
kernel then asks ``GET miqa/kernel/page`` with its key and learns who it serves from
the server's verified identity (:mod:`miqa_nb.server.handlers`): nothing the page can
change (query string, widget state, messages) chooses the user.

The same record is the kernel's owner: :class:`OwnerAuthorizer` lets only that user
reach the kernel's websocket and REST resources, so a signed-in reviewer who reads
another kernel's id (``ps`` shows them) cannot talk to it or shut it down.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hashlib
import hmac
import os
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from jupyter_core.utils import ensure_async
from jupyter_server.auth.authorizer import Authorizer
from jupyter_server.auth.identity import User
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager

__all__ = [
    "KERNEL_KEY_ENV",
    "PAGE_REQUEST",
    "REGISTRY",
    "KernelRegistry",
    "MiqaKernelManager",
    "OwnerAuthorizer",
    "Page",
    "track_pages",
]

#: The kernel's own key, in its environment.
KERNEL_KEY_ENV = "MIQA_NB_KERNEL_KEY"
#: The API token JupyterHub gives a server it spawned (under both its names): kept
#: from the kernels, which need only their own key.
HUB_SECRETS = ("JUPYTERHUB_API_TOKEN", "JPY_API_TOKEN")


@dataclass(frozen=True)
class Page:
    """A signed-in page: its user, the page address's query string, its sign-in."""

    user: str
    query: str = ""
    session: str = ""


#: The page being served by the current request (set by the page handler, read when
#: that request takes or starts a kernel).
PAGE_REQUEST: contextvars.ContextVar[Page | None] = contextvars.ContextVar(
    "miqa_nb_page_request", default=None
)


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


class KernelRegistry:
    """Kernels' keys and the pages they serve (one per server process)."""

    def __init__(self) -> None:
        self._keys: dict[str, bytes] = {}
        self._pages: dict[str, Page] = {}
        self._events: dict[str, asyncio.Event] = {}

    def new_kernel(self, kernel_id: str) -> str:
        """A fresh key for ``kernel_id`` (only its digest is kept)."""
        key = secrets.token_urlsafe(32)
        self._keys[kernel_id] = _digest(key)
        return key

    def kernel_for(self, kernel_id: str, key: str) -> bool:
        """Whether ``key`` is ``kernel_id``'s key (compared in constant time)."""
        known = self._keys.get(kernel_id)
        return known is not None and hmac.compare_digest(known, _digest(key))

    def assign(self, kernel_id: str, page: Page) -> None:
        """Record that ``page`` took ``kernel_id``; a kernel serves one page, once."""
        if kernel_id in self._pages:
            raise RuntimeError(f"kernel {kernel_id} serves a page already")
        self._pages[kernel_id] = page
        self._event(kernel_id).set()

    def page(self, kernel_id: str) -> Page | None:
        """The page ``kernel_id`` serves, or None (waiting in the pool)."""
        return self._pages.get(kernel_id)

    def owner(self, kernel_id: str) -> str | None:
        """The user whose page ``kernel_id`` serves."""
        page = self._pages.get(kernel_id)
        return page.user if page else None

    def kernels_of(self, session: str) -> list[str]:
        """The kernels of pages opened in the sign-in ``session``."""
        return [k for k, p in self._pages.items() if session and p.session == session]

    def kernels_owned_by(self, user: str) -> list[str]:
        """The kernels of ``user``'s pages."""
        return [k for k, p in self._pages.items() if p.user == user]

    async def wait_page(self, kernel_id: str, timeout: float) -> Page | None:
        """The page ``kernel_id`` serves, waiting up to ``timeout`` seconds for one."""
        if kernel_id not in self._pages:
            try:
                await asyncio.wait_for(self._event(kernel_id).wait(), timeout)
            except TimeoutError:
                return None
        return self._pages.get(kernel_id)

    def forget(self, kernel_id: str) -> None:
        """Drop an ended kernel's key and page."""
        self._keys.pop(kernel_id, None)
        self._pages.pop(kernel_id, None)
        self._events.pop(kernel_id, None)

    def _event(self, kernel_id: str) -> asyncio.Event:
        return self._events.setdefault(kernel_id, asyncio.Event())


REGISTRY = KernelRegistry()


async def end_pages(session_id: str | None, kernel_manager: Any) -> None:
    """Shut down the kernels of the pages a browser session opened (at sign-out)."""
    for kernel_id in REGISTRY.kernels_of(session_id or ""):
        with contextlib.suppress(KeyError):  # ended meanwhile
            await ensure_async(kernel_manager.shutdown_kernel(kernel_id))


class MiqaKernelManager(AsyncMappingKernelManager):
    """Jupyter Server's kernel manager that gives each kernel its key.

    A kernel started for a page (Voila starts one when its pool is empty; its
    environment says ``VOILA_PREHEAT=False``) is that page's at once; a pooled kernel
    is assigned when a page takes it (:func:`track_pages`).
    """

    async def start_kernel(  # type: ignore[override]
        self, *, kernel_id: str | None = None, path: Any = None, **kwargs: Any
    ) -> str:
        kernel_id = kernel_id or str(uuid.uuid4())
        env = dict(kwargs.pop("env", None) or os.environ)
        for secret in HUB_SECRETS:  # the server's, not the page's
            env.pop(secret, None)
        env[KERNEL_KEY_ENV] = REGISTRY.new_kernel(kernel_id)
        page = PAGE_REQUEST.get()
        try:
            started: str = await super().start_kernel(
                kernel_id=kernel_id, path=path, env=env, **kwargs
            )
        except BaseException:
            REGISTRY.forget(kernel_id)
            raise
        if page is not None and env.get("VOILA_PREHEAT") == "False":
            REGISTRY.assign(started, page)
        return started

    async def shutdown_kernel(self, kernel_id: str, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        try:
            await super().shutdown_kernel(kernel_id, *args, **kwargs)
        finally:
            REGISTRY.forget(kernel_id)


def track_pages(kernel_manager: Any) -> None:
    """Record which page takes each pre-heated kernel.

    Voila's page handler takes a kernel from the pool with
    ``kernel_manager.get_rendered_notebook``, in the request's own task; this wraps
    that method on the instance (Voila builds the manager's class itself, around
    :class:`MiqaKernelManager`) to assign the kernel to the request's page. The page
    is hidden from what the call starts meanwhile (the pool's refill), so a new
    pooled kernel never inherits it.
    """
    original = getattr(kernel_manager, "get_rendered_notebook", None)
    if original is None:  # no pool: every page starts its kernel (MiqaKernelManager)
        return

    async def get_rendered_notebook(*args: Any, **kwargs: Any) -> Any:
        page = PAGE_REQUEST.get()
        token = PAGE_REQUEST.set(None)
        try:
            render_task, rendered, kernel_id = await original(*args, **kwargs)
        finally:
            PAGE_REQUEST.reset(token)
        if page is not None:
            REGISTRY.assign(kernel_id, page)
        return render_task, rendered, kernel_id

    kernel_manager.get_rendered_notebook = get_rendered_notebook


class OwnerAuthorizer(Authorizer):
    """Signed-in users may use the server; a kernel only by the user it serves.

    Requests naming a kernel (its websocket, ``api/kernels/<id>``, Voila's shutdown
    request) are allowed only to the user whose page the kernel serves; a kernel
    waiting in the pool belongs to nobody.
    """

    def is_authorized(self, handler: Any, user: User, action: str, resource: str) -> bool:
        if user is None:
            return False
        kernel_id = getattr(handler, "kernel_id", None) or (
            getattr(handler, "path_kwargs", None) or {}
        ).get("kernel_id")
        if resource == "kernels" or kernel_id:
            return bool(kernel_id) and REGISTRY.owner(str(kernel_id)) == user.username
        return True
