"""Tests of miqa_nb.volumes.render: aspect from spacing, downsampling, encoding,
crosshair, the three planes, and write_planes for the command line."""

from __future__ import annotations

import io

import numpy as np
import pytest
from conftest import SHAPE
from PIL import Image

from miqa_nb.core.errors import VolumeError
from miqa_nb.volumes import (
    PLANES,
    SliceIndex,
    Window,
    load_volume,
    plane_image,
    plane_images,
    render_planes,
    write_planes,
)
from miqa_nb.volumes.render import PLANE_COLORS, display_shape


def _extent_ratio(volume, plane):
    """Physical width / height of a plane in mm."""
    x, y, z = (n * s for n, s in zip(volume.shape, volume.spacing, strict=True))
    return {"axial": x / y, "coronal": x / z, "sagittal": y / z}[plane]


@pytest.mark.parametrize("plane", PLANES)
def test_ixi_pictures_follow_physical_spacing(ixi_paths, plane):
    volume = load_volume(ixi_paths[0])  # 1.75 x 1.75 x 2.35 mm
    h, w = plane_image(volume, plane).image_shape
    assert w / h == pytest.approx(_extent_ratio(volume, plane), rel=1.0 / min(h, w))
    if plane != "axial":
        assert h > 56  # the 56 slices were stretched to 2.35 / 1.75 of their count


def test_thick_slices_are_not_squashed(make_file):
    volume = load_volume(make_file(".nii"))  # 20 x 24 x 16 voxels of 1 x 1.5 x 3 mm
    shapes = {plane: plane_image(volume, plane).image_shape for plane in PLANES}
    # Square pixels of the finer in-plane spacing: axial 36 x 20 mm and coronal
    # 48 x 20 mm at 1 mm per pixel, sagittal 48 x 36 mm at 1.5 mm per pixel.
    assert shapes == {"axial": (36, 20), "coronal": (48, 20), "sagittal": (32, 24)}


def test_large_planes_are_shrunk_to_max_size(mni_image, tmp_path):
    import nibabel as nib

    path = tmp_path / "mni.nii"
    nib.save(mni_image, path)
    volume = load_volume(path)
    for plane in PLANES:
        image = plane_image(volume, plane, max_size=100)
        h, w = image.image_shape
        assert max(h, w) == 100
        assert w / h == pytest.approx(_extent_ratio(volume, plane), rel=0.02)
        assert image.voxel_shape != image.image_shape


def test_display_shape_rules():
    assert display_shape((56, 128), (2.35, 1.75), 512) == (75, 128)
    assert display_shape((512, 1024), (1.0, 1.0), 256) == (128, 256)
    with pytest.raises(ValueError, match="max_size"):
        display_shape((10, 10), (1.0, 1.0), 0)


def test_png_and_jpeg_encoding(make_file):
    volume = load_volume(make_file(".nii.gz"))
    image = plane_image(volume, "axial")
    decoded = np.asarray(Image.open(io.BytesIO(image.encode("png"))))
    np.testing.assert_array_equal(decoded, image.pixels)
    jpeg = image.encode("jpeg")
    assert jpeg[:2] == b"\xff\xd8"
    assert Image.open(io.BytesIO(jpeg)).size == (image.image_shape[1], image.image_shape[0])
    with pytest.raises(ValueError, match="'fmt' must be one of"):
        image.encode("gif")  # type: ignore[arg-type]


def test_render_planes_default_middle_one_window(make_file):
    volume = load_volume(make_file(".mgz", axcodes="SLA"))
    pngs = render_planes(volume)
    assert set(pngs) == set(PLANES)
    images = plane_images(volume)
    assert {image.index for image in images.values()} == {s // 2 for s in SHAPE}
    assert len({image.window for image in images.values()}) == 1
    for plane, png in pngs.items():
        decoded = np.asarray(Image.open(io.BytesIO(png)))
        np.testing.assert_array_equal(decoded, images[plane].pixels)


def test_crosshair_marks_the_point_in_each_plane(make_file):
    volume = load_volume(make_file(".nii"))
    at = SliceIndex(5, 7, 9)
    images = plane_images(volume, at, crosshair=True, window=Window(0, 1e6))
    axial = images["axial"].pixels
    assert axial.shape[2] == 3
    # Axial picture: x runs across (sagittal line is vertical), y down (coronal line).
    row, col = volume.world_to_pixel(
        "axial", volume.voxel_to_world(at), image_shape=axial.shape[:2]
    )[:2]
    assert tuple(axial[round(row), 0]) == PLANE_COLORS["coronal"]
    assert tuple(axial[0, round(col)]) == PLANE_COLORS["sagittal"]
    decoded = np.asarray(Image.open(io.BytesIO(images["axial"].encode("png"))))
    np.testing.assert_array_equal(decoded, axial)  # RGB PNG round trip
    # Without a crosshair the picture is grey.
    assert plane_image(volume, "axial").pixels.ndim == 2


def test_frames_of_a_4d_file_render_differently(make_file):
    volume = load_volume(make_file(".nii.gz", shape=(*SHAPE, 2)))
    window = Window(0, 2000)
    first = plane_image(volume, "axial", frame=0, window=window).pixels
    second = plane_image(volume, "axial", frame=1, window=window).pixels
    assert second.astype(int).sum() > first.astype(int).sum()


def test_write_planes_writes_what_a_viewer_shows(ixi_paths, tmp_path):
    written = write_planes(ixi_paths[0], tmp_path / "out")
    assert {p.name for p in written.values()} == {"axial.png", "coronal.png", "sagittal.png"}
    images = plane_images(load_volume(ixi_paths[0]))
    for plane, path in written.items():
        np.testing.assert_array_equal(np.asarray(Image.open(path)), images[plane].pixels)


def test_write_planes_options(make_file, tmp_path):
    path = make_file(".nrrd", shape=(*SHAPE, 2))
    volume = load_volume(path)
    at = tuple(volume.voxel_to_world([3, 4, 5]))
    neuro = write_planes(path, tmp_path / "n", frame=1, window=(0, 1500), at=at)
    radio = write_planes(
        path, tmp_path / "r", frame=1, window=(0, 1500), at=at, convention="radiological"
    )
    n_axial = np.asarray(Image.open(neuro["axial"]))
    np.testing.assert_array_equal(np.asarray(Image.open(radio["axial"])), n_axial[:, ::-1])
    expected = plane_image(volume, "axial", 5, frame=1, window=(0, 1500)).pixels
    np.testing.assert_array_equal(n_axial, expected)


def test_write_planes_errors_name_the_file(tmp_path):
    with pytest.raises(VolumeError, match=r"missing\.nii\.gz"):
        write_planes(tmp_path / "missing.nii.gz", tmp_path / "out")
    assert not (tmp_path / "out").exists()
