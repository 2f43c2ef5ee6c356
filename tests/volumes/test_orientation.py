"""Tests of miqa_nb.volumes.orientation (and Volume coordinates): anatomy upright,
identical planes whatever the storage order, labels, voxel <-> world round trips."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from conftest import phantom, ras_affine, store_as, write_image
from hypothesis import given, settings
from hypothesis import strategies as st

from miqa_nb.volumes import (
    CONVENTIONS,
    PLANES,
    SliceIndex,
    WorldPoint,
    extract_plane,
    load_volume,
    plane_image,
    plane_images,
    plane_labels,
    reorient_to_ras,
)
from miqa_nb.volumes.orientation import plane_pixel_to_voxel, voxel_to_plane_pixel

# -- the same world picture stored in other orders renders identically --------------
STORAGE = [("LPI", ".nii"), ("ASR", ".nii.gz"), ("PIL", ".mgz"), ("SLA", ".nrrd")]


@pytest.fixture(scope="module")
def mni_variants(mni_image, tmp_path_factory):
    """The MNI T1 written flipped and permuted in several formats, and as is."""
    folder = tmp_path_factory.mktemp("mni")
    data = np.asanyarray(mni_image.dataobj)
    original = write_image(folder / "mni-RAS.nii", data, mni_image.affine)
    variants = {}
    for axcodes, suffix in STORAGE:
        stored, aff = store_as(data, mni_image.affine, axcodes)
        variants[axcodes] = write_image(folder / f"mni-{axcodes}{suffix}", stored, aff)
    return original, variants


@pytest.mark.parametrize("convention", CONVENTIONS)
@pytest.mark.parametrize(("axcodes", "suffix"), STORAGE)
def test_flipped_permuted_mni_renders_identical_planes(mni_variants, axcodes, suffix, convention):
    original, variants = mni_variants
    at = (10.3, -17.8, 12.2)  # world mm, off the middle
    expected = plane_images(load_volume(original), at, convention=convention, crosshair=True)
    volume = load_volume(variants[axcodes])
    assert volume.source_axes == tuple(axcodes)
    got = plane_images(volume, at, convention=convention, crosshair=True)
    for plane in PLANES:
        assert got[plane].index == expected[plane].index
        np.testing.assert_array_equal(got[plane].pixels, expected[plane].pixels)


@pytest.mark.parametrize("plane", ["axial", "coronal"])
def test_patient_left_follows_the_convention(mni_image, tmp_path, plane):
    # Keep only the patient's left hemisphere (world x < 0) of the MNI template.
    data = np.asanyarray(mni_image.dataobj).copy()
    assert nib.aff2axcodes(mni_image.affine) == ("R", "A", "S")
    midline = nib.affines.apply_affine(np.linalg.inv(mni_image.affine), [0, 0, 0])[0]
    data[int(np.ceil(midline)) :] = 0
    path = tmp_path / "left-hemisphere.nii"
    nib.save(nib.Nifti1Image(data, mni_image.affine), path)
    volume = load_volume(path)
    neuro = plane_image(volume, plane, window=(0, 100)).pixels.astype(float)
    radio = plane_image(volume, plane, window=(0, 100), convention="radiological")
    half = neuro.shape[1] // 2
    assert neuro[:, :half].sum() > 20 * neuro[:, half:].sum()  # left on the screen's left
    pixels = radio.pixels.astype(float)
    assert pixels[:, half:].sum() > 20 * pixels[:, :half].sum()  # left on the right
    assert radio.labels["right"] == "L"


# -- real IXI frames render upright ----------------------------------------------------
def test_ixi_axial_eyes_are_at_the_top_and_sagittal_face_on_the_left(ixi_paths):
    # In the b0 frame (T2-weighted) the brightest voxels are the eyes (vitreous).
    img = nib.load(ixi_paths[0])
    stored = np.asarray(img.dataobj)
    brightest = nib.affines.apply_affine(
        img.affine, np.argwhere(stored >= np.percentile(stored, 99.9))
    )
    eye = brightest[brightest[:, 0] > 10].mean(axis=0)  # the right eye (world x > 10 mm)
    assert eye[1] > 20  # sanity of the data: the eyes are anterior in world space

    volume = load_volume(ixi_paths[0])
    slices = volume.slices_at(eye)
    # Full window: only the eyes reach the top grey levels.
    axial = plane_image(volume, "axial", slices.axial, window="full").pixels
    rows, cols = np.nonzero(axial >= 0.6 * axial.max())
    assert np.median(rows) < 0.3 * axial.shape[0]  # front at the top
    assert np.median(cols) > 0.5 * axial.shape[1]  # right eye on the right (neurological)
    sagittal = plane_image(volume, "sagittal", slices.sagittal, window="full").pixels
    rows, cols = np.nonzero(sagittal >= 0.6 * sagittal.max())
    assert np.median(cols) < 0.3 * sagittal.shape[1]  # face on the left
    assert rows.mean() > 0.5 * sagittal.shape[0]  # eyes below the brain


@pytest.mark.parametrize("index", range(5))
def test_ixi_coronal_and_sagittal_superior_at_top(ixi_paths, index):
    # The field of view cuts through the top of the brain (tissue fills the upper
    # rows) and ends below the skull base (air, bone and neck: little signal).
    volume = load_volume(ixi_paths[index])
    for plane in ("coronal", "sagittal"):
        pixels = plane_image(volume, plane).pixels
        third = pixels.shape[0] // 3
        top = (pixels[:third] > 64).mean()
        bottom = (pixels[-third:] > 64).mean()
        assert top > 1.5 * bottom, (plane, top, bottom)


def test_ixi_frames_of_a_series_share_orientation(ixi_paths):
    # Diffusion-weighted frames have other contrasts than b0, yet their axial plane
    # matches b0's far better than b0 upside down.
    b0 = plane_image(load_volume(ixi_paths[0]), "axial").pixels.astype(float)
    for path in ixi_paths[1:]:
        dwi = plane_image(load_volume(path), "axial").pixels.astype(float).ravel()
        same = np.corrcoef(dwi, b0.ravel())[0, 1]
        flipped = np.corrcoef(dwi, b0[::-1].ravel())[0, 1]
        assert same > flipped + 0.1


# -- labels and layout -----------------------------------------------------------------
def test_plane_labels():
    assert plane_labels("coronal", "radiological") == {
        "left": "R",
        "right": "L",
        "top": "S",
        "bottom": "I",
    }
    assert plane_labels("axial", "neurological") == {
        "left": "L",
        "right": "R",
        "top": "A",
        "bottom": "P",
    }
    assert plane_labels("sagittal", "radiological") == plane_labels("sagittal", "neurological")
    assert plane_labels("sagittal")["top"] == "S"


def test_labels_match_where_the_marker_appears(make_file):
    # The marker is in the patient's anterior-superior-right corner.
    volume = load_volume(make_file(".nii", axcodes="PIL"))
    marker = SliceIndex(18, 22, 15)
    for convention in CONVENTIONS:
        images = plane_images(volume, marker, window=(0, 500), convention=convention)
        for plane, image in images.items():
            rows, cols = np.nonzero(image.pixels == 255)
            h, w = image.image_shape
            vertical = image.labels["top"] if rows.mean() < h / 2 else image.labels["bottom"]
            horizontal = image.labels["left"] if cols.mean() < w / 2 else image.labels["right"]
            assert {vertical, horizontal} <= {"A", "S", "R"}, (plane, convention)


def test_reorient_is_a_view():
    data, aff = store_as(phantom(), ras_affine(), "PIL")
    ras, ras_aff = reorient_to_ras(data, aff)
    assert np.shares_memory(ras, data)
    np.testing.assert_array_equal(ras, phantom())
    np.testing.assert_allclose(ras_aff, ras_affine())


def test_bad_plane_or_convention_messages():
    with pytest.raises(ValueError, match="'plane' must be one of"):
        plane_labels("oblique")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'convention' must be one of"):
        plane_labels("axial", "upside-down")  # type: ignore[arg-type]
    with pytest.raises(IndexError, match="axial slice 99"):
        extract_plane(phantom(), "axial", 99)


# -- coordinates -----------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(
    plane=st.sampled_from(PLANES),
    convention=st.sampled_from(CONVENTIONS),
    ijk=st.tuples(*(st.integers(0, n - 1) for n in (20, 24, 16))),
)
def test_pixel_voxel_round_trip(plane, convention, ijk):
    shape = (20, 24, 16)
    row, col, index = voxel_to_plane_pixel(plane, ijk, shape, convention)
    back = plane_pixel_to_voxel(plane, row, col, index, shape, convention)
    np.testing.assert_allclose(back, ijk)
    # Through a resampled picture, too.
    row, col, index = voxel_to_plane_pixel(plane, ijk, shape, convention, (50, 70))
    back = plane_pixel_to_voxel(plane, row, col, index, shape, convention, (50, 70))
    np.testing.assert_allclose(back, ijk, atol=1e-9)


def test_pixel_is_the_voxel_shown(make_file):
    volume = load_volume(make_file(".nii.gz", axcodes="ASR"))
    for plane in PLANES:
        for convention in CONVENTIONS:
            raw = extract_plane(volume.data, plane, 5, convention)
            row, col = 3, 7
            ijk = np.rint(plane_pixel_to_voxel(plane, row, col, 5, volume.shape, convention))
            assert volume.data[tuple(ijk.astype(int))] == raw[row, col]


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_world_pixel_round_trip_on_real_oblique_scan(example_path, convention):
    volume = load_volume(example_path)  # stored LAS, slightly oblique, anisotropic
    rng = np.random.default_rng(0)
    for plane in PLANES:
        image = plane_image(volume, plane, 20, convention=convention)
        for row, col in rng.uniform(0, 1, (10, 2)) * image.image_shape:
            xyz = volume.pixel_to_world(
                plane, row, col, 20, convention=convention, image_shape=image.image_shape
            )
            r, c, index = volume.world_to_pixel(
                plane, xyz, convention=convention, image_shape=image.image_shape
            )
            assert index == 20
            np.testing.assert_allclose((r, c), (row, col), atol=1e-6)


def test_location_of_interest_brings_back_the_same_slices(ixi_paths):
    volume = load_volume(ixi_paths[0])
    for slices in [SliceIndex(10, 100, 3), SliceIndex(64, 64, 28), SliceIndex(127, 0, 55)]:
        location = volume.location_of(slices)
        assert isinstance(location, WorldPoint)
        assert volume.slices_at(location) == slices
        # A location stored as plain mm (MIQA's i, j, k) works as well.
        assert volume.slices_at((location.i, location.j, location.k)) == slices


def test_location_is_world_mm_independent_of_storage(mni_variants):
    original, variants = mni_variants
    location = WorldPoint(-30.0, 12.0, 40.0)
    reference = load_volume(original)
    ref_slices = reference.slices_at(location)
    for path in variants.values():
        volume = load_volume(path)
        slices = volume.slices_at(location)
        assert slices == ref_slices
        back = volume.location_of(slices)
        assert np.allclose(back.xyz, location.xyz, atol=0.5 + 1e-6)


def test_points_outside_are_clipped(make_file):
    volume = load_volume(make_file(".nii"))
    assert volume.slices_at((1e6, -1e6, 0.0)) == SliceIndex(19, 0, volume.slices_at((0, 0, 0))[2])
