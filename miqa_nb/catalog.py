"""The catalog: projects -> experiments -> scans -> frames, users and roles, and every
decision ever made, in one DuckDB file.

:class:`Catalog` is the front door, and a thin one. Each method opens the catalog
(:class:`~miqa_nb.store.database.Store`: one transaction for every change), checks
permissions (:mod:`miqa_nb.core.permissions`) and MIQA's rules (:mod:`miqa_nb.core.rules`)
before it changes anything, and calls the :mod:`miqa_nb.store` function that does the
work: ``users``, ``projects``, ``scan_types``, ``claims``, ``decisions``, ``queries``.
It runs every import as one transaction (the catalog is exactly as before on any
failure), exports each project it is about to replace to a timestamped backup first,
and hands data out as typed pandas DataFrames (:meth:`Catalog.frames`,
:meth:`Catalog.scans`, :meth:`Catalog.decisions`) or DuckDB SQL (:meth:`Catalog.sql`).

Decisions are an append-only log; the last decision and a scan's state are derived
(MIQA's rules, :mod:`miqa_nb.core.rules`).
"""

from __future__ import annotations

import contextlib
import copy
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from miqa_nb.core import permissions
from miqa_nb.core.duck import Connection
from miqa_nb.core.errors import ImportFileError, MiqaError, PermissionDenied
from miqa_nb.core.permissions import Standing
from miqa_nb.core.report import Report
from miqa_nb.core.rules import require_note_or_artifact, require_plain_note
from miqa_nb.core.vocabulary import (
    CONVENTIONS,
    ArtifactState,
    Decision,
    Location,
    Role,
    ScanTypes,
    Timestamp,
)
from miqa_nb.exchange import apply as exchange
from miqa_nb.exchange import export
from miqa_nb.exchange.validation import check, validate
from miqa_nb.store import (
    claims,
    credentials,
    decisions,
    projects,
    queries,
    scan_types,
    user_settings,
    users,
)
from miqa_nb.store import quarantine as quarantines
from miqa_nb.store.claims import CLAIM_MINUTES, MAX_CLAIM_MINUTES, Claim
from miqa_nb.store.database import CATALOG_ENV, Store, catalog_file, catalog_location
from miqa_nb.store.names import check_name
from miqa_nb.store.postgres import PgStore
from miqa_nb.store.queries import SCANS_SQL

if TYPE_CHECKING:  # pandas loads on first use: an import never needs it
    import pandas as pd

__all__ = [
    "BACKUPS_KEPT",
    "CLAIM_MINUTES",
    "MAX_CLAIM_MINUTES",
    "SCANS_SQL",
    "Catalog",
    "Claim",
    "catalog_file",
    "catalog_location",
    "default_catalog_path",
]

BACKUPS_KEPT = 20


def _root(root: str | os.PathLike[str]) -> Path | str:
    """A data root: a folder, or an ``s3://bucket[/prefix]`` kept as text (a Path would
    merge its '//')."""
    text = os.fspath(root)
    return text if text[:5].lower() == "s3://" else Path(text)


def default_catalog_path() -> Path | str:
    """The catalog named by ``MIQA_NB_CATALOG`` (a file, or a ``postgresql://`` URL),
    else ``./miqa.duckdb``."""
    return catalog_location(os.environ.get(CATALOG_ENV, "miqa.duckdb"))


#: The tables :meth:`Catalog.copy_to` copies, besides ``meta`` (every table there is).
COPIED_TABLES = (
    "users",
    "projects",
    "roles",
    "scan_types",
    "experiments",
    "scans",
    "frames",
    "decisions",
    "claims",
    "positions",
    "user_settings",
    "passwords",
    "api_tokens",
    "signin_links",
    "quarantine",
)

#: The tables :meth:`Catalog.sql` reads on PostgreSQL: all of them, as on a file.
SQL_TABLES = ("meta", *COPIED_TABLES)


def _require_reading(query: str, name: str) -> None:
    """Refuse a statement other than a query: on PostgreSQL :meth:`Catalog.sql` runs in
    DuckDB over a copy of the tables, where a change would be lost."""
    try:
        statements = duckdb.extract_statements(query)
    except duckdb.Error as exc:
        raise MiqaError(f"cannot read the SQL {query[:80]!r}: {exc}") from exc
    for statement in statements:
        if statement.type != duckdb.StatementType.SELECT:
            raise MiqaError(
                f"Catalog.sql only reads the catalog {name} (it runs DuckDB SQL over a copy "
                f"of its tables), and {query[:80]!r} is a {statement.type.name} statement: "
                "change the catalog through Catalog's methods, or with psql"
            )


class Catalog:
    """A MIQA catalog in a DuckDB file, or in a PostgreSQL database.

    Parameters
    ----------
    path : path-like or str, optional
        The catalog file (created when missing), or a PostgreSQL database's URL
        (``postgresql://user:password@host:port/database``; its tables are made when
        missing; see :mod:`miqa_nb.store.postgres`); default ``MIQA_NB_CATALOG`` or
        ``./miqa.duckdb``.
    data_roots : list of path-like, optional
        Folders frame files may live in, and ``s3://bucket[/prefix]`` prefixes objects
        may live in; default ``MIQA_NB_DATA_ROOTS``, else the import file's folder.
    backups_kept : int
        How many automatic pre-import backups to keep.
    clock : callable, optional
        Returns the current time (aware); for tests.
    retry_seconds : float
        How long to wait for other processes holding the file.

    Examples
    --------
    A catalog in a temporary folder, and a study of two scans imported into it:

    >>> import pathlib, tempfile
    >>> folder = tempfile.TemporaryDirectory()
    >>> lab = pathlib.Path(folder.name)
    >>> cat = Catalog(lab / "lab.duckdb", data_roots=[lab])
    >>> cat.add_user("ana", superuser=True)
    >>> for name in ("s1.nii.gz", "s2.nii.gz"):
    ...     (lab / name).touch()
    >>> _ = (lab / "study.csv").write_text(
    ...     "project_name,experiment_name,scan_name,scan_type,frame_number,file_location\\n"
    ...     "P,E1,S1,T1,0,s1.nii.gz\\n"
    ...     "P,E1,S2,T2,0,s2.nii.gz\\n"
    ... )
    >>> report = cat.import_file(lab / "study.csv", by="ana")
    >>> report.problems, report.counts["scans"]
    ([], 2)
    >>> cat.scans().groupby("state").size().to_dict()
    {'unreviewed': 2}
    >>> folder.cleanup()
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
        location = catalog_location(path) if path is not None else default_catalog_path()
        self.store: Store | PgStore
        if isinstance(location, str):
            self.store = PgStore(location, retry_seconds=retry_seconds)
        else:
            self.store = Store(location, retry_seconds=retry_seconds)
        #: The catalog file (on PostgreSQL: a name in its local folder, beside which
        #: backups and converted scans go; see :mod:`miqa_nb.store.postgres`).
        self.path = self.store.path
        #: What opens this catalog again: the file's path, or the database's URL.
        self.location = self.store.location
        self.data_roots = None if data_roots is None else [_root(r) for r in data_roots]
        self.backups_kept = backups_kept
        self.clock = clock or (lambda: datetime.now(UTC))

    def __repr__(self) -> str:
        return f"Catalog({self.name!r})"

    @property
    def name(self) -> str:
        """The catalog as shown to people: the file's path, or the URL without password."""
        return getattr(self.store, "shown", str(self.path))

    def with_data_roots(self, data_roots: Iterable[str | os.PathLike[str]]) -> Catalog:
        """This catalog with other data roots: the same file, settings and store, so a
        connection open on this one (:meth:`Store.connect`) is the other's too."""
        other = copy.copy(self)
        other.data_roots = [_root(r) for r in data_roots]
        return other

    # ------------------------------------------------------------------ helpers

    def _standing(self, con: Connection, user: str, project: str | None = None) -> Standing:
        return users.standing(con, user, project, catalog=self.name)

    def _utcnow(self) -> datetime:
        return self.clock().astimezone(UTC).replace(tzinfo=None)

    def sql(self, query: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
        """Run DuckDB SQL over the catalog's tables and return a DataFrame.

        Tables: ``projects, experiments, scans, frames, decisions, users, roles``,
        ``quarantine`` (the experiments held; see :meth:`quarantined`). On PostgreSQL
        the query runs in DuckDB over a copy of those tables, read in one snapshot.
        """
        if self.store.dialect == "postgres":
            _require_reading(query, self.name)
        with self.store.connect() as con, self.store.snapshot(con, tables=SQL_TABLES) as work:
            return work.execute(query, params).df()

    # -------------------------------------------------------------- users, roles

    def users(self) -> pd.DataFrame:
        """Users, whether each is a superuser, and whether each has a password."""
        with self.store.connect() as con:
            table = users.users(con)
            table["password"] = table["name"].isin(credentials.users_with_password(con))
            return table

    def add_user(self, name: str, *, superuser: bool = False, by: str | None = None) -> None:
        """Add a user (a superuser's job; the first user of a new catalog adds itself).

        The first user of a catalog is always a superuser.
        """
        name = check_name(name, "user name")
        with self.store.transaction() as con:
            n_users = users.count_users(con)
            if n_users:
                if by is None:
                    raise PermissionDenied("adding users needs a superuser: pass by=<superuser>")
                permissions.require_superuser(self._standing(con, by), "add users")
            users.add_user(con, name, superuser=superuser or not n_users)

    def copy_to(
        self, target: str | os.PathLike[str], *, by: str, check: bool = True
    ) -> dict[str, int]:
        """Copy this whole catalog into an empty one: a DuckDB file or a PostgreSQL
        database (``postgresql://...``), either way (a superuser's job).

        Every table is copied as it is (users, passwords' hashes and tokens included),
        read in one snapshot and written in one transaction: the target is a copy or
        unchanged. With ``check``, both catalogs are then exported (MIQA's JSON, every
        project and decision) and the exports compared. Returns the rows copied per
        table.

        Raises
        ------
        MiqaError
            The target is this catalog, or holds a catalog already (users, projects
            or decisions): nothing is copied over it. Or the exports differ (the
            message says which projects).
        """
        with self.store.connect() as con:
            permissions.require_superuser(self._standing(con, by), "copy the catalog")
        other = Catalog(target, retry_seconds=self.store.retry_seconds)
        if other.location == self.location:
            raise MiqaError(f"the catalog {self.name} cannot be copied onto itself")
        counts: dict[str, int] = {}
        with self.store.reading() as source, other.store.transaction() as into:
            held = {
                table: int(into.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0])
                for table in COPIED_TABLES
            }
            if any(held.values()):
                listed = ", ".join(f"{n} {t}" for t, n in held.items() if n)
                raise MiqaError(
                    f"the target {other.name} holds a catalog already ({listed}); copy into a "
                    "new file or an empty database; nothing was copied"
                )
            for table in ("meta", *COPIED_TABLES):
                rows = self.store.read_table(source, table)
                if table == "meta":
                    into.execute("DELETE FROM meta")
                other.store.append_table(into, table, rows)
                counts[table] = rows.num_rows
        if check:
            self._compare_exports(other, by)
        return counts

    def _compare_exports(self, other: Catalog, by: str) -> None:
        """Raise :class:`MiqaError` unless ``other`` exports what this catalog does."""
        import json
        import tempfile

        with tempfile.TemporaryDirectory(prefix="miqa-copy-") as folder:
            mine = json.loads(self.export_file(Path(folder, "a.json"), by=by).read_text())
            theirs = json.loads(other.export_file(Path(folder, "b.json"), by=by).read_text())
        if mine != theirs:
            names = sorted(set(mine.get("projects", {})) | set(theirs.get("projects", {})))
            differ = [
                p
                for p in names
                if mine.get("projects", {}).get(p) != theirs.get("projects", {}).get(p)
            ]
            raise MiqaError(
                f"the copy {other.name} exports differently from {self.name} (projects "
                f"{differ or names}); do not use the copy, and report this"
            )

    def standing(self, user: str, project: str | None = None) -> Standing:
        """A user's standing (superuser, creator, role) in a project, or globally."""
        with self.store.connect() as con:
            return self._standing(con, user, project)

    def set_role(self, project: str, user: str, role: Role | str | None, *, by: str) -> None:
        """Give ``user`` a role in ``project`` (None removes it): its creator or a superuser."""
        parsed = None if role is None else Role.parse(str(role))
        with self.store.transaction() as con:
            projects.require_project(con, project)
            permissions.require_project_admin(self._standing(con, by, project), "change roles")
            self._standing(con, user)  # the user must exist
            users.set_role(con, project, user, parsed)

    def roles(self, project: str | None = None) -> pd.DataFrame:
        """Who holds which role, per project (creators included as role 'creator')."""
        with self.store.connect() as con:
            return users.roles(con, project)

    # ------------------------------------------------------------------ projects

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
        name = check_name(name, "project name")
        if anatomy_orientation not in CONVENTIONS:
            raise MiqaError(
                f"anatomy_orientation must be one of {CONVENTIONS}; {anatomy_orientation!r} was provided"
            )
        with self.store.transaction() as con:
            permissions.require_superuser(self._standing(con, by), "create projects")
            projects.create_project(
                con,
                name,
                creator=by,
                import_path=import_path,
                export_path=export_path,
                anatomy_orientation=anatomy_orientation,
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
            projects.require_project(con, project)
            permissions.require_project_admin(self._standing(con, by, project), "change the paths")
            projects.set_project_paths(
                con, project, {"import_path": import_path, "export_path": export_path}
            )

    def global_paths(self) -> dict[str, str | None]:
        """The global import and export paths."""
        with self.store.connect() as con:
            return projects.global_paths(con)

    def set_global_paths(
        self, *, by: str, import_path: str | None = None, export_path: str | None = None
    ) -> None:
        """Change the global import/export paths: superusers."""
        with self.store.transaction() as con:
            permissions.require_superuser(self._standing(con, by), "change the global paths")
            projects.set_global_paths(con, {"import_path": import_path, "export_path": export_path})

    def experiment_notes(self, project: str) -> dict[str, str]:
        """The notes of a project's experiments: experiment -> note (those with one)."""
        with self.store.connect() as con:
            return projects.experiment_notes(con, project)

    def set_experiment_note(self, project: str, experiment: str, note: str, *, by: str) -> None:
        """Change an experiment's note (MIQA's experiment notes): the project's
        reviewers, its creator and superusers. A note holds no control character but
        tabs and line breaks; an empty note removes it."""
        require_plain_note(note)
        with self.store.transaction() as con:
            projects.require_project(con, project)
            permissions.require_experiment_note(self._standing(con, by, project))
            claims.require_experiment(con, project, experiment)
            projects.set_experiment_note(con, project, experiment, note)

    def projects(self) -> pd.DataFrame:
        """Projects with their paths and review progress."""
        with self.store.connect() as con:
            return queries.projects(con)

    def scan_types(self) -> ScanTypes:
        """The scan types this catalog accepts (MIQA's, plus its own)."""
        with self.store.connect() as con:
            return scan_types.scan_types(con)

    def add_scan_type(self, name: str, *, alias_of: str | None = None, by: str) -> str:
        """Accept a new scan type, or another name for a type (superusers); returns the
        type the name means.

        Names match case-insensitively, so a name that already means a type is refused
        unless it means that same type (then nothing changes). Scans already imported
        keep their types; later imports and validations accept the new name.
        """
        name = check_name(name, "scan type")
        with self.store.transaction() as con:
            permissions.require_superuser(self._standing(con, by), "add scan types")
            return scan_types.add_scan_type(con, name, alias_of)

    def remove_scan_type(self, name: str, *, by: str) -> list[str]:
        """Remove a scan type or alias this catalog added (superusers); a type goes with
        its aliases. MIQA's own types and names stay, and so does a type that scans have.
        Returns the names removed."""
        with self.store.transaction() as con:
            permissions.require_superuser(self._standing(con, by), "remove scan types")
            return scan_types.remove_scan_type(con, name)

    # ----------------------------------------------------------- import, export

    def validate(
        self, path: str | os.PathLike[str], *, project: str | None = None, progress: bool = False
    ) -> Report:
        """Check an import file against this catalog's vocabulary and users (every
        decision's creator must be one); write nothing."""
        with self.store.connect() as con:
            known_types = scan_types.scan_types(con)
            known_users = users.user_names(con)
        return check(
            path,
            roots=self.data_roots,
            scan_types=known_types,
            users=known_users,
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
        quarantine: bool = False,
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
        mode : {'replace', 'append', 'replace-experiments'}
            ``replace``: the file's projects take exactly the file's state (each is
            backed up first). ``append``: add what is new, keep what exists, and report
            conflicts. ``replace-experiments``: the file's experiments take exactly the
            file's state, the projects' others stay (each project is backed up first).
        dry_run : bool
            Report what would be added, removed and changed; write nothing.
        quarantine : bool
            Hold the file's experiments in quarantine (XNAT's ``quarantine=true``),
            in the same transaction: no review queue ever shows them until they are
            released (:meth:`release_quarantine`).

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
        if not dry_run:
            self.store.require_writable()
        with self.store.connect() as con:  # fail fast on permissions, before reading
            self._require_import(con, by, project)
            known_types = scan_types.scan_types(con)
            known_users = users.user_names(con)
        staged = validate(
            path,
            roots=self.data_roots,
            scan_types=known_types,
            users=known_users,
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
            with (
                self.store.connect() as con,
                # On PostgreSQL, the projects' rows copied into DuckDB (their locks held
                # until the end), where the comparison, the backup and the writes run;
                # on DuckDB, the catalog itself.
                self.store.snapshot(con, staged.projects, writing=not dry_run) as work,
            ):
                self._require_import(con, by, project, staged.projects)
                exchange.attach_staged(work, staged)
                try:
                    report.change_counts = exchange.diff(work, mode)
                    self._require_own_decisions(con, work, by, project, mode)
                    if mode == "append":
                        for level, key, detail in exchange.conflicts(work):
                            report.add(
                                "warning",
                                "conflict",
                                f"{level[:-1]} {key} differs from the catalog, which keeps its "
                                f"value ({detail}); use mode='replace' to take the file's",
                            )
                    if dry_run:
                        return report
                    if mode != "append":  # replace, replace-experiments
                        self._backup(work, staged.projects)
                    # The connection opened above (and its file lock) is shared by this
                    # transaction: only the writes are in it. What comes before reads
                    # (a dry run ends there, having begun no transaction) or writes the
                    # backup file, which stays when the import fails.
                    with self.store.transaction():
                        exchange.apply(work, mode, by, after_id=self.store.decision_base(con))
                        if mode == "replace":
                            quarantines.forget_missing(work)
                        if quarantine:
                            quarantines.hold_staged(work, by, self._utcnow())
                        self.store.write_back(con, work, staged.projects, appended=mode == "append")
                finally:
                    exchange.detach_staged(work, staged)
            return report
        finally:
            staged.close()

    def _require_import(
        self,
        con: Connection,
        by: str,
        project: str | None,
        projects_in_file: Sequence[str] = (),
    ) -> None:
        if project is None:
            permissions.require_superuser(self._standing(con, by), "run a global import")
            return
        if projects.project_exists(con, project):
            permissions.require_transfer(self._standing(con, by, project), "import")
        else:
            permissions.require_superuser(self._standing(con, by), f"create project {project!r}")

    def _require_own_decisions(
        self,
        con: Any,
        work: duckdb.DuckDBPyConnection,
        by: str,
        project: str | None,
        mode: str,
    ) -> None:
        """A reviewer's import adds and removes only its own decisions (see
        :func:`~miqa_nb.core.permissions.require_own_decisions`)."""
        standing = self._standing(con, by, project)
        if standing.project_admin:
            return
        codes = [d.value for d in standing.allowed_decisions()]
        added, removed, examples = exchange.foreign_decisions(work, mode, by, codes)
        permissions.require_own_decisions(standing, added, removed, examples)

    def export_file(
        self,
        path: str | os.PathLike[str],
        *,
        by: str,
        project: str | None = None,
        relative_paths: bool = False,
        spreadsheet_safe: bool = False,
    ) -> Path:
        """Export one project (its reviewers, creator, superusers) or all (superusers).

        ``.json`` writes JSON with every decision; anything else MIQA's 16-column CSV.
        The file is written atomically. File locations are absolute; with
        ``relative_paths`` those under the file's grandparent folder are written
        relative to it, as MIQA resolves them (see :mod:`miqa_nb.exchange.export`).
        Values are written exact (an export imports back to the same catalog); with
        ``spreadsheet_safe`` a CSV value a spreadsheet would run as a formula gets a
        ``'`` in front (for opening in a spreadsheet, not for importing back).
        """
        with self.store.connect() as con:
            if project is None:
                permissions.require_superuser(self._standing(con, by), "run a global export")
            else:
                projects.require_project(con, project)
                permissions.require_transfer(self._standing(con, by, project), "export")
            chosen = None if project is None else [project]
            with self.store.snapshot(con, chosen) as work:
                return self._export(work, path, chosen, relative_paths, spreadsheet_safe)

    @staticmethod
    def _export(
        con: duckdb.DuckDBPyConnection,
        path: str | os.PathLike[str],
        projects: Sequence[str] | None,
        relative_paths: bool = False,
        spreadsheet_safe: bool = False,
    ) -> Path:
        if str(path).lower().endswith(".json"):
            return export.export_json(con, path, projects, relative_paths=relative_paths)
        return export.export_csv(
            con, path, projects, relative_paths=relative_paths, spreadsheet_safe=spreadsheet_safe
        )

    def import_project(
        self, project: str, *, by: str, mode: str = "replace", dry_run: bool = False
    ) -> Report:
        """Import a project from its ``import_path``."""
        path = self._project_path(project, "import_path")
        return self.import_file(path, by=by, project=project, mode=mode, dry_run=dry_run)

    def export_project(self, project: str, *, by: str, spreadsheet_safe: bool = False) -> Path:
        """Export a project to its ``export_path`` (see :meth:`export_file`)."""
        path = self._project_path(project, "export_path")
        return self.export_file(path, by=by, project=project, spreadsheet_safe=spreadsheet_safe)

    def import_global(self, *, by: str, mode: str = "replace", dry_run: bool = False) -> Report:
        """Import every project in the global import file (superusers)."""
        path = self.global_paths()["import_path"]
        if not path:
            raise MiqaError(
                "no global import path is set; a superuser sets it first (the dashboard's "
                "Administration tab, 'Global import and export', Import path)"
            )
        return self.import_file(path, by=by, mode=mode, dry_run=dry_run)

    def export_global(self, *, by: str, spreadsheet_safe: bool = False) -> Path:
        """Export every project to the global export file (superusers; see
        :meth:`export_file`)."""
        path = self.global_paths()["export_path"]
        if not path:
            raise MiqaError(
                "no global export path is set; a superuser sets it first (the dashboard's "
                "Administration tab, 'Global import and export', Export path)"
            )
        return self.export_file(path, by=by, spreadsheet_safe=spreadsheet_safe)

    def _project_path(self, project: str, column: str) -> str:
        with self.store.connect() as con:
            return projects.project_path(con, project, column)

    @property
    def backup_dir(self) -> Path:
        """Where automatic pre-import backups go (beside the catalog)."""
        return self.path.with_name(self.path.stem + "-backups")

    def _backup(self, con: duckdb.DuckDBPyConnection, projects: Sequence[str]) -> Path | None:
        existing = [
            p
            for p in projects
            if con.execute("SELECT 1 FROM scans WHERE project = ? LIMIT 1", [p]).fetchall()
        ]
        if not existing:
            return None
        stamp = self.clock().strftime("%Y%m%dT%H%M%S%fZ")
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", "+".join(existing))[:80]
        target = self.backup_dir / f"{stamp}-{slug}.json"
        made = not self.backup_dir.exists()
        try:
            export.export_json(con, target, existing)
        except BaseException:
            if made:  # a failed first backup leaves no empty folder behind
                with contextlib.suppress(OSError):
                    self.backup_dir.rmdir()
            raise
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
        A decision other than ``U`` needs a note or at least one artifact present; a
        note holds no control character but tabs and line breaks.
        """
        code = decision if isinstance(decision, Decision) else Decision.parse(decision)
        states = decisions.artifact_states(artifacts)
        present = [a for a, s in states.items() if s == ArtifactState.PRESENT]
        require_note_or_artifact(code, note, present)
        require_plain_note(note)
        if location is not None and not isinstance(location, Location):
            location = Location.from_mm(*location)
        when = Timestamp.from_datetime(self.clock().replace(microsecond=0))
        with self.store.transaction() as con:
            permissions.require_decision(self._standing(con, by, project), code)
            decisions.require_scan(con, project, experiment, scan)
            return decisions.append_decision(
                con,
                (project, experiment, scan),
                code,
                creator=by,
                note=note,
                created=when,
                states=states,
                location=location,
            )

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

        Only users who may record decisions in the project claim (tier-1 and tier-2
        reviewers, superusers), for more than 0 and at most :data:`MAX_CLAIM_MINUTES`.
        Renewing one's own claim extends it. A live claim of another user is not
        taken: the returned :class:`Claim` names its holder (``claim.mine`` is False),
        unless ``take_over`` is set by a superuser. Expired claims are free.
        """
        length = claims.claim_length(minutes)
        now = self._utcnow()
        with self.store.transaction() as con:
            projects.require_project(con, project)
            standing = self._standing(con, by, project)
            permissions.require_claim(standing)
            claims.require_experiment(con, project, experiment)
            held = claims.live_claim(con, project, experiment, user=by, now=now)
            if held is not None and not held.mine:
                if not take_over:
                    return held
                permissions.require_superuser(standing, "take over another reviewer's claim")
            return claims.put_claim(con, project, experiment, by, now + length)

    def release(self, project: str, experiment: str, *, by: str) -> None:
        """Give up one's claim on an experiment."""
        with self.store.transaction() as con:
            claims.release(con, project, experiment, by)

    def claims(self, project: str | None = None) -> pd.DataFrame:
        """Live claims: project, experiment, user, expires_utc."""
        with self.store.connect() as con:
            return claims.live_claims(con, self._utcnow(), project)

    def set_place(self, project: str, experiment: str, scan: str, *, by: str) -> None:
        """Remember the scan ``by`` has open in ``project`` (to resume there); ``by``
        must be able to see the project."""
        with self.store.transaction() as con:
            projects.require_project(con, project)
            permissions.require_read(self._standing(con, by, project))
            decisions.require_scan(con, project, experiment, scan)
            claims.set_place(con, by, project, experiment, scan, self._utcnow())

    def place(self, project: str, *, by: str) -> tuple[str, str] | None:
        """The (experiment, scan) ``by`` last had open in ``project``, if any."""
        with self.store.connect() as con:
            return claims.place(con, project, by)

    # ---------------------------------------------------------------- quarantine
    # XNAT's quarantine: archived, hidden from every review queue until released.

    def quarantine_experiment(self, project: str, experiment: str, *, by: str) -> None:
        """Hold an experiment in quarantine: its scans leave every review queue and the
        counts reviewers see until it is released. The project's creator and superusers
        (an import may also quarantine what it adds: ``import_file(quarantine=True)``)."""
        with self.store.transaction() as con:
            projects.require_project(con, project)
            standing = self._standing(con, by, project)
            permissions.require_release(standing, f"quarantine experiment {experiment!r}")
            quarantines.hold(con, project, experiment, by, self._utcnow())

    def release_quarantine(self, project: str, experiment: str, *, by: str) -> None:
        """Release a quarantined experiment into review: the project's creator and
        superusers (MIQA's project administrators); others get ``PermissionDenied``."""
        with self.store.transaction() as con:
            projects.require_project(con, project)
            standing = self._standing(con, by, project)
            permissions.require_release(standing, f"release experiment {experiment!r}")
            quarantines.release(con, project, experiment)

    def quarantined(self, project: str | None = None) -> pd.DataFrame:
        """The experiments held in quarantine: project, experiment, scans, frames,
        quarantined_by and since_utc (UTC)."""
        with self.store.connect() as con:
            if project is not None:
                projects.require_project(con, project)
            return quarantines.listing(con, project)

    # ------------------------------------------------------------ user settings

    def user_setting(self, key: str, *, by: str) -> str | None:
        """``by``'s own setting ``key`` (e.g. ``'review_keys'``); None if never set."""
        with self.store.connect() as con:
            return user_settings.user_setting(con, by, key)

    def set_user_setting(self, key: str, value: str, *, by: str) -> None:
        """Store ``by``'s own setting ``key`` (users change only their own settings).

        Raises
        ------
        PermissionDenied
            ``by`` is not a user of the catalog.
        MiqaError
            An empty key or a value too long (see :mod:`miqa_nb.store.user_settings`).
        """
        with self.store.transaction() as con:
            self._standing(con, by)  # a user of this catalog
            user_settings.set_user_setting(con, by, key, value)

    # --------------------------------------------------------------- credentials
    # Sign-in for the served dashboard: see miqa_nb.store.credentials. Each user's
    # credentials are changed by the user itself or a superuser.

    def _require_credentials(self, con: Connection, user: str, by: str, action: str) -> None:
        permissions.require_self_or_superuser(self._standing(con, by), user, action)
        self._standing(con, user)  # the user must exist

    def set_password(self, user: str, password: str, *, by: str) -> None:
        """Set ``user``'s password (8 to 1024 characters), kept as an argon2id hash."""
        hashed = credentials.hash_password(password)  # 0.1 s of CPU, outside the lock
        with self.store.transaction() as con:
            self._require_credentials(con, user, by, "set the password")
            credentials.set_password(con, user, hashed, self._utcnow())

    def check_password(self, user: str, password: str) -> bool:
        """Whether ``password`` is ``user``'s. False for a wrong one, an unknown user
        or one without a password, in the same time (one argon2 verification each)."""
        with self.store.peek() as con:
            stored = credentials.password_hash(con, user)
        return credentials.verify_password(stored, password)

    def has_password(self, user: str) -> bool:
        """Whether ``user`` (a user of the catalog) has a password (a peek)."""
        with self.store.peek() as con:
            self._standing(con, user)
            return credentials.has_password(con, user)

    def create_token(
        self, user: str, *, by: str, expires_days: float | None = None
    ) -> tuple[str, str]:
        """Make an API token for ``user``; return ``(token_id, token)``. The token is
        shown only now (the catalog keeps its SHA-256); None: it never expires."""
        with self.store.transaction() as con:
            self._require_credentials(con, user, by, "make tokens")
            return credentials.create_token(con, user, self._utcnow(), expires_days)

    def tokens(self, user: str, *, by: str) -> pd.DataFrame:
        """``user``'s tokens: id, created_utc, expires_utc, revoked_utc, last_used_utc."""
        with self.store.connect() as con:
            self._require_credentials(con, user, by, "see the tokens")
            return credentials.tokens(con, user)

    def revoke_token(self, user: str, token_id: str, *, by: str) -> None:
        """Revoke ``user``'s token ``token_id`` (an unknown id is an error naming it)."""
        with self.store.transaction() as con:
            self._require_credentials(con, user, by, "revoke tokens")
            credentials.revoke_token(con, user, token_id, self._utcnow())

    def token_user(self, token: str) -> str | None:
        """The user of an API token that is well-formed, known, not revoked and not
        expired; else None. A fast read (:meth:`Store.peek`, about 1 ms); its last use
        is written at most once a minute, when the catalog is writable, and a failure
        to write it is ignored."""
        parsed = credentials.parse_token(token)
        if parsed is None:
            return None
        now = self._utcnow()
        with self.store.peek() as con:
            found = credentials.token_user(con, *parsed, now)
        if found is None:
            return None
        user, due = found
        if due and not self.store.read_only:
            # A failure to note the use (a busy or unreachable catalog) is not the caller's.
            with contextlib.suppress(Exception), self.store.transaction() as con:
                credentials.touch_token(con, parsed[0], now)
        return user

    def create_signin_link(self, user: str, *, by: str, minutes: float = 30) -> str:
        """Make a one-time sign-in secret for ``user``, valid for ``minutes`` (the link
        is :func:`miqa_nb.core.signin.link_url`); the catalog keeps its SHA-256."""
        with self.store.transaction() as con:
            self._require_credentials(con, user, by, "make sign-in links")
            return credentials.create_signin_link(con, user, self._utcnow(), minutes)

    def use_signin_link(self, secret: str) -> str | None:
        """Use a sign-in link: its user, once; None when it is unknown, used already,
        expired, or the catalog is read-only (a use that cannot be noted is refused)."""
        if self.store.read_only:
            return None
        with self.store.transaction() as con:
            return credentials.use_signin_link(con, secret, self._utcnow())

    def credentials_version(self) -> str:
        """A value that changes whenever a password, token or sign-in link is written:
        a server may cache the tokens it verified (with their expiry) until it changes."""
        with self.store.peek() as con:  # about 1 ms
            return credentials.credentials_version(con)

    # ---------------------------------------------------------------- DataFrames

    def frames(self, project: str | None = None) -> pd.DataFrame:
        """One row per frame: project, experiment, scan, frame_number, location, type."""
        with self.store.connect() as con:
            return queries.frames(con, project)

    def scans(self, project: str | None = None) -> pd.DataFrame:
        """One row per scan, with frames, last decision and state, in MIQA's order."""
        with self.store.connect() as con:
            return queries.scans(con, project)

    def decisions(self, project: str | None = None) -> pd.DataFrame:
        """Every decision, oldest first, with one column per artifact and i/j/k in mm."""
        with self.store.connect() as con:
            return queries.decisions(con, project)

    def summary(self) -> str:
        """A few lines a person reads: projects, scans, review progress."""
        projects = self.projects()
        if projects.empty:
            return f"{self.name}: no projects yet"
        lines = [f"{self.name}: {len(projects)} project(s)"]
        for row in projects.itertuples():
            lines.append(
                f"  {row.project}: {row.experiments} experiments, {row.scans} scans, "
                f"{row.frames} frames; {row.reviewed}/{row.scans} reviewed, {row.complete} complete"
            )
        return "\n".join(lines)
