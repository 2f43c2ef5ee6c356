"""The decision a reviewer prepares for the open scan, what refuses it, and its write.

- :class:`PendingDecision` is the decision being prepared (code, artifacts, note,
  "store location"): a frozen value whose edits return a new one, checked as they
  are made (a decision the user's role may not record, an artifact name that is not
  one). :meth:`PendingDecision.check` raises what a submit would refuse -- no
  decision chosen, the role, MIQA's note-or-artifact rule -- before anything is
  written. Pure: no catalog, no threads.
- :class:`DecisionWriter` writes an accepted decision to the catalog (on whichever
  thread the session's background work runs), keeps those that could not be stored
  (:attr:`~DecisionWriter.unsaved`) and the last one that was
  (:attr:`~DecisionWriter.last_submitted`), and reports through callbacks of its
  owner: ``notify('stored')``, ``fail(exc)``.

A :class:`~miqa_nb.review.session.ReviewSession` holds the pending decision and one
writer; claims (who holds the experiment) are the session's to check, as they live in
:mod:`miqa_nb.review.sync`.

Examples
--------
>>> from miqa_nb.core.vocabulary import Role
>>> tier1 = Standing("ana", project="P", role=Role.TIER1)
>>> pending = PendingDecision().with_decision("q?", tier1)
>>> pending.decision
<Decision.QUESTIONABLE: 'Q?'>
>>> pending.check(tier1)
Traceback (most recent call last):
...
miqa_nb.core.errors.MiqaError: a 'Q?' decision needs a note or at least one artifact marked present
>>> pending = pending.with_artifact("motion", "present")
>>> pending.present, pending.check(tier1)
(('ghosting_motion',), <Decision.QUESTIONABLE: 'Q?'>)
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from miqa_nb.catalog import Catalog
from miqa_nb.core import permissions
from miqa_nb.core.errors import MiqaError
from miqa_nb.core.permissions import Standing
from miqa_nb.core.rules import require_note_or_artifact, require_plain_note
from miqa_nb.core.vocabulary import (
    ARTIFACTS,
    ArtifactState,
    Decision,
    Location,
    parse_artifact,
)
from miqa_nb.review.queue import ScanKey

__all__ = ["DecisionWriter", "PendingDecision", "Stored"]


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

    def with_decision(self, decision: Decision | str | None, standing: Standing) -> PendingDecision:
        """This decision with another code (None clears it).

        Raises
        ------
        MiqaError
            Not a decision code (:class:`~miqa_nb.core.errors.VocabularyError`), or one
            the user's role may not record (:class:`~miqa_nb.core.errors.PermissionDenied`).

        Examples
        --------
        >>> from miqa_nb.core.vocabulary import Role
        >>> PendingDecision().with_decision("UN", Standing("t", project="P", role=Role.TIER1))
        Traceback (most recent call last):
        ...
        miqa_nb.core.errors.PermissionDenied: user 't' may not record 'UN' ...tier-2 reviewers...
        """
        code = None if decision is None else Decision.parse(str(decision))
        if code is not None:
            permissions.require_decision(standing, code)
        return replace(self, decision=code)

    def with_artifact(self, name: str, state: ArtifactState | str) -> PendingDecision:
        """This decision with an artifact marked present, absent or not assessed.

        Raises
        ------
        MiqaError
            Not an artifact's name, or not a state.

        Examples
        --------
        >>> marked = PendingDecision().with_artifact("Motion", "absent")
        >>> dict(marked.artifacts)
        {'ghosting_motion': <ArtifactState.ABSENT: 'absent'>}
        >>> dict(marked.with_artifact("motion", "not assessed").artifacts)
        {}
        """
        canonical = parse_artifact(name)
        try:
            value = ArtifactState(state)
        except ValueError as exc:
            raise MiqaError(str(exc)) from exc
        artifacts = dict(self.artifacts)
        if value == ArtifactState.NOT_ASSESSED:
            artifacts.pop(canonical, None)
        else:
            artifacts[canonical] = value
        return replace(self, artifacts=artifacts)

    def with_note(self, note: str) -> PendingDecision:
        """This decision with another note."""
        return replace(self, note=str(note))

    def with_store_location(self, store: bool) -> PendingDecision:
        """This decision, storing the crosshair as its location of interest or not."""
        return replace(self, store_location=bool(store))

    def cleared(self) -> PendingDecision:
        """A new decision that keeps only the "store location" choice.

        >>> PendingDecision(note="x", store_location=False).cleared()
        PendingDecision(decision=None, artifacts={}, note='', store_location=False)
        """
        return PendingDecision(store_location=self.store_location)

    def check(self, standing: Standing) -> Decision:
        """The decision to record; raises what a submit would refuse (claims aside).

        Raises
        ------
        MiqaError
            No decision is chosen, or a decision other than ``U`` has neither a note nor
            an artifact present (MIQA's rule).
        PermissionDenied
            The user's role may not record it.
        """
        if self.decision is None:
            raise MiqaError("choose a decision first (U, UE, Q? or UN)")
        permissions.require_decision(standing, self.decision)
        require_note_or_artifact(self.decision, self.note, self.present)
        require_plain_note(self.note)
        return self.decision

    def location(self, crosshair: tuple[float, float, float] | None) -> Location | None:
        """The location of interest to store: the crosshair, when asked for and known.

        >>> str(PendingDecision().location((1.0, -2.5, 30.0)))
        'i=1;j=-2.5;k=30'
        >>> PendingDecision(store_location=False).location((1.0, -2.5, 30.0)) is None
        True
        """
        if not self.store_location or crosshair is None:
            return None
        return Location.from_mm(*crosshair)


@dataclass(frozen=True)
class Stored:
    """A decision written to the catalog: its scan, its code and when (local time)."""

    key: ScanKey
    decision: str
    at: datetime


class DecisionWriter:
    """Writes one reviewer's accepted decisions to the catalog, and keeps what failed.

    Parameters
    ----------
    catalog : Catalog
    project, user : str
    notify : callable
        ``notify('stored')`` after a decision was written (any thread).
    fail : callable
        ``fail(exc)`` when one was not; the message names the decision and the scan.
    """

    def __init__(
        self,
        catalog: Catalog,
        project: str,
        user: str,
        *,
        notify: Callable[[str], None],
        fail: Callable[[BaseException], None],
    ) -> None:
        self.catalog = catalog
        self.project = project
        self.user = user
        self._notify = notify
        self._fail = fail
        self._lock = threading.Lock()
        #: ``(scan, decision id)`` of the last decision stored.
        self.last_submitted: tuple[ScanKey, int] | None = None
        #: Decisions accepted but not stored (scan, decision, why), newest last.
        self.unsaved: list[tuple[ScanKey, PendingDecision, str]] = []
        #: The last decision stored: scan, code, when (local time).
        self.last_stored: Stored | None = None
        self._waiting = 0

    @property
    def waiting(self) -> int:
        """Decisions accepted (:meth:`accept`) and not yet written or refused."""
        return self._waiting

    def accept(self) -> None:
        """Count a decision whose :meth:`write` is on its way (see :attr:`waiting`)."""
        with self._lock:
            self._waiting += 1

    def write(
        self,
        key: ScanKey,
        pending: PendingDecision,
        decision: Decision,
        location: Location | None,
    ) -> bool:
        """Record ``decision`` (checked by :meth:`PendingDecision.check`) on scan ``key``.

        Returns
        -------
        bool
            True when it was stored; False when the catalog refused it (kept in
            :attr:`unsaved`, reported through ``fail``).
        """
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
                self._done()
            self._fail(
                type(exc)(
                    f"the {decision.value!r} decision on {key[0]}/{key[1]} was NOT stored: {exc}"
                )
            )
            return False
        except BaseException:
            with self._lock:
                self._done()
            raise
        with self._lock:  # the counts are right before anyone is told
            self.last_submitted = (key, new_id)
            self.last_stored = Stored(key, decision.value, datetime.now().astimezone())
            self._done()
        self._notify("stored")
        return True

    def _done(self) -> None:
        """One accepted decision less on its way (call with the lock held)."""
        self._waiting = max(0, self._waiting - 1)
