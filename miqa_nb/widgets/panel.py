"""The review panel: the header, viewer and decision panels over one session, with a
toolbar (previous / next / refresh / filter), progress and a status line.

:class:`ReviewPanel` is what a notebook shows (``ReviewPanel(session)``) and what the
Voila dashboard assembles. The status line shows :attr:`ReviewSession.last_error`
(readable text; tracebacks go to the log) when it is about the scan or the page, or
the session's last message; an error about a control is shown beside that control
(a refused decision beside Submit, see :attr:`ReviewSession.error_about`). Opening
another scan clears both.

Keys come from one keyboard widget for the page (:class:`~miqa_nb.widgets._keyboard.PageKeys`,
shown as a "keys on/off" sign with a ``?`` button in the toolbar). The key set
(:mod:`~miqa_nb.widgets._shortcuts`: miqa_nb's or MIQA's) is the user's own setting,
kept in the catalog. When another scan is shown, the keyboard and the note start a new
generation *before* any other view changes, so a key or a letter typed for the scan
shown before never acts on the new one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import ipywidgets as w

from miqa_nb.review.queue import FILTERS
from miqa_nb.review.session import ReviewSession
from miqa_nb.volumes import PLANES, Plane
from miqa_nb.widgets._base import close_tree, css, safe, text
from miqa_nb.widgets._keyboard import PageKeys
from miqa_nb.widgets._shortcuts import (
    KEYSETS,
    NOTE_KEY,
    SETTING,
    KeySet,
    handle_key,
    keyset,
    shortcuts_html,
)
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
.miqa-review .miqa-artifacts .widget-hbox {height: 22px;}
.miqa-review .miqa-artifact-label {height: 21px; line-height: 21px;}
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
    keys : {'panel', 'page'}
        Where the keys work: ``'page'``, anywhere on the page outside text fields (the
        review page of the dashboard); ``'panel'``, while the mouse is over the panel
        or it was clicked last (a notebook, whose own keys must keep working).
    """

    def __init__(
        self,
        session: ReviewSession,
        *,
        auto_refresh: float | None = 5.0,
        show_3d: bool = True,
        keys: Literal["panel", "page"] = "panel",
        **kwargs: Any,
    ) -> None:
        self.session = session
        self._syncing = False
        # first of all the session's observers: on another scan, keys and note typing
        # become stale before any view shows the new scan
        self.page_keys = css(PageKeys(scope=keys, note_key=NOTE_KEY), "miqa-keys")
        self.page_keys.on_key = safe(self._key)
        self._unobserve_scan = session.observe(self._new_scan, events={"scan"})
        self.keyset = keyset(session.user_setting(SETTING))
        self.keyset_choice = css(
            w.ToggleButtons(
                options=[(k.label, k.name) for k in KEYSETS.values()],
                value=self.keyset.name,
                tooltip="the keys of the review page: miqa_nb's or MIQA's (kept for you)",
                style={"button_width": "auto"},
            ),
            "miqa-keyset",
        )
        self.keyset_choice.observe(safe(self._keyset_changed), names="value")
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
        self.status = css(w.HTML(layout=w.Layout(min_height="24px")), "miqa-status")
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
        toolbar = css(
            w.HBox(
                [
                    self.prev_button,
                    self.next_button,
                    self.refresh_button,
                    self.filter,
                    self.page_keys,
                    self.keyset_choice,
                ],
                layout=w.Layout(align_items="center", flex_flow="row wrap"),
            ),
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
        self.use_keyset(self.keyset)
        self.sync()
        if auto_refresh:
            session.start_auto_refresh(auto_refresh)

    @safe
    def _on_session(self, event: str) -> None:
        if event in ("queue", "scan", "submitted", "stored"):
            self.show_progress()
        if event in ("error", "message", "scan", "submitted", "claim"):
            self.show_status()

    def _new_scan(self, _event: str) -> None:
        self.page_keys.new_scan()
        # the DecisionPanel is made after this observer: none yet at the first scan
        decision = getattr(self, "decision", None)
        if decision is not None:
            decision.note.new_generation()

    # ------------------------------------------------------------------- keys
    def _key(self, key: str, plane: Plane | None) -> None:
        action = handle_key(self.session, key, self.keyset, plane)
        if action is not None and action.startswith("full "):
            shown = action.removeprefix("full ")
            if shown in PLANES:
                self.show_full(None if self.viewer.full == shown else shown)

    def show_full(self, plane: Plane | None) -> None:
        """Show one plane full size (None: the three planes side by side)."""
        self.viewer.show_full(plane)

    def use_keyset(self, keys: KeySet) -> None:
        """Use a key set on this page (not stored: see :attr:`keyset_choice`)."""
        self.keyset = keys
        self.page_keys.label = keys.label
        self.page_keys.help_rows = [list(row) for row in keys.help]
        self.page_keys.bound = sorted(keys.actions)
        self.decision.shortcuts.value = shortcuts_html(keys)
        if self.keyset_choice.value != keys.name:
            self.keyset_choice.value = keys.name

    def _keyset_changed(self, change: Mapping[str, Any]) -> None:
        chosen = keyset(str(change["new"]))
        if chosen is self.keyset:
            return
        self.use_keyset(chosen)
        self.session.keep_user_setting(SETTING, chosen.name)

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
        self._unobserve_scan()
        self.session.stop_auto_refresh()
        for part in (self.header, self.viewer, self.decision, self.page_keys):
            part.close()
        for child in self.children:
            close_tree(child)
        super().close()
