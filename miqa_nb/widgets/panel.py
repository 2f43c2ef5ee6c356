"""The review panel: the header, viewer and decision panels over one session, with a
toolbar (previous / next / refresh / filter), progress and a status line.

:class:`ReviewPanel` is what a notebook shows (``ReviewPanel(session)``) and what the
Voila dashboard assembles. The status line shows :attr:`ReviewSession.last_error`
(readable text; tracebacks go to the log) when it is about the scan or the page, or
the session's last message; an error about a control is shown beside that control
(a refused decision under Submit, see :attr:`ReviewSession.error_about`). Opening
another scan clears both.
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
            w.Button(description="Previous", icon="arrow-left", tooltip="previous scan (p, ←)"),
            "miqa-prev",
        )
        self.prev_button.on_click(safe(lambda _b: self.session.previous()))
        self.next_button = css(
            w.Button(description="Next", icon="arrow-right", tooltip="next scan (n, →)"),
            "miqa-next",
        )
        self.next_button.on_click(safe(lambda _b: self.session.next()))
        self.refresh_button = css(
            w.Button(description="Refresh", icon="refresh", tooltip="see others' progress"),
            "miqa-refresh",
        )
        self.refresh_button.on_click(safe(lambda _b: self.session.refresh()))
        self.filter = css(
            w.Dropdown(description="queue", options=list(FILTERS), value=session.queue.filter),
            "miqa-filter",
        )
        self.filter.observe(safe(self._filter_changed), names="value")
        self.progress = css(
            w.IntProgress(min=0, max=1, value=0, bar_style="info", description="reviewed"),
            "miqa-progress",
        )
        self.progress_text = css(w.HTML(), "miqa-progress-text")
        # one line tall even when empty: a message appearing must not move the planes
        # out from under the mouse (ipyevents then stops taking the keys)
        self.status = css(w.HTML(layout=w.Layout(min_height="28px")), "miqa-status")
        self.header = ScanHeader(session)
        self.viewer = ViewerPanel(session, show_3d=show_3d, layout=w.Layout(flex="3 1 0"))
        self.decision = DecisionPanel(session, layout=w.Layout(flex="2 1 0"))
        self.viewer.on_panel_action = safe(self._panel_action)
        toolbar = css(
            w.HBox([self.prev_button, self.next_button, self.refresh_button, self.filter]),
            "miqa-toolbar",
        )
        super().__init__(
            [
                toolbar,
                w.HBox([self.progress, self.progress_text]),
                self.status,
                self.header,
                w.HBox([self.viewer, self.decision], layout=w.Layout(width="100%")),
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
        if event in ("queue", "scan", "submitted", "stored"):
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
        # errors about a control are shown beside it (decision panel, header)
        error = self.session.last_error if self.session.error_about is None else None
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
