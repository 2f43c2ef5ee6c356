"""Simulated MRI acquisition artifacts: pure functions, array in, array out.

This module owns the *physics-flavoured imitations* of the artifacts MIQA's reviewers
mark (ghosting from motion, thermal noise, intensity inhomogeneity, wrap-around,
partial brain coverage). :mod:`miqa_nb.demo._files` uses them to build the demo project's
artifact scans; tests and notebooks can use them on any array.

Contract
--------
- Every function is pure: no I/O, no global state; the input array is never modified.
- Functions that draw random numbers take a :class:`numpy.random.Generator`, so the
  same generator state gives the same output.
- Each returns an array of the input's dtype; integer results are rounded and clipped
  to that dtype's range.
- Axes follow the RAS+ storage of the MNI templates by default: axis 1
  (posterior-anterior) is the phase-encode axis, axis 2 (inferior-superior) the slice
  axis.

Examples
--------
>>> head = np.zeros((8, 8, 8), np.uint8)
>>> head[2:6, 2:6, 2:6] = 200
>>> wraparound(head, axis=PHASE_AXIS, start=2, size=4).shape
(8, 4, 8)
>>> noisy = rician_noise(head, np.random.default_rng(0))
>>> noisy.dtype, bool((noisy[head == 0] > 0).any())  # the background gains a floor
(dtype('uint8'), True)
>>> before = head.copy()
>>> same = [ghosting(head, np.random.default_rng(7)) for _ in range(2)]
>>> np.array_equal(*same), np.array_equal(head, before)  # one seed, one result; input kept
(True, True)
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "PHASE_AXIS",
    "SLICE_AXIS",
    "ghosting",
    "inhomogeneity",
    "partial_coverage",
    "rician_noise",
    "wraparound",
]

#: Default phase-encode axis (posterior-anterior in RAS+ storage: axial scans).
PHASE_AXIS = 1
#: Default slice axis (inferior-superior in RAS+ storage).
SLICE_AXIS = 2


def _like(values: np.ndarray, source: np.ndarray) -> np.ndarray:
    """Round (for integer dtypes) and clip ``values`` into ``source``'s dtype."""
    if np.issubdtype(source.dtype, np.integer):
        info = np.iinfo(source.dtype)
        values = np.clip(np.rint(values), info.min, info.max)
    return values.astype(source.dtype, copy=False)


def ghosting(
    data: np.ndarray,
    rng: np.random.Generator,
    *,
    axis: int = PHASE_AXIS,
    phase_error: float = 0.5,
    period: float = 4.0,
) -> np.ndarray:
    """Imitate motion ghosting: faint shifted copies of the head along the phase-encode axis.

    k-space is read one phase-encode line at a time, so anything that changes
    periodically between lines (breathing, pulsation, a rhythmic nod) gives each line
    a different phase. The image is Fourier-transformed along ``axis``, line ``k`` is
    multiplied by ``exp(i φ_k)`` with ``φ_k = phase_error · sin(2πk / period + θ)``
    (``θ`` random) plus a little random jitter, and the magnitude of the inverse
    transform is returned. Copies of the head appear every ``N / period`` voxels
    along ``axis`` (wrapping around the field of view), the first pair at about
    ``J₁(phase_error)`` (24 % for 0.5 rad) of the original intensity, over the
    background as well as over the head.

    Parameters
    ----------
    data : ndarray
        Magnitude image (3D or more), non-negative.
    rng : numpy.random.Generator
        Source of the motion's phase ``θ`` and of the line-to-line jitter.
    axis : int, optional
        Phase-encode axis.
    phase_error : float, optional
        Peak phase error of a line, in radians.
    period : float, optional
        Period of the motion, in k-space lines.

    Returns
    -------
    ndarray
        Ghosted image, same shape and dtype as ``data``.
    """
    n = data.shape[axis]
    # Lines in numpy's FFT order; the acquisition order (-k_max to k_max) is a roll of
    # it, which only changes θ.
    lines = np.arange(n)
    phases = phase_error * np.sin(2 * np.pi * lines / period + rng.uniform(0, 2 * np.pi))
    phases += rng.normal(0.0, 0.05 * phase_error, n)
    shape = [1] * data.ndim
    shape[axis] = n
    kspace = np.fft.fft(data.astype(np.float32), axis=axis)
    kspace *= np.exp(1j * phases).astype(np.complex64).reshape(shape)
    return _like(np.abs(np.fft.ifft(kspace, axis=axis)), data)


def rician_noise(
    data: np.ndarray, rng: np.random.Generator, *, sigma_fraction: float = 0.05
) -> np.ndarray:
    """Imitate thermal noise in a magnitude image (Rician distributed).

    Complex Gaussian noise is added to the (real) signal and the magnitude is
    taken, as a scanner does: the background becomes a Rayleigh-distributed floor
    and low-signal tissue gains a positive bias.

    Parameters
    ----------
    data : ndarray
        Magnitude image, non-negative.
    rng : numpy.random.Generator
        Source of the noise.
    sigma_fraction : float, optional
        Noise standard deviation per channel, as a fraction of the image's 99th
        percentile of non-zero voxels.

    Returns
    -------
    ndarray
        Noisy image, same shape and dtype as ``data``.
    """
    foreground = data[data > 0]
    scale = float(np.percentile(foreground, 99)) if foreground.size else 1.0
    sigma = np.float32(sigma_fraction * scale)
    real = data.astype(np.float32) + sigma * rng.standard_normal(data.shape, np.float32)
    imag = sigma * rng.standard_normal(data.shape, np.float32)
    return _like(np.hypot(real, imag), data)


def inhomogeneity(
    data: np.ndarray, rng: np.random.Generator, *, strength: float = 0.45
) -> np.ndarray:
    """Imitate intensity inhomogeneity: a smooth multiplicative bias field.

    Coil sensitivity and B1 non-uniformity make the same tissue brighter on one
    side of the head than on the other. The image is multiplied by
    ``exp(g·x + q(x))``, with ``x`` the voxel position scaled to [-1, 1] per axis,
    ``g`` a gradient of norm ``strength`` in a random direction and ``q`` a random
    quadratic of about a third of that size.

    Parameters
    ----------
    data : ndarray
        Image, 3D.
    rng : numpy.random.Generator
        Source of the field's direction and shape.
    strength : float, optional
        Norm of the linear log-gain: 0.45 makes the brightest edge of the grid up to
        about 55 % brighter than the centre and the opposite edge 35 % darker.

    Returns
    -------
    ndarray
        Biased image, same shape and dtype as ``data``.
    """
    direction = rng.normal(size=3)
    direction *= strength / np.linalg.norm(direction)
    curvature = rng.normal(0.0, strength / 3, size=3)
    axes = [np.linspace(-1.0, 1.0, n, dtype=np.float32) for n in data.shape[:3]]
    log_gain = sum(
        (g * x + c * x**2).reshape([-1 if i == a else 1 for i in range(3)])
        for a, (x, g, c) in enumerate(zip(axes, direction, curvature, strict=True))
    )
    field = np.exp(np.asarray(log_gain, dtype=np.float32))
    return _like(data * field, data)


def wraparound(data: np.ndarray, *, axis: int, start: int, size: int) -> np.ndarray:
    """Imitate wrap-around (aliasing): a field of view smaller than the head.

    When the phase-encode field of view is smaller than the object, signal from
    outside it folds back in from the opposite side: the nose lands on the back of
    the head. The returned image covers ``data[start:start + size]`` along ``axis``
    (the acquired field of view) and every slab of ``size`` voxels outside it is
    added on top, modulo ``size``.

    Parameters
    ----------
    data : ndarray
        Image.
    axis : int
        Phase-encode axis.
    start, size : int
        First voxel and length of the acquired field of view along ``axis``.

    Returns
    -------
    ndarray
        Aliased image, ``size`` voxels long along ``axis``, same dtype as ``data``.
        Its voxel ``i`` along ``axis`` sits where ``data``'s voxel ``start + i`` was.
    """
    n = data.shape[axis]
    if start < 0 or size <= 0 or start + size > n:
        raise ValueError(
            f"The field of view [{start}, {start + size}) must lie inside the {n} voxels "
            f"of axis {axis}; choose 0 <= start and start + size <= {n}."
        )
    moved = np.moveaxis(data, axis, 0).astype(np.float32)
    folded = np.zeros((size, *moved.shape[1:]), np.float32)
    for offset in range(start % size - size, n, size):  # offset of each slab (≤ n/size slabs)
        lo, hi = max(offset, 0), min(offset + size, n)
        folded[lo - offset : hi - offset] += moved[lo:hi]
    # Slab offsets are ≡ start (mod size), so folded[i] holds position start + i.
    return _like(np.moveaxis(folded, 0, axis), data)


def partial_coverage(
    data: np.ndarray, *, axis: int = SLICE_AXIS, missing: float = 0.25, at_end: bool = True
) -> np.ndarray:
    """Imitate partial brain coverage: a slab placed too low (or too high).

    The slices covering the last (``at_end``) or first ``missing`` fraction of the
    head's extent along ``axis`` are set to zero, as if they were never acquired:
    along the superior axis, the top of the brain is cut off.

    Parameters
    ----------
    data : ndarray
        Image with a zero background.
    axis : int, optional
        Slice axis.
    missing : float, optional
        Fraction of the head's extent (non-zero voxels) that is lost.
    at_end : bool, optional
        Lose the high-index end of ``axis`` (the top, for RAS data) if True.

    Returns
    -------
    ndarray
        Image with the missing slices zeroed, same shape and dtype as ``data``.
    """
    other = tuple(a for a in range(data.ndim) if a != axis)
    present = np.flatnonzero(np.any(data != 0, axis=other))
    out = data.copy()
    if present.size == 0:
        return out
    lost = round(missing * (present[-1] - present[0] + 1))
    index = [slice(None)] * data.ndim
    index[axis] = slice(present[-1] + 1 - lost, None) if at_end else slice(0, present[0] + lost)
    out[tuple(index)] = 0
    return out
