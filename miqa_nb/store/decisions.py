"""The decision log: appending one decision to it.

Decisions are only ever appended; a scan's last decision and its state are derived
when read (:mod:`miqa_nb.store.queries`). Each new decision's ``id`` is the largest so
far plus one, assigned under the catalog's file lock (on PostgreSQL, under the decision
log's advisory lock, held until commit), so id order is the log's order.
Functions over an open catalog connection, called by :class:`~miqa_nb.catalog.Catalog`
inside its transactions; permissions and MIQA's rules are checked by the caller, before.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from miqa_nb.core.duck import Connection, one
from miqa_nb.core.errors import NotFound
from miqa_nb.core.vocabulary import (
    ArtifactState,
    Decision,
    Location,
    Timestamp,
    format_artifacts,
    parse_artifact,
)
from miqa_nb.store._pg import DECISION_LOG, hold

__all__ = ["DECISION_LOG", "append_decision", "artifact_states", "require_scan"]


def artifact_states(
    artifacts: Mapping[str, ArtifactState | str] | Iterable[str],
) -> dict[str, ArtifactState]:
    """Canonical artifact names and their states, from a mapping of names to states or
    from the names of the artifacts present.

    Examples
    --------
    >>> artifact_states(["Motion"])
    {'ghosting_motion': <ArtifactState.PRESENT: 'present'>}
    >>> artifact_states({"lesions": "absent"})
    {'lesions': <ArtifactState.ABSENT: 'absent'>}
    """
    if isinstance(artifacts, Mapping):
        return {parse_artifact(k): ArtifactState(v) for k, v in artifacts.items()}
    return {parse_artifact(a): ArtifactState.PRESENT for a in artifacts}


def require_scan(con: Connection, project: str, experiment: str, scan: str) -> None:
    """Raise :class:`NotFound` unless the catalog holds the scan."""
    if not one(
        con,
        "SELECT 1 FROM scans WHERE project = ? AND experiment = ? AND name = ?",
        [project, experiment, scan],
    ):
        raise NotFound(f"no scan {scan!r} in experiment {experiment!r} of project {project!r}")


def append_decision(
    con: Connection,
    scan: tuple[str, str, str],
    decision: Decision,
    *,
    creator: str,
    note: str,
    created: Timestamp,
    states: Mapping[str, ArtifactState],
    location: Location | None,
) -> int:
    """Append a decision on ``scan`` (project, experiment, name); return its id.

    Artifacts not assessed are not stored; an empty note is stored as NULL.
    """
    present = [a for a, s in states.items() if s == ArtifactState.PRESENT]
    absent = [a for a, s in states.items() if s == ArtifactState.ABSENT]
    hold(con, DECISION_LOG)  # PostgreSQL: one id at a time (DuckDB: the file lock)
    require_scan(con, *scan)  # still there: an import holding the log may have replaced it
    (new_id,) = one(con, "SELECT coalesce(max(id), 0) + 1 FROM decisions") or (1,)
    con.execute(
        "INSERT INTO decisions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            new_id,
            *scan,
            decision.value,
            creator,
            note or None,
            created.wall,
            created.utcoffset_minutes,
            format_artifacts(present) or None,
            format_artifacts(absent) or None,
            None if location is None else location.text,
            None if location is None else location.i,
            None if location is None else location.j,
            None if location is None else location.k,
        ],
    )
    return int(new_id)
