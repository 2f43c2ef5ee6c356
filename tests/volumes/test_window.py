"""Tests of miqa_nb.volumes.window: robust auto window, presets, manual, mapping."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import phantom

from miqa_nb.volumes import PRESETS, Window, auto_window, load_volume, resolve_window


def test_auto_window_ignores_empty_background():
    rng = np.random.default_rng(1)
    data = np.zeros((64, 64, 64), dtype=np.int16)  # 90% empty background
    head = rng.normal(500, 50, (30, 30, 30)).astype(np.int16)
    data[10:40, 10:40, 10:40] = head
    window = auto_window(data)
    # A plain 1st percentile would be 0 (background); ours sits in the head.
    assert np.percentile(data, 1) == 0
    assert 300 < window.low < 450
    assert 550 < window.high < 700


def test_auto_window_is_robust_to_hot_voxels():
    data = phantom().astype(np.float32)
    data[0, 0, 0] = 1e9
    window = auto_window(data)
    assert window.high < 1500


def test_subsampled_percentiles_are_within_two_grey_levels_of_exact(mni_image):
    data = np.asanyarray(mni_image.dataobj)
    window = auto_window(data)
    fg = data[data > data.min()]
    lo, hi = np.percentile(fg, [1, 99.5])
    assert abs(window.low - lo) <= 2 * (hi - lo) / 255
    assert abs(window.high - hi) <= 2 * (hi - lo) / 255


def test_presets():
    data = phantom()
    full = resolve_window(data, "full")
    assert (full.low, full.high) == (0, 1000)
    auto, brain, contrast = (resolve_window(data, p) for p in ("auto", "brain", "contrast"))
    assert full.width > auto.width > contrast.width
    assert brain.low > auto.low
    assert set(PRESETS) >= {"auto", "full", "brain", "contrast"}


def test_manual_window_and_errors():
    assert resolve_window(phantom(), (10, 20)) == Window(10.0, 20.0)
    assert resolve_window(phantom(), Window(1, 2)) == Window(1, 2)
    with pytest.raises(ValueError, match="'window' must be one of"):
        resolve_window(phantom(), "bone")
    with pytest.raises(ValueError, match="low < high"):
        Window(5, 5)
    with pytest.raises(ValueError, match="a preset name"):
        resolve_window(phantom(), (1, 2, 3))  # type: ignore[arg-type]


def test_apply_maps_low_to_black_and_high_to_white():
    window = Window(100.0, 200.0)
    values = np.array([[-5, 100, 150], [200, 250, 30000]], dtype=np.int16)
    np.testing.assert_array_equal(window.apply(values), [[0, 0, 128], [255, 255, 255]])


def test_apply_handles_big_endian_and_nan():
    window = Window(0.0, 10.0)
    be = np.array([0, 5, 10], dtype=">i2")
    np.testing.assert_array_equal(window.apply(be), [0, 128, 255])
    floats = np.array([np.nan, np.inf, -np.inf, 5.0], dtype=np.float32)
    np.testing.assert_array_equal(window.apply(floats), [0, 255, 0, 128])


def test_constant_and_all_nan_frames_get_a_valid_window():
    assert auto_window(np.full((4, 4, 4), 7.0)) == Window(7.0, 8.0)
    nan = np.full((4, 4, 4), np.nan, dtype=np.float32)
    assert auto_window(nan) == Window(0.0, 1.0)
    assert resolve_window(nan, "full") == Window(0.0, 1.0)


def test_big_endian_mgz_window_equals_native(make_file):
    nii = load_volume(make_file(".nii", dtype="float32"))
    mgz = load_volume(make_file(".mgz", dtype="float32"))
    assert mgz.dtype.byteorder == ">"
    assert auto_window(mgz.data) == auto_window(nii.data)
