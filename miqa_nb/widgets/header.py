"""The scan header: where the open scan sits, what it is, who holds it, its
experiment's note, its history.

The claim line (``miqa-claim``) says at once who holds the open scan's experiment and
until when, in local time, in a sentence (``miqa-claim-other``; ``miqa-claim-mine``
for this user's own claim); a refused take-over is said beside its button. The
experiment's note (``miqa-experiment-note``) is shown escaped; the project's reviewers,
its creator and superusers edit it (``miqa-experiment-note-edit``, then
``miqa-experiment-note-text`` and ``miqa-experiment-note-save``), and a refusal is
said beside the editor.

Every value that comes from an import file or a user (names, notes, subject and
session ids, links) is untrusted: it is escaped before it goes into an
``ipywidgets.HTML``, and a scan link becomes a link only when it is http(s) (a
``javascript:`` link is shown as text). Clicking a stored location of interest in the
history moves the viewer there (:meth:`ReviewSession.go_to`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import ipywidgets as w
import pandas as pd

from miqa_nb.core.vocabulary import ARTIFACTS, Location
from miqa_nb.review.session import ReviewSession
from miqa_nb.widgets._base import close_tree, css, link, safe, text
from miqa_nb.widgets._note import NoteArea

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
        self.claim_error = css(w.HTML(), "miqa-claim-error")
        self.note = css(w.HTML(), "miqa-experiment-note")
        self.note_edit = css(
            w.Button(description="Edit note", tooltip="edit this experiment's note"),
            "miqa-experiment-note-edit",
        )
        self.note_edit.on_click(safe(lambda _b: self.edit_note()))
        # What is typed goes to the kernel as messages, in order with the Save click
        # (a Textarea's state waits while an update is unanswered: a click on Save at
        # once after fast typing saved the note without its last characters).
        self.note_text = css(
            NoteArea(
                placeholder="a note about this experiment, for every reviewer",
                layout=w.Layout(width="100%", height="4em"),
            ),
            "miqa-experiment-note-text",
        )
        self.note_save = css(
            w.Button(description="Save note", button_style="primary"),
            "miqa-experiment-note-save",
        )
        self.note_save.on_click(safe(lambda _b: self.save_note()))
        self.note_cancel = css(w.Button(description="Cancel"), "miqa-experiment-note-cancel")
        self.note_cancel.on_click(safe(lambda _b: self.close_editor()))
        self.note_error = css(w.HTML(), "miqa-experiment-note-error")
        self.note_editor = css(
            w.VBox(
                [self.note_text, w.HBox([self.note_save, self.note_cancel]), self.note_error],
                layout=w.Layout(display="none", width="100%"),
            ),
            "miqa-experiment-note-editor",
        )
        # Fixed heights: the claim line appears a moment after a scan opens, and scans
        # have histories of different lengths; neither may move the planes below (a
        # reviewer's mouse rests on a plane while the keys work). Long histories scroll.
        self.empty = css(w.HTML("<i>no decisions yet</i>"), "miqa-history-empty")
        self.rows: list[_HistoryRow] = []
        self.history = css(
            w.VBox([self.empty], layout=w.Layout(height="60px", overflow="auto")), "miqa-history"
        )
        claim_row = w.HBox(
            [self.claim, self.take_over, self.claim_error], layout=w.Layout(min_height="24px")
        )
        note_row = w.HBox(
            [self.note, self.note_edit],
            layout=w.Layout(min_height="26px", max_height="5em", overflow="auto"),
        )
        super().__init__([self.info, claim_row, note_row, self.note_editor, self.history], **kwargs)
        css(self, "miqa-header")
        self._unobserve = session.observe(
            self._on_session,
            events={"scan", "queue", "claim", "history", "submitted", "error"},
        )
        self._note_of: str | None = None  # the experiment the editor was opened on
        self.sync()

    @safe
    def _on_session(self, event: str) -> None:
        if event in ("scan", "queue", "submitted"):
            self.show_info()
        if event in ("scan", "claim", "queue", "error"):
            self.show_claim()
        if event in ("scan", "history"):
            self.show_history()
        if event in ("scan", "history", "error"):
            self.show_note()

    def sync(self) -> None:
        """Show everything again."""
        self.show_info()
        self.show_claim()
        self.show_history()
        self.show_note()

    def show_note(self) -> None:
        """The experiment's note (escaped), and the editor's state and refusal."""
        session = self.session
        experiment = None if session.key is None else session.key[0]
        if self._note_of is not None and self._note_of != experiment:
            self.close_editor()  # the editor belonged to another experiment
        note = session.experiment_note
        self.note.value = (
            f'<span class="miqa-experiment-note-label">Experiment note:</span> '
            f'<span class="miqa-experiment-note-value" style="white-space:pre-wrap">'
            f"{text(note)}</span>"
            if note
            else '<span class="miqa-experiment-note-label">No experiment note.</span>'
            if experiment is not None
            else ""
        )
        self.note_edit.layout.display = (
            "" if experiment is not None and session.can_edit_experiment_note else "none"
        )
        error = session.last_error if session.error_about == "experiment-note" else None
        self.note_error.value = (
            f'<span class="miqa-error" style="color:#b71c1c">{text(error)}</span>' if error else ""
        )

    def edit_note(self) -> None:
        """Open the editor on the experiment's note."""
        if self.session.key is None:
            return
        self._note_of = self.session.key[0]
        self.note_text.value = self.session.experiment_note
        self.note_editor.layout.display = ""
        self.note_edit.layout.display = "none"

    def save_note(self) -> None:
        """Store the edited note; the editor closes when it was stored."""
        if self.session.set_experiment_note(self.note_text.value):
            self.close_editor()
        self.show_note()

    def close_editor(self) -> None:
        self._note_of = None
        self.note_editor.layout.display = "none"
        self.note_error.value = ""
        self.note_edit.layout.display = "" if self.session.can_edit_experiment_note else "none"

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
        """Who holds the open scan's experiment and until when (local time)."""
        session = self.session
        error = session.last_error if session.error_about == "claim" else None
        self.claim_error.value = (
            f'<span class="miqa-error" style="color:#b71c1c">{text(error)}</span>' if error else ""
        )
        hold = session.hold
        if hold is not None and session.key is not None:
            holder, until = hold
            self.claim.value = (
                f'<span class="miqa-claim-other"><b class="miqa-claim-holder">{text(holder)}</b> '
                f"is reviewing experiment {text(session.key[0])} until "
                f'<span class="miqa-claim-until">{until:%H:%M}</span>: you can look at its '
                "scans, and decide them when the claim ends.</span>"
            )
            self.take_over.layout.display = "" if session.standing.superuser else "none"
            return
        self.take_over.layout.display = "none"
        mine = session.claim
        self.claim.value = (
            f'<span class="miqa-claim-mine">You are reviewing experiment '
            f"{text(mine.experiment)} until {_local(mine.expires_utc):%H:%M}.</span>"
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


def _local(utc: datetime) -> datetime:
    """A UTC time (naive or aware) in this machine's local time."""
    return (utc if utc.tzinfo is not None else utc.replace(tzinfo=UTC)).astimezone()


def _last(decision: str | None, creator: str | None) -> str | None:
    if not decision:
        return None
    return f"{decision} by {creator}" if creator else decision
