"""Observers of a review session, called on the thread that owns the session.

A session does catalog work on a background thread (writing accepted decisions,
claims, refreshing, auto-refresh); views over it are ipywidgets, whose state must
change on the kernel's own thread. :class:`Observers` keeps that promise for every
event, whichever thread raised it.

Contract
--------
- The *owner* is the thread that built the :class:`Observers` (the session's
  constructor): in a kernel or a Voila page, the thread running the cell.
- An event raised on the owner is delivered at once, after any events still waiting
  (so observers see events in the order they were raised).
- An event raised on another thread waits; it is never delivered on that thread.
  When the owner had a running asyncio loop at construction (ipykernel runs every
  cell inside one, and so does Voila), delivery is scheduled on that loop with
  ``call_soon_threadsafe``: it happens as soon as the kernel is idle. Without a loop
  (a script, a test), waiting events are delivered when the owner next raises an
  event, calls :meth:`deliver`, or calls the session's ``flush()``/``close()``, which
  call :meth:`deliver`.
- Observers receive only the event's name and read the session's state when called,
  so an event already waiting is not queued twice: waiting is bounded by the number
  of event names, however long the owner stays away.
- An observer's exception is logged and never reaches the session or other observers.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Collection
from typing import Any

__all__ = ["Observers"]

_log = logging.getLogger("miqa_nb.review.session")


class Observers:
    """Callbacks subscribed to named events, called on the owner thread only.

    Parameters
    ----------
    loop : asyncio.AbstractEventLoop, optional
        Where to schedule delivery of events raised on other threads. Default: the
        loop running in the constructing thread, if any (see the module docstring).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.owner = threading.get_ident()
        if loop is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no loop here: the owner delivers when it calls in
                loop = None
        self._loop = loop
        self._entries: list[tuple[Callable[[str], Any], frozenset[str] | None]] = []
        self._waiting: list[str] = []
        self._scheduled = False
        self._lock = threading.Lock()

    def observe(
        self, callback: Callable[[str], Any], events: Collection[str] | None = None
    ) -> Callable[[], None]:
        """Call ``callback(event)`` on events (all, or those named); returns an unsubscriber."""
        entry = (callback, None if events is None else frozenset(events))
        with self._lock:
            self._entries.append(entry)

        def unobserve() -> None:
            with self._lock:
                if entry in self._entries:
                    self._entries.remove(entry)

        return unobserve

    @property
    def on_owner(self) -> bool:
        """Whether the calling thread is the owner."""
        return threading.get_ident() == self.owner

    @property
    def waiting(self) -> tuple[str, ...]:
        """Events raised on other threads and not delivered yet, oldest first."""
        with self._lock:
            return tuple(self._waiting)

    def notify(self, event: str) -> None:
        """Raise ``event``: deliver it now on the owner, else let it wait for the owner."""
        if self.on_owner:
            self.deliver()
            self._call(event)
            return
        with self._lock:
            if not self._entries:
                return  # nobody listens: nothing to carry over
            if event not in self._waiting:
                self._waiting.append(event)
            loop = None if self._scheduled else self._loop
            self._scheduled = self._scheduled or loop is not None
        if loop is not None:
            try:
                loop.call_soon_threadsafe(self.deliver)
            except RuntimeError:  # the loop is closed: the owner delivers when it calls in
                with self._lock:
                    self._loop = None
                    self._scheduled = False

    def deliver(self) -> int:
        """Deliver the waiting events (on the owner only; elsewhere nothing happens).

        Returns
        -------
        int
            How many events were delivered.
        """
        if not self.on_owner:
            return 0
        delivered = 0
        while True:
            with self._lock:
                self._scheduled = False
                if not self._waiting:
                    return delivered
                event = self._waiting.pop(0)
            self._call(event)
            delivered += 1

    def _call(self, event: str) -> None:
        with self._lock:
            entries = list(self._entries)
        for callback, wanted in entries:
            if wanted is None or event in wanted:
                try:
                    callback(event)
                except Exception:  # an observer's bug must not break the session
                    _log.exception("observer %r failed on %r", callback, event)
