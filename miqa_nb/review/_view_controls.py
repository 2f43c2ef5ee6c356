"""What the reviewer sees, as the review session's own methods: forwarded to its view.

:class:`ViewControls` holds no state and no logic. It names the one part it forwards
to, ``view`` (a :class:`~miqa_nb.review.view.ScanView`, which owns the volume, frames,
crosshair, slices, window and pictures), so that a
:class:`~miqa_nb.review.session.ReviewSession` offers one surface
(``session.set_window('brain')`` as well as ``session.view.set_window('brain')``)
while its own module keeps to navigation, the decision and the catalog.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from miqa_nb.review.view import ScanView
from miqa_nb.volumes import PLANES, Convention, Plane, PlaneImage, SliceIndex, Volume, Window

__all__ = ["ViewControls"]


class ViewControls:
    """The view's state and controls, forwarded to :attr:`view`."""

    #: What the reviewer sees of the open scan.
    view: ScanView

    @property
    def convention(self) -> Convention:
        """Display convention of the project (``'neurological'`` or ``'radiological'``)."""
        return self.view.convention

    @property
    def max_size(self) -> int:
        """Longest side of a plane picture in pixels."""
        return self.view.max_size

    @property
    def volume(self) -> Volume | None:
        """The decoded volume of the current frame (None when it could not be loaded)."""
        return self.view.volume

    @property
    def n_frames(self) -> int:
        """Frames of the open scan."""
        return self.view.n_frames

    @property
    def frame(self) -> int:
        """The frame shown (0-based)."""
        return self.view.frame

    def set_frame(self, frame: int) -> None:
        """Show another frame of a multi-frame scan (the crosshair stays in place)."""
        self.view.set_frame(frame)

    @property
    def crosshair(self) -> tuple[float, float, float] | None:
        """The crosshair in world mm (RAS+), at a voxel centre."""
        return self.view.crosshair

    @property
    def slices(self) -> SliceIndex | None:
        """Slice numbers through the crosshair."""
        return self.view.slices

    def set_crosshair(self, xyz: Any) -> None:
        """Move the crosshair to a world point (mm), snapped to the nearest voxel
        (see :meth:`ScanView.set_crosshair <miqa_nb.review.view.ScanView.set_crosshair>`)."""
        self.view.set_crosshair(xyz)

    go_to = set_crosshair

    def set_slice(self, plane: Plane, index: int) -> None:
        """Show slice ``index`` of ``plane`` (clipped to the volume)."""
        self.view.set_slice(plane, index)

    def move_slice(self, plane: Plane, delta: int) -> None:
        """Scroll ``plane`` by ``delta`` slices."""
        self.view.move_slice(plane, delta)

    def click(self, plane: Plane, row: float, col: float) -> None:
        """Move the crosshair to a pixel of the last picture of ``plane``."""
        self.view.click(plane, row, col)

    @property
    def window_spec(self) -> str | tuple[float, float]:
        """A preset name or manual ``(low, high)``."""
        return self.view.window_spec

    @property
    def window(self) -> Window | None:
        """The window shown (None without a volume)."""
        return self.view.window

    def window_limits(self) -> tuple[float, float] | None:
        """Bounds for a manual window control (None without a volume)."""
        return self.view.window_limits()

    def set_window(self, spec: str | tuple[float, float] | Window) -> None:
        """Window/level: a preset (:data:`~miqa_nb.volumes.PRESETS`) or ``(low, high)``."""
        self.view.set_window(spec)

    def plane_images(
        self,
        planes: tuple[Plane, ...] = PLANES,
        max_size: int | None = None,
        *,
        grow: bool = False,
    ) -> dict[Plane, PlaneImage]:
        """The planes through the crosshair, zoomed, with the crosshair drawn (see
        :meth:`ScanView.plane_images <miqa_nb.review.view.ScanView.plane_images>`)."""
        return self.view.plane_images(planes, max_size, grow=grow)

    @property
    def zoom(self) -> float:
        """Magnification of the planes (1: the whole plane)."""
        return self.view.zoom

    def set_zoom(self, zoom: float) -> None:
        """Magnify the planes (1 to 8), centred on the crosshair."""
        self.view.set_zoom(zoom)

    def zoom_in(self) -> None:
        """The next zoom step."""
        self.view.zoom_in()

    def zoom_out(self) -> None:
        """The previous zoom step."""
        self.view.zoom_out()

    def pan(self, plane: Plane, down: float, right: float) -> None:
        """Move the zoomed content of ``plane`` by fractions of its picture."""
        self.view.pan(plane, down, right)

    def show_crosshair(self, shown: bool) -> None:
        """Draw the crosshair on the planes, or not."""
        self.view.show_crosshair(shown)

    def screenshot(self, planes: tuple[Plane, ...] = PLANES) -> bytes | None:
        """The planes last shown, side by side, as one PNG (None before any)."""
        return self.view.screenshot(planes)

    def render(self, fmt: str = "png") -> dict[Plane, bytes]:
        """The three planes as encoded pictures (``{}`` without a volume)."""
        return self.view.render(fmt)

    def volume_preview(
        self, max_side: int = 96
    ) -> tuple[np.ndarray, list[tuple[float, float]]] | None:
        """The shown frame for a 3D rendering (see :meth:`ScanView.volume_preview
        <miqa_nb.review.view.ScanView.volume_preview>`); None without a volume."""
        return self.view.volume_preview(max_side)
