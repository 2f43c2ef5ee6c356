"""The review panel: the header, viewer and decision panels over one session, with a
toolbar (previous / next / refresh / filter), progress and a status line.

:class:`ReviewPanel` is what a notebook shows (``ReviewPanel(session)``) and what the
Voila dashboard assembles. The status line shows :attr:`ReviewSession.last_error`
(readable text; tracebacks go to the log) or the session's last message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ipywidgets as w

from miqa_nb.review.queue import FILTERS
from miqa_nb.review.session import ReviewSession
from miqa_nb.widgets._base import close_tree, css, safe, text
from miqa_nb.widgets.decision import DecisionPanel
from miqa_nb.widgets.header import ScanHeader
from miqa_nb.widgets.viewer import ViewerPanel

__all__ = ["ReviewPanel"]

#: The compact look of the review page (fixed text): the decision column must hold the
#: scan's header, four decisions, the artifact checklist, the note and Submit within a
#: 900 px high window, so its rows are one line each.
STYLE = """<style>
.miqa-review .miqa-side {font-size: 13px;}
.miqa-review .miqa-side p {margin: 0.15em 0;}
.miqa-review .miqa-side .widget-html, .miqa-review .miqa-side .widget-html-content
  {min-height: 0; height: auto; line-height: 1.35;}
.miqa-review .miqa-artifacts .widget-hbox {height: 24px;}
.miqa-review .miqa-artifact-label {height: 22px; line-height: 22px;}
.miqa-review .miqa-decisions {flex-wrap: wrap; gap: 3px;}
.miqa-review .miqa-decisions .miqa-decision {flex: 1 1 45%; margin: 0; height: 28px;}
.miqa-review .miqa-artifacts .widget-hbox {margin: 0; align-items: center;}
.miqa-review .miqa-artifact-label {width: 12.5em !important; font-size: 12px;}
.miqa-review .miqa-artifact .widget-toggle-button {height: 21px; line-height: 19px;
  padding: 0 6px; font-size: 12px; margin: 1px;}
.miqa-review .miqa-artifact {margin: 0;}
.miqa-review .miqa-plane-title {font-size: 13px;}
.miqa-review .miqa-plane-box .widget-button {height: 24px; line-height: 22px; font-size: 12px;}
.miqa-review .miqa-plane-label {line-height: 1.1;}
.miqa-review .miqa-plane-label .widget-html-content {line-height: 1.1;}
</style>"""


class ReviewPanel(w.VBox):
    """Everything a reviewer needs, over one :class:`ReviewSession`.

    Parameters
    ----------
    session : ReviewSession
    auto_refresh : float or None
        Re-read others' progress and claims every so many seconds (None: only on
        "refresh", submit and scan changes).
    show_3d : bool
        Offer the 3D button.
    """

    def __init__(
        self,
        session: ReviewSession,
        *,
        auto_refresh: float | None = 5.0,
        show_3d: bool = True,
        **kwargs: Any,
    ) -> None:
        self.session = session
        self._syncing = False
        self.prev_button = css(
            w.Button(
                description="Previous",
                icon="arrow-left",
                tooltip="previous scan (p, ←)",
                layout=w.Layout(width="auto"),
            ),
            "miqa-prev",
        )
        self.prev_button.on_click(safe(lambda _b: self.session.previous()))
        self.next_button = css(
            w.Button(
                description="Next",
                icon="arrow-right",
                tooltip="next scan (n, →)",
                layout=w.Layout(width="auto"),
            ),
            "miqa-next",
        )
        self.next_button.on_click(safe(lambda _b: self.session.next()))
        self.refresh_button = css(
            w.Button(
                description="Refresh",
                icon="refresh",
                tooltip="see others' progress",
                layout=w.Layout(width="auto"),
            ),
            "miqa-refresh",
        )
        self.refresh_button.on_click(safe(lambda _b: self.session.refresh()))
        self.filter = css(
            w.Dropdown(
                description="queue",
                options=list(FILTERS),
                value=session.queue.filter,
                layout=w.Layout(width="16em"),
                style={"description_width": "3.5em"},
            ),
            "miqa-filter",
        )
        self.filter.observe(safe(self._filter_changed), names="value")
        self.progress = css(
            w.IntProgress(
                min=0,
                max=1,
                value=0,
                bar_style="info",
                description="reviewed",
                layout=w.Layout(width="14em"),
            ),
            "miqa-progress",
        )
        self.progress_text = css(w.HTML(), "miqa-progress-text")
        # one line tall even when empty: a message appearing must not move the planes
        # out from under the mouse (ipyevents then stops taking the keys)
        self.status = css(w.HTML(layout=w.Layout(min_height="28px")), "miqa-status")
        self.header = css(ScanHeader(session), "miqa-side-header")
        # the planes take what the decision panel leaves: at 1440 px, three planes of
        # about 330 px beside a panel of 400 px (the panel keeps its width; the planes
        # shrink on narrower screens)
        self.viewer = ViewerPanel(
            session, show_3d=show_3d, layout=w.Layout(flex="1 1 auto", min_width="0")
        )
        self.decision = DecisionPanel(session)
        # MIQA's arrangement: the scan's header above the decision, beside the planes
        side = css(
            w.VBox(
                [self.header, self.decision],
                layout=w.Layout(flex="0 0 400px", width="400px", min_width="0"),
            ),
            "miqa-side",
        )
        self.viewer.on_panel_action = safe(self._panel_action)
        toolbar = css(
            w.HBox([self.prev_button, self.next_button, self.refresh_button, self.filter]),
            "miqa-toolbar",
        )
        super().__init__(
            [
                w.HBox(
                    [toolbar, self.progress, self.progress_text],
                    layout=w.Layout(align_items="center", flex_flow="row wrap"),
                ),
                self.status,
                css(
                    w.HBox(
                        [self.viewer, side],
                        layout=w.Layout(width="100%", grid_gap="12px"),
                    ),
                    "miqa-review-main",
                ),
                css(w.HTML(STYLE, layout=w.Layout(display="none")), "miqa-review-style"),
            ],
            **kwargs,
        )
        css(self, "miqa-review")
        self._unobserve = session.observe(self._on_session)
        self.sync()
        if auto_refresh:
            session.start_auto_refresh(auto_refresh)

    @safe
    def _on_session(self, event: str) -> None:
        if event in ("queue", "scan", "submitted"):
            self.show_progress()
        if event in ("error", "message", "scan", "submitted", "claim"):
            self.show_status()

    def _panel_action(self, action: str) -> None:
        if action == "note" and not self.decision.note.disabled:
            self.decision.note.focus()

    def sync(self) -> None:
        """Show the session's state again."""
        self.show_progress()
        self.show_status()

    def show_progress(self) -> None:
        progress = self.session.progress
        self.progress.max = max(progress.total, 1)
        self.progress.value = progress.reviewed
        others = ", ".join(f"{text(u)}: {n}" for u, n in progress.by_reviewer.items())
        self.progress_text.value = text(str(progress)) + (
            f" · last decisions by {others}" if others else ""
        )
        position = self.session.position
        self.prev_button.disabled = position is None or position == 0
        self._syncing = True
        try:
            self.filter.value = self.session.queue.filter
        finally:
            self._syncing = False

    def show_status(self) -> None:
        error = self.session.last_error
        if error:
            self.status.value = (
                f'<span class="miqa-error" style="color:#b71c1c">⚠ {text(error)}</span>'
            )
            self.status.add_class("miqa-status-error")
        else:
            self.status.value = f'<span class="miqa-message">{text(self.session.message)}</span>'
            self.status.remove_class("miqa-status-error")

    def _filter_changed(self, change: Mapping[str, Any]) -> None:
        if not self._syncing:
            self.session.set_filter(str(change["new"]))

    def close(self) -> None:
        """Close every widget of the panel and stop refreshing (the session stays open)."""
        self._unobserve()
        self.session.stop_auto_refresh()
        for part in (self.header, self.viewer, self.decision):
            part.close()
        for child in self.children:
            close_tree(child)
        super().close()
