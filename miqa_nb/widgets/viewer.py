"""The viewer panel: three orthogonal planes with a shared crosshair, over a session.

A thin view of :class:`~miqa_nb.review.session.ReviewSession`: every control calls a session
method and every picture comes from :meth:`ReviewSession.plane_images`; the panel
redraws when the session announces ``'scan'`` or ``'view'``.

- Planes are ``ipywidgets.Image`` (PNG); an Image re-renders only when its bytes
  change. Each is labelled with the patient directions at its edges (L/R/A/P/S/I).
- ipyevents on each plane: click moves the crosshair, the wheel scrolls slices, a drag
  pans a zoomed plane (keys come from the review page's keyboard,
  :mod:`~miqa_nb.widgets._keyboard`).
- Numbers people read count from 1 everywhere: slice sliders and titles (``slice 24
  of 48``), the frame slider (``frame 1 of 2``). The crosshair line gives the
  position in world millimetres (RAS+) and as slices.
- A plane can be shown alone, full size (:meth:`ViewerPanel.show_full`, its button on
  each plane): it is rendered at twice the picture size and sized by the window's
  height. Zoom in/out (rendered server-side, so the picture stays sharp), crosshair
  on/off, a screenshot of the planes as shown (a PNG download link), frames,
  window/level (:class:`~miqa_nb.widgets._window.WindowControls`) and 3D.
- 3D: an ipyvolume figure made only when the user asks, from a subsampled copy of the
  frame; switching scans closes it (so it never slows switching down).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from typing import Any

import ipywidgets as w
import numpy as np
from ipyevents import Event

from miqa_nb.review.session import PLANES_AXIS, ReviewSession
from miqa_nb.volumes import PLANES, Plane, plane_labels
from miqa_nb.widgets._base import css, safe, text
from miqa_nb.widgets._window import WindowControls

__all__ = ["ViewerPanel"]

_TITLES = {"axial": "Axial", "coronal": "Coronal", "sagittal": "Sagittal"}
#: Pixels a mouse must move between press and release to pan rather than click.
_DRAG = 5
#: Height of the full-size plane: the window's height less the page around it.
_FULL_HEIGHT = "calc(100vh - 330px)"
_AXIS_NAMES = (("L", "R"), ("P", "A"), ("I", "S"))


def _label(value: str, cls: str) -> w.HTML:
    return css(w.HTML(f"<b>{text(value)}</b>"), "miqa-plane-label", cls)


def _button(description: str, tooltip: str, *classes: str, **kwargs: Any) -> w.Button:
    return css(
        w.Button(description=description, tooltip=tooltip, layout=w.Layout(width="auto"), **kwargs),
        *classes,
    )


def _mm(value: float, axis: int) -> str:
    """World mm with its anatomical direction: ``'12.0 mm R'``, ``'3.5 mm P'``."""
    low, high = _AXIS_NAMES[axis]
    return f"{abs(value):.1f} mm {high if value >= 0 else low}"


class ViewerPanel(w.VBox):
    """Three planes (or one, full size), their controls, window/level and 3D."""

    def __init__(self, session: ReviewSession, *, show_3d: bool = True, **kwargs: Any) -> None:
        self.session = session
        self._syncing = False
        self._figure: Any = None
        self._pressed: dict[Plane, tuple[float, float]] = {}
        self._dragged: set[Plane] = set()
        #: The plane shown alone, full size (None: the three planes).
        self.full: Plane | None = None
        self.images: dict[Plane, w.Image] = {}
        self.titles: dict[Plane, w.HTML] = {}
        self.full_buttons: dict[Plane, w.Button] = {}
        self.edge_labels: dict[Plane, dict[str, w.HTML]] = {}
        self.sliders: dict[Plane, w.IntSlider] = {}
        self.events: dict[Plane, Event] = {}
        self.boxes: dict[Plane, w.VBox] = {}
        for plane in PLANES:
            # the picture fills its third of the row, keeping its shape (small volumes
            # are scaled up by the browser; a zoomed plane is rendered at full size)
            image = css(
                w.Image(format="png", layout=w.Layout(width="100%", height="auto", min_width="0")),
                "miqa-plane",
                f"miqa-plane-{plane}",
            )
            labels = {
                edge: _label(name, f"miqa-label-{edge}")
                for edge, name in plane_labels(plane, session.convention).items()
            }
            title = css(w.HTML(f"<b>{_TITLES[plane]}</b>"), "miqa-plane-title")
            full = _button(
                "Full size",
                f"show the {plane} plane alone, full size",
                "miqa-full",
                f"miqa-full-{plane}",
                icon="expand",
            )
            full.on_click(safe(lambda _b, p=plane: self.show_full(None if self.full else p)))
            slider = css(
                w.IntSlider(
                    description="slice",
                    min=1,
                    max=1,
                    continuous_update=True,
                    layout=w.Layout(width="100%"),
                    style={"description_width": "3em"},
                ),
                "miqa-slice",
                f"miqa-slice-{plane}",
            )
            slider.observe(self._slider_changed(plane), names="value")
            event = Event(
                source=image,
                watched_events=["click", "mousedown", "mouseup", "wheel"],
                prevent_default_action=True,
            )
            event.on_dom_event(self._dom_event(plane))
            middle = w.HBox(
                [labels["left"], image, labels["right"]],
                layout=w.Layout(align_items="center", justify_content="center", width="100%"),
            )
            head = w.HBox(
                [title, full],
                layout=w.Layout(
                    justify_content="space-between", align_items="center", width="100%"
                ),
            )
            box = css(
                w.VBox(
                    [head, labels["top"], middle, labels["bottom"], slider],
                    layout=w.Layout(align_items="center", flex="1 1 0", min_width="0"),
                ),
                "miqa-plane-box",
                f"miqa-plane-box-{plane}",
            )
            self.images[plane], self.titles[plane], self.sliders[plane] = image, title, slider
            self.edge_labels[plane], self.events[plane], self.boxes[plane] = labels, event, box
            self.full_buttons[plane] = full
        self.planes = css(
            w.HBox(list(self.boxes.values()), layout=w.Layout(width="100%")), "miqa-planes"
        )

        self.zoom_out = _button("", "zoom out", "miqa-zoom-out", icon="search-minus")
        self.zoom_out.on_click(safe(lambda _b: self.session.zoom_out()))
        self.zoom_in = _button(
            "", "zoom in (drag a zoomed plane to pan)", "miqa-zoom-in", icon="search-plus"
        )
        self.zoom_in.on_click(safe(lambda _b: self.session.zoom_in()))
        self.zoom_fit = _button("Fit", "show the whole planes", "miqa-zoom-fit")
        self.zoom_fit.on_click(safe(lambda _b: self.session.set_zoom(1.0)))
        self.zoom_label = css(w.HTML(), "miqa-zoom")
        self.crosshair_toggle = css(
            w.Checkbox(
                value=True, description="crosshair", indent=False, layout=w.Layout(width="auto")
            ),
            "miqa-crosshair-toggle",
        )
        self.crosshair_toggle.observe(safe(self._crosshair_changed), names="value")
        self.frame_slider = css(
            w.IntSlider(
                description="frame",
                min=1,
                max=1,
                continuous_update=False,
                style={"description_width": "3em"},
                layout=w.Layout(width="16em"),
            ),
            "miqa-frame",
        )
        self.frame_slider.observe(safe(self._frame_changed), names="value")
        self.frame_count = css(w.HTML(), "miqa-frame-count")
        self.frames = w.HBox(
            [self.frame_slider, self.frame_count], layout=w.Layout(align_items="center")
        )
        self.screenshot_button = _button(
            "Screenshot",
            "a PNG of the planes as shown, to download",
            "miqa-screenshot",
            icon="camera",
        )
        self.screenshot_button.on_click(safe(lambda _b: self.take_screenshot()))
        self.screenshot_link = css(w.HTML(), "miqa-screenshot-link")
        self.toggle_3d = css(
            w.ToggleButton(description="3D", value=False, tooltip="show a 3D rendering"),
            "miqa-3d-toggle",
        )
        self.toggle_3d.layout.width = "auto"
        self.toggle_3d.observe(safe(self._toggle_3d), names="value")
        self.box_3d = css(w.VBox(), "miqa-3d")
        self.toggle_3d.layout.display = "" if show_3d else "none"
        self.window = WindowControls(session)
        self.position = css(w.HTML(), "miqa-crosshair")
        tools = css(
            w.HBox(
                [
                    self.zoom_out,
                    self.zoom_label,
                    self.zoom_in,
                    self.zoom_fit,
                    self.crosshair_toggle,
                    self.frames,
                    self.screenshot_button,
                    self.screenshot_link,
                    self.toggle_3d,
                ],
                layout=w.Layout(align_items="center", flex_flow="row wrap", grid_gap="4px"),
            ),
            "miqa-view-tools",
        )
        super().__init__([self.planes, self.position, tools, self.window, self.box_3d], **kwargs)
        css(self, "miqa-viewer")
        self._unobserve = session.observe(self._on_session, events={"scan", "view"})
        self.redraw()

    # ---------------------------------------------------------------- drawing
    @safe
    def _on_session(self, event: str) -> None:
        if event == "scan":
            self.screenshot_link.value = ""  # a picture of another scan
            if self.toggle_3d.value:
                self.toggle_3d.value = False  # switching scans closes the 3D view
        self.redraw()

    def show_full(self, plane: Plane | None) -> None:
        """Show ``plane`` alone, full size, or the three planes again (None)."""
        self.full = plane
        for name, box in self.boxes.items():
            box.layout.display = "" if plane in (None, name) else "none"
            button = self.full_buttons[name]
            button.description = "Three planes" if plane == name else "Full size"
            button.icon = "compress" if plane == name else "expand"
            image = self.images[name]
            if plane == name:  # as tall as the window allows, its own width
                image.layout.width, image.layout.height = "auto", _FULL_HEIGHT
                image.layout.max_width = "100%"
            else:
                image.layout.width, image.layout.height = "100%", "auto"
                image.layout.max_width = None
        self.redraw()

    def redraw(self) -> None:
        """Show the session's planes, slices, frame, zoom and window."""
        session = self.session
        if self.full is not None:
            images = session.plane_images((self.full,), 2 * session.max_size, grow=True)
        else:
            images = session.plane_images()
        slices, volume = session.slices, session.volume
        self._syncing = True
        try:
            for plane in PLANES:
                if self.full is not None and plane != self.full:
                    continue  # hidden; drawn again when the three planes come back
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
                    slider.max = n
                    slider.value = slices.of(plane) + 1
                    slider.disabled = False
                    self.titles[
                        plane
                    ].value = f"<b>{_TITLES[plane]}</b> slice {slices.of(plane) + 1} of {n}"
                else:
                    slider.disabled = True
                    self.titles[plane].value = f"<b>{_TITLES[plane]}</b> (no image)"
            self.frame_slider.max = session.n_frames
            self.frame_slider.value = session.frame + 1
            self.frame_count.value = f"of {session.n_frames}"
            self.frames.layout.display = "" if session.n_frames > 1 else "none"
            self.zoom_label.value = f"zoom {session.zoom:g}×"
            self.zoom_out.disabled = self.zoom_fit.disabled = session.zoom <= 1.0
            self.crosshair_toggle.value = session.view.crosshair_shown
            self.window.show()
            self.position.value = self._position()
        finally:
            self._syncing = False

    def _position(self) -> str:
        """The crosshair in world mm (RAS+) and as slices, counted from 1."""
        xyz, slices, volume = self.session.crosshair, self.session.slices, self.session.volume
        if xyz is None or slices is None or volume is None:
            return "Crosshair: no image"
        where = ", ".join(_mm(v, axis) for axis, v in enumerate(xyz))
        return (
            f"Crosshair at {where} · slices: sagittal {slices.sagittal + 1}, "
            f"coronal {slices.coronal + 1}, axial {slices.axial + 1} "
            f"(of {volume.shape[0]} × {volume.shape[1]} × {volume.shape[2]})"
        )

    def take_screenshot(self) -> None:
        """Offer the planes as shown as a PNG download link."""
        planes = (self.full,) if self.full is not None else PLANES
        png = self.session.screenshot(planes)
        if png is None:
            self.screenshot_link.value = "no picture to save"
            return
        key = self.session.key
        stem = "-".join(key) if key else "planes"
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", stem)[:80] + ".png"
        data = base64.b64encode(png).decode("ascii")
        self.screenshot_link.value = (
            f'<a class="miqa-screenshot-download" download="{text(name)}" '
            f'href="data:image/png;base64,{data}">Download {text(name)} '
            f"({len(png) / 1024:.0f} kB)</a>"
        )

    # --------------------------------------------------------------- controls
    def _slider_changed(self, plane: Plane) -> Any:
        @safe
        def changed(change: Mapping[str, Any]) -> None:
            if not self._syncing:
                self.session.set_slice(plane, int(change["new"]) - 1)

        return changed

    def _frame_changed(self, change: Mapping[str, Any]) -> None:
        if not self._syncing:
            self.session.set_frame(int(change["new"]) - 1)

    def _crosshair_changed(self, change: Mapping[str, Any]) -> None:
        if not self._syncing:
            self.session.show_crosshair(bool(change["new"]))

    def _dom_event(self, plane: Plane) -> Any:
        @safe
        def on_event(event: Mapping[str, Any]) -> None:
            kind = event.get("type")
            if kind == "mousedown":
                self._pressed[plane] = (float(event["relativeX"]), float(event["relativeY"]))
            elif kind == "mouseup":
                self.drag(plane, event)
            elif kind == "click":
                if plane in self._dragged:
                    self._dragged.discard(plane)  # the end of a drag, not a click
                else:
                    self.click(plane, event)
            elif kind == "wheel":
                delta = float(event.get("deltaY", 0) or 0)
                if delta:
                    self.session.move_slice(plane, 1 if delta < 0 else -1)

        return on_event

    def drag(self, plane: Plane, event: Mapping[str, Any]) -> None:
        """End of a press on a plane: a drag of a few pixels or more pans a zoomed plane."""
        start = self._pressed.pop(plane, None)
        if start is None:
            return
        dx = float(event["relativeX"]) - start[0]
        dy = float(event["relativeY"]) - start[1]
        if max(abs(dx), abs(dy)) < _DRAG:
            return
        self._dragged.add(plane)
        width = max(float(event.get("boundingRectWidth", 0) or 0), 1.0)
        height = max(float(event.get("boundingRectHeight", 0) or 0), 1.0)
        self.session.pan(plane, dy / height, dx / width)

    def click(self, plane: Plane, event: Mapping[str, Any]) -> None:
        """Move the crosshair to where a click landed (ipyevents' image coordinates)."""
        if "dataX" in event and "dataY" in event:
            col, row = float(event["dataX"]), float(event["dataY"])
        else:  # relative to the element: scale to the picture's pixels
            shapes = self.session.view.shown_shapes()
            if plane not in shapes:
                return
            height, width = shapes[plane]
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
