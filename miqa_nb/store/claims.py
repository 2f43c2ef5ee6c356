"""Claims on experiments (who reviews what, until when) and each reviewer's place.

MIQA locks an experiment while someone reviews it; here opening a scan *claims* its
experiment for :data:`CLAIM_MINUTES`, renewed while reviewing, so a reviewer who
closes the laptop does not hold it for ever. A claim lasts at most
:data:`MAX_CLAIM_MINUTES` (:func:`claim_length` says so), and only users who may
record decisions hold claims (the caller checks). A position remembers the scan a user had
open in a project, to resume there. Times are naive UTC. Functions over an open
catalog connection, called by :class:`~miqa_nb.catalog.Catalog`; permissions are
checked by the caller, before.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from miqa_nb.core.duck import Connection, one
from miqa_nb.core.errors import MiqaError, NotFound
from miqa_nb.store._pg import hold

if TYPE_CHECKING:  # pandas loads on first use: an import never needs it
    import pandas as pd

__all__ = [
    "CLAIM_MINUTES",
    "MAX_CLAIM_MINUTES",
    "Claim",
    "claim_length",
    "live_claim",
    "live_claims",
    "place",
    "put_claim",
    "release",
    "require_experiment",
    "set_place",
]

#: How long opening a scan keeps its experiment claimed (renewed while reviewing).
CLAIM_MINUTES = 5.0
#: The longest a claim may last: a claim keeps others out, so none outlives an hour of
#: absence (a reviewer at work renews it).
MAX_CLAIM_MINUTES = 60.0


def claim_length(minutes: float) -> timedelta:
    """How long a claim of ``minutes`` lasts, checked: more than 0, at most
    :data:`MAX_CLAIM_MINUTES`.

    >>> claim_length(5)
    datetime.timedelta(seconds=300)
    >>> claim_length(1e6)
    Traceback (most recent call last):
    ...
    miqa_nb.core.errors.MiqaError: a claim lasts more than 0 and at most 60 minutes; 1000000.0 was provided
    """
    if not (isinstance(minutes, int | float) and 0 < minutes <= MAX_CLAIM_MINUTES):
        raise MiqaError(
            f"a claim lasts more than 0 and at most {MAX_CLAIM_MINUTES:g} minutes; "
            f"{minutes!r} was provided"
        )
    return timedelta(minutes=minutes)


def require_experiment(con: Connection, project: str, experiment: str) -> None:
    """Raise :class:`NotFound` unless the catalog holds the experiment."""
    if not one(
        con, "SELECT 1 FROM experiments WHERE project = ? AND name = ?", [project, experiment]
    ):
        raise NotFound(f"no experiment {experiment!r} in project {project!r}")


@dataclass(frozen=True)
class Claim:
    """Who holds an experiment for review, and until when (UTC)."""

    project: str
    experiment: str
    user: str
    expires_utc: datetime
    mine: bool


def live_claim(
    con: Connection, project: str, experiment: str, *, user: str, now: datetime
) -> Claim | None:
    """The claim on an experiment that has not expired by ``now``, if any; ``mine``
    says whether ``user`` holds it. Inside a transaction, the claim stays as read until
    it ends (PostgreSQL: an advisory lock on the experiment's claim; DuckDB: the file
    lock), so a claim checked and then taken is not taken by two."""
    hold(con, f"miqa_nb claim\x1f{project}\x1f{experiment}")
    held = one(
        con,
        "SELECT user_name, expires_utc FROM claims WHERE project = ? AND experiment = ?",
        [project, experiment],
    )
    if held is None or held[1] <= now:
        return None
    return Claim(project, experiment, held[0], held[1], mine=held[0] == user)


def put_claim(
    con: Connection, project: str, experiment: str, user: str, expires: datetime
) -> Claim:
    """Give ``user`` the claim on an experiment until ``expires`` (replacing any)."""
    con.execute(
        "INSERT INTO claims VALUES (?, ?, ?, ?) ON CONFLICT (project, experiment) DO UPDATE "
        "SET user_name = excluded.user_name, expires_utc = excluded.expires_utc",
        [project, experiment, user, expires],
    )
    return Claim(project, experiment, user, expires, mine=True)


def release(con: Connection, project: str, experiment: str, user: str) -> None:
    """Drop ``user``'s claim on an experiment (another's claim stays)."""
    con.execute(
        "DELETE FROM claims WHERE project = ? AND experiment = ? AND user_name = ?",
        [project, experiment, user],
    )


def live_claims(con: Connection, now: datetime, project: str | None = None) -> pd.DataFrame:
    """Claims not expired by ``now``: project, experiment, user, expires_utc."""
    clause = "" if project is None else "AND project = ?"
    return con.execute(
        f"SELECT project, experiment, user_name AS user, expires_utc FROM claims "
        f"WHERE expires_utc > ? {clause} ORDER BY 1, 2",
        [now] if project is None else [now, project],
    ).df()


def set_place(
    con: Connection,
    user: str,
    project: str,
    experiment: str,
    scan: str,
    now: datetime,
) -> None:
    """Remember the scan ``user`` has open in ``project``."""
    con.execute(
        "INSERT INTO positions VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_name, project) DO UPDATE "
        "SET experiment = excluded.experiment, scan = excluded.scan, "
        "updated_utc = excluded.updated_utc",
        [user, project, experiment, scan, now],
    )


def place(con: Connection, project: str, user: str) -> tuple[str, str] | None:
    """The (experiment, scan) ``user`` last had open in ``project``, if any."""
    found = one(
        con,
        "SELECT experiment, scan FROM positions WHERE user_name = ? AND project = ?",
        [user, project],
    )
    return (str(found[0]), str(found[1])) if found else None
