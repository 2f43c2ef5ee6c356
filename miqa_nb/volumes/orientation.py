"""Anatomical orientation: RAS+ reorientation, display planes, labels, voxel <-> world mm.

This module owns the geometry of what a reviewer sees, independent of file formats:

- :func:`reorient_to_ras` turns any stored voxel order into RAS+ order (array axis 0
  points to the patient's Right, axis 1 to Anterior, axis 2 to Superior) using only
  flips and transposes, so the result is a *view* of the stored array (no copy).
  Oblique acquisitions are shown along their closest anatomical axes (as most
  viewers do); coordinates always go through the full affine, so millimetres stay
  exact.
- A *plane* (``"axial"``, ``"coronal"``, ``"sagittal"``) of a RAS+ array is a 2D
  picture whose row 0 is the top of the screen. Axial: anterior at the top;
  coronal and sagittal: superior at the top; sagittal: anterior on the left.
  The *convention* (MIQA's ``anatomy_orientation``) decides the horizontal
  direction of axial and coronal planes: ``"neurological"`` puts the patient's
  left on the screen's left, ``"radiological"`` on the screen's right.
- Pixel <-> voxel <-> world conversions, and a point in world mm
  (:class:`WorldPoint`: ``i`` sagittal, ``j`` coronal, ``k`` axial, as MIQA's location
  of interest, :class:`miqa_nb.core.vocabulary.Location`, names them).

Contract: voxel coordinates here are indices of the RAS+ array (continuous, voxel
centres at integers); world coordinates are RAS+ millimetres (NIfTI scanner space).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple, get_args

import numpy as np
import numpy.typing as npt
from nibabel.orientations import aff2axcodes, apply_orientation, inv_ornt_aff, io_orientation

__all__ = [
    "CONVENTIONS",
    "PLANES",
    "Convention",
    "Plane",
    "PlaneAxes",
    "SliceIndex",
    "WorldPoint",
    "axis_codes",
    "check_convention",
    "check_plane",
    "extract_plane",
    "plane_axes",
    "plane_labels",
    "plane_pixel_to_voxel",
    "plane_shape",
    "reorient_to_ras",
    "voxel_to_plane_pixel",
    "voxel_to_world",
    "world_to_voxel",
]

Plane = Literal["axial", "coronal", "sagittal"]
Convention = Literal["neurological", "radiological"]
PLANES: tuple[Plane, ...] = get_args(Plane)
CONVENTIONS: tuple[Convention, ...] = get_args(Convention)

# Anatomical label of the low and high end of each RAS+ array axis.
_LOW_HIGH = (("L", "R"), ("P", "A"), ("I", "S"))


class PlaneAxes(NamedTuple):
    """How a plane is cut from a RAS+ array and laid out on screen.

    ``slice_axis`` is the array axis the plane is perpendicular to; ``row_axis`` runs
    down the screen and ``col_axis`` across it; a ``*_flip`` of True means the array
    index decreases along the screen direction.
    """

    slice_axis: int
    row_axis: int
    row_flip: bool
    col_axis: int
    col_flip: bool


class SliceIndex(NamedTuple):
    """Slice numbers of the three planes through one voxel (RAS+ array indices)."""

    sagittal: int
    coronal: int
    axial: int

    def of(self, plane: Plane) -> int:
        """Return the slice number of ``plane``."""
        return int(getattr(self, plane))


@dataclass(frozen=True)
class WorldPoint:
    """A point in world millimetres (RAS+), such as the crosshair. MIQA's location of
    interest (:class:`miqa_nb.core.vocabulary.Location`) is such a point with its text.

    ``i`` is the sagittal position (x, towards the patient's right), ``j`` the
    coronal position (y, anterior), ``k`` the axial position (z, superior).
    """

    i: float
    j: float
    k: float

    @property
    def xyz(self) -> tuple[float, float, float]:
        """The point as an ``(x, y, z)`` tuple in mm."""
        return (self.i, self.j, self.k)

    @classmethod
    def from_xyz(cls, xyz: npt.ArrayLike) -> WorldPoint:
        """Build a point from world ``(x, y, z)`` mm."""
        x, y, z = (float(v) for v in np.asarray(xyz, dtype=float).reshape(3))
        return cls(x, y, z)


def check_plane(plane: str) -> Plane:
    """Return ``plane`` if it names a plane, else raise ``ValueError``."""
    if plane not in PLANES:
        raise ValueError(f"'plane' must be one of {PLANES}; {plane!r} was provided")
    return plane


def check_convention(convention: str) -> Convention:
    """Return ``convention`` if it is a display convention, else raise ``ValueError``."""
    if convention not in CONVENTIONS:
        raise ValueError(f"'convention' must be one of {CONVENTIONS}; {convention!r} was provided")
    return convention


def axis_codes(affine: npt.ArrayLike) -> tuple[str, str, str]:
    """Return the anatomical direction of each voxel axis, e.g. ``('L', 'A', 'S')``."""
    codes = aff2axcodes(np.asarray(affine, dtype=float))
    return (str(codes[0]), str(codes[1]), str(codes[2]))


def reorient_to_ras(
    data: np.ndarray, affine: npt.ArrayLike
) -> tuple[np.ndarray, npt.NDArray[np.float64]]:
    """Reorder the first three axes of ``data`` to RAS+ without copying.

    Parameters
    ----------
    data : ndarray
        Voxel array with at least 3 dimensions; extra axes (frames) are kept last.
    affine : array_like, shape (4, 4)
        Voxel -> world (RAS+ mm) transform of ``data``.

    Returns
    -------
    ras_data : ndarray
        A view of ``data`` whose axes point to Right, Anterior, Superior.
    ras_affine : ndarray, shape (4, 4)
        Voxel -> world transform of ``ras_data``; the world picture is unchanged.
    """
    aff = np.asarray(affine, dtype=np.float64)
    ornt = io_orientation(aff)
    if np.array_equal(ornt, [[0, 1], [1, 1], [2, 1]]):
        return data, aff
    ras = apply_orientation(data, ornt)
    ras_affine = aff @ inv_ornt_aff(ornt, data.shape[:3])
    return ras, ras_affine


def plane_axes(plane: Plane, convention: Convention = "neurological") -> PlaneAxes:
    """Return how ``plane`` is laid out on screen under ``convention``.

    Parameters
    ----------
    plane : {'axial', 'coronal', 'sagittal'}
    convention : {'neurological', 'radiological'}

    Returns
    -------
    PlaneAxes
    """
    check_plane(plane)
    x_flip = check_convention(convention) == "radiological"
    if plane == "axial":  # anterior at the top
        return PlaneAxes(slice_axis=2, row_axis=1, row_flip=True, col_axis=0, col_flip=x_flip)
    if plane == "coronal":  # superior at the top
        return PlaneAxes(slice_axis=1, row_axis=2, row_flip=True, col_axis=0, col_flip=x_flip)
    # sagittal: superior at the top, anterior on the left, whatever the convention
    return PlaneAxes(slice_axis=0, row_axis=2, row_flip=True, col_axis=1, col_flip=True)


def plane_labels(plane: Plane, convention: Convention = "neurological") -> dict[str, str]:
    """Return the anatomical label at each edge of a displayed plane.

    Returns
    -------
    dict
        Keys ``'left'``, ``'right'``, ``'top'``, ``'bottom'``; values among
        ``'L', 'R', 'A', 'P', 'S', 'I'``. For example a radiological coronal plane
        gives ``{'left': 'R', 'right': 'L', 'top': 'S', 'bottom': 'I'}``.
    """
    ax = plane_axes(plane, convention)
    row_low, row_high = _LOW_HIGH[ax.row_axis]
    col_low, col_high = _LOW_HIGH[ax.col_axis]
    top, bottom = (row_high, row_low) if ax.row_flip else (row_low, row_high)
    left, right = (col_high, col_low) if ax.col_flip else (col_low, col_high)
    return {"left": left, "right": right, "top": top, "bottom": bottom}


def extract_plane(
    data: np.ndarray, plane: Plane, index: int, convention: Convention = "neurological"
) -> np.ndarray:
    """Cut one plane from a 3D RAS+ array, laid out for the screen (a view, no copy).

    Parameters
    ----------
    data : ndarray, shape (X, Y, Z)
        RAS+ voxel array (see :func:`reorient_to_ras`).
    plane : {'axial', 'coronal', 'sagittal'}
    index : int
        Slice number along the plane's normal axis.
    convention : {'neurological', 'radiological'}

    Returns
    -------
    ndarray, shape (rows, cols)
        Row 0 is the top of the screen.
    """
    if data.ndim != 3:
        raise ValueError(f"'data' must be 3D; an array of shape {data.shape} was provided")
    ax = plane_axes(plane, convention)
    n = data.shape[ax.slice_axis]
    if not 0 <= index < n:
        raise IndexError(f"{plane} slice {index} is out of range; the volume has {n} slices")
    plane2d = _take(data, ax, index)
    if ax.row_axis > ax.col_axis:
        plane2d = plane2d.T
    if ax.row_flip:
        plane2d = plane2d[::-1, :]
    if ax.col_flip:
        plane2d = plane2d[:, ::-1]
    return plane2d


def _take(data: np.ndarray, ax: PlaneAxes, index: int) -> np.ndarray:
    key: list[slice | int] = [slice(None)] * 3
    key[ax.slice_axis] = index
    return data[tuple(key)]


def plane_shape(shape: tuple[int, ...], plane: Plane) -> tuple[int, int]:
    """Return ``(rows, cols)`` of ``plane`` in voxels for a RAS+ array of ``shape``."""
    ax = plane_axes(plane)
    return (int(shape[ax.row_axis]), int(shape[ax.col_axis]))


def plane_pixel_to_voxel(
    plane: Plane,
    row: float,
    col: float,
    index: float,
    shape: tuple[int, ...],
    convention: Convention = "neurological",
    image_shape: tuple[int, int] | None = None,
) -> npt.NDArray[np.float64]:
    """Convert a pixel of a displayed plane to continuous RAS+ voxel coordinates.

    Parameters
    ----------
    plane : {'axial', 'coronal', 'sagittal'}
    row, col : float
        Pixel position (0 = top/left pixel centre).
    index : float
        Slice number of the plane.
    shape : tuple of int
        Shape of the RAS+ array (at least 3 values).
    convention : {'neurological', 'radiological'}
    image_shape : (int, int), optional
        ``(height, width)`` of the displayed picture when it was resampled (see
        :func:`miqa_nb.volumes.render.plane_image`); default: one pixel per voxel.

    Returns
    -------
    ndarray, shape (3,)
        Voxel coordinates ``(i, j, k)`` in the RAS+ array.
    """
    ax = plane_axes(plane, convention)
    n_rows, n_cols = int(shape[ax.row_axis]), int(shape[ax.col_axis])
    if image_shape is not None:
        row = (row + 0.5) * n_rows / image_shape[0] - 0.5
        col = (col + 0.5) * n_cols / image_shape[1] - 0.5
    ijk = np.zeros(3)
    ijk[ax.slice_axis] = index
    ijk[ax.row_axis] = (n_rows - 1 - row) if ax.row_flip else row
    ijk[ax.col_axis] = (n_cols - 1 - col) if ax.col_flip else col
    return ijk


def voxel_to_plane_pixel(
    plane: Plane,
    ijk: npt.ArrayLike,
    shape: tuple[int, ...],
    convention: Convention = "neurological",
    image_shape: tuple[int, int] | None = None,
) -> tuple[float, float, float]:
    """Convert RAS+ voxel coordinates to ``(row, col, slice_index)`` of a displayed plane.

    The inverse of :func:`plane_pixel_to_voxel`; parameters have the same meaning.
    """
    ax = plane_axes(plane, convention)
    v = np.asarray(ijk, dtype=float).reshape(3)
    n_rows, n_cols = int(shape[ax.row_axis]), int(shape[ax.col_axis])
    row = (n_rows - 1 - v[ax.row_axis]) if ax.row_flip else v[ax.row_axis]
    col = (n_cols - 1 - v[ax.col_axis]) if ax.col_flip else v[ax.col_axis]
    if image_shape is not None:
        row = (row + 0.5) * image_shape[0] / n_rows - 0.5
        col = (col + 0.5) * image_shape[1] / n_cols - 0.5
    return float(row), float(col), float(v[ax.slice_axis])


def voxel_to_world(affine: npt.ArrayLike, ijk: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Apply a voxel -> world affine to one point or an ``(N, 3)`` array of points."""
    aff = np.asarray(affine, dtype=np.float64)
    pts = np.asarray(ijk, dtype=np.float64)
    return pts @ aff[:3, :3].T + aff[:3, 3]


def world_to_voxel(affine: npt.ArrayLike, xyz: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Map world mm to continuous voxel coordinates (inverse of :func:`voxel_to_world`)."""
    aff = np.asarray(affine, dtype=np.float64)
    pts = np.asarray(xyz, dtype=np.float64)
    return np.asarray(np.linalg.solve(aff[:3, :3], (pts - aff[:3, 3]).T).T, dtype=np.float64)
