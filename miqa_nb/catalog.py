"""The catalog: projects -> experiments -> scans -> frames, users and roles, and every
decision ever made, in one DuckDB file.

:class:`Catalog` is the front door. It checks permissions before it changes anything,
runs every import as one transaction (the catalog is exactly as before on any failure),
exports each project it is about to replace to a timestamped backup first, and hands
data out as typed pandas DataFrames (:meth:`Catalog.frames`, :meth:`Catalog.scans`,
:meth:`Catalog.decisions`) or DuckDB SQL (:meth:`Catalog.sql`).

Decisions are an append-only log; the last decision and a scan's state are derived
(MIQA's rules, :func:`miqa_nb.core.vocabulary.scan_state`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from miqa_nb.core import permissions
from miqa_nb.core.duck import one
from miqa_nb.core.errors import ImportFileError, MiqaError, NotFound, PermissionDenied
from miqa_nb.core.permissions import Standing
from miqa_nb.core.report import Report
from miqa_nb.core.vocabulary import (
    ARTIFACTS,
    CONVENTIONS,
    ArtifactState,
    Decision,
    Location,
    Role,
    ScanState,
    ScanTypes,
    Timestamp,
    format_artifacts,
    parse_artifact,
)
from miqa_nb.exchange import apply as exchange
from miqa_nb.exchange import export
from miqa_nb.exchange.validation import check, validate
from miqa_nb.store.database import CATALOG_ENV, Store

BACKUPS_KEPT = 20
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


#: SQL: each scan with its last decision and its state (MIQA's rules).
SCANS_SQL = f"""
WITH last AS (
    SELECT project, experiment, scan, decision, creator, created, created_utcoffset, id,
           count(*) OVER (PARTITION BY project, experiment, scan) AS n_decisions
    FROM decisions
    QUALIFY row_number() OVER (PARTITION BY project, experiment, scan ORDER BY id DESC) = 1),
nframes AS (SELECT project, experiment, scan, count(*) AS n_frames FROM frames GROUP BY ALL),
tier2 AS (
    SELECT p.name AS project, u.name AS user_name FROM projects p, users u WHERE u.superuser
    UNION SELECT project, user_name FROM roles WHERE role = '{Role.TIER2.value}')
SELECT s.project, s.experiment, s.name AS scan, s.type, s.subject_id, s.session_id, s.link,
       coalesce(n.n_frames, 0) AS n_frames, coalesce(l.n_decisions, 0) AS n_decisions,
       l.decision AS last_decision, l.creator AS last_decision_creator,
       l.created AS last_decision_created,
       CASE WHEN l.decision IS NULL THEN '{ScanState.UNREVIEWED.value}'
            WHEN l.decision = '{Decision.USABLE.value}' OR t.user_name IS NOT NULL
                 THEN '{ScanState.COMPLETE.value}'
            ELSE '{ScanState.NEEDS_TIER2.value}' END AS state
FROM scans s
LEFT JOIN nframes n ON n.project = s.project AND n.experiment = s.experiment AND n.scan = s.name
LEFT JOIN last l ON l.project = s.project AND l.experiment = s.experiment AND l.scan = s.name
LEFT JOIN tier2 t ON t.project = s.project AND t.user_name = l.creator
"""


def default_catalog_path() -> Path:
    """The catalog named by ``MIQA_NB_CATALOG``, else ``./miqa.duckdb``."""
    return Path(os.environ.get(CATALOG_ENV, "miqa.duckdb"))


class Catalog:
    """A MIQA catalog in a DuckDB file.

    Parameters
    ----------
    path : path-like, optional
        The catalog file (created when missing); default ``MIQA_NB_CATALOG`` or
        ``./miqa.duckdb``.
    data_roots : list of path-like, optional
        Folders frame files may live in; default ``MIQA_NB_DATA_ROOTS``, else the
        import file's folder.
    backups_kept : int
        How many automatic pre-import backups to keep.
    clock : callable, optional
        Returns the current time (aware); for tests.
    retry_seconds : float
        How long to wait for other processes holding the file.

    Examples
    --------
    >>> cat = Catalog("lab.duckdb")                           # doctest: +SKIP
    >>> cat.add_user("ana", superuser=True)                   # doctest: +SKIP
    >>> report = cat.import_file("study.csv", by="ana")       # doctest: +SKIP
    >>> cat.scans().groupby("state").size()                   # doctest: +SKIP
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        data_roots: Iterable[str | os.PathLike[str]] | None = None,
        backups_kept: int = BACKUPS_KEPT,
        clock: Callable[[], datetime] | None = None,
        retry_seconds: float = 60.0,
    ) -> None:
        self.store = Store(
            path if path is not None else default_catalog_path(), retry_seconds=retry_seconds
        )
        self.path = self.store.path
        self.data_roots = None if data_roots is None else [Path(r) for r in data_roots]
        self.backups_kept = backups_kept
        self.clock = clock or (lambda: datetime.now(UTC))

    def __repr__(self) -> str:
        return f"Catalog({str(self.path)!r})"

    # ------------------------------------------------------------------ helpers

    def _rows(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple]:
        with self.store.connect() as con:
            return con.execute(sql, params).fetchall()

    def _df(self, sql: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
        with self.store.connect() as con:
            return con.execute(sql, params).df()

    def sql(self, query: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
        """Run DuckDB SQL over the catalog's tables and return a DataFrame.

        Tables: ``projects, experiments, scans, frames, decisions, users, roles``.
        """
        return self._df(query, params)

    # -------------------------------------------------------------- users, roles

    def users(self) -> pd.DataFrame:
        """Users and whether each is a superuser."""
        return self._df("SELECT name, superuser, created_utc FROM users ORDER BY name")

    def add_user(self, name: str, *, superuser: bool = False, by: str | None = None) -> None:
        """Add a user (a superuser's job; the first user of a new catalog adds itself).

        The first user of a catalog is always a superuser.
        """
        name = _check_name(name, "user name")
        with self.store.transaction() as con:
            (n_users,) = one(con, "SELECT count(*) FROM users") or (0,)
            if n_users:
                if by is None:
                    raise PermissionDenied("adding users needs a superuser: pass by=<superuser>")
                permissions.require_superuser(self._standing(con, by), "add users")
            if one(con, "SELECT 1 FROM users WHERE name = ?", [name]):
                raise MiqaError(f"user {name!r} exists already")
            con.execute(
                "INSERT INTO users (name, superuser) VALUES (?, ?)",
                [name, superuser or not n_users],
            )

    def standing(self, user: str, project: str | None = None) -> Standing:
        """A user's standing (superuser, creator, role) in a project, or globally."""
        with self.store.connect() as con:
            return self._standing(con, user, project)

    def _standing(
        self, con: duckdb.DuckDBPyConnection, user: str, project: str | None = None
    ) -> Standing:
        found = one(con, "SELECT superuser FROM users WHERE name = ?", [user])
        if found is None:
            raise PermissionDenied(
                f"user {user!r} is not in the catalog {self.path}; a superuser adds users "
                f"with `miqa-nb users add {user}`"
            )
        if project is None:
            return Standing(user, bool(found[0]))
        creator = one(con, "SELECT creator FROM projects WHERE name = ?", [project])
        role = one(
            con, "SELECT role FROM roles WHERE project = ? AND user_name = ?", [project, user]
        )
        return Standing(
            user,
            bool(found[0]),
            project,
            creator is not None and creator[0] == user,
            Role(role[0]) if role else None,
        )

    def set_role(self, project: str, user: str, role: Role | str | None, *, by: str) -> None:
        """Give ``user`` a role in ``project`` (None removes it): its creator or a superuser."""
        parsed = None if role is None else Role.parse(str(role))
        with self.store.transaction() as con:
            self._require_project(con, project)
            permissions.require_project_admin(self._standing(con, by, project), "change roles")
            self._standing(con, user)  # the user must exist
            con.execute("DELETE FROM roles WHERE project = ? AND user_name = ?", [project, user])
            if parsed is not None:
                con.execute("INSERT INTO roles VALUES (?, ?, ?)", [project, user, parsed.value])

    def roles(self, project: str | None = None) -> pd.DataFrame:
        """Who holds which role, per project (creators included as role 'creator')."""
        where = "" if project is None else "WHERE project = ?"
        return self._df(
            f"""SELECT * FROM (
                  SELECT project, user_name AS user, role FROM roles
                  UNION ALL SELECT name, creator, 'creator' FROM projects WHERE creator IS NOT NULL)
                {where} ORDER BY 1, 2""",
            None if project is None else [project],
        )

    # ------------------------------------------------------------------ projects

    def _require_project(self, con: duckdb.DuckDBPyConnection, project: str) -> None:
        if not one(con, "SELECT 1 FROM projects WHERE name = ?", [project]):
            known = [r[0] for r in con.execute("SELECT name FROM projects ORDER BY 1").fetchall()]
            raise NotFound(f"no project {project!r} in the catalog; projects: {known}")

    def create_project(
        self,
        name: str,
        *,
        by: str,
        import_path: str | None = None,
        export_path: str | None = None,
        anatomy_orientation: str = "neurological",
    ) -> None:
        """Create an empty project (superusers); ``by`` becomes its creator."""
        name = _check_name(name, "project name")
        if anatomy_orientation not in CONVENTIONS:
            raise MiqaError(
                f"anatomy_orientation must be one of {CONVENTIONS}; {anatomy_orientation!r} was provided"
            )
        with self.store.transaction() as con:
            permissions.require_superuser(self._standing(con, by), "create projects")
            if one(con, "SELECT 1 FROM projects WHERE name = ?", [name]):
                raise MiqaError(f"project {name!r} exists already")
            con.execute(
                "INSERT INTO projects (name, creator, import_path, export_path, anatomy_orientation) "
                "VALUES (?, ?, ?, ?, ?)",
                [name, by, import_path, export_path, anatomy_orientation],
            )

    def set_project_paths(
        self,
        project: str,
        *,
        by: str,
        import_path: str | None = None,
        export_path: str | None = None,
    ) -> None:
        """Change a project's import/export paths: its creator or a superuser."""
        with self.store.transaction() as con:
            self._require_project(con, project)
            permissions.require_project_admin(self._standing(con, by, project), "change the paths")
            for column, value in (("import_path", import_path), ("export_path", export_path)):
                if value is not None:
                    con.execute(
                        f"UPDATE projects SET {column} = ? WHERE name = ?",
                        [_absolute(value, column), project],
                    )

    def global_paths(self) -> dict[str, str | None]:
        """The global import and export paths."""
        found = dict(self._rows("SELECT key, value FROM meta WHERE key LIKE 'global_%'"))
        return {k: found.get(f"global_{k}") for k in ("import_path", "export_path")}

    def set_global_paths(
        self, *, by: str, import_path: str | None = None, export_path: str | None = None
    ) -> None:
        """Change the global import/export paths: superusers."""
        with self.store.transaction() as con:
            permissions.require_superuser(self._standing(con, by), "change the global paths")
            for key, value in (("import_path", import_path), ("export_path", export_path)):
                if value is not None:
                    con.execute(
                        "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                        [f"global_{key}", _absolute(value, key)],
                    )

    def projects(self) -> pd.DataFrame:
        """Projects with their paths and review progress."""
        return self._df(
            f"""WITH s AS ({SCANS_SQL})
                SELECT p.name AS project, p.creator, p.import_path, p.export_path,
                       p.anatomy_orientation,
                       count(DISTINCT s.experiment) AS experiments, count(s.scan) AS scans,
                       coalesce(sum(s.n_frames), 0)::BIGINT AS frames,
                       count(s.scan) FILTER (s.state <> '{ScanState.UNREVIEWED.value}') AS reviewed,
                       count(s.scan) FILTER (s.state = '{ScanState.COMPLETE.value}') AS complete
                FROM projects p LEFT JOIN s ON s.project = p.name
                GROUP BY ALL ORDER BY p.name"""
        )

    def scan_types(self) -> ScanTypes:
        """The scan types this catalog accepts (MIQA's, plus its own)."""
        rows = self._rows("SELECT name, alias_of FROM scan_types")
        return ScanTypes(
            extra=tuple(n for n, a in rows if a is None),
            aliases={n: a for n, a in rows if a is not None},
        )

    def add_scan_type(self, name: str, *, alias_of: str | None = None, by: str) -> str:
        """Accept a new scan type, or another name for a type (superusers); returns the
        type the name means.

        Names match case-insensitively, so a name that already means a type is refused
        unless it means that same type (then nothing changes). Scans already imported
        keep their types; later imports and validations accept the new name.
        """
        name = _check_name(name, "scan type")
        with self.store.transaction() as con:
            permissions.require_superuser(self._standing(con, by), "add scan types")
            known = self.scan_types()  # nested calls share the open connection
            target = None if alias_of is None else known.parse(alias_of)
            means = known.known(name)
            if means is not None:
                if (means == target) if target else (means.lower() == name.lower()):
                    return means  # already so
                what = "the scan type" if means.lower() == name.lower() else "a name of"
                raise MiqaError(
                    f"{name!r} is already {what} {means!r} (names match in any case), and a "
                    "name means one type only; choose another name"
                )
            con.execute("INSERT INTO scan_types VALUES (?, ?)", [name, target])
        return target or name

    def remove_scan_type(self, name: str, *, by: str) -> list[str]:
        """Remove a scan type or alias this catalog added (superusers); a type goes with
        its aliases. MIQA's own types and names stay, and so does a type that scans have.
        Returns the names removed."""
        with self.store.transaction() as con:
            permissions.require_superuser(self._standing(con, by), "remove scan types")
            found = one(
                con, "SELECT name, alias_of FROM scan_types WHERE lower(name) = lower(?)", [name]
            )
            if found is None:
                builtin = self.scan_types().known(name) is not None
                raise MiqaError(
                    f"scan type {name!r} is one of MIQA's names; it cannot be removed"
                    if builtin
                    else f"scan type {name!r} is not one this catalog added (see its scan_types())"
                )
            stored, alias_of = found
            if alias_of is None:
                (used,) = one(con, "SELECT count(*) FROM scans WHERE type = ?", [stored]) or (0,)
                if used:
                    raise MiqaError(
                        f"{used} scan(s) have type {stored!r}; import them with another type "
                        "(or remove their projects) before removing it"
                    )
            removed = [
                r[0]
                for r in con.execute(
                    "DELETE FROM scan_types WHERE name = ? OR alias_of = ? RETURNING name",
                    [stored, stored],
                ).fetchall()
            ]
        return sorted(removed, key=lambda n: (n != stored, n.lower()))

    # ----------------------------------------------------------- import, export

    def validate(
        self, path: str | os.PathLike[str], *, project: str | None = None, progress: bool = False
    ) -> Report:
        """Check an import file against this catalog's vocabulary; write nothing."""
        return check(
            path,
            roots=self.data_roots,
            scan_types=self.scan_types(),
            project=project,
            progress=progress,
        )

    def import_file(
        self,
        path: str | os.PathLike[str],
        *,
        by: str,
        project: str | None = None,
        mode: str = "replace",
        dry_run: bool = False,
        progress: bool = False,
    ) -> Report:
        """Import a MIQA CSV or JSON file in one transaction.

        Parameters
        ----------
        path : path-like
        by : str
            The user importing. A project import (``project`` given) needs a reviewer
            of the project, its creator or a superuser; a global import (every project
            in the file) needs a superuser, as does creating a new project.
        project : str, optional
            Import only this project; rows of other projects are errors.
        mode : {'replace', 'append'}
            ``replace``: the file's projects take exactly the file's state (each is
            backed up first). ``append``: add what is new, keep what exists, and report
            conflicts.
        dry_run : bool
            Report what would be added, removed and changed; write nothing.

        Returns
        -------
        Report
            Problems (warnings) and ``changes``.

        Raises
        ------
        ImportFileError
            The file has errors (``exc.report`` lists them all); nothing was written.
        PermissionDenied
            ``by`` may not import this; nothing was written.
        """
        if mode not in exchange.MODES:
            raise MiqaError(f"mode must be one of {exchange.MODES}; {mode!r} was provided")
        with self.store.connect() as con:  # fail fast on permissions, before reading
            self._require_import(con, by, project)
            scan_types = self.scan_types()  # nested calls share the open connection
        staged = validate(
            path,
            roots=self.data_roots,
            scan_types=scan_types,
            project=project,
            progress=progress,
        )
        try:
            report = staged.report
            if not report.ok:
                raise ImportFileError(
                    f"{path}: {len(report.errors)} problem(s); nothing was imported\n{report}",
                    report,
                )
            with self.store.connect() as con:
                self._require_import(con, by, project, staged.projects)
                exchange.attach_staged(con, staged)
                try:
                    report.changes = exchange.diff(con, mode)
                    if mode == "append":
                        for level, key, detail in exchange.conflicts(con):
                            report.add(
                                "warning",
                                "conflict",
                                f"{level[:-1]} {key} differs from the catalog, which keeps its "
                                f"value ({detail}); use mode='replace' to take the file's",
                            )
                    if dry_run:
                        return report
                    if mode == "replace":
                        self._backup(con, staged.projects)
                    con.execute("BEGIN TRANSACTION")
                    try:
                        exchange.apply(con, mode, by)
                        con.execute("COMMIT")
                    except BaseException:
                        con.execute("ROLLBACK")
                        raise
                finally:
                    exchange.detach_staged(con, staged)
            return report
        finally:
            staged.close()

    def _require_import(
        self,
        con: duckdb.DuckDBPyConnection,
        by: str,
        project: str | None,
        projects_in_file: Sequence[str] = (),
    ) -> None:
        if project is None:
            permissions.require_superuser(self._standing(con, by), "run a global import")
            return
        exists = one(con, "SELECT 1 FROM projects WHERE name = ?", [project])
        if exists:
            permissions.require_transfer(self._standing(con, by, project), "import")
        else:
            permissions.require_superuser(self._standing(con, by), f"create project {project!r}")

    def export_file(
        self,
        path: str | os.PathLike[str],
        *,
        by: str,
        project: str | None = None,
        relative_paths: bool = False,
    ) -> Path:
        """Export one project (its reviewers, creator, superusers) or all (superusers).

        ``.json`` writes JSON with every decision; anything else MIQA's 16-column CSV.
        The file is written atomically. File locations are absolute; with
        ``relative_paths`` those under the file's grandparent folder are written
        relative to it, as MIQA resolves them (see :mod:`miqa_nb.exchange.export`).
        """
        with self.store.connect() as con:
            if project is None:
                permissions.require_superuser(self._standing(con, by), "run a global export")
            else:
                self._require_project(con, project)
                permissions.require_transfer(self._standing(con, by, project), "export")
            return self._export(con, path, None if project is None else [project], relative_paths)

    @staticmethod
    def _export(
        con: duckdb.DuckDBPyConnection,
        path: str | os.PathLike[str],
        projects: Sequence[str] | None,
        relative_paths: bool = False,
    ) -> Path:
        if str(path).lower().endswith(".json"):
            return export.export_json(con, path, projects, relative_paths=relative_paths)
        return export.export_csv(con, path, projects, relative_paths=relative_paths)

    def import_project(
        self, project: str, *, by: str, mode: str = "replace", dry_run: bool = False
    ) -> Report:
        """Import a project from its ``import_path``."""
        path = self._project_path(project, "import_path")
        return self.import_file(path, by=by, project=project, mode=mode, dry_run=dry_run)

    def export_project(self, project: str, *, by: str) -> Path:
        """Export a project to its ``export_path``."""
        return self.export_file(self._project_path(project, "export_path"), by=by, project=project)

    def import_global(self, *, by: str, mode: str = "replace", dry_run: bool = False) -> Report:
        """Import every project in the global import file (superusers)."""
        path = self.global_paths()["import_path"]
        if not path:
            raise MiqaError("no global import path is set; set it with set_global_paths()")
        return self.import_file(path, by=by, mode=mode, dry_run=dry_run)

    def export_global(self, *, by: str) -> Path:
        """Export every project to the global export file (superusers)."""
        path = self.global_paths()["export_path"]
        if not path:
            raise MiqaError("no global export path is set; set it with set_global_paths()")
        return self.export_file(path, by=by)

    def _project_path(self, project: str, column: str) -> str:
        found = self._rows(f"SELECT {column} FROM projects WHERE name = ?", [project])
        if not found:
            raise NotFound(f"no project {project!r} in the catalog")
        if not found[0][0]:
            raise MiqaError(
                f"project {project!r} has no {column}; its creator or a superuser sets it"
            )
        return str(found[0][0])

    @property
    def backup_dir(self) -> Path:
        """Where automatic pre-import backups go (beside the catalog)."""
        return self.path.with_name(self.path.stem + "-backups")

    def _backup(self, con: duckdb.DuckDBPyConnection, projects: Sequence[str]) -> Path | None:
        existing = [
            p for p in projects if one(con, "SELECT 1 FROM scans WHERE project = ? LIMIT 1", [p])
        ]
        if not existing:
            return None
        stamp = self.clock().strftime("%Y%m%dT%H%M%S%fZ")
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", "+".join(existing))[:80]
        target = self.backup_dir / f"{stamp}-{slug}.json"
        export.export_json(con, target, existing)
        kept = sorted(self.backup_dir.glob("*.json"))
        for old in kept[: max(0, len(kept) - self.backups_kept)]:
            old.unlink()
        return target

    def backups(self) -> list[Path]:
        """Automatic backups, oldest first."""
        return sorted(self.backup_dir.glob("*.json")) if self.backup_dir.exists() else []

    # ----------------------------------------------------------------- decisions

    def record_decision(
        self,
        project: str,
        experiment: str,
        scan: str,
        decision: Decision | str,
        *,
        by: str,
        note: str = "",
        artifacts: Mapping[str, ArtifactState | str] | Iterable[str] = (),
        location: Location | tuple[float, float, float] | None = None,
    ) -> int:
        """Append a decision to a scan's log; return its id.

        ``artifacts`` maps names to present/absent/not assessed, or lists those present.
        A decision other than ``U`` needs a note or at least one artifact present.
        """
        code = decision if isinstance(decision, Decision) else Decision.parse(decision)
        states = _artifact_states(artifacts)
        present = [a for a, s in states.items() if s == ArtifactState.PRESENT]
        absent = [a for a, s in states.items() if s == ArtifactState.ABSENT]
        if code != Decision.USABLE and not note.strip() and not present:
            raise MiqaError(
                f"a {code.value!r} decision needs a note or at least one artifact marked present"
            )
        if location is not None and not isinstance(location, Location):
            location = Location.from_mm(*location)
        when = Timestamp.from_datetime(self.clock().replace(microsecond=0))
        with self.store.transaction() as con:
            permissions.require_decision(self._standing(con, by, project), code)
            if not one(
                con,
                "SELECT 1 FROM scans WHERE project = ? AND experiment = ? AND name = ?",
                [project, experiment, scan],
            ):
                raise NotFound(
                    f"no scan {scan!r} in experiment {experiment!r} of project {project!r}"
                )
            (new_id,) = one(con, "SELECT coalesce(max(id), 0) + 1 FROM decisions")  # type: ignore[misc]
            con.execute(
                "INSERT INTO decisions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    new_id,
                    project,
                    experiment,
                    scan,
                    code.value,
                    by,
                    note or None,
                    when.wall,
                    when.utcoffset_minutes,
                    format_artifacts(present) or None,
                    format_artifacts(absent) or None,
                    None if location is None else location.text,
                    None if location is None else location.i,
                    None if location is None else location.j,
                    None if location is None else location.k,
                ],
            )
        return int(new_id)

    # ------------------------------------------------------------ claims, places

    def claim(
        self,
        project: str,
        experiment: str,
        *,
        by: str,
        minutes: float = CLAIM_MINUTES,
        take_over: bool = False,
    ) -> Claim:
        """Claim an experiment for review for ``minutes`` (MIQA locks it instead).

        Renewing one's own claim extends it. A live claim of another user is not
        taken: the returned :class:`Claim` names its holder (``claim.mine`` is False),
        unless ``take_over`` is set by a superuser. Expired claims are free.
        """
        now = self._utcnow()
        with self.store.transaction() as con:
            standing = self._standing(con, by, project)
            permissions.require_read(standing)
            held = one(
                con,
                "SELECT user_name, expires_utc FROM claims WHERE project = ? AND experiment = ?",
                [project, experiment],
            )
            if held is not None and held[0] != by and held[1] > now:
                if not take_over:
                    return Claim(project, experiment, held[0], held[1], mine=False)
                permissions.require_superuser(standing, "take over another reviewer's claim")
            expires = now + timedelta(minutes=minutes)
            con.execute(
                "INSERT OR REPLACE INTO claims VALUES (?, ?, ?, ?)",
                [project, experiment, by, expires],
            )
            return Claim(project, experiment, by, expires, mine=True)

    def release(self, project: str, experiment: str, *, by: str) -> None:
        """Give up one's claim on an experiment."""
        with self.store.connect() as con:
            con.execute(
                "DELETE FROM claims WHERE project = ? AND experiment = ? AND user_name = ?",
                [project, experiment, by],
            )

    def claims(self, project: str | None = None) -> pd.DataFrame:
        """Live claims: project, experiment, user, expires_utc."""
        where, params = self._where(project)
        clause = ("AND " + where[len("WHERE ") :]) if where else ""
        return self._df(
            f"SELECT project, experiment, user_name AS user, expires_utc FROM claims "
            f"WHERE expires_utc > ? {clause} ORDER BY 1, 2",
            [self._utcnow(), *params],
        )

    def set_place(self, project: str, experiment: str, scan: str, *, by: str) -> None:
        """Remember the scan ``by`` has open in ``project`` (to resume there)."""
        with self.store.connect() as con:
            con.execute(
                "INSERT OR REPLACE INTO positions VALUES (?, ?, ?, ?, ?)",
                [by, project, experiment, scan, self._utcnow()],
            )

    def place(self, project: str, *, by: str) -> tuple[str, str] | None:
        """The (experiment, scan) ``by`` last had open in ``project``, if any."""
        found = self._rows(
            "SELECT experiment, scan FROM positions WHERE user_name = ? AND project = ?",
            [by, project],
        )
        return (found[0][0], found[0][1]) if found else None

    def _utcnow(self) -> datetime:
        return self.clock().astimezone(UTC).replace(tzinfo=None)

    # ---------------------------------------------------------------- DataFrames

    def _where(self, project: str | None, alias: str = "") -> tuple[str, list[Any]]:
        if project is None:
            return "", []
        prefix = f"{alias}." if alias else ""
        return f"WHERE {prefix}project = ?", [project]

    def frames(self, project: str | None = None) -> pd.DataFrame:
        """One row per frame: project, experiment, scan, frame_number, location, type."""
        where, params = self._where(project, "f")
        df = self._df(
            f"""SELECT f.project, f.experiment, f.scan, f.frame_number, f.location, s.type
                FROM frames f JOIN scans s
                  ON s.project = f.project AND s.experiment = f.experiment AND s.name = f.scan
                {where} ORDER BY 1, 2, 3, 4""",
            params,
        )
        return df.astype({"type": "category", "frame_number": "int64"})

    def scans(self, project: str | None = None) -> pd.DataFrame:
        """One row per scan, with frames, last decision and state, in MIQA's order."""
        where, params = self._where(project)
        df = self._df(f"SELECT * FROM ({SCANS_SQL}) {where} ORDER BY 1, 2, 3", params)
        df["last_decision"] = pd.Categorical(df["last_decision"], [d.value for d in Decision])
        df["state"] = pd.Categorical(df["state"], [s.value for s in ScanState])
        return df.astype({"type": "category", "n_frames": "int64", "n_decisions": "int64"})

    def decisions(self, project: str | None = None) -> pd.DataFrame:
        """Every decision, oldest first, with one column per artifact and i/j/k in mm."""
        where, params = self._where(project)
        df = self._df(
            f"""SELECT id, project, experiment, scan, decision, creator, note, created,
                       created_utcoffset, artifacts_present, artifacts_absent, location,
                       loc_i AS i, loc_j AS j, loc_k AS k
                FROM decisions {where} ORDER BY id""",
            params,
        )
        return _artifact_columns(df)

    def summary(self) -> str:
        """A few lines a person reads: projects, scans, review progress."""
        projects = self.projects()
        if projects.empty:
            return f"{self.path}: no projects yet"
        lines = [f"{self.path}: {len(projects)} project(s)"]
        for row in projects.itertuples():
            lines.append(
                f"  {row.project}: {row.experiments} experiments, {row.scans} scans, "
                f"{row.frames} frames; {row.reviewed}/{row.scans} reviewed, {row.complete} complete"
            )
        return "\n".join(lines)


def _artifact_states(
    artifacts: Mapping[str, ArtifactState | str] | Iterable[str],
) -> dict[str, ArtifactState]:
    if isinstance(artifacts, Mapping):
        return {parse_artifact(k): ArtifactState(v) for k, v in artifacts.items()}
    return {parse_artifact(a): ArtifactState.PRESENT for a in artifacts}


def _artifact_columns(df: pd.DataFrame) -> pd.DataFrame:
    """Add one categorical column per artifact: present / absent / not assessed."""
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


def _check_name(name: str, what: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise MiqaError(f"{what} must be a non-empty string; {name!r} was provided")
    if re.search(r"[\x00-\x1f\x7f]", name) or len(name) > 255:
        raise MiqaError(f"{what} must be one line of at most 255 characters; {name!r} was provided")
    return name.strip()


def _absolute(value: str, what: str) -> str:
    if not os.path.isabs(value):
        raise MiqaError(f"{what} must be an absolute path on this machine; {value!r} was provided")
    return os.path.normpath(value)
