"""Window/level: which intensities map to black and white on screen.

This module owns the intensity mapping shared by every plane of a scan:

- :class:`Window` (``low`` -> black, ``high`` -> white) and :meth:`Window.apply`,
  which maps any slice to uint8 with float32 arithmetic (never float64).
- :func:`auto_window`: robust percentiles of the *foreground*, i.e. voxels above
  the scan's minimum (the empty background of an MRI frame is often more than half
  of its voxels and would drag a plain percentile to zero). Percentiles are
  computed on a strided subsample of at most ``max_samples`` voxels: on a
  256^3 volume this takes a few milliseconds instead of a few hundred, and the
  result is within a grey level or two of the exact one (tested on the MNI template).
- Presets by name (:data:`PRESETS`) and :func:`resolve_window`, which accepts a
  preset name, a ``(low, high)`` pair or a ``Window``.

One window is computed per frame and applied to all three planes, so the planes of a
scan are comparable; :func:`frame_window` memoizes it on the volume (the cache
computes the default one in its decoding thread, so a prefetched scan shows at once).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from miqa_nb.volumes.volume import Volume

__all__ = [
    "PRESETS",
    "Window",
    "WindowSpec",
    "auto_window",
    "foreground_sample",
    "frame_window",
    "resolve_window",
]

# name -> (lower, upper) percentiles of the foreground, or None for min..max.
PRESETS: dict[str, tuple[float, float] | None] = {
    # Robust default: ignores a few hot voxels and the darkest noise.
    "auto": (1.0, 99.5),
    # Every value visible, nothing saturated (to spot clipping or hot spikes).
    "full": None,
    # Suppresses the darkest quarter of the head (CSF, scalp noise, air in the
    # sinuses) and lets the brightest 1% (fat) saturate: grey/white contrast.
    "brain": (25.0, 99.0),
    # Narrow, high-contrast window for subtle artifacts (ghosting, ringing).
    "contrast": (10.0, 90.0),
}


@dataclass(frozen=True)
class Window:
    """Intensity window: ``low`` is shown black, ``high`` white, linear between."""

    low: float
    high: float

    def __post_init__(self) -> None:
        if not (np.isfinite(self.low) and np.isfinite(self.high)) or self.high <= self.low:
            raise ValueError(
                f"a window needs finite low < high; low={self.low!r}, high={self.high!r} "
                "were provided"
            )

    @property
    def level(self) -> float:
        """Centre of the window."""
        return (self.low + self.high) / 2

    @property
    def width(self) -> float:
        """Width of the window."""
        return self.high - self.low

    def apply(self, values: np.ndarray) -> np.ndarray:
        """Map intensities to uint8 grey levels (0 at ``low``, 255 at ``high``).

        Parameters
        ----------
        values : ndarray
            Any real or integer array (any byte order), e.g. a slice.

        Returns
        -------
        ndarray of uint8, same shape; NaN maps to 0.
        """
        out = np.subtract(values, np.float32(self.low), dtype=np.float32)
        out *= np.float32(255.0 / (self.high - self.low))
        np.clip(out, 0.0, 255.0, out=out)
        if values.dtype.kind == "f":
            np.nan_to_num(out, copy=False, nan=0.0)
        out += np.float32(0.5)
        return out.astype(np.uint8)


WindowSpec = str | tuple[float, float] | Window


def foreground_sample(data: np.ndarray, max_samples: int = 1 << 18) -> np.ndarray:
    """Return a strided subsample of the voxels above the minimum (the foreground).

    Parameters
    ----------
    data : ndarray
        A frame (any dimensionality).
    max_samples : int
        Upper bound on the number of voxels examined.

    Returns
    -------
    ndarray, 1D, native byte order, finite values only. Empty if the frame is
    constant (or all NaN).
    """
    step = max(1, int(np.ceil((data.size / max_samples) ** (1.0 / max(data.ndim, 1)))))
    sample = np.asarray(data[(slice(None, None, step),) * data.ndim])
    sample = sample.astype(sample.dtype.newbyteorder("="), copy=False).ravel()
    if sample.dtype.kind == "f":
        sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return sample
    return sample[sample > sample.min()]


def auto_window(
    data: np.ndarray, lower: float = 1.0, upper: float = 99.5, max_samples: int = 1 << 18
) -> Window:
    """Window from percentiles of the foreground (voxels above the background).

    Parameters
    ----------
    data : ndarray
        A frame.
    lower, upper : float
        Percentiles (0-100) of the foreground mapped to black and white.
    max_samples : int
        Bound on voxels examined (see :func:`foreground_sample`).

    Returns
    -------
    Window
        A valid window even for a constant frame (``(v, v + 1)``).
    """
    if not 0.0 <= lower < upper <= 100.0:
        raise ValueError(
            f"percentiles must satisfy 0 <= lower < upper <= 100; ({lower}, {upper}) was provided"
        )
    fg = foreground_sample(data, max_samples)
    if fg.size == 0:
        return _degenerate(data)
    lo, hi = np.percentile(fg, [lower, upper])
    if not hi > lo:
        lo, hi = float(fg.min()), float(fg.max())
    if not hi > lo:
        return Window(float(lo), float(lo) + 1.0)
    return Window(float(lo), float(hi))


def _degenerate(data: np.ndarray) -> Window:
    bounds = _finite_range(data)
    base = bounds[0] if bounds is not None else 0.0
    return Window(base, base + 1.0)


def _full_window(data: np.ndarray) -> Window:
    bounds = _finite_range(data)
    if bounds is None:
        return _degenerate(data)
    lo, hi = bounds
    return Window(lo, hi) if hi > lo else Window(lo, lo + 1.0)


def _finite_range(data: np.ndarray) -> tuple[float, float] | None:
    """Smallest and largest finite value (None if there is none), one plane at a time:
    a whole-volume mask and copy would double the memory of a large float volume."""
    if data.size == 0:
        return None
    if data.dtype.kind != "f":
        return float(data.min()), float(data.max())
    lo, hi = np.inf, -np.inf
    outer = int(np.argmax(np.abs(data.strides)))  # planes across it lie together in memory
    for plane in np.moveaxis(data, outer, 0) if data.ndim > 1 else [data]:
        finite = plane[np.isfinite(plane)]
        if finite.size:
            lo, hi = min(lo, float(finite.min())), max(hi, float(finite.max()))
    return (lo, hi) if lo <= hi else None


def resolve_window(data: np.ndarray, spec: WindowSpec = "auto") -> Window:
    """Turn a preset name, a ``(low, high)`` pair or a :class:`Window` into a Window.

    Parameters
    ----------
    data : ndarray
        The frame the window is for (only read for presets).
    spec : str or (float, float) or Window
        One of :data:`PRESETS`, manual bounds, or a ready window.

    Returns
    -------
    Window
    """
    if isinstance(spec, Window):
        return spec
    if isinstance(spec, str):
        if spec not in PRESETS:
            raise ValueError(f"'window' must be one of {tuple(PRESETS)}; {spec!r} was provided")
        pct = PRESETS[spec]
        return _full_window(data) if pct is None else auto_window(data, *pct)
    low, high = _pair(spec)
    return Window(low, high)


def _pair(spec: Any) -> tuple[float, float]:
    try:
        low, high = spec
        return float(low), float(high)
    except (TypeError, ValueError):
        raise ValueError(
            f"'window' must be a preset name {tuple(PRESETS)}, a (low, high) pair or a "
            f"Window; {spec!r} was provided"
        ) from None


def frame_window(volume: Volume, spec: WindowSpec = "auto", frame: int = 0) -> Window:
    """The window of one frame, computed once per volume and preset.

    Parameters
    ----------
    volume : Volume
    spec : str or (float, float) or Window
        A preset name (see :data:`~miqa_nb.volumes.window.PRESETS`), manual bounds
        or a window.
    frame : int
        Frame of a 4D volume.
    """
    if not isinstance(spec, str):
        return resolve_window(volume.data, spec)
    key = ("window", spec, frame)
    window = volume._memo.get(key)
    if window is None:
        window = resolve_window(volume.frame(frame), spec)
        volume._memo[key] = window
    return window
