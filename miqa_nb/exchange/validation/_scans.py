"""Checks across rows: each scan's frames and scan-level values, each experiment's notes.

This module owns :data:`SCAN_CHECKS`, the checks that compare rows with each other.
They read frame numbers as integers and scan types in their canonical spelling, so
they run only on a file whose values passed
:data:`~miqa_nb.exchange.validation._values.VALUE_CHECKS`.

Only a scan spread over several runs (table ``split_runs``) can disagree with itself
or repeat a frame across runs: the rows of one run agree by construction.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa

from miqa_nb.core import arrow
from miqa_nb.core.duck import one
from miqa_nb.exchange.validation._battery import MAX_LISTED, Check, Finding, reads
from miqa_nb.exchange.validation._rows import SCAN_LEVEL
from miqa_nb.exchange.validation._staging import Staging

__all__ = ["SCAN_CHECKS", "experiment_notes_agree", "frames_unique", "scans_agree"]


@reads("frames", "runs", "split_runs")
def frames_unique(staging: Staging) -> Iterator[Finding]:
    """No frame number twice in a scan.

    A scan whose frames are all below 64 is cleared by a bit mask (one bit per frame
    number: as many bits as frames); only the others are grouped by frame number.
    """
    value = arrow.to_numpy(staging.numbers)
    run = arrow.to_numpy(staging.frames.column("_run"))
    starts = np.flatnonzero(np.r_[True, run[1:] != run[:-1]])
    small = value < 64
    bits = np.where(
        small, np.left_shift(np.uint64(1), np.where(small, value, 0).astype(np.uint64)), 0
    ).astype(np.uint64)
    n = np.diff(np.r_[starts, len(run)])
    big = np.add.reduceat(~small, starts)
    mask = np.bitwise_or.reduceat(bits, starts)
    # A run with a frame number twice, or of 64 and more, is looked at closely; so
    # is a scan split in several runs whose masks overlap.
    doubtful = run[starts][(big > 0) | (np.bitwise_count(mask) != n)]
    split = staging.q("SELECT _run FROM split_runs")
    con = staging.con
    if split:
        at = np.searchsorted(run[starts], np.array([r for (r,) in split], dtype=np.int64))
        con.register(
            "run_masks",
            pa.table(
                {
                    "_run": arrow.from_numpy(run[starts][at]),
                    "n": arrow.from_numpy(n[at]),
                    "big": arrow.from_numpy(big[at]),
                    "mask": arrow.from_numpy(mask[at]),
                }
            ),
        )
        try:
            more = staging.q(
                """SELECT unnest(list(r._run))
                   FROM runs r JOIN run_masks m USING (_run)
                   GROUP BY r.project_name, r.experiment_name, r.scan_name
                   HAVING sum(m.big) > 0 OR bit_count(bit_or(m.mask)) <> sum(m.n)"""
            )
        finally:
            con.unregister("run_masks")
        doubtful = np.union1d(doubtful, np.array([r for (r,) in more], dtype=np.int64))
    if not len(doubtful):
        return
    con.register("doubtful", pa.table({"_run": arrow.from_numpy(doubtful.astype(np.int64))}))
    try:
        rows = staging.q(
            """SELECT project_name, experiment_name, scan_name, frame_number::BIGINT,
                      list(f._row ORDER BY f._row), list(f._path ORDER BY f._path), count(*)
               FROM frames f SEMI JOIN doubtful d USING (_run) JOIN runs r USING (_run)
               GROUP BY 1, 2, 3, 4 HAVING count(*) > 1
               ORDER BY min(f._row) NULLS LAST LIMIT ?""",
            MAX_LISTED,
        )
    finally:
        con.unregister("doubtful")
    for project, experiment, scan, number, row_list, paths, count in rows:
        where = (
            f"rows {row_list[0]} and {row_list[1]}"
            if row_list[0] is not None
            else f"{paths[0]} and {paths[1]}"
        )
        yield staging.problem(
            "error",
            "duplicate-frame",
            f"frame {number} of scan {scan!r} (experiment {experiment!r}, project "
            f"{project!r}) appears {count} times ({where}); each frame number must be "
            "unique within a scan",
            row=row_list[0],
            path=paths[0],
            column="frame_number",
            value=str(number),
            expected="unique per scan",
            count=count,
        )


@reads("runs", "split_runs", "scan_type_map")
def scans_agree(staging: Staging) -> Iterator[Finding]:
    """A scan's rows give the same scan-level values (scan types compared in their
    canonical spelling). CSV only: a JSON file gives them once per scan."""
    if staging.kind != "csv" or not one(staging.con, "SELECT 1 FROM split_runs LIMIT 1"):
        return
    compare = {c: f'"{c}"' for c in SCAN_LEVEL} | {"scan_type": "canonical_type"}
    # min <> max finds disagreement as count(DISTINCT) > 1 would, at a fraction of the cost.
    flags = ", ".join(f'min({e}) <> max({e}) AS "{c}"' for c, e in compare.items())
    any_flag = " OR ".join(f"min({e}) <> max({e})" for e in compare.values())
    scan_values = """(SELECT r.*, coalesce(m.parsed, r.scan_type) AS canonical_type
                      FROM runs r SEMI JOIN split_runs USING (_run)
                      LEFT JOIN scan_type_map m ON r.scan_type = m.value)"""
    con = staging.con
    con.execute(
        f"""CREATE TEMP TABLE bad_scans AS
            SELECT project_name, experiment_name, scan_name, min(_row) AS first_row, {flags}
            FROM {scan_values} GROUP BY 1, 2, 3 HAVING {any_flag}
            ORDER BY first_row LIMIT {MAX_LISTED}"""
    )
    try:
        found: list[tuple[Any, ...]] = []
        for column, expr in compare.items():
            rows = staging.q(
                f"""WITH s AS {scan_values},
                    v AS (
                      SELECT s.project_name, s.experiment_name, s.scan_name, s._row,
                             {expr} AS val, s."{column}" AS raw
                      FROM s SEMI JOIN bad_scans b
                        ON s.project_name = b.project_name AND s.experiment_name = b.experiment_name
                       AND s.scan_name = b.scan_name AND b."{column}"),
                    f AS (SELECT project_name, experiment_name, scan_name,
                                 arg_min(val, _row) AS val1, arg_min(raw, _row) AS raw1,
                                 min(_row) AS row1 FROM v GROUP BY ALL)
                    SELECT f.experiment_name, f.scan_name, f.raw1, f.row1,
                           arg_min(v.raw, v._row), min(v._row)
                    FROM f JOIN v USING (project_name, experiment_name, scan_name)
                    WHERE v.val <> f.val1 GROUP BY ALL ORDER BY f.row1"""
            )
            found.extend((column, *row) for row in rows)
    finally:
        con.execute("DROP TABLE bad_scans")
    for column, experiment, scan, first, row1, second, row2 in found:
        yield staging.problem(
            "error",
            "scan-conflict",
            f"{column} of scan {scan!r} (experiment {experiment!r}) disagrees: row "
            f"{row1} has {first!r}, row {row2} has {second!r}; a scan's rows must "
            "give the same scan-level values",
            row=row2,
            column=column,
            value=second,
            expected=first,
        )


@reads("runs")
def experiment_notes_agree(staging: Staging) -> Iterator[Finding]:
    """An experiment's notes are given once or the same on every row. CSV only: a
    JSON file gives them once per experiment."""
    if staging.kind != "csv":
        return
    rows = staging.q(
        f"""SELECT project_name, experiment_name,
                   arg_min(experiment_notes, _row), min(_row),
                   arg_max(experiment_notes, _row), max(_row)
            FROM runs WHERE experiment_notes <> '' GROUP BY 1, 2
            HAVING min(experiment_notes) <> max(experiment_notes) LIMIT {MAX_LISTED}"""
    )
    for _project, experiment, first, row1, second, row2 in rows:
        yield staging.problem(
            "error",
            "experiment-conflict",
            f"experiment_notes of experiment {experiment!r} disagree: row {row1} has "
            f"{_short(first)!r}, row {row2} has {_short(second)!r}; give the note once or "
            "the same note on every row",
            row=row2,
            column="experiment_notes",
            value=second,
            expected=first,
        )


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


#: The checks across rows, in the order their problems are listed (before sorting).
SCAN_CHECKS: tuple[Check, ...] = (frames_unique, scans_agree, experiment_notes_agree)
