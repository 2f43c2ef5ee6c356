"""The :class:`Volume` record: a decoded image in RAS+ voxel order, and its geometry.

A ``Volume`` is what the readers in :mod:`miqa_nb.volumes.io` return and what the
renderer, the cache and a review session share. It holds no file handle (an
uncompressed file stays memory-mapped through its array) and is never mutated:
the array is read-only, so one decoded volume can be shown by many threads.

Contract:

- ``data`` has shape ``(X, Y, Z)`` or ``(X, Y, Z, T)``; axes 0, 1, 2 point to the
  patient's Right, Anterior and Superior (a view of the stored array made with flips
  and transposes, see :func:`~miqa_nb.volumes.orientation.reorient_to_ras`).
- ``data`` holds the real values: scaled (NIfTI ``scl_slope``/``scl_inter``) data
  are float32, otherwise the stored type and byte order are kept (``.mgz`` is
  big-endian); consumers convert slices, never the whole volume.
- ``affine`` maps indices of ``data`` to world RAS+ millimetres.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from miqa_nb.volumes.orientation import (
    Convention,
    Plane,
    SliceIndex,
    WorldPoint,
    plane_axes,
    plane_pixel_to_voxel,
    voxel_to_plane_pixel,
    voxel_to_world,
    world_to_voxel,
)

__all__ = ["Volume"]


@dataclass(frozen=True, eq=False)
class Volume:
    """A decoded scan in RAS+ voxel order.

    Attributes
    ----------
    path : Path
        The file it was read from.
    data : ndarray
        Read-only voxel values, shape ``(X, Y, Z)`` or ``(X, Y, Z, T)``, RAS+ order.
    affine : ndarray, shape (4, 4)
        Voxel (of ``data``) -> world RAS+ mm.
    source_axes : tuple of str
        Anatomical direction of the stored voxel axes, e.g. ``('L', 'A', 'S')``.
    file_format : str
        ``'nifti1'``, ``'nifti2'``, ``'mgh'`` or ``'nrrd'``.
    """

    path: Path
    data: np.ndarray
    affine: npt.NDArray[np.float64]
    source_axes: tuple[str, str, str] = ("R", "A", "S")
    file_format: str = ""
    # Per-frame memo of computed windows (see miqa_nb.volumes.window); not state.
    _memo: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def shape(self) -> tuple[int, int, int]:
        """Spatial shape ``(X, Y, Z)`` of one frame."""
        s = self.data.shape
        return (int(s[0]), int(s[1]), int(s[2]))

    @property
    def n_frames(self) -> int:
        """Number of frames (volumes of a 4D series); 1 for a 3D file."""
        return int(self.data.shape[3]) if self.data.ndim == 4 else 1

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along the RAS+ array axes."""
        norms = np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0))
        return (float(norms[0]), float(norms[1]), float(norms[2]))

    @property
    def nbytes(self) -> int:
        """Bytes held by the voxel array (what a cache accounts for)."""
        return int(self.data.nbytes)

    @property
    def dtype(self) -> np.dtype[Any]:
        """Voxel type of ``data``."""
        return self.data.dtype

    def frame(self, t: int = 0) -> np.ndarray:
        """Return frame ``t`` as a 3D RAS+ array (a view).

        Raises
        ------
        IndexError
            If ``t`` is not a frame of this volume.
        """
        if not 0 <= t < self.n_frames:
            raise IndexError(
                f"frame {t} is out of range for {self.path.name}: it has {self.n_frames} frame(s)"
            )
        return self.data[..., t] if self.data.ndim == 4 else self.data

    def center(self) -> SliceIndex:
        """Slice numbers of the middle of the volume."""
        x, y, z = self.shape
        return SliceIndex(x // 2, y // 2, z // 2)

    # -- coordinates -------------------------------------------------------------
    def voxel_to_world(self, ijk: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """World RAS+ mm of RAS+ voxel coordinates ``ijk``."""
        return voxel_to_world(self.affine, ijk)

    def world_to_voxel(self, xyz: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Continuous RAS+ voxel coordinates of world point ``xyz`` (mm)."""
        return world_to_voxel(self.affine, xyz)

    def slices_at(self, xyz: npt.ArrayLike | WorldPoint) -> SliceIndex:
        """Slice numbers of the voxel nearest to a world point, clipped to the volume.

        Parameters
        ----------
        xyz : array_like of 3 floats or WorldPoint
            World RAS+ mm, e.g. MIQA's location of interest.
        """
        point = xyz.xyz if isinstance(xyz, WorldPoint) else xyz
        ijk = np.rint(self.world_to_voxel(point)).astype(int)
        ijk = np.clip(ijk, 0, np.asarray(self.shape) - 1)
        return SliceIndex(int(ijk[0]), int(ijk[1]), int(ijk[2]))

    def location_of(self, slices: SliceIndex) -> WorldPoint:
        """MIQA location of interest (world mm) of the voxel at ``slices``."""
        return WorldPoint.from_xyz(
            self.voxel_to_world([slices.sagittal, slices.coronal, slices.axial])
        )

    def pixel_to_world(
        self,
        plane: Plane,
        row: float,
        col: float,
        index: int,
        *,
        convention: Convention = "neurological",
        image_shape: tuple[int, int] | None = None,
    ) -> npt.NDArray[np.float64]:
        """World mm of a pixel of a displayed plane.

        Parameters
        ----------
        plane : {'axial', 'coronal', 'sagittal'}
        row, col : float
            Pixel in the picture (0, 0 = top-left pixel centre).
        index : int
            Slice number of the plane.
        convention : {'neurological', 'radiological'}
        image_shape : (int, int), optional
            ``(height, width)`` of the picture if it was resampled for display
            (``PlaneImage.pixels.shape[:2]``); default one pixel per voxel.
        """
        ijk = plane_pixel_to_voxel(plane, row, col, index, self.shape, convention, image_shape)
        return self.voxel_to_world(ijk)

    def world_to_pixel(
        self,
        plane: Plane,
        xyz: npt.ArrayLike,
        *,
        convention: Convention = "neurological",
        image_shape: tuple[int, int] | None = None,
    ) -> tuple[float, float, int]:
        """``(row, col, slice_index)`` of a world point in a displayed plane.

        The slice index is the nearest slice, clipped to the volume; row and col are
        continuous pixel coordinates. The inverse of :meth:`pixel_to_world`.
        """
        ijk = self.world_to_voxel(xyz)
        row, col, index = voxel_to_plane_pixel(plane, ijk, self.shape, convention, image_shape)
        n = self.shape[plane_axes(plane).slice_axis]
        return row, col, int(np.clip(np.rint(index), 0, n - 1))
