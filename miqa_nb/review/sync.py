"""The catalog side of a review session: background work, refreshing, claims.

:class:`CatalogSyncMixin` is mixed into :class:`~miqa_nb.review.session.ReviewSession`. It
owns how the session talks to the shared catalog file while the reviewer works:

- one background thread per session runs catalog work in order (writing accepted
  decisions, claims, the resume place, refreshing); :meth:`flush` waits for it;
  ``background=False`` runs it inline instead;
- :meth:`refresh` re-reads scan states, decisions and claims in one opening of the
  file (others' progress); :meth:`start_auto_refresh` does so every few seconds;
- claims replace MIQA's experiment lock: opening a scan claims its experiment (renewed
  past half its life, given up when the reviewer moves to another experiment); a
  decision needs this user's live claim; superusers may :meth:`take_over`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pandas as pd

from miqa_nb.catalog import Catalog, Claim
from miqa_nb.core import permissions
from miqa_nb.core.errors import MiqaError
from miqa_nb.core.permissions import Standing
from miqa_nb.review.queue import Progress, ScanKey, ScanQueue
from miqa_nb.volumes import VolumeCache

__all__ = ["CatalogSyncMixin"]

_log = logging.getLogger("miqa_nb.review")


class CatalogSyncMixin:
    """Background catalog work, refreshes and claims (mixed into ReviewSession)."""

    # provided by the session
    catalog: Catalog
    project: str
    user: str
    standing: Standing
    cache: VolumeCache
    queue: ScanQueue
    clock: Callable[[], datetime]
    claim_minutes: float
    last_error: str | None
    _key: ScanKey | None
    _lock: threading.RLock
    # owned here
    _jobs: ThreadPoolExecutor | None
    _futures: list[Future[Any]]
    _auto_stop: threading.Event | None
    _closed: bool
    _claims: dict[str, tuple[str, datetime]]
    _mine: dict[str, Claim]
    _decisions: pd.DataFrame
    _scans_df: pd.DataFrame

    if TYPE_CHECKING:  # provided by the other parts of ReviewSession

        def _fail(self, exc: BaseException) -> None: ...

        def _notify(self, event: str) -> None: ...

        def _say(self, text: str) -> None: ...

        def _prefetch_paths(self) -> list[str]: ...

        @property
        def read_only(self) -> bool: ...

        @property
        def progress(self) -> Progress: ...

        @property
        def held_by(self) -> str | None: ...

    # ------------------------------------------------------------- background
    def _background(self, job: Callable[[], Any]) -> None:
        def run() -> None:
            try:
                job()
            except Exception as exc:
                self._fail(exc)

        with self._lock:  # close() sets _closed under this lock, then shuts the pool down
            jobs = None if self._closed else self._jobs
            if jobs is not None:
                self._futures = [f for f in self._futures if not f.done()]
                self._futures.append(jobs.submit(run))
        if jobs is None:
            run()

    def flush(self, timeout: float | None = 30.0) -> None:
        """Wait for the background catalog work and the prefetches started so far."""
        self._wait_jobs(timeout)
        try:
            prefetching = self.cache.prefetch(self._prefetch_paths())
        except RuntimeError:  # a closed cache
            prefetching = []
        for future in prefetching:
            try:
                future.result(timeout)
            except Exception as exc:  # a broken file is reported when it is opened
                _log.debug("prefetch failed: %s", exc)

    def _wait_jobs(self, timeout: float | None = 30.0) -> None:
        with self._lock:
            futures = list(self._futures)
        wait_futures(futures, timeout=timeout)

    def start_auto_refresh(self, seconds: float = 5.0) -> None:
        """Re-read others' progress and claims every ``seconds`` (background thread)."""
        self.stop_auto_refresh()
        stop = self._auto_stop = threading.Event()

        def loop() -> None:
            while not stop.wait(seconds) and not self._closed:
                self._background(self._refresh_now)

        threading.Thread(target=loop, name="miqa-review-refresh", daemon=True).start()

    def stop_auto_refresh(self) -> None:
        """Stop :meth:`start_auto_refresh`."""
        if self._auto_stop is not None:
            self._auto_stop.set()
            self._auto_stop = None

    # ------------------------------------------------------- catalog reading
    def _read_shared(self) -> None:
        """Claims and decisions (call with the catalog open, or not)."""
        claims = self.catalog.claims(self.project)
        decisions = self.catalog.decisions(self.project)
        with self._lock:
            self._claims = {
                str(r.experiment): (str(r.user), _naive_utc(r.expires_utc))
                for r in claims.itertuples()
            }
            self._decisions = decisions
            for experiment in list(self._mine):
                holder = self._claims.get(experiment)
                if holder is None or holder[0] != self.user:
                    del self._mine[experiment]  # expired, or taken over

    def refresh(self) -> Progress:
        """Re-read scan states, decisions and claims from the catalog (others' progress)."""
        try:
            self._refresh_now()
        except MiqaError as exc:
            self._fail(exc)
        return self.progress

    def _refresh_now(self) -> None:
        with self.catalog.store.connect():
            if self._key is not None and not self._closed:
                self._claim(self._key[0])  # renews a claim past half its life
            scans = self.catalog.scans(self.project)
            self._read_shared()
        with self._lock:
            self.queue.update(scans)
            self._scans_df = scans
        self._notify("queue")
        self._notify("history")
        self._notify("claim")

    def _others(self) -> set[str]:
        """Experiments held by someone else now."""
        now = self._now()
        return {e for e, (u, exp) in self._claims.items() if u != self.user and exp > now}

    def _now(self) -> datetime:
        return self.clock().astimezone(UTC).replace(tzinfo=None)

    # --------------------------------------------------------------- claims
    def _after_open(self, key: ScanKey, previous: ScanKey | None) -> None:
        """Catalog work after opening a scan, in one opening of the file: give up the
        previous experiment, claim (or renew) this one, remember the place, and re-read
        states, decisions and claims (so the header and the queue are current)."""
        if self._closed:
            return
        with self.catalog.store.connect():
            if previous is not None and previous[0] != key[0] and previous[0] in self._mine:
                self.catalog.release(self.project, previous[0], by=self.user)
                self._mine.pop(previous[0], None)
            self._claim(key[0])
            self.catalog.set_place(self.project, key[0], key[1], by=self.user)
            scans = self.catalog.scans(self.project)
            self._read_shared()
        with self._lock:
            self.queue.update(scans)
            self._scans_df = scans
        for event in ("claim", "queue", "history"):
            self._notify(event)

    def _claim_is_mine(self, experiment: str) -> bool:
        mine = self._mine.get(experiment)
        return mine is not None and mine.expires_utc > self._now()

    def _ensure_claim(self) -> None:
        """Before a decision: this user must hold the experiment (MIQA's lock)."""
        if self.read_only or self._key is None or self._claim_is_mine(self._key[0]):
            return
        self._wait_jobs()  # the claim made when the scan was opened may be underway
        if not self._claim_is_mine(self._key[0]) and self.held_by is None:
            self._claim(self._key[0])

    def _claim(self, experiment: str, *, take_over: bool = False) -> None:
        if self.read_only:
            return  # collaborators look; they do not hold experiments
        mine = self._mine.get(experiment)
        half = timedelta(minutes=self.claim_minutes / 2)
        if mine is not None and not take_over and mine.expires_utc - half > self._now():
            return
        claim = self.catalog.claim(
            self.project, experiment, by=self.user, minutes=self.claim_minutes, take_over=take_over
        )
        with self._lock:
            self._claims[experiment] = (claim.user, _naive_utc(claim.expires_utc))
            if claim.mine:
                self._mine[experiment] = claim
            else:
                self._mine.pop(experiment, None)
        if not claim.mine:
            self._say(
                f"experiment {experiment!r} is being reviewed by {claim.user!r} until "
                f"{claim.expires_utc:%H:%M} UTC"
            )

    def renew(self) -> None:
        """Claim or renew the open scan's experiment now (when older than half its life)."""
        if self._key is not None:
            try:
                self._claim(self._key[0])
            except MiqaError as exc:
                self._fail(exc)
            self._notify("claim")

    def take_over(self) -> bool:
        """Take the open scan's experiment from its holder (superusers)."""
        if self._key is None:
            return False
        try:
            permissions.require_superuser(self.standing, "take over another reviewer's claim")
            self._claim(self._key[0], take_over=True)
        except MiqaError as exc:
            self._fail(exc)
            return False
        self.last_error = None
        self._notify("claim")
        return True


def _naive_utc(value: Any) -> datetime:
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return stamp.to_pydatetime()
