"""DICOM files in a folder: their headers, the sessions and series they hold, where they go.

What a scanner export becomes before conversion: every file's header is read with
pydicom (never its pixels); files are grouped by StudyInstanceUID (a *session*) and
SeriesInstanceUID (a *scan*, numbered by SeriesNumber and named by
SeriesDescription). Each session is routed to a project, subject and session label
as XNAT routes it (:func:`route`), and each scan gets a guess at MIQA's scan type
(:func:`guess_scan_type`). Converting a series to NIfTI is
:mod:`miqa_nb.ingest.convert`'s.

The contract: a file that is not DICOM is a problem named by its path.
:func:`read_headers` returns the headers and the list of such files (the caller
decides); :func:`read_sessions` raises :class:`NotDicomError` naming all of them and
returns nothing partial. :func:`route` and :func:`guess_scan_type` are pure and never
fail.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from miqa_nb.core.errors import MiqaError
from miqa_nb.core.vocabulary import ScanTypes
from miqa_nb.ingest._headers import read_header

__all__ = [
    "COMMENT_FIELDS",
    "DicomFile",
    "Headers",
    "NotDicom",
    "NotDicomError",
    "Route",
    "Series",
    "Session",
    "comment_fields",
    "group_sessions",
    "guess_scan_type",
    "not_dicom_message",
    "read_headers",
    "read_sessions",
    "route",
]

#: The header fields XNAT reads ``Project:``, ``Subject:``, ``Session:``, ``AA:`` from,
#: in its order: PatientComments (0010,4000), StudyComments (0032,4000),
#: AdditionalPatientHistory (0010,21B0).
COMMENT_FIELDS: tuple[str, ...] = (
    "PatientComments",
    "StudyComments",
    "AdditionalPatientHistory",
)

#: DICOMDIR files index a media's files; they are DICOM but hold no image.
_MEDIA_DIRECTORY = "1.2.840.10008.1.3.10"


class NotDicomError(MiqaError, ValueError):
    """Files given as DICOM are not DICOM (or not DICOM images); nothing was read.

    ``files`` lists every such file with the reason (:class:`NotDicom`).
    """

    def __init__(self, message: str, files: tuple[NotDicom, ...] = ()) -> None:
        super().__init__(message)
        self.files = files


@dataclass(frozen=True)
class NotDicom:
    """A file that is not a DICOM image, and why (``path`` relative to the folder read)."""

    path: str
    reason: str


@dataclass(frozen=True, eq=False)
class DicomFile:
    """One DICOM file: where it is and its header (without pixel data)."""

    path: Path
    header: Dataset


@dataclass(frozen=True)
class Headers:
    """What :func:`read_headers` found: the DICOM files and the files that are not."""

    files: tuple[DicomFile, ...]
    not_dicom: tuple[NotDicom, ...]


@dataclass(frozen=True)
class Route:
    """Where a session goes: project, subject and session label, and XNAT's auto-archive.

    A field is None when neither the parameters nor the headers name it (XNAT puts such a
    session in the staging area's "Unassigned" part).
    """

    project: str | None = None
    subject: str | None = None
    session: str | None = None
    auto_archive: bool | None = None


@dataclass(frozen=True)
class Series:
    """One scan of a session: a DICOM series.

    ``scan_id`` is the scan's name in the session: the SeriesNumber as text, made unique
    within the session (see :func:`group_sessions`). ``scan_type`` is MIQA's type guessed
    from the description and protocol, or None when nothing fits.
    """

    uid: str
    scan_id: str
    number: int | None
    description: str
    protocol: str
    modality: str
    scan_type: str | None
    files: tuple[Path, ...]


@dataclass(frozen=True)
class Session:
    """One imaging session (a DICOM study) and its scans, ordered by scan number."""

    study_uid: str
    route: Route
    series: tuple[Series, ...]
    study_date: str = ""
    study_description: str = ""
    files: tuple[Path, ...] = field(default=())


def _text(header: Dataset, keyword: str) -> str:
    value = header.get(keyword)
    if value is None:
        return ""
    if isinstance(value, pydicom.multival.MultiValue):
        return "\\".join(str(v) for v in value).strip()
    return str(value).strip()


def _uid(header: Dataset, keyword: str) -> str:
    """A UID's text, read from the element's bytes: pydicom's conversion of a UID checks
    it against a regular expression, which took a third of the time of reading a header."""
    tag = pydicom.datadict.tag_for_keyword(keyword)
    if tag is None or tag not in header:
        return ""
    element = header.get_item(tag)
    value = getattr(element, "value", None)
    if isinstance(value, bytes):
        return value.decode("ascii", "replace").strip("\0 ")
    return "" if value is None else str(value).strip()


def _read(path: Path) -> Dataset | str:
    """The header of a DICOM image file, or why ``path`` is not one (``""``: DICOMDIR)."""
    header = read_header(path)  # the common case, several times faster than pydicom
    try:
        if header is None:
            header = pydicom.dcmread(path, stop_before_pixels=True, force=False)
    except InvalidDicomError:
        return "not a DICOM file (no DICM preamble)"
    except Exception as exc:  # pydicom raises many kinds on a damaged file
        return f"not a readable DICOM file ({type(exc).__name__}: {exc})"
    meta = getattr(header, "file_meta", None)
    if meta is not None and _uid(meta, "MediaStorageSOPClassUID") == _MEDIA_DIRECTORY:
        return ""
    missing = [k for k in ("StudyInstanceUID", "SeriesInstanceUID") if not _uid(header, k)]
    if missing:
        return f"a DICOM file without {' or '.join(missing)}, so it belongs to no scan"
    return header


def read_headers(folder: str | Path) -> Headers:
    """Read the header of every file under ``folder`` (recursively, in path order).

    Parameters
    ----------
    folder : str or Path
        A folder of DICOM files (an unpacked scanner export).

    Returns
    -------
    Headers
        ``files``: each DICOM image file with its header (no pixel data); ``not_dicom``:
        every other file with the reason, paths relative to ``folder``; a symbolic link
        is such a file, never followed. DICOMDIR index files are neither (they hold no
        image and are skipped).
    """
    root = Path(folder)
    files: list[DicomFile] = []
    problems: list[NotDicom] = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() or p.is_symlink()):
        # a link may point anywhere on this machine: never read through it
        found = "a link, not a file" if path.is_symlink() else _read(path)
        if isinstance(found, Dataset):
            files.append(DicomFile(path, found))
        elif found:
            problems.append(NotDicom(path.relative_to(root).as_posix(), found))
    return Headers(tuple(files), tuple(problems))


def not_dicom_message(problems: Iterable[NotDicom], folder: str | Path) -> str:
    """The sentence naming files that are not DICOM images, and the fix."""
    listed = list(problems)
    shown = "; ".join(f"{p.path!r}: {p.reason}" for p in listed[:20])
    more = f" (and {len(listed) - 20} more)" if len(listed) > 20 else ""
    return (
        f"{len(listed)} file(s) in {Path(folder).name!r} are not DICOM images: {shown}{more}. "
        "Nothing was imported; remove these files from the upload, or send only DICOM files."
    )


def read_sessions(
    folder: str | Path,
    *,
    project: str | None = None,
    subject: str | None = None,
    session: str | None = None,
    scan_types: ScanTypes | None = None,
) -> tuple[Session, ...]:
    """The sessions of the DICOM files under ``folder``, each routed and its scans typed.

    Parameters
    ----------
    folder : str or Path
        A folder of DICOM files.
    project, subject, session : str, optional
        Routing given by the caller; each overrides what the headers say.
    scan_types : ScanTypes, optional
        The types the catalog accepts (a description naming one exactly is that type).

    Raises
    ------
    NotDicomError
        When any file under ``folder`` is not a DICOM image (all are named), or when
        there is no DICOM file at all.
    """
    headers = read_headers(folder)
    if headers.not_dicom:
        raise NotDicomError(not_dicom_message(headers.not_dicom, folder), headers.not_dicom)
    if not headers.files:
        raise NotDicomError(
            f"{Path(folder).name!r} holds no DICOM files. Upload did not include parsable "
            "files for session generation; send a zip of the scanner's DICOM export."
        )
    return group_sessions(
        headers.files, project=project, subject=subject, session=session, scan_types=scan_types
    )


def _number(header: Dataset) -> int | None:
    value = header.get("SeriesNumber")
    try:
        return None if value is None or str(value).strip() == "" else int(value)
    except (TypeError, ValueError):
        return None


def group_sessions(
    files: Iterable[DicomFile],
    *,
    project: str | None = None,
    subject: str | None = None,
    session: str | None = None,
    scan_types: ScanTypes | None = None,
) -> tuple[Session, ...]:
    """Group DICOM files into sessions (StudyInstanceUID) and scans (SeriesInstanceUID).

    Sessions come in the order of their first file; scans by SeriesNumber (a series
    without one comes last). A scan's ``scan_id`` is its SeriesNumber; when two series
    of a session share a number (or have none) the later ones get ``-2``, ``-3``...
    (``"5"``, ``"5-2"``; no number: ``"0"``, ``"0-2"``). Routing comes from the
    session's first file (as XNAT does), with the given parameters overriding it.
    """
    studies: dict[str, dict[str, list[DicomFile]]] = {}
    for f in files:
        study = studies.setdefault(_uid(f.header, "StudyInstanceUID"), {})
        study.setdefault(_uid(f.header, "SeriesInstanceUID"), []).append(f)
    sessions = []
    for study_uid, by_series in studies.items():
        first = next(iter(by_series.values()))[0].header

        def order(item: tuple[str, list[DicomFile]]) -> tuple[bool, int, str]:
            number = _number(item[1][0].header)
            return (number is None, number or 0, item[0])

        used: set[str] = set()
        scans = []
        for series_uid, members in sorted(by_series.items(), key=order):
            header = members[0].header
            number = _number(header)
            base = str(number if number is not None else 0)
            scan_id, n = base, 1
            while scan_id in used:
                n += 1
                scan_id = f"{base}-{n}"
            used.add(scan_id)
            description = _text(header, "SeriesDescription")
            protocol = _text(header, "ProtocolName")
            modality = _text(header, "Modality")
            scans.append(
                Series(
                    uid=series_uid,
                    scan_id=scan_id,
                    number=number,
                    description=description,
                    protocol=protocol,
                    modality=modality,
                    scan_type=guess_scan_type(description, protocol, modality, scan_types),
                    files=tuple(m.path for m in members),
                )
            )
        sessions.append(
            Session(
                study_uid=study_uid,
                route=route(first, project=project, subject=subject, session=session),
                series=tuple(scans),
                study_date=_text(first, "StudyDate"),
                study_description=_text(first, "StudyDescription"),
                files=tuple(m.path for members in by_series.values() for m in members),
            )
        )
    return tuple(sessions)


_COMMENT_KEYS = {"project": "project", "subject": "subject", "session": "session", "aa": "aa"}


def comment_fields(header: Dataset | Mapping[str, str]) -> dict[str, str]:
    """The ``Key:value`` pairs of the comment fields, the first field naming a key winning.

    Keys are ``project``, ``subject``, ``session`` and ``aa`` (matched in any case);
    pairs are separated by spaces, commas or semicolons.

    Examples
    --------
    >>> comment_fields({"PatientComments": "Project:P1, Subject:S1;Session:S1_MR1 AA:true"})
    {'project': 'P1', 'subject': 'S1', 'session': 'S1_MR1', 'aa': 'true'}
    """
    found: dict[str, str] = {}
    for keyword in COMMENT_FIELDS:
        if isinstance(header, Dataset):
            text = _text(header, keyword)
        else:
            text = str(header.get(keyword, "") or "")
        for token in re.split(r"[\s,;]+", text):
            key, sep, value = token.partition(":")
            name = _COMMENT_KEYS.get(key.strip().lower())
            if sep and name and value.strip() and name not in found:
                found[name] = value.strip()
    return found


def route(
    header: Dataset,
    *,
    project: str | None = None,
    subject: str | None = None,
    session: str | None = None,
) -> Route:
    """Where a session goes, read from one of its headers as XNAT reads it.

    Project: ``Project:X`` in PatientComments, StudyComments or AdditionalPatientHistory
    (first found), then StudyDescription, then AccessionNumber. Subject: ``Subject:X`` in
    those comments, then PatientName. Session: ``Session:X`` in those comments, then
    PatientID. ``AA:true``/``AA:false`` in them sets ``auto_archive``. A non-empty
    ``project``, ``subject`` or ``session`` argument overrides the headers.

    Examples
    --------
    >>> from pydicom.dataset import Dataset
    >>> ds = Dataset()
    >>> ds.StudyComments = "Project:Alpha Session:A1_MR1"
    >>> ds.PatientName, ds.PatientID, ds.StudyDescription = "Doe^Jo", "ID7", "Brain"
    >>> route(ds)
    Route(project='Alpha', subject='Doe^Jo', session='A1_MR1', auto_archive=None)
    >>> route(ds, project="Beta").project
    'Beta'
    """
    comments = comment_fields(header)

    def pick(given: str | None, key: str, *fallbacks: str) -> str | None:
        if given is not None and given.strip():
            return given.strip()
        if key in comments:
            return comments[key]
        for keyword in fallbacks:
            value = _text(header, keyword)
            if value:
                return value
        return None

    aa = comments.get("aa", "").lower()
    return Route(
        project=pick(project, "project", "StudyDescription", "AccessionNumber"),
        subject=pick(subject, "subject", "PatientName"),
        session=pick(session, "session", "PatientID"),
        auto_archive=True if aa == "true" else False if aa == "false" else None,
    )


# The first rule whose pattern is found in the lowered description and protocol wins
# (``_`` and ``-`` count as spaces, so ``\b`` finds ``t1`` in ``t1_mprage`` and ``t1w``).
# Named weightings (T1, T2, PD) come before sequence names, so ``t1_space`` is T1 and
# ``pd_t2_tse`` T2. MIQA has no FLAIR type: a FLAIR is most often T2-weighted, so T2.
_TYPE_RULES: tuple[tuple[str, str], ...] = (
    ("FMRI", r"\b(bold|fmri|rsfmri|func|functional|rest|resting|rs)\b"),
    ("DTI", r"\b(dti|tensor|diff|diffusion|hardi|dsi|mddw)\b"),
    ("DWI", r"\b(dwi|trace|tracew|adc)\b"),
    ("MRA", r"\b(tof|mra|angio)"),
    ("T1", r"\bt1(w|\b)"),
    ("T2", r"\b(t2(w|\b)|flair)"),
    ("PD", r"\b(pd(w|\b)|proton)"),
    ("T1", r"\b(mprage|mp2rage|spgr|fspgr|bravo|tfl|mpr)\b"),
    ("T2", r"\b(tse|fse|space|haste|ciss)\b"),
)


def guess_scan_type(
    description: str,
    protocol: str = "",
    modality: str = "",
    scan_types: ScanTypes | None = None,
) -> str | None:
    """MIQA's scan type for a series, guessed from its SeriesDescription and ProtocolName.

    A description or protocol that names a type the catalog accepts (or one of its
    other names) exactly is that type; then a few common words decide (``mprage`` is
    T1, ``flair`` T2, ``ep2d_diff`` DTI, ``bold`` FMRI, ``tof`` MRA); a PET or CT
    series without a better guess is PET or CT. Returns None when nothing fits; never
    raises.

    Examples
    --------
    >>> guess_scan_type("t1_mprage_sag"), guess_scan_type("T2 FLAIR")
    ('T1', 'T2')
    >>> guess_scan_type("ep2d_diff_mddw_30"), guess_scan_type("localizer")
    ('DTI', None)
    """
    types = scan_types or ScanTypes()
    for text in (description, protocol):
        if text and (known := types.known(text)):
            return known
    words = re.sub(r"[_\-]", " ", f"{description} {protocol}".lower())
    for scan_type, pattern in _TYPE_RULES:
        if re.search(pattern, words):
            return scan_type
    if modality.upper() in ("PT", "PET"):
        return "PET"
    if modality.upper() == "CT":
        return "CT"
    return None
