"""Experiments held in quarantine: archived, but hidden from every review queue.

XNAT archives a session with ``quarantine=true`` so that nobody works on it until
someone releases it. Here such an experiment is in the catalog (its scans, frames and
decisions, exported like any other), and a row of the ``quarantine`` table (schema
version 3) hides its scans from the review queues and the counts reviewers see
(:data:`QUARANTINED_SQL`, which :mod:`miqa_nb.store.queries` joins), until it is
released (the row deleted).

Functions over an open catalog connection, called by :class:`~miqa_nb.catalog.Catalog`
inside its transactions; permissions are checked by the caller, before. A version-2
catalog opened read-only has no such table: nothing is quarantined there.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from miqa_nb.core.duck import Connection, one
from miqa_nb.core.errors import NotFound

if TYPE_CHECKING:  # pandas loads on first use: an import never needs it
    import pandas as pd

__all__ = [
    "QUARANTINED_SQL",
    "forget_missing",
    "has_quarantine",
    "hold",
    "hold_staged",
    "is_quarantined",
    "listing",
    "quarantined_sql",
    "release",
]

#: SQL: the quarantined experiments that exist (project, experiment). A row for an
#: experiment a replacing import removed hides nothing (and is removed by it).
QUARANTINED_SQL = """
SELECT q.project, q.experiment FROM quarantine q
WHERE EXISTS (SELECT 1 FROM experiments e WHERE e.project = q.project AND e.name = q.experiment)
"""
#: The same for a catalog without the table (version 2, read-only): none.
NONE_SQL = "SELECT NULL::VARCHAR AS project, NULL::VARCHAR AS experiment WHERE false"


def has_quarantine(con: Connection) -> bool:
    """True when the open catalog has the ``quarantine`` table (schema version 3)."""
    return (
        one(
            con,
            "SELECT 1 FROM information_schema.tables WHERE table_catalog = current_database() "
            "AND table_schema = current_schema() AND table_name = 'quarantine'",
        )
        is not None
    )


def quarantined_sql(con: Connection) -> str:
    """:data:`QUARANTINED_SQL`, or an empty set where the catalog has no such table."""
    return QUARANTINED_SQL if has_quarantine(con) else NONE_SQL


def _require_experiment(con: Connection, project: str, experiment: str) -> None:
    if not one(
        con, "SELECT 1 FROM experiments WHERE project = ? AND name = ?", [project, experiment]
    ):
        raise NotFound(
            f"no experiment {experiment!r} in project {project!r}; "
            "`miqa-nb quarantine list` names the quarantined ones"
        )


def hold(con: Connection, project: str, experiment: str, by: str, now: datetime) -> None:
    """Quarantine an existing experiment (again: its row is renewed)."""
    _require_experiment(con, project, experiment)
    con.execute(
        "DELETE FROM quarantine WHERE project = ? AND experiment = ?", [project, experiment]
    )
    con.execute("INSERT INTO quarantine VALUES (?, ?, ?, ?)", [project, experiment, by, now])


def hold_staged(con: Connection, by: str, now: datetime) -> None:
    """Quarantine every experiment of the staged import (``v_experiments``, see
    :func:`miqa_nb.exchange.apply.attach_staged`), in the caller's transaction."""
    con.execute(
        "DELETE FROM quarantine q WHERE EXISTS (SELECT 1 FROM v_experiments v "
        "WHERE v.project = q.project AND v.name = q.experiment)"
    )
    con.execute(
        "INSERT INTO quarantine SELECT DISTINCT project, name, ?, ? FROM v_experiments",
        [by, now],
    )


def forget_missing(con: Connection) -> None:
    """Drop the rows of experiments that are gone (a replacing import removed them), so
    that an experiment of the same name imported later is not hidden."""
    con.execute(
        "DELETE FROM quarantine q WHERE NOT EXISTS (SELECT 1 FROM experiments e "
        "WHERE e.project = q.project AND e.name = q.experiment)"
    )


def is_quarantined(con: Connection, project: str, experiment: str) -> bool:
    """True when the experiment is held in quarantine."""
    return (
        one(
            con,
            f"SELECT 1 FROM ({quarantined_sql(con)}) held WHERE project = ? AND experiment = ?",
            [project, experiment],
        )
        is not None
    )


def release(con: Connection, project: str, experiment: str) -> None:
    """Release a quarantined experiment; one that is not quarantined is an error naming
    those that are."""
    if not is_quarantined(con, project, experiment):
        held = [
            r[0]
            for r in con.execute(
                f"SELECT experiment FROM ({quarantined_sql(con)}) held WHERE project = ? ORDER BY 1",
                [project],
            ).fetchall()
        ]
        raise NotFound(
            f"experiment {experiment!r} of project {project!r} is not in quarantine; "
            f"quarantined there: {held or 'none'}"
        )
    con.execute(
        "DELETE FROM quarantine WHERE project = ? AND experiment = ?", [project, experiment]
    )


def listing(con: Connection, project: str | None = None) -> pd.DataFrame:
    """The quarantined experiments: project, experiment, scans, frames,
    quarantined_by, since_utc; ordered by project and experiment."""
    if not has_quarantine(con):
        return con.execute(
            "SELECT NULL::VARCHAR AS project, NULL::VARCHAR AS experiment, 0::BIGINT AS scans, "
            "0::BIGINT AS frames, NULL::VARCHAR AS quarantined_by, NULL::TIMESTAMP AS since_utc WHERE false"
        ).df()
    where, params = ("WHERE q.project = ?", [project]) if project is not None else ("", [])
    return con.execute(
        f"""SELECT q.project, q.experiment,
                   (SELECT count(*) FROM scans s
                    WHERE s.project = q.project AND s.experiment = q.experiment) AS scans,
                   (SELECT count(*) FROM frames f
                    WHERE f.project = q.project AND f.experiment = q.experiment) AS frames,
                   q.quarantined_by, q.since_utc
            FROM quarantine q
            JOIN ({QUARANTINED_SQL}) k ON k.project = q.project AND k.experiment = q.experiment
            {where} ORDER BY 1, 2""",
        params,
    ).df()
