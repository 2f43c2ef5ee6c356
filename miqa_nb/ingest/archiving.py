"""Archive DICOM sessions into the catalog: an experiment per session, a scan per series.

What XNAT's ``/data/services/import`` does with ``dest=/archive...`` (and
``/data/services/archive`` with a prearchive entry): each session becomes an
experiment of its project, each series a scan, converted to NIfTI under the catalog's
data folder (``<data>/<project>/<experiment>/<scan>/``), and the frames are imported
with the catalog's own import, one transaction per project, so they are validated,
permission-checked and written like any import, visible in the review queue at once
and exported by MIQA's CSV and JSON like any other scan.

``overwrite`` says what happens to an experiment of the same label already archived:
``none`` refuses (:class:`ArchiveConflict`), ``append`` adds the series it lacks,
``delete`` replaces it. A replacement is converted into a folder of its own
(``<data>/<project>/<experiment>.<time>/``) and imported with the mode
``replace-experiments``: the catalog backs the project up first (``<catalog>-backups/``,
as before any replacing import), then in one transaction removes the experiment's
scans, frames and decisions and adds the session's. The decisions go with the images
they were about; they stay in the backup. As for any replacing import, a reviewer may
remove only its own decisions: a session others have reviewed is replaced by the
project's creator or a superuser (otherwise 403, nothing changed). The old converted
files are removed only once that transaction has committed, and only those inside the
data folder (the backup keeps the rows, not the images: restoring it needs the old
session uploaded again).

Nothing partial: a refusal (permission, an archived session with ``overwrite=none``, a
series dcm2niix cannot convert) leaves neither files nor rows. A server killed while
archiving leaves its work folder ``<data>/.archiving-*`` (whose lock it held), whose
journal names the scan folders it was putting in place and those it was replacing;
:func:`sweep_data`, run when the server starts, removes those of them no frame points
at, then the work folder.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import json
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from miqa_nb.catalog import Catalog
from miqa_nb.core import permissions
from miqa_nb.core.errors import MiqaError, NotFound
from miqa_nb.exchange.apply import REPLACE_EXPERIMENTS
from miqa_nb.exchange.formats import MIQA_COLUMNS
from miqa_nb.ingest.convert import convert_all
from miqa_nb.ingest.dicom import Series, Session
from miqa_nb.ingest.pipelines import run_pipelines

__all__ = [
    "MISC",
    "OVERWRITE",
    "ArchiveConflict",
    "Archived",
    "archive_sessions",
    "data_folder",
    "hold",
    "import_rows",
    "sweep_data",
]

#: The catalog's type for a series whose type could not be guessed.
MISC = "MISC"
#: XNAT's ``overwrite`` values.
OVERWRITE = ("none", "append", "delete")
#: An archive converts into ``<data>/.archiving-XXXX/`` first, holding ``.in-use`` locked.
WORK_PREFIX, LOCK_NAME = ".archiving-", ".in-use"
#: The work folder's list of the scan folders an archive puts in place and replaces.
JOURNAL = "journal.json"
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
    quarantine: bool = False,
    trigger_pipelines: bool = True,
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
    overwrite : {'none', 'append', 'delete'}
        An experiment of the same name already in the project: ``none`` refuses
        (:class:`ArchiveConflict`), ``append`` adds the series it lacks, ``delete``
        replaces it (its scans, frames and decisions) by the session's, after the
        catalog's automatic backup of the project; its old converted files are removed
        once the import has committed.
    quarantine : bool
        Hold the experiments in quarantine (XNAT's ``quarantine=true``), in the
        import's own transaction: no review queue shows them until released.
    trigger_pipelines : bool
        Run the project's automatic processing (:mod:`miqa_nb.ingest.pipelines`) in
        the background afterwards (XNAT's ``triggerPipelines``, default true).

    Returns
    -------
    list of Archived
    """
    if overwrite not in OVERWRITE:
        raise MiqaError(f"overwrite must be none, append or delete; {overwrite!r} was provided")
    # the checks read the catalog through one read-only peek (about 1 ms to open)
    with catalog.store.peek():
        plans = _plan(catalog, sessions, by, overwrite)
    data = data_folder(catalog)
    work = Path(tempfile.mkdtemp(prefix=WORK_PREFIX, dir=_ensure(data)))
    lock = hold(work / LOCK_NAME)  # a sweep at start-up removes it only once released
    moved: dict[str, list[Path]] = {}
    try:
        rows, archived = [], []
        jobs = [
            (one, work / _safe(plan.project) / plan.place / _safe(one.scan_id), "scan")
            for plan in plans
            for one in plan.series
        ]
        converted_all = iter(convert_all(jobs, sidecar=True))  # concurrently, in job order
        for plan in plans:
            project, experiment = plan.project, plan.experiment
            for one in plan.series:
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
                Archived(project, plan.subject, experiment, tuple(s.scan_id for s in plan.series))
            )
        # one connection (and the catalog's lock) from here to the last commit: opening
        # the file costs more than any of the reads and writes below
        with catalog.store.connect():
            if any(row["scan_type"] == MISC for row in rows):
                _accept_misc(catalog)
            projects = sorted({row["project_name"] for row in rows})
            old = {
                project: _files_of(
                    catalog,
                    project,
                    [p.experiment for p in plans if p.project == project and p.replace],
                    data,
                )
                for project in projects
            }
            places = [
                (
                    work / _safe(plan.project) / plan.place / d.name,
                    data / _safe(plan.project) / plan.place / d.name,
                    plan.project,
                )
                for plan in plans
                if (work / _safe(plan.project) / plan.place).exists()
                for d in sorted((work / _safe(plan.project) / plan.place).iterdir())
            ]
            # what a sweep after a kill must look at: the series put in place, the replaced ones
            _journal(work, [d for _, d, _ in places], [f.parent for fs in old.values() for f in fs])
            for staged, destination, project in places:
                if destination.exists():  # a series already archived (append) stays
                    raise ArchiveConflict(f"{destination} exists already; nothing was changed")
                destination.parent.mkdir(parents=True, exist_ok=True)
                staged.rename(destination)
                moved.setdefault(project, []).append(destination)
            for project in projects:
                mode = REPLACE_EXPERIMENTS if _replaces(plans, project) else "append"
                import_rows(
                    catalog,
                    [r for r in rows if r["project_name"] == project],
                    by=by,
                    roots=[data],
                    mode=mode,
                    quarantine=quarantine,
                )
                moved.pop(project, None)  # committed: these stay
                _remove_scan_folders(old[project], data)
        if trigger_pipelines:
            run_pipelines(catalog, archived)
        return archived
    except BaseException:
        for paths in moved.values():  # of the projects whose import did not commit
            for path in paths:
                shutil.rmtree(path, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
        lock.close()


@dataclass(frozen=True)
class _Plan:
    """What one session becomes: its experiment, and the folder its scans go in."""

    project: str
    subject: str
    experiment: str
    place: str
    series: list[Series]
    replace: bool


def _plan(catalog: Catalog, sessions: Sequence[Session], by: str, overwrite: str) -> list[_Plan]:
    """Check each session (its project exists, ``by`` may import into it, an archived
    experiment of its label is allowed by ``overwrite``) and plan where it goes."""
    plans = []
    known = set(catalog.sql("SELECT name FROM projects")["name"])
    stamp = catalog.clock().strftime("%Y%m%dT%H%M%S%f")
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
        replace = bool(had) and overwrite == "delete"
        # a replacement is converted beside the files it replaces, removed after commit
        place = f"{_safe(experiment)}.{stamp}" if replace else _safe(experiment)
        series = [s for s in session.series if overwrite != "append" or s.scan_id not in had]
        plans.append(
            _Plan(route.project, route.subject or experiment, experiment, place, series, replace)
        )
    return plans


def _files_of(catalog: Catalog, project: str, experiments: list[str], data: Path) -> list[Path]:
    """The frame files of ``experiments`` that lie in the data folder (never others)."""
    if not experiments:
        return []
    frames = catalog.frames(project)
    locations = frames.loc[frames["experiment"].isin(experiments), "location"]
    return [Path(str(p)) for p in locations if _inside(Path(str(p)), data)]


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except (OSError, ValueError):
        return False
    return path.resolve() != folder.resolve()


def _remove_scan_folders(files: list[Path], data: Path) -> None:
    """Remove the scan folders of replaced files, and their experiment folders once empty."""
    for folder in sorted({f.parent for f in files}):
        if _inside(folder, data) and folder.resolve().parent != data.resolve():
            shutil.rmtree(folder, ignore_errors=True)
            with contextlib.suppress(OSError):
                folder.parent.rmdir()


def hold(path: Path) -> IO[bytes]:
    """Open ``path`` and hold an exclusive lock on it until it is closed (or the process
    ends, however it ends)."""
    handle = open(path, "wb")  # noqa: SIM115 - held until the work is done
    fcntl.flock(handle, fcntl.LOCK_EX)
    return handle


def _free(path: Path) -> bool:
    """True when nobody holds the lock ``path`` (a missing file counts as free)."""
    try:
        with open(path, "ab") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:
        return True
    return True


def _replaces(plans: list[_Plan], project: str) -> bool:
    return any(p.project == project and p.replace for p in plans)


def _journal(work: Path, placed: list[Path], replaced: list[Path]) -> None:
    record = {"placed": [str(p) for p in placed], "replaced": sorted({str(p) for p in replaced})}
    partial = work / (JOURNAL + ".part")
    partial.write_text(json.dumps(record, indent=1), encoding="utf-8")
    os.replace(partial, work / JOURNAL)


def sweep_data(catalog: Catalog) -> list[Path]:
    """Remove what killed archives left in the data folder; return what was removed.

    A work folder ``.archiving-*`` whose lock nobody holds belonged to an archive that
    was stopped. Its journal names the scan folders it put in place and those it was
    replacing: each that no frame of the catalog points at goes (series of an import
    that never committed, replaced series whose removal was cut short), then the work
    folder. Nothing else in the data folder is touched. Called when the server starts.
    """
    data = data_folder(catalog)
    if not data.is_dir():
        return []
    removed = []
    for work in sorted(data.glob(WORK_PREFIX + "*")):
        if not work.is_dir() or not _free(work / LOCK_NAME):
            continue  # an archive of a live server
        with contextlib.suppress(OSError, ValueError):
            record = json.loads((work / JOURNAL).read_text(encoding="utf-8"))
            folders = [Path(p) for p in (*record["placed"], *record["replaced"])]
            used = _used_folders(catalog, data)
            for folder in folders:
                if folder.is_dir() and _inside(folder, data) and str(folder.resolve()) not in used:
                    shutil.rmtree(folder, ignore_errors=True)
                    removed.append(folder)
                    with contextlib.suppress(OSError):
                        folder.parent.rmdir()  # the experiment folder, once empty
        shutil.rmtree(work, ignore_errors=True)
        removed.append(work)
    return removed


def _used_folders(catalog: Catalog, data: Path) -> set[str]:
    """The folders of the data folder that frames of the catalog point into (resolved)."""
    found = catalog.sql(
        "SELECT DISTINCT location FROM frames WHERE starts_with(location, ?) "
        "OR starts_with(location, ?)",
        [str(data) + os.sep, str(data.resolve()) + os.sep],
    )
    return {str(folder.resolve()) for folder in {Path(str(p)).parent for p in found["location"]}}


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


def import_rows(
    catalog: Catalog,
    rows: list[dict[str, str]],
    *,
    by: str,
    roots: list[Path],
    mode: str = "append",
    quarantine: bool = False,
) -> None:
    """Import one project's frames (MIQA rows) with the catalog's own import, in one
    transaction (``append``, or ``replace-experiments`` for a session that replaces its
    experiment), the files' folders ``roots`` as data roots, held in quarantine when
    asked, in the same transaction."""
    project = rows[0]["project_name"]
    with_roots = catalog.with_data_roots(roots)  # in the connection already open, if any
    with tempfile.NamedTemporaryFile(
        "w", suffix=".csv", newline="", encoding="utf-8", delete=False
    ) as handle:
        writer = csv.DictWriter(handle, fieldnames=list(MIQA_COLUMNS))
        writer.writeheader()
        writer.writerows({c: row.get(c, "") for c in MIQA_COLUMNS} for row in rows)
    try:
        with_roots.import_file(
            Path(handle.name), by=by, project=project, mode=mode, quarantine=quarantine
        )
    finally:
        Path(handle.name).unlink(missing_ok=True)
