"""The viewer panel: three orthogonal planes with a shared crosshair, over a session.

A thin view of :class:`~miqa_nb.review.session.ReviewSession`: every control calls a session
method and every picture comes from :meth:`ReviewSession.plane_images`; the panel
redraws when the session announces ``'scan'`` or ``'view'``.

- Planes are ``ipywidgets.Image`` (PNG); an Image re-renders only when its bytes
  change. Each is labelled with the patient directions at its edges (L/R/A/P/S/I).
- ipyevents on each plane: click moves the crosshair, the wheel scrolls slices (keys
  come from the review page's keyboard, :mod:`~miqa_nb.widgets._keyboard`).
- Slice sliders, a frame slider (shown for multi-frame scans), window presets and a
  manual window/level range.
- 3D: an ipyvolume figure made only when the user asks, from a subsampled copy of the
  frame; switching scans closes it (so it never slows switching down).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ipywidgets as w
import numpy as np
from ipyevents import Event

from miqa_nb.review.session import PLANES_AXIS, ReviewSession
from miqa_nb.volumes import PLANES, PRESETS, Plane, plane_labels
from miqa_nb.widgets._base import css, safe, text

__all__ = ["ViewerPanel"]

MANUAL = "manual"
_TITLES = {"axial": "Axial", "coronal": "Coronal", "sagittal": "Sagittal"}


def _label(value: str, cls: str) -> w.HTML:
    return css(w.HTML(f"<b>{text(value)}</b>"), "miqa-plane-label", cls)


class ViewerPanel(w.VBox):
    """Three planes, sliders, window/level, frames and an optional 3D view."""

    def __init__(self, session: ReviewSession, *, show_3d: bool = True, **kwargs: Any) -> None:
        self.session = session
        self._syncing = False
        self._figure: Any = None
        self.images: dict[Plane, w.Image] = {}
        self.titles: dict[Plane, w.HTML] = {}
        self.edge_labels: dict[Plane, dict[str, w.HTML]] = {}
        self.sliders: dict[Plane, w.IntSlider] = {}
        self.events: dict[Plane, Event] = {}
        boxes = []
        for plane in PLANES:
            # the picture fills its third of the row (small volumes are scaled up; the
            # PNG is never bigger than the session's max_size)
            image = css(
                w.Image(
                    format="png",
                    layout=w.Layout(width="100%", height="auto", min_width="0", flex="1 1 auto"),
                ),
                "miqa-plane",
                f"miqa-plane-{plane}",
            )
            labels = {
                edge: _label(name, f"miqa-label-{edge}")
                for edge, name in plane_labels(plane, session.convention).items()
            }
            title = css(w.HTML(f"<b>{_TITLES[plane]}</b>"), "miqa-plane-title")
            slider = css(
                w.IntSlider(description="slice", min=0, max=0, continuous_update=True),
                "miqa-slice",
                f"miqa-slice-{plane}",
            )
            slider.observe(self._slider_changed(plane), names="value")
            event = Event(
                source=image,
                watched_events=["click", "wheel"],
                prevent_default_action=True,
            )
            event.on_dom_event(self._dom_event(plane))
            middle = w.HBox(
                [labels["left"], image, labels["right"]],
                layout=w.Layout(align_items="center", width="100%"),
            )
            boxes.append(
                css(
                    w.VBox(
                        [title, labels["top"], middle, labels["bottom"], slider],
                        layout=w.Layout(align_items="center", flex="1 1 0", min_width="0"),
                    ),
                    "miqa-plane-box",
                    f"miqa-plane-box-{plane}",
                )
            )
            self.images[plane], self.titles[plane], self.sliders[plane] = image, title, slider
            self.edge_labels[plane], self.events[plane] = labels, event
        self.planes = css(w.HBox(boxes, layout=w.Layout(width="100%")), "miqa-planes")

        self.frame_slider = css(
            w.IntSlider(description="frame", min=0, max=0, continuous_update=False),
            "miqa-frame",
        )
        self.frame_slider.observe(safe(self._frame_changed), names="value")
        self.window_preset = css(
            w.Dropdown(
                description="window",
                options=[*PRESETS, MANUAL],
                value="auto",
                layout=w.Layout(width="13em"),  # leaves the level slider room for its readout
            ),
            "miqa-window-preset",
        )
        self.window_preset.observe(safe(self._preset_changed), names="value")
        self.window_range = css(
            w.FloatRangeSlider(
                description="level",
                min=0.0,
                max=1.0,
                value=(0.0, 1.0),
                step=0.1,
                continuous_update=False,
                readout_format=".4g",
            ),
            "miqa-window-range",
        )
        self.window_range.observe(safe(self._range_changed), names="value")
        self.position = css(w.HTML(), "miqa-crosshair")
        self.toggle_3d = css(
            w.ToggleButton(description="3D", value=False, tooltip="show a 3D rendering"),
            "miqa-3d-toggle",
        )
        self.toggle_3d.observe(safe(self._toggle_3d), names="value")
        self.box_3d = css(w.VBox(), "miqa-3d")
        self.toggle_3d.layout.display = "" if show_3d else "none"
        controls = w.HBox(
            [self.window_preset, self.window_range, self.frame_slider, self.toggle_3d]
        )
        super().__init__([self.planes, controls, self.position, self.box_3d], **kwargs)
        css(self, "miqa-viewer")
        self._unobserve = session.observe(self._on_session, events={"scan", "view"})
        self.redraw()

    # ---------------------------------------------------------------- drawing
    @safe
    def _on_session(self, event: str) -> None:
        if event == "scan" and self.toggle_3d.value:
            self.toggle_3d.value = False  # switching scans closes the 3D view
        self.redraw()

    def redraw(self) -> None:
        """Show the session's planes, slices, frame and window."""
        session = self.session
        images = session.plane_images()
        slices, volume = session.slices, session.volume
        self._syncing = True
        try:
            for plane in PLANES:
                image = images.get(plane)
                self.images[plane].value = image.encode("png") if image is not None else b""
                # an <img> without a picture would show the browser's broken-image icon,
                # and edge labels around nothing only puzzle
                shown = "visible" if image is not None else "hidden"
                self.images[plane].layout.visibility = shown
                for label in self.edge_labels[plane].values():
                    label.layout.visibility = shown
                slider = self.sliders[plane]
                if volume is not None and slices is not None:
                    n = volume.shape[PLANES_AXIS[plane]]
                    slider.max = n - 1
                    slider.value = slices.of(plane)
                    slider.disabled = False
                    self.titles[plane].value = f"<b>{_TITLES[plane]}</b> {slices.of(plane) + 1}/{n}"
                else:
                    slider.disabled = True
                    self.titles[plane].value = f"<b>{_TITLES[plane]}</b> (no image)"
            self.frame_slider.max = session.n_frames - 1
            self.frame_slider.value = session.frame
            self.frame_slider.layout.display = "" if session.n_frames > 1 else "none"
            self._show_window()
            xyz = session.crosshair
            self.position.value = (
                "crosshair: no image"
                if xyz is None or volume is None
                else "crosshair i={:.1f} j={:.1f} k={:.1f} mm".format(*xyz)
            )
        finally:
            self._syncing = False

    def _show_window(self) -> None:
        window, spec = self.session.window, self.session.window_spec
        self.window_preset.value = spec if isinstance(spec, str) else MANUAL
        limits = self.session.window_limits()
        if window is None or limits is None:
            self.window_range.disabled = True
            return
        low, high = limits
        self.window_range.disabled = False
        # whole numbers for wide (integer-like) ranges: "-66.00 – 898.0" did not fit
        self.window_range.readout_format = ".0f" if high - low >= 50 else ".3g"
        # widen first, so that the new value is never clipped by the old bounds
        self.window_range.min = min(low, self.window_range.min)
        self.window_range.max = max(high, self.window_range.max)
        self.window_range.value = (window.low, window.high)
        self.window_range.min, self.window_range.max = low, high
        self.window_range.step = max((high - low) / 500.0, 1e-6)

    # --------------------------------------------------------------- controls
    def _slider_changed(self, plane: Plane) -> Any:
        @safe
        def changed(change: Mapping[str, Any]) -> None:
            if not self._syncing:
                self.session.set_slice(plane, int(change["new"]))

        return changed

    def _frame_changed(self, change: Mapping[str, Any]) -> None:
        if not self._syncing:
            self.session.set_frame(int(change["new"]))

    def _preset_changed(self, change: Mapping[str, Any]) -> None:
        if not self._syncing and change["new"] != MANUAL:
            self.session.set_window(str(change["new"]))

    def _range_changed(self, change: Mapping[str, Any]) -> None:
        if not self._syncing:
            low, high = change["new"]
            if high > low:
                self.session.set_window((float(low), float(high)))

    def _dom_event(self, plane: Plane) -> Any:
        @safe
        def on_event(event: Mapping[str, Any]) -> None:
            kind = event.get("type")
            if kind == "click":
                self.click(plane, event)
            elif kind == "wheel":
                delta = float(event.get("deltaY", 0) or 0)
                if delta:
                    self.session.move_slice(plane, 1 if delta < 0 else -1)

        return on_event

    def click(self, plane: Plane, event: Mapping[str, Any]) -> None:
        """Move the crosshair to where a click landed (ipyevents' image coordinates)."""
        if "dataX" in event and "dataY" in event:
            col, row = float(event["dataX"]), float(event["dataY"])
        else:  # relative to the element: scale to the picture's pixels
            images = self.session.plane_images()
            if plane not in images:
                return
            height, width = images[plane].image_shape
            col = float(event["relativeX"]) * width / max(float(event["boundingRectWidth"]), 1)
            row = float(event["relativeY"]) * height / max(float(event["boundingRectHeight"]), 1)
        self.session.click(plane, row, col)

    # --------------------------------------------------------------------- 3D
    def _toggle_3d(self, change: Mapping[str, Any]) -> None:
        if change["new"]:
            self.show_3d()
        else:
            self.hide_3d()

    def show_3d(self) -> None:
        """Render the shown frame in 3D with ipyvolume (made now, not before)."""
        preview = self.session.volume_preview()
        if preview is None:
            self.box_3d.children = [css(w.HTML("no image to show in 3D"), "miqa-3d-empty")]
            return
        import ipyvolume as ipv  # imported on demand: it is slow to import

        data, extent = preview
        figure = ipv.figure(width=420, height=420, controls=False)
        with np.errstate(invalid="ignore", divide="ignore"):  # flat regions: 0/0 gradients
            ipv.volshow(data, extent=extent, controls=False, level=[0.25, 0.6, 0.9])
        self._figure = figure
        self.box_3d.children = [figure]

    def hide_3d(self) -> None:
        """Close the 3D rendering."""
        if self._figure is not None:
            for volume in list(getattr(self._figure, "volumes", [])):
                volume.close()
            self._figure.close()
            self._figure = None
        self.box_3d.children = []

    def close(self) -> None:
        self._unobserve()
        self.hide_3d()
        for event in self.events.values():
            event.close()
        super().close()
