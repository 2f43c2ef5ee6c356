"""Tests of miqa_nb.demo._files: the demo project's images and import CSV."""

from __future__ import annotations

import hashlib
import pathlib

import miqa_reader
import nibabel as nib
import nrrd
import numpy as np
import pandas as pd
import pytest

from miqa_nb.demo._files import CSV_NAME, build_demo_files
from miqa_nb.demo.artifacts import (
    PHASE_AXIS,
    ghosting,
    inhomogeneity,
    partial_coverage,
    rician_noise,
    wraparound,
)
from miqa_nb.exchange import formats

# MIQA's header as the tests' own reader of MIQA's rules has it: the demo must match
# the specification, not just whatever miqa_nb.exchange.formats says.
MIQA_COLUMNS = list(miqa_reader.COLUMNS)
DECISION_COLUMNS = MIQA_COLUMNS[10:]
MIQA_SCAN_TYPES = {"T1", "T2", "FMRI", "MRA", "PD", "DTI", "DWI"}
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def load(path: pathlib.Path) -> tuple[np.ndarray, np.ndarray]:
    """Read voxels and voxel-to-RAS affine: nibabel for NIfTI/MGH, pynrrd for NRRD."""
    if path.suffix == ".nrrd":
        data, header = nrrd.read(str(path))
        assert header["space"] == "left-posterior-superior"
        lps = np.eye(4)
        lps[:3, :3] = np.asarray(header["space directions"], dtype=float).T
        lps[:3, 3] = header["space origin"]
        return data, LPS_TO_RAS @ lps
    image = nib.load(path)
    return np.asanyarray(image.dataobj), image.affine


def digest(folder: pathlib.Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """The demo built once, seed 0; returns the CSV path."""
    return build_demo_files(tmp_path_factory.mktemp("demo"), seed=0)


@pytest.fixture(scope="module")
def table(demo: pathlib.Path) -> pd.DataFrame:
    return pd.read_csv(demo)


@pytest.fixture(scope="module")
def clean(demo: pathlib.Path) -> tuple[np.ndarray, np.ndarray]:
    return load(demo.parent / "images/MNI152/t1.nii.gz")


def artifact(demo: pathlib.Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    return load(demo.parent / f"images/Artifacts/t1_{name}.nii.gz")


# --- the CSV ---------------------------------------------------------------


def test_csv_has_miqa_columns_in_order(demo: pathlib.Path, table: pd.DataFrame) -> None:
    assert demo.name == CSV_NAME
    assert list(formats.MIQA_COLUMNS) == MIQA_COLUMNS
    assert list(table.columns) == MIQA_COLUMNS
    assert demo.read_text(encoding="utf-8").splitlines()[0] == ",".join(MIQA_COLUMNS)


def test_csv_content(table: pd.DataFrame) -> None:
    assert set(table["project_name"]) == {"Demo"}
    assert set(table["experiment_name"]) == {"MNI152", "Artifacts", "nibabel"}
    assert set(table["scan_type"]) <= MIQA_SCAN_TYPES
    assert table[DECISION_COLUMNS].isna().all().all(), "nothing is reviewed yet"
    for column in ["experiment_notes", "subject_id", "session_id"]:
        assert table[column].notna().all(), column
    links = table["scan_link"].dropna()
    assert len(links) and links.str.startswith("https://").all()
    # One note per experiment, crediting the source.
    notes = table.groupby("experiment_name")["experiment_notes"].unique()
    assert all(len(n) == 1 for n in notes)
    assert "Louis Collins" in notes["MNI152"][0]
    assert "nibabel" in notes["nibabel"][0]


def test_frames_numbered_from_zero(table: pd.DataFrame) -> None:
    frames = table.groupby(["experiment_name", "scan_name"])["frame_number"].apply(sorted)
    for numbers in frames:
        assert numbers == list(range(len(numbers)))
    assert frames.map(len).max() > 1, "at least one multi-frame scan"
    scan_attributes = ["scan_type", "subject_id", "session_id", "scan_link"]
    per_scan = table.groupby(["experiment_name", "scan_name"])[scan_attributes]
    assert (per_scan.nunique(dropna=False) == 1).all().all(), "scan attributes agree across frames"


def test_file_locations_absolute_and_loadable(demo: pathlib.Path, table: pd.DataFrame) -> None:
    assert table["file_location"].is_unique
    suffixes = set()
    dtypes = set()
    for location in table["file_location"]:
        # absolute: MIQA resolves a relative path against the folder above the file
        assert pathlib.PurePosixPath(location).is_absolute()
        path = pathlib.Path(location)
        assert path.parent.resolve().is_relative_to(demo.parent.resolve())
        assert path.is_file(), location
        assert location.endswith((".nii.gz", ".nii", ".mgz", ".nrrd"))
        suffixes.add(".nii.gz" if location.endswith(".nii.gz") else path.suffix)
        data, affine = load(path)
        assert data.ndim == 3 and min(data.shape) > 1, location
        assert affine.shape == (4, 4) and abs(np.linalg.det(affine[:3, :3])) > 0
        assert np.ptp(data) > 0, location
        dtypes.add(data.dtype.newbyteorder("=").name)
    assert suffixes == {".nii.gz", ".mgz", ".nrrd"}
    assert dtypes == {"int16", "float32"}


# --- the clean T1 in three formats -------------------------------------------


def test_three_formats_hold_the_same_image(demo: pathlib.Path) -> None:
    folder = demo.parent / "images/MNI152"
    (nii, a_nii), (mgz, a_mgz), (nrd, a_nrrd) = (
        load(folder / f"t1{s}") for s in (".nii.gz", ".mgz", ".nrrd")
    )
    assert nii.shape == (197, 233, 189)
    for data in (nii, mgz, nrd):
        assert data.dtype.newbyteorder("=") == np.int16
        np.testing.assert_array_equal(data, nii)
    np.testing.assert_allclose(a_mgz, a_nii, atol=1e-4)
    np.testing.assert_allclose(a_nrrd, a_nii, atol=1e-6)
    # MNI space: 1 mm RAS+; voxel (98, 134, 72) is the origin.
    np.testing.assert_allclose(a_nii[:3, :3], np.eye(3))
    voxel = np.array([98, 134, 72, 1])
    for affine in (a_nii, a_mgz, a_nrrd):
        np.testing.assert_allclose(affine @ voxel, [0, 0, 0, 1], atol=1e-4)
    corner = np.array([10, 200, 150, 1])
    expected = [10 - 98, 200 - 134, 150 - 72, 1]  # left, anterior, superior of the origin
    for affine in (a_nii, a_mgz, a_nrrd):
        np.testing.assert_allclose(affine @ corner, expected, atol=1e-4)


def test_nrrd_header_is_lps(demo: pathlib.Path) -> None:
    header = nrrd.read_header(str(demo.parent / "images/MNI152/t1.nrrd"))
    assert header["encoding"] == "gzip"
    np.testing.assert_allclose(header["space directions"], np.diag([-1.0, -1.0, 1.0]))
    np.testing.assert_allclose(header["space origin"], [98.0, 134.0, -72.0])


def test_oblique_nibabel_image_keeps_world_coordinates(demo: pathlib.Path) -> None:
    source = nib.load(pathlib.Path(nib.__file__).parent / "tests/data/example4d.nii.gz")
    data, affine = load(demo.parent / "images/nibabel/example4d/frame_01.nii.gz")
    np.testing.assert_allclose(affine, source.affine, atol=1e-5)
    np.testing.assert_array_equal(data, np.asanyarray(source.dataobj)[..., 1])
    anatomical = nib.load(pathlib.Path(nib.__file__).parent / "tests/data/anatomical.nii")
    data, affine = load(demo.parent / "images/nibabel/anatomical.nrrd")
    np.testing.assert_allclose(affine, anatomical.affine, atol=1e-6)
    np.testing.assert_array_equal(data, np.asanyarray(anatomical.dataobj))


# --- the artifact scans (the simulations are tested in test_artifacts.py) ------


ARTIFACT_NAMES = [
    "ghosting_motion",
    "noise",
    "inhomogeneity",
    "swap_wraparound",
    "partial_brain_coverage",
]


def test_artifact_scans_are_listed(table: pd.DataFrame) -> None:
    artifacts = table[table["experiment_name"] == "Artifacts"]
    assert sorted(artifacts["scan_name"]) == sorted(f"T1 {n}" for n in ARTIFACT_NAMES)
    assert set(artifacts["scan_type"]) == {"T1"}
    assert set(artifacts["session_id"]) == {"sim-seed0"}


@pytest.mark.parametrize(
    ("name", "simulate", "stream"),
    [
        ("ghosting_motion", ghosting, 1),
        ("noise", rician_noise, 2),
        ("inhomogeneity", inhomogeneity, 3),
    ],
)
def test_random_artifact_scans_are_copies_of_the_t1(
    demo: pathlib.Path, clean, name, simulate, stream
) -> None:
    """Each random artifact scan is its simulation run on the demo's T1, drawing from a
    stream of its own of the demo's seed (0), on the T1's grid and in its data type."""
    t1, a_clean = clean
    data, affine = artifact(demo, name)
    assert data.dtype.newbyteorder("=") == np.int16
    np.testing.assert_array_equal(affine, a_clean)
    np.testing.assert_array_equal(data, simulate(t1, np.random.default_rng([0, stream])))
    assert not np.array_equal(data, t1)


def test_partial_coverage_scan(demo: pathlib.Path, clean) -> None:
    t1, a_clean = clean
    data, affine = artifact(demo, "partial_brain_coverage")
    np.testing.assert_array_equal(data, partial_coverage(t1))
    np.testing.assert_array_equal(affine, a_clean)


def test_wraparound_scan_is_a_window_of_the_clean_grid(demo: pathlib.Path, clean) -> None:
    t1, a_clean = clean
    wrapped, a_wrapped = artifact(demo, "swap_wraparound")
    # The acquired field of view is a window of the clean grid along y.
    to_clean = np.linalg.inv(a_clean) @ a_wrapped
    np.testing.assert_allclose(to_clean[:3, :3], np.eye(3), atol=1e-6)
    start = round(to_clean[PHASE_AXIS, 3])
    size = wrapped.shape[PHASE_AXIS]
    assert to_clean[0, 3] == to_clean[2, 3] == 0 and start > 0 and start + size < t1.shape[1]
    np.testing.assert_array_equal(wrapped, wraparound(t1, axis=PHASE_AXIS, start=start, size=size))


# --- determinism and arguments ---------------------------------------------


def test_second_build_rewrites_the_same_files(demo: pathlib.Path, capsys) -> None:
    before_csv = demo.read_bytes()
    before = digest(demo.parent)
    again = build_demo_files(demo.parent, seed=0, progress=True)
    assert again == demo
    assert again.read_bytes() == before_csv
    assert digest(demo.parent) == before
    assert "demo files" in capsys.readouterr().err


def test_project_name_is_required(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ValueError, match="project must be a non-empty name"):
        build_demo_files(tmp_path, project=" ")
    assert not any(tmp_path.iterdir())
