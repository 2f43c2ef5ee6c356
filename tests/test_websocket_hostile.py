"""A hostile client of the kernel websocket must not hold the dashboard server.

Against a real ``miqa-nb serve`` server (Voila, the dashboard notebook, real kernels):
each hostile input is refused (the websocket's handshake, HTTP 400) or its websocket
closed with the code that says why, while the server's memory stays within
:data:`RSS_BOUND` of what it was and another page's kernel keeps answering.

A guard kills the server should its memory grow by more than :data:`RSS_KILL` (this
is what the unprotected server did, without end for some inputs); the next test
starts a new one.
"""

from __future__ import annotations

import json
import os
import re
import socket
import struct
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
import websocket
from jupyter_client.session import Session
from jupyter_server.services.kernels.connection.base import (
    deserialize_msg_from_ws_v1,
    serialize_msg_to_ws_v1,
)

from miqa_nb.catalog import Catalog
from miqa_nb.serve import APP_DIR, Server, start
from miqa_nb.server._websocket import (
    MAX_MESSAGE_BYTES,
    V1_PROTOCOL,
    offered_protocols,
    v1_frame_problem,
)

pytestmark = pytest.mark.slow

MB = 1_000_000
#: How much the server's memory may grow during an attack.
RSS_BOUND = 200 * MB
#: Beyond this growth the guard kills the server (protecting the machine).
RSS_KILL = 1500 * MB
#: How long the honest page's kernel may take to answer during an attack.
ANSWER_SECONDS = 5.0


# --- the server and an honest page -------------------------------------------------


@dataclass
class Site:
    """A served dashboard and the kernel of an honest page open on it."""

    root: Path
    token: str = ""  # ana's API token: the page and its websockets are hers
    server: Server | None = None
    honest: str = ""  # an honest page's kernel id
    #: The honest page's own websocket, held open as its browser would: a page's kernel
    #: ends itself once its page has no websocket (miqa_nb.dashboard.lifeline).
    keeper: websocket.WebSocket | None = None

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.port

    @property
    def pid(self) -> int:
        assert self.server is not None
        return self.server.process.pid

    def ensure_running(self) -> None:
        """Start the server (again, after a test that left it dead or frozen)."""
        if self.server is not None and self.server.process.poll() is None and self._answers():
            return
        self.stop()
        self.server = start(
            self.root / "c.duckdb",
            private_dir=self.root / f"jupyter-{time.monotonic_ns()}",
            log=self.root / "voila.log",
            pool_size=1,
        )
        self.server.wait_ready(timeout=180)
        self.honest = self.open_page()
        self.keeper = websocket.create_connection(
            self.channels_url(self.honest),
            subprotocols=[V1_PROTOCOL],
            timeout=None,
            header=self.header,
        )
        threading.Thread(target=_drain, args=(self.keeper,), daemon=True).start()

    def _answers(self) -> bool:
        try:
            return kernel_model(self, self.honest, timeout=5) is not None
        except OSError:
            return False

    @property
    def header(self) -> list[str]:
        """Ana's credentials, as a script sends them."""
        return [f"Authorization: token {self.token}"]

    def open_page(self) -> str:
        """GET the dashboard page as ana; the id of the page's kernel."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/", headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=120) as answer:
            page = answer.read().decode()
        found = re.search(r'"kernelId": "([0-9a-f-]{36})"', page)
        assert found, "the dashboard page names no kernel"
        return found.group(1)

    def channels_url(self, kernel: str) -> str:
        return f"ws://127.0.0.1:{self.port}/api/kernels/{kernel}/channels"

    def stop(self) -> None:
        if self.keeper is not None:
            self.keeper.shutdown()
        if self.server is not None:
            self.server.stop()


def _drain(ws: websocket.WebSocket) -> None:
    """Read what the server sends, as a page does (which also answers its pings)."""
    try:
        while True:
            ws.recv()
    except (OSError, websocket.WebSocketException):
        return


def kernel_model(site: Site, kernel: str, timeout: float) -> dict[str, object]:
    """``GET /api/kernels/<id>``: what the page's kernel watch asks every second."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{site.port}/api/kernels/{kernel}",
        headers={"Authorization": f"token {site.token}"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        model: dict[str, object] = json.loads(answer.read())
    return model


def kernel_info(site: Site, kernel: str, timeout: float = 20) -> dict[str, object]:
    """A ``kernel_info_request`` over the v1 protocol, as Voila's page sends it; the
    reply's content."""
    session = Session()
    ws = websocket.create_connection(
        site.channels_url(kernel) + f"?session_id={session.session}",
        subprotocols=[V1_PROTOCOL],
        timeout=timeout,
        header=site.header,
    )
    try:
        request = session.msg("kernel_info_request", {})
        ws.send_binary(serialize_msg_to_ws_v1(request, "shell", session.pack))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            frame = ws.recv()
            if not isinstance(frame, bytes):
                continue
            channel, parts = deserialize_msg_from_ws_v1(frame)
            parent = json.loads(parts[1])
            if channel == "shell" and parent.get("msg_id") == request["header"]["msg_id"]:
                content: dict[str, object] = json.loads(parts[3])
                return content
        raise AssertionError(f"kernel {kernel} sent no kernel_info_reply in {timeout} s")
    finally:
        ws.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("hostile")
    cat = Catalog(root / "c.duckdb")
    cat.add_user("ana")
    _, token = cat.create_token("ana", by="ana")
    served = Site(root, token=token)
    try:
        yield served
    finally:
        served.stop()


@pytest.fixture
def running(site: Site) -> Site:
    site.ensure_running()
    return site


# --- watching the server during an attack ------------------------------------------


@dataclass
class Guard:
    """Samples the server's memory and times the honest page's kernel meanwhile."""

    site: Site
    baseline: int = 0
    peak: int = 0
    slowest: float = 0.0
    killed: bool = False
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> Guard:
        self.process = psutil.Process(self.site.pid)
        self.baseline = self.peak = self.process.memory_info().rss
        self._threads = [
            threading.Thread(target=self._sample, daemon=True),
            threading.Thread(target=self._ask, daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                rss = self.process.memory_info().rss
            except psutil.NoSuchProcess:
                return
            self.peak = max(self.peak, rss)
            if rss - self.baseline > RSS_KILL:
                self.killed = True
                self.process.kill()
                return
            time.sleep(0.02)

    def _ask(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                kernel_model(self.site, self.site.honest, timeout=ANSWER_SECONDS * 2)
            except OSError as exc:
                self.failures.append(f"{type(exc).__name__}: {exc}")
            self.slowest = max(self.slowest, time.monotonic() - began)
            time.sleep(0.1)

    def check(self) -> None:
        """The server held: bounded memory, the honest page answered throughout."""
        assert not self.killed, (
            f"the server's memory grew by more than {RSS_KILL / MB:.0f} MB; it was killed"
        )
        grown = (self.peak - self.baseline) / MB
        assert grown < RSS_BOUND / MB, f"the server's memory grew by {grown:.0f} MB"
        assert not self.failures, f"the honest page's kernel did not answer: {self.failures}"
        assert self.slowest < ANSWER_SECONDS, (
            f"the honest page's kernel took {self.slowest:.1f} s to answer"
        )


# --- the hostile client --------------------------------------------------------------

REFUSED = "refused"  # the handshake was refused
DROPPED = "dropped"  # the connection ended without a close frame
STILL_OPEN = "still open"


def attack(site: Site, frames: list[bytes | str], *, v1: bool, wait: float = 8) -> object:
    """Open a websocket to a fresh page's kernel (offering the v1 protocol or not), send
    ``frames``, and say what became of it: :data:`REFUSED`, the close code the server
    sent, :data:`DROPPED` or :data:`STILL_OPEN` (after ``wait`` seconds)."""
    kernel = site.open_page()
    try:
        ws = websocket.create_connection(
            site.channels_url(kernel),
            subprotocols=[V1_PROTOCOL] if v1 else None,
            timeout=wait,
            header=site.header,
        )
    except websocket.WebSocketBadStatusException as exc:
        assert exc.status_code == 400, exc
        return REFUSED
    try:
        for frame in frames:
            if isinstance(frame, str):
                ws.send(frame)
            else:
                ws.send_binary(frame)
        return _closing(ws, wait)
    except (OSError, websocket.WebSocketConnectionClosedException):
        return DROPPED
    finally:
        ws.shutdown()


def _closing(ws: websocket.WebSocket, wait: float) -> object:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        ws.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            frame = ws.recv_frame()  # raw: no close frame sent back to a closed socket
        except websocket.WebSocketTimeoutException:
            return STILL_OPEN
        except (OSError, websocket.WebSocketConnectionClosedException):
            return DROPPED
        if frame.opcode == websocket.ABNF.OPCODE_CLOSE:
            return int.from_bytes(frame.data[:2], "big")
    return STILL_OPEN


def legacy_parts(count: int, rest: bytes = b"") -> bytes:
    """A legacy binary frame: a 4-byte count of parts (signed, big-endian), then ``rest``."""
    return struct.pack("!i", count) + rest


def legacy_back_and_forth(count: int) -> bytes:
    """A legacy frame whose ``count`` offsets alternate between its start and its end:
    every other part is a copy of the whole frame."""
    size = 4 * (count + 1) + 16
    offsets = [0 if i % 2 == 0 else size - 1 for i in range(count)]
    return struct.pack(f"!I{count}I", count, *offsets) + b"\0" * 16


def v1_frame(offsets: list[int], body: bytes) -> bytes:
    """A v1 frame: the count of offsets, the offsets, then ``body``."""
    head = len(offsets).to_bytes(8, "little")
    return head + b"".join(o.to_bytes(8, "little") for o in offsets) + body


def v1_back_and_forth(count: int, body: int) -> bytes:
    """A v1 frame for channel ``nochan`` whose offsets alternate between the start of its
    ``body`` bytes and their end: every other part is a copy of the body."""
    start = 8 * (count + 1)
    end = start + body
    offsets = [start, start + 6] + [start if i % 2 == 0 else end for i in range(count - 2)]
    return v1_frame(offsets, b"nochan" + b"\0" * (body - 6))


LEGACY = {
    # 2**31 - 1 parts announced by a 20-byte frame: a 4 GB struct format
    "a binary frame announcing 2**31 - 1 parts": [legacy_parts(2**31 - 1, b"\0" * 16)],
    "a binary frame announcing -5 parts": [legacy_parts(-5, b"\0" * 16)],
    # 12,500 copies of 80 kB
    "a binary frame whose offsets go back and forth": [legacy_back_and_forth(20_000)],
    "a text frame that is not JSON": ["this is not JSON {"],
    "a JSON message with a buffer list of numbers": [
        json.dumps({"channel": "shell", "header": {}, "buffers": list(range(10_000))})
    ],
}


@pytest.mark.parametrize("frames", LEGACY.values(), ids=LEGACY.keys())
def test_the_legacy_protocol_is_refused_before_the_websocket_opens(
    running: Site, frames: list[bytes | str]
) -> None:
    with Guard(running) as guard:
        outcome = attack(running, frames, v1=False)
    guard.check()
    assert outcome == REFUSED
    assert kernel_info(running, running.honest)["status"] == "ok"


V1 = {
    # 24 bytes: the unprotected server reads 2**62 offsets, without end
    "a frame announcing 2**62 offsets": (1002, [(2**62).to_bytes(8, "little") + b"\0" * 16]),
    # 2,000 copies of 400 kB
    "a frame whose offsets go back and forth": (1002, [v1_back_and_forth(4_000, 400_000)]),
    "a frame whose offsets lie beyond it": (
        1002,
        [v1_frame([56, 61, 10**9, 10**9, 10**9, 10**9], b"shell{}")],
    ),
    "a frame too short for its count": (1002, [b"\x07\0\0\0\0\0\0\0"]),
    "a text frame": (1003, ['{"channel": "shell", "header": {}}']),
}


@pytest.mark.parametrize(("code", "frames"), V1.values(), ids=V1.keys())
def test_a_malformed_v1_frame_closes_its_websocket(
    running: Site, code: int, frames: list[bytes | str]
) -> None:
    with Guard(running) as guard:
        outcome = attack(running, frames, v1=True)
    guard.check()
    assert outcome == code
    assert kernel_info(running, running.honest)["status"] == "ok"
    assert "Closed the websocket to kernel" in (running.root / "voila.log").read_text()


def test_a_frame_announcing_more_than_the_limit_closes_its_websocket_at_once(
    running: Site,
) -> None:
    """The header of a 1 GiB binary frame: closed with 1009 (message too big) as soon as
    the length is read, not after the server has buffered the frame."""
    kernel = running.open_page()
    ws = websocket.create_connection(
        running.channels_url(kernel), subprotocols=[V1_PROTOCOL], timeout=10, header=running.header
    )
    try:
        with Guard(running) as guard:
            size = 2**30
            mask = os.urandom(4)
            # the header only: bytes the server leaves unread would make its socket's
            # close a reset, which can discard its close frame before we read it
            ws.sock.sendall(bytes([0x82, 0x80 | 127]) + size.to_bytes(8, "big") + mask)
            outcome = _closing(ws, 8)
        guard.check()
    finally:
        ws.shutdown()
    assert outcome == 1009
    assert kernel_info(running, running.honest)["status"] == "ok"


def test_a_page_speaks_the_v1_protocol_and_stays_connected(running: Site) -> None:
    """What Voila's page does: a v1 websocket, a kernel_info_request, a reply; the
    connection is counted while it is open (the kernel's page watch reads the count;
    the site's keeper holds the other one)."""
    assert kernel_info(running, running.honest)["status"] == "ok"
    ws = websocket.create_connection(
        running.channels_url(running.honest),
        subprotocols=[V1_PROTOCOL],
        timeout=20,
        header=running.header,
    )
    try:
        assert ws.getsubprotocol() == V1_PROTOCOL
        deadline = time.monotonic() + 10
        while (count := kernel_model(running, running.honest, 5)["connections"]) != 2:
            assert time.monotonic() < deadline, f"{count} websockets counted, not 2 (+ keeper)"
            time.sleep(0.1)
    finally:
        ws.close()


# --- the checks themselves, and the settings ----------------------------------------


def test_the_message_limit_in_voila_json_is_the_one_the_module_documents() -> None:
    settings = json.loads((APP_DIR / "voila.json").read_text())["Voila"]
    assert settings["tornado_settings"]["websocket_max_message_size"] == MAX_MESSAGE_BYTES
    assert settings["kernel_websocket_connection_class"] == (
        "miqa_nb.server._websocket.CheckedChannelsConnection"
    )


def test_a_well_formed_v1_frame_passes_the_check() -> None:
    session = Session()
    message = session.msg("comm_msg", {"data": {}})
    message["buffers"] = [b"x" * 10, b""]
    parts = [session.pack(message[k]) for k in ("header", "parent_header", "metadata")]
    frame = serialize_msg_to_ws_v1(
        [*parts, session.pack(message["content"]), *message["buffers"]], "shell"
    )
    assert v1_frame_problem(frame) is None
    assert v1_frame_problem(frame, max_parts=5) is not None  # 6 parts
    assert v1_frame_problem(frame[:-1]) == (
        f"the last offset ({len(frame)}) lies beyond the frame's {len(frame) - 1} bytes"
    )


def test_the_offered_protocols_are_read_from_the_header() -> None:
    assert offered_protocols(f" {V1_PROTOCOL} ,x") == [V1_PROTOCOL, "x"]
    assert offered_protocols("") == []


def test_a_raw_socket_without_credentials_gets_no_websocket(running: Site) -> None:
    """Without a signed-in user the kernel websocket is not opened at all."""
    kernel = running.honest
    with socket.create_connection(("127.0.0.1", running.port), timeout=10) as raw:
        raw.sendall(
            (
                f"GET /api/kernels/{kernel}/channels HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                f"Sec-WebSocket-Protocol: {V1_PROTOCOL}\r\n\r\n"
            ).encode()
        )
        status = raw.recv(200).split(b"\r\n", 1)[0]
    assert status.split()[1] in (b"401", b"403"), status
