"""XNAT's progress of an import: ``http-session-listener=ID`` and ``GET /data/status/ID``.

An import sent with ``http-session-listener=ID`` records its progress under ``ID``
for the user who sent it; ``GET /data/status/ID?format=json`` answers it as XNAT
does, ``{"msgs": [[{"msg": "...", "status": "PROCESSING"}, ...]]}``, the messages in
order, the last one ``COMPLETED`` (``Archive:<url;url>`` or ``Prearchive:<url;url>``)
or ``FAILED`` (the error's text) once the import has ended.

The records live in the memory of the server process (:data:`BOARD`), as XNAT keeps
them in the HTTP session: they are lost when the server stops. A record is kept while
its import runs and for :attr:`StatusBoard.keep_seconds` (one hour) after it ended;
a user keeps at most :attr:`StatusBoard.max_per_user` records (the oldest ended ones
go first). Records are per user: another user's ``ID`` is unknown to you (404), as is
an ID nobody used, and the same ``ID`` sent again starts its record afresh.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from jupyter_server.auth.decorator import allow_unauthenticated

from miqa_nb.core.errors import NotFound
from miqa_nb.server.xnat import COMPLETED, FAILED, SIGN_IN, XnatHandler

__all__ = ["BOARD", "Progress", "StatusBoard", "StatusHandler", "done_message"]

WARNING = "WARNING"


@dataclass
class Progress:
    """The messages of one import, in order (each a ``(status, message)`` pair)."""

    messages: list[tuple[str, str]] = field(default_factory=list)
    ended: float | None = None


class StatusBoard:
    """Each user's import progress, by listener ID (thread-safe: imports run in threads).

    Parameters
    ----------
    keep_seconds
        How long an ended import's record is kept.
    max_per_user
        The most records one user keeps.
    clock
        Seconds, monotonic (a test may pass its own).
    """

    def __init__(
        self,
        keep_seconds: float = 3600.0,
        max_per_user: int = 1000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.keep_seconds = keep_seconds
        self.max_per_user = max_per_user
        self._clock = clock
        self._lock = threading.Lock()
        self._records: dict[str, dict[str, Progress]] = {}

    def _sweep(self, user: str) -> dict[str, Progress]:
        now = self._clock()
        records = self._records.setdefault(user, {})
        for key in [k for k, p in records.items() if p.ended and now - p.ended > self.keep_seconds]:
            del records[key]
        return records

    def start(self, user: str, listener: str) -> None:
        """Begin (or begin again) ``user``'s record ``listener``."""
        with self._lock:
            records = self._sweep(user)
            records.pop(listener, None)
            while len(records) >= self.max_per_user:
                ended = [k for k, p in records.items() if p.ended is not None]
                del records[ended[0] if ended else next(iter(records))]
            records[listener] = Progress()

    def add(self, user: str, listener: str, status: str, message: str) -> None:
        """Append a message; ``FAILED`` and ``COMPLETED`` end the record."""
        with self._lock:
            progress = self._records.get(user, {}).get(listener)
            if progress is None:
                return
            progress.messages.append((status, message))
            if status in (FAILED, COMPLETED):
                progress.ended = self._clock()

    def messages(self, user: str, listener: str) -> list[tuple[str, str]]:
        """``user``'s messages under ``listener``; :class:`NotFound` when there is none."""
        with self._lock:
            progress = self._sweep(user).get(listener)
            if progress is None:
                raise NotFound(
                    f"No import with http-session-listener {listener!r} is known for you: "
                    "it was never sent by you, or it ended more than an hour ago, or the "
                    "server was restarted since."
                )
            return list(progress.messages)


#: The server process's records.
BOARD = StatusBoard()


def done_message(uris: list[str]) -> str:
    """XNAT's last message of a completed import: ``Archive:`` or ``Prearchive:`` then
    the created addresses separated by ``;``."""
    where = (
        "Prearchive" if uris and all(u.startswith("/data/prearchive") for u in uris) else "Archive"
    )
    return f"{where}:{';'.join(uris)}"


class StatusHandler(XnatHandler):
    """``GET /data/status/ID`` (see the module)."""

    @allow_unauthenticated
    async def get(self, listener: str) -> None:
        if self.current_user is None:
            self._text(401, SIGN_IN)
            return
        try:
            messages = BOARD.messages(self.current_user.username, listener)
        except NotFound as exc:
            self.refuse(exc)
            return
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        body = [{"msg": msg, "status": status} for status, msg in messages]
        self.finish(json.dumps({"msgs": [body]}))
