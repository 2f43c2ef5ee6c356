"""Tests of miqa_nb.demo.artifacts: the simulated acquisition artifacts, on arrays in memory.

The physics checks run on the real MNI ICBM152 2009a T1 that nilearn ships (read with
nibabel, no download); the contract checks (seeded, dtype kept, clipped, input left
alone) run on a small synthetic volume from a seeded generator.
"""

from __future__ import annotations

import importlib.util
import pathlib

import nibabel as nib
import numpy as np
import pytest

from miqa_nb.demo.artifacts import (
    PHASE_AXIS,
    SLICE_AXIS,
    ghosting,
    inhomogeneity,
    partial_coverage,
    rician_noise,
    wraparound,
)

MNI_T1 = ("datasets", "data", "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz")


@pytest.fixture(scope="module")
def t1() -> np.ndarray:
    """The MNI ICBM152 2009a T1 (197x233x189, 1 mm RAS+), as int16 like the demo's."""
    spec = importlib.util.find_spec("nilearn")
    assert spec is not None and spec.submodule_search_locations
    path = pathlib.Path(next(iter(spec.submodule_search_locations)), *MNI_T1)
    data = np.rint(np.asanyarray(nib.load(path).dataobj)).astype(np.int16)
    data.setflags(write=False)  # the simulations must not modify their input
    return data


@pytest.fixture
def small() -> np.ndarray:
    rng = np.random.default_rng(42)
    data = np.zeros((24, 32, 20), np.int16)
    data[6:18, 8:24, 4:16] = rng.integers(50, 250, (12, 16, 12))
    return data


# --- the physics, on a real head ----------------------------------------------


def test_ghosting_adds_shifted_copies_outside_the_head(t1: np.ndarray) -> None:
    ghosted = ghosting(t1, np.random.default_rng([0, 1]))
    assert ghosted.shape == t1.shape and ghosted.dtype == t1.dtype
    background = t1 == 0
    assert ghosted[background].mean() > 5  # clean background is exactly 0
    # The signal outside the head is copies of the head shifted along y by N/4.
    shift = round(t1.shape[PHASE_AXIS] / 4)
    copies = np.roll(t1, shift, axis=1).astype(float) + np.roll(t1, -shift, axis=1)
    r = np.corrcoef(ghosted[background].astype(float), copies[background])[0, 1]
    assert r > 0.5
    # A phase error moves energy; it does not create it (Parseval).
    energy = np.sum(ghosted.astype(float) ** 2) / np.sum(t1.astype(float) ** 2)
    assert energy == pytest.approx(1.0, abs=0.01)


def test_noise_raises_background_std(t1: np.ndarray) -> None:
    noisy = rician_noise(t1, np.random.default_rng([0, 2]))
    background, brain = t1 == 0, t1 > 100
    assert t1[background].std() == 0
    assert noisy[background].std() > 3
    assert noisy[background].mean() > 5  # Rician floor: magnitude is never negative
    assert noisy.min() >= 0
    assert noisy[brain].mean() == pytest.approx(t1[brain].mean(), rel=0.02)


def test_inhomogeneity_changes_side_to_side_ratio(t1: np.ndarray) -> None:
    biased = inhomogeneity(t1, np.random.default_rng([0, 3]))
    brain = t1 > 0
    np.testing.assert_array_equal(biased[~brain], 0)

    def log_ratios(image: np.ndarray) -> np.ndarray:
        out = []
        for axis in range(3):
            index = np.indices(image.shape, sparse=True)[axis]
            high = brain & (index >= image.shape[axis] // 2)
            low = brain & (index < image.shape[axis] // 2)
            out.append(np.log(image[high].mean() / image[low].mean()))
        return np.array(out)

    change = np.abs(log_ratios(biased.astype(float)) - log_ratios(t1.astype(float)))
    assert change.max() > 0.15  # one side >16 % brighter relative to the other
    # The field is smooth: neighbouring voxels get almost the same gain.
    inner = t1 > 100
    gain = np.where(inner, biased / np.maximum(t1, 1).astype(float), np.nan)
    step = np.abs(np.diff(gain, axis=0))
    assert np.nanmedian(step) < 0.02
    assert np.nanstd(gain) > 0.1


def test_wraparound_folds_signal_in_from_the_opposite_edge(t1: np.ndarray) -> None:
    n = t1.shape[PHASE_AXIS]
    size = round(0.6 * n)
    start = (n - size) // 2
    wrapped = wraparound(t1, axis=PHASE_AXIS, start=start, size=size)
    assert wrapped.shape == (t1.shape[0], size, t1.shape[2]) and wrapped.dtype == t1.dtype
    window = t1[:, start : start + size].astype(np.int64)
    beyond_front = t1[:, start + size :].astype(np.int64)
    assert beyond_front.sum() > 0, "the head extends past the field of view"
    # Signal is conserved: whatever is outside the window is folded into it.
    assert wrapped.sum(dtype=np.int64) == t1.sum(dtype=np.int64)
    k = beyond_front.shape[1]
    extra = wrapped[:, :k].astype(np.int64) - window[:, :k]
    np.testing.assert_array_equal(extra, beyond_front)  # the front lands at the back edge
    np.testing.assert_array_equal(wrapped[:, k : size - start], window[:, k : size - start])


def test_partial_coverage_zeroes_top_slices(t1: np.ndarray) -> None:
    cut = partial_coverage(t1)
    assert cut.shape == t1.shape and cut.dtype == t1.dtype
    has_signal = t1.any(axis=(0, 1))
    zeroed = has_signal & ~cut.any(axis=(0, 1))
    missing = np.flatnonzero(zeroed)
    assert len(missing) >= 0.2 * has_signal.sum()
    assert missing[-1] == np.flatnonzero(has_signal)[-1], "the top is missing"
    assert np.all(np.diff(missing) == 1), "one contiguous slab"
    kept = slice(0, missing[0])
    np.testing.assert_array_equal(cut[:, :, kept], t1[:, :, kept])


# --- the contract, on a small volume -------------------------------------------


@pytest.mark.parametrize(
    "simulate",
    [
        lambda d, rng: ghosting(d, rng),
        lambda d, rng: rician_noise(d, rng),
        lambda d, rng: inhomogeneity(d, rng),
    ],
    ids=["ghosting", "noise", "inhomogeneity"],
)
def test_random_artifacts_are_seeded_and_keep_dtype(small: np.ndarray, simulate) -> None:
    a = simulate(small, np.random.default_rng(0))
    b = simulate(small, np.random.default_rng(0))
    c = simulate(small, np.random.default_rng(1))
    assert a.dtype == small.dtype and a.shape == small.shape
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert not np.array_equal(a, small)
    assert simulate(small.astype(np.float32), np.random.default_rng(0)).dtype == np.float32


@pytest.mark.parametrize(
    "simulate",
    [
        lambda d: ghosting(d, np.random.default_rng(0)),
        lambda d: rician_noise(d, np.random.default_rng(0)),
        lambda d: inhomogeneity(d, np.random.default_rng(0)),
        lambda d: wraparound(d, axis=PHASE_AXIS, start=4, size=20),
        lambda d: partial_coverage(d, axis=SLICE_AXIS),
    ],
    ids=["ghosting", "noise", "inhomogeneity", "wraparound", "partial_coverage"],
)
def test_input_is_left_alone(small: np.ndarray, simulate) -> None:
    before = small.copy()
    small.setflags(write=False)
    out = simulate(small)
    np.testing.assert_array_equal(small, before)
    assert out.flags.writeable and not np.shares_memory(out, small)


def test_integer_results_are_clipped_to_dtype() -> None:
    bright = np.full((4, 4, 4), 30000, np.int16)
    out = wraparound(bright, axis=1, start=1, size=2)
    assert out.dtype == np.int16 and out.max() == np.iinfo(np.int16).max


def test_wraparound_identity_and_errors(small: np.ndarray) -> None:
    np.testing.assert_array_equal(wraparound(small, axis=1, start=0, size=32), small)
    folded = wraparound(small, axis=0, start=5, size=10)
    assert folded.shape == (10, 32, 20)
    assert folded.sum(dtype=np.int64) == small.sum(dtype=np.int64)
    with pytest.raises(ValueError, match="field of view"):
        wraparound(small, axis=1, start=20, size=20)


def test_partial_coverage_bottom(small: np.ndarray) -> None:
    out = partial_coverage(small, axis=2, missing=0.5, at_end=False)
    np.testing.assert_array_equal(out[:, :, :10], 0)
    np.testing.assert_array_equal(out[:, :, 10:], small[:, :, 10:])
    assert partial_coverage(np.zeros((3, 3, 3), np.int16)).sum() == 0
