"""A review session: one reviewer going through a project's scans (no widgets).

:class:`ReviewSession` owns everything a review screen shows and does, so that widgets
stay thin views (:mod:`miqa_nb.widgets`) and the same logic runs in tests, notebooks,
a Voila dashboard or a script:

- the queue (:class:`~miqa_nb.review.queue.ScanQueue`, MIQA's order, state and type
  filters), the current scan, next/previous, resuming where the user left off, and
  progress (every reviewer's, refreshed from the catalog with :meth:`refresh`);
- the view: current frame, crosshair (world mm), slices, window/level, and the three
  planes as pictures (:meth:`plane_images`, :meth:`render`);
- the pending decision (code, artifacts, note, "store location") and :meth:`submit`,
  which checks the user's role, MIQA's note-or-artifact rule and claims *before*
  writing, records the decision and goes to the next scan;
- claims instead of MIQA's experiment lock: opening a scan claims its experiment for a
  few minutes (renewed at half-life), :meth:`next` prefers experiments nobody else
  holds, :attr:`held_by` names who holds the current one, superusers may
  :meth:`take_over`;
- errors: a failed action never raises to the caller of a UI action; it is kept as
  :attr:`last_error` (readable text) and announced to observers (``'error'``).

The session is composed of parts that are given what they need and know nothing of
it: :class:`~miqa_nb.review.view.ScanView` (:attr:`view`: volume, frames,
crosshair, window, pictures), :class:`~miqa_nb.review.sync.CatalogSync`
(:attr:`sync`: background catalog work, refresh, claims),
:class:`~miqa_nb.review.queue.ScanQueue` (:attr:`queue`, pure) and
:class:`~miqa_nb.review.events.Observers`. This module holds navigation, the pending
decision, submit and errors, and forwards the view's and the claims' methods, so the
session's API is one surface.

Observers (:meth:`observe`) are called with an event name: ``'scan'`` (another scan
is open), ``'view'`` (frame, crosshair, slices or window), ``'pending'``,
``'submitted'`` (accepted), ``'stored'`` (written), ``'queue'`` (states/progress),
``'claim'``, ``'history'``, ``'error'``, ``'message'``. They are always called on the
thread that built the session, also for events of background work (a write that
failed or was stored, claims, auto-refresh): in a kernel or a Voila page the event is
scheduled on the owner's running asyncio loop and delivered as soon as the kernel is
idle; without a running loop (a script, a test) it waits until the owner calls
:meth:`deliver`, :meth:`flush` or :meth:`close`, or raises an event of its own (see
:mod:`miqa_nb.review.events`).

Speed: volumes come from a process-wide :class:`~miqa_nb.volumes.VolumeCache`
(:func:`default_cache`); opening a scan prefetches the next ones, and :meth:`submit`
starts decoding the next scan before it writes the decision. Catalog work that the
picture does not wait for -- writing the accepted decision (opening, committing and
closing the shared DuckDB file costs 20-50 ms, more than the whole budget of a scan
change), claims, the resume place, refreshing -- runs on one background thread per
session, in order; :meth:`flush` waits for it and :meth:`close` calls it. With
``background=False`` everything happens before each call returns.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from miqa_nb.catalog import CLAIM_MINUTES, Catalog, Claim
from miqa_nb.core import permissions
from miqa_nb.core.errors import MiqaError, PermissionDenied
from miqa_nb.core.identity import current_user
from miqa_nb.core.rules import require_note_or_artifact, scan_state
from miqa_nb.core.vocabulary import (
    ARTIFACTS,
    ArtifactState,
    Decision,
    Location,
    parse_artifact,
)
from miqa_nb.review.events import Observers
from miqa_nb.review.queue import FILTERS, Progress, ScanInfo, ScanKey, ScanQueue
from miqa_nb.review.sync import CatalogSync
from miqa_nb.review.view import PLANES_AXIS, ScanView
from miqa_nb.volumes import (
    Convention,
    LoadLimits,
    Plane,
    PlaneImage,
    SliceIndex,
    Volume,
    VolumeCache,
    Window,
)

__all__ = [
    "EVENTS",
    "PLANES_AXIS",
    "PendingDecision",
    "ReviewSession",
    "default_cache",
]

_log = logging.getLogger(__name__)

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

_CACHE: VolumeCache | None = None
_CACHE_LOCK = threading.Lock()


def default_cache() -> VolumeCache:
    """The process-wide volume cache every session shares (1 GiB, 2 decoding threads;
    data roots and voxel-byte bound from the environment, :meth:`LoadLimits.from_environ`)."""
    global _CACHE
    with _CACHE_LOCK:
        if _CACHE is None:
            _CACHE = VolumeCache(max_bytes=1 << 30, workers=2, limits=LoadLimits.from_environ())
        return _CACHE


@dataclass(frozen=True)
class PendingDecision:
    """The decision being prepared for the current scan."""

    decision: Decision | None = None
    #: Artifacts the reviewer assessed; the others are "not assessed".
    artifacts: Mapping[str, ArtifactState] = field(default_factory=dict)
    note: str = ""
    store_location: bool = True

    def artifact(self, name: str) -> ArtifactState:
        """State of one artifact (default not assessed)."""
        return self.artifacts.get(name, ArtifactState.NOT_ASSESSED)

    @property
    def present(self) -> tuple[str, ...]:
        """Artifacts marked present, in display order."""
        return tuple(a for a in ARTIFACTS if self.artifact(a) == ArtifactState.PRESENT)


class ReviewSession:
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
        self.message = ""
        self.last_submitted: tuple[ScanKey, int] | None = None
        #: Decisions accepted but not stored (scan, decision, why), newest last.
        self.unsaved: list[tuple[ScanKey, PendingDecision, str]] = []
        self._observers = Observers()
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
        others = self.sync.others()
        start = place if place is not None and self.queue.in_scope(place) else None
        if start is not None and not self.queue.matches(start):
            start = self.queue.find_next(start, held_by_others=others)
        if start is None:
            start = self.queue.find_next(None, held_by_others=others)
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
        self._observers.notify(event)

    def _fail(self, exc: BaseException) -> None:
        self.last_exception = exc
        self.last_error = str(exc) or type(exc).__name__
        if not isinstance(exc, MiqaError | OSError | ValueError | IndexError):
            _log.error("unexpected error in the review session", exc_info=exc)
        self._notify("error")

    def _say(self, text: str) -> None:
        self.message = text
        self._notify("message")

    def clear_error(self) -> None:
        """Forget :attr:`last_error`."""
        if self.last_error is not None:
            self.last_error = None
            self.last_exception = None
            self._notify("error")

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
    def convention(self) -> Convention:
        """Display convention of the project (``'neurological'`` or ``'radiological'``)."""
        return self.view.convention

    @property
    def max_size(self) -> int:
        """Longest side of a plane picture in pixels."""
        return self.view.max_size

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

    def claims(self) -> dict[str, tuple[str, datetime]]:
        """Live claims: experiment -> (user, expiry UTC), as of the last read."""
        return self.sync.live_claims()

    # ----------------------------------------------------------- navigation
    def open(self, target: ScanKey | int | ScanInfo) -> bool:
        """Open a scan (a queue position or ``(experiment, scan)``); False if it failed."""
        try:
            key = self._target(target)
        except MiqaError as exc:
            self._fail(exc)
            return False
        previous = self._key
        with self._lock:
            self.queue.pin(key)
            self._key = key
        self._pending = PendingDecision(store_location=self._pending.store_location)
        self.last_error = None
        self.last_exception = None
        loaded = self.view.show(f"{key[0]}/{key[1]}", self.queue.info(key).frames)
        self._notify("scan")
        if not loaded:
            self._notify("error")
        self._start_prefetch()
        self.sync.run(lambda: self.sync.after_open(key, previous))
        return loaded

    def _target(self, target: ScanKey | int | ScanInfo) -> ScanKey:
        if isinstance(target, ScanInfo):
            return target.key
        if isinstance(target, int):
            keys = self.queue.keys()
            if not 0 <= target < len(keys):
                raise MiqaError(
                    f"queue position {target} is out of range: the queue has {len(keys)} scans"
                )
            return keys[target]
        key = (str(target[0]), str(target[1]))
        self.queue.info(key)  # raises when not in scope
        return key

    def next(self) -> bool:
        """Go to the next scan to review (unclaimed first); False at the end of the queue."""
        key = self._next_key()
        if key is None:
            self._say("no more scans to review in this queue")
            return False
        return self.open(key)

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
            key = queue.find_next(
                self._key if self._key and queue.in_scope(self._key) else None,
                held_by_others=self.sync.others(),
            )
            if key is None:
                self._key = None
                self.view.clear()
                self._notify("scan")
                self._say("nothing to review with these filters")
            else:
                self.open(key)

    # ------------------------------------------------------ pending decision
    def set_decision(self, decision: Decision | str | None) -> bool:
        """Choose the decision to submit (None clears it); False if the role may not use it."""
        try:
            code = None if decision is None else Decision.parse(str(decision))
            if code is not None:
                permissions.require_decision(self.standing, code)
        except MiqaError as exc:
            self._fail(exc)
            return False
        self._pending = replace(self._pending, decision=code)
        self._notify("pending")
        return True

    def set_artifact(self, name: str, state: ArtifactState | str) -> None:
        """Mark an artifact present, absent or not assessed."""
        try:
            canonical, value = parse_artifact(name), ArtifactState(state)
        except (MiqaError, ValueError) as exc:
            self._fail(exc if isinstance(exc, MiqaError) else MiqaError(str(exc)))
            return
        artifacts = dict(self._pending.artifacts)
        if value == ArtifactState.NOT_ASSESSED:
            artifacts.pop(canonical, None)
        else:
            artifacts[canonical] = value
        self._pending = replace(self._pending, artifacts=artifacts)
        self._notify("pending")

    def set_note(self, note: str) -> None:
        """The note stored with the decision."""
        self._pending = replace(self._pending, note=str(note))
        self._notify("pending")

    def set_store_location(self, store: bool) -> None:
        """Store the crosshair as the location of interest (on by default)."""
        self._pending = replace(self._pending, store_location=bool(store))
        self._notify("pending")

    def clear_pending(self) -> None:
        """Start the decision over (keeps the "store location" choice)."""
        self._pending = PendingDecision(store_location=self._pending.store_location)
        self._notify("pending")

    def check(self) -> Decision:
        """Raise what :meth:`submit` would refuse, without writing anything."""
        if self._key is None:
            raise MiqaError("no scan is open")
        pending = self._pending
        if pending.decision is None:
            raise MiqaError("choose a decision first (U, UE, Q? or UN)")
        permissions.require_decision(self.standing, pending.decision)
        require_note_or_artifact(pending.decision, pending.note, pending.present)
        holder = self.held_by
        if holder is not None:
            raise PermissionDenied(
                f"experiment {self._key[0]!r} is being reviewed by {holder!r}; wait for their "
                "claim to expire" + (", or take it over" if self.standing.superuser else "")
            )
        return pending.decision

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
            self._fail(exc)
            return False
        assert self._key is not None
        key, pending = self._key, self._pending
        location = None
        crosshair = self.view.crosshair
        if pending.store_location and crosshair is not None and self.view.volume is not None:
            location = Location.from_mm(*crosshair)
        following = self._next_key() if self.advance_after_submit else None
        if following is not None:  # decode the next scan while the decision is written
            paths = self.queue.info(following).frames[:1]
            if paths and not paths[0].startswith("s3://"):
                with contextlib.suppress(RuntimeError):  # a closed cache: no head start
                    self.cache.prefetch(paths)

        def write() -> bool:
            try:
                new_id = self.catalog.record_decision(
                    self.project,
                    key[0],
                    key[1],
                    decision,
                    by=self.user,
                    note=pending.note,
                    artifacts=dict(pending.artifacts),
                    location=location,
                )
            except MiqaError as exc:
                with self._lock:
                    self.unsaved.append((key, pending, str(exc)))
                self._fail(
                    type(exc)(
                        f"the {decision.value!r} decision on {key[0]}/{key[1]} was NOT "
                        f"stored: {exc}"
                    )
                )
                return False
            self.last_submitted = (key, new_id)
            self._notify("stored")
            return True

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
        self.last_error = None
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
        try:
            prefetching = self.cache.prefetch(self._prefetch_paths())
        except RuntimeError:  # a closed cache
            prefetching = []
        for future in prefetching:
            try:
                future.result(timeout)
            except Exception as exc:  # a broken file is reported when it is opened
                _log.debug("prefetch failed: %s", exc)
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
            self._fail(exc)
            return False
        self.last_error = None
        self._notify("claim")
        return True

    def _prefetch_paths(self) -> list[str]:
        if self.prefetch <= 0 or self._key is None:
            return []
        upcoming = self.queue.upcoming(self._key, self.prefetch, self.sync.others())
        paths = [self.queue.info(k).frames[0] for k in upcoming if self.queue.info(k).frames]
        paths += self.view.other_frames()
        return [p for p in dict.fromkeys(paths) if not p.startswith("s3://")]

    def _start_prefetch(self) -> None:
        paths = self._prefetch_paths()
        if paths:
            try:
                self.cache.prefetch(paths)
            except RuntimeError as exc:  # a closed cache: prefetch is only a speed-up
                _log.debug("prefetch skipped: %s", exc)

    # ------------------------------------------------------------------ view
    # What the reviewer sees lives in :attr:`view`; these forward to it.
    @property
    def volume(self) -> Volume | None:
        """The decoded volume of the current frame (None when it could not be loaded)."""
        return self.view.volume

    @property
    def n_frames(self) -> int:
        """Frames of the open scan."""
        return self.view.n_frames

    @property
    def frame(self) -> int:
        """The frame shown (0-based)."""
        return self.view.frame

    def set_frame(self, frame: int) -> None:
        """Show another frame of a multi-frame scan (the crosshair stays in place)."""
        self.view.set_frame(frame)

    @property
    def crosshair(self) -> tuple[float, float, float] | None:
        """The crosshair in world mm (RAS+), at a voxel centre."""
        return self.view.crosshair

    @property
    def slices(self) -> SliceIndex | None:
        """Slice numbers through the crosshair."""
        return self.view.slices

    def set_crosshair(self, xyz: Any) -> None:
        """Move the crosshair to a world point (mm), snapped to the nearest voxel
        (see :meth:`ScanView.set_crosshair <miqa_nb.review.view.ScanView.set_crosshair>`)."""
        self.view.set_crosshair(xyz)

    go_to = set_crosshair

    def set_slice(self, plane: Plane, index: int) -> None:
        """Show slice ``index`` of ``plane`` (clipped to the volume)."""
        self.view.set_slice(plane, index)

    def move_slice(self, plane: Plane, delta: int) -> None:
        """Scroll ``plane`` by ``delta`` slices."""
        self.view.move_slice(plane, delta)

    def click(self, plane: Plane, row: float, col: float) -> None:
        """Move the crosshair to a pixel of the last picture of ``plane``."""
        self.view.click(plane, row, col)

    @property
    def window_spec(self) -> str | tuple[float, float]:
        """A preset name or manual ``(low, high)``."""
        return self.view.window_spec

    @property
    def window(self) -> Window | None:
        """The window shown (None without a volume)."""
        return self.view.window

    def window_limits(self) -> tuple[float, float] | None:
        """Bounds for a manual window control (None without a volume)."""
        return self.view.window_limits()

    def set_window(self, spec: str | tuple[float, float] | Window) -> None:
        """Window/level: a preset (:data:`~miqa_nb.volumes.PRESETS`) or ``(low, high)``."""
        self.view.set_window(spec)

    def plane_images(self) -> dict[Plane, PlaneImage]:
        """The three planes through the crosshair, with the crosshair drawn."""
        return self.view.plane_images()

    def render(self, fmt: str = "png") -> dict[Plane, bytes]:
        """The three planes as encoded pictures (``{}`` without a volume)."""
        return self.view.render(fmt)

    def volume_preview(
        self, max_side: int = 96
    ) -> tuple[np.ndarray, list[tuple[float, float]]] | None:
        """The shown frame for a 3D rendering (see :meth:`ScanView.volume_preview
        <miqa_nb.review.view.ScanView.volume_preview>`); None without a volume."""
        return self.view.volume_preview(max_side)
