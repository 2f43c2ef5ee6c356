"""Keyboard shortcuts of the review panels, and how a key event maps to the session.

Keys arrive from ipyevents (``{'type': 'keydown', 'key': '1', ...}``) while the mouse
is over a plane of the viewer or the decision buttons. Keys with Ctrl, Alt or Meta
are left alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from miqa_nb.review import ReviewSession
from miqa_nb.vocabulary import Decision
from miqa_nb.volumes import Plane

__all__ = ["DECISION_KEYS", "SHORTCUTS", "handle_key", "shortcuts_html"]

#: Key -> decision.
DECISION_KEYS: Mapping[str, Decision] = {
    "1": Decision.USABLE,
    "2": Decision.USABLE_EXTRA,
    "3": Decision.QUESTIONABLE,
    "4": Decision.UNUSABLE,
}

#: (keys shown, what they do), in the order the panel lists them.
SHORTCUTS: tuple[tuple[str, str], ...] = (
    ("1 2 3 4", "choose U, UE, Q?, UN"),
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


def handle_key(
    session: ReviewSession, event: Mapping[str, Any], plane: Plane | None = None
) -> str | None:
    """Do what a key press means; return the action's name (None: not a shortcut)."""
    if event.get("type", "keydown") != "keydown":
        return None
    if event.get("ctrlKey") or event.get("altKey") or event.get("metaKey"):
        return None
    key = str(event.get("key", ""))
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
