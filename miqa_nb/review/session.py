"""A review session: one reviewer going through a project's scans (no widgets).

:class:`ReviewSession` owns everything a review screen shows and does, so that widgets
stay thin views (:mod:`miqa_nb.widgets`) and the same logic runs in tests, notebooks,
a Voila dashboard or a script. It composes parts that are given what they need and
know nothing of it, and keeps one surface over them:

- :attr:`queue` (:class:`~miqa_nb.review.queue.ScanQueue`, pure): MIQA's order, state
  and type filters, progress. The session adds the open scan, next/previous
  (experiments nobody else holds first) and resuming where the user left off.
- :attr:`view` (:class:`~miqa_nb.review.view.ScanView`): frame, crosshair (world
  mm), slices, window/level and the three planes as pictures; its methods are the
  session's own (:class:`~miqa_nb.review._view_controls.ViewControls`).
- the pending decision (:class:`~miqa_nb.review.decision.PendingDecision`) and
  :meth:`submit`, which checks the user's role, MIQA's note-or-artifact rule and
  claims *before* anything is written, has :attr:`writer` record the decision and
  goes to the next scan.
- :attr:`sync` (:class:`~miqa_nb.review.sync.CatalogSync`): background catalog work,
  refreshing (:meth:`refresh`) and claims instead of MIQA's experiment lock (opening
  a scan claims its experiment for a few minutes; :attr:`held_by`, :meth:`take_over`).
- errors: a failed action never raises to the caller of a UI action; it is kept as
  :attr:`last_error` (readable text) with :attr:`error_about` (which part of the
  screen it belongs to: ``'decision'``, ``'save'``, ``'claim'``,
  ``'experiment-note'``, or None for the scan and the page) and announced to
  observers (``'error'``). Messages (:attr:`message`) and errors belong to the scan
  they were about: opening another scan clears them.
- claims seen before anything is chosen: :attr:`hold` (who holds the open scan's
  experiment, until when, in local time) and :attr:`can_decide`; the experiments'
  notes (:attr:`experiment_note`, :meth:`set_experiment_note`).

Observers (:meth:`observe`) are called with an event name (:data:`EVENTS`):
``'scan'`` (another scan is open), ``'view'`` (frame, crosshair, slices or window),
``'pending'``, ``'submitted'`` (accepted), ``'stored'`` (written), ``'queue'``
(states/progress), ``'claim'``, ``'history'``, ``'error'``, ``'message'``. They are
always called on the thread that built the session, also for events of background
work; without a running asyncio loop (a script, a test) such an event waits until
the owner calls :meth:`deliver`, :meth:`flush` or :meth:`close`
(:mod:`miqa_nb.review._events`).

Speed: volumes come from a process-wide :class:`~miqa_nb.volumes.VolumeCache`
(:func:`default_cache`); opening a scan decodes the next ones ahead
(:mod:`miqa_nb.review.prefetch`), and :meth:`submit` starts decoding the next scan
before it writes the decision. Catalog work that the picture does not wait for --
writing the accepted decision (opening, committing and closing the shared DuckDB file
costs 20-50 ms, more than the whole budget of a scan change), claims, the resume
place, refreshing -- runs on one background thread per session, in order;
:meth:`flush` waits for it and :meth:`close` calls it. With ``background=False``
everything happens before each call returns.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from miqa_nb.catalog import CLAIM_MINUTES, Catalog, Claim
from miqa_nb.core import permissions
from miqa_nb.core.errors import MiqaError, PermissionDenied
from miqa_nb.core.identity import current_user
from miqa_nb.core.rules import scan_state
from miqa_nb.core.vocabulary import ArtifactState, Decision, ScanState
from miqa_nb.review import prefetch
from miqa_nb.review._events import Observers
from miqa_nb.review._view_controls import ViewControls
from miqa_nb.review.decision import DecisionWriter, PendingDecision, Stored
from miqa_nb.review.prefetch import default_cache
from miqa_nb.review.queue import FILTERS, Progress, ScanInfo, ScanKey, ScanQueue
from miqa_nb.review.sync import IDLE_MINUTES, CatalogSync
from miqa_nb.review.view import PLANES_AXIS, ScanView
from miqa_nb.volumes import Convention, VolumeCache

__all__ = ["EVENTS", "PLANES_AXIS", "PendingDecision", "ReviewSession", "default_cache"]

_log = logging.getLogger(__name__)
#: Events that only the reviewer's own actions raise (they keep the session from idling).
_ACTIONS = frozenset({"scan", "view", "pending", "submitted"})

#: Events observers receive.
EVENTS = (
    "scan",
    "view",
    "pending",
    "submitted",
    "stored",
    "queue",
    "claim",
    "history",
    "error",
    "message",
)


class ReviewSession(ViewControls):
    """One reviewer reviewing one project of a catalog.

    Parameters
    ----------
    catalog : Catalog
    project : str, optional
        Default ``MIQA_NB_PROJECT``, else the first project the user may see.
    user : str, optional
        Default from the environment (:func:`miqa_nb.core.identity.current_user`);
        must exist in the catalog.
    filter : {'unreviewed', 'needs tier-2', 'all'}
        Which scans the queue holds.
    scan_type, experiment : str, optional
        Restrict the queue (and progress) to one scan type or experiment(s).
    cache : VolumeCache, optional
        Default :func:`default_cache` (shared by every session of the process).
    prefetch : int
        How many of the next scans to decode in the background (0: none).
    advance_after_submit : bool
        Go to the next scan after a successful submit.
    clock : callable, optional
        Returns the current aware datetime (for tests; the catalog has its own).
    claim_minutes : float
        How long opening a scan holds its experiment.
    idle_minutes : float or None
        After this long without an action (opening a scan, moving the view, editing
        or submitting a decision) the session gives its claims up and says so; the
        next action claims the open scan's experiment again if it is still free.
        None: never.
    background : bool
        Run catalog bookkeeping on a background thread (False: inline, for tests).
    resume : bool
        Open the scan the user last had open in this project.
    max_size : int
        Longest side of a plane picture in pixels.
    """

    def __init__(
        self,
        catalog: Catalog,
        project: str | None = None,
        user: str | None = None,
        *,
        filter: str = "unreviewed",
        scan_type: str | None = None,
        experiment: str | Collection[str] | None = None,
        cache: VolumeCache | None = None,
        prefetch: int = 2,
        advance_after_submit: bool = True,
        clock: Callable[[], datetime] | None = None,
        claim_minutes: float = CLAIM_MINUTES,
        idle_minutes: float | None = IDLE_MINUTES,
        background: bool = True,
        resume: bool = True,
        max_size: int = 512,
    ) -> None:
        if filter not in FILTERS:
            raise MiqaError(f"'filter' must be one of {tuple(FILTERS)}; {filter!r} was provided")
        self.catalog = catalog
        self.user = current_user(user)
        self.project = project or os.environ.get("MIQA_NB_PROJECT") or self._first_project()
        self.standing = catalog.standing(self.user, self.project)  # unknown user: PermissionDenied
        permissions.require_read(self.standing)
        self.cache = cache if cache is not None else default_cache()
        self.prefetch = max(0, int(prefetch))
        self.advance_after_submit = advance_after_submit
        self.clock = clock or (lambda: datetime.now(UTC))
        self.claim_minutes = claim_minutes
        projects = catalog.projects()
        found = projects.loc[projects["project"] == self.project, "anatomy_orientation"]
        if found.empty:
            raise MiqaError(f"no project {self.project!r} in {catalog!r}")
        convention: Convention = (
            "radiological" if found.iloc[0] == "radiological" else "neurological"
        )

        self.last_error: str | None = None
        self.last_exception: BaseException | None = None
        #: Which part of the screen :attr:`last_error` belongs to (see the module docstring).
        self.error_about: str | None = None
        self.message = ""
        self._observers = Observers()
        #: Writes accepted decisions, keeps those not stored.
        self.writer = DecisionWriter(
            catalog,
            self.project,
            self.user,
            notify=self._notify,
            fail=functools.partial(self._fail, about="save"),
        )
        self._lock = threading.RLock()  # guards the queue against a refresh's update
        self._key: ScanKey | None = None
        self._pending = PendingDecision()
        #: What the reviewer sees of the open scan.
        self.view = ScanView(
            self.cache,
            convention=convention,
            max_size=max_size,
            notify=self._notify,
            fail=self._fail,
        )
        #: Background catalog work, refreshes and claims.
        self.sync = CatalogSync(
            catalog,
            self.project,
            self.user,
            standing=self.standing,
            clock=self.clock,
            claim_minutes=claim_minutes,
            background=background,
            current=lambda: self._key,
            on_scans=self._take_scans,
            notify=self._notify,
            fail=self._fail,
            say=self._say,
            idle_minutes=idle_minutes,
        )
        self._closed = False

        with catalog.store.connect():  # one opening of the catalog file for all reads
            scans = catalog.scans(self.project)
            self._frames_df = catalog.frames(self.project)
            self.sync.read_shared()
            place = catalog.place(self.project, by=self.user) if resume else None
        self.queue = ScanQueue(
            scans, self._frames_df, filter=filter, scan_type=scan_type, experiment=experiment
        )
        self._scans_df = scans
        start = self.queue.first(
            place, held_by_others=self.sync.others(), decidable=self._decidable()
        )
        if start is None:
            self._say(f"nothing to review: no scan matches the filter {filter!r}")
        else:
            self.open(start)

    def _first_project(self) -> str:
        projects = self.catalog.projects()["project"].tolist()
        for name in projects:
            if self.catalog.standing(self.user, name).can_read:
                return str(name)
        raise PermissionDenied(
            f"user {self.user!r} has no role in any project of {self.catalog!r}; "
            f"a project's creator gives one with `miqa-nb roles set PROJECT {self.user} tier1`"
        )

    def __repr__(self) -> str:
        return f"ReviewSession({self.project!r}, user={self.user!r}, at={self._key})"

    # ------------------------------------------------------ observers, errors
    def observe(
        self, callback: Callable[[str], Any], events: Collection[str] | None = None
    ) -> Callable[[], None]:
        """Call ``callback(event)`` on events (all, or those named); returns an unsubscriber.

        Callbacks run on the thread that built the session, whichever thread raised
        the event (see the module docstring).
        """
        return self._observers.observe(callback, events)

    def deliver(self) -> int:
        """Call the observers of events background work raised since the last delivery.

        Only the thread that built the session delivers (elsewhere this does nothing);
        in a kernel this happens by itself, on its event loop.

        Returns
        -------
        int
            How many events were delivered.
        """
        return self._observers.deliver()

    def _notify(self, event: str) -> None:
        if event in _ACTIONS and hasattr(self, "sync"):
            self.sync.touch()  # the reviewer is at work: not idle
        self._observers.notify(event)

    def _fail(self, exc: BaseException, about: str | None = None) -> None:
        self.last_exception = exc
        self.last_error = str(exc) or type(exc).__name__
        self.error_about = about
        if isinstance(exc, PermissionDenied):  # a page that asks what its user may not do
            _log.warning("refused for %s in %s: %s", self.user, self.project, exc)
        elif not isinstance(exc, MiqaError | OSError | ValueError | IndexError):
            _log.error("unexpected error in the review session", exc_info=exc)
        self._notify("error")

    def _say(self, text: str) -> None:
        self.message = text
        self._notify("message")

    def clear_error(self) -> None:
        """Forget :attr:`last_error`."""
        if self.last_error is not None:
            self._forget_error()
            self._notify("error")

    def _forget_error(self) -> None:
        self.last_error = None
        self.last_exception = None
        self.error_about = None

    def close(self) -> None:
        """Stop background work and give up this session's claims."""
        if self._closed:
            return
        self.stop_auto_refresh()
        self.flush(timeout=None)  # accepted decisions are written before closing
        self.sync.shutdown()
        self._closed = True
        self.deliver()

    def __enter__(self) -> ReviewSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ properties
    @property
    def allowed_decisions(self) -> tuple[Decision, ...]:
        """Decisions this user may record here (empty for collaborators)."""
        return self.standing.allowed_decisions()

    @property
    def read_only(self) -> bool:
        """True for users who may not record decisions (collaborators)."""
        return not self.allowed_decisions

    @property
    def key(self) -> ScanKey | None:
        """``(experiment, scan)`` of the open scan."""
        return self._key

    @property
    def current(self) -> ScanInfo | None:
        """The open scan's details (as of the last refresh or submit)."""
        return None if self._key is None else self.queue.info(self._key)

    @property
    def position(self) -> int | None:
        """Place of the open scan in the queue (0-based)."""
        return self.queue.position(self._key)

    def __len__(self) -> int:
        return len(self.queue)

    @property
    def progress(self) -> Progress:
        """Reviewed / total over the scans in scope, every reviewer together."""
        with self._lock:
            return self.queue.progress()

    @property
    def pending(self) -> PendingDecision:
        """The decision being prepared."""
        return self._pending

    @property
    def last_submitted(self) -> tuple[ScanKey, int] | None:
        """``(scan, decision id)`` of the last decision stored."""
        return self.writer.last_submitted

    @property
    def unsaved(self) -> list[tuple[ScanKey, PendingDecision, str]]:
        """Decisions accepted but not stored (scan, decision, why), newest last."""
        return self.writer.unsaved

    @property
    def history(self) -> pd.DataFrame:
        """Decisions of the open scan, newest first."""
        df = self.sync.decisions
        if self._key is None or df.empty:
            return df.iloc[0:0]
        mask = (df["experiment"] == self._key[0]) & (df["scan"] == self._key[1])
        return df[mask].sort_values("id", ascending=False).reset_index(drop=True)

    @property
    def held_by(self) -> str | None:
        """Who else holds the open scan's experiment (None: nobody, or this user)."""
        return None if self._key is None else self.sync.held_by(self._key[0])

    @property
    def claim(self) -> Claim | None:
        """This user's claim on the open scan's experiment, if held."""
        return None if self._key is None else self.sync.mine(self._key[0])

    @property
    def hold(self) -> tuple[str, datetime] | None:
        """``(holder, until)`` when someone else holds the open scan's experiment
        (``until`` in this machine's local time, aware), else None."""
        held = None if self._key is None else self.sync.hold(self._key[0])
        if held is None:
            return None
        holder, until = held
        return holder, until.replace(tzinfo=UTC).astimezone()

    @property
    def can_decide(self) -> bool:
        """Whether this user may decide the open scan now: a scan is open, the role
        records decisions, and nobody else holds its experiment."""
        return self._key is not None and not self.read_only and self.held_by is None

    @property
    def last_stored(self) -> Stored | None:
        """The last decision this session stored (scan, code, local time)."""
        return self.writer.last_stored

    @property
    def writes_waiting(self) -> int:
        """Decisions accepted and not yet written (they are being written)."""
        return self.writer.waiting

    @property
    def experiment_note(self) -> str:
        """The open scan's experiment's note ('' for none), as of the last read."""
        return "" if self._key is None else self.sync.notes.get(self._key[0], "")

    @property
    def can_edit_experiment_note(self) -> bool:
        """Whether this user may change experiment notes (the project's reviewers, its
        creator, superusers), in a catalog it may write."""
        try:
            permissions.require_experiment_note(self.standing)
        except PermissionDenied:
            return False
        return not self.catalog.store.read_only

    def set_experiment_note(self, note: str) -> bool:
        """Store ``note`` as the open scan's experiment's note (written at once, so a
        colleague sees it at their next refresh); False if refused (see
        :attr:`last_error`)."""
        if self._key is None:
            self._fail(MiqaError("no scan is open, so there is no experiment to note"))
            return False
        experiment = self._key[0]
        try:
            with self.catalog.store.connect():
                self.catalog.set_experiment_note(self.project, experiment, note, by=self.user)
                self.sync.read_shared()
        except MiqaError as exc:
            self._fail(exc, about="experiment-note")
            return False
        if self.error_about == "experiment-note":
            self._forget_error()
            self._notify("error")
        self._notify("history")
        return True

    def claims(self) -> dict[str, tuple[str, datetime]]:
        """Live claims: experiment -> (user, expiry UTC), as of the last read."""
        return self.sync.live_claims()

    # ----------------------------------------------------------- navigation
    def open(self, target: ScanKey | int | ScanInfo) -> bool:
        """Open a scan (a queue position or ``(experiment, scan)``); False if it failed."""
        try:
            key = self.queue.key_of(target)
        except MiqaError as exc:
            self._fail(exc)
            return False
        previous = self._key
        with self._lock:
            self.queue.pin(key)
            self._key = key
        self._pending = self._pending.cleared()
        self._forget_error()
        self.message = ""  # a message belongs to the scan it was about
        loaded = self.view.show(f"{key[0]}/{key[1]}", self.queue.info(key).frames)
        self._notify("scan")
        if not loaded:
            self._notify("error")
        prefetch.start(self.cache, self._ahead())
        self.sync.run(lambda: self.sync.after_open(key, previous))
        return loaded

    def next(self) -> bool:
        """Go to the next scan to review (unclaimed first); False at the end of the queue.

        It stops at the last scan, as :meth:`previous` stops at the first (a submit
        goes on to scans skipped before: see :meth:`submit`).
        """
        found = self.queue.find_next(self._key, held_by_others=self.sync.others(), wrap=False)
        if found is None:
            self._say(
                "this is the last scan of the queue"
                if self._key is not None and self._key in self.queue
                else "no more scans to review in this queue"
            )
            return False
        return self.open(found)

    def previous(self) -> bool:
        """Go back to the scan before this one in the queue (whatever its state)."""
        pos = self.position
        if pos is None or pos == 0:
            self._say("this is the first scan of the queue")
            return False
        return self.open(pos - 1)

    def _next_key(self) -> ScanKey | None:
        return self.queue.find_next(self._key, held_by_others=self.sync.others())

    def set_filter(
        self,
        filter: str | None = None,
        *,
        scan_type: str | None = None,
        experiment: str | Collection[str] | None = None,
    ) -> None:
        """Rebuild the queue with other filters, keeping the open scan when it is in scope."""
        try:
            queue = ScanQueue(
                self._scans_df,
                self._frames_df,
                filter=filter or self.queue.filter,
                scan_type=scan_type,
                experiment=experiment,
            )
        except MiqaError as exc:
            self._fail(exc)
            return
        with self._lock:
            self.queue = queue
        self._notify("queue")
        if self._key is None or not queue.in_scope(self._key) or not queue.matches(self._key):
            key = queue.first(
                self._key, held_by_others=self.sync.others(), decidable=self._decidable()
            )
            if key is None:
                self._key = None
                self.view.clear()
                self._notify("scan")
                self._say("nothing to review with these filters")
            else:
                self.open(key)

    # ------------------------------------------------------ pending decision
    def _edit(self, edit: Callable[[PendingDecision], PendingDecision]) -> bool:
        """Apply ``edit`` to the pending decision; a refused edit is the last error."""
        try:
            pending = edit(self._pending)
        except MiqaError as exc:
            self._fail(exc, about="decision")
            return False
        self._pending = pending
        if self.error_about == "decision":  # the refusal is answered
            self._forget_error()
            self._notify("error")
        self._notify("pending")
        return True

    def set_decision(self, decision: Decision | str | None) -> bool:
        """Choose the decision to submit (None clears it); False if the role may not use
        it, or another reviewer holds the experiment."""

        def choose(pending: PendingDecision) -> PendingDecision:
            if decision is not None:
                self._require_not_held()
            return pending.with_decision(decision, self.standing)

        return self._edit(choose)

    def _require_not_held(self) -> None:
        hold = self.hold
        if hold is not None and self._key is not None:
            holder, until = hold
            raise PermissionDenied(
                f"{holder} is reviewing experiment {self._key[0]} until {until:%H:%M}; "
                "you can look at its scans, and decide them when the claim ends"
                + (" (or take it over)" if self.standing.superuser else "")
            )

    def set_artifact(self, name: str, state: ArtifactState | str) -> None:
        """Mark an artifact present, absent or not assessed."""
        self._edit(lambda p: p.with_artifact(name, state))

    def set_note(self, note: str) -> None:
        """The note stored with the decision."""
        self._edit(lambda p: p.with_note(note))

    def set_store_location(self, store: bool) -> None:
        """Store the crosshair as the location of interest (on by default)."""
        self._edit(lambda p: p.with_store_location(store))

    def clear_pending(self) -> None:
        """Start the decision over (keeps the "store location" choice)."""
        self._edit(PendingDecision.cleared)

    def check(self) -> Decision:
        """Raise what :meth:`submit` would refuse, without writing anything."""
        if self._key is None:
            raise MiqaError("no scan is open")
        self._require_not_held()  # first: no other decision can be made here now
        return self._pending.check(self.standing)

    def submit(self) -> bool:
        """Record the pending decision, then go to the next scan (if configured).

        Everything that can refuse a decision is checked here, before anything is
        written: the user's role, MIQA's note-or-artifact rule, another reviewer's
        claim. Then the decision is written to the catalog -- on the session's
        background thread when ``background`` is on (the next scan shows while the
        catalog file is being written; :meth:`flush` waits for it), else before
        returning.

        Returns
        -------
        bool
            True when the decision was accepted (and, without a background thread,
            stored: ``last_submitted`` holds its id). False when it was refused; the
            reason is in :attr:`last_error`. A write that fails later (the catalog
            stayed busy, the scan was removed by an import) is announced as an
            ``'error'``, kept in :attr:`unsaved`, and the scan returns to the queue.
        """
        try:
            if self._key is not None:
                self.sync.ensure_claim(self._key[0])
            decision = self.check()
        except MiqaError as exc:
            self._fail(exc, about="decision")
            return False
        assert self._key is not None
        key, pending = self._key, self._pending
        location = pending.location(self.view.crosshair if self.view.volume is not None else None)
        following = self._next_key() if self.advance_after_submit else None
        if following is not None:  # decode the next scan while the decision is written
            prefetch.start(self.cache, self.queue.info(following).frames[:1])

        write = functools.partial(self.writer.write, key, pending, decision, location)
        self.writer.accept()
        if self.sync.inline:
            if not write():
                return False
        else:
            self.sync.run(write)
        with self._lock:
            self.queue.record(
                key,
                decision.value,
                self.user,
                self.sync.now().strftime("%Y-%m-%d %H:%M:%S"),
                scan_state(decision.value, self.standing.tier2),
            )
        self._forget_error()
        self._notify("submitted")
        self._notify("queue")
        if following is not None:
            self.open(following)  # its background work re-reads the catalog
        else:
            self.clear_pending()
            if self.advance_after_submit:
                self._say("decision stored; no more scans to review in this queue")
            self.sync.run(self.sync.refresh)
        return True

    # --------------------------------------------------------- user settings
    def user_setting(self, key: str) -> str | None:
        """The reviewer's own setting ``key`` (None: never set, or unreadable now)."""
        try:
            return self.catalog.user_setting(key, by=self.user)
        except (MiqaError, OSError) as exc:
            _log.warning("setting %r of %s could not be read: %s", key, self.user, exc)
            return None

    def keep_user_setting(self, key: str, value: str) -> None:
        """Store the reviewer's own setting ``key`` in the catalog, in the background
        (a failure is the session's last error)."""
        self.sync.run(lambda: self.catalog.set_user_setting(key, value, by=self.user))

    # ------------------------------------------------------- catalog, claims
    def _take_scans(self, scans: pd.DataFrame) -> None:
        """New scan states read from the catalog (any thread): into the queue."""
        with self._lock:
            self.queue.update(scans)
            self._scans_df = scans

    def flush(self, timeout: float | None = 30.0) -> None:
        """Wait for the background catalog work and the prefetches started so far, then
        deliver the events that work raised (on the thread that built the session)."""
        self.sync.wait(timeout)
        prefetch.wait(prefetch.start(self.cache, self._ahead()), timeout)
        self.deliver()

    def refresh(self) -> Progress:
        """Re-read scan states, decisions and claims from the catalog (others' progress)."""
        try:
            self.sync.refresh()
        except MiqaError as exc:
            self._fail(exc)
        return self.progress

    def start_auto_refresh(self, seconds: float = 5.0) -> None:
        """Re-read others' progress and claims every ``seconds`` (background thread)."""
        self.sync.start_auto_refresh(seconds)

    def stop_auto_refresh(self) -> None:
        """Stop :meth:`start_auto_refresh`."""
        self.sync.stop_auto_refresh()

    @property
    def auto_refreshing(self) -> bool:
        """Whether :meth:`start_auto_refresh` is running."""
        return self.sync.auto_refreshing

    def renew(self) -> None:
        """Claim or renew the open scan's experiment now (when older than half its life)."""
        if self._key is not None:
            try:
                self.sync.claim(self._key[0])
            except MiqaError as exc:
                self._fail(exc)
            self._notify("claim")

    def take_over(self) -> bool:
        """Take the open scan's experiment from its holder (superusers)."""
        if self._key is None:
            return False
        try:
            permissions.require_superuser(self.standing, "take over another reviewer's claim")
            self.sync.claim(self._key[0], take_over=True)
        except MiqaError as exc:
            self._fail(exc, about="claim")
            return False
        self._forget_error()
        self._notify("claim")
        self._notify("error")
        return True

    def _decidable(self) -> frozenset[ScanState] | None:
        """States of the scans this user can still decide (None: decides nothing)."""
        if self.read_only:
            return None
        if self.standing.tier2:
            return frozenset({ScanState.UNREVIEWED, ScanState.NEEDS_TIER2})
        return frozenset({ScanState.UNREVIEWED})

    def _ahead(self) -> list[str]:
        """The files to decode while the reviewer looks at this scan."""
        others = self.sync.others()
        return prefetch.frames_ahead(
            self.queue, self._key, self.prefetch, others, self.view.other_frames()
        )
