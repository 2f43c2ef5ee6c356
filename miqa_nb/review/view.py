"""The view part of a review session: the open scan's volume, frame, crosshair, window
and pictures.

:class:`ScanView` owns what the reviewer *sees* of the open scan; a
:class:`~miqa_nb.review.session.ReviewSession` holds one and forwards its view methods
to it. It is given what it needs: the :class:`~miqa_nb.volumes.VolumeCache` frames
are loaded through (``s3://`` objects are fetched into a local cache), the display
convention, the picture size, and two callbacks of its owner -- ``notify(event)``
(changes are announced as ``'view'``) and ``fail(exc)`` (a failure becomes the
session's ``last_error``). It keeps the crosshair in world millimetres snapped to a
voxel centre, turns clicks on a picture into world points, and renders the three
planes through :mod:`miqa_nb.volumes`. Zoom is one factor for the three planes,
centred on a focus point in world mm that panning moves (zooming in from the whole
plane starts at the crosshair); a window lock keeps a manual window for the next scans
(MIQA's "window lock"). It knows nothing of the queue, the catalog or
the session.

A scan's frames are one file per frame (MIQA's layout) or the volumes of one 4D file.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from miqa_nb.core.errors import MiqaError, VolumeError
from miqa_nb.core.vocabulary import Location
from miqa_nb.volumes import (
    PLANES,
    PRESETS,
    Convention,
    Plane,
    PlaneImage,
    SliceIndex,
    Volume,
    VolumeCache,
    Window,
    WorldPoint,
    encode_image,
    frame_window,
    plane_axes,
    plane_images,
    side_by_side,
)

__all__ = ["PLANES_AXIS", "ZOOMS", "ScanView"]

_log = logging.getLogger("miqa_nb.review")

#: RAS+ array axis each plane's slice number runs along.
PLANES_AXIS: dict[str, int] = {"sagittal": 0, "coronal": 1, "axial": 2}
#: Zoom factors the zoom in / out steps go through.
ZOOMS: tuple[float, ...] = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)


class ScanView:
    """What the reviewer sees of the open scan.

    Parameters
    ----------
    cache : VolumeCache
        Where frames are decoded (and kept).
    convention : {'neurological', 'radiological'}
        Display convention of the pictures.
    max_size : int
        Longest side of a plane picture in pixels.
    notify : callable
        ``notify(event)``: announces ``'view'`` changes to the owner's observers.
    fail : callable
        ``fail(exc)``: reports a failure (loading, a wrong window) to the owner.
    """

    def __init__(
        self,
        cache: VolumeCache,
        *,
        convention: Convention,
        max_size: int,
        notify: Callable[[str], None],
        fail: Callable[[BaseException], None],
    ) -> None:
        self.cache = cache
        self.convention: Convention = convention
        self.max_size = max_size
        self._notify = notify
        self._fail = fail
        self._name = ""
        self._volume: Volume | None = None
        self._sources: list[tuple[str, int]] = []
        self._frame = 0
        self._crosshair: tuple[float, float, float] | None = None
        self._window: str | tuple[float, float] = "auto"
        self._shown: dict[Plane, PlaneImage] = {}
        self._zoom = 1.0
        self._focus: tuple[float, float, float] | None = None
        #: Draw the crosshair on the planes.
        self.crosshair_shown = True
        #: Keep a manual window for the next scans (else it goes back to ``'auto'``).
        self.window_lock = False

    def show(self, name: str, frames: Sequence[str]) -> bool:
        """Show another scan: its first frame, crosshair in the middle; a preset window
        is kept, a manual one goes back to ``'auto'`` unless :attr:`window_lock` is on;
        the zoom goes back to the whole plane. False if it could not be loaded.

        Parameters
        ----------
        name : str
            The scan, as named in error messages.
        frames : sequence of str
            One file location per frame (or one 4D file).
        """
        self._name = name
        self._frame = 0
        self._sources = [(path, 0) for path in frames]
        if self._window not in PRESETS and not self.window_lock:
            self._window = "auto"
        self._zoom, self._focus = 1.0, None
        return self._load(0, recentre=True)

    def clear(self) -> None:
        """Show nothing (no scan is open)."""
        self._volume = None
        self._shown = {}

    def other_frames(self, n: int = 4) -> list[str]:
        """Files of the next ``n`` frames of this scan (to decode ahead)."""
        return [path for path, _ in self._sources[1 : 1 + n]]

    def _load(self, frame: int, *, recentre: bool) -> bool:
        """Load the volume of ``frame``; on failure keep the error and no volume."""
        self._volume = None
        self._shown = {}
        if not self._sources:
            self._fail(VolumeError(f"scan {self._name} has no frame files in the catalog"))
            return False
        path, _ = self._sources[min(frame, len(self._sources) - 1)]
        try:
            volume = self.cache.get(path)
        except (MiqaError, OSError, ValueError) as exc:
            self._fail(exc)
            return False
        if len(self._sources) == 1 and volume.n_frames > 1:  # one 4D file: one frame each
            self._sources = [(path, t) for t in range(volume.n_frames)]
        self._volume = volume
        if recentre or self._crosshair is None:
            self._crosshair = volume.location_of(volume.center()).xyz
        return True

    @property
    def volume(self) -> Volume | None:
        """The decoded volume of the current frame (None when it could not be loaded)."""
        return self._volume

    @property
    def n_frames(self) -> int:
        """Frames of the open scan."""
        return max(1, len(self._sources))

    @property
    def frame(self) -> int:
        """The frame shown (0-based)."""
        return self._frame

    def set_frame(self, frame: int) -> None:
        """Show another frame of a multi-frame scan (the crosshair stays in place)."""
        frame = max(0, min(int(frame), self.n_frames - 1))
        if frame == self._frame:
            return
        before = self._sources[self._frame][0] if self._sources else None
        self._frame = frame
        if self._volume is None or (self._sources and self._sources[frame][0] != before):
            self._load(frame, recentre=False)
        self._notify("view")

    @property
    def crosshair(self) -> tuple[float, float, float] | None:
        """The crosshair in world mm (RAS+), at a voxel centre."""
        return self._crosshair

    @property
    def slices(self) -> SliceIndex | None:
        """Slice numbers through the crosshair."""
        if self._volume is None or self._crosshair is None:
            return None
        return self._volume.slices_at(self._crosshair)

    def set_crosshair(self, xyz: Any) -> None:
        """Move the crosshair to a world point (mm), snapped to the nearest voxel.

        ``xyz`` may be ``(x, y, z)``, a :class:`miqa_nb.core.vocabulary.Location` or a
        :class:`~miqa_nb.volumes.WorldPoint`.
        """
        if isinstance(xyz, Location | WorldPoint):
            xyz = (xyz.i, xyz.j, xyz.k)
        volume = self._volume
        if volume is None:
            return
        self._crosshair = volume.location_of(volume.slices_at(xyz)).xyz
        self._notify("view")

    go_to = set_crosshair

    def set_slice(self, plane: Plane, index: int) -> None:
        """Show slice ``index`` of ``plane`` (clipped to the volume)."""
        volume, slices = self._volume, self.slices
        if volume is None or slices is None:
            return
        axis = PLANES_AXIS[plane]
        values = list(slices)
        values[axis] = max(0, min(int(index), volume.shape[axis] - 1))
        self._crosshair = volume.location_of(SliceIndex(*values)).xyz
        self._notify("view")

    def move_slice(self, plane: Plane, delta: int) -> None:
        """Scroll ``plane`` by ``delta`` slices."""
        slices = self.slices
        if slices is not None:
            self.set_slice(plane, slices.of(plane) + int(delta))

    def click(self, plane: Plane, row: float, col: float) -> None:
        """Move the crosshair to a pixel of the last picture of ``plane``."""
        volume, slices = self._volume, self.slices
        if volume is None or slices is None:
            return
        shown = self._shown.get(plane)
        if shown is not None:  # the picture may be zoomed: back to the whole plane
            row, col = shown.to_plane_voxel(row, col)
        xyz = volume.pixel_to_world(plane, row, col, slices.of(plane), convention=self.convention)
        self.set_crosshair(tuple(float(v) for v in xyz))

    # ------------------------------------------------------------- zoom, pan
    @property
    def zoom(self) -> float:
        """Magnification of the planes (1: the whole plane)."""
        return self._zoom

    def set_zoom(self, zoom: float) -> None:
        """Magnify the planes (``1`` to ``8``); from the whole plane, centred on the
        crosshair."""
        zoom = float(min(max(zoom, ZOOMS[0]), ZOOMS[-1]))
        if self._zoom <= 1.0 or self._focus is None:
            self._focus = self._crosshair
        self._zoom = zoom
        self._notify("view")

    def zoom_in(self) -> None:
        """The next zoom step (see :data:`ZOOMS`)."""
        self.set_zoom(next((z for z in ZOOMS if z > self._zoom), ZOOMS[-1]))

    def zoom_out(self) -> None:
        """The previous zoom step."""
        self.set_zoom(next((z for z in reversed(ZOOMS) if z < self._zoom), ZOOMS[0]))

    def pan(self, plane: Plane, down: float, right: float) -> None:
        """Move the zoomed view of ``plane`` so that its content moves by ``down`` and
        ``right`` picture heights and widths (a drag: the picture follows the mouse).
        The other planes move with it along the shared axis."""
        volume, shown = self._volume, self._shown.get(plane)
        if volume is None or shown is None or self._zoom <= 1.0 or self._focus is None:
            return
        focus = volume.world_to_voxel(self._focus)
        axes = plane_axes(plane, self.convention)
        _, _, rows, cols = shown.shown
        # the content follows the mouse, so the focus moves the other way
        for axis, flip, step in (
            (axes.row_axis, axes.row_flip, -down * rows),
            (axes.col_axis, axes.col_flip, -right * cols),
        ):
            focus[axis] = float(
                np.clip(focus[axis] + (-step if flip else step), 0, volume.shape[axis] - 1)
            )
        self._focus = tuple(float(v) for v in volume.voxel_to_world(focus))  # type: ignore[assignment]
        self._notify("view")

    def show_crosshair(self, shown: bool) -> None:
        """Draw the crosshair on the planes, or not."""
        self.crosshair_shown = bool(shown)
        self._notify("view")

    @property
    def window_spec(self) -> str | tuple[float, float]:
        """A preset name or manual ``(low, high)``."""
        return self._window

    @property
    def window(self) -> Window | None:
        """The window shown (None without a volume)."""
        if self._volume is None:
            return None
        return frame_window(self._volume, self._window, self._sources[self._frame][1])

    def window_limits(self) -> tuple[float, float] | None:
        """Bounds for a manual window control: the automatic window widened by its
        width on each side, and the current window (None without a volume)."""
        window = self.window
        if self._volume is None or window is None:
            return None
        auto = frame_window(self._volume, "auto", self._sources[self._frame][1])
        span = max(auto.width, window.width)
        return (min(auto.low - span, window.low), max(auto.high + span, window.high))

    def set_window(self, spec: str | tuple[float, float] | Window) -> None:
        """Window/level: a preset (:data:`~miqa_nb.volumes.PRESETS`) or ``(low, high)``."""
        try:
            if isinstance(spec, Window):
                spec = (spec.low, spec.high)
            if isinstance(spec, str):
                if spec not in PRESETS:
                    raise MiqaError(
                        f"window must be one of {tuple(PRESETS)} or (low, high); {spec!r} was provided"
                    )
                self._window = spec
            else:
                low, high = float(spec[0]), float(spec[1])
                Window(low, high)  # validates
                self._window = (low, high)
        except (MiqaError, ValueError, TypeError) as exc:
            self._fail(exc if isinstance(exc, MiqaError) else MiqaError(str(exc)))
            return
        self._notify("view")

    def plane_images(
        self,
        planes: tuple[Plane, ...] = PLANES,
        max_size: int | None = None,
        *,
        grow: bool = False,
    ) -> dict[Plane, PlaneImage]:
        """The planes through the crosshair, zoomed, with the crosshair drawn (if
        :attr:`crosshair_shown`); ``max_size`` overrides the picture size and ``grow``
        scales small planes up to it (one plane shown full size)."""
        volume, slices = self._volume, self.slices
        if volume is None or slices is None:
            return {}
        focus = None
        if self._zoom > 1.0 and self._focus is not None:
            focus = tuple(float(v) for v in volume.world_to_voxel(self._focus))
        images = plane_images(
            volume,
            slices,
            frame=self._sources[self._frame][1],
            window=self._window,
            convention=self.convention,
            max_size=max_size or self.max_size,
            crosshair=self.crosshair_shown,
            zoom=self._zoom,
            focus=focus,  # type: ignore[arg-type]
            planes=planes,
            grow=grow,
        )
        self._shown.update(images)
        return images

    def render(self, fmt: str = "png") -> dict[Plane, bytes]:
        """The three planes as encoded pictures (``{}`` without a volume)."""
        return {p: img.encode(fmt) for p, img in self.plane_images().items()}  # type: ignore[arg-type]

    def shown_shapes(self) -> dict[Plane, tuple[int, int]]:
        """``(height, width)`` of each plane's last picture (what clicks land on)."""
        return {plane: image.image_shape for plane, image in self._shown.items()}

    def screenshot(self, planes: tuple[Plane, ...] = PLANES) -> bytes | None:
        """The planes last shown, side by side, as one PNG (None before any)."""
        shown = [self._shown[p] for p in planes if p in self._shown]
        if self._volume is None or not shown:
            return None
        return encode_image(side_by_side(shown), "png")

    def volume_preview(
        self, max_side: int = 96
    ) -> tuple[np.ndarray, list[tuple[float, float]]] | None:
        """The shown frame for a 3D rendering: windowed to 0..1, subsampled.

        Returns ``(data, extent)``: float32 data in ipyvolume's ``(z, y, x)`` order with
        no side longer than ``max_side``, and the world extent ``[(x0, x1), (y0, y1),
        (z0, z1)]`` in mm; None without a volume.
        """
        volume, window = self._volume, self.window
        if volume is None or window is None:
            return None
        data = volume.frame(self._sources[self._frame][1])
        step = max(1, -(-max(volume.shape) // max_side))
        small = window.apply(data[::step, ::step, ::step]).astype(np.float32) / 255.0
        corners = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], float)
        corners *= np.asarray(volume.shape, float) - 1
        world = volume.voxel_to_world(corners)
        extent = [(float(world[:, a].min()), float(world[:, a].max())) for a in range(3)]
        return np.ascontiguousarray(small.transpose(2, 1, 0)), extent
