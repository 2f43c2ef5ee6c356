"""DICOM files arriving one at a time (XNAT's ``gradual-DICOM``), and uploads merged
into an existing prearchive entry (``dest=/prearchive/projects/P/TIMESTAMP[/SESSION]``).

What XNAT's DICOM receiver does, on the staging area of :mod:`miqa_nb.ingest.prearchive`:
each file is routed as a whole upload is (:func:`~miqa_nb.ingest.dicom.route`) and put
into the entry of its study (StudyInstanceUID) and project that is still RECEIVING,
or a new one. While files arrive the entry stays RECEIVING; once nothing has arrived
for :func:`quiet_seconds` (``MIQA_NB_RECEIVING_QUIET``, default 30 s) it is *built*:
its files are read again, its scans laid out by series, and it becomes READY or
CONFLICT (ERROR when its files no longer form one session); when the headers said
``AA:true`` (or the call said ``dest=/archive``) it is archived at once.

Every change of an entry happens under one lock (:func:`receiving_lock`, a file lock
beside the entries), so concurrent requests for the same study land in one entry,
whichever process or thread serves them. The time of the last file is in the entry's
record, so a server restarted meanwhile builds what an earlier one left RECEIVING
(:func:`build_quiet`, which the server runs periodically while anything is RECEIVING).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from miqa_nb.catalog import Catalog
from miqa_nb.core import permissions
from miqa_nb.core.errors import MiqaError, NotFound, PermissionDenied
from miqa_nb.ingest.archiving import ArchiveConflict
from miqa_nb.ingest.dicom import (
    NotDicomError,
    Session,
    group_sessions,
    not_dicom_message,
    read_headers,
    read_sessions,
)
from miqa_nb.ingest.prearchive import (
    CONFLICT,
    ERROR,
    RECEIVING,
    RECORD,
    UNASSIGNED,
    Entry,
    _entry,
    _free_entry,
    _hold,
    _iso,
    _may_import,
    _now,
    _require,
    _safe,
    _status,
    _write,
    archive_entry,
    get_entry,
    new_record,
    prearchive_root,
)

__all__ = [
    "EntryMismatch",
    "build_entry",
    "build_quiet",
    "merge_into",
    "quiet_seconds",
    "receive",
    "receiving_lock",
    "watch",
]

#: Seconds an entry must be quiet before it is built, unless the environment says.
QUIET_DEFAULT = 30.0
_LOCK = ".receiving.lock"
_log = logging.getLogger(__name__)


class EntryMismatch(ArchiveConflict):
    """An upload sent into an existing entry holds another study (answered 409)."""


def quiet_seconds() -> float:
    """How long an entry must receive nothing before it is built
    (``MIQA_NB_RECEIVING_QUIET`` seconds; 30 when unset or not a number)."""
    try:
        return max(0.0, float(os.environ.get("MIQA_NB_RECEIVING_QUIET", QUIET_DEFAULT)))
    except ValueError:
        return QUIET_DEFAULT


@contextlib.contextmanager
def receiving_lock(catalog: Catalog) -> Iterator[None]:
    """Hold the staging area's lock: one change of an entry at a time, across threads
    and processes (an exclusive ``flock`` on ``<prearchive>/.receiving.lock``)."""
    root = prearchive_root(catalog)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / _LOCK, "ab") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _sessions_of(
    folder: Path, options: dict[str, Any], catalog: Catalog
) -> tuple[tuple[Session, ...], dict[Path, str]]:
    """The routed sessions of the files under ``folder``, and each file's name in an
    entry (its SOPInstanceUID, so that an instance sent twice is kept once)."""
    headers = read_headers(folder)
    if headers.not_dicom:
        raise NotDicomError(not_dicom_message(headers.not_dicom, folder), headers.not_dicom)
    if not headers.files:
        raise NotDicomError(f"{folder.name!r} holds no DICOM file; send one DICOM file a request")
    names = {}
    for f in headers.files:
        uid = str(f.header.get("SOPInstanceUID", "") or "").strip()
        names[f.path] = f"{_safe(uid)}.dcm" if uid else f.path.name
    sessions = group_sessions(
        headers.files,
        project=options.get("project") or None,
        subject=options.get("subject") or None,
        session=options.get("session") or None,
        scan_types=catalog.scan_types(),
    )
    return sessions, names


def receive(catalog: Catalog, folder: Path, *, by: str, options: dict[str, Any]) -> list[Entry]:
    """Add the DICOM files under ``folder`` (usually one) to the RECEIVING entries of
    their studies, creating those missing; returns the entries.

    ``options`` holds the call's ``project``/``subject``/``session`` and ``where``
    (``archive`` for ``dest=/archive``: built entries are archived; ``headers``: only
    those whose headers say ``AA:true``; ``prearchive``: none). Who may send: as
    :func:`~miqa_nb.ingest.prearchive.stage_sessions` says, checked before any file
    moves. The files are moved, not copied. Building the entries once quiet is
    :func:`watch`'s (the server starts it after each file).
    """
    sessions, names = _sessions_of(folder, options, catalog)
    where = options.get("where", "headers")
    named = options.get("project")
    known = set(catalog.projects()["project"])
    if where != "headers" and named and named not in known:
        raise NotFound(f"project {named!r} is not in the catalog")
    targets = []
    for session in sessions:
        project = session.route.project or UNASSIGNED
        project = project if project in known else UNASSIGNED
        if where == "archive" and project == UNASSIGNED:
            raise MiqaError(
                f"session {session.study_uid} names no project of the catalog: give "
                "project= or dest=/archive/projects/P"
            )
        if project != UNASSIGNED:
            permissions.require_transfer(catalog.standing(by, project), "import scans")
        elif not any(_may_import(catalog, by, p) for p in (*known, UNASSIGNED)):
            raise PermissionDenied(
                f"user {by!r} may not stage sessions: only the reviewers of a project, its "
                "creator and superusers may import scans"
            )
        archive = where == "archive" or (where == "headers" and bool(session.route.auto_archive))
        targets.append((session, project, archive))
    found = []
    with receiving_lock(catalog):
        for session, project, archive in targets:
            path = _receiving(catalog, project, session) or _new_entry(
                catalog, project, session, by, archive
            )
            record = _add(path, session, names)
            record["received"] = time.time()
            record["lastmod"] = _iso(_now())
            _write(path, record)
            found.append(_entry(path))
    return found


def _receiving(catalog: Catalog, project: str, session: Session) -> Path | None:
    """The RECEIVING entry of this study and project, if there is one."""
    for record in sorted((prearchive_root(catalog) / _safe(project)).glob(f"*/*/{RECORD}")):
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(record.read_text(encoding="utf-8"))
            if data.get("status") == RECEIVING and data.get("study_uid") == session.study_uid:
                return record.parent
    return None


def _new_entry(catalog: Catalog, project: str, session: Session, by: str, archive: bool) -> Path:
    label = session.route.session or session.study_uid
    now = _now()
    path = _free_entry(catalog, project, label, now)
    path.mkdir(parents=True)
    record = new_record(project, label, session, by=by, when=now, status=RECEIVING, scans=[])
    _write(path, {**record, "archive": archive})
    return path


def _add(path: Path, session: Session, names: dict[Path, str]) -> dict[str, Any]:
    """Move the session's files into the entry, one folder per series (by UID); a file
    of the name ``names`` gives it (an instance already there) replaces it."""
    record: dict[str, Any] = json.loads((path / RECORD).read_text(encoding="utf-8"))
    scans: list[dict[str, Any]] = record.setdefault("scans", [])
    for series in session.series:
        scan = next((s for s in scans if s.get("uid") == series.uid), None)
        if scan is None:
            used = {str(s.get("folder")) for s in scans}
            base = _safe(str(series.number if series.number is not None else 0))
            folder, n = base, 1
            while folder in used:
                n += 1
                folder = f"{base}-{n}"
            scan = {
                "id": folder,
                "folder": folder,
                "uid": series.uid,
                "description": series.description,
                "type": series.scan_type or "",
                "files": 0,
            }
            scans.append(scan)
        target = path / "SCANS" / scan["folder"] / "DICOM"
        target.mkdir(parents=True, exist_ok=True)
        for source in series.files:
            shutil.move(source, target / names.get(source, source.name))
        scan["files"] = sum(1 for _ in target.iterdir())
    return record


def build_entry(catalog: Catalog, path: Path) -> Entry:
    """Read an entry's files again, lay out one folder per scan and set its status
    (READY, CONFLICT, or ERROR with the reason). Call it under :func:`receiving_lock`."""
    record: dict[str, Any] = json.loads((path / RECORD).read_text(encoding="utf-8"))
    project, label = str(record["project"]), str(record["label"])
    try:
        sessions = read_sessions(
            path / "SCANS",
            project=project,
            subject=record.get("subject") or None,
            session=label,
            scan_types=catalog.scan_types(),
        )
        if len(sessions) != 1:
            raise MiqaError(
                f"the entry holds {len(sessions)} studies; delete it and upload each alone"
            )
        record["scans"] = _lay_out(path, sessions[0])
        record["status"], record["message"] = _status(catalog, project, label), ""
    except MiqaError as exc:
        record["status"], record["message"] = ERROR, str(exc)
    record["lastmod"] = _iso(_now())
    _write(path, record)
    return _entry(path)


def _lay_out(path: Path, session: Session) -> list[dict[str, Any]]:
    """Move the files to ``SCANS/<scan id>/DICOM/`` as the built session numbers them."""
    fresh = path / "SCANS.new"
    shutil.rmtree(fresh, ignore_errors=True)
    scans = []
    for series in session.series:
        folder = _safe(series.scan_id)
        target = fresh / folder / "DICOM"
        target.mkdir(parents=True)
        for n, source in enumerate(series.files):
            name = source.name if not (target / source.name).exists() else f"{n}-{source.name}"
            source.rename(target / name)
        scans.append(
            {
                "id": series.scan_id,
                "folder": folder,
                "uid": series.uid,
                "description": series.description,
                "type": series.scan_type or "",
                "files": len(series.files),
            }
        )
    old = path / "SCANS.old"
    (path / "SCANS").rename(old)
    fresh.rename(path / "SCANS")
    shutil.rmtree(old, ignore_errors=True)
    return scans


def build_quiet(catalog: Catalog, *, now: float | None = None) -> list[Entry]:
    """Build every RECEIVING entry quiet for :func:`quiet_seconds`; archive those whose
    upload asked for it. Returns the entries built (as they are after archiving)."""
    now = time.time() if now is None else now
    quiet = quiet_seconds()
    built: list[tuple[Entry, dict[str, Any]]] = []
    with receiving_lock(catalog):
        for record_path in sorted(prearchive_root(catalog).glob(f"*/*/*/{RECORD}")):
            try:
                record = json.loads(record_path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if record.get("status") != RECEIVING:
                continue
            if now - float(record.get("received", 0.0)) < quiet:
                continue
            built.append((build_entry(catalog, record_path.parent), record))
    done = []
    for entry, record in built:
        wanted = record.get("archive") and entry.project != UNASSIGNED
        if wanted and entry.status not in (ERROR, CONFLICT):
            _archive(catalog, entry, str(record.get("by", "")))
            continue
        done.append(entry)
    return done


def _archive(catalog: Catalog, entry: Entry, by: str) -> None:
    """Archive a built entry as its uploader; a refusal leaves it with the reason."""
    try:
        archive_entry(catalog, by, entry.project, entry.timestamp, entry.folder)
    except MiqaError as exc:
        with receiving_lock(catalog):
            if (entry.path / RECORD).is_file():
                record = json.loads((entry.path / RECORD).read_text(encoding="utf-8"))
                record["status"] = CONFLICT if isinstance(exc, ArchiveConflict) else ERROR
                record["message"] = str(exc)
                _write(entry.path, record)


def receiving(catalog: Catalog) -> bool:
    """Whether any entry of the staging area is RECEIVING."""
    for record_path in prearchive_root(catalog).glob(f"*/*/*/{RECORD}"):
        with contextlib.suppress(OSError, ValueError):
            if json.loads(record_path.read_text(encoding="utf-8")).get("status") == RECEIVING:
                return True
    return False


_WATCHING: set[str] = set()
_WATCH_LOCK = threading.Lock()


def watch(catalog: Catalog) -> None:
    """Build quiet entries in the background until none is RECEIVING.

    One daemon thread per catalog and process; calling it again while it runs does
    nothing. The server calls it at start (entries an earlier server left RECEIVING)
    and after each file received.
    """
    path = catalog.location
    with _WATCH_LOCK:
        if path in _WATCHING:
            return
        _WATCHING.add(path)
    threading.Thread(target=_watch, args=(path,), name="miqa-receiving", daemon=True).start()


def _watch(path: str) -> None:
    catalog = Catalog(path)
    try:
        while True:
            time.sleep(min(1.0, max(0.1, quiet_seconds() / 4)))
            try:
                build_quiet(catalog)
            except Exception:  # the next tick tries again; the server's log says why
                _log.exception("building the quiet prearchive entries of %s failed", path)
            with _WATCH_LOCK:
                if not receiving(catalog):
                    _WATCHING.discard(path)
                    return
    except BaseException:  # pragma: no cover - never leave the watch marked as running
        with _WATCH_LOCK:
            _WATCHING.discard(path)
        raise


def parse_entry_dest(dest: str) -> tuple[str, str, str | None] | None:
    """``/prearchive/projects/P/TIMESTAMP[/SESSION]`` as ``(P, TIMESTAMP, SESSION)``;
    None for any other ``dest``."""
    parts = [p for p in dest.strip().split("/") if p]
    if parts[:1] == ["data"]:
        parts = parts[1:]
    if parts[:2] != ["prearchive", "projects"] or len(parts) not in (4, 5):
        return None
    return parts[2], parts[3], parts[4] if len(parts) == 5 else None


def merge_into(
    catalog: Catalog, folder: Path, *, by: str, dest: tuple[str, str, str | None]
) -> Entry:
    """Merge the DICOM files under ``folder`` into the existing entry ``dest`` names,
    then build it again.

    Raises
    ------
    NotFound
        No such entry (or, without SESSION, the timestamp holds none or several).
    EntryMismatch
        The files are of another study than the entry's; nothing moved.
    """
    project, stamp, name = dest
    if name is None:
        holder = prearchive_root(catalog) / _safe(project) / stamp
        held = sorted(r.parent.name for r in holder.glob(f"*/{RECORD}"))
        if len(held) != 1:
            raise NotFound(
                f"/prearchive/projects/{project}/{stamp} holds {len(held)} sessions; name "
                "one: dest=/prearchive/projects/P/TIMESTAMP/SESSION"
            )
        name = held[0]
    entry = get_entry(catalog, by, project, stamp, name)
    _require(catalog, by, entry.project, "import scans")
    sessions, names = _sessions_of(folder, {"project": entry.project}, catalog)
    others = sorted({s.study_uid for s in sessions} - {entry.study_uid})
    if others:
        raise EntryMismatch(
            f"the upload holds study {', '.join(others)}, but {entry.url} holds study "
            f"{entry.study_uid}; send it with dest=/prearchive/projects/{entry.project} "
            "to stage it as its own session"
        )
    lock = _hold(entry)  # 409 while another request archives, moves or deletes it
    try:
        with receiving_lock(catalog):
            if not (entry.path / RECORD).is_file():
                raise NotFound(f"{entry.url} was archived or deleted meanwhile")
            record = _add(entry.path, sessions[0], names)
            if record.get("status") == RECEIVING:  # still arriving: built once quiet
                record["received"] = time.time()
                _write(entry.path, record)
                return _entry(entry.path)
            _write(entry.path, record)
            return build_entry(catalog, entry.path)
    finally:
        lock.close()
