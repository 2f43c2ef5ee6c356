"""Previews of staged scans: the middle slice of a DICOM series, found by position
(not by file name), of the first time point of a 4D series, rescaled, windowed and
fitted into a small PNG; a folder without images is a VolumeError naming it."""

from __future__ import annotations

import random
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from dicom_support import write_series

from miqa_nb.core.errors import VolumeError
from miqa_nb.ingest.previews import PREVIEW_SIZE, middle_slice, preview_pixels, scan_preview


def _slices(shape: tuple[int, ...], zoom: tuple[float, float, float]) -> nib.Nifti1Image:
    """Slice k holds 100 + 10 k everywhere (time point t adds 1000 t)."""
    data = np.zeros(shape, dtype=np.int16)
    for k in range(shape[2]):
        data[:, :, k] = 100 + 10 * k
    if data.ndim == 4:
        data += (1000 * np.arange(shape[3], dtype=np.int16))[None, None, None, :]
    return nib.Nifti1Image(data, np.diag([*zoom, 1.0]))


def _shuffle_names(folder: Path) -> None:
    files = sorted(folder.iterdir())
    names = [f"x{n:04d}.dcm" for n in range(len(files))]
    random.Random(7).shuffle(names)
    for path, name in zip(files, names, strict=True):
        path.rename(folder / name)


def test_the_middle_slice_is_found_by_position_and_rescaled(tmp_path: Path) -> None:
    write_series(_slices((12, 10, 9), (1.0, 1.0, 2.0)), tmp_path, slope=0.5, intercept=-20)
    _shuffle_names(tmp_path)
    values, spacing = middle_slice(tmp_path)
    assert values.shape == (10, 12) and spacing == (1.0, 1.0)
    assert np.all(values == 100 + 10 * 4)  # slice 4 of 0..8


def test_a_4d_series_shows_its_first_time_point(tmp_path: Path) -> None:
    write_series(_slices((8, 8, 5, 3), (1.0, 1.0, 1.0)), tmp_path)
    _shuffle_names(tmp_path)
    values, _ = middle_slice(tmp_path)
    assert np.all(values == 100 + 10 * 2)


def test_the_picture_keeps_the_pixels_aspect_and_fits_the_box(tmp_path: Path) -> None:
    values = np.arange(40 * 20, dtype=np.float32).reshape(40, 20)  # rows x columns
    pixels = preview_pixels(values, (1.0, 4.0))  # columns 4 mm apart: 40 mm x 80 mm
    assert pixels.dtype == np.uint8
    assert pixels.shape == (PREVIEW_SIZE // 2, PREVIEW_SIZE)
    assert pixels.min() == 0 and pixels.max() == 255


def test_a_preview_is_a_png_cached_beside_the_entry(tmp_path: Path) -> None:
    dicom = tmp_path / "entry" / "SCANS" / "2" / "DICOM"
    write_series(_slices((12, 10, 9), (1.0, 1.0, 2.0)), dicom)
    png = scan_preview(tmp_path / "entry", "2")
    assert png.parent == tmp_path / "entry" / ".previews"
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert scan_preview(tmp_path / "entry", "2") == png


def test_no_image_is_an_error_naming_the_folder(tmp_path: Path) -> None:
    dicom = tmp_path / "entry" / "SCANS" / "3" / "DICOM"
    dicom.mkdir(parents=True)
    (dicom / "readme.txt").write_text("no image here", encoding="utf-8")
    with pytest.raises(VolumeError, match=r"no preview of the scan in .*SCANS/3/DICOM"):
        scan_preview(tmp_path / "entry", "3")
    for bad in ("..", "../x", ".previews", ""):
        with pytest.raises(VolumeError, match="is not the folder of a staged scan"):
            scan_preview(tmp_path / "entry", bad)
