"""Small pictures of the scans waiting in the staging area (the prearchive).

A staged scan is a folder of DICOM files (``<entry>/SCANS/<scan>/DICOM/``), not yet a
NIfTI file, so the catalog's thumbnails (:mod:`miqa_nb.volumes.thumbnails`) do not
apply. Its preview is the middle slice of the series: the files' headers are read
(never their pixels), the slices ordered along the slice direction
(ImagePositionPatient projected on the normal of ImageOrientationPatient, else
InstanceNumber), and only the middle one is decoded -- its middle frame when it is a
multi-frame file. A series with several time points (4D) shows its first: one file per
slice position is kept, the earliest acquisition.

The slice is rescaled (RescaleSlope/Intercept), windowed on robust percentiles of its
foreground (:func:`~miqa_nb.volumes.window.auto_window`, as the viewer's ``auto``
window), drawn with its pixels' true aspect (PixelSpacing) and fitted into a
``size`` x ``size`` box, then encoded as an 8-bit grey PNG.

Each picture is made once and cached beside the entry, in ``<entry>/.previews/``
(outside ``SCANS``, so the prearchive's listings and a rebuild never see it; deleting
or archiving the entry removes it with the entry). Its name holds the scan's folder,
its number of files and the folder's modification time, so a series that gained or
lost files since (a session sent file by file) is drawn again.

Contract: :func:`scan_preview` returns the PNG's path or raises
:class:`~miqa_nb.core.errors.VolumeError` naming the scan's folder and why.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import Dataset

from miqa_nb.core.errors import VolumeError
from miqa_nb.core.files import write_atomic
from miqa_nb.volumes.render import encode_image
from miqa_nb.volumes.window import auto_window

__all__ = ["PREVIEW_DIR", "PREVIEW_SIZE", "middle_slice", "preview_path", "scan_preview"]

#: The folder of an entry that holds its pictures.
PREVIEW_DIR = ".previews"
#: The box (pixels) a preview is fitted into.
PREVIEW_SIZE = 128


def preview_path(entry: str | os.PathLike[str], scan_folder: str) -> Path:
    """Where the preview of the scan stored in ``SCANS/<scan_folder>`` is kept, for
    its files as they are now.

    Raises
    ------
    VolumeError
        If ``scan_folder`` is not a plain folder name, or the scan has no files.
    """
    if not scan_folder or Path(scan_folder).name != scan_folder or scan_folder.startswith("."):
        raise VolumeError(f"{scan_folder!r} is not the folder of a staged scan")
    dicom = Path(entry) / "SCANS" / scan_folder / "DICOM"
    try:
        count = sum(1 for _ in os.scandir(dicom))
        stamp = dicom.stat().st_mtime_ns
    except OSError as exc:
        raise VolumeError(f"no preview of the scan in {dicom}: {exc.strerror}") from exc
    return Path(entry) / PREVIEW_DIR / f"{scan_folder}-{count}-{stamp}.png"


def _position(header: Dataset) -> float | None:
    """Where a slice lies along the slice direction (mm), or None without geometry."""
    try:
        orientation = np.asarray(header.ImageOrientationPatient, dtype=np.float64)
        position = np.asarray(header.ImagePositionPatient, dtype=np.float64)
    except (AttributeError, TypeError, ValueError):
        return None
    if orientation.shape != (6,) or position.shape != (3,):
        return None
    return float(position @ np.cross(orientation[:3], orientation[3:]))


def _number(header: Dataset, keyword: str) -> float:
    try:
        return float(getattr(header, keyword))
    except (AttributeError, TypeError, ValueError):
        return 0.0


def _middle_file(files: list[Path]) -> Path:
    """The file of the middle slice (the first time point's), from the headers alone."""
    slices: dict[float, tuple[float, Path]] = {}
    unplaced: list[tuple[float, str, Path]] = []
    for path in files:
        try:
            header = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:  # a stray file: the series is shown without it
            continue
        if "PixelData" not in header and not hasattr(header, "Rows"):
            continue
        position = _position(header)
        when = _number(header, "TemporalPositionIdentifier") or _number(header, "AcquisitionNumber")
        if position is None:
            unplaced.append((_number(header, "InstanceNumber"), path.name, path))
            continue
        key = round(position, 3)
        if key not in slices or when < slices[key][0]:
            slices[key] = (when, path)
    if slices:
        ordered = [slices[k][1] for k in sorted(slices)]
    else:
        ordered = [p for _n, _name, p in sorted(unplaced)]
    if not ordered:
        raise ValueError("none of its files holds an image")
    return ordered[len(ordered) // 2]


def middle_slice(folder: str | os.PathLike[str]) -> tuple[np.ndarray, tuple[float, float]]:
    """The middle slice of the DICOM series in ``folder``, rescaled, and its spacing.

    Returns
    -------
    pixels : ndarray of float32, shape (rows, columns)
    spacing : (float, float)
        Millimetres between rows and between columns (1, 1 when not given).

    Raises
    ------
    VolumeError
        If no file of ``folder`` holds a readable image.
    """
    where = Path(folder)
    files = sorted(p for p in where.iterdir() if p.is_file()) if where.is_dir() else []
    try:
        chosen = _middle_file(files)
        dataset = pydicom.dcmread(chosen)
        pixels = np.asarray(dataset.pixel_array)
    except Exception as exc:
        raise VolumeError(
            f"no preview of the scan in {where}: {exc}; rebuild the entry, or delete it "
            "and upload the series again"
        ) from exc
    if pixels.ndim == 3 and _number(dataset, "SamplesPerPixel") in (0.0, 1.0):
        pixels = pixels[pixels.shape[0] // 2]  # a multi-frame file: its middle frame
    elif pixels.ndim == 3:
        pixels = pixels.mean(axis=-1)  # colour: its brightness
    elif pixels.ndim == 4:
        pixels = pixels[pixels.shape[0] // 2].mean(axis=-1)
    slope = _number(dataset, "RescaleSlope") or 1.0
    intercept = _number(dataset, "RescaleIntercept")
    values = pixels.astype(np.float32) * np.float32(slope) + np.float32(intercept)
    try:
        row_mm, col_mm = (float(v) for v in dataset.PixelSpacing)
    except (AttributeError, TypeError, ValueError):
        row_mm, col_mm = 1.0, 1.0
    if not (row_mm > 0 and col_mm > 0):
        row_mm, col_mm = 1.0, 1.0
    return values, (row_mm, col_mm)


def preview_pixels(
    values: np.ndarray, spacing: tuple[float, float], size: int = PREVIEW_SIZE
) -> np.ndarray:
    """A slice windowed to uint8 and fitted into ``size`` x ``size`` at its true aspect."""
    finite = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    try:
        grey = auto_window(finite).apply(finite)
    except ValueError:  # a constant slice: no window fits; show it black
        grey = np.zeros(finite.shape, dtype=np.uint8)
    height_mm, width_mm = grey.shape[0] * spacing[0], grey.shape[1] * spacing[1]
    scale = size / max(height_mm, width_mm)
    shape = (max(1, round(width_mm * scale)), max(1, round(height_mm * scale)))
    return np.asarray(Image.fromarray(grey).resize(shape, Image.Resampling.BILINEAR))


def scan_preview(
    entry: str | os.PathLike[str], scan_folder: str, *, size: int = PREVIEW_SIZE
) -> Path:
    """The PNG preview of a staged scan, drawn only when missing or out of date.

    Parameters
    ----------
    entry : path-like
        The entry's folder (``<catalog>-prearchive/P/TIMESTAMP/SESSION``).
    scan_folder : str
        The scan's folder under ``SCANS`` (the record's ``folder``).
    size : int
        The box the picture is fitted into, in pixels.

    Raises
    ------
    VolumeError
        If the scan's files hold no readable image.
    """
    target = preview_path(entry, scan_folder)
    if target.is_file():
        return target
    values, spacing = middle_slice(Path(entry) / "SCANS" / scan_folder / "DICOM")
    png = encode_image(preview_pixels(values, spacing, size), "png")
    target.parent.mkdir(exist_ok=True)
    for old in target.parent.glob(f"{scan_folder}-*.png"):  # pictures of older files
        old.unlink(missing_ok=True)
    return write_atomic(target, png, durable=False)
