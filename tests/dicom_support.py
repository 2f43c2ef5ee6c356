"""Write real DICOM series from NIfTI images, for the tests of scans from the scanner.

:func:`write_series` turns a 3D or 4D nibabel image (the MNI152 template, a cropped
block of it) into one MR Image Storage file per slice, as a scanner exports them:
Explicit VR Little Endian, ImagePositionPatient / ImageOrientationPatient in DICOM's
LPS patient coordinates, PixelSpacing, SliceThickness, RescaleSlope/Intercept, 16-bit
pixels (unsigned when every stored value is >= 0, signed otherwise).
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

#: RAS (NIfTI) to LPS (DICOM): x and y change sign.
RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def _ds(value: float) -> str:
    """A DICOM decimal string (at most 16 characters) exact enough for 0.001 mm."""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return text if text not in ("-0", "") else "0"


def stored_values(img: nib.Nifti1Image, slope: float, intercept: float) -> np.ndarray:
    """The integers a scanner would store for ``img`` with that rescale; raises when the
    image's values are not exactly ``stored * slope + intercept``."""
    data = np.asarray(img.dataobj, dtype=np.float64)
    stored = np.rint((data - intercept) / slope)
    if not np.allclose(stored * slope + intercept, data, atol=1e-6 * max(1.0, abs(slope))):
        raise ValueError("the image's values are not integers times slope plus intercept")
    if stored.min() < -32768 or stored.max() > 65535 or (stored.min() < 0 and stored.max() > 32767):
        raise ValueError("the stored values do not fit 16 bits")
    return stored


def write_series(
    img: nib.Nifti1Image,
    folder: str | Path,
    *,
    slope: float = 1.0,
    intercept: float = 0.0,
    study_uid: str | None = None,
    series_uid: str | None = None,
    **tags: Any,
) -> list[Path]:
    """Write ``img`` (3D, or 4D: frames on the last axis) as one DICOM file per slice.

    Voxel ``(i, j, k)`` is column ``i``, row ``j`` of slice ``k``; the affine (RAS, in
    mm, axes orthogonal) gives each slice's ImagePositionPatient and the
    ImageOrientationPatient, in LPS. A 4D image repeats the slices per frame with
    TemporalPositionIdentifier, AcquisitionNumber and AcquisitionTime of that frame.
    ``tags`` (DICOM keywords) are set on every file: SeriesNumber, SeriesDescription,
    PatientComments... Returns the files written, in instance order.
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    stored = stored_values(img, slope, intercept)
    if stored.ndim == 3:
        stored = stored[..., np.newaxis]
    signed = bool(stored.min() < 0)
    dtype = np.int16 if signed else np.uint16
    lps = RAS_TO_LPS @ img.affine
    zooms = np.sqrt((lps[:3, :3] ** 2).sum(axis=0))
    row_dir, col_dir = lps[:3, 0] / zooms[0], lps[:3, 1] / zooms[1]
    study_uid = study_uid or generate_uid()
    series_uid = series_uid or generate_uid()
    frame_of_reference = generate_uid()
    ni, nj, nk, nt = stored.shape
    start = datetime.datetime(2024, 5, 17, 9, 30, 0)
    paths = []
    instance = 0
    for t in range(nt):
        when = (start + datetime.timedelta(seconds=2 * t)).strftime("%H%M%S.%f")
        for k in range(nk):
            instance += 1
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID = MRImageStorage
            meta.MediaStorageSOPInstanceUID = generate_uid()
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds = Dataset()
            ds.file_meta = meta
            ds.SOPClassUID = MRImageStorage
            ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
            ds.Modality = "MR"
            ds.Manufacturer = "miqa_nb tests"
            ds.StudyInstanceUID = study_uid
            ds.SeriesInstanceUID = series_uid
            ds.FrameOfReferenceUID = frame_of_reference
            ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = "20240517"
            ds.StudyTime = ds.SeriesTime = "093000"
            ds.AcquisitionTime = when
            ds.PatientName = "Test^Subject"
            ds.PatientID = "SUBJ01"
            ds.SeriesNumber = 1
            ds.SeriesDescription = "t1_mprage_sag"
            ds.InstanceNumber = instance
            ds.AcquisitionNumber = t + 1
            if nt > 1:
                ds.TemporalPositionIdentifier = t + 1
                ds.NumberOfTemporalPositions = nt
                ds.RepetitionTime = "2000"
            ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
            position = (lps @ np.array([0.0, 0.0, k, 1.0]))[:3]
            ds.ImagePositionPatient = [_ds(v) for v in position]
            ds.ImageOrientationPatient = [_ds(v) for v in (*row_dir, *col_dir)]
            ds.PixelSpacing = [_ds(zooms[1]), _ds(zooms[0])]  # row spacing, column spacing
            ds.SliceThickness = _ds(zooms[2])
            ds.SpacingBetweenSlices = _ds(zooms[2])
            ds.SliceLocation = _ds(float(position @ np.cross(row_dir, col_dir)))
            ds.Rows, ds.Columns = nj, ni
            ds.SamplesPerPixel = 1
            ds.PhotometricInterpretation = "MONOCHROME2"
            ds.BitsAllocated = ds.BitsStored = 16
            ds.HighBit = 15
            ds.PixelRepresentation = 1 if signed else 0
            ds.RescaleSlope = _ds(slope)
            ds.RescaleIntercept = _ds(intercept)
            ds.RescaleType = "US"
            for keyword, value in tags.items():
                setattr(ds, keyword, value)
            ds.PixelData = np.ascontiguousarray(stored[:, :, k, t].T.astype(dtype)).tobytes()
            path = out / f"IM{instance:05d}.dcm"
            ds.save_as(path, enforce_file_format=True)
            paths.append(path)
    return paths
