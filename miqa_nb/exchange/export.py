"""Write the catalog out as MIQA export files, which MIQA reads as we mean them.

Everything here works on an open catalog connection inside the caller's transaction;
permissions are the :class:`~miqa_nb.catalog.Catalog`'s business.

- :func:`export_csv` writes MIQA's 16-column CSV (one row per frame, its scan's last
  decision); :func:`export_json` the nested JSON with every decision (newest first).
- File locations are written as the catalog holds them (real absolute paths, or
  ``s3://`` URLs as given), which MIQA and miqa_nb resolve to the same file wherever the
  export file is moved. With ``relative_paths`` a location under the export file's
  *grandparent* folder is written relative to that folder: MIQA resolves relative
  paths against the folder above the import file's folder (``docs/miqa-rules.md``,
  rule L2), and miqa_nb's importer falls back to that folder (with a warning) when a
  location is not under the file's own folder. A location that miqa_nb would find
  under the file's own folder first, or that it would not look for in the grandparent
  (a name starting with ``.``), stays absolute, so both read the same file.
- Experiments without notes are written with ``"notes": ""``, as MIQA writes them; its
  JSON schema refuses ``null`` there (rule J2).
- CSV is written exact by default: every value as the catalog holds it, so that an
  export imports back to the same catalog. With ``spreadsheet_safe`` a value that a
  spreadsheet would run as a formula gets a single quote in front (OWASP's rule,
  :func:`miqa_nb.exchange.limits.spreadsheet_safe`): for people who open the file in
  Excel or LibreOffice, not for importing back. JSON is exact either way (spreadsheets
  do not open it).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import duckdb

from miqa_nb.exchange import formats, limits

#: SQL rendering a decision time as :class:`~miqa_nb.core.vocabulary.Timestamp` does.
CREATED_TEXT = """CASE WHEN {t}.created IS NULL THEN NULL ELSE
    strftime({t}.created, '%Y-%m-%d %H:%M:%S')
    || CASE WHEN microsecond({t}.created) % 1000000 = 0 THEN ''
            ELSE '.' || lpad(CAST(microsecond({t}.created) % 1000000 AS VARCHAR), 6, '0') END
    || CASE WHEN {t}.created_utcoffset IS NULL THEN ''
            ELSE (CASE WHEN {t}.created_utcoffset < 0 THEN '-' ELSE '+' END)
                 || lpad(CAST(abs({t}.created_utcoffset) // 60 AS VARCHAR), 2, '0') || ':'
                 || lpad(CAST(abs({t}.created_utcoffset) % 60 AS VARCHAR), 2, '0') END
END"""


def miqa_base(path: str | os.PathLike[str]) -> str:
    """The folder MIQA resolves an import file's relative locations against: the
    folder above the file's folder (its grandparent), as a real path."""
    return os.path.realpath(os.path.dirname(os.path.dirname(os.path.abspath(path))))


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _location_sql(
    con: duckdb.DuckDBPyConnection,
    column: str,
    table: str,
    path: str | os.PathLike[str],
    relative_paths: bool,
) -> str:
    """SQL giving ``column`` of ``table`` as it is written to the export file at ``path``."""
    if not relative_paths:
        return column
    prefix = miqa_base(path).rstrip("/") + "/"
    rest = f"substr({column}, {len(prefix) + 1})"
    head = f"split_part({rest}, '/', 1)"
    under = f"starts_with({column}, {_quote(prefix)})"
    # A location whose first part exists under the export file's own folder would be
    # found there by miqa_nb (the specification's rule) and not in the grandparent:
    # such locations stay absolute. One look per distinct first part.
    folder = os.path.dirname(os.path.abspath(path))
    heads = [
        h
        for (h,) in con.execute(f"SELECT DISTINCT {head} FROM {table} WHERE {under}").fetchall()
        if h and os.path.lexists(os.path.join(folder, h))
    ]
    taken = f" AND {head} NOT IN ({', '.join(_quote(h) for h in heads)})" if heads else ""
    return (
        f"CASE WHEN {under} AND NOT starts_with({rest}, '.') AND NOT contains({rest}, '/.')"
        f"{taken} THEN {rest} ELSE {column} END"
    )


def _where(projects: Sequence[str] | None, alias: str) -> tuple[str, list[str]]:
    if projects is None:
        return "TRUE", []
    marks = ", ".join("?" for _ in projects)
    return f"{alias}.project IN ({marks})", list(projects)


def export_csv(
    con: duckdb.DuckDBPyConnection,
    path: str | os.PathLike[str],
    projects: Sequence[str] | None,
    *,
    relative_paths: bool = False,
    spreadsheet_safe: bool = False,
) -> Path:
    """Write MIQA's 16-column CSV (one row per frame, the last decision of its scan).

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        The catalog connection.
    path : path-like
        The file to write (atomically).
    projects : sequence of str or None
        The projects to export; None for all.
    relative_paths : bool
        Write locations under the file's grandparent folder relative to it (MIQA's
        rule); by default every location is absolute.
    spreadsheet_safe : bool
        Put a single quote before every value a spreadsheet would run as a formula
        (see the module's description); by default every value is written exact.
    """
    where, params = _where(projects, "f")
    location = _location_sql(con, "f.location", "frames f", path, relative_paths)
    sources = {
        "project_name": "f.project",
        "experiment_name": "f.experiment",
        "scan_name": "f.scan",
        "scan_type": "s.type",
        "frame_number": "f.frame_number",
        "file_location": location,
        "experiment_notes": "e.note",
        "subject_id": "s.subject_id",
        "session_id": "s.session_id",
        "scan_link": "s.link",
        "last_decision": "d.decision",
        "last_decision_creator": "d.creator",
        "last_decision_note": "d.note",
        "last_decision_created": CREATED_TEXT.format(t="d"),
        "identified_artifacts": "d.artifacts_present",
        "location_of_interest": "d.location",
    }
    if spreadsheet_safe:  # every text column (frame numbers are integers)
        sources = {
            c: v if c == "frame_number" else limits.safe_sql(f"({v})") for c, v in sources.items()
        }
    columns = ",\n               ".join(f"{v} AS {c}" for c, v in sources.items())
    query = f"""
        WITH last AS (
            SELECT * FROM decisions
            QUALIFY row_number() OVER (PARTITION BY project, experiment, scan ORDER BY id DESC) = 1)
        SELECT {columns}
        FROM frames f
        JOIN scans s ON s.project = f.project AND s.experiment = f.experiment AND s.name = f.scan
        JOIN experiments e ON e.project = f.project AND e.name = f.experiment
        LEFT JOIN last d ON d.project = f.project AND d.experiment = f.experiment AND d.scan = f.scan
        WHERE {where}
        ORDER BY f.project, f.experiment, f.scan, f.frame_number"""

    def copy(tmp: Path) -> None:
        con.execute(
            f"COPY ({query}) TO {_quote(str(tmp))} "
            "(FORMAT csv, HEADER true, DELIMITER ',', QUOTE '\"', ESCAPE '\"', NULLSTR '')",
            params,
        )

    return formats.write_csv(copy, path)


def export_json(
    con: duckdb.DuckDBPyConnection,
    path: str | os.PathLike[str],
    projects: Sequence[str] | None,
    *,
    relative_paths: bool = False,
) -> Path:
    """Write the nested JSON export with every decision (newest first).

    Parameters are those of :func:`export_csv`. Every key MIQA's schema requires is
    written, and no value it refuses (``docs/miqa-rules.md``, rules J1-J3).
    """
    where, params = _where(projects, "s")
    created = CREATED_TEXT.format(t="d")
    location = _location_sql(con, "location", "frames", path, relative_paths)
    scans = con.execute(
        f"""
        WITH fr AS (
            SELECT project, experiment, scan,
                   '{{' || string_agg(to_json(CAST(frame_number AS VARCHAR)) || ': '
                        || json_object('file_location', {location}),
                        ', ' ORDER BY frame_number) || '}}' AS body
            FROM frames GROUP BY ALL),
        de AS (
            SELECT project, experiment, scan,
                   '[' || string_agg(json_object('decision', decision, 'creator', creator,
                        'note', note, 'created', {created},
                        'user_identified_artifacts', artifacts_present, 'location', location),
                        ', ' ORDER BY id DESC) || ']' AS body
            FROM decisions d GROUP BY ALL)
        SELECT s.project, s.experiment, s.name AS scan,
               json_object('type', s.type, 'subject_id', s.subject_id,
                           'session_id', s.session_id, 'scan_link', s.link,
                           'frames', CAST(coalesce(fr.body, '{{}}') AS JSON),
                           'decisions', CAST(coalesce(de.body, '[]') AS JSON)) AS body
        FROM scans s
        LEFT JOIN fr ON fr.project = s.project AND fr.experiment = s.experiment AND fr.scan = s.name
        LEFT JOIN de ON de.project = s.project AND de.experiment = s.experiment AND de.scan = s.name
        WHERE {where}
        ORDER BY s.project, s.experiment, s.name""",
        params,
    ).df()
    where_e, params_e = _where(projects, "e")
    experiments = con.execute(
        "SELECT project, name AS experiment, coalesce(note, '') AS notes "
        f"FROM experiments e WHERE {where_e}",
        params_e,
    ).df()
    return formats.write_json(scans, experiments, path)
