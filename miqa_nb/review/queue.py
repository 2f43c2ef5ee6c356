"""The review queue: which scans a reviewer goes through, in which order, and progress.

This module is pure (pandas in, plain values out; no I/O, no threads). A
:class:`~miqa_nb.review.session.ReviewSession` builds a :class:`ScanQueue` from the catalog's
``scans()`` and ``frames()`` DataFrames and asks it where to go next.

Contract
--------
- Order is MIQA's: experiment, then scan name (the order ``Catalog.scans`` returns).
- The *scope* is every scan of the project that passes the scan-type and experiment
  filters, but those of experiments held in quarantine (``quarantined`` in
  ``Catalog.scans``: archived, hidden from review until released); progress counts
  the scope. The *queue* is the part of the scope that
  matches the state filter (``'unreviewed'``, ``'needs tier-2'`` or ``'all'``) when
  the queue was built or at any refresh since: it only grows, so a scan the reviewer
  just decided stays in place and "previous" goes back to it.
- Positions are ``(experiment, scan)`` keys, never row numbers, so a refresh that
  adds scans does not move the reviewer.
- :meth:`ScanQueue.find_next` skips scans that no longer match the state filter and,
  when it can, scans whose experiment another reviewer holds (claims).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, cast

import pandas as pd

from miqa_nb.core.errors import MiqaError
from miqa_nb.core.vocabulary import ScanState

__all__ = ["FILTERS", "Progress", "ScanInfo", "ScanKey", "ScanQueue"]

#: State filters a queue accepts, and the scan state each one keeps (None: every state).
FILTERS: Mapping[str, ScanState | None] = {
    "unreviewed": ScanState.UNREVIEWED,
    "needs tier-2": ScanState.NEEDS_TIER2,
    "all": None,
}

ScanKey = tuple[str, str]


def _text(value: Any) -> str | None:
    """A DataFrame cell as text, or None for NULL/NaN/NaT."""
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value)


@dataclass(frozen=True)
class ScanInfo:
    """What a reviewer sees about one scan (from the catalog, as of the last refresh)."""

    project: str
    experiment: str
    scan: str
    type: str | None
    subject_id: str | None
    session_id: str | None
    link: str | None
    n_frames: int
    n_decisions: int
    last_decision: str | None
    last_decision_creator: str | None
    last_decision_created: str | None
    state: ScanState
    #: One file location per frame (frame_number order); an absolute path or s3:// URL.
    frames: tuple[str, ...] = ()

    @property
    def key(self) -> ScanKey:
        """``(experiment, scan)``."""
        return (self.experiment, self.scan)


@dataclass(frozen=True)
class Progress:
    """Review progress of the scans in scope (all reviewers together)."""

    total: int
    reviewed: int
    complete: int
    needs_tier2: int
    #: Scans whose newest decision was made by each reviewer.
    by_reviewer: Mapping[str, int]

    @property
    def unreviewed(self) -> int:
        """Scans without any decision."""
        return self.total - self.reviewed

    @property
    def fraction(self) -> float:
        """Reviewed / total (0 for an empty scope)."""
        return self.reviewed / self.total if self.total else 0.0

    def __str__(self) -> str:
        return (
            f"{self.reviewed}/{self.total} reviewed ({self.complete} complete, "
            f"{self.needs_tier2} need tier-2 review)"
        )


class _View(NamedTuple):
    """One consistent state of a queue, replaced as a whole (a refresh on another
    thread never shows a half-updated queue)."""

    scope: tuple[ScanInfo, ...]
    at: dict[ScanKey, int]  # key -> place in scope
    keys: tuple[ScanKey, ...]
    positions: dict[ScanKey, int]

    @classmethod
    def of(cls, scope: Sequence[ScanInfo], members: Collection[ScanKey]) -> _View:
        keys = tuple(info.key for info in scope if info.key in members)
        return cls(
            tuple(scope),
            {info.key: n for n, info in enumerate(scope)},
            keys,
            {key: n for n, key in enumerate(keys)},
        )


class ScanQueue:
    """The scans to review, in MIQA's order, with a state filter.

    Parameters
    ----------
    scans : DataFrame
        ``Catalog.scans(project)``.
    frames : DataFrame
        ``Catalog.frames(project)`` (experiment, scan, frame_number, location).
    filter : {'unreviewed', 'needs tier-2', 'all'}
    scan_type : str, optional
        Keep only this scan type (case-insensitive).
    experiment : str or collection of str, optional
        Keep only these experiments.
    """

    def __init__(
        self,
        scans: pd.DataFrame,
        frames: pd.DataFrame,
        *,
        filter: str = "unreviewed",
        scan_type: str | None = None,
        experiment: str | Collection[str] | None = None,
    ) -> None:
        if filter not in FILTERS:
            raise MiqaError(f"'filter' must be one of {tuple(FILTERS)}; {filter!r} was provided")
        self.filter = filter
        self.scan_type = scan_type
        self.experiments: frozenset[str] | None = (
            None
            if experiment is None
            else frozenset([experiment] if isinstance(experiment, str) else experiment)
        )
        self._frames: dict[ScanKey, tuple[str, ...]] = {}
        if not frames.empty:
            ordered = frames.sort_values(["experiment", "scan", "frame_number"])
            for (exp, scan), group in ordered.groupby(["experiment", "scan"], sort=False):
                self._frames[(str(exp), str(scan))] = tuple(str(v) for v in group["location"])
        self._members: frozenset[ScanKey] = frozenset()
        self._v = _View((), {}, (), {})
        self.update(scans)

    # ------------------------------------------------------------------ building
    def update(self, scans: pd.DataFrame) -> None:
        """Take new states from ``Catalog.scans(project)``; the queue only grows."""
        records = cast(list[dict[str, Any]], scans.to_dict("records"))
        scope = [self._info(row) for row in records if self._in_scope(row)]
        self._members = self._members | {info.key for info in scope if self._wanted(info)}
        self._v = _View.of(scope, self._members)

    def _in_scope(self, row: Mapping[str, Any]) -> bool:
        if bool(row.get("quarantined") or False):
            return False  # hidden from every review until released
        if self.experiments is not None and str(row["experiment"]) not in self.experiments:
            return False
        if self.scan_type is not None:
            kind = _text(row.get("type"))
            return kind is not None and kind.lower() == self.scan_type.lower()
        return True

    def _info(self, row: Mapping[str, Any]) -> ScanInfo:
        key = (str(row["experiment"]), str(row["scan"]))
        return ScanInfo(
            project=str(row["project"]),
            experiment=key[0],
            scan=key[1],
            type=_text(row.get("type")),
            subject_id=_text(row.get("subject_id")),
            session_id=_text(row.get("session_id")),
            link=_text(row.get("link")),
            n_frames=int(row.get("n_frames") or 0),
            n_decisions=int(row.get("n_decisions") or 0),
            last_decision=_text(row.get("last_decision")),
            last_decision_creator=_text(row.get("last_decision_creator")),
            last_decision_created=_text(row.get("last_decision_created")),
            state=ScanState(str(row["state"])),
            frames=self._frames.get(key, ()),
        )

    def _wanted(self, info: ScanInfo) -> bool:
        state = FILTERS[self.filter]
        return state is None or info.state == state

    def record(
        self, key: ScanKey, decision: str, creator: str, created: str, state: ScanState
    ) -> None:
        """Note a decision just stored by this session (until the next refresh)."""
        v = self._v
        n = v.at.get(key)
        if n is None:
            return
        scope = list(v.scope)
        old = scope[n]
        scope[n] = dataclasses.replace(
            old,
            n_decisions=old.n_decisions + 1,
            last_decision=decision,
            last_decision_creator=creator,
            last_decision_created=created,
            state=state,
        )
        self._v = _View.of(scope, self._members)

    def pin(self, key: ScanKey) -> None:
        """Make a scan of the scope part of the queue (e.g. the one a reviewer opens)."""
        v = self._v
        if key in v.at and key not in self._members:
            self._members = self._members | {key}
            self._v = _View.of(v.scope, self._members)

    # ------------------------------------------------------------------ reading
    def __len__(self) -> int:
        return len(self._v.keys)

    def __contains__(self, key: object) -> bool:
        return key in self._v.positions

    def keys(self) -> list[ScanKey]:
        """The queue's scans, in order."""
        return list(self._v.keys)

    def position(self, key: ScanKey | None) -> int | None:
        """Place of a scan in the queue (0-based), or None."""
        return None if key is None else self._v.positions.get(key)

    def info(self, key: ScanKey) -> ScanInfo:
        """The scan's details (it must be in scope)."""
        try:
            v = self._v
            return v.scope[v.at[key]]
        except KeyError:
            raise MiqaError(
                f"scan {key[1]!r} of experiment {key[0]!r} is not in this review's scope "
                f"(filters: type={self.scan_type!r}, experiments={self.experiments and sorted(self.experiments)})"
            ) from None

    def key_of(self, target: ScanKey | int | ScanInfo) -> ScanKey:
        """The key of a scan given by queue position, ``(experiment, scan)`` or details.

        Raises
        ------
        MiqaError
            A position outside the queue, or a scan outside the scope.
        """
        if isinstance(target, ScanInfo):
            return target.key
        if isinstance(target, int):
            keys = self._v.keys
            if not 0 <= target < len(keys):
                raise MiqaError(
                    f"queue position {target} is out of range: the queue has {len(keys)} scans"
                )
            return keys[target]
        key = (str(target[0]), str(target[1]))
        self.info(key)  # raises when not in scope
        return key

    def in_scope(self, key: ScanKey) -> bool:
        """Whether a scan passes the type and experiment filters."""
        return key in self._v.at

    def matches(self, key: ScanKey) -> bool:
        """Whether a scan matches the state filter now."""
        return self._wanted(self.info(key))

    def frame(self) -> pd.DataFrame:
        """The queue as a DataFrame (one row per scan, in order)."""
        rows = [
            dataclasses.asdict(self.info(k)) | {"position": n} for n, k in enumerate(self._v.keys)
        ]
        return pd.DataFrame(rows)

    def find_next(
        self,
        start: ScanKey | None,
        *,
        held_by_others: Collection[str] = (),
        backwards: bool = False,
        wrap: bool = True,
    ) -> ScanKey | None:
        """The next scan to review after ``start`` (None: from the beginning).

        Scans that no longer match the state filter are skipped; among the rest, the
        first one whose experiment is not in ``held_by_others`` is preferred, else the
        first one. Searching wraps around the end (``wrap``) but never returns ``start``.
        """
        v = self._v
        order = list(v.keys[::-1] if backwards else v.keys)
        if start is not None and start in v.positions:
            n = order.index(start)
            after, before = order[n + 1 :], order[:n]
        elif start is not None and start in v.at:
            # not a member: continue from where it would be in the scope's order
            rank = v.at[start]
            later = [k for k in order if (v.at[k] > rank) != backwards]
            after = later
            before = [k for k in order if k not in set(later)]
        else:
            after, before = list(order), []
        candidates = [k for k in (after + before if wrap else after) if self.matches(k)]
        for key in candidates:
            if key[0] not in held_by_others:
                return key
        return candidates[0] if candidates else None

    def first(
        self,
        place: ScanKey | None,
        *,
        held_by_others: Collection[str] = (),
        decidable: Collection[ScanState] | None = None,
    ) -> ScanKey | None:
        """Where a reviewer begins (resumes); None for an empty queue.

        With ``decidable`` (the states of scans this reviewer can still decide: a
        tier-1 reviewer's unreviewed scans, a tier-2 reviewer's unreviewed and
        needs-tier-2 scans), the first scan from ``place`` on (wrapping around the
        end) that matches the state filter, is in one of those states and whose
        experiment nobody else holds; when there is none, or without ``decidable``:
        ``place`` (where they left off) when it is in scope and still matches the
        state filter, else the next scan after it, else the first (as
        :meth:`find_next` prefers them).
        """
        start = place if place is not None and self.in_scope(place) else None
        if decidable:
            wanted = frozenset(decidable)
            v = self._v
            order = list(v.keys)
            if start is not None and start in v.positions:
                n = order.index(start)
                order = order[n:] + order[:n]
            elif start is not None:  # not a member: from where it is in the scope
                rank = v.at[start]
                order = [k for k in order if v.at[k] >= rank] + [k for k in order if v.at[k] < rank]
            for key in order:
                info = self.info(key)
                if (
                    self._wanted(info)
                    and info.state in wanted
                    and info.experiment not in held_by_others
                ):
                    return key
        if start is not None and not self.matches(start):
            start = self.find_next(start, held_by_others=held_by_others)
        if start is None:
            start = self.find_next(None, held_by_others=held_by_others)
        return start

    def upcoming(
        self, start: ScanKey | None, n: int, held_by_others: Collection[str] = ()
    ) -> list[ScanKey]:
        """The ``n`` scans :meth:`find_next` would give one after the other."""
        found: list[ScanKey] = []
        key = start
        for _ in range(n):
            key = self.find_next(key, held_by_others=held_by_others, wrap=False)
            if key is None or key in found:
                break
            found.append(key)
        return found

    def progress(self) -> Progress:
        """Progress of the scope (every reviewer's decisions)."""
        scope = self._v.scope
        states = [info.state for info in scope]
        creators: dict[str, int] = {}
        for info in scope:
            if info.last_decision_creator:
                creators[info.last_decision_creator] = (
                    creators.get(info.last_decision_creator, 0) + 1
                )
        return Progress(
            total=len(states),
            reviewed=sum(s != ScanState.UNREVIEWED for s in states),
            complete=sum(s == ScanState.COMPLETE for s in states),
            needs_tier2=sum(s == ScanState.NEEDS_TIER2 for s in states),
            by_reviewer=dict(sorted(creators.items())),
        )
