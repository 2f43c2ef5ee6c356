"""XNAT's ``import-handler=XAR``: a zip holding a session document and its files,
archived at once.

The document is either

- a MIQA import file (CSV or JSON, as MIQA's import reads them) whose
  ``file_location`` values are paths relative to the document inside the zip, or
- XNAT's session XML (``xnat:MRSession`` and the other ``*Session`` elements): the
  ``project`` and ``label`` attributes, ``xnat:subject_ID``, and each
  ``xnat:scans/xnat:scan`` (``ID``, ``type``) with its ``xnat:file`` resources whose
  ``URI`` names a file, a folder, or a resource catalog (``cat:Catalog`` listing
  ``cat:entry`` ``URI``\\s), relative to the document. NIfTI (and other image) files
  are frames as they are; DICOM files are converted (:mod:`miqa_nb.ingest.convert`).

The zip is unpacked safely (:func:`~miqa_nb.ingest.archives.unpack`: members outside
the folder, links, bombs refused). The frames' files go to the catalog's data folder
(``<catalog>-data/P/E/SCAN/``, as :mod:`miqa_nb.ingest.archiving` lays them out) and
the rows are imported with the catalog's own import (append, one transaction,
permission-checked). An XAR holds one project's sessions. Nothing partial: any refusal
leaves neither files nor rows.
"""

from __future__ import annotations

import shutil
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from miqa_nb.catalog import Catalog
from miqa_nb.core import permissions
from miqa_nb.core.errors import MiqaError, NotFound
from miqa_nb.exchange.formats import MIQA_COLUMNS, read
from miqa_nb.ingest.archives import UploadLimits, archive_kind, unpack
from miqa_nb.ingest.archiving import (
    MISC,
    ArchiveConflict,
    Archived,
    _accept_misc,
    _safe,
    data_folder,
    import_rows,
)
from miqa_nb.ingest.convert import convert_series
from miqa_nb.ingest.dicom import (
    NotDicomError,
    group_sessions,
    guess_scan_type,
    not_dicom_message,
    read_headers,
)

__all__ = ["XarError", "import_xar"]

#: Files taken as frames as they are (anything else in a scan is read as DICOM).
IMAGE_SUFFIXES = (".nii", ".nii.gz", ".mgz", ".nrrd")
_DOCUMENTS = (".csv", ".json")


class XarError(MiqaError, ValueError):
    """The XAR is not one this import can read; nothing was imported."""


@dataclass
class _Frame:
    """One frame to import: the MIQA row and the file inside the unpacked zip."""

    row: dict[str, str]
    source: Path


def import_xar(
    catalog: Catalog,
    archive: Path,
    staging: Path,
    *,
    by: str,
    project: str | None = None,
    overwrite: str = "none",
) -> list[Archived]:
    """Archive the sessions an XAR describes; see the module.

    Parameters
    ----------
    catalog : Catalog
    archive : Path
        The uploaded zip.
    staging : Path
        A folder of this upload where the zip is unpacked (removed by the caller).
    by : str
        The user importing: a reviewer of the project, its creator or a superuser.
    project : str, optional
        The project the call named (``dest=/archive/projects/P`` or ``project=``); the
        document must name the same.
    overwrite : {'none', 'append'}
        An experiment of the same name in the project: ``none`` refuses
        (:class:`~miqa_nb.ingest.archiving.ArchiveConflict`), ``append`` adds the scans
        it lacks.
    """
    if archive_kind(archive) != "zip":
        raise XarError(
            "an XAR is a zip holding a session document (XNAT's session XML or a MIQA "
            "import file) and its files; the upload is not a zip"
        )
    if overwrite not in ("none", "append"):
        raise XarError(f"overwrite must be none or append for an XAR; {overwrite!r} was provided")
    root = (staging / "xar").resolve()
    unpack(archive, root, UploadLimits())
    document = _document(root)
    if document.suffix.lower() == ".xml":
        frames = _from_session_xml(catalog, document, root, staging)
    else:
        frames = _from_miqa_file(document, root)
    if not frames:
        raise XarError(f"{document.relative_to(root).as_posix()!r} describes no frame")
    named = {f.row["project_name"] for f in frames}
    if len(named) != 1:
        raise XarError(
            f"the document names the projects {sorted(named)}; an XAR holds one project's "
            "sessions: send one XAR a project"
        )
    target = named.pop()
    if project and project != target:
        raise XarError(f"the call names project {project!r} but the document names {target!r}")
    if target not in set(catalog.projects()["project"]):
        raise NotFound(f"project {target!r} is not in the catalog")
    permissions.require_transfer(catalog.standing(by, target), "import scans")
    frames = _without_archived(catalog, target, frames, overwrite)
    return _place_and_import(catalog, target, frames, by=by)


def _document(root: Path) -> Path:
    """The session document: the one session XML, else the one CSV or JSON file."""
    files = sorted(p for p in root.rglob("*") if p.is_file())
    sessions = [p for p in files if p.suffix.lower() == ".xml" and _is_session(p)]
    documents = sessions or [p for p in files if p.suffix.lower() in _DOCUMENTS]
    if len(documents) != 1:
        found = ", ".join(repr(p.relative_to(root).as_posix()) for p in documents) or "none"
        raise XarError(
            "an XAR holds exactly one session document (XNAT's session XML, or a MIQA "
            f"CSV or JSON import file); found {found}"
        )
    return documents[0]


def _parse_xml(path: Path) -> ET.Element:
    data = path.read_bytes()
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise XarError(f"{path.name!r} declares a DOCTYPE or entities; session XML needs none")
    try:
        return ET.fromstring(data)
    except ET.ParseError as exc:
        raise XarError(f"{path.name!r} is not well-formed XML ({exc})") from exc


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _is_session(path: Path) -> bool:
    try:
        return _local(_parse_xml(path).tag).endswith("Session")
    except XarError:
        return False


def _inside(root: Path, base: Path, location: str, what: str) -> Path:
    """``location`` relative to ``base``, refused unless it stays inside ``root``."""
    if not location or PurePosixPath(location).is_absolute() or location.startswith("\\"):
        raise XarError(f"{what}: {location!r} must be a path relative to the document")
    path = (base / location).resolve()
    if not path.is_relative_to(root):
        raise XarError(f"{what}: {location!r} points outside the XAR")
    if not path.exists():
        raise XarError(f"{what}: {location!r} is not in the XAR")
    return path


def _from_miqa_file(document: Path, root: Path) -> list[_Frame]:
    parsed = read(document)
    table = parsed.frame()
    if not parsed.ok:
        shown = "; ".join(str(p) for p in parsed.problems[:10])
        raise XarError(f"{document.name!r} is not a MIQA import file: {shown}")
    frames = []
    for n, record in enumerate(table.to_dict("records"), start=2):
        row = {c: str(record.get(c) or "") for c in MIQA_COLUMNS}
        what = f"{document.name!r} row {n} (file_location)"
        source = _inside(root, document.parent, row["file_location"], what)
        if not source.is_file():
            raise XarError(f"{what}: {row['file_location']!r} is not a file")
        frames.append(_Frame(row, source))
    return frames


def _files(root: Path, base: Path, uri: str, what: str) -> list[Path]:
    """The files an ``xnat:file`` URI names: a file, a folder's files, or a catalog's
    entries."""
    path = _inside(root, base, uri, what)
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file())
    if path.suffix.lower() == ".xml":
        catalog = _parse_xml(path)
        if _local(catalog.tag) == "Catalog":
            entries = [e for e in catalog.iter() if _local(e.tag) == "entry"]
            return [_inside(root, path.parent, e.get("URI", ""), f"{what} entry") for e in entries]
    return [path]


def _is_image(path: Path) -> bool:
    return path.name.lower().endswith(IMAGE_SUFFIXES)


def _from_session_xml(catalog: Catalog, document: Path, root: Path, work: Path) -> list[_Frame]:
    session = _parse_xml(document)
    project, label = session.get("project", ""), session.get("label", "")
    if not project or not label:
        raise XarError(f"{document.name!r}: the session element needs project and label attributes")
    subject = next(((e.text or "").strip() for e in session if _local(e.tag) == "subject_ID"), "")
    types = catalog.scan_types()
    frames: list[_Frame] = []
    for scan in (e for e in session.iter() if _local(e.tag) == "scan"):
        scan_id = scan.get("ID", "")
        if not scan_id:
            raise XarError(f"{document.name!r}: a scan without an ID")
        what = f"{document.name!r} scan {scan_id}"
        files = [
            f
            for resource in scan
            if _local(resource.tag) == "file"
            for f in _files(root, document.parent, resource.get("URI", ""), what)
        ]
        if not files:
            raise XarError(f"{what} has no xnat:file resource with files")
        described = scan.get("type", "")
        kind = guess_scan_type(described, "", "", types) or MISC
        row = {c: "" for c in MIQA_COLUMNS}
        row.update(
            project_name=project,
            experiment_name=label,
            scan_name=scan_id,
            scan_type=kind,
            subject_id=subject,
            session_id=label,
        )
        images = [f for f in files if _is_image(f)]
        dicom = [f for f in files if not _is_image(f) and f.suffix.lower() != ".xml"]
        if dicom:
            images += _convert(dicom, work / "converted" / _safe(scan_id), what)
        for frame, image in enumerate(images):
            frames.append(_Frame({**row, "frame_number": str(frame)}, image))
    return frames


def _convert(files: list[Path], folder: Path, what: str) -> list[Path]:
    """Convert a scan's DICOM files (one series) to NIfTI under ``folder``."""
    holder = folder.with_name(folder.name + "-dicom")
    holder.mkdir(parents=True)
    for n, source in enumerate(files):
        shutil.copyfile(source, holder / f"{n:06d}-{source.name}")
    headers = read_headers(holder)
    if headers.not_dicom:
        raise NotDicomError(
            f"{what}: " + not_dicom_message(headers.not_dicom, holder), headers.not_dicom
        )
    series = [s for session in group_sessions(headers.files) for s in session.series]
    if len(series) != 1:
        raise XarError(f"{what} holds {len(series)} DICOM series; one scan is one series")
    return list(convert_series(series[0], folder, "scan", sidecar=True).images)


def _without_archived(
    catalog: Catalog, project: str, frames: list[_Frame], overwrite: str
) -> list[_Frame]:
    existing = catalog.scans(project)
    kept = []
    for frame in frames:
        experiment = frame.row["experiment_name"]
        had = set(existing.loc[existing["experiment"] == experiment, "scan"].astype(str))
        if had and overwrite == "none":
            raise ArchiveConflict(
                f"session {experiment!r} is already archived in project {project!r}; send "
                "overwrite=append to add new scans"
            )
        if frame.row["scan_name"] not in had:
            kept.append(frame)
    return kept


def _place_and_import(
    catalog: Catalog, project: str, frames: list[_Frame], *, by: str
) -> list[Archived]:
    """Move the frames' files to ``<data>/P/E/SCAN/`` and import their rows (append)."""
    data = data_folder(catalog)
    data.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".archiving-", dir=data))
    moved: list[Path] = []
    try:
        rows = []
        taken: dict[Path, Path] = {}
        for frame in frames:
            row = frame.row
            scan_dir = Path(_safe(project), _safe(row["experiment_name"]), _safe(row["scan_name"]))
            folder = work / scan_dir
            folder.mkdir(parents=True, exist_ok=True)
            name, n = frame.source.name, 1
            while (folder / name).exists():
                n += 1
                name = f"{n}-{frame.source.name}"
            if frame.source in taken:
                shutil.copyfile(taken[frame.source], folder / name)
            else:
                shutil.move(frame.source, folder / name)
                taken[frame.source] = folder / name
            rows.append({**row, "file_location": str(data / scan_dir / name)})
        if any(row["scan_type"] == MISC for row in rows):
            _accept_misc(catalog)
        for scan_dir in sorted(
            {Path(*Path(r["file_location"]).relative_to(data).parts[:3]) for r in rows}
        ):
            destination = data / scan_dir
            if destination.exists():
                raise ArchiveConflict(f"{destination} exists already; nothing was changed")
            destination.parent.mkdir(parents=True, exist_ok=True)
            (work / scan_dir).rename(destination)
            moved.append(destination)
        import_rows(catalog, rows, by=by, roots=[data])
    except BaseException:
        for path in moved:
            shutil.rmtree(path, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    archived: dict[str, Archived] = {}
    for row in rows:
        experiment = row["experiment_name"]
        before = archived.get(experiment)
        scans = before.scans if before else ()
        if row["scan_name"] not in scans:
            scans = (*scans, row["scan_name"])
        subject = row["subject_id"] or experiment
        archived[experiment] = Archived(project, subject, experiment, scans)
    return list(archived.values())
