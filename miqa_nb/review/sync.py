"""The catalog side of a review session: background work, refreshing, claims.

:class:`CatalogSync` owns how a session talks to the shared catalog file while the
reviewer works; a :class:`~miqa_nb.review.session.ReviewSession` holds one and is its
only user. It is given everything it needs in its constructor -- the catalog,
project, user and their standing, a clock, how long a claim lasts, and callbacks of
its owner: which scan is open (``current()``), what to do with newly read scan
states (``on_scans(df)``), and how to report (``notify(event)``, ``fail(exc)``,
``say(text)``). It knows nothing of the queue, the view or the session.

- One background thread runs catalog work in order (writing accepted decisions,
  claims, the resume place, refreshing): :meth:`run` queues a job, :meth:`wait` waits
  for them; ``background=False`` runs each job inline instead.
- :meth:`refresh` re-reads scan states, decisions and claims in one opening of the
  file (others' progress); :meth:`start_auto_refresh` does so every few seconds.
- Claims replace MIQA's experiment lock: :meth:`after_open` claims the open scan's
  experiment (renewed past half its life, given up when the reviewer moves to another
  experiment); a decision needs this user's live claim (:meth:`ensure_claim`);
  superusers may take a claim over (:meth:`claim` with ``take_over``). Users who may
  not record decisions (collaborators) view without claiming, and nobody claims or
  remembers a place in a catalog they may only read.
- An idle reviewer gives claims up: the owner calls :meth:`touch` on each of the
  reviewer's actions; a refresh that finds none for ``idle_minutes`` releases this
  user's claims, stops renewing them and says so (:attr:`idle`). The next action
  claims the open scan's experiment again, if nobody took it meanwhile.

Events (through ``notify``, from whichever thread did the work; the session's
observers deliver them on the owner's thread): ``'queue'``, ``'history'`` and
``'claim'`` after a read.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from miqa_nb.catalog import Catalog, Claim
from miqa_nb.core.errors import MiqaError
from miqa_nb.core.permissions import Standing
from miqa_nb.review.queue import ScanKey

__all__ = ["IDLE_MINUTES", "CatalogSync"]

#: After how many minutes without an action a review gives its claims up.
IDLE_MINUTES = 10.0

_log = logging.getLogger("miqa_nb.review")


class CatalogSync:
    """Background catalog work, refreshes and claims of one reviewer in one project.

    Parameters
    ----------
    catalog : Catalog
    project, user : str
    standing : Standing
        The user's standing in the project (read-only users hold no claims).
    clock : callable
        Returns the current aware datetime.
    claim_minutes : float
        How long a claim lasts.
    background : bool
        Run jobs on a background thread (False: inline, before :meth:`run` returns).
    current : callable
        ``current()``: the open scan's ``(experiment, scan)``, or None.
    on_scans : callable
        ``on_scans(scans)``: takes the scan states just read (``Catalog.scans``).
    notify, fail, say : callable
        Report an event, a failure, a message to the owner.
    idle_minutes : float or None
        Give claims up after this long without :meth:`touch` (None: never).
    """

    def __init__(
        self,
        catalog: Catalog,
        project: str,
        user: str,
        *,
        standing: Standing,
        clock: Callable[[], datetime],
        claim_minutes: float,
        background: bool,
        current: Callable[[], ScanKey | None],
        on_scans: Callable[[pd.DataFrame], None],
        notify: Callable[[str], None],
        fail: Callable[[BaseException], None],
        say: Callable[[str], None],
        idle_minutes: float | None = IDLE_MINUTES,
    ) -> None:
        if idle_minutes is not None and not idle_minutes > 0:
            raise MiqaError(
                f"'idle_minutes' must be more than 0 (or None: never idle); "
                f"{idle_minutes!r} was provided"
            )
        self.catalog = catalog
        self.project = project
        self.user = user
        self.standing = standing
        self.clock = clock
        self.claim_minutes = claim_minutes
        self._current = current
        self._on_scans = on_scans
        self._notify = notify
        self._fail = fail
        self._say = say
        self._lock = threading.RLock()
        self._jobs: ThreadPoolExecutor | None = (
            ThreadPoolExecutor(1, "miqa-review") if background else None
        )
        self._futures: list[Future[Any]] = []
        self._auto_stop: threading.Event | None = None
        self.closed = False
        self._claims: dict[str, tuple[str, datetime]] = {}  # experiment -> holder, expiry
        self._mine: dict[str, Claim] = {}
        self.decisions = pd.DataFrame()
        self.idle_minutes = idle_minutes
        self._last_action = clock()
        #: True once claims were given up for want of activity (until :meth:`touch`).
        self.idle = False
        #: The experiments' notes (experiment -> note), as of the last read.
        self.notes: dict[str, str] = {}

    # ------------------------------------------------------------- background
    @property
    def inline(self) -> bool:
        """Whether jobs run inline (no background thread, or closed)."""
        return self._jobs is None or self.closed

    def run(self, job: Callable[[], Any]) -> None:
        """Run ``job`` on the background thread, after the jobs before it (inline when
        there is none); what it raises is reported through ``fail``."""

        def guarded() -> None:
            try:
                job()
            except Exception as exc:
                self._fail(exc)

        with self._lock:  # shutdown() sets closed under this lock, then stops the pool
            jobs = None if self.closed else self._jobs
            if jobs is not None:
                self._futures = [f for f in self._futures if not f.done()]
                self._futures.append(jobs.submit(guarded))
        if jobs is None:
            guarded()

    def wait(self, timeout: float | None = 30.0) -> None:
        """Wait for the jobs queued so far."""
        with self._lock:
            futures = list(self._futures)
        wait_futures(futures, timeout=timeout)

    def shutdown(self) -> None:
        """Stop auto-refresh, finish the queued jobs, give up this user's claims."""
        self.stop_auto_refresh()
        self.wait(timeout=None)
        with self._lock:  # no job is queued once the pool is shut down
            self.closed = True
        if self._jobs is not None:
            self._jobs.shutdown(wait=True)
        for experiment in list(self._mine):
            try:
                self.catalog.release(self.project, experiment, by=self.user)
            except MiqaError as exc:
                _log.warning("could not release the claim on %s: %s", experiment, exc)
        self._mine.clear()

    def start_auto_refresh(self, seconds: float = 5.0) -> None:
        """Re-read others' progress and claims every ``seconds`` (background thread)."""
        self.stop_auto_refresh()
        stop = self._auto_stop = threading.Event()

        def loop() -> None:
            while not stop.wait(seconds) and not self.closed:
                self.run(self.refresh)

        threading.Thread(target=loop, name="miqa-review-refresh", daemon=True).start()

    def stop_auto_refresh(self) -> None:
        """Stop :meth:`start_auto_refresh`."""
        if self._auto_stop is not None:
            self._auto_stop.set()
            self._auto_stop = None

    @property
    def auto_refreshing(self) -> bool:
        """Whether :meth:`start_auto_refresh` is running."""
        return self._auto_stop is not None

    # ------------------------------------------------------- catalog reading
    def read_shared(self) -> None:
        """Read claims, decisions and the experiments' notes (call with the catalog
        open, or not)."""
        claims = self.catalog.claims(self.project)
        decisions = self.catalog.decisions(self.project)
        notes = self.catalog.experiment_notes(self.project)
        with self._lock:
            self.notes = notes
            self._claims = {
                str(r.experiment): (str(r.user), _naive_utc(r.expires_utc))
                for r in claims.itertuples()
            }
            self.decisions = decisions
            for experiment in list(self._mine):
                holder = self._claims.get(experiment)
                if holder is None or holder[0] != self.user:
                    del self._mine[experiment]  # expired, or taken over

    def refresh(self) -> None:
        """Renew the open scan's claim if due, re-read scan states, decisions and
        claims in one opening of the file, hand the states to ``on_scans``."""
        key = self._current()
        with self.catalog.store.connect():
            if self._idle_due():
                self._give_up_idle()
            elif key is not None and not self.closed and not self.idle:
                self.claim(key[0])  # renews a claim past half its life
            scans = self.catalog.scans(self.project)
            self.read_shared()
        self._on_scans(scans)
        for event in ("queue", "history", "claim"):
            self._notify(event)

    def after_open(self, key: ScanKey, previous: ScanKey | None) -> None:
        """Catalog work after opening a scan, in one opening of the file: give up the
        previous experiment, claim (or renew) this one, remember the place, and re-read
        states, decisions and claims (so the header and the queue are current)."""
        if self.closed:
            return
        with self.catalog.store.connect():
            if previous is not None and previous[0] != key[0] and previous[0] in self._mine:
                self.catalog.release(self.project, previous[0], by=self.user)
                self._mine.pop(previous[0], None)
            self.claim(key[0])
            if not self.catalog.store.read_only:
                self.catalog.set_place(self.project, key[0], key[1], by=self.user)
            scans = self.catalog.scans(self.project)
            self.read_shared()
        self._on_scans(scans)
        for event in ("claim", "queue", "history"):
            self._notify(event)

    # ----------------------------------------------------------------- idle
    def touch(self) -> None:
        """The reviewer did something: note when; if claims were given up for want of
        activity, claim the open scan's experiment again (when nobody took it)."""
        self._last_action = self.clock()
        if not self.idle or self.closed:
            return
        self.idle = False
        key = self._current()
        if key is not None:
            self.run(lambda: self._take_up(key[0]))

    def _take_up(self, experiment: str) -> None:
        self.claim(experiment)
        if self._claim_is_mine(experiment):
            self._say(f"welcome back: experiment {experiment!r} is yours again")
        else:  # replaces the idle message, which invited the reviewer to go on
            holder = self.held_by(experiment)
            self._say(
                f"welcome back: experiment {experiment!r} is being reviewed by {holder!r} "
                "now; you can look at its scans, and decide them when the claim ends"
            )
        self._notify("claim")

    def _idle_due(self) -> bool:
        if self.idle_minutes is None or self.idle or self.closed:
            return False
        return self.clock() - self._last_action >= timedelta(minutes=self.idle_minutes)

    def _give_up_idle(self) -> None:
        """Release this user's claims after ``idle_minutes`` without an action."""
        self.idle = True
        released = sorted(self._mine)
        for experiment in released:
            self.catalog.release(self.project, experiment, by=self.user)
        with self._lock:
            for experiment in released:
                self._mine.pop(experiment, None)
                self._claims.pop(experiment, None)
        if released:
            names = ", ".join(repr(e) for e in released)
            self._say(
                f"no action for {self.idle_minutes:g} minutes: your claim on experiment "
                f"{names} was given up so that colleagues may review it; go on (any key "
                "or click) to claim it again if nobody has taken it"
            )

    # --------------------------------------------------------------- claims
    def now(self) -> datetime:
        """The clock's time, as naive UTC (how claims are compared)."""
        return self.clock().astimezone(UTC).replace(tzinfo=None)

    def live_claims(self) -> dict[str, tuple[str, datetime]]:
        """Live claims: experiment -> (user, expiry UTC), as of the last read."""
        now = self.now()
        return {e: v for e, v in self._claims.items() if v[1] > now}

    def others(self) -> set[str]:
        """Experiments held by someone else now."""
        now = self.now()
        return {e for e, (u, exp) in self._claims.items() if u != self.user and exp > now}

    def hold(self, experiment: str) -> tuple[str, datetime] | None:
        """``(user, expiry UTC)`` of another user's live claim on ``experiment`` (None:
        nobody, or this user), as of the last read."""
        held = self._claims.get(experiment)
        if held is None or held[0] == self.user or held[1] <= self.now():
            return None
        return held

    def held_by(self, experiment: str) -> str | None:
        """Who else holds ``experiment`` now (None: nobody, or this user)."""
        held = self.hold(experiment)
        return None if held is None else held[0]

    def mine(self, experiment: str) -> Claim | None:
        """This user's claim on ``experiment``, if held (as of the last read)."""
        return self._mine.get(experiment)

    def _claim_is_mine(self, experiment: str) -> bool:
        mine = self._mine.get(experiment)
        return mine is not None and mine.expires_utc > self.now()

    def ensure_claim(self, experiment: str) -> None:
        """Before a decision: this user must hold ``experiment`` (MIQA's lock)."""
        if not self.standing.allowed_decisions() or self._claim_is_mine(experiment):
            return
        self.wait()  # the claim made when the scan was opened may be underway
        if not self._claim_is_mine(experiment) and self.held_by(experiment) is None:
            self.claim(experiment)

    def claim(self, experiment: str, *, take_over: bool = False) -> None:
        """Claim or renew ``experiment`` (only when older than half its life, unless
        ``take_over``); a claim someone else holds is kept as theirs (:meth:`held_by`)."""
        if not self.standing.allowed_decisions() or self.catalog.store.read_only:
            return  # collaborators look; they do not hold experiments
        mine = self._mine.get(experiment)
        half = timedelta(minutes=self.claim_minutes / 2)
        if mine is not None and not take_over and mine.expires_utc - half > self.now():
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
        # another's claim is not announced here: the header shows the open scan's
        # holder (a message would outlive the scan it was about)


def _naive_utc(value: Any) -> datetime:
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return stamp.to_pydatetime()
