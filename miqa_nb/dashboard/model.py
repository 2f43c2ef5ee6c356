"""What the Voila dashboard shows and does, without widgets.

The dashboard's panels (:mod:`miqa_nb.dashboard.app` and its siblings) are thin
views over the plain objects here, which tests drive directly:

- :func:`resolve_user` -- who the page belongs to: ``JUPYTERHUB_USER`` under
  JupyterHub, else the ``?user=NAME`` query parameter that :mod:`miqa_nb.serve` asks
  the page URL to carry (in a plain notebook, :func:`miqa_nb.core.identity.named_user`
  first); the user must exist in the catalog.
- :func:`readable_error` -- the sentence a status bar shows for an exception (never a
  traceback: those go to the server log).
- :func:`visible_projects` -- the projects a user may see, with review progress.
- :func:`overview_table` / :func:`filter_overview` -- a project's scans with state,
  last decision and the image of their first frame.
- :class:`AdminActions` -- project and global import/export, paths, users and roles,
  refused (``PermissionDenied``) for anyone but superusers and the project's creator,
  on top of the catalog's own checks.
- :class:`UploadStager` -- scans uploaded from a reviewer's computer: names checked,
  files written only inside the upload folder, imported with ``mode='append'``
  through a generated MIQA CSV, and removed again when the import fails.

Contract: nothing here imports ipywidgets or Voila; every change goes through
:class:`~miqa_nb.catalog.Catalog`, which checks permissions itself.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs

import pandas as pd

from miqa_nb.catalog import Catalog
from miqa_nb.core import permissions
from miqa_nb.core.errors import ImportFileError, MiqaError, NotFound, PermissionDenied
from miqa_nb.core.files import write_atomic
from miqa_nb.core.identity import named_user
from miqa_nb.core.permissions import Standing
from miqa_nb.core.report import Report
from miqa_nb.core.vocabulary import Role, ScanState
from miqa_nb.exchange.formats import MIQA_COLUMNS
from miqa_nb.exchange.locations import ROOTS_ENV, inside, roots_setting

__all__ = [
    "IDENTITY_ENV",
    "UPLOAD_DIR_ENV",
    "UPLOAD_SUFFIXES",
    "AdminActions",
    "Identity",
    "StagedUpload",
    "UploadFile",
    "UploadStager",
    "default_thumbnail_dir",
    "default_upload_dir",
    "filter_overview",
    "overview_table",
    "readable_error",
    "resolve_user",
    "visible_projects",
]

log = logging.getLogger(__name__)

#: How the served page learns its user: ``hub`` (``JUPYTERHUB_USER``) or ``query``
#: (``?user=NAME``). Set by :mod:`miqa_nb.serve`; unset in a plain notebook.
IDENTITY_ENV = "MIQA_NB_IDENTITY"
#: The folder uploaded scans are written to (default: beside the catalog).
UPLOAD_DIR_ENV = "MIQA_NB_UPLOAD_DIR"
#: The folder of thumbnail PNGs (default: beside the catalog).
THUMBNAIL_DIR_ENV = "MIQA_NB_THUMBNAIL_DIR"
#: Suffixes accepted for uploads (``.nhdr`` is left out: it needs a second data file).
UPLOAD_SUFFIXES: tuple[str, ...] = (".nii.gz", ".nii", ".mgz", ".nrrd")

ALL = "all"


# --------------------------------------------------------------------- identity


@dataclass(frozen=True)
class Identity:
    """Who a dashboard page belongs to, or why nobody: exactly one is set."""

    user: str | None = None
    refusal: str | None = None


def resolve_user(
    catalog: Catalog, environ: Mapping[str, str], query_string: str | None
) -> Identity:
    """Find the page's user and check that the catalog knows them.

    Parameters
    ----------
    catalog : Catalog
    environ : mapping
        The kernel's environment. ``MIQA_NB_IDENTITY=hub`` takes ``JUPYTERHUB_USER``
        and ignores the query string (the hub authenticated the user);
        ``MIQA_NB_IDENTITY=query`` takes ``user`` from the query string only. Unset (a
        notebook outside :mod:`miqa_nb.serve`): the user the environment names
        (:func:`miqa_nb.core.identity.named_user`: ``MIQA_NB_USER``, then
        ``JUPYTERHUB_USER``), then the query string -- never the login name, which on
        a server is the server's account.
    query_string : str or None
        The page URL's query string (``token=...&user=ana``).

    Returns
    -------
    Identity
        ``user`` when the catalog knows them, else ``refusal``: a sentence to show.
    """
    mode = environ.get(IDENTITY_ENV, "")
    from_query = parse_qs(query_string or "").get("user", [""])[-1].strip()
    if mode == "hub":
        name = environ.get("JUPYTERHUB_USER", "")
        if not name:
            return Identity(refusal="JupyterHub did not name the user (JUPYTERHUB_USER is unset).")
    elif mode == "query":
        name = from_query
        if not name:
            return Identity(
                refusal="This page needs your user name: add &user=NAME to its address "
                "(the name a superuser gave you in the catalog)."
            )
    else:
        name = named_user(None, environ) or from_query
        if not name:
            return Identity(refusal="No user given: set MIQA_NB_USER or open with ?user=NAME.")
    try:
        catalog.standing(name)
    except PermissionDenied:
        return Identity(
            refusal=f"User {name!r} is not in this catalog, so this page shows nothing. "
            f"Ask a superuser to add you (miqa-nb users add NAME), then reload."
        )
    return Identity(user=name)


# ------------------------------------------------------------------------ errors


def readable_error(exc: BaseException) -> str:
    """The sentence a person reads for ``exc``; tracebacks belong in the log.

    Errors of miqa_nb say what is wrong and how to fix it, so their message is shown
    (an import report is cut to its first lines). Anything else is a bug or an
    environment problem: the page names its kind and points to the server log.
    """
    if isinstance(exc, ImportFileError) and exc.report is not None:
        lines = str(exc.report).splitlines()
        more = f"\n... {len(lines) - 12} more line(s) in the report" if len(lines) > 12 else ""
        return "Nothing was imported: the file has problems.\n" + "\n".join(lines[:12]) + more
    if isinstance(exc, PermissionDenied):
        return f"Refused: {exc}"
    if isinstance(exc, MiqaError):
        return str(exc)
    return (
        f"Something went wrong ({type(exc).__name__}); nothing more is shown here. "
        "The details are in the server log."
    )


# ---------------------------------------------------------------------- projects


def visible_projects(catalog: Catalog, user: str) -> pd.DataFrame:
    """The projects ``user`` may see (all for superusers), with review progress.

    Columns: those of :meth:`Catalog.projects` plus ``progress`` (reviewed / scans, 0
    for an empty project) and ``my_role`` (``superuser``, ``creator`` or the role).
    """
    projects = catalog.projects()
    standing = catalog.standing(user)
    roles = catalog.roles()
    mine = roles[roles["user"] == user].drop_duplicates("project", keep="last")
    role_of = dict(zip(mine["project"], mine["role"], strict=True))
    if not standing.superuser:
        projects = projects[projects["project"].isin(role_of)]
    projects = projects.reset_index(drop=True)
    scans = projects["scans"].astype("float64")
    projects["progress"] = (projects["reviewed"] / scans.where(scans > 0)).fillna(0.0)
    projects["my_role"] = [
        "superuser" if standing.superuser else role_of.get(p, "") for p in projects["project"]
    ]
    return projects


# ---------------------------------------------------------------------- overview

OVERVIEW_COLUMNS = (
    "experiment",
    "scan",
    "type",
    "state",
    "last_decision",
    "last_decision_creator",
    "n_frames",
    "location",
)


def overview_table(catalog: Catalog, project: str) -> pd.DataFrame:
    """One row per scan of ``project``: state, last decision, first frame's file.

    ``location`` is the file of the scan's lowest frame number (None without frames).
    """
    scans = catalog.scans(project)
    frames = catalog.frames(project)
    first = (
        frames.sort_values("frame_number")
        .drop_duplicates(["experiment", "scan"])
        .loc[:, ["experiment", "scan", "location"]]
    )
    table = scans.merge(first, on=["experiment", "scan"], how="left")
    table["location"] = table["location"].astype(object).where(table["location"].notna(), None)
    return table.loc[:, list(OVERVIEW_COLUMNS)].reset_index(drop=True)


def filter_overview(
    table: pd.DataFrame,
    *,
    state: str = ALL,
    scan_type: str = ALL,
    experiment: str = "",
) -> pd.DataFrame:
    """Rows of an overview table matching a state, a type and experiment text.

    ``state`` and ``scan_type`` are exact (``'all'`` for any); ``experiment`` is a
    case-insensitive substring of the experiment name.
    """
    keep = pd.Series(True, index=table.index)
    if state != ALL:
        keep &= table["state"].astype(str) == state
    if scan_type != ALL:
        keep &= table["type"].astype(str) == scan_type
    if experiment.strip():
        keep &= (
            table["experiment"]
            .astype(str)
            .str.contains(experiment.strip(), case=False, regex=False)
        )
    return table[keep].reset_index(drop=True)


def state_options() -> list[str]:
    """The choices of the state filter."""
    return [ALL, *(s.value for s in ScanState)]


# ------------------------------------------------------------------------- admin


@dataclass
class AdminActions:
    """Administration of one project (and global, for superusers) on behalf of ``user``.

    Every method first asks :mod:`miqa_nb.core.permissions` whether ``user`` may (a
    superuser, or the project's creator; ``PermissionDenied`` otherwise) -- the
    dashboard hides its panel from others, and this refuses them even if a panel is
    reached -- and then calls the catalog, which checks again.
    """

    catalog: Catalog
    user: str
    project: str | None = None

    def standing(self) -> Standing:
        """The user's standing in the project (or globally)."""
        return self.catalog.standing(self.user, self.project)

    @property
    def allowed(self) -> bool:
        """True when the user may administer the project."""
        return self.standing().project_admin

    @property
    def global_allowed(self) -> bool:
        """True for superusers."""
        return self.catalog.standing(self.user).superuser

    def _require(self, action: str) -> str:
        if self.project is None:
            raise MiqaError(f"open a project first to {action}")
        permissions.require_project_admin(self.standing(), action)
        return self.project

    def _require_global(self, action: str) -> None:
        permissions.require_superuser(self.catalog.standing(self.user), action)

    def paths(self) -> dict[str, str | None]:
        """The project's import and export paths."""
        project = self._require("see the paths")
        found = self.catalog.projects()
        row = found[found["project"] == project]
        if row.empty:
            raise NotFound(f"no project {project!r} in the catalog")
        return {
            "import_path": _none_if_missing(row["import_path"].iloc[0]),
            "export_path": _none_if_missing(row["export_path"].iloc[0]),
        }

    def set_paths(self, import_path: str = "", export_path: str = "") -> None:
        """Change the project's paths (blank leaves a path as it is)."""
        project = self._require("change the paths")
        self.catalog.set_project_paths(
            project,
            by=self.user,
            import_path=import_path.strip() or None,
            export_path=export_path.strip() or None,
        )

    def import_project(self, *, mode: str = "replace", dry_run: bool = True) -> Report:
        """Import the project from its import path (a dry run unless told otherwise)."""
        project = self._require("import")
        return self.catalog.import_project(project, by=self.user, mode=mode, dry_run=dry_run)

    def export_project(self, *, spreadsheet_safe: bool = True) -> Path:
        """Export the project to its export path.

        A CSV export is spreadsheet-safe unless told otherwise: people who export from
        the dashboard open the file in a spreadsheet, which would run a value that
        begins like a formula (``=``, ``+``, ``-``, ``@``, a tab, a carriage return);
        such values get a ``'`` in front. ``spreadsheet_safe=False`` writes MIQA's exact
        form (to import back, into miqa_nb or MIQA). See :meth:`Catalog.export_file`.
        """
        project = self._require("export")
        return self.catalog.export_project(project, by=self.user, spreadsheet_safe=spreadsheet_safe)

    def global_paths(self) -> dict[str, str | None]:
        """The global import and export paths (superusers)."""
        self._require_global("see the global paths")
        return self.catalog.global_paths()

    def set_global_paths(self, import_path: str = "", export_path: str = "") -> None:
        """Change the global paths (blank leaves a path as it is)."""
        self._require_global("change the global paths")
        self.catalog.set_global_paths(
            by=self.user,
            import_path=import_path.strip() or None,
            export_path=export_path.strip() or None,
        )

    def import_global(self, *, mode: str = "replace", dry_run: bool = True) -> Report:
        """Import every project of the global import file (superusers)."""
        self._require_global("run a global import")
        return self.catalog.import_global(by=self.user, mode=mode, dry_run=dry_run)

    def export_global(self, *, spreadsheet_safe: bool = True) -> Path:
        """Export every project to the global export file (superusers); spreadsheet-safe
        unless told otherwise, as :meth:`export_project`."""
        self._require_global("run a global export")
        return self.catalog.export_global(by=self.user, spreadsheet_safe=spreadsheet_safe)

    def users(self) -> pd.DataFrame:
        """Every user of the catalog."""
        self._require("see the users")
        return self.catalog.users()

    def roles(self) -> pd.DataFrame:
        """Who holds which role in the project."""
        return self.catalog.roles(self._require("see the roles"))

    def add_user(self, name: str, *, superuser: bool = False) -> None:
        """Add a user (the catalog lets only superusers)."""
        self._require_global("add users")
        self.catalog.add_user(name, superuser=superuser, by=self.user)

    def set_role(self, member: str, role: str | None) -> None:
        """Give ``member`` a role in the project; ``None`` or ``'none'`` removes it."""
        project = self._require("change roles")
        parsed = None if role in (None, "", "none") else Role.parse(str(role))
        self.catalog.set_role(project, member, parsed, by=self.user)

    def scan_types(self) -> pd.DataFrame:
        """The scan types this catalog added (``name``, ``type``: what it means)."""
        types = self.catalog.scan_types()
        rows = [(t, t) for t in types.extra] + sorted(types.aliases.items(), key=lambda a: a[1])
        return pd.DataFrame(rows, columns=["name", "type"], dtype=object)

    def scan_type_names(self) -> tuple[str, ...]:
        """Every scan type the catalog accepts (MIQA's first)."""
        return self.catalog.scan_types().names()

    def add_scan_type(self, name: str, alias_of: str | None = None) -> str:
        """Accept a new scan type, or another name for one (superusers); returns the
        type the name means."""
        self._require_global("add scan types")
        return self.catalog.add_scan_type(name, alias_of=alias_of or None, by=self.user)

    def remove_scan_type(self, name: str) -> list[str]:
        """Remove a scan type or name the catalog added (superusers); the names removed."""
        self._require_global("remove scan types")
        return self.catalog.remove_scan_type(name, by=self.user)


def _none_if_missing(value: object) -> str | None:
    return None if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)


# ------------------------------------------------------------------------ upload


def default_upload_dir(catalog_path: str | os.PathLike[str]) -> Path:
    """``MIQA_NB_UPLOAD_DIR``, else ``<catalog>-uploads`` beside the catalog file."""
    env = os.environ.get(UPLOAD_DIR_ENV)
    if env:
        return Path(env)
    path = Path(catalog_path)
    return path.with_name(path.stem + "-uploads")


def default_thumbnail_dir(catalog_path: str | os.PathLike[str]) -> Path:
    """``MIQA_NB_THUMBNAIL_DIR``, else ``<catalog>-thumbnails`` beside the catalog."""
    env = os.environ.get(THUMBNAIL_DIR_ENV)
    if env:
        return Path(env)
    path = Path(catalog_path)
    return path.with_name(path.stem + "-thumbnails")


@dataclass(frozen=True)
class UploadFile:
    """One file as the browser sent it: its name and bytes."""

    name: str
    content: bytes


@dataclass
class StagedUpload:
    """The result of :meth:`UploadStager.upload`: files written, the CSV, the report."""

    files: list[Path] = field(default_factory=list)
    csv_path: Path | None = None
    report: Report | None = None


_NAME_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._+()-]*$")
MAX_NAME = 200


def upload_suffix(name: str) -> str | None:
    """The accepted suffix ``name`` ends with (case-insensitive), or None.

    >>> upload_suffix("Study.NII.GZ"), upload_suffix(".csv"), upload_suffix("notes.txt")
    ('.nii.gz', None, None)
    """
    lower = name.lower()
    return next((s for s in UPLOAD_SUFFIXES if lower.endswith(s) and len(lower) > len(s)), None)


def check_upload_name(name: str) -> str | None:
    """Why a file name cannot be uploaded, or None when it can.

    A name is a plain file name (no folders, no leading dot), of letters, digits,
    spaces and ``._+()-``, at most 200 characters, ending in one of
    :data:`UPLOAD_SUFFIXES`.

    >>> check_upload_name("t1 (repeat).nii.gz") is None
    True
    >>> check_upload_name("../study.csv")
    "file name '../study.csv' must not name a folder"
    """
    if not name or len(name) > MAX_NAME:
        return f"file name {name!r} must have 1 to {MAX_NAME} characters"
    if "/" in name or "\\" in name or name in (".", ".."):
        return f"file name {name!r} must not name a folder"
    if not _NAME_OK.match(name):
        return (
            f"file name {name!r} may hold only letters, digits, spaces and ._+()- "
            "and must start with a letter or digit; rename it and upload again"
        )
    if upload_suffix(name) is None:
        return f"file {name!r} must end in one of {', '.join(UPLOAD_SUFFIXES)}"
    return None


def _slug(name: str) -> str:
    """A folder name for any catalog name: readable part plus a hash of the exact name."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")[:40] or "x"
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{readable}-{digest}"


Progress = Callable[[int, int, str], None]


@dataclass
class UploadStager:
    """Write uploaded scans into the upload folder and import them into an experiment.

    Parameters
    ----------
    catalog : Catalog
    user : str
        Who uploads; the catalog checks they may import into the project.
    upload_dir : path-like
        The only folder files are written to; it must lie inside the catalog's data
        roots when those are set (``Catalog.data_roots`` or ``MIQA_NB_DATA_ROOTS``).
    clock : callable, optional
        Returns the current time; names the generated CSV.

    Layout: ``<upload_dir>/<project>-<hash>/<experiment>-<hash>/<file>``, one scan per
    file (frame 0), named after the file without its suffix; the CSV goes to
    ``<upload_dir>/.imports/``.
    """

    catalog: Catalog
    user: str
    upload_dir: Path
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    def data_roots(self) -> list[Path]:
        """The roots the import checks files against: the catalog's, else
        ``MIQA_NB_DATA_ROOTS``, else the upload folder."""
        return [Path(r) for r in roots_setting(self.catalog.data_roots, self.upload_dir)]

    def check(
        self, project: str, experiment: str, names: Sequence[str], scan_type: str
    ) -> list[str]:
        """Every reason the upload cannot go ahead (empty when it can); writes nothing."""
        problems: list[str] = []
        if not experiment.strip():
            problems.append("choose or type the experiment the scans go into")
        elif len(experiment) > MAX_NAME or re.search(r"[\x00-\x1f\x7f]", experiment):
            problems.append(
                f"experiment name {experiment!r} must be one line of at most 200 characters"
            )
        if not names:
            problems.append("choose at least one file to upload")
        try:
            self.catalog.scan_types().parse(scan_type)
        except MiqaError as exc:
            problems.append(str(exc))
        seen: set[str] = set()
        for name in names:
            reason = check_upload_name(name)
            if reason:
                problems.append(reason)
                continue
            scan = self.scan_name(name)
            if scan in seen:
                problems.append(f"two files would both be scan {scan!r}; upload one of them")
            seen.add(scan)
        if not inside(self.upload_dir, self.data_roots()):
            problems.append(
                f"the upload folder {self.upload_dir} is outside the data roots "
                f"{[str(r) for r in self.data_roots()]}; add it to {ROOTS_ENV}"
            )
        if project and experiment.strip() and seen:
            existing = self.catalog.scans(project)
            here = existing[existing["experiment"] == experiment.strip()]
            for scan in sorted(seen & set(here["scan"])):
                problems.append(
                    f"experiment {experiment!r} already has a scan {scan!r}; rename the file"
                )
        return problems

    @staticmethod
    def scan_name(file_name: str) -> str:
        """The scan a file becomes: its name without the image suffix."""
        suffix = upload_suffix(file_name) or ""
        return file_name[: len(file_name) - len(suffix)]

    def folder(self, project: str, experiment: str) -> Path:
        """Where the files of one experiment are written."""
        return self.upload_dir / _slug(project) / _slug(experiment)

    def upload(
        self,
        project: str,
        experiment: str,
        files: Iterable[UploadFile],
        *,
        scan_type: str = "T1",
        progress: Progress | None = None,
    ) -> StagedUpload:
        """Write the files, then import them with ``mode='append'``.

        Raises
        ------
        MiqaError
            With every problem found by :meth:`check` (nothing written), or when a
            file of that name is already in the experiment's folder.
        ImportFileError, PermissionDenied
            From the catalog; the files written by this call are removed again.
        """
        files = list(files)
        experiment = experiment.strip()
        problems = self.check(project, experiment, [f.name for f in files], scan_type)
        if problems:
            raise MiqaError("cannot upload: " + "; ".join(problems))
        self.catalog.standing(self.user, project)  # the user and project must exist
        notify = progress or (lambda done, total, message: None)
        total = len(files) + 1
        folder = self.folder(project, experiment)
        staged = StagedUpload()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for i, upload in enumerate(files):
                target = folder / upload.name
                if not inside(target, [self.upload_dir]) or target.parent != folder:
                    raise MiqaError(f"file name {upload.name!r} leaves the upload folder")
                if target.exists():
                    raise MiqaError(
                        f"{upload.name!r} was uploaded to experiment {experiment!r} before; "
                        "rename the file to upload it again"
                    )
                notify(i, total, f"saving {upload.name}")
                _write_atomic(target, upload.content)
                staged.files.append(target)
            notify(len(files), total, "importing")
            staged.csv_path = self._write_csv(project, experiment, staged.files, scan_type)
            importer = Catalog(
                self.catalog.path,
                data_roots=self.data_roots(),
                retry_seconds=self.catalog.store.retry_seconds,
            )
            staged.report = importer.import_file(
                staged.csv_path, by=self.user, project=project, mode="append"
            )
        except BaseException:
            for path in staged.files:
                path.unlink(missing_ok=True)
            if staged.csv_path is not None:
                staged.csv_path.unlink(missing_ok=True)
            raise
        notify(total, total, f"imported {len(files)} scan(s) into {experiment}")
        return staged

    def _write_csv(
        self, project: str, experiment: str, paths: Sequence[Path], scan_type: str
    ) -> Path:
        imports = self.upload_dir / ".imports"
        imports.mkdir(parents=True, exist_ok=True)
        stamp = self.clock().strftime("%Y%m%dT%H%M%S%fZ")
        target = imports / f"{stamp}-{_slug(self.user)}.csv"
        rows = [
            {
                "project_name": project,
                "experiment_name": experiment,
                "scan_name": self.scan_name(path.name),
                "scan_type": scan_type,
                "frame_number": "0",
                "file_location": str(path.resolve()),
            }
            for path in paths
        ]
        with open(target, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(MIQA_COLUMNS))
            writer.writeheader()
            for row in rows:
                writer.writerow({c: row.get(c, "") for c in MIQA_COLUMNS})
        return target


def _write_atomic(target: Path, content: bytes) -> None:
    """Write ``target`` whole or not at all; never replace an existing file, so two
    reviewers uploading the same name at once cannot overwrite each other."""
    try:
        write_atomic(target, content, replace=False)
    except FileExistsError:
        raise MiqaError(
            f"{target.name!r} was uploaded to this experiment before; "
            "rename the file to upload it again"
        ) from None
