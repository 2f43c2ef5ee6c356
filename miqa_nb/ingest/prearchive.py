"""XNAT's staging area (the prearchive): sessions waiting on disk to be archived.

An upload sent with ``dest=/prearchive...`` (or routed there by its headers) is not
archived at once: each of its sessions becomes an entry
``<catalog>-prearchive/<project or Unassigned>/<timestamp>/<session>/`` holding the
session's DICOM files (``SCANS/<scan>/DICOM/<file>``, as XNAT lays them out) and a small
record (``prearchive.json``: status, subject, StudyInstanceUID, scans, who uploaded it
and when). The timestamp is XNAT's ``yyyyMMdd_HHmmssSSS``.

An entry is READY, or CONFLICT when its project already holds an experiment of that
label, or ERROR when its files could not be read again. Archiving an entry re-reads its
files and archives them with :func:`~miqa_nb.ingest.archiving.archive_sessions`, then
removes it. Who sees an entry: superusers all (the Unassigned part too), others only the
entries of projects they may import into.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from miqa_nb.catalog import Catalog
from miqa_nb.core import permissions
from miqa_nb.core.errors import MiqaError, NotFound, PermissionDenied
from miqa_nb.ingest.archiving import ArchiveConflict, Archived, archive_sessions
from miqa_nb.ingest.dicom import Session, read_sessions

__all__ = [
    "CONFLICT",
    "ERROR",
    "READY",
    "UNASSIGNED",
    "Entry",
    "archive_entry",
    "delete_entry",
    "entries",
    "get_entry",
    "parse_src",
    "prearchive_root",
    "rebuild_entry",
    "stage_sessions",
]

READY, CONFLICT, ERROR = "READY", "CONFLICT", "ERROR"
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
    stamp = now.strftime("%Y%m%d_%H%M%S") + f"{now.microsecond // 1000:03d}"
    staged = []
    for session, project in targets:
        label = session.route.session or session.study_uid
        folder = _safe(label)
        when = now
        base = prearchive_root(catalog) / _safe(project)
        while (base / stamp / folder).exists():  # the same session within the same ms
            when += datetime.timedelta(milliseconds=1)
            stamp = when.strftime("%Y%m%d_%H%M%S") + f"{when.microsecond // 1000:03d}"
        entry = base / stamp / folder
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
        record = {
            "project": project,
            "label": label,
            "subject": session.route.subject or "",
            "study_uid": session.study_uid,
            "scan_date": session.study_date,
            "scans": scans,
            "uploaded": _iso(now),
            "lastmod": _iso(now),
            "by": by,
            "status": _status(catalog, project, label),
            "message": "",
        }
        _write(entry, record)
        staged.append(_entry(entry))
    return staged


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
        entry = _entry(path)
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


def _claim(entry: Entry) -> Path:
    """Rename the entry out of sight so that one request at a time handles it."""
    busy = entry.path.with_name(f".{entry.folder}.busy")
    try:
        entry.path.rename(busy)
    except OSError as exc:
        raise NotFound(f"{entry.url} is being archived or deleted by another request") from exc
    return busy


def _drop(busy: Path) -> None:
    shutil.rmtree(busy, ignore_errors=True)
    with contextlib.suppress(OSError):
        busy.parent.rmdir()  # the timestamp folder, once empty


def delete_entry(catalog: Catalog, user: str, project: str, timestamp: str, folder: str) -> None:
    """Remove an entry and its files (``user`` may import into its project)."""
    entry = get_entry(catalog, user, project, timestamp, folder)
    _require(catalog, user, entry.project, "delete staged sessions")
    _drop(_claim(entry))


def rebuild_entry(catalog: Catalog, user: str, project: str, timestamp: str, folder: str) -> Entry:
    """Read an entry's files again and set its status (XNAT's ``action=build``)."""
    entry = get_entry(catalog, user, project, timestamp, folder)
    record = json.loads((entry.path / RECORD).read_text(encoding="utf-8"))
    try:
        _read(catalog, entry)
        record["status"], record["message"] = _status(catalog, entry.project, entry.label), ""
    except MiqaError as exc:
        record["status"], record["message"] = ERROR, str(exc)
    record["lastmod"] = _iso(_now())
    _write(entry.path, record)
    return _entry(entry.path)


def _read(catalog: Catalog, entry: Entry, where: Path | None = None) -> tuple[Session, ...]:
    sessions = read_sessions(
        (where or entry.path) / "SCANS",
        project=entry.project,
        subject=entry.subject or None,
        session=entry.label,
        scan_types=catalog.scan_types(),
    )
    if len(sessions) != 1:
        raise MiqaError(
            f"{entry.url} holds {len(sessions)} sessions; delete it and upload each alone"
        )
    return sessions


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
) -> list[Archived]:
    """Archive an entry as an experiment of its project, then remove it.

    A CONFLICT entry with ``overwrite=none`` raises :class:`ArchiveConflict`; an
    Unassigned entry must be moved to a project first. Nothing changes on a refusal.
    """
    entry = get_entry(catalog, user, project, timestamp, folder)
    if entry.project == UNASSIGNED:
        raise MiqaError(
            f"{entry.url} names no project of the catalog; upload it again with "
            "dest=/prearchive/projects/PROJECT"
        )
    _require(catalog, user, entry.project, "import scans")
    if _status(catalog, entry.project, entry.label) == CONFLICT and overwrite == "none":
        raise ArchiveConflict(
            f"session {entry.label!r} is already archived in project {entry.project!r}; "
            "send overwrite=append to add new series"
        )
    busy = _claim(entry)
    try:
        archived = archive_sessions(
            catalog,
            _read(catalog, entry, busy),
            by=user,
            overwrite=overwrite,
            quarantine=quarantine,
            trigger_pipelines=trigger_pipelines,
        )
    except BaseException:
        busy.rename(entry.path)
        raise
    _drop(busy)
    return archived
