"""DICOM series to NIfTI frames: the geometry of every orientation, frames, echoes, speed-ups.

Each series is real anatomy (the MNI152 template nilearn ships) written slice by slice as
a scanner writes it (``dicom_support.write_series``) and converted by the real dcm2niix.
The converted frames must be the source in world space (affine within 0.01 mm, voxels
equal after rescaling), and the viewer (``miqa_nb.volumes``: the loading and plane
cutting the review panel uses) must show them as it shows the source NIfTI.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from dicom_support import (
    assert_same_image,
    marked_template,
    slice_affine,
    write_enhanced,
    write_series,
)
from pydicom.data import get_testdata_file

from miqa_nb.catalog import Catalog
from miqa_nb.ingest.archiving import archive_sessions
from miqa_nb.ingest.convert import ConversionError, convert_all, convert_series
from miqa_nb.ingest.dicom import read_sessions
from miqa_nb.review import ReviewSession
from miqa_nb.volumes import VolumeCache, load_volume, plane_images

ORIENTATIONS = ("axial", "sagittal", "coronal", "oblique")


@pytest.fixture(scope="module")
def anatomy() -> np.ndarray:
    return marked_template()


def head(anatomy: np.ndarray, orientation: str) -> np.ndarray:
    """A block of the head as many voxels along each axis as the orientation's shape."""
    if orientation == "axial":
        return anatomy
    if orientation == "coronal":
        return anatomy[15:80, 20:95, 10:80]
    return anatomy[20:80, 20:100, 25:75]


def shows_the_same(converted: Path, source: Path) -> None:
    """The viewer shows both files alike: the same slices of the same planes through
    several points in world mm, the same edge labels, the same pixels."""
    ours, theirs = load_volume(converted), load_volume(source)
    np.testing.assert_allclose(ours.affine, theirs.affine, atol=0.01)
    assert ours.shape == theirs.shape
    for fraction in (0.5, 0.3, 0.7):
        # a voxel's centre: a point on a voxel's edge could round either way
        centre = np.rint(fraction * (np.array(theirs.shape) - 1))
        point = tuple(float(v) for v in theirs.voxel_to_world(centre))
        a = plane_images(ours, point, window=(0.0, 1000.0), crosshair=True)
        b = plane_images(theirs, point, window=(0.0, 1000.0), crosshair=True)
        for plane in ("axial", "coronal", "sagittal"):
            assert (a[plane].index, a[plane].labels) == (b[plane].index, b[plane].labels)
            np.testing.assert_array_equal(a[plane].pixels, b[plane].pixels)
            assert a[plane].pixels.std() > 0  # anatomy, not an empty picture


@pytest.mark.parametrize(
    ("orientation", "slope", "intercept", "offset"),
    [
        ("axial", 0.5, -100.0, 0),
        ("sagittal", 2.0, 300.0, -500),
        ("coronal", 1.0, 0.0, 0),
        ("oblique", 0.25, 10.0, -200),
    ],
    ids=["axial-unsigned", "sagittal-signed", "coronal", "oblique-signed"],
)
def test_each_orientation_converts_to_the_source_in_world_space(
    tmp_path, anatomy, orientation, slope, intercept, offset
):
    volume = head(anatomy, orientation)
    # the scanner stores volume + offset: with a negative offset, signed 16-bit values
    source = nib.Nifti1Image((volume + offset) * slope + intercept, slice_affine(orientation))
    files = write_series(source, tmp_path / "in", slope=slope, intercept=intercept)
    assert pydicom.dcmread(files[0]).PixelRepresentation == (1 if offset < 0 else 0)
    (session,) = read_sessions(tmp_path / "in")
    (series,) = session.series

    converted = convert_series(series, tmp_path / "out", "T1_scan")

    assert converted.frames == (tmp_path / "out" / "T1_scan.nii.gz",)
    assert converted.sidecars == (tmp_path / "out" / "T1_scan.json",)
    assert_same_image(converted.frames[0], source)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "T1_scan.json",
        "T1_scan.nii.gz",
    ]


@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_the_viewer_shows_the_converted_scan_as_it_shows_the_source(tmp_path, anatomy, orientation):
    source = nib.Nifti1Image(head(anatomy, orientation), slice_affine(orientation))
    nib.save(source, tmp_path / "source.nii.gz")
    write_series(source, tmp_path / "in")
    (series,) = read_sessions(tmp_path / "in")[0].series

    converted = convert_series(series, tmp_path / "out", "scan", sidecar=False)

    shows_the_same(converted.frames[0], tmp_path / "source.nii.gz")


def time_series(anatomy: np.ndarray) -> np.ndarray:
    block = anatomy[30:70, 40:80, 30:60]
    return np.stack([block, block[::-1], 1000 - block, block[:, ::-1]], axis=-1)


def test_an_oblique_time_series_archived_is_one_scan_whose_frames_are_its_volumes(
    tmp_path, anatomy
):
    frames = time_series(anatomy)
    source = nib.Nifti1Image(frames, slice_affine("oblique"))
    write_series(
        source, tmp_path / "in", SeriesNumber=9, SeriesDescription="ep2d_bold_rest",
        PatientComments="Project:Alpha Subject:A01 Session:A01_MR1",
    )  # fmt: skip
    catalog = Catalog(tmp_path / "c.duckdb")
    catalog.add_user("admin", superuser=True)
    catalog.create_project("Alpha", by="admin")

    (archived,) = archive_sessions(catalog, read_sessions(tmp_path / "in"), by="admin")

    assert (archived.experiment, archived.scans) == ("A01_MR1", ("9",))
    rows = catalog.frames("Alpha").sort_values("frame_number")
    folder = tmp_path / "c-data" / "Alpha" / "A01_MR1" / "9"
    assert list(rows["frame_number"]) == [0, 1, 2, 3]
    assert list(rows["location"]) == [str(folder / f"scan_f{t:03d}.nii.gz") for t in range(4)]
    assert set(rows["scan"].astype(str)) == {"9"}
    for t, location in enumerate(rows["location"]):
        assert_same_image(Path(location), source.slicer[..., t])
        nib.save(source.slicer[..., t], tmp_path / f"source{t}.nii.gz")
        shows_the_same(Path(location), tmp_path / f"source{t}.nii.gz")
    assert sorted(p.name for p in folder.iterdir()) == [
        "scan.json",
        *(f"scan_f{t:03d}.nii.gz" for t in range(4)),
    ]
    # the review panel's session walks the four frames, each shown as its source volume
    with VolumeCache(max_bytes=64 << 20) as cache:
        session = ReviewSession(catalog, "Alpha", "admin", cache=cache, background=False)
        try:
            assert session.n_frames == 4
            seen = []
            for t in range(4):
                session.set_frame(t)
                assert session.frame == t and session.slices is not None
                shown = session.plane_images()
                expected = plane_images(
                    load_volume(tmp_path / f"source{t}.nii.gz"),
                    session.slices,
                    window=session.window or "auto",
                    convention=session.convention,
                    max_size=session.max_size,
                    crosshair=session.view.crosshair_shown,
                )
                for plane in ("axial", "coronal", "sagittal"):
                    np.testing.assert_array_equal(shown[plane].pixels, expected[plane].pixels)
                seen.append(shown["axial"].pixels.tobytes())
            assert len(set(seen)) == 4
        finally:
            session.close()


@pytest.mark.parametrize("time_fastest", [False, True], ids=["time-slowest", "time-fastest"])
def test_an_enhanced_multiframe_file_with_temporal_positions_becomes_frames_in_time_order(
    tmp_path, anatomy, time_fastest
):
    source = nib.Nifti1Image(time_series(anatomy), slice_affine("oblique"))
    write_enhanced(source, tmp_path / "in" / "series.dcm", time_fastest=time_fastest)
    (series,) = read_sessions(tmp_path / "in")[0].series
    assert (series.scan_type, len(series.files)) == ("FMRI", 1)

    converted = convert_series(series, tmp_path / "out", "scan")

    assert converted.frames == tuple(tmp_path / "out" / f"scan_f{t:03d}.nii.gz" for t in range(4))
    for t, frame in enumerate(converted.frames):
        assert_same_image(frame, source.slicer[..., t])


def test_magnitude_and_phase_of_one_series_are_two_frames_magnitude_first(tmp_path, anatomy):
    block = anatomy[30:70, 40:80, 30:40]
    magnitude = nib.Nifti1Image(block, slice_affine("axial"))
    phase = nib.Nifti1Image(block[::-1] * 4 - 2000, slice_affine("axial"))
    series, study = pydicom.uid.generate_uid(), pydicom.uid.generate_uid()
    common = {"study_uid": study, "series_uid": series, "SeriesDescription": "gre_field_map"}
    write_series(magnitude, tmp_path / "in" / "m", **common)
    write_series(
        phase, tmp_path / "in" / "p", **common, ImageType=["ORIGINAL", "PRIMARY", "P", "ND"]
    )
    for k, path in enumerate(sorted((tmp_path / "in" / "p").iterdir())):
        ds = pydicom.dcmread(path)
        ds.InstanceNumber = 100 + k + 1
        ds.save_as(path)
    (one,) = read_sessions(tmp_path / "in")[0].series

    converted = convert_series(one, tmp_path / "out", "scan", sidecar=False)

    assert [p.name for p in converted.frames] == ["scan.nii.gz", "scan_ph.nii.gz"]
    assert_same_image(converted.frames[0], magnitude)
    assert_same_image(converted.frames[1], phase)


def test_series_convert_concurrently_in_the_order_given(tmp_path, anatomy):
    sources = [
        nib.Nifti1Image(head(anatomy, o)[: 40 + 5 * i], slice_affine(o))
        for i, o in enumerate(ORIENTATIONS)
    ]
    study = pydicom.uid.generate_uid()
    for i, source in enumerate(sources):
        write_series(source, tmp_path / "in" / str(i), study_uid=study, SeriesNumber=i + 1)
    (session,) = read_sessions(tmp_path / "in")
    jobs = [(s, tmp_path / "out" / s.scan_id, "scan") for s in session.series]

    done = convert_all(jobs, workers=3)

    assert [c.frames for c in done] == [
        (tmp_path / "out" / str(i + 1) / "scan.nii.gz",) for i in range(4)
    ]
    for converted, source in zip(done, sources, strict=True):
        assert_same_image(converted.frames[0], source)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_series_that_fails_leaves_no_frames_of_the_others(tmp_path, anatomy, workers):
    study = pydicom.uid.generate_uid()
    block = nib.Nifti1Image(anatomy[40:60, 40:60, 40:50], slice_affine("axial"))
    write_series(block, tmp_path / "in" / "a", study_uid=study, SeriesNumber=1)
    write_series(block, tmp_path / "in" / "b", study_uid=study, SeriesNumber=3)
    report = pydicom.dcmread(get_testdata_file("test-SR.dcm"))  # a DICOM file without image
    report.StudyInstanceUID, report.SeriesNumber = study, 2
    report.save_as(tmp_path / "in" / "report.dcm")
    (session,) = read_sessions(tmp_path / "in")
    jobs = [(s, tmp_path / "out" / s.scan_id, "scan") for s in session.series]

    with pytest.raises(ConversionError, match="series 2"):
        convert_all(jobs, workers=workers)

    assert [p for p in (tmp_path / "out").rglob("*") if p.is_file()] == []


def test_a_nifti_that_cannot_be_split_is_an_error_and_nothing_is_left(
    tmp_path, anatomy, monkeypatch
):
    source = nib.Nifti1Image(time_series(anatomy), slice_affine("axial"))
    write_series(source, tmp_path / "in")
    (series,) = read_sessions(tmp_path / "in")[0].series
    real = Path.read_bytes

    def truncated(path: Path) -> bytes:
        data = real(path)
        return data[: len(data) // 2] if path.suffix == ".nii" else data

    monkeypatch.setattr(Path, "read_bytes", truncated)
    with pytest.raises(ConversionError, match="cannot be split into frames"):
        convert_series(series, tmp_path / "out", "scan")
    assert list((tmp_path / "out").iterdir()) == []
