"""Sign-in sessions and the brake on failed sign-ins, in the server's memory.

A session is a random id (:func:`secrets.token_urlsafe`, 256 bits) that stands for a
signed-in user: the browser holds it in the signed login cookie, scripts as XNAT's
``JSESSIONID``. Keeping sessions here (not only in a signed cookie) is what makes
sign-out final: an ended session is refused even if its cookie is replayed. They end
with the server process: after a restart everybody signs in again.
"""

from __future__ import annotations

import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

__all__ = ["Session", "Sessions", "Throttle"]


@dataclass
class Session:
    """One sign-in: whose, of which kind (``browser`` or ``api``), until when."""

    user: str
    kind: str
    expires: float
    last_seen: float


class Sessions:
    """Sessions by id.

    Parameters
    ----------
    idle : float
        Seconds without a request after which a session ends (default 8 hours).
    lifetime : float
        Seconds after which a session ends however busy (default 24 hours).
    clock : callable
        Seconds, monotonic (tests pass their own).
    """

    def __init__(
        self,
        idle: float = 8 * 3600,
        lifetime: float = 24 * 3600,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.idle = idle
        self.lifetime = lifetime
        self._clock = clock
        self._sessions: dict[str, Session] = {}

    def start(self, user: str, kind: str = "browser") -> str:
        """A new session for ``user``; returns its id."""
        now = self._clock()
        sid = secrets.token_urlsafe(32)
        self._sessions[sid] = Session(user, kind, now + self.lifetime, now)
        return sid

    def get(self, sid: str) -> Session | None:
        """The live session ``sid`` (its idle time renewed), else None."""
        session = self._sessions.get(sid)
        if session is None:
            return None
        now = self._clock()
        if now >= session.expires or now - session.last_seen >= self.idle:
            del self._sessions[sid]
            return None
        session.last_seen = now
        return session

    def end(self, sid: str) -> Session | None:
        """End session ``sid``; return it (None: there was none)."""
        return self._sessions.pop(sid, None)

    def end_user(self, user: str) -> int:
        """End every session of ``user``; return how many."""
        gone = [sid for sid, s in self._sessions.items() if s.user == user]
        for sid in gone:
            del self._sessions[sid]
        return len(gone)


class Throttle:
    """At most ``limit`` failures per key within ``window`` seconds.

    Keys are ``"user:NAME"`` and ``"addr:IP"``: a failed sign-in counts against both,
    and either being over the limit refuses the next attempt (HTTP 429) until the
    oldest failure leaves the window -- whether or not that attempt would succeed, so
    guessing gains nothing.
    """

    def __init__(
        self, limit: int = 10, window: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        cutoff = self._clock() - self.window
        while times and times[0] <= cutoff:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def retry_after(self, keys: Iterable[str]) -> float:
        """Seconds before any of ``keys`` may try again (0: now)."""
        wait = 0.0
        for key in keys:
            times = self._recent(key)
            if len(times) >= self.limit:
                wait = max(wait, times[0] + self.window - self._clock())
        return wait

    def fail(self, keys: Iterable[str]) -> None:
        """Count one failure against each of ``keys``."""
        now = self._clock()
        for key in keys:
            self._failures.setdefault(key, deque()).append(now)
