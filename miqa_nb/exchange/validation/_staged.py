"""What validation hands on: :class:`Staged`, the report and the validated tables.

This module owns the output of a clean validation: the tables ``v_experiments``,
``v_scans`` and ``v_decisions`` in the catalog's column layout (empty text becomes
NULL, vocabulary in its canonical spelling), built from the staged tables, and the
frames in Arrow (a million rows are not copied into the staging database), ready to
be written in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from miqa_nb.core import arrow
from miqa_nb.core.duck import one
from miqa_nb.core.report import Report
from miqa_nb.exchange import locations
from miqa_nb.exchange.validation._staging import Staging

__all__ = ["Staged", "build", "counts"]


@dataclass
class Staged:
    """A validated import: the report and, when it has no error, the staged tables."""

    report: Report
    con: duckdb.DuckDBPyConnection
    projects: list[str] = field(default_factory=list)
    #: The frames, in Arrow (a million rows are not copied into the staging database):
    #: locations in parts (see :class:`locations.Resolved`).
    frames: pa.Table | None = None
    #: The other levels (experiments, scans, decisions), in the catalog's layout.
    tables: dict[str, pa.Table] = field(default_factory=dict)

    def table(self, level: str) -> pa.Table:
        """A staged level as Arrow (not frames: see :meth:`attach_frames`)."""
        return self.tables[level]

    def attach_frames(self, con: duckdb.DuckDBPyConnection, name: str = "v_frames") -> None:
        """View ``name`` on ``con``: the frames in the catalog's layout (joined as read)."""
        assert self.frames is not None
        con.register(f"{name}_parts", self.frames)
        con.execute(
            f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT project, experiment, scan, "
            f"frame_number, {locations.PATH_SQL.format(value='file_location')} AS location "
            f"FROM {name}_parts"
        )

    def detach_frames(self, con: duckdb.DuckDBPyConnection, name: str = "v_frames") -> None:
        """Drop the view :meth:`attach_frames` made."""
        con.execute(f"DROP VIEW IF EXISTS {name}")
        con.unregister(f"{name}_parts")

    def close(self) -> None:
        """Free the staging database."""
        self.frames = None
        self.tables = {}
        self.con.close()


def build(staging: Staging, staged: Staged) -> None:
    """Give ``staged`` the validated tables (after a clean report), and view
    ``v_frames`` on the staging database."""
    staged.tables = _tables(staging.con)
    staged.frames = _frames(staging)
    staged.attach_frames(staging.con)


def _tables(con: duckdb.DuckDBPyConnection) -> dict[str, pa.Table]:
    """The validated tables, in the catalog's layout (empty text becomes NULL), as Arrow
    (each registered on ``con`` as ``v_<level>``)."""
    tables: dict[str, pa.Table] = {}

    def build(level: str, select: str) -> None:
        tables[level] = con.sql(select).to_arrow_table()
        con.register(f"v_{level}", tables[level])

    build(
        "experiments",
        """SELECT project_name AS project, experiment_name AS name,
                  nullif(max(experiment_notes), '') AS note
           FROM runs GROUP BY 1, 2""",
    )
    build(
        "scans",
        """SELECT project_name AS project, experiment_name AS experiment, scan_name AS name,
                  m.parsed AS type, nullif(subject_id, '') AS subject_id,
                  nullif(session_id, '') AS session_id, nullif(scan_link, '') AS link
           FROM runs r JOIN scan_type_map m ON r.scan_type = m.value
           WHERE r._run NOT IN (SELECT _run FROM split_runs WHERE NOT first)""",
    )
    absent = "NULL::VARCHAR"
    build(
        "decisions",
        f"""SELECT project_name AS project, experiment_name AS experiment, scan_name AS scan,
                  -_order AS seq, dm.parsed AS decision,
                  nullif(last_decision_creator, '') AS creator,
                  nullif(last_decision_note, '') AS note,
                  t.wall AS created, t.utcoffset AS created_utcoffset,
                  nullif(am.parsed, '') AS artifacts_present, {absent} AS artifacts_absent,
                  nullif(location_of_interest, '') AS location,
                  lm.i AS loc_i, lm.j AS loc_j, lm.k AS loc_k
           FROM decisions d
           JOIN decision_map dm ON d.last_decision = dm.value
           LEFT JOIN artifact_map am ON d.identified_artifacts = am.value
           LEFT JOIN time_map t ON d.last_decision_created = t.value
           LEFT JOIN location_map lm ON d.location_of_interest = lm.value""",
    )
    return tables


def _frames(staging: Staging) -> pa.Table:
    """``v_frames``: the frames in the catalog's layout (after a clean report)."""
    names = staging.con.sql(
        "SELECT project_name, experiment_name, scan_name FROM runs ORDER BY _run"
    ).to_arrow_table()
    frames = staging.frames
    # Plain text, not dictionaries over the runs: DuckDB inserts text faster.
    run = arrow.from_numpy(arrow.to_numpy(frames.column("_run")).astype(np.int32))
    return pa.table(
        {
            "project": names.column(0).combine_chunks().take(run),
            "experiment": names.column(1).combine_chunks().take(run),
            "scan": names.column(2).combine_chunks().take(run),
            "frame_number": pc.cast(staging.numbers, pa.int32()),
            "file_location": frames.column("file_location"),
            **staging.resolved.columns(),
        }
    )


def counts(con: duckdb.DuckDBPyConnection, staged: Staged) -> dict[str, int]:
    """What the file holds: per level after a clean report, else its rows."""
    if staged.frames is None:
        (rows,) = one(con, "SELECT sum(_n)::BIGINT FROM runs") or (0,)
        return {"rows": rows}
    scans = staged.tables["scans"]
    return {
        "projects": len(pc.unique(scans.column("project"))),
        "experiments": staged.tables["experiments"].num_rows,
        "scans": scans.num_rows,
        "frames": staged.frames.num_rows,
        "decisions": staged.tables["decisions"].num_rows,
    }
