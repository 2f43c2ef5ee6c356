"""The catalog read as typed pandas DataFrames: projects, scans, frames, decisions.

:data:`SCANS_SQL` gives each scan its frame count, its last decision and its state;
the state follows MIQA's rule, written once in :mod:`miqa_nb.core.rules` and turned
into SQL there. Categorical columns carry every possible value (all decision codes,
all states, all artifact states), so counts show zeros too. Functions over an open
catalog connection.

Experiments held in quarantine (:mod:`miqa_nb.store.quarantine`) are not under review:
:func:`scans` marks their scans (``quarantined``) so that review queues and scan lists
leave them out, and :func:`projects` counts only the others.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from miqa_nb.core.duck import Connection
from miqa_nb.core.rules import scan_state_sql
from miqa_nb.core.vocabulary import ARTIFACTS, ArtifactState, Decision, Role, ScanState
from miqa_nb.store.quarantine import quarantined_sql

if TYPE_CHECKING:  # pandas loads on first use: an import never needs it
    import pandas as pd

__all__ = ["SCANS_SQL", "decisions", "frames", "projects", "scans"]

#: SQL: each scan with its last decision and its state (MIQA's rules).
SCANS_SQL = f"""
WITH last AS (
    SELECT * FROM (
        SELECT project, experiment, scan, decision, creator, created, created_utcoffset, id,
               count(*) OVER (PARTITION BY project, experiment, scan) AS n_decisions,
               row_number() OVER (PARTITION BY project, experiment, scan ORDER BY id DESC) AS nth
        FROM decisions) d
    WHERE nth = 1),
nframes AS (
    SELECT project, experiment, scan, count(*) AS n_frames FROM frames
    GROUP BY project, experiment, scan),
tier2 AS (
    SELECT p.name AS project, u.name AS user_name FROM projects p, users u WHERE u.superuser
    UNION SELECT project, user_name FROM roles WHERE role = '{Role.TIER2.value}')
SELECT s.project, s.experiment, s.name AS scan, s.type, s.subject_id, s.session_id, s.link,
       coalesce(n.n_frames, 0) AS n_frames, coalesce(l.n_decisions, 0) AS n_decisions,
       l.decision AS last_decision, l.creator AS last_decision_creator,
       l.created AS last_decision_created,
       {scan_state_sql("l.decision", "t.user_name IS NOT NULL")} AS state
FROM scans s
LEFT JOIN nframes n ON n.project = s.project AND n.experiment = s.experiment AND n.scan = s.name
LEFT JOIN last l ON l.project = s.project AND l.experiment = s.experiment AND l.scan = s.name
LEFT JOIN tier2 t ON t.project = s.project AND t.user_name = l.creator
"""


def _where(project: str | None, alias: str = "") -> tuple[str, list[Any]]:
    if project is None:
        return "", []
    prefix = f"{alias}." if alias else ""
    return f"WHERE {prefix}project = ?", [project]


def projects(con: Connection) -> pd.DataFrame:
    """Projects with their paths and review progress; the counts (experiments, scans,
    frames, reviewed, complete) leave out the experiments held in quarantine."""
    return con.execute(
        f"""WITH q AS ({quarantined_sql(con)}),
            s AS (SELECT * FROM ({SCANS_SQL}) a WHERE NOT EXISTS (
                SELECT 1 FROM q WHERE q.project = a.project AND q.experiment = a.experiment))
            SELECT p.name AS project, p.creator, p.import_path, p.export_path,
                   p.anatomy_orientation,
                   count(DISTINCT s.experiment) AS experiments, count(s.scan) AS scans,
                   coalesce(sum(s.n_frames), 0)::BIGINT AS frames,
                   count(s.scan) FILTER (WHERE s.state <> '{ScanState.UNREVIEWED.value}')
                       AS reviewed,
                   count(s.scan) FILTER (WHERE s.state = '{ScanState.COMPLETE.value}') AS complete
            FROM projects p LEFT JOIN s ON s.project = p.name
            GROUP BY p.name, p.creator, p.import_path, p.export_path, p.anatomy_orientation
            ORDER BY p.name"""
    ).df()


def frames(con: Connection, project: str | None = None) -> pd.DataFrame:
    """One row per frame: project, experiment, scan, frame_number, location, type."""
    where, params = _where(project, "f")
    df = con.execute(
        f"""SELECT f.project, f.experiment, f.scan, f.frame_number, f.location, s.type
            FROM frames f JOIN scans s
              ON s.project = f.project AND s.experiment = f.experiment AND s.name = f.scan
            {where} ORDER BY 1, 2, 3, 4""",
        params,
    ).df()
    return df.astype({"type": "category", "frame_number": "int64"})


def scans(con: Connection, project: str | None = None) -> pd.DataFrame:
    """One row per scan, with frames, last decision and state, in MIQA's order;
    ``quarantined`` is True for the scans of an experiment held in quarantine."""
    import pandas as pd

    where, params = _where(project, "a")
    df = con.execute(
        f"""SELECT a.*, q.experiment IS NOT NULL AS quarantined FROM ({SCANS_SQL}) a
            LEFT JOIN ({quarantined_sql(con)}) q
              ON q.project = a.project AND q.experiment = a.experiment
            {where} ORDER BY 1, 2, 3""",
        params,
    ).df()
    df["last_decision"] = pd.Categorical(df["last_decision"], [d.value for d in Decision])
    df["state"] = pd.Categorical(df["state"], [s.value for s in ScanState])
    return df.astype({"type": "category", "n_frames": "int64", "n_decisions": "int64"})


def decisions(con: Connection, project: str | None = None) -> pd.DataFrame:
    """Every decision, oldest first, with one column per artifact and i/j/k in mm."""
    where, params = _where(project)
    df = con.execute(
        f"""SELECT id, project, experiment, scan, decision, creator, note, created,
                   created_utcoffset, artifacts_present, artifacts_absent, location,
                   loc_i AS i, loc_j AS j, loc_k AS k
            FROM decisions {where} ORDER BY id""",
        params,
    ).df()
    return _artifact_columns(df)


def _artifact_columns(df: pd.DataFrame) -> pd.DataFrame:
    """Add one categorical column per artifact: present / absent / not assessed."""
    import pandas as pd

    states = [s.value for s in ArtifactState]
    present = df["artifacts_present"].fillna("").astype(str)
    absent = df["artifacts_absent"].fillna("").astype(str)
    for name in ARTIFACTS:
        listed = rf"(?:^|;){name}(?:;|$)"
        column = np.where(
            present.str.contains(listed),
            ArtifactState.PRESENT.value,
            np.where(
                absent.str.contains(listed),
                ArtifactState.ABSENT.value,
                ArtifactState.NOT_ASSESSED.value,
            ),
        )
        df[name] = pd.Categorical(column, states)
    df["decision"] = pd.Categorical(df["decision"], [d.value for d in Decision])
    return df
