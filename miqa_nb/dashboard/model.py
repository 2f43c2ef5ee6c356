"""What the Voila dashboard shows and does, without widgets.

The dashboard's panels (:mod:`miqa_nb.dashboard.app` and its siblings) are thin
views over the plain objects here, which tests drive directly:

- :func:`resolve_user` -- who the page belongs to: ``JUPYTERHUB_USER`` under
  JupyterHub, else the signed-in user the server names to the page's kernel (in a
  plain notebook, :func:`miqa_nb.core.identity.named_user`); the user must exist in
  the catalog.
- :func:`readable_error` -- the sentence a status bar shows for an exception (never a
  traceback: those go to the server log).
- :func:`visible_projects` -- the projects a user may see, with review progress.
- :func:`overview_table` / :func:`filter_overview` -- a project's scans with state,
  last decision and the image of their first frame (not those of experiments held
  in quarantine: hidden from review until released).
- :class:`AdminActions` -- project and global import/export, paths, users and roles,
  the experiments held in quarantine and their release,
  refused (``PermissionDenied``) for anyone but superusers and the project's creator,
  on top of the catalog's own checks; import and export paths are confined to the
  data roots and the export folder (:mod:`miqa_nb.dashboard.folders`). Users'
  sign-in credentials (passwords, one-time sign-in links, API tokens) are for
  superusers only; a new secret comes back once, as a :class:`Secret`.
- :func:`default_thumbnail_dir` -- where the overview's thumbnails are cached.

Contract: nothing here imports ipywidgets or Voila; every change goes through
:class:`~miqa_nb.catalog.Catalog`, which checks permissions itself.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from urllib.parse import parse_qs

import pandas as pd

from miqa_nb.catalog import Catalog
from miqa_nb.core import permissions
from miqa_nb.core.errors import ImportFileError, MiqaError, NotFound, PermissionDenied
from miqa_nb.core.identity import named_user
from miqa_nb.core.permissions import Standing
from miqa_nb.core.report import Report
from miqa_nb.core.signin import link_url
from miqa_nb.core.vocabulary import Role, ScanState
from miqa_nb.dashboard.folders import PageFolders
from miqa_nb.volumes.thumbnails import catalog_thumbnail_dir

__all__ = [
    "IDENTITY_ENV",
    "AdminActions",
    "Identity",
    "Secret",
    "default_thumbnail_dir",
    "filter_overview",
    "overview_table",
    "readable_error",
    "resolve_user",
    "visible_projects",
]

log = logging.getLogger(__name__)

#: How the served page learns its user: ``hub`` (``JUPYTERHUB_USER``) or ``server``
#: (the signed-in user the server names). Set by :mod:`miqa_nb.serve`; unset in a
#: plain notebook.
IDENTITY_ENV = "MIQA_NB_IDENTITY"

ALL = "all"


# --------------------------------------------------------------------- identity


@dataclass(frozen=True)
class Identity:
    """Who a dashboard page belongs to, or why nobody: exactly one is set."""

    user: str | None = None
    refusal: str | None = None


def resolve_user(
    catalog: Catalog,
    environ: Mapping[str, str],
    query_string: str | None,
    page_user: str | None = None,
) -> Identity:
    """Find the page's user and check that the catalog knows them.

    Parameters
    ----------
    catalog : Catalog
    environ : mapping
        The kernel's environment. ``MIQA_NB_IDENTITY=hub`` takes ``JUPYTERHUB_USER``
        (the hub authenticated the user); ``MIQA_NB_IDENTITY=server`` takes
        ``page_user``, the signed-in user the server named. Unset (a notebook outside
        :mod:`miqa_nb.serve`, on its user's own account): the user the environment
        names (:func:`miqa_nb.core.identity.named_user`: ``MIQA_NB_USER``, then
        ``JUPYTERHUB_USER``), then the query string's ``user`` -- never the login name,
        which on a server is the server's account. The query string never names the
        user of a served page.
    query_string : str or None
        The page URL's query string (a notebook's only).
    page_user : str, optional
        The user the server verified (``MIQA_NB_IDENTITY=server``).

    Returns
    -------
    Identity
        ``user`` when the catalog knows them, else ``refusal``: a sentence to show.
    """
    mode = environ.get(IDENTITY_ENV, "")
    if mode == "hub":
        name = environ.get("JUPYTERHUB_USER", "")
        if not name:
            return Identity(refusal="JupyterHub did not name the user (JUPYTERHUB_USER is unset).")
    elif mode == "server":
        name = page_user or ""
        if not name:
            return Identity(
                refusal="This page does not know who you are: sign in again, then reload."
            )
    elif mode:
        return Identity(refusal=f"Unknown way to find the page's user: {IDENTITY_ENV}={mode}.")
    else:
        from_query = parse_qs(query_string or "").get("user", [""])[-1].strip()
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
    Scans of experiments held in quarantine are left out (they are not under review).
    """
    scans = catalog.scans(project)
    scans = scans[~scans["quarantined"].astype(bool)]
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

    Paths are checked here, where the action runs, because the page is untrusted (a
    crafted widget message can set any value): an import path must lie inside the data
    roots, an export path inside the export folder (``folders``, default
    :meth:`PageFolders.of` the catalog; see :mod:`miqa_nb.dashboard.folders`). Paths
    are checked as they are saved and again, as stored, when an import or export runs;
    the import reads, and the export writes, the real path that was checked.
    """

    catalog: Catalog
    user: str
    project: str | None = None
    folders: PageFolders | None = field(default=None, repr=False)
    #: The served dashboard's address, which sign-in links start with (None: unknown,
    #: the link then says ``http://127.0.0.1:PORT/``).
    server_url: str | None = None

    @cached_property
    def confined(self) -> PageFolders:
        """The folders this page's paths may name (``folders``, else the catalog's)."""
        return self.folders if self.folders is not None else PageFolders.of(self.catalog)

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

    def _checked(self, import_path: str, export_path: str) -> tuple[str | None, str | None]:
        """Both paths confined (blank gives None), or a refusal before anything changes."""
        return (
            self.confined.import_file("Import path", import_path) if import_path.strip() else None,
            self.confined.export_file("Export path", export_path) if export_path.strip() else None,
        )

    def set_paths(self, import_path: str = "", export_path: str = "") -> None:
        """Change the project's paths (blank leaves a path as it is).

        The import path must lie inside the data roots; the export path inside the
        export folder (a relative one is taken from there). The real paths checked are
        saved; a refusal (:class:`~miqa_nb.dashboard.folders.PathRefused`) changes nothing.
        """
        project = self._require("change the paths")
        checked_import, checked_export = self._checked(import_path, export_path)
        self.catalog.set_project_paths(
            project, by=self.user, import_path=checked_import, export_path=checked_export
        )

    def _stored(self, which: str, stored: str | None, where: str) -> str:
        if not stored:
            raise MiqaError(
                f"no {which} path is set; set it first (the dashboard's Administration tab, "
                f"{where})"
            )
        return stored

    def import_project(self, *, mode: str = "replace", dry_run: bool = True) -> Report:
        """Import the project from its import path (a dry run unless told otherwise),
        once the path is found inside the data roots (else nothing is read)."""
        project = self._require("import")
        stored = self._stored("import", self.paths()["import_path"], "Paths, Import path")
        path = self.confined.import_file("The project's import path", stored)
        return self.catalog.import_file(
            path, by=self.user, project=project, mode=mode, dry_run=dry_run
        )

    def export_project(self, *, spreadsheet_safe: bool = True) -> Path:
        """Export the project to its export path.

        A CSV export is spreadsheet-safe unless told otherwise: people who export from
        the dashboard open the file in a spreadsheet, which would run a value that
        begins like a formula (``=``, ``+``, ``-``, ``@``, a tab, a carriage return);
        such values get a ``'`` in front. ``spreadsheet_safe=False`` writes MIQA's exact
        form (to import back, into miqa_nb or MIQA). See :meth:`Catalog.export_file`.
        """
        project = self._require("export")
        stored = self._stored("export", self.paths()["export_path"], "Paths, Export path")
        path = self.confined.export_file("The project's export path", stored)
        return self.catalog.export_file(
            path, by=self.user, project=project, spreadsheet_safe=spreadsheet_safe
        )

    def global_paths(self) -> dict[str, str | None]:
        """The global import and export paths (superusers)."""
        self._require_global("see the global paths")
        return self.catalog.global_paths()

    def set_global_paths(self, import_path: str = "", export_path: str = "") -> None:
        """Change the global paths (blank leaves a path as it is), confined as
        :meth:`set_paths`."""
        self._require_global("change the global paths")
        checked_import, checked_export = self._checked(import_path, export_path)
        self.catalog.set_global_paths(
            by=self.user, import_path=checked_import, export_path=checked_export
        )

    def import_global(self, *, mode: str = "replace", dry_run: bool = True) -> Report:
        """Import every project of the global import file (superusers), once the path
        is found inside the data roots (else nothing is read)."""
        self._require_global("run a global import")
        where = "'Global import and export', Import path"
        stored = self._stored("global import", self.catalog.global_paths()["import_path"], where)
        path = self.confined.import_file("The global import path", stored)
        return self.catalog.import_file(path, by=self.user, mode=mode, dry_run=dry_run)

    def export_global(self, *, spreadsheet_safe: bool = True) -> Path:
        """Export every project to the global export file (superusers), once the path is
        found inside the export folder; spreadsheet-safe unless told otherwise, as
        :meth:`export_project`."""
        self._require_global("run a global export")
        where = "'Global import and export', Export path"
        stored = self._stored("global export", self.catalog.global_paths()["export_path"], where)
        path = self.confined.export_file("The global export path", stored)
        return self.catalog.export_file(path, by=self.user, spreadsheet_safe=spreadsheet_safe)

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

    def quarantined(self) -> pd.DataFrame:
        """The project's experiments held in quarantine: experiment, scans, frames,
        quarantined_by, since_utc."""
        project = self._require("see the quarantined experiments")
        return self.catalog.quarantined(project).drop(columns="project")

    def release_quarantine(self, experiment: str) -> None:
        """Release one of the project's quarantined experiments into review."""
        project = self._require(f"release experiment {experiment!r}")
        self.catalog.release_quarantine(project, str(experiment), by=self.user)
        log.info("%s released %s of %s from quarantine", self.user, experiment, project)

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

    # ------------------------------------------------------------ credentials
    # Superusers only, although the catalog lets users change their own: this panel
    # acts on other people's accounts, and a project's creator may not.

    def credentials(self) -> pd.DataFrame:
        """Every user: ``name``, ``superuser`` and whether they have a ``password``."""
        self._require_global("see who has a password")
        return self.catalog.users().loc[:, ["name", "superuser", "password"]]

    def set_password(self, member: str, password: str, again: str) -> None:
        """Set ``member``'s password, typed twice (superusers). Neither value appears in
        an error, a log or a return value."""
        self._require_global("set passwords")
        if password != again:
            raise MiqaError("the two passwords differ: type the same password in both fields")
        self.catalog.set_password(member, password, by=self.user)
        log.info("%s set the password of %s", self.user, member)

    def signin_link(self, member: str, minutes: float = 30) -> Secret:
        """Make a one-time sign-in link for ``member``, valid ``minutes`` (superusers)."""
        self._require_global("make sign-in links")
        server = self.server_url or "http://127.0.0.1:PORT/"
        link_url(server, "")  # a wrong address is refused before a link is made
        secret = self.catalog.create_signin_link(member, by=self.user, minutes=minutes)
        expires = datetime.now(UTC) + timedelta(minutes=minutes)
        log.info("%s made a sign-in link for %s", self.user, member)
        return Secret("sign-in link", member, link_url(server, secret), expires)

    def create_token(self, member: str, expires_days: str | float | None = None) -> Secret:
        """Make an API token for ``member`` (superusers); ``expires_days`` blank or
        None: it never expires."""
        self._require_global("make API tokens")
        days = _days(expires_days)
        token_id, token = self.catalog.create_token(member, by=self.user, expires_days=days)
        listing = self.catalog.tokens(member, by=self.user)
        expires = listing.loc[listing["id"] == token_id, "expires_utc"].dropna()
        log.info("%s made API token %s for %s", self.user, token_id, member)
        until = pd.Timestamp(expires.iloc[0]).to_pydatetime() if len(expires) else None
        return Secret("API token", member, token, until, token_id)

    def tokens(self, member: str) -> pd.DataFrame:
        """``member``'s tokens (never the tokens themselves): id, created_utc,
        expires_utc, revoked_utc, last_used_utc (superusers)."""
        self._require_global("see API tokens")
        return self.catalog.tokens(member, by=self.user)

    def revoke_token(self, member: str, token_id: str) -> None:
        """Revoke ``member``'s token ``token_id`` (superusers)."""
        self._require_global("revoke API tokens")
        self.catalog.revoke_token(member, token_id, by=self.user)
        log.info("%s revoked API token %s of %s", self.user, token_id, member)


@dataclass(frozen=True)
class Secret:
    """A secret made for ``user``, to be shown once: a sign-in link or an API token.

    ``text`` (the link or the token) stays out of ``repr``, so a log or a traceback
    that prints this object does not carry it.
    """

    kind: str
    user: str
    text: str = field(repr=False)
    expires_utc: datetime | None = None
    token_id: str | None = None


def _days(value: str | float | None) -> float | None:
    """A token's lifetime in days from what the page sent: blank or None is none."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        days = float(value)
    except ValueError:
        raise MiqaError(
            f"a token's expiry is a number of days, or blank for none; {value!r} was provided"
        ) from None
    if not math.isfinite(days):
        raise MiqaError(f"a token's expiry must be a finite number of days; {value!r} was provided")
    return days


def _none_if_missing(value: object) -> str | None:
    return None if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)


# -------------------------------------------------------------------- thumbnails


def default_thumbnail_dir(catalog_path: str | os.PathLike[str]) -> Path:
    """``MIQA_NB_THUMBNAIL_DIR``, else ``<catalog>-thumbnails`` beside the catalog."""
    return catalog_thumbnail_dir(catalog_path)
