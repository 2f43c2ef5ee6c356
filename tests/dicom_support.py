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


# --- the anatomy and geometry the conversion tests share ------------------------------


def marked_template() -> np.ndarray:
    """The 2 mm MNI152 template as integers 0..1000 (a head: brain, skull, background).

    The template is exactly symmetric left to right, so a conversion that mirrors x
    would match it; a bright block at voxels i 18..23 (on the left in the template's own
    affine) makes the sides differ.
    """
    from nilearn.datasets import load_mni152_template

    volume = np.rint(np.asarray(load_mni152_template(resolution=2).get_fdata()) * 1000)
    assert np.array_equal(volume, volume[::-1])  # why the marker is needed
    volume[18:24, 40:80, 30:60] = 1000
    return volume


def rotation(axis: int, degrees: float) -> np.ndarray:
    """A 3 x 3 rotation about RAS axis 0, 1 or 2."""
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    a, b = [i for i in range(3) if i != axis]
    r = np.eye(3)
    r[a, a], r[a, b], r[b, a], r[b, b] = c, -s, s, c
    return r


def slice_affine(orientation: str) -> np.ndarray:
    """A voxel-to-RAS affine whose slices (the third voxel axis) are ``orientation``:

    - ``axial``: 2 mm, i from right to left (as scanners store axial slices), k up;
    - ``sagittal``: i anterior, j inferior, k left, 2 x 2 x 2.5 mm;
    - ``coronal``: i left, j inferior, k anterior, 1.5 x 2 x 3 mm;
    - ``oblique``: axial slices tilted 17 degrees about x and 11 about z, 2 x 2 x 2.4 mm.

    (The viewer sizes a picture by rounding extents in mm; 2.4 mm slices keep the
    tests' extents off the half pixel, where a spacing read back with an error of
    1e-6 mm could round the other way.)
    """
    affine = np.eye(4)
    if orientation == "axial":
        affine[:3] = [[-2, 0, 0, 90], [0, 2, 0, -126], [0, 0, 2, -72]]
    elif orientation == "sagittal":
        affine[:3] = [[0, 0, -2.5, 60], [2, 0, 0, -100], [0, -2, 0, 80]]
    elif orientation == "coronal":
        affine[:3] = [[-1.5, 0, 0, 50], [0, 0, 3, -80], [0, -2, 0, 70]]
    elif orientation == "oblique":
        affine[:3, :3] = rotation(2, 11) @ rotation(0, 17) @ np.diag([2.0, 2.0, 2.4])
        affine[:3, 3] = [-45.0, -60.0, -30.0]
    else:
        raise ValueError(
            f"orientation must be axial, sagittal, coronal or oblique; {orientation!r}"
        )
    return affine


def world(img: nib.Nifti1Image) -> tuple[np.ndarray, np.ndarray]:
    """An image's affine and values in the closest RAS+ orientation."""
    canonical = nib.as_closest_canonical(img)
    return canonical.affine, np.asarray(canonical.get_fdata())


def assert_same_image(converted: Path, source: nib.Nifti1Image) -> None:
    """``converted`` is ``source`` in world space: affine within 0.01 mm, values equal."""
    out = nib.load(converted)
    assert out.shape == source.shape
    out_affine, out_data = world(out)
    src_affine, src_data = world(source)
    np.testing.assert_allclose(out_affine, src_affine, atol=0.01)
    np.testing.assert_array_equal(out_data, src_data)


def write_enhanced(
    img: nib.Nifti1Image,
    path: str | Path,
    *,
    study_uid: str | None = None,
    time_fastest: bool = False,
    **tags: Any,
) -> Path:
    """Write ``img`` (3D, or 4D: temporal positions on the last axis) as one enhanced
    multi-frame MR file (Enhanced MR Image Storage), as recent scanners export a series.

    One frame per slice and temporal position, time the slowest (or, with
    ``time_fastest``, every temporal position of a slice before the next slice, as some
    scanners order them): each frame's
    ImagePositionPatient (PlanePositionSequence), InStackPositionNumber, and
    TemporalPositionIndex in its FrameContentSequence, with DimensionIndexValues
    ``[slice, time]`` after a DimensionIndexSequence naming those two; the orientation,
    spacing and rescale (slope 1) shared by every frame. ``tags`` are set on the file.
    """
    from pydicom.sequence import Sequence

    stored = stored_values(img, 1.0, 0.0)
    if stored.ndim == 3:
        stored = stored[..., np.newaxis]
    signed = bool(stored.min() < 0)
    lps = RAS_TO_LPS @ img.affine
    zooms = np.sqrt((lps[:3, :3] ** 2).sum(axis=0))
    row_dir, col_dir = lps[:3, 0] / zooms[0], lps[:3, 1] / zooms[1]
    ni, nj, nk, nt = stored.shape

    def item(**fields: Any) -> Dataset:
        ds = Dataset()
        for keyword, value in fields.items():
            setattr(ds, keyword, value)
        return ds

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4.1"  # Enhanced MR Image
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.Manufacturer = "MR", "miqa_nb tests"
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.FrameOfReferenceUID = generate_uid()
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = ds.AcquisitionDateTime = "20240517"
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "093000"
    ds.PatientName, ds.PatientID = "Test^Subject", "SUBJ01"
    ds.SeriesNumber, ds.InstanceNumber = 1, 1
    ds.SeriesDescription = "ep2d_bold_rest"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
    ds.NumberOfFrames = nk * nt
    ds.NumberOfTemporalPositions = nt
    ds.Rows, ds.Columns = nj, ni
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1 if signed else 0
    dimension = generate_uid()
    ds.DimensionOrganizationSequence = Sequence([item(DimensionOrganizationUID=dimension)])
    ds.DimensionIndexSequence = Sequence(
        [
            item(
                DimensionOrganizationUID=dimension,
                DimensionIndexPointer=0x00209057,  # InStackPositionNumber
                FunctionalGroupPointer=0x00209111,  # FrameContentSequence
            ),
            item(
                DimensionOrganizationUID=dimension,
                DimensionIndexPointer=0x00209128,  # TemporalPositionIndex
                FunctionalGroupPointer=0x00209111,
            ),
        ]
    )
    ds.SharedFunctionalGroupsSequence = Sequence(
        [
            item(
                PixelMeasuresSequence=Sequence(
                    [
                        item(
                            PixelSpacing=[_ds(zooms[1]), _ds(zooms[0])],
                            SliceThickness=_ds(zooms[2]),
                            SpacingBetweenSlices=_ds(zooms[2]),
                        )
                    ]
                ),
                PlaneOrientationSequence=Sequence(
                    [item(ImageOrientationPatient=[_ds(v) for v in (*row_dir, *col_dir)])]
                ),
                PixelValueTransformationSequence=Sequence(
                    [item(RescaleSlope="1", RescaleIntercept="0", RescaleType="US")]
                ),
                MRTimingAndRelatedParametersSequence=Sequence([item(RepetitionTime="2000")]),
            )
        ]
    )
    frames = []
    slowest_time = [(t, k) for t in range(nt) for k in range(nk)]
    fastest_time = [(t, k) for k in range(nk) for t in range(nt)]
    for t, k in fastest_time if time_fastest else slowest_time:
        position = (lps @ np.array([0.0, 0.0, k, 1.0]))[:3]
        frames.append(
            item(
                FrameContentSequence=Sequence(
                    [
                        item(
                            StackID="1",
                            InStackPositionNumber=k + 1,
                            TemporalPositionIndex=t + 1,
                            DimensionIndexValues=[k + 1, t + 1],
                            FrameAcquisitionDateTime=f"20240517093{t:03d}.000000",
                        )
                    ]
                ),
                PlanePositionSequence=Sequence(
                    [item(ImagePositionPatient=[_ds(v) for v in position])]
                ),
            )
        )
    ds.PerFrameFunctionalGroupsSequence = Sequence(frames)
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    dtype = np.int16 if signed else np.uint16
    pixels = stored.transpose(3, 2, 1, 0).astype(dtype)  # t, k, j, i
    if time_fastest:
        pixels = pixels.transpose(1, 0, 2, 3)  # k, t, j, i
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(out, enforce_file_format=True)
    return out
