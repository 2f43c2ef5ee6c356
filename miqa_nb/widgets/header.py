"""The scan header: where the open scan sits, what it is, who holds it, its history.

Every value that comes from an import file or a user (names, notes, subject and
session ids, links) is untrusted: it is escaped before it goes into an
``ipywidgets.HTML``, and a scan link becomes a link only when it is http(s) (a
``javascript:`` link is shown as text). Clicking a stored location of interest in the
history moves the viewer there (:meth:`ReviewSession.go_to`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import ipywidgets as w
import pandas as pd

from miqa_nb.core.vocabulary import ARTIFACTS, Location
from miqa_nb.review.session import ReviewSession
from miqa_nb.widgets._base import close_tree, css, link, safe, text

__all__ = ["ScanHeader"]


def _cell(value: Any) -> str | None:
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    return str(value)


class ScanHeader(w.VBox):
    """Project / experiment / scan, type, subject, session, frames, claim and history."""

    def __init__(self, session: ReviewSession, **kwargs: Any) -> None:
        self.session = session
        self.info = css(w.HTML(), "miqa-scan-info")
        self.claim = css(w.HTML(), "miqa-claim")
        self.take_over = css(
            w.Button(description="Take over", button_style="warning", tooltip="superusers"),
            "miqa-take-over",
        )
        self.take_over.on_click(safe(lambda _b: self.session.take_over()))
        # Fixed heights: the claim line appears a moment after a scan opens, and scans
        # have histories of different lengths; neither may move the planes below (a
        # reviewer's mouse rests on a plane while the keys work). Long histories scroll.
        self.empty = css(w.HTML("<i>no decisions yet</i>"), "miqa-history-empty")
        self.rows: list[_HistoryRow] = []
        self.history = css(
            w.VBox([self.empty], layout=w.Layout(height="60px", overflow="auto")), "miqa-history"
        )
        claim_row = w.HBox([self.claim, self.take_over], layout=w.Layout(min_height="32px"))
        super().__init__([self.info, claim_row, self.history], **kwargs)
        css(self, "miqa-header")
        self._unobserve = session.observe(
            self._on_session, events={"scan", "queue", "claim", "history", "submitted"}
        )
        self.sync()

    @safe
    def _on_session(self, event: str) -> None:
        if event in ("scan", "queue", "submitted"):
            self.show_info()
        if event in ("scan", "claim", "queue"):
            self.show_claim()
        if event in ("scan", "history"):
            self.show_history()

    def sync(self) -> None:
        """Show everything again."""
        self.show_info()
        self.show_claim()
        self.show_history()

    def show_info(self) -> None:
        info = self.session.current
        if info is None:
            self.info.value = (
                f"<b>{text(self.session.project)}</b>: no scan open ({text(self.session.message)})"
            )
            return
        position = self.session.position
        where = "" if position is None else f" ({position + 1} of {len(self.session)} in queue)"
        fields = [
            ("type", info.type),
            ("subject", info.subject_id),
            ("session", info.session_id),
            ("frames", info.n_frames),
            ("state", info.state.value),
            ("last decision", _last(info.last_decision, info.last_decision_creator)),
        ]
        details = " · ".join(
            f'<span class="miqa-field-{name.replace(" ", "-")}">{name}: <b>{text(value)}</b></span>'
            for name, value in fields
            if value not in (None, "")
        )
        self.info.value = (
            f'<div class="miqa-where">{text(info.project)} / {text(info.experiment)} / '
            f"<b>{link(info.scan, info.link)}</b>{where}</div>"
            f'<div class="miqa-details">{details}</div>'
        )

    def show_claim(self) -> None:
        session = self.session
        holder = session.held_by
        if holder is not None:
            until = session.claims().get(session.key[0] if session.key else "", (None, None))[1]
            when = f" until {until:%H:%M} UTC" if until is not None else ""
            self.claim.value = (
                f'<span class="miqa-claim-other">held by <b>{text(holder)}</b>{text(when)}: '
                "they are reviewing this experiment</span>"
            )
            self.take_over.layout.display = "" if session.standing.superuser else "none"
            return
        self.take_over.layout.display = "none"
        mine = session.claim
        self.claim.value = (
            f'<span class="miqa-claim-mine">claimed by you until {mine.expires_utc:%H:%M} UTC</span>'
            if mine is not None
            else ""
        )

    def show_history(self) -> None:
        """The open scan's decisions, newest first. Rows are kept and filled in, never
        taken away: a page still drawing rows that are replaced (two updates a few ms
        apart, as when a scan opens and then its history arrives) sends messages to
        them once they are gone, an error in the page."""
        records = self.session.history.to_dict("records")
        if len(self.rows) < len(records):
            while len(self.rows) < len(records):
                self.rows.append(_HistoryRow(self.session.go_to))
            self.history.children = [self.empty, *self.rows]
        for row, record in zip(self.rows, records, strict=False):
            row.show(_describe(record), _target(record))
        for row in self.rows[len(records) :]:
            row.hide()
        self.empty.layout.display = "none" if records else ""

    def shown_rows(self) -> list[_HistoryRow]:
        """The history rows in view (the others wait, hidden, for a longer history)."""
        return [row for row in self.rows if row.layout.display != "none"]

    def close(self) -> None:
        self._unobserve()
        for child in self.history.children:
            close_tree(child)
        super().close()


class _HistoryRow(w.HBox):
    """One decision of the history, and a button to its location of interest, if any."""

    def __init__(self, go_to: Callable[[Location], None]) -> None:
        self.text = css(w.HTML(), "miqa-history-text")
        self.go = css(
            w.Button(tooltip="move the viewer there", layout=w.Layout(width="auto")),
            "miqa-history-location",
        )
        self.target: Location | None = None
        self.go.on_click(safe(lambda _b: go_to(self.target) if self.target else None))
        super().__init__([self.text, self.go])
        css(self, "miqa-history-row")

    def show(self, description: str, target: Location | None) -> None:
        self.text.value = description
        self.target = target
        self.go.description = "" if target is None else f"go to {target.text}"
        self.go.layout.display = "none" if target is None else ""
        self.layout.display = ""

    def hide(self) -> None:
        self.layout.display = "none"
        self.target = None


def _describe(record: Mapping[Any, Any]) -> str:
    """A decision as HTML: code, creator, time, artifacts present and note (escaped)."""
    present = [a for a in ARTIFACTS if record.get(a) == "present"]
    note = _cell(record.get("note"))
    parts = [
        f'<b class="miqa-history-decision">{text(record.get("decision"))}</b>',
        f'by <span class="miqa-history-creator">{text(record.get("creator"))}</span>',
        f"at {text(_cell(record.get('created')) or 'unknown time')}",
    ]
    if present:
        parts.append(f"artifacts: {text(', '.join(present))}")
    if note:
        parts.append(f'note: <span class="miqa-history-note">{text(note)}</span>')
    return " ".join(parts)


def _target(record: Mapping[Any, Any]) -> Location | None:
    """The decision's location of interest, when it stored one."""
    location = _cell(record.get("location"))
    if not location or any(_cell(record.get(a)) is None for a in "ijk"):
        return None
    return Location(float(record["i"]), float(record["j"]), float(record["k"]), location)


def _last(decision: str | None, creator: str | None) -> str | None:
    if not decision:
        return None
    return f"{decision} by {creator}" if creator else decision
