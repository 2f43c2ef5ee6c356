"""XNAT's staging area (the prearchive): sessions waiting on disk to be archived.

An upload sent with ``dest=/prearchive...`` (or routed there by its headers) is not
archived at once: each of its sessions becomes an entry
``<catalog>-prearchive/<project or Unassigned>/<timestamp>/<session>/`` holding the
session's DICOM files (``SCANS/<scan>/DICOM/<file>``, as XNAT lays them out) and a small
record (``prearchive.json``: status, subject, StudyInstanceUID, scans, who uploaded it
and when). The timestamp is XNAT's ``yyyyMMdd_HHmmssSSS``.

An entry is READY, or CONFLICT when its project already holds an experiment of that
label, or ERROR when its files could not be read again. While a request acts on it, it
shows ARCHIVING, DELETING or MOVING and the request holds its lock (``.in-use``,
``flock``), so two requests never act on it at once (the second is refused, 409). An
entry a killed server left in such a status is settled as soon as anyone looks at it
and when a server starts (:func:`settle`, :func:`settle_all`): ARCHIVING and MOVING
take READY or CONFLICT again, read against the catalog; DELETING takes ERROR (its files
may be partly gone; delete it again).

Archiving an entry (:func:`archive_entry`) re-reads its files and archives them with
:func:`~miqa_nb.ingest.archiving.archive_sessions` (``overwrite`` none, append or
delete), under its own project, subject and label or others given, then removes it.
Moving (:func:`move_entries`, :func:`move_entry`) renames entries into another
project's part, status read again there. Who sees and acts on an entry: superusers
all (the Unassigned part too, which only they see), others the entries of projects
they may import into; archiving or moving into a project needs that right there too.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from miqa_nb.catalog import Catalog
from miqa_nb.core import permissions
from miqa_nb.core.errors import MiqaError, NotFound, PermissionDenied
from miqa_nb.ingest.archiving import ArchiveConflict, Archived, archive_sessions
from miqa_nb.ingest.dicom import Session, read_sessions

__all__ = [
    "ARCHIVING",
    "BUILDING",
    "BUSY",
    "CONFLICT",
    "DELETING",
    "ERROR",
    "MOVING",
    "READY",
    "RECEIVING",
    "UNASSIGNED",
    "Entry",
    "archive_entry",
    "delete_entry",
    "entries",
    "get_entry",
    "move_entries",
    "move_entry",
    "new_record",
    "parse_src",
    "prearchive_root",
    "rebuild_entry",
    "settle",
    "settle_all",
    "stage_sessions",
]

READY, CONFLICT, ERROR = "READY", "CONFLICT", "ERROR"
ARCHIVING, DELETING, MOVING = "ARCHIVING", "DELETING", "MOVING"
#: A gradual-DICOM entry still taking files, or being read once quiet: XNAT allows
#: only delete and rebuild then (:mod:`miqa_nb.ingest.gradual`).
RECEIVING, BUILDING = "RECEIVING", "BUILDING"
#: The statuses of an entry a request is acting on.
BUSY = (ARCHIVING, DELETING, MOVING)
#: The file of an entry that a request acting on it holds locked (``flock``).
LOCK = ".in-use"
#: Where sessions naming no project of the catalog wait (superusers only).
UNASSIGNED = "Unassigned"
RECORD = "prearchive.json"
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
_TIMESTAMP = re.compile(r"^\d{8}_\d{9}$")


@dataclass(frozen=True)
class Entry:
    """One staged session, as its record describes it."""

    project: str
    timestamp: str
    folder: str
    status: str
    subject: str
    label: str
    study_uid: str
    scans: tuple[dict[str, Any], ...]
    uploaded: str
    lastmod: str
    by: str
    scan_date: str
    message: str
    path: Path

    @property
    def url(self) -> str:
        """XNAT's address of the entry (``/prearchive/projects/P/TS/SESSION``)."""
        return f"/prearchive/projects/{self.project}/{self.timestamp}/{self.folder}"

    def row(self) -> dict[str, str]:
        """The entry as a row of XNAT's prearchive listing."""
        return {
            "project": self.project,
            "timestamp": self.timestamp,
            "folderName": self.folder,
            "name": self.label,
            "subject": self.subject,
            "status": self.status,
            "url": self.url,
            "tag": self.study_uid,
            "scan_date": self.scan_date,
            "uploaded": self.uploaded,
            "lastmod": self.lastmod,
        }


def prearchive_root(catalog: Catalog) -> Path:
    """``<catalog>-prearchive/`` beside the catalog file."""
    return catalog.path.with_name(catalog.path.stem + "-prearchive")


def _safe(text: str) -> str:
    return _SAFE.sub("_", text).strip("._-") or "x"


def _now() -> datetime.datetime:
    return datetime.datetime.now()


def _iso(when: datetime.datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _may_import(catalog: Catalog, user: str, project: str) -> bool:
    if project == UNASSIGNED:
        return catalog.standing(user).superuser
    return catalog.standing(user, project).can_transfer


def _require(catalog: Catalog, user: str, project: str, action: str) -> None:
    if project == UNASSIGNED:
        permissions.require_superuser(catalog.standing(user), f"{action} unassigned sessions")
    else:
        permissions.require_transfer(catalog.standing(user, project), action)


def stage_sessions(
    catalog: Catalog, sessions: tuple[Session, ...] | list[Session], *, by: str
) -> list[Entry]:
    """Move each session's files into an entry of the staging area.

    A session whose project is not in the catalog (or names none) goes to the
    Unassigned part; any other needs ``by`` to be allowed to import into its project
    (:func:`~miqa_nb.core.permissions.require_transfer`), checked for every session
    before anything moves. The files are moved, not copied.
    """
    known = set(catalog.projects()["project"])
    targets = []
    for session in sessions:
        project = session.route.project if session.route.project in known else None
        if project is not None:
            permissions.require_transfer(catalog.standing(by, project), "import scans")
        elif not any(_may_import(catalog, by, p) for p in known) and not _may_import(
            catalog, by, UNASSIGNED
        ):
            raise PermissionDenied(
                f"user {by!r} may not stage sessions: only the reviewers of a project, its "
                "creator and superusers may import scans"
            )
        targets.append((session, project or UNASSIGNED))
    now = _now()
    staged = []
    for session, project in targets:
        label = session.route.session or session.study_uid
        entry = _free_entry(catalog, project, label, now)
        scans = []
        for series in session.series:
            target = entry / "SCANS" / _safe(series.scan_id) / "DICOM"
            target.mkdir(parents=True, exist_ok=True)
            for n, source in enumerate(series.files):
                name = source.name if not (target / source.name).exists() else f"{n}-{source.name}"
                shutil.move(source, target / name)
            scans.append(
                {
                    "id": series.scan_id,
                    "folder": _safe(series.scan_id),
                    "description": series.description,
                    "type": series.scan_type or "",
                    "files": len(series.files),
                }
            )
        entry.mkdir(parents=True, exist_ok=True)
        status = _status(catalog, project, label)
        _write(
            entry, new_record(project, label, session, by=by, when=now, status=status, scans=scans)
        )
        staged.append(_entry(entry))
    return staged


def _timestamp(when: datetime.datetime) -> str:
    """XNAT's entry timestamp, ``yyyyMMdd_HHmmssSSS``."""
    return when.strftime("%Y%m%d_%H%M%S") + f"{when.microsecond // 1000:03d}"


def _free_entry(catalog: Catalog, project: str, label: str, when: datetime.datetime) -> Path:
    """Where a new entry of ``label`` goes: ``<project>/<timestamp>/<label>`` at ``when``,
    or a millisecond later while that is taken (the same session within the same ms)."""
    base = prearchive_root(catalog) / _safe(project)
    while (base / _timestamp(when) / _safe(label)).exists():
        when += datetime.timedelta(milliseconds=1)
    return base / _timestamp(when) / _safe(label)


def new_record(
    project: str,
    label: str,
    session: Session,
    *,
    by: str,
    when: datetime.datetime,
    status: str,
    scans: list[dict[str, Any]],
) -> dict[str, Any]:
    """The record (``prearchive.json``) of a new entry of ``session``."""
    return {
        "project": project,
        "label": label,
        "subject": session.route.subject or "",
        "study_uid": session.study_uid,
        "scan_date": session.study_date,
        "scans": scans,
        "uploaded": _iso(when),
        "lastmod": _iso(when),
        "by": by,
        "status": status,
        "message": "",
    }


def _status(catalog: Catalog, project: str, label: str) -> str:
    if project == UNASSIGNED:
        return READY
    scans = catalog.scans(project)
    return CONFLICT if (scans["experiment"] == label).any() else READY


def _write(entry: Path, record: dict[str, Any]) -> None:
    partial = entry / (RECORD + ".part")
    partial.write_text(json.dumps(record, indent=1), encoding="utf-8")
    os.replace(partial, entry / RECORD)


def _entry(path: Path) -> Entry:
    record = json.loads((path / RECORD).read_text(encoding="utf-8"))
    return Entry(
        project=str(record.get("project", path.parent.parent.name)),
        timestamp=path.parent.name,
        folder=path.name,
        status=str(record.get("status", ERROR)),
        subject=str(record.get("subject", "")),
        label=str(record.get("label", path.name)),
        study_uid=str(record.get("study_uid", "")),
        scans=tuple(record.get("scans", ())),
        uploaded=str(record.get("uploaded", "")),
        lastmod=str(record.get("lastmod", "")),
        by=str(record.get("by", "")),
        scan_date=str(record.get("scan_date", "")),
        message=str(record.get("message", "")),
        path=path,
    )


def entries(catalog: Catalog, user: str, project: str | None = None) -> list[Entry]:
    """The entries ``user`` may see (of ``project`` only when given), oldest first."""
    root = prearchive_root(catalog)
    if not root.exists():
        return []
    found = []
    for record in sorted(root.glob(f"*/*/*/{RECORD}")):
        path = record.parent
        if not _TIMESTAMP.match(path.parent.name):
            continue
        try:
            entry = _entry(path)
            if entry.status in BUSY and settle(catalog, path):  # left so by a stopped server
                entry = _entry(path)
        except OSError:  # deleted or moved by a request meanwhile
            continue
        if project is not None and entry.project != project:
            continue
        if _may_import(catalog, user, entry.project):
            found.append(entry)
    return sorted(found, key=lambda e: (e.timestamp, e.project, e.folder))


def get_entry(catalog: Catalog, user: str, project: str, timestamp: str, folder: str) -> Entry:
    """One entry; :class:`NotFound` when absent, :class:`PermissionDenied` when hidden."""
    missing = NotFound(f"no prearchive session /prearchive/projects/{project}/{timestamp}/{folder}")
    if not (_TIMESTAMP.match(timestamp) and _safe(folder) == folder):
        raise missing
    path = prearchive_root(catalog) / _safe(project) / timestamp / folder
    _require(catalog, user, project, "see staged sessions")
    if (path / RECORD).is_file() and _entry(path).status in BUSY:
        settle(catalog, path)  # left so by a stopped server (else acted on now)
    if not (path / RECORD).is_file() or _entry(path).project != project:
        raise missing
    return _entry(path)


def parse_src(src: str) -> tuple[str, str, str]:
    """``[/data]/prearchive/projects/P/TS/SESSION`` as ``(P, TS, SESSION)``."""
    parts = [p for p in src.strip().split("/") if p]
    if parts[:1] == ["data"]:
        parts = parts[1:]
    if len(parts) != 5 or parts[:2] != ["prearchive", "projects"]:
        raise MiqaError(
            f"src must be /prearchive/projects/PROJECT/TIMESTAMP/SESSION; {src!r} was provided"
        )
    return parts[2], parts[3], parts[4]


def _hold(entry: Entry) -> IO[bytes]:
    """Take the entry's lock, or refuse when another request is acting on it."""
    try:
        handle = open(entry.path / LOCK, "ab")  # noqa: SIM115 - held while acting
    except OSError as exc:
        raise NotFound(f"no prearchive session {entry.url}") from exc
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        handle.close()
        raise ArchiveConflict(
            f"{entry.url} is being {_busy_word(entry.path)} by another request; try again "
            "once it is done"
        ) from exc
    if not (entry.path / RECORD).is_file():  # deleted or moved while we waited
        handle.close()
        with contextlib.suppress(OSError):
            (entry.path / LOCK).unlink()
            entry.path.rmdir()
        raise NotFound(f"no prearchive session {entry.url} (deleted or moved meanwhile)")
    return handle


def _busy_word(path: Path) -> str:
    with contextlib.suppress(OSError, ValueError):
        status = json.loads((path / RECORD).read_text(encoding="utf-8")).get("status")
        return {ARCHIVING: "archived", DELETING: "deleted", MOVING: "moved"}.get(status, "used")
    return "used"


@contextlib.contextmanager
def _acting(entry: Entry, status: str, catalog: Catalog) -> Iterator[dict[str, Any]]:
    """Hold the entry's lock and show ``status`` (ARCHIVING, DELETING, MOVING) while the
    block runs; on an exception the entry gets its status back (ERROR stays ERROR,
    READY and CONFLICT are read again) and the error as its message. The block removes or moves the entry when it succeeds."""
    lock = _hold(entry)
    try:
        record = _settled_record(catalog, entry.path)
        before = record.get("status")
        record["status"], record["lastmod"] = status, _iso(_now())
        _write(entry.path, record)
        try:
            yield record
        except BaseException as exc:
            if (entry.path / RECORD).is_file():
                again = _status(catalog, entry.project, entry.label)
                record["status"] = ERROR if before == ERROR else again
                record["message"] = str(exc) if isinstance(exc, MiqaError) else ""
                record.pop("moving_to", None)
                _write(entry.path, record)
            raise
    finally:
        lock.close()


def _settled_record(catalog: Catalog, path: Path) -> dict[str, Any]:
    """The entry's record (under its lock): one left ARCHIVING, DELETING or MOVING by a
    server that stopped meanwhile gets a status again first (see :func:`settle`)."""
    record: dict[str, Any] = json.loads((path / RECORD).read_text(encoding="utf-8"))
    status = record.get("status")
    if status not in BUSY:
        return record
    project = str(record.get("project", ""))
    moving_to = str(record.pop("moving_to", "") or "")
    if moving_to and _safe(moving_to) == path.parent.parent.name != _safe(project):
        project = record["project"] = moving_to  # renamed, not yet rewritten
    if status == DELETING:
        record["status"] = ERROR
        record["message"] = "the server stopped while deleting this session; delete it again"
    else:
        record["status"] = _status(catalog, project, str(record.get("label", path.name)))
        record["message"] = f"the server stopped while this session was {status}; try again"
    record["lastmod"] = _iso(_now())
    _write(path, record)
    return record


def settle(catalog: Catalog, path: Path) -> bool:
    """Give an entry left ARCHIVING, DELETING or MOVING by a stopped server a status
    again (ARCHIVING and MOVING: READY or CONFLICT, read again; DELETING: ERROR, its
    files may be partly gone). An entry another request is acting on stays as it is.
    Returns True when the entry was settled."""
    try:
        handle = open(path / LOCK, "ab")  # noqa: SIM115 - closed below
    except OSError:
        return False
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        if not (path / RECORD).is_file():  # deleted meanwhile: leave no lock file
            with contextlib.suppress(OSError):
                (path / LOCK).unlink()
                path.rmdir()
            return False
        status = json.loads((path / RECORD).read_text(encoding="utf-8")).get("status")
        _settled_record(catalog, path)
        return status in BUSY


def settle_all(catalog: Catalog) -> list[Path]:
    """:func:`settle` every entry (when the server starts); returns those settled."""
    root = prearchive_root(catalog)
    if not root.exists():
        return []
    return [r.parent for r in sorted(root.glob(f"*/*/*/{RECORD}")) if settle(catalog, r.parent)]


def _drop(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    with contextlib.suppress(OSError):
        path.parent.rmdir()  # the timestamp folder, once empty


def delete_entry(catalog: Catalog, user: str, project: str, timestamp: str, folder: str) -> None:
    """Remove an entry and its files (``user`` may import into its project); it shows
    DELETING meanwhile."""
    entry = get_entry(catalog, user, project, timestamp, folder)
    _require(catalog, user, entry.project, "delete staged sessions")
    with _acting(entry, DELETING, catalog):
        _drop(entry.path)


def rebuild_entry(catalog: Catalog, user: str, project: str, timestamp: str, folder: str) -> Entry:
    """Read an entry's files again and set its status (XNAT's ``action=build``)."""
    entry = get_entry(catalog, user, project, timestamp, folder)
    lock = _hold(entry)
    try:
        record = _settled_record(catalog, entry.path)
        try:
            _read(catalog, entry)
            record["status"], record["message"] = _status(catalog, entry.project, entry.label), ""
        except MiqaError as exc:
            record["status"], record["message"] = ERROR, str(exc)
        record["lastmod"] = _iso(_now())
        _write(entry.path, record)
    finally:
        lock.close()
    return _entry(entry.path)


def _read(
    catalog: Catalog,
    entry: Entry,
    *,
    project: str | None = None,
    subject: str | None = None,
    session: str | None = None,
) -> tuple[Session, ...]:
    sessions = read_sessions(
        entry.path / "SCANS",
        project=project or entry.project,
        subject=subject or entry.subject or None,
        session=session or entry.label,
        scan_types=catalog.scan_types(),
    )
    if len(sessions) != 1:
        raise MiqaError(
            f"{entry.url} holds {len(sessions)} sessions; delete it and upload each alone"
        )
    return sessions


def _settled(entry: Entry, action: str) -> None:
    """Refuse to archive or move an entry that is still receiving files."""
    if entry.status in (RECEIVING, BUILDING):
        raise ArchiveConflict(
            f"{entry.url} is {entry.status}: files of it are still arriving, so it can "
            f"not be {action} yet; wait until it is READY, or rebuild it to read it now"
        )


def _require_project(catalog: Catalog, user: str, project: str, action: str) -> None:
    """``project`` is Unassigned (superusers) or a project ``user`` may import into."""
    if project != UNASSIGNED and project not in set(catalog.projects()["project"]):
        raise NotFound(f"project {project!r} is not in the catalog")
    _require(catalog, user, project, action)


def archive_entry(
    catalog: Catalog,
    user: str,
    project: str,
    timestamp: str,
    folder: str,
    *,
    overwrite: str = "none",
    quarantine: bool = False,
    trigger_pipelines: bool = True,
    to_project: str | None = None,
    subject: str | None = None,
    session: str | None = None,
) -> list[Archived]:
    """Archive an entry as an experiment, then remove it; it shows ARCHIVING meanwhile.

    Parameters
    ----------
    catalog : Catalog
    user : str
        May import into the entry's project and into ``to_project``; an Unassigned
        entry is archived by a superuser only (only superusers see Unassigned).
    project, timestamp, folder : str
        The entry (``/prearchive/projects/PROJECT/TIMESTAMP/FOLDER``).
    overwrite : {'none', 'append', 'delete'}
        See :func:`~miqa_nb.ingest.archiving.archive_sessions`: with ``none`` an
        experiment of that label already archived raises :class:`ArchiveConflict`.
    to_project, subject, session : str, optional
        Archive under this project, subject, experiment label instead of the entry's
        (an Unassigned entry needs ``to_project``).
    quarantine, trigger_pipelines : bool
        XNAT's ``quarantine`` and ``triggerPipelines``: see
        :func:`~miqa_nb.ingest.archiving.archive_sessions`.

    Nothing changes on a refusal; the entry keeps its place and gets its status back.
    """
    entry = get_entry(catalog, user, project, timestamp, folder)
    _settled(entry, "archived")
    target = to_project or entry.project
    if target == UNASSIGNED:
        raise MiqaError(
            f"{entry.url} names no project of the catalog; archive it with "
            "project=PROJECT (or dest=/archive/projects/PROJECT), or move it first"
        )
    _require(catalog, user, entry.project, "archive staged sessions")
    _require_project(catalog, user, target, "import scans")
    label = session or entry.label
    if _status(catalog, target, label) == CONFLICT and overwrite == "none":
        raise ArchiveConflict(
            f"session {label!r} is already archived in project {target!r}; "
            "send overwrite=append to add new series or overwrite=delete to replace it"
        )
    with _acting(entry, ARCHIVING, catalog):
        sessions = _read(catalog, entry, project=target, subject=subject, session=label)
        archived = archive_sessions(
            catalog,
            sessions,
            by=user,
            overwrite=overwrite,
            quarantine=quarantine,
            trigger_pipelines=trigger_pipelines,
        )
        _drop(entry.path)
    return archived


def move_entries(
    catalog: Catalog, user: str, sources: list[tuple[str, str, str]], new_project: str
) -> list[Entry]:
    """Move entries ``(project, timestamp, folder)`` to ``new_project`` (XNAT's
    ``/data/services/prearchive/move``): every permission is checked before anything
    moves (``user`` may import into each entry's project and into ``new_project``;
    Unassigned: superusers). Each shows MOVING meanwhile, then READY or CONFLICT in
    its new place. Returns the moved entries."""
    found = []
    for project, timestamp, folder in sources:
        entry = get_entry(catalog, user, project, timestamp, folder)
        _require(catalog, user, entry.project, "move staged sessions")
        _settled(entry, "moved")
        found.append(entry)
    _require_project(catalog, user, new_project, "import scans")
    for entry in found:
        target = prearchive_root(catalog) / _safe(new_project) / entry.timestamp / entry.folder
        if target.exists() and target != entry.path:
            raise ArchiveConflict(
                f"/prearchive/projects/{new_project}/{entry.timestamp}/{entry.folder} exists "
                f"already; delete it or {entry.url} first"
            )
    moved = []
    for entry in found:
        target = prearchive_root(catalog) / _safe(new_project) / entry.timestamp / entry.folder
        with _acting(entry, MOVING, catalog) as record:
            if target != entry.path:
                record["moving_to"] = new_project
                _write(entry.path, record)
                target.parent.mkdir(parents=True, exist_ok=True)
                entry.path.rename(target)  # the lock file goes with it
                with contextlib.suppress(OSError):
                    entry.path.parent.rmdir()
            record.pop("moving_to", None)
            record["project"] = new_project
            record["status"] = _status(catalog, new_project, entry.label)
            record["message"], record["lastmod"] = "", _iso(_now())
            _write(target, record)
        moved.append(_entry(target))
    return moved


def move_entry(
    catalog: Catalog, user: str, project: str, timestamp: str, folder: str, new_project: str
) -> Entry:
    """Move one entry to ``new_project`` (see :func:`move_entries`)."""
    (moved,) = move_entries(catalog, user, [(project, timestamp, folder)], new_project)
    return moved
