"""Scans a reviewer uploads from their computer, without widgets.

:class:`UploadStager` checks the files' names, writes them only inside the upload
folder (and the data roots), imports them into an experiment with ``mode='append'``
through a generated MIQA CSV, and removes them again when the import fails.
:mod:`miqa_nb.dashboard.upload` is its view.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from miqa_nb.catalog import Catalog
from miqa_nb.core.errors import MiqaError
from miqa_nb.core.files import write_atomic
from miqa_nb.core.report import Report
from miqa_nb.core.settings import folder_beside
from miqa_nb.exchange.formats import MIQA_COLUMNS
from miqa_nb.exchange.locations import ROOTS_ENV, inside, roots_setting

__all__ = [
    "UPLOAD_DIR_ENV",
    "UPLOAD_SUFFIXES",
    "StagedUpload",
    "UploadFile",
    "UploadStager",
    "check_upload_name",
    "default_upload_dir",
    "upload_suffix",
]

#: Suffixes accepted for uploads (``.nhdr`` is left out: it needs a second data file).
UPLOAD_SUFFIXES: tuple[str, ...] = (".nii.gz", ".nii", ".mgz", ".nrrd")

#: The folder uploaded scans are written to (default: beside the catalog).
UPLOAD_DIR_ENV = "MIQA_NB_UPLOAD_DIR"


def default_upload_dir(catalog_path: str | os.PathLike[str]) -> Path:
    """``MIQA_NB_UPLOAD_DIR``, else ``<catalog>-uploads`` beside the catalog file."""
    return folder_beside(catalog_path, "uploads", UPLOAD_DIR_ENV)


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
                self.catalog.location,
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
