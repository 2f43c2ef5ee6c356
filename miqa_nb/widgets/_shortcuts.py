"""The review page's key sets, and what a key press does to the session.

Keys come from the page's keyboard widget (:mod:`~miqa_nb.widgets._keyboard`) as
*key ids*: ``KeyboardEvent.key`` with single letters in lower case (``'n'``,
``'ArrowDown'``, ``'Enter'``), and ``'Shift+Digit1'`` ... for Shift + a digit key, read
from the event's ``code`` so the keyboard layout does not matter. The page sends only
the ids of the chosen key set, never keys typed in a text field or with Ctrl, Alt or
Meta; it handles the note key (focus the note) and ``?`` (help) itself, at once.

Two key sets, chosen per user (stored in the catalog as the setting
:data:`SETTING`):

- ``miqa_nb``: 1-4 choose a decision, Enter submits, n/p or →/← scans, ↑/↓ slices of
  the plane under the mouse (axial elsewhere), ]/[ frames, l store location, f the
  plane under the mouse full size, =/+ and - zoom, c crosshair on/off.
- ``miqa``: MIQA's own bindings: u/i/o/p record U/UE/Q?/UN at once (with the note and
  artifacts, then the next scan, as MIQA does), ↑/↓ previous/next scan, ←/→ frames,
  q/w a/s z/x previous/next slice of the axial/sagittal/coronal plane, e/d/c that plane
  full size (again: all three).

Both have Shift + a digit for the artifacts (``Shift+1`` ... ``Shift+9``, ``Shift+0``
for the tenth; each press moves one step along not assessed -> present -> absent ->
not assessed), ``t`` for the note and ``?`` for the list of keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from miqa_nb.core.vocabulary import ARTIFACTS, ArtifactState, Decision
from miqa_nb.review.session import ReviewSession
from miqa_nb.volumes import PLANES, Plane

__all__ = [
    "ARTIFACT_KEYS",
    "DECISION_KEYS",
    "DEFAULT_KEYSET",
    "KEYSETS",
    "NOTE_KEY",
    "SETTING",
    "KeySet",
    "artifact_key_label",
    "handle_key",
    "keyset",
    "shortcuts_html",
]

#: The catalog setting (per user) that names the chosen key set.
SETTING = "review_keys"
#: Focuses the note; the page does it (see :mod:`~miqa_nb.widgets._keyboard`).
NOTE_KEY = "t"
#: Key -> decision chosen, in the miqa_nb key set.
DECISION_KEYS: Mapping[str, Decision] = {
    "1": Decision.USABLE,
    "2": Decision.USABLE_EXTRA,
    "3": Decision.QUESTIONABLE,
    "4": Decision.UNUSABLE,
}
#: Key -> decision recorded at once, in MIQA's key set.
MIQA_DECISION_KEYS: Mapping[str, Decision] = {
    "u": Decision.USABLE,
    "i": Decision.USABLE_EXTRA,
    "o": Decision.QUESTIONABLE,
    "p": Decision.UNUSABLE,
}
#: Key id (Shift + digit) -> artifact: Digit1 is the first of ARTIFACTS, Digit0 the tenth.
ARTIFACT_KEYS: Mapping[str, str] = {
    f"Shift+Digit{(n + 1) % 10}": name for n, name in enumerate(ARTIFACTS[:10])
}
#: Next state of an artifact on its key: not assessed -> present -> absent -> not assessed.
_CYCLE = {
    ArtifactState.NOT_ASSESSED: ArtifactState.PRESENT,
    ArtifactState.PRESENT: ArtifactState.ABSENT,
    ArtifactState.ABSENT: ArtifactState.NOT_ASSESSED,
}
_ARTIFACT_ACTIONS = {key: f"artifact {name}" for key, name in ARTIFACT_KEYS.items()}
_COMMON_HELP = (
    ("⇧1 … ⇧0", "artifact (numbered in the list): present → absent → not assessed"),
    ("t", "write a note (Esc leaves it, and the keys work again)"),
    ("?", "this list of keys (Esc closes it)"),
)


@dataclass(frozen=True)
class KeySet:
    """A key set: key id -> action, and the help a person reads.

    Actions are ``'choose U'``, ``'record U'`` (choose and submit), ``'submit'``,
    ``'next'``, ``'previous'``, ``'slice +1'`` (plane under the mouse) or
    ``'slice axial +1'``, ``'frame +1'``, ``'store location'``, ``'artifact <name>'``,
    ``'zoom in'``, ``'zoom out'``, ``'crosshair'``, and ``'full <plane>'`` or
    ``'full here'`` (the plane under the mouse; panel actions: the session has no say
    in layout).
    """

    name: str
    label: str
    actions: Mapping[str, str]
    help: tuple[tuple[str, str], ...]


MIQA_NB_KEYS = KeySet(
    "miqa_nb",
    "miqa_nb keys",
    {
        **{key: f"choose {d.value}" for key, d in DECISION_KEYS.items()},
        **_ARTIFACT_ACTIONS,
        "Enter": "submit",
        "n": "next",
        "ArrowRight": "next",
        "p": "previous",
        "ArrowLeft": "previous",
        "ArrowUp": "slice +1",
        "ArrowDown": "slice -1",
        "]": "frame +1",
        "[": "frame -1",
        "l": "store location",
        "f": "full here",
        "=": "zoom in",
        "+": "zoom in",
        "-": "zoom out",
        "c": "crosshair",
    },
    (
        ("1 2 3 4", "choose U, UE, Q?, UN"),
        _COMMON_HELP[0],
        _COMMON_HELP[1],
        ("Enter", "submit"),
        ("n or →", "next scan (stops at the last)"),
        ("p or ←", "previous scan (stops at the first)"),
        ("↑ ↓ or wheel", "next / previous slice of the plane under the mouse (else axial)"),
        ("] [", "next / previous frame"),
        ("l", "store location on / off"),
        ("f", "the plane under the mouse (else axial) full size; again: all three"),
        ("= or + / -", "zoom in / out (drag a zoomed plane to pan)"),
        ("c", "crosshair on / off"),
        _COMMON_HELP[2],
    ),
)

MIQA_KEYS = KeySet(
    "miqa",
    "MIQA keys",
    {
        **{key: f"record {d.value}" for key, d in MIQA_DECISION_KEYS.items()},
        **_ARTIFACT_ACTIONS,
        "ArrowDown": "next",
        "ArrowUp": "previous",
        "ArrowRight": "frame +1",
        "ArrowLeft": "frame -1",
        "q": "slice axial -1",
        "w": "slice axial +1",
        "a": "slice sagittal -1",
        "s": "slice sagittal +1",
        "z": "slice coronal -1",
        "x": "slice coronal +1",
        "e": "full axial",
        "d": "full sagittal",
        "c": "full coronal",
    },
    (
        ("u i o p", "record U, UE, Q?, UN (with the note and artifacts) and go on"),
        _COMMON_HELP[0],
        _COMMON_HELP[1],
        ("↓ ↑", "next / previous scan"),
        ("→ ←", "next / previous frame"),
        ("q w · a s · z x", "previous / next slice: axial · sagittal · coronal"),
        ("e d c", "axial / sagittal / coronal full size (again: all three)"),
        _COMMON_HELP[2],
    ),
)

#: The key sets by name.
KEYSETS: Mapping[str, KeySet] = {k.name: k for k in (MIQA_NB_KEYS, MIQA_KEYS)}
DEFAULT_KEYSET = MIQA_NB_KEYS.name


def keyset(name: str | None) -> KeySet:
    """The key set named ``name``; the default one for None or a name not known
    (a setting written by another version must not break the page).

    >>> keyset("miqa").label, keyset(None).name, keyset("qwerty").name
    ('MIQA keys', 'miqa_nb', 'miqa_nb')
    """
    return KEYSETS.get(name or DEFAULT_KEYSET, KEYSETS[DEFAULT_KEYSET])


def shortcuts_html(keys: KeySet = MIQA_NB_KEYS) -> str:
    """The keys of a key set as a short line of HTML (constant text)."""
    items = " · ".join(f"<kbd>{k}</kbd> {what}" for k, what in keys.help)
    return f'<span class="miqa-shortcuts-text">{keys.label}: {items}</span>'


def artifact_key_label(name: str) -> str:
    """The key of an artifact as the checklist shows it (``⇧1``), or ``""``.

    >>> artifact_key_label("ghosting_motion"), artifact_key_label("not an artifact")
    ('⇧5', '')
    """
    for key, artifact in ARTIFACT_KEYS.items():
        if artifact == name:
            return "⇧" + key.removeprefix("Shift+Digit")
    return ""


def handle_key(
    session: ReviewSession, key: str, keys: KeySet = MIQA_NB_KEYS, plane: Plane | None = None
) -> str | None:
    """Do what a key means in a key set; return the action (None: not a key of the set).

    ``plane`` is the plane under the mouse, if any. Panel actions (``'full <plane>'``)
    change nothing in the session: the caller does them.
    """
    action = keys.actions.get(key)
    if action is None:
        return None
    verb, _, rest = action.partition(" ")
    if verb == "choose":
        session.set_decision(Decision.parse(rest))
    elif verb == "record":
        if session.set_decision(Decision.parse(rest)):
            session.submit()
    elif verb == "submit":
        session.submit()
    elif verb == "next":
        session.next()
    elif verb == "previous":
        session.previous()
    elif verb == "slice":
        *named, step = rest.split(" ")
        target = named[0] if named and named[0] in PLANES else plane
        session.move_slice(target or "axial", int(step))
    elif verb == "frame":
        session.set_frame(session.frame + int(rest))
    elif verb == "store":
        session.set_store_location(not session.pending.store_location)
    elif verb == "zoom":
        (session.zoom_in if rest == "in" else session.zoom_out)()
    elif verb == "crosshair":
        session.show_crosshair(not session.view.crosshair_shown)
    elif action == "full here":
        return f"full {plane or 'axial'}"
    elif verb == "artifact":
        state = _CYCLE[session.pending.artifact(rest)]
        session.set_artifact(rest, state)
        return f"{action} {state.value}"
    return action
