"""The decision panel: decision buttons, artifact checklist, note, location, submit.

A thin view of :class:`~miqa_nb.review.session.ReviewSession`'s pending decision: buttons and
fields call ``set_decision``, ``set_artifact``, ``set_note``, ``set_store_location`` and
``submit``; the panel shows the session's state again on ``'pending'``, ``'scan'`` and
``'claim'``. Decisions the user's role may not record are disabled (the session refuses
them too), and everything is disabled for collaborators and while another reviewer
holds the open scan's experiment (:attr:`ReviewSession.can_decide`; the header says
who and until when), and enabled again when the claim ends.

Beside Submit, ``miqa-decision-error`` shows a refused decision or a failed write in
words, and ``miqa-saved`` confirms each stored decision ("Saved U for scan S1 (E1) at
14:02") with the decisions still being written or not stored, if any.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ipywidgets as w

from miqa_nb.core.vocabulary import ARTIFACTS, ArtifactState, Decision
from miqa_nb.review.session import ReviewSession
from miqa_nb.widgets._base import css, safe, text
from miqa_nb.widgets._note import NoteArea
from miqa_nb.widgets._shortcuts import DECISION_KEYS, artifact_key_label, shortcuts_html

__all__ = ["DecisionPanel", "decision_class"]

_STATES = [(s.value, s.value) for s in ArtifactState]
_KEY_OF = {d: k for k, d in DECISION_KEYS.items()}
_STYLE = {
    Decision.USABLE: "success",
    Decision.USABLE_EXTRA: "info",
    Decision.QUESTIONABLE: "warning",
    Decision.UNUSABLE: "danger",
}


def decision_class(decision: Decision) -> str:
    """The CSS class of a decision's button: ``miqa-decision-U``, ``-UE``, ``-Q``, ``-UN``."""
    return "miqa-decision-" + decision.value.replace("?", "")


class DecisionPanel(w.VBox):
    """Choose and submit a decision for the open scan."""

    def __init__(self, session: ReviewSession, **kwargs: Any) -> None:
        self.session = session
        self._syncing = False
        self.buttons: dict[Decision, w.Button] = {}
        for decision in Decision:
            button = css(
                w.Button(
                    description=f"{decision.value} {decision.label}",
                    tooltip=f"{decision.label} (key {_KEY_OF[decision]})",
                    layout=w.Layout(width="auto"),
                ),
                "miqa-decision",
                decision_class(decision),
            )
            button.on_click(self._chose(decision))
            self.buttons[decision] = button
        self.decision_row = css(w.HBox(list(self.buttons.values())), "miqa-decisions")

        self.artifacts: dict[str, w.ToggleButtons] = {}
        rows = []
        for name in ARTIFACTS:
            toggle = css(
                w.ToggleButtons(
                    options=_STATES,
                    value=ArtifactState.NOT_ASSESSED.value,
                    # as wide as their words: three fixed 7.5em buttons and the label
                    # did not fit the panel at 1280 px and wrapped onto two lines
                    style={"button_width": "auto"},
                ),
                "miqa-artifact",
                f"miqa-artifact-{name}",
            )
            toggle.observe(self._artifact_changed(name), names="value")
            self.artifacts[name] = toggle
            label = css(
                w.Label(
                    f"{artifact_key_label(name)} {name.replace('_', ' ')}".strip(),
                    layout=w.Layout(width="14em"),
                ),
                "miqa-artifact-label",
            )
            rows.append(w.HBox([label, toggle]))
        self.checklist = css(w.VBox(rows), "miqa-artifacts")
        self.note = css(
            NoteArea(
                placeholder="note (needed for UE, Q? and UN unless an artifact is present)",
                layout=w.Layout(width="100%", height="4em"),
            ),
            "miqa-note",
        )
        self.note.observe(safe(self._note_changed), names="value")
        self.store_location = css(
            w.Checkbox(value=True, description="store location of interest", indent=False),
            "miqa-store-location",
        )
        self.store_location.observe(safe(self._store_changed), names="value")
        self.advance = css(
            w.Checkbox(
                value=session.advance_after_submit,
                description="go to the next scan after submit",
                indent=False,
            ),
            "miqa-advance",
        )
        self.advance.observe(safe(self._advance_changed), names="value")
        self.submit = css(
            w.Button(
                description="Submit",
                button_style="primary",
                tooltip="submit (Enter)",
                layout=w.Layout(flex="0 0 auto"),  # keeps its width beside the messages
            ),
            "miqa-submit",
        )
        self.submit.on_click(safe(lambda _button: self.session.submit()))
        # beside Submit: what became of the last decision (refused, written, waiting)
        self.error = css(w.HTML(), "miqa-decision-error")
        self.saved = css(w.HTML(), "miqa-saved")
        self.role = css(w.HTML(), "miqa-role")
        self.shortcuts = css(w.HTML(shortcuts_html()), "miqa-shortcuts")
        super().__init__(
            [
                self.role,
                self.decision_row,
                self.checklist,
                self.note,
                w.HBox(
                    [self.store_location, self.advance],
                    layout=w.Layout(flex_flow="row wrap"),  # the location text is long
                ),
                # what became of the decision, beside Submit (not under it: at 1440x900
                # a line under Submit falls below the window's edge)
                w.HBox(
                    [
                        self.submit,
                        w.VBox(
                            [self.error, self.saved],
                            layout=w.Layout(flex="1 1 0", min_width="0", margin="0 0 0 8px"),
                        ),
                    ],
                    layout=w.Layout(align_items="center", width="100%"),
                ),
                self.shortcuts,
            ],
            **kwargs,
        )
        css(self, "miqa-decision-panel")
        self._unobserve = session.observe(
            self._on_session,
            events={"pending", "scan", "view", "claim", "error", "submitted", "stored"},
        )
        self.sync()
        self.show_feedback()

    @safe
    def _on_session(self, event: str) -> None:
        if event in ("pending", "scan", "view", "claim"):
            self.sync()
        if event in ("scan", "error", "submitted", "stored"):
            self.show_feedback()

    def show_feedback(self) -> None:
        """The refusal or failed write of a decision, and the saved sign (escaped)."""
        session = self.session
        error = session.last_error if session.error_about in ("decision", "save") else None
        self.error.value = (
            f'<span class="miqa-error" style="color:#b71c1c">{text(error)}</span>' if error else ""
        )
        parts = []
        stored = session.last_stored
        if stored is not None:
            (experiment, scan), when = stored.key, stored.at
            parts.append(
                f"Saved {text(stored.decision)} for scan {text(scan)} ({text(experiment)}) "
                f"at {when:%H:%M:%S}."
            )
        waiting = session.writes_waiting
        if waiting:
            parts.append(f"{waiting} decision{'s' if waiting > 1 else ''} being written.")
        unsaved = len(session.unsaved)
        if unsaved:
            parts.append(
                f'<b style="color:#b71c1c">{unsaved} decision{"s" if unsaved > 1 else ""} '
                "not stored</b>: the message above says why; submit again."
            )
        self.saved.value = f'<span class="miqa-saved-text">{" ".join(parts)}</span>'

    def sync(self) -> None:
        """Show the session's pending decision and what the user may do."""
        session = self.session
        pending, allowed = session.pending, set(session.allowed_decisions)
        # nothing to decide: no scan, a role that looks only, or a colleague's claim
        off = not session.can_decide
        self._syncing = True
        try:
            for decision, button in self.buttons.items():
                button.disabled = off or decision not in allowed
                chosen = pending.decision == decision
                button.button_style = _STYLE[decision] if chosen else ""
                if chosen:
                    button.add_class("miqa-selected")
                else:
                    button.remove_class("miqa-selected")
            for name, toggle in self.artifacts.items():
                toggle.value = pending.artifact(name).value
                toggle.disabled = off
            if self.note.value != pending.note:
                self.note.value = pending.note
            self.note.disabled = off
            self.store_location.value = pending.store_location
            xyz = session.crosshair if session.volume is not None else None  # not stale
            self.store_location.description = (
                "store location of interest"
                if xyz is None
                else "store location i={:.1f} j={:.1f} k={:.1f} mm".format(*xyz)
            )
            self.advance.value = session.advance_after_submit
            self.submit.disabled = off or pending.decision is None
            role = session.standing
            what = (
                "superuser"
                if role.superuser
                else (role.role.value if role.role is not None else "project creator")
            )
            self.role.value = f"Reviewing as <b>{text(session.user)}</b> ({text(what)})" + (
                ": read only" if session.read_only else ""
            )
        finally:
            self._syncing = False

    def _chose(self, decision: Decision) -> Any:
        @safe
        def chose(_button: w.Button) -> None:
            same = self.session.pending.decision == decision
            self.session.set_decision(None if same else decision)

        return chose

    def _artifact_changed(self, name: str) -> Any:
        @safe
        def changed(change: Mapping[str, Any]) -> None:
            if not self._syncing:
                self.session.set_artifact(name, str(change["new"]))

        return changed

    def _note_changed(self, change: Mapping[str, Any]) -> None:
        if not self._syncing:
            self.session.set_note(str(change["new"]))

    def _store_changed(self, change: Mapping[str, Any]) -> None:
        if not self._syncing:
            self.session.set_store_location(bool(change["new"]))

    def _advance_changed(self, change: Mapping[str, Any]) -> None:
        if not self._syncing:
            self.session.advance_after_submit = bool(change["new"])

    def close(self) -> None:
        self._unobserve()
        super().close()
