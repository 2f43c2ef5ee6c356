"""Archive DICOM sessions into the catalog: an experiment per session, a scan per series.

What XNAT's ``/data/services/import`` does with ``dest=/archive...`` (the prearchive,
where sessions wait first, is not built yet): each session of the upload becomes an
experiment of its project, each series a scan, converted to NIfTI under the catalog's
data folder (``<data>/<project>/<experiment>/<scan>/``), and the frames are imported
with the catalog's own import (``mode="append"``), so they are validated, permission-
checked and written in one transaction like any import, visible in the review queue
at once and exported by MIQA's CSV and JSON like any other scan.

Nothing partial: a refusal (permission, an archived session of the same label with
``overwrite=none``, a series dcm2niix cannot convert) leaves neither files nor rows.
"""

from __future__ import annotations

import csv
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from miqa_nb.catalog import Catalog
from miqa_nb.core import permissions
from miqa_nb.core.errors import MiqaError, NotFound
from miqa_nb.exchange.formats import MIQA_COLUMNS
from miqa_nb.ingest.convert import convert_all
from miqa_nb.ingest.dicom import Session

__all__ = ["MISC", "ArchiveConflict", "Archived", "archive_sessions", "data_folder"]

#: The catalog's type for a series whose type could not be guessed.
MISC = "MISC"
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


class ArchiveConflict(MiqaError):
    """An archived session of the same label exists and ``overwrite`` is ``none``."""


@dataclass(frozen=True)
class Archived:
    """One archived session: where it is, in XNAT's words and in the catalog's."""

    project: str
    subject: str
    experiment: str
    scans: tuple[str, ...]

    @property
    def uri(self) -> str:
        """XNAT's address of the created experiment (``text/uri-list`` line)."""
        return (
            f"/data/archive/projects/{self.project}/subjects/{self.subject}"
            f"/experiments/{self.experiment}"
        )


def data_folder(catalog: Catalog) -> Path:
    """Where converted scans go: ``<catalog>-data/`` beside the catalog file."""
    return catalog.path.with_name(catalog.path.stem + "-data")


def _safe(text: str) -> str:
    return _SAFE.sub("_", text).strip("._-") or "x"


def archive_sessions(
    catalog: Catalog,
    sessions: tuple[Session, ...] | list[Session],
    *,
    by: str,
    overwrite: str = "none",
) -> list[Archived]:
    """Convert and import ``sessions`` as experiments of their projects.

    Parameters
    ----------
    catalog : Catalog
    sessions : sequence of Session
        Routed sessions (:func:`~miqa_nb.ingest.dicom.read_sessions`); each needs a
        project and a session label.
    by : str
        The user importing: a reviewer of the project, its creator or a superuser.
    overwrite : {'none', 'append'}
        An experiment of the same name already in the project: ``none`` refuses
        (:class:`ArchiveConflict`), ``append`` adds the series it lacks (``delete``,
        replacing it, is not built yet and is refused).

    Returns
    -------
    list of Archived
    """
    if overwrite == "delete":
        raise MiqaError(
            "overwrite=delete (replace an archived session) is not built yet; send "
            "overwrite=append to add new series, or remove the experiment first"
        )
    if overwrite not in ("none", "append"):
        raise MiqaError(f"overwrite must be none, append or delete; {overwrite!r} was provided")
    plans = []
    known = set(catalog.projects()["project"])
    for session in sessions:
        route = session.route
        if not route.project:
            raise MiqaError(
                f"session {session.study_uid} names no project (no Project: comment, "
                "StudyDescription or AccessionNumber): give project= or "
                "dest=/archive/projects/P"
            )
        if route.project not in known:
            raise NotFound(f"project {route.project!r} is not in the catalog")
        permissions.require_transfer(catalog.standing(by, route.project), "import scans")
        experiment = route.session or session.study_uid
        existing = catalog.sql(  # the names only: catalog.scans() works out every state
            "SELECT name FROM scans WHERE project = ? AND experiment = ?",
            [route.project, experiment],
        )
        had = set(existing["name"].astype(str))
        if had and overwrite == "none":
            raise ArchiveConflict(
                f"session {experiment!r} is already archived in project {route.project!r}; "
                "send overwrite=append to add new series or overwrite=delete to replace it"
            )
        series = [s for s in session.series if overwrite != "append" or s.scan_id not in had]
        plans.append((session, route.project, route.subject or experiment, experiment, series))

    data = data_folder(catalog)
    work = Path(tempfile.mkdtemp(prefix=".archiving-", dir=_ensure(data)))
    moved: list[Path] = []
    try:
        rows, archived = [], []
        jobs = [
            (one, work / _safe(project) / _safe(experiment) / _safe(one.scan_id), "scan")
            for _session, project, _subject, experiment, series in plans
            for one in series
        ]
        converted_all = iter(convert_all(jobs, sidecar=True))  # concurrently, in job order
        for _session, project, subject, experiment, series in plans:
            for one in series:
                converted = next(converted_all)
                for frame, image in enumerate(converted.frames):
                    final = data / image.relative_to(work)
                    rows.append(
                        {
                            "project_name": project,
                            "experiment_name": experiment,
                            "scan_name": one.scan_id,
                            "scan_type": one.scan_type or MISC,
                            "frame_number": str(frame),
                            "file_location": str(final),
                        }
                    )
            archived.append(
                Archived(project, subject, experiment, tuple(s.scan_id for s in series))
            )
        if any(row["scan_type"] == MISC for row in rows):
            _accept_misc(catalog)
        for _session, project, _subject, experiment, _series in plans:
            target = data / _safe(project) / _safe(experiment)
            staged = work / _safe(project) / _safe(experiment)
            if not staged.exists():
                continue
            for scan_dir in staged.iterdir():
                destination = target / scan_dir.name
                if destination.exists():  # a series already archived (append) stays
                    raise ArchiveConflict(f"{destination} exists already; nothing was changed")
                destination.parent.mkdir(parents=True, exist_ok=True)
                scan_dir.rename(destination)
                moved.append(destination)
        _import(catalog, rows, by=by, roots=[data])
        return archived
    except BaseException:
        for path in moved:
            shutil.rmtree(path, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _ensure(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _accept_misc(catalog: Catalog) -> None:
    """Make ``MISC`` a type of this catalog (as a superuser would)."""
    if catalog.scan_types().parse(MISC):
        return
    users = catalog.users()
    superusers = users.loc[users["superuser"], "name"]
    if superusers.empty:  # pragma: no cover - a catalog always has its first superuser
        raise MiqaError("the catalog has no superuser to accept the scan type MISC")
    catalog.add_scan_type(MISC, by=str(superusers.iloc[0]))


def _import(catalog: Catalog, rows: list[dict[str, str]], *, by: str, roots: list[Path]) -> None:
    """Import the frames, project by project, as an append (one transaction each)."""
    projects = sorted({row["project_name"] for row in rows})
    with_roots = Catalog(catalog.path, data_roots=[*roots])
    for project in projects:
        with tempfile.NamedTemporaryFile(
            "w", suffix=".csv", newline="", encoding="utf-8", delete=False
        ) as handle:
            writer = csv.DictWriter(handle, fieldnames=list(MIQA_COLUMNS))
            writer.writeheader()
            writer.writerows(
                {c: row.get(c, "") for c in MIQA_COLUMNS}
                for row in rows
                if row["project_name"] == project
            )
        try:
            with_roots.import_file(Path(handle.name), by=by, project=project, mode="append")
        finally:
            Path(handle.name).unlink(missing_ok=True)
