"""DICOM in, NIfTI out: headers read, sessions and scans grouped, routed, typed, converted.

The series are real anatomy (the MNI152 template nilearn ships) written slice by slice as
a scanner writes them (``dicom_support.write_series``), and the small real files pydicom
ships; the conversion is the real dcm2niix.
"""

from __future__ import annotations

import doctest
import shutil
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from dicom_support import assert_same_image, marked_template, write_series
from nilearn.datasets import load_mni152_template
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

import miqa_nb.ingest.dicom as dicom_module
from miqa_nb.core.errors import MiqaError
from miqa_nb.core.vocabulary import SCAN_TYPES, ScanTypes
from miqa_nb.ingest.convert import ConversionError, convert_series
from miqa_nb.ingest.dicom import (
    NotDicom,
    NotDicomError,
    Route,
    guess_scan_type,
    read_headers,
    read_sessions,
    route,
)

PYDICOM_FILES = Path(get_testdata_file("MR_small.dcm")).parent


@pytest.fixture(scope="module")
def anatomy() -> np.ndarray:
    return marked_template()


# --- frames (geometry of each orientation: test_ingest_convert.py) ---------------------


def test_a_time_series_becomes_one_3d_frame_per_volume_in_acquisition_order(tmp_path, anatomy):
    block = anatomy[30:70, 40:80, 30:60]
    frames = np.stack([block, block[::-1], 1000 - block], axis=-1)  # three distinct volumes
    source = nib.Nifti1Image(frames, load_mni152_template(resolution=2).affine)
    write_series(source, tmp_path / "in", SeriesDescription="ep2d_bold_rest")
    (session,) = read_sessions(tmp_path / "in")
    (series,) = session.series
    assert (series.scan_type, len(series.files)) == ("FMRI", 30 * 3)

    converted = convert_series(series, tmp_path / "out", "bold", sidecar=False)

    assert converted.sidecars == ()
    assert converted.frames == tuple(tmp_path / "out" / f"bold_f{t:03d}.nii.gz" for t in range(3))
    for t, frame in enumerate(converted.frames):
        assert nib.load(frame).shape == (40, 40, 30)
        assert_same_image(frame, source.slicer[..., t])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        f"bold_f{t:03d}.nii.gz" for t in range(3)
    ]


# --- sessions and scans --------------------------------------------------------------


def test_two_series_in_one_folder_are_two_scans_numbered_and_named_by_their_headers(
    tmp_path, anatomy
):
    affine = load_mni152_template(resolution=2).affine
    t1 = nib.Nifti1Image(anatomy[20:80, 20:90, 20:70], affine)
    t2 = nib.Nifti1Image(1000 - anatomy[20:80, 20:90, 20:70], affine)
    study = pydicom.uid.generate_uid()
    folder = tmp_path / "export"
    # the later number is written first: scans are ordered by number, not by file
    write_series(t2, folder / "b", study_uid=study, SeriesNumber=7, SeriesDescription="t2_tse_tra")
    write_series(
        t1, folder / "a", study_uid=study, SeriesNumber=3, SeriesDescription="t1_mprage_sag"
    )

    (session,) = read_sessions(folder)

    assert [(s.scan_id, s.number, s.description, s.scan_type) for s in session.series] == [
        ("3", 3, "t1_mprage_sag", "T1"),
        ("7", 7, "t2_tse_tra", "T2"),
    ]
    assert [len(s.files) for s in session.series] == [50, 50]
    assert {p.parent.name for p in session.series[0].files} == {"a"}
    for series, source in zip(session.series, (t1, t2), strict=True):
        converted = convert_series(series, tmp_path / "out", f"scan{series.scan_id}")
        assert_same_image(converted.images[0], source)


def test_two_studies_are_two_sessions_and_a_shared_number_is_made_unique(tmp_path, anatomy):
    block = nib.Nifti1Image(anatomy[40:50, 40:50, 40:44], np.eye(4))
    study = pydicom.uid.generate_uid()
    write_series(block, tmp_path / "x1", study_uid=study, SeriesNumber=5, PatientID="A")
    write_series(block, tmp_path / "x2", study_uid=study, SeriesNumber=5, PatientID="A")
    write_series(block, tmp_path / "y", SeriesNumber=5, PatientID="B")

    sessions = read_sessions(tmp_path)

    assert [(s.route.session, [x.scan_id for x in s.series]) for s in sessions] == [
        ("A", ["5", "5-2"]),
        ("B", ["5"]),
    ]


# --- routing -------------------------------------------------------------------------


def header(**fields: str) -> Dataset:
    ds = Dataset()
    for keyword, value in fields.items():
        setattr(ds, keyword, value)
    return ds


def test_routing_reads_the_comment_fields_in_xnats_order():
    ds = header(
        PatientComments="Subject:S_from_patient",
        StudyComments="Project:P_study;Subject:S_study,Session:E_study AA:true",
        AdditionalPatientHistory="Project:P_history Session:E_history AA:false",
        StudyDescription="Brain",
        PatientName="Doe^Jo",
        PatientID="ID7",
    )
    assert route(ds) == Route("P_study", "S_from_patient", "E_study", True)


def test_routing_falls_back_to_description_accession_name_and_id():
    ds = header(
        StudyDescription="Brain", AccessionNumber="ACC1", PatientName="Doe^Jo", PatientID="ID7"
    )
    assert route(ds) == Route("Brain", "Doe^Jo", "ID7", None)
    del ds.StudyDescription
    assert route(ds).project == "ACC1"
    assert route(header(PatientComments="AA:FALSE")) == Route(None, None, None, False)


def test_routing_parameters_override_the_headers():
    ds = header(PatientComments="Project:P Subject:S Session:E", PatientID="ID7")
    assert route(ds, project="Q", subject="T", session="F") == Route("Q", "T", "F", None)
    assert route(ds, project=" ", subject=None) == Route("P", "S", "E", None)


def test_read_sessions_routes_each_session_from_its_headers_and_parameters(tmp_path, anatomy):
    block = nib.Nifti1Image(anatomy[40:50, 40:50, 40:44], np.eye(4))
    write_series(
        block, tmp_path, PatientComments="Project:Gamma Subject:G01 Session:G01_MR1 AA:true"
    )
    assert read_sessions(tmp_path)[0].route == Route("Gamma", "G01", "G01_MR1", True)
    assert read_sessions(tmp_path, project="Delta")[0].route == Route(
        "Delta", "G01", "G01_MR1", True
    )


def test_the_real_files_pydicom_ships_are_read_routed_and_typed(tmp_path):
    for name in ("MR_small.dcm", "CT_small.dcm"):
        shutil.copy(PYDICOM_FILES / name, tmp_path / name)

    sessions = read_sessions(tmp_path)

    by_modality = {s.series[0].modality: s for s in sessions}
    assert set(by_modality) == {"MR", "CT"}
    mr, ct = by_modality["MR"], by_modality["CT"]
    assert mr.route == Route(None, "CompressedSamples^MR1", "4MR1", None)
    assert (ct.route.subject, ct.route.session) == ("CompressedSamples^CT1", "1CT1")
    assert ct.series[0].scan_type == "CT"
    assert [s.scan_id for s in mr.series] == ["1"]


def test_a_real_mr_slice_converts_to_its_pixels(tmp_path):
    shutil.copy(PYDICOM_FILES / "MR_small.dcm", tmp_path / "MR_small.dcm")
    (session,) = read_sessions(tmp_path)
    converted = convert_series(session.series[0], tmp_path / "out", "mr")
    ds = pydicom.dcmread(tmp_path / "MR_small.dcm")
    expected = ds.pixel_array * float(ds.get("RescaleSlope", 1)) + float(
        ds.get("RescaleIntercept", 0)
    )
    out = nib.load(converted.images[0])
    assert out.shape[:2] == (ds.Columns, ds.Rows)
    # dcm2niix stores rows bottom-up: row r of the slice is NIfTI j = Rows - 1 - r
    np.testing.assert_array_equal(
        np.asarray(out.get_fdata()).reshape(ds.Columns, ds.Rows)[:, ::-1].T, expected
    )


def test_a_dicom_media_tree_is_read_and_its_dicomdir_index_skipped(tmp_path):
    tree = tmp_path / "media"
    shutil.copytree(PYDICOM_FILES / "dicomdirtests", tree)
    (tree / "README.txt").unlink()
    (tree / "TINY_ALPHA" / "README").unlink()

    sessions = read_sessions(tree)

    assert sum(len(s.files) for s in sessions) == 81
    scans = {(s.route.subject, x.description): x for s in sessions for x in s.series}
    assert scans[("Doe^Peter", "ANGIO Projected from   C")].scan_type == "MRA"
    assert scans[("Doe^Peter", "ANGIO Projected from   C")].scan_id == "700"


# --- files that are not DICOM --------------------------------------------------------


def test_files_that_are_not_dicom_are_all_named_and_nothing_is_returned(tmp_path, anatomy):
    block = nib.Nifti1Image(anatomy[40:50, 40:50, 40:44], np.eye(4))
    write_series(block, tmp_path / "scan")
    (tmp_path / "scan" / "notes.txt").write_text("acquired on the new coil")
    (tmp_path / "report.pdf").write_bytes(b"%PDF-1.4 not an image")
    truncated = (tmp_path / "scan" / "IM00001.dcm").read_bytes()[:300]
    (tmp_path / "scan" / "broken.dcm").write_bytes(truncated)

    headers = read_headers(tmp_path)
    assert len(headers.files) == 4
    assert [p.path for p in headers.not_dicom] == [
        "report.pdf",
        "scan/broken.dcm",
        "scan/notes.txt",
    ]
    assert all(isinstance(p, NotDicom) and p.reason for p in headers.not_dicom)

    with pytest.raises(NotDicomError) as raised:
        read_sessions(tmp_path)
    message = str(raised.value)
    for name in ("report.pdf", "scan/broken.dcm", "scan/notes.txt"):
        assert repr(name) in message
    assert "Nothing was imported" in message
    assert raised.value.files == headers.not_dicom
    assert isinstance(raised.value, MiqaError) and isinstance(raised.value, ValueError)


def test_a_link_is_never_followed(tmp_path, anatomy):
    elsewhere = tmp_path / "elsewhere"
    write_series(nib.Nifti1Image(anatomy[40:50, 40:50, 40:44], np.eye(4)), elsewhere)
    upload = tmp_path / "upload"
    upload.mkdir()
    (upload / "slice.dcm").symlink_to(elsewhere / "IM00001.dcm")
    (upload / "folder").symlink_to(elsewhere, target_is_directory=True)

    headers = read_headers(upload)

    assert headers.files == ()
    assert headers.not_dicom == (
        NotDicom("folder", "a link, not a file"),
        NotDicom("slice.dcm", "a link, not a file"),
    )


def test_a_folder_without_dicom_files_is_an_error(tmp_path):
    with pytest.raises(NotDicomError, match="no DICOM files"):
        read_sessions(tmp_path)


# --- scan types ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("description", "protocol", "expected"),
    [
        ("t1_mprage_sag", "", "T1"),
        ("T1w", "", "T1"),
        ("Sag 3D FSPGR", "", "T1"),
        ("T2 FLAIR", "", "T2"),
        ("t2_tse_tra", "", "T2"),
        ("t1_space_sag", "", "T1"),
        ("PD_tra", "", "PD"),
        ("ep2d_diff_mddw_30", "", "DTI"),
        ("DTI 64 dir", "", "DTI"),
        ("Ax DWI", "", "DWI"),
        ("ep2d_bold_rest", "", "FMRI"),
        ("", "resting state fMRI", "FMRI"),
        ("tof_fl3d_tra", "", "MRA"),
        ("localizer", "AAHead_Scout", None),
        ("", "", None),
        ("t1rho", "", None),
    ],
)
def test_scan_types_are_guessed_from_the_description_and_protocol(description, protocol, expected):
    assert guess_scan_type(description, protocol) == expected


def test_a_guess_is_a_type_the_catalog_accepts_or_none():
    types = ScanTypes(extra=("3D-T1",), aliases={"sag_mprage_custom": "PD"})
    assert guess_scan_type("3d-t1", scan_types=types) == "3D-T1"
    assert guess_scan_type("SAG_MPRAGE_custom", scan_types=types) == "PD"
    assert guess_scan_type("ncanda-mprage-v1") == "ncanda-mprage-v1"
    assert guess_scan_type("whole body", modality="PT") == "PET"
    for text in ("t1", "flair", "dti", "bold", "\x00\u2603", "x" * 10_000):
        found = guess_scan_type(text, text)
        assert found is None or found in SCAN_TYPES


# --- conversion failures -------------------------------------------------------------


def one_series(folder: Path, anatomy: np.ndarray):
    write_series(nib.Nifti1Image(anatomy[40:50, 40:50, 40:44], np.eye(4)), folder, SeriesNumber=4)
    return read_sessions(folder)[0].series[0]


def test_a_series_dcm2niix_cannot_convert_is_an_error_naming_it(tmp_path):
    shutil.copy(PYDICOM_FILES / "test-SR.dcm", tmp_path / "report.dcm")  # no image in it
    (series,) = read_sessions(tmp_path)[0].series
    with pytest.raises(ConversionError, match=f"series {series.scan_id}") as raised:
        convert_series(series, tmp_path / "out", "sr")
    assert "nothing was written" in str(raised.value)
    assert list((tmp_path / "out").iterdir()) == []


def test_a_conversion_that_runs_out_of_time_is_stopped(tmp_path, anatomy):
    series = one_series(tmp_path / "in", anatomy)
    with pytest.raises(ConversionError, match="took longer than"):
        convert_series(series, tmp_path / "out", "scan", timeout=0.0001)
    assert list((tmp_path / "out").iterdir()) == []


def test_a_name_taken_or_unsafe_is_refused(tmp_path, anatomy):
    series = one_series(tmp_path / "in", anatomy)
    convert_series(series, tmp_path / "out", "scan")
    with pytest.raises(ConversionError, match="already in"):
        convert_series(series, tmp_path / "out", "scan")
    for name in ("../scan", "a/b", "", ".hidden"):
        with pytest.raises(ConversionError, match="file name must be"):
            convert_series(series, tmp_path / "out", name)


def test_the_docstring_examples_hold():
    result = doctest.testmod(dicom_module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


# --- the fast header reader ----------------------------------------------------------


def test_the_fast_header_reader_gives_what_pydicom_gives_or_leaves_the_file_to_it(
    tmp_path, anatomy
):
    from miqa_nb.ingest._headers import read_header

    write_series(nib.Nifti1Image(anatomy[40:50, 40:50, 40:42], np.eye(4)), tmp_path)
    files = sorted(p for p in PYDICOM_FILES.rglob("*") if p.is_file())
    files += sorted(tmp_path.iterdir())
    read = 0
    for path in files:
        header = read_header(path)
        if header is None:  # another transfer syntax, undefined lengths, not DICOM
            continue
        read += 1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom's remarks on odd test files
            expected = pydicom.dcmread(path, stop_before_pixels=True)
            assert {e.tag: (e.VR, e.value) for e in header.iterall()} == {
                e.tag: (e.VR, e.value) for e in expected.iterall()
            }, path
        assert [(e.tag, e.value) for e in header.file_meta] == [
            (e.tag, e.value) for e in expected.file_meta
        ], path
    assert read > 50  # the common files are read by it (explicit and implicit VR)
    assert read_header(PYDICOM_FILES / "MR_small_bigendian.dcm") is None
    truncated = tmp_path / "truncated.dcm"
    truncated.write_bytes((tmp_path / "IM00001.dcm").read_bytes()[:600])
    assert read_header(truncated) is None
