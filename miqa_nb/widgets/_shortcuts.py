"""Keyboard shortcuts of the review panels, and how a key event maps to the session.

Keys arrive from ipyevents (``{'type': 'keydown', 'key': '1', ...}``) while the mouse
is over a plane of the viewer or the decision buttons. Keys with Ctrl, Alt or Meta
are left alone.

While the mouse is over a watched element, ipyevents takes *every* key press of the
page (it listens on the document), so typing a note needs the mouse elsewhere: ``t``
focuses the note (the panel that received the key does that, see
:data:`PANEL_ACTIONS`); the reviewer moves the mouse off the planes, types, and
returns to the planes to go on with keys.

Artifacts are Shift + a digit key (``Shift+1`` ... ``Shift+9``, ``Shift+0`` for the
tenth), read from the event's ``code`` (``Digit1`` ...) so the keyboard layout does
not matter; each press moves the artifact one step along not assessed -> present ->
absent -> not assessed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from miqa_nb.core.vocabulary import ARTIFACTS, ArtifactState, Decision
from miqa_nb.review.session import ReviewSession
from miqa_nb.volumes import Plane

__all__ = [
    "ARTIFACT_KEYS",
    "DECISION_KEYS",
    "NOTE_KEY",
    "PANEL_ACTIONS",
    "SHORTCUTS",
    "artifact_key_label",
    "handle_key",
    "shortcuts_html",
]

#: Key -> decision.
DECISION_KEYS: Mapping[str, Decision] = {
    "1": Decision.USABLE,
    "2": Decision.USABLE_EXTRA,
    "3": Decision.QUESTIONABLE,
    "4": Decision.UNUSABLE,
}

#: ``KeyboardEvent.code`` (with Shift) -> artifact: Digit1 is the first of ARTIFACTS,
#: Digit0 the tenth.
ARTIFACT_KEYS: Mapping[str, str] = {
    f"Digit{(n + 1) % 10}": name for n, name in enumerate(ARTIFACTS[:10])
}
#: Focuses the note (a panel action: the session has no say in focus).
NOTE_KEY = "t"
#: Actions :func:`handle_key` leaves to the panel that received the key.
PANEL_ACTIONS = frozenset({"note"})
#: Next state of an artifact on its key: not assessed -> present -> absent -> not assessed.
_CYCLE = {
    ArtifactState.NOT_ASSESSED: ArtifactState.PRESENT,
    ArtifactState.PRESENT: ArtifactState.ABSENT,
    ArtifactState.ABSENT: ArtifactState.NOT_ASSESSED,
}

#: (keys shown, what they do), in the order the panel lists them.
SHORTCUTS: tuple[tuple[str, str], ...] = (
    ("1 2 3 4", "choose U, UE, Q?, UN"),
    ("⇧1 … ⇧0", "artifact (numbered in the list): present → absent → not assessed"),
    ("t", "write a note (move the mouse off the planes to type)"),
    ("Enter", "submit"),
    ("n or →", "next scan"),
    ("p or ←", "previous scan"),
    ("↑ ↓ or wheel", "next / previous slice of the plane under the mouse"),
    ("] [", "next / previous frame"),
    ("l", "store location on / off"),
)


def shortcuts_html() -> str:
    """The shortcuts as a short line of HTML (constant text)."""
    items = " · ".join(f"<kbd>{keys}</kbd> {what}" for keys, what in SHORTCUTS)
    return f'<span class="miqa-shortcuts-text">Keys (mouse over the planes): {items}</span>'


def artifact_key_label(name: str) -> str:
    """The key of an artifact as the checklist shows it (``⇧1``), or ``""``.

    >>> artifact_key_label("ghosting_motion"), artifact_key_label("not an artifact")
    ('⇧5', '')
    """
    for code, artifact in ARTIFACT_KEYS.items():
        if artifact == name:
            return "⇧" + code.removeprefix("Digit")
    return ""


def handle_key(
    session: ReviewSession, event: Mapping[str, Any], plane: Plane | None = None
) -> str | None:
    """Do what a key press means; return the action's name (None: not a shortcut).

    Actions in :data:`PANEL_ACTIONS` (``'note'``) change nothing in the session: the
    caller does them.
    """
    if event.get("type", "keydown") != "keydown":
        return None
    if event.get("ctrlKey") or event.get("altKey") or event.get("metaKey"):
        return None
    key = str(event.get("key", ""))
    if event.get("shiftKey") and str(event.get("code", "")) in ARTIFACT_KEYS:
        name = ARTIFACT_KEYS[str(event["code"])]
        state = _CYCLE[session.pending.artifact(name)]
        session.set_artifact(name, state)
        return f"artifact {name} {state.value}"
    if key == NOTE_KEY:
        return "note"
    if key in DECISION_KEYS:
        session.set_decision(DECISION_KEYS[key])
        return f"decision {DECISION_KEYS[key].value}"
    if key == "Enter":
        session.submit()
        return "submit"
    if key in ("n", "N", "ArrowRight"):
        session.next()
        return "next"
    if key in ("p", "P", "ArrowLeft"):
        session.previous()
        return "previous"
    if key in ("ArrowUp", "ArrowDown"):
        session.move_slice(plane or "axial", 1 if key == "ArrowUp" else -1)
        return "slice"
    if key in ("]", "["):
        session.set_frame(session.frame + (1 if key == "]" else -1))
        return "frame"
    if key in ("l", "L"):
        session.set_store_location(not session.pending.store_location)
        return "store location"
    return None
