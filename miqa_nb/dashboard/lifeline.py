"""What a served page's kernel asks the server: whose page it is, and whether it is open.

A kernel of ``miqa-nb serve`` has a key of its own (``MIQA_NB_KERNEL_KEY``, given by
the server when it started the kernel; :mod:`miqa_nb.server.kernels`) and the server's
address (``MIQA_NB_SERVE_URL``). With them it asks ``miqa/kernel/page`` which signed-in
page took it -- :func:`served_page` waits for the answer, which is the server's
verified identity, never anything the page could change -- and ``miqa/kernel/...``
the questions below. The key opens nothing but this kernel's own questions.

A served dashboard page has a kernel of its own, which holds the reviewer's claims. The
page's first way out is Voila's shutdown request when the page is closed or reloaded
(:mod:`miqa_nb.server`); this module is the second, for pages that never say
goodbye (a crashed browser, a killed tab, a laptop closed or taken off the network).

The server knows whether a page is there: a page holds one websocket to its kernel,
which the server counts (the ``connections`` of ``GET api/kernels/<id>``) and pings, so
a page gone without a word is dropped within the websocket's ping timeout. A browser
heartbeat (a timer in the page) would say the same less reliably: browsers slow down
the timers of background tabs to one a minute, while the websocket of a background tab
stays open. So :class:`PageWatch` asks the server every second; once the kernel
has had no connection for ``grace`` seconds (``first_grace`` before the page first
connected), it calls ``on_gone`` -- the dashboard gives up its claims -- and asks the
server to shut the kernel down, as the page would have (pre-heated kernels waiting in
Voila's pool never start a watch: it starts when a page takes the kernel).

Kernels find their own id in Voila's ``VOILA_KERNEL_ID`` (else the connection
file's name); elsewhere (a notebook) there is nothing to ask.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import NamedTuple

__all__ = [
    "GRACE_ENV",
    "IDLE_MINUTES_ENV",
    "KERNEL_KEY_ENV",
    "SERVE_URL_ENV",
    "PageWatch",
    "ServedPage",
    "kernel_id",
    "served_page",
]

log = logging.getLogger("miqa_nb.dashboard")

SERVE_URL_ENV = "MIQA_NB_SERVE_URL"
#: The kernel's own key (set by the server for each kernel it starts).
KERNEL_KEY_ENV = "MIQA_NB_KERNEL_KEY"
#: Seconds without a page before the kernel lets go (default :attr:`PageWatch.grace`).
GRACE_ENV = "MIQA_NB_PAGE_GRACE"
#: Minutes without an action before a served review gives its claims up.
IDLE_MINUTES_ENV = "MIQA_NB_IDLE_MINUTES"


def kernel_id(environ: Mapping[str, str]) -> str | None:
    """This kernel's id: Voila's ``VOILA_KERNEL_ID``, else from the connection file
    (``kernel-<id>.json``), else None (not a kernel)."""
    found = environ.get("VOILA_KERNEL_ID")
    if found:
        return found
    try:
        from ipykernel.connect import get_connection_file

        name = Path(get_connection_file()).stem
    except Exception:  # not in a kernel
        return None
    return name[len("kernel-") :] if name.startswith("kernel-") else None


class ServedPage(NamedTuple):
    """The signed-in page a served kernel belongs to."""

    user: str
    query: str


def _ask(
    server_url: str, kernel: str, key: str, what: str, method: str = "GET", timeout: float = 10
) -> tuple[int, bytes]:
    request = urllib.request.Request(
        server_url.rstrip("/") + "/miqa/kernel/" + what,
        method=method,
        headers={"Authorization": f"kernel {kernel} {key}"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        return int(answer.status), answer.read()


def served_page(environ: Mapping[str, str], timeout: float = 24 * 3600) -> ServedPage | None:
    """The page this served kernel belongs to, waiting until a page takes it.

    None when this is not a kernel of ``miqa-nb serve`` (no server address or key), or
    when the server does not say within ``timeout`` seconds.
    """
    url, key = environ.get(SERVE_URL_ENV), environ.get(KERNEL_KEY_ENV)
    kernel = kernel_id(environ) if url and key else None
    if not (url and key and kernel):
        return None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status, body = _ask(url, kernel, key, "page?wait=60", timeout=90)
        except (OSError, ValueError) as exc:
            log.warning("the server did not say whose page this is: %s", exc)
            time.sleep(1.0)
            continue
        if status == 200:
            answer = json.loads(body)
            return ServedPage(str(answer["user"]), str(answer.get("query") or ""))
    return None


class PageWatch:
    """Call ``on_gone`` and shut the kernel down once its page has gone.

    Parameters
    ----------
    server_url : str
        The server's address with its base URL (``http://127.0.0.1:PORT/``).
    key : str
        This kernel's key (it opens this kernel's own questions only).
    kernel : str
        This kernel's id.
    on_gone : callable
        Called once, on the watch's thread, when the page has gone.
    grace : float
        Seconds without a connection, after the page had connected, before letting go.
    first_grace : float
        The same before the page first connected (a page loading on a busy machine).
    interval : float
        Seconds between two questions to the server.
    """

    def __init__(
        self,
        server_url: str,
        key: str,
        kernel: str,
        *,
        on_gone: Callable[[], object],
        grace: float = 10.0,
        first_grace: float = 60.0,
        interval: float = 1.0,
    ) -> None:
        self.url = server_url
        self.kernel = kernel
        self._key = key
        self.on_gone = on_gone
        self.grace = grace
        self.first_grace = first_grace
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: Whether a page has been connected to this kernel.
        self.seen = False

    @classmethod
    def from_environment(
        cls, environ: Mapping[str, str], on_gone: Callable[[], object]
    ) -> PageWatch | None:
        """The watch for a kernel of ``miqa-nb serve``, or None elsewhere."""
        url, key, kernel = environ.get(SERVE_URL_ENV), environ.get(KERNEL_KEY_ENV), None
        if url and key:
            kernel = kernel_id(environ)
        if not (url and key and kernel):
            return None
        grace = float(environ.get(GRACE_ENV) or 10.0)
        return cls(url, key, kernel, on_gone=on_gone, grace=grace)

    def connections(self) -> int | None:
        """How many pages the server counts on this kernel (None: no answer)."""
        try:
            _, body = _ask(self.url, self.kernel, self._key, "connections")
            return int(json.loads(body).get("connections", 0))
        except (OSError, ValueError) as exc:
            log.debug("the server did not say whether the page is open: %s", exc)
            return None

    def start(self) -> PageWatch:
        """Start watching on a daemon thread."""
        self._thread = threading.Thread(target=self._watch, name="miqa-page-watch", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop watching (nothing is called)."""
        self._stop.set()

    def _watch(self) -> None:
        last_seen = time.monotonic()
        while not self._stop.wait(self.interval):
            count = self.connections()
            now = time.monotonic()
            if count is None:  # a busy or stopping server: decide on its next answer
                continue
            if count > 0:
                self.seen, last_seen = True, now
            elif now - last_seen >= (self.grace if self.seen else self.first_grace):
                self._let_go()
                return

    def _let_go(self) -> None:
        log.info("the page of kernel %s has gone: giving up its claims", self.kernel)
        try:
            self.on_gone()
        except Exception:
            log.exception("giving up the claims of a closed page failed")
        try:  # as the page's own shutdown request would have
            _ask(self.url, self.kernel, self._key, "", method="DELETE")
        except OSError as exc:
            log.warning("could not ask the server to end this kernel: %s", exc)
