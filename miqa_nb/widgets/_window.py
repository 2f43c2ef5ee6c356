"""Window/level controls of the viewer: a preset, two number boxes, a range slider, a
readout and the window lock.

The window is given as the intensities shown black (``minimum``) and white
(``maximum``); the readout gives the same window as width and level (centre), the
way scanners' consoles say it. Presets read in full; the slider has no readout of its
own (the boxes are the readout, so nothing is cut). The lock (MIQA's "window lock")
keeps a manual window for the next scans. Every control calls the session
(``set_window``, ``view.window_lock``); :meth:`WindowControls.show` shows its state.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ipywidgets as w

from miqa_nb.review.session import ReviewSession
from miqa_nb.volumes import PRESETS
from miqa_nb.widgets._base import css, safe

__all__ = ["MANUAL", "WindowControls"]

MANUAL = "manual"
_WIDE = {"description_width": "initial"}


def _number(value: float) -> str:
    """A window bound as people read it: whole numbers for wide ranges."""
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.4g}"


class WindowControls(w.VBox):
    """The window of the shown scan, over a :class:`ReviewSession`."""

    def __init__(self, session: ReviewSession, **kwargs: Any) -> None:
        self.session = session
        self._syncing = False
        self.preset = css(
            w.Dropdown(
                description="Window preset",
                options=[*PRESETS, MANUAL],
                value="auto",
                style=_WIDE,
                layout=w.Layout(width="auto", min_width="15em"),
            ),
            "miqa-window-preset",
        )
        self.preset.observe(safe(self._preset_changed), names="value")
        self.low = css(
            w.FloatText(
                description="Minimum (black)",
                style=_WIDE,
                layout=w.Layout(width="15.5em"),
                tooltip="intensities at or below this are black",
            ),
            "miqa-window-low",
        )
        self.high = css(
            w.FloatText(
                description="Maximum (white)",
                style=_WIDE,
                layout=w.Layout(width="15.5em"),
                tooltip="intensities at or above this are white",
            ),
            "miqa-window-high",
        )
        for box in (self.low, self.high):
            box.observe(safe(self._box_changed), names="value")
        self.range = css(
            w.FloatRangeSlider(
                description="Range",
                min=0.0,
                max=1.0,
                value=(0.0, 1.0),
                step=0.1,
                readout=False,  # the number boxes are its readout
                continuous_update=False,
                layout=w.Layout(flex="1 1 12em", min_width="10em"),
            ),
            "miqa-window-range",
        )
        self.range.observe(safe(self._range_changed), names="value")
        self.readout = css(w.HTML(), "miqa-window-readout")
        self.lock = css(
            w.Checkbox(
                value=session.view.window_lock,
                description="keep this window for the next scans",
                indent=False,
                layout=w.Layout(width="auto"),
            ),
            "miqa-window-lock",
        )
        self.lock.observe(safe(self._lock_changed), names="value")
        super().__init__(
            [
                w.HBox([self.preset, self.low, self.high, self.readout], layout=_row()),
                w.HBox([self.range, self.lock], layout=_row()),
            ],
            **kwargs,
        )
        css(self, "miqa-window")
        self.show()

    def show(self) -> None:
        """Show the session's window."""
        window, spec = self.session.window, self.session.window_spec
        limits = self.session.window_limits()
        self._syncing = True
        try:
            self.preset.value = spec if isinstance(spec, str) else MANUAL
            self.lock.value = self.session.view.window_lock
            off = window is None or limits is None
            for control in (self.low, self.high, self.range):
                control.disabled = off
            if window is None or limits is None:
                self.readout.value = ""
                return
            low, high = limits
            # widen first, so that the new value is never clipped by the old bounds
            self.range.min = min(low, self.range.min)
            self.range.max = max(high, self.range.max)
            self.range.value = (window.low, window.high)
            self.range.min, self.range.max = low, high
            self.range.step = max((high - low) / 500.0, 1e-6)
            step = 1.0 if high - low >= 50 else max((high - low) / 100.0, 1e-6)
            self.low.step = self.high.step = step
            self.low.value, self.high.value = window.low, window.high
            self.readout.value = f"width {_number(window.width)}, level {_number(window.level)}"
        finally:
            self._syncing = False

    def _preset_changed(self, change: Mapping[str, Any]) -> None:
        if not self._syncing and change["new"] != MANUAL:
            self.session.set_window(str(change["new"]))

    def _range_changed(self, change: Mapping[str, Any]) -> None:
        if not self._syncing:
            low, high = change["new"]
            if high > low:
                self.session.set_window((float(low), float(high)))

    def _box_changed(self, _change: Mapping[str, Any]) -> None:
        if self._syncing:
            return
        low, high = float(self.low.value), float(self.high.value)
        if high > low:
            self.session.set_window((low, high))
        else:  # the session explains; the boxes go back to the window shown
            self.session.set_window((low, high))
            self.show()

    def _lock_changed(self, change: Mapping[str, Any]) -> None:
        if not self._syncing:
            self.session.view.window_lock = bool(change["new"])


def _row() -> w.Layout:
    return w.Layout(align_items="center", flex_flow="row wrap", width="100%")
