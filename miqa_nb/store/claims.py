"""Claims on experiments (who reviews what, until when) and each reviewer's place.

MIQA locks an experiment while someone reviews it; here opening a scan *claims* its
experiment for :data:`CLAIM_MINUTES`, renewed while reviewing, so a reviewer who
closes the laptop does not hold it for ever. A position remembers the scan a user had
open in a project, to resume there. Times are naive UTC. Functions over an open
catalog connection, called by :class:`~miqa_nb.catalog.Catalog`; permissions are
checked by the caller, before.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb
import pandas as pd

from miqa_nb.core.duck import one

__all__ = [
    "CLAIM_MINUTES",
    "Claim",
    "live_claim",
    "live_claims",
    "place",
    "put_claim",
    "release",
    "set_place",
]

#: How long opening a scan keeps its experiment claimed (renewed while reviewing).
CLAIM_MINUTES = 5.0


@dataclass(frozen=True)
class Claim:
    """Who holds an experiment for review, and until when (UTC)."""

    project: str
    experiment: str
    user: str
    expires_utc: datetime
    mine: bool


def live_claim(
    con: duckdb.DuckDBPyConnection, project: str, experiment: str, *, user: str, now: datetime
) -> Claim | None:
    """The claim on an experiment that has not expired by ``now``, if any; ``mine``
    says whether ``user`` holds it."""
    held = one(
        con,
        "SELECT user_name, expires_utc FROM claims WHERE project = ? AND experiment = ?",
        [project, experiment],
    )
    if held is None or held[1] <= now:
        return None
    return Claim(project, experiment, held[0], held[1], mine=held[0] == user)


def put_claim(
    con: duckdb.DuckDBPyConnection, project: str, experiment: str, user: str, expires: datetime
) -> Claim:
    """Give ``user`` the claim on an experiment until ``expires`` (replacing any)."""
    con.execute(
        "INSERT OR REPLACE INTO claims VALUES (?, ?, ?, ?)", [project, experiment, user, expires]
    )
    return Claim(project, experiment, user, expires, mine=True)


def release(con: duckdb.DuckDBPyConnection, project: str, experiment: str, user: str) -> None:
    """Drop ``user``'s claim on an experiment (another's claim stays)."""
    con.execute(
        "DELETE FROM claims WHERE project = ? AND experiment = ? AND user_name = ?",
        [project, experiment, user],
    )


def live_claims(
    con: duckdb.DuckDBPyConnection, now: datetime, project: str | None = None
) -> pd.DataFrame:
    """Claims not expired by ``now``: project, experiment, user, expires_utc."""
    clause = "" if project is None else "AND project = ?"
    return con.execute(
        f"SELECT project, experiment, user_name AS user, expires_utc FROM claims "
        f"WHERE expires_utc > ? {clause} ORDER BY 1, 2",
        [now] if project is None else [now, project],
    ).df()


def set_place(
    con: duckdb.DuckDBPyConnection,
    user: str,
    project: str,
    experiment: str,
    scan: str,
    now: datetime,
) -> None:
    """Remember the scan ``user`` has open in ``project``."""
    con.execute(
        "INSERT OR REPLACE INTO positions VALUES (?, ?, ?, ?, ?)",
        [user, project, experiment, scan, now],
    )


def place(con: duckdb.DuckDBPyConnection, project: str, user: str) -> tuple[str, str] | None:
    """The (experiment, scan) ``user`` last had open in ``project``, if any."""
    found = one(
        con,
        "SELECT experiment, scan FROM positions WHERE user_name = ? AND project = ?",
        [user, project],
    )
    return (str(found[0]), str(found[1])) if found else None
