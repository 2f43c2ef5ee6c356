"""Tests of miqa_nb.volumes.thumbnails: three mid planes, cached on disk by path,
mtime and size, so a second request does not decode the scan."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from miqa_nb.core.errors import VolumeError
from miqa_nb.volumes import PLANES, load_volume, plane_images, thumbnail
from miqa_nb.volumes.thumbnails import thumbnail_pixels


class Counting:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, path):
        self.calls += 1
        return load_volume(path)


def test_thumbnail_shows_the_three_mid_planes(ixi_paths, tmp_path):
    path = thumbnail(ixi_paths[0], tmp_path, size=64)
    strip = np.asarray(Image.open(path))
    images = plane_images(load_volume(ixi_paths[0]), max_size=64)
    assert strip.shape == (
        max(images[p].image_shape[0] for p in PLANES),
        sum(images[p].image_shape[1] for p in PLANES),
    )
    x = 0
    for plane in PLANES:
        h, w = images[plane].image_shape
        top = (strip.shape[0] - h) // 2
        np.testing.assert_array_equal(strip[top : top + h, x : x + w], images[plane].pixels)
        x += w


def test_second_request_does_not_decode(make_file, tmp_path):
    scan = make_file(".nii.gz")
    loader = Counting()
    first = thumbnail(scan, tmp_path / "thumbs", loader=loader)
    second = thumbnail(scan, tmp_path / "thumbs", loader=loader)
    assert first == second and first.exists()
    assert loader.calls == 1
    assert [p.name for p in (tmp_path / "thumbs").iterdir()] == [first.name]  # no temp left


def test_modified_scan_gets_a_new_thumbnail(make_file, tmp_path):
    scan = make_file(".nii.gz")
    loader = Counting()
    first = thumbnail(scan, tmp_path, loader=loader)
    os.replace(make_file(".nii.gz", dtype="float32", name="other"), scan)
    second = thumbnail(scan, tmp_path, loader=loader)
    assert second != first and loader.calls == 2


def test_settings_are_part_of_the_key(make_file, tmp_path):
    """Size, convention and window each get a thumbnail of their own, drawn with them:
    one cache folder never answers a request with a picture drawn for other settings."""
    scan = make_file(".mgz")
    volume = load_volume(scan)
    variants: list[dict] = [
        {"size": 32},
        {"size": 48},
        {"size": 32, "convention": "radiological"},
        {"size": 32, "window": (0.0, 50.0)},
    ]
    pictures = []
    for settings in variants:
        pixels = np.asarray(Image.open(thumbnail(scan, tmp_path, **settings)))
        np.testing.assert_array_equal(pixels, thumbnail_pixels(volume, **settings))
        assert pixels.shape[0] <= settings["size"]
        pictures.append(pixels)
    for i, one in enumerate(pictures):  # the settings do change the picture
        for other in pictures[i + 1 :]:
            assert one.shape != other.shape or not np.array_equal(one, other)
    assert len(list(tmp_path.glob("*.png"))) == len(variants)


def test_4d_scan_uses_first_frame(make_file):
    volume = load_volume(make_file(".nii", shape=(20, 24, 16, 2)))
    assert thumbnail_pixels(volume).ndim == 2


def test_missing_or_broken_scan_raises_volume_error(tmp_path):
    with pytest.raises(VolumeError, match=r"nothing\.nii\.gz"):
        thumbnail(tmp_path / "nothing.nii.gz", tmp_path)
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(VolumeError, match=r"broken\.nii\.gz"):
        thumbnail(broken, tmp_path / "thumbs")
    assert not list(tmp_path.rglob("*.png"))
