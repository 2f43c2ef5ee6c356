"""The files behind ``miqa-nb demo``: a review project built from real, shipped images.

This module owns the demo project's *files*: it reads brain images that installed
packages ship (nilearn's MNI ICBM152 2009 T1 template, a few of nibabel's test
images; nothing is downloaded), writes them as ``.nii.gz``, ``.mgz`` and ``.nrrd``,
adds copies of the T1 with simulated acquisition artifacts, and writes a MIQA import
CSV that names them. Importing that CSV into a catalog and serving it is the job of
the layers above (:mod:`miqa_nb.cli`).

Contract
--------
- :func:`build_demo_files` is deterministic: the same ``seed`` and ``project`` give
  byte-identical files, so running it twice into one folder rewrites the same files.
- Every ``file_location`` in the CSV is the absolute path of a file that exists, so
  miqa_nb and MIQA's own importer (which resolves relative paths against the folder
  above the file, not the file's own) read the same file from it. There is one row per frame; the decision
  columns are empty (nothing is reviewed yet).
- Images keep the world coordinates of their source: the three formats of the clean
  T1 hold the same voxels under the same RAS affine (NRRD stores it as LPS).
- The artifact scans are made by the pure simulations of :mod:`miqa_nb.demo.artifacts`,
  each from its own seeded random stream; this module only chooses their parameters
  and writes the results.
"""

from __future__ import annotations

import functools
import importlib.util
import io
import operator
import os
import pathlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import nibabel as nib
import nrrd
import numpy as np
import numpy.typing as npt
import pandas as pd
from tqdm.auto import tqdm

from miqa_nb.core.errors import VolumeError
from miqa_nb.demo.artifacts import (
    PHASE_AXIS,
    ghosting,
    inhomogeneity,
    partial_coverage,
    rician_noise,
    wraparound,
)
from miqa_nb.exchange.formats import DECISION_COLUMNS, MIQA_COLUMNS

__all__ = ["CSV_NAME", "build_demo_files"]

#: Name of the import CSV that :func:`build_demo_files` writes in ``out_dir``.
CSV_NAME = "demo_import.csv"

_MNI_LINK = (
    "https://nilearn.github.io/stable/modules/generated/nilearn.datasets.load_mni152_template.html"
)
_NIBABEL_LINK = "https://github.com/nipy/nibabel/tree/master/nibabel/tests/data"

_EXPERIMENT_NOTES = {
    "MNI152": (
        "MNI ICBM152 2009a nonlinear symmetric T1 template as shipped with nilearn; "
        "Copyright (C) 1993-2009 Louis Collins, McConnell Brain Imaging Centre, "
        "Montreal Neurological Institute, McGill University; free to use and "
        "redistribute with this notice."
    ),
    "Artifacts": (
        "Simulated acquisition artifacts on copies of the MNI ICBM152 2009a T1 template "
        "(nilearn; Copyright (C) 1993-2009 Louis Collins, MNI, McGill University)."
    ),
    "nibabel": "Small real scans from nibabel's test data (MIT license), as shipped with nibabel.",
}

# The 2009 templates are stored RAS+ with 1 mm voxels: axis 0 is left-right,
# axis 1 posterior-anterior (the usual phase-encode axis of an axial scan,
# artifacts.PHASE_AXIS), axis 2 inferior-superior (artifacts.SLICE_AXIS).

_Volume = tuple[np.ndarray, np.ndarray]
"""A voxel array and its 4x4 voxel-to-RAS+ (mm) affine."""


# ---------------------------------------------------------------------------
# Writing volumes
# ---------------------------------------------------------------------------

_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def _write_nifti(path: pathlib.Path, data: np.ndarray, affine: np.ndarray) -> None:
    """Write a NIfTI-1 file (``.nii`` or ``.nii.gz``) with the affine as sform and qform."""
    image = nib.Nifti1Image(data, affine)
    image.header.set_data_dtype(data.dtype)
    image.header.set_xyzt_units("mm", "sec")
    image.set_sform(affine, code="aligned")
    image.set_qform(affine, code="aligned")
    nib.save(image, path)


def _write_mgh(path: pathlib.Path, data: np.ndarray, affine: np.ndarray) -> None:
    """Write a FreeSurfer MGH file (``.mgz`` is gzipped)."""
    nib.save(nib.MGHImage(data, affine), path)


def _write_nrrd(path: pathlib.Path, data: np.ndarray, affine: np.ndarray) -> None:
    """Write a gzipped NRRD file whose LPS geometry matches the RAS ``affine``.

    NRRD's ``space directions`` hold one vector per axis (the columns of the affine),
    and ``space origin`` is the centre of the first voxel, both in LPS: RAS with the
    first two world coordinates negated. pynrrd stamps the time of writing in a
    header comment; that line is dropped so the same image gives the same bytes.
    """
    lps = _RAS_TO_LPS @ affine
    header = {
        "space": "left-posterior-superior",
        "space directions": lps[:3, :3].T,
        "space origin": lps[:3, 3],
        "kinds": ["domain"] * data.ndim,
        "endian": "little",
        "encoding": "gzip",
    }
    buffer = io.BytesIO()
    little = np.asarray(data, data.dtype.newbyteorder("<"))
    nrrd.write(buffer, little, header, compression_level=1)
    head, blank, body = buffer.getvalue().partition(b"\n\n")  # the header ends at a blank line
    lines = [line for line in head.split(b"\n") if not line.startswith(b"# on ")]
    path.write_bytes(b"\n".join(lines) + blank + body)


_WRITERS: dict[str, Callable[[pathlib.Path, np.ndarray, np.ndarray], None]] = {
    ".nii.gz": _write_nifti,
    ".nii": _write_nifti,
    ".mgz": _write_mgh,
    ".nrrd": _write_nrrd,
}


def _write_volume(path: pathlib.Path, volume: _Volume) -> None:
    """Write ``volume`` to ``path`` in the format its suffix names."""
    suffix = ".nii.gz" if path.name.endswith(".nii.gz") else path.suffix
    path.parent.mkdir(parents=True, exist_ok=True)
    _WRITERS[suffix](path, *volume)


# ---------------------------------------------------------------------------
# Reading the shipped images
# ---------------------------------------------------------------------------


def _package_file(package: str, *parts: str) -> pathlib.Path:
    """Return the path of a data file inside an installed package, without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise VolumeError(
            f"The demo needs the package {package!r} for its images, but it is not "
            f"installed; install it with `pip install {package}`."
        )
    path = pathlib.Path(next(iter(spec.submodule_search_locations)), *parts)
    if not path.is_file():
        raise VolumeError(
            f"The demo image {path} is missing from the installed {package!r}; "
            f"reinstall it with `pip install --force-reinstall {package}`."
        )
    return path


def _load(path: pathlib.Path, dtype: npt.DTypeLike) -> _Volume:
    """Load an image as native-endian ``dtype`` values (scaled, then rounded if integer)."""
    image = nib.load(path)
    raw = np.asanyarray(image.dataobj)  # type: ignore[attr-defined]
    target = np.dtype(dtype)
    if np.issubdtype(target, np.integer) and not np.issubdtype(raw.dtype, np.integer):
        raw = np.rint(raw)
    return raw.astype(target), image.affine  # type: ignore[attr-defined]


class _Sources:
    """The shipped images, each loaded on first use and kept for the build."""

    @functools.cached_property
    def mni_t1(self) -> _Volume:
        """MNI ICBM152 2009a T1, 197x233x189 at 1 mm, stored uint8, returned int16."""
        return _load(
            _package_file(
                "nilearn", "datasets", "data", "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
            ),
            np.int16,
        )

    @functools.cached_property
    def anatomical(self) -> _Volume:
        """nibabel's ``anatomical.nii``: a 33x41x25 T1 at 2 mm (SPM-normalized)."""
        return _load(_package_file("nibabel", "tests", "data", "anatomical.nii"), np.int16)

    @functools.cached_property
    def example4d(self) -> _Volume:
        """nibabel's ``example4d.nii.gz``: two 128x96x24 EPI volumes (FSL)."""
        return _load(_package_file("nibabel", "tests", "data", "example4d.nii.gz"), np.int16)

    @functools.cached_property
    def functional(self) -> _Volume:
        """nibabel's ``functional.nii``: twenty 17x21x3 EPI volumes, scaled int16 -> float32."""
        return _load(_package_file("nibabel", "tests", "data", "functional.nii"), np.float32)


def _frame(name: str, index: int, sources: _Sources) -> _Volume:
    """_Volume ``index`` (last axis) of the 4D source ``name``."""
    data, affine = getattr(sources, name)
    return np.ascontiguousarray(data[..., index]), affine


def _shift_affine(affine: np.ndarray, axis: int, voxels: int) -> np.ndarray:
    """Return ``affine`` for the grid whose voxel 0 is voxel ``voxels`` of ``axis``."""
    shift = np.eye(4)
    shift[axis, 3] = voxels
    return affine @ shift


# ---------------------------------------------------------------------------
# The demo project
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _DemoFile:
    """One frame of the demo: where it goes, what the CSV says, how to make it."""

    experiment: str
    scan: str
    scan_type: str
    frame_number: int
    location: str  # relative to the CSV's folder, forward slashes
    subject_id: str
    session_id: str
    scan_link: str
    make: Callable[[_Sources], _Volume]


def _artifact_volumes(seed: int) -> dict[str, Callable[[_Sources], _Volume]]:
    """The artifact scans, by MIQA artifact name, each drawing from its own seeded stream."""

    def rng(stream: int) -> np.random.Generator:
        return np.random.default_rng([seed, stream])

    def ghosted(src: _Sources) -> _Volume:
        data, affine = src.mni_t1
        return ghosting(data, rng(1)), affine

    def noisy(src: _Sources) -> _Volume:
        data, affine = src.mni_t1
        return rician_noise(data, rng(2)), affine

    def biased(src: _Sources) -> _Volume:
        data, affine = src.mni_t1
        return inhomogeneity(data, rng(3)), affine

    def wrapped(src: _Sources) -> _Volume:
        data, affine = src.mni_t1
        n = data.shape[PHASE_AXIS]
        size = round(0.6 * n)
        start = (n - size) // 2
        out = wraparound(data, axis=PHASE_AXIS, start=start, size=size)
        return out, _shift_affine(affine, PHASE_AXIS, start)

    def cropped(src: _Sources) -> _Volume:
        data, affine = src.mni_t1
        return partial_coverage(data), affine

    return {
        "ghosting_motion": ghosted,
        "noise": noisy,
        "inhomogeneity": biased,
        "swap_wraparound": wrapped,
        "partial_brain_coverage": cropped,
    }


def _scan(
    experiment: str,
    scan: str,
    scan_type: str,
    ids: tuple[str, str],
    link: str,
    frames: Sequence[tuple[str, Callable[[_Sources], _Volume]]],
) -> list[_DemoFile]:
    """The files of one scan: ``frames`` are (location, maker) pairs, numbered from 0."""
    return [
        _DemoFile(experiment, scan, scan_type, number, location, *ids, link, make)
        for number, (location, make) in enumerate(frames)
    ]


def _demo_files(seed: int) -> list[_DemoFile]:
    """Every file of the demo, in CSV order."""
    mni = ("MNI152", "ICBM2009a")
    files = []
    for suffix in (".nii.gz", ".mgz", ".nrrd"):
        t1 = (f"images/MNI152/t1{suffix}", operator.attrgetter("mni_t1"))
        files += _scan("MNI152", f"T1 {suffix[1:]}", "T1", mni, _MNI_LINK, [t1])
    for name, make in _artifact_volumes(seed).items():
        location = f"images/Artifacts/t1_{name}.nii.gz"
        files += _scan(
            "Artifacts", f"T1 {name}", "T1", (mni[0], f"sim-seed{seed}"), "", [(location, make)]
        )
    anatomical = ("images/nibabel/anatomical.nrrd", operator.attrgetter("anatomical"))
    files += _scan(
        "nibabel", "anatomical", "T1", ("nib-anatomical", "ses-01"), _NIBABEL_LINK, [anatomical]
    )
    example4d = [
        (
            f"images/nibabel/example4d/frame_{t:02d}.nii.gz",
            functools.partial(_frame, "example4d", t),
        )
        for t in range(2)
    ]
    files += _scan(
        "nibabel", "example4d", "FMRI", ("nib-example4d", "ses-01"), _NIBABEL_LINK, example4d
    )
    functional = [
        (f"images/nibabel/functional/frame_{t:02d}.mgz", functools.partial(_frame, "functional", t))
        for t in range(20)
    ]
    files += _scan(
        "nibabel", "functional", "FMRI", ("nib-functional", "ses-01"), _NIBABEL_LINK, functional
    )
    return files


def build_demo_files(
    out_dir: str | os.PathLike[str],
    *,
    seed: int = 0,
    project: str = "Demo",
    progress: bool = False,
) -> pathlib.Path:
    """Write the demo images and their import CSV under out_dir; return the CSV's path.

    Images go to ``out_dir/images/<experiment>/``; the CSV (:data:`CSV_NAME`) goes to
    ``out_dir`` and names them relative to itself. Existing files of the same names
    are overwritten; nothing else in ``out_dir`` is touched.

    The project holds three experiments:

    - ``MNI152``: the MNI ICBM152 2009a T1 template (int16) as ``.nii.gz``, ``.mgz``
      and ``.nrrd``, one scan each.
    - ``Artifacts``: one T1 scan per simulated artifact (``ghosting_motion``,
      ``noise``, ``inhomogeneity``, ``swap_wraparound``, ``partial_brain_coverage``).
    - ``nibabel``: nibabel's ``anatomical.nii`` T1 (``.nrrd``), the two EPI volumes of
      ``example4d.nii.gz`` as an FMRI scan of two frames (``.nii.gz``), and the twenty
      volumes of ``functional.nii`` as an FMRI scan of twenty frames (float32 ``.mgz``).

    Parameters
    ----------
    out_dir : str or os.PathLike
        Folder to write into; created if missing.
    seed : int, optional
        Seed of the artifact simulations; the same seed gives identical files.
    project : str, optional
        Value of the CSV's ``project_name`` column.
    progress : bool, optional
        Show a tqdm progress bar over the files written.

    Returns
    -------
    pathlib.Path
        Path of the import CSV.

    Raises
    ------
    ValueError
        If ``project`` is empty.
    VolumeError
        If a package that ships the images (nilearn, nibabel) or one of its data
        files is missing.
    """
    if not project.strip():
        raise ValueError(f"project must be a non-empty name; {project!r} was provided.")
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    out = out.resolve()
    files = _demo_files(seed)
    sources = _Sources()
    for item in tqdm(files, desc="demo files", unit="file", disable=not progress):
        _write_volume(out / item.location, item.make(sources))

    table = pd.DataFrame(
        {
            "project_name": project,
            "experiment_name": [f.experiment for f in files],
            "scan_name": [f.scan for f in files],
            "scan_type": [f.scan_type for f in files],
            "frame_number": [f.frame_number for f in files],
            "file_location": [(out / f.location).as_posix() for f in files],
            "experiment_notes": [_EXPERIMENT_NOTES[f.experiment] for f in files],
            "subject_id": [f.subject_id for f in files],
            "session_id": [f.session_id for f in files],
            "scan_link": [f.scan_link for f in files],
        }
        | dict.fromkeys(DECISION_COLUMNS, ""),  # nothing is reviewed yet
        columns=list(MIQA_COLUMNS),
    )
    csv_path = out / CSV_NAME
    table.to_csv(csv_path, index=False, lineterminator="\n", encoding="utf-8")
    return csv_path
