"""The kernel websocket: what a page's browser may send its kernel through the server.

Voila relays each page's kernel messages between a websocket and the kernel's ZMQ
sockets with jupyter_server's :class:`ZMQChannelsWebsocketConnection`, which trusts
the client's framing. Everything it parses runs on the server's one event loop, so a
single crafted frame from any holder of the token stopped every page:

- v1 protocol (``v1.kernel.websocket.jupyter.org``): the first 8 bytes of a binary
  frame give the number of offsets that follow, and jupyter_server reads that many
  without looking at the frame's length. A 24-byte frame announcing 2**62 offsets
  builds a list without end: the server answers nobody again and its memory grows
  by 40-200 MB/s until the system kills it.
- legacy protocol (no subprotocol): a binary frame's first 4 bytes give its number
  of parts; 2**31 - 1 of them in a 20-byte frame builds a 4 GB ``struct`` format and
  holds the loop for seconds. Offsets that go back and forth make every part a copy of
  most of the frame: a 1 MB frame asks for 125 GB. Text frames are parsed as JSON:
  under a 1 GiB message limit, one message takes gigabytes and tens of seconds.

:class:`CheckedChannelsConnection` is the connection class Voila uses instead
(``Voila.kernel_websocket_connection_class`` in ``voila_app/voila.json``). It

- refuses the legacy protocol before the websocket opens (HTTP 400): Voila's page
  (JupyterLab's kernel client) asks for the v1 protocol, and nothing else of the
  dashboard speaks to kernels;
- checks every v1 frame's framing -- a binary frame, a count of parts within
  :data:`MAX_PARTS` and within the frame, offsets in order and inside the frame --
  before jupyter_server reads it, and closes the websocket of a client that sends one
  that is not (1002, protocol error; 1003 for a text frame), logging why;
- so the parts it hands on never add up to more than the frame itself.

:data:`MAX_MESSAGE_BYTES` is the largest message Tornado accepts (it closes the
websocket with 1009 beyond it); ``voila_app/voila.json`` sets
``tornado_settings.websocket_max_message_size`` to it (a test keeps them equal).
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection
from tornado import web

__all__ = [
    "MAX_MESSAGE_BYTES",
    "MAX_PARTS",
    "V1_PROTOCOL",
    "CheckedChannelsConnection",
    "offered_protocols",
    "v1_frame_problem",
]

#: The kernel websocket protocol Voila's page speaks (JupyterLab's kernel client).
V1_PROTOCOL = "v1.kernel.websocket.jupyter.org"

#: The largest websocket message the server reads: 256 MiB. The largest message a
#: dashboard page sends is the upload panel's: ipywidgets' ``FileUpload`` sends every
#: chosen file, whole, in one widget message as soon as they are chosen. The panel
#: sets no size of its own; 256 MiB holds a few uncompressed whole-head volumes (a
#: 256x256x256 float32 volume is 64 MiB) or a diffusion series, while a server with
#: two cores and a few GB is not brought down by a handful of clients each sending one.
#: Bigger scans are imported from the server's disk (``miqa-nb import``).
MAX_MESSAGE_BYTES = 256 * 1024 * 1024

#: The most parts a v1 message may have: channel, header, parent header, metadata and
#: content, and up to 4091 binary buffers (one per uploaded file, for ``FileUpload``).
MAX_PARTS = 4096

# v1 framing: 8 bytes (little-endian) give n, the count of offsets; n offsets of 8
# bytes each follow; then the channel's name and the message's parts. Offsets count
# from the frame's start: the channel runs from offsets[0] to offsets[1], part i from
# offsets[i] to offsets[i + 1]. A message is channel + header, parent header,
# metadata, content (+ buffers): n >= 6.
_WORD = 8
_MIN_OFFSETS = 6


def offered_protocols(header: str | None) -> list[str]:
    """The subprotocols a websocket request offers (its ``Sec-WebSocket-Protocol``).

    >>> offered_protocols("v1.kernel.websocket.jupyter.org, chat")
    ['v1.kernel.websocket.jupyter.org', 'chat']
    >>> offered_protocols(None)
    []
    """
    return [p.strip() for p in (header or "").split(",") if p.strip()]


def v1_frame_problem(frame: bytes | str, max_parts: int = MAX_PARTS) -> str | None:
    """Why ``frame`` is not a well-formed v1 kernel message, or None when it is.

    Only the framing is checked, in time proportional to the number of parts (never
    to what the frame claims): the parts then lie in order inside the frame, so
    reading them costs no more memory than the frame itself. Whether the parts are
    valid messages is the kernel's business.

    >>> v1_frame_problem(b"\\x00" * 4)
    'a v1 kernel message starts with 8 bytes giving its number of offsets; 4 bytes were sent'
    >>> v1_frame_problem("{}")
    'a v1 kernel message is a binary frame; a text frame was sent'
    """
    if isinstance(frame, str):
        return "a v1 kernel message is a binary frame; a text frame was sent"
    size = len(frame)
    if size < _WORD:
        return (
            f"a v1 kernel message starts with {_WORD} bytes giving its number of offsets; "
            f"{size} bytes were sent"
        )
    count = int.from_bytes(frame[:_WORD], "little")
    if not _MIN_OFFSETS <= count <= max_parts + 1:
        return (
            f"a v1 kernel message has {_MIN_OFFSETS} to {max_parts + 1} offsets "
            f"(a channel and {_MIN_OFFSETS - 2} to {max_parts} parts); {count} were announced"
        )
    table_end = _WORD * (count + 1)
    if table_end > size:
        return f"the frame announces {count} offsets but holds only {size} bytes"
    offsets = [
        int.from_bytes(frame[_WORD * (i + 1) : _WORD * (i + 2)], "little") for i in range(count)
    ]
    if offsets[0] != table_end:
        return (
            f"the channel's name must start right after the offsets, at byte {table_end}; "
            f"the first offset is {offsets[0]}"
        )
    for i, (start, stop) in enumerate(pairwise(offsets)):
        if stop < start:
            return f"offset {i + 1} ({stop}) comes before offset {i} ({start})"
    if offsets[-1] > size:
        return f"the last offset ({offsets[-1]}) lies beyond the frame's {size} bytes"
    return None


class CheckedChannelsConnection(ZMQChannelsWebsocketConnection):
    """jupyter_server's kernel websocket connection, v1 protocol only, frames checked.

    See the module's docstring for what it refuses and why.
    """

    async def prepare(self) -> None:
        """Refuse a client that does not offer the v1 protocol, before anything else."""
        handler = self.websocket_handler
        offered = offered_protocols(handler.request.headers.get("Sec-WebSocket-Protocol"))
        if V1_PROTOCOL not in offered:
            reason = (
                f"this server's kernels speak only the {V1_PROTOCOL} websocket protocol; "
                f"the client offered {offered or 'none'}"
            )
            self.log.warning(
                "Refused a websocket to kernel %s from %s: %s",
                self.kernel_id,
                handler.request.remote_ip,
                reason,
            )
            raise web.HTTPError(400, reason=_ascii(reason))
        await super().prepare()

    def handle_incoming_message(self, incoming_msg: Any) -> None:
        """Hand a well-formed v1 frame on to the kernel; close the websocket otherwise."""
        if self._refused:
            return
        if self.subprotocol != V1_PROTOCOL:  # prepare() refused the others already
            self._refuse(1002, f"the websocket protocol is not {V1_PROTOCOL}")
            return
        problem = v1_frame_problem(incoming_msg)
        if problem is not None:
            self._refuse(1003 if isinstance(incoming_msg, str) else 1002, problem)
            return
        super().handle_incoming_message(incoming_msg)

    _refused = False

    def _refuse(self, code: int, reason: str) -> None:
        """Close the websocket with ``code``, log why, and read nothing more from it."""
        self._refused = True
        handler = self.websocket_handler
        self.log.warning(
            "Closed the websocket to kernel %s from %s: %s",
            self.kernel_id,
            handler.request.remote_ip,
            reason,
        )
        # a close frame's reason is at most 123 bytes
        handler.close(code, _ascii(reason)[:120])


def _ascii(text: str) -> str:
    """``text`` fit for an HTTP reason phrase or a close frame (ASCII, one line)."""
    return text.encode("ascii", "replace").decode().replace("\r", " ").replace("\n", " ")
