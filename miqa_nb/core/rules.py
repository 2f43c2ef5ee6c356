"""MIQA's review rules, each written once: a scan's state, and what a decision needs.

- :data:`SCAN_STATE_RULE` is MIQA's scan-state rule as a table, read top to bottom
  (the first line that matches decides). :func:`scan_state` applies it in Python (a
  review session, after a decision it has just recorded) and :func:`scan_state_sql`
  writes it as a SQL ``CASE`` (the catalog's ``scans`` query); both read the same
  table, so they cannot drift apart.
- :func:`require_note_or_artifact` is MIQA's rule that a decision other than ``U``
  says why: a note, or at least one artifact marked present. The catalog and the
  review session both ask it.
- :data:`NOTE_CONTROLS` and :data:`NAME_CONTROLS` are the control characters a note
  and a name may not hold; :func:`control_class` writes either as a regular
  expression that Python and DuckDB both read, so the catalog
  (:func:`require_plain_note`) and the validation of import files test one rule.

Pure functions, no I/O; who may record which decision is :mod:`miqa_nb.core.permissions`.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

from miqa_nb.core.errors import MiqaError
from miqa_nb.core.vocabulary import Decision, ScanState

__all__ = [
    "NAME_CONTROLS",
    "NOTE_CONTROLS",
    "SCAN_STATE_RULE",
    "StateLine",
    "control_class",
    "require_note_or_artifact",
    "require_plain_note",
    "scan_state",
    "scan_state_sql",
]


@dataclass(frozen=True)
class StateLine:
    """One line of the scan-state rule: a condition on a scan's newest decision, and
    the state it gives. A condition left as None matches anything.

    Parameters
    ----------
    state : ScanState
        The state of a scan that matches.
    decided : bool, optional
        The scan has a decision at all.
    decision : Decision, optional
        The newest decision is this one.
    by_tier2 : bool, optional
        The newest decision was made by a tier-2 reviewer of the project (or a superuser).
    """

    state: ScanState
    decided: bool | None = None
    decision: Decision | None = None
    by_tier2: bool | None = None

    def matches(self, last_decision: str | None, made_by_tier2: bool) -> bool:
        """True when a scan whose newest decision is ``last_decision`` matches this line.

        Examples
        --------
        >>> StateLine(ScanState.COMPLETE, by_tier2=True).matches("Q?", True)
        True
        >>> StateLine(ScanState.UNREVIEWED, decided=False).matches("U", False)
        False
        """
        return (
            (self.decided is None or bool(last_decision) == self.decided)
            and (self.decision is None or last_decision == self.decision)
            and (self.by_tier2 is None or made_by_tier2 == self.by_tier2)
        )

    def sql(self, decision: str, by_tier2: str) -> str:
        """This line's condition in SQL over the columns named (``TRUE`` for none)."""
        terms = []
        if self.decided is not None:
            terms.append(f"({decision} IS {'NOT ' if self.decided else ''}NULL)")
        if self.decision is not None:
            terms.append(f"({decision} = '{self.decision.value}')")
        if self.by_tier2 is not None:
            terms.append(f"({by_tier2})" if self.by_tier2 else f"(NOT ({by_tier2}))")
        return " AND ".join(terms) or "TRUE"


#: MIQA's scan-state rule: unreviewed without a decision; complete when the newest
#: decision is ``U`` or was made by a tier-2 reviewer (or a superuser); otherwise it
#: needs a tier-2 review. The last line matches every scan.
SCAN_STATE_RULE: tuple[StateLine, ...] = (
    StateLine(ScanState.UNREVIEWED, decided=False),
    StateLine(ScanState.COMPLETE, decision=Decision.USABLE),
    StateLine(ScanState.COMPLETE, by_tier2=True),
    StateLine(ScanState.NEEDS_TIER2),
)


def scan_state(last_decision: str | None, made_by_tier2: bool) -> ScanState:
    """A scan's state from its newest decision and whether a tier-2 reviewer made it
    (:data:`SCAN_STATE_RULE`).

    Examples
    --------
    >>> scan_state(None, False).value
    'unreviewed'
    >>> scan_state("U", False).value
    'complete'
    >>> scan_state("Q?", False).value
    'needs tier-2 review'
    >>> scan_state("UN", True).value
    'complete'
    """
    for line in SCAN_STATE_RULE:
        if line.matches(last_decision, made_by_tier2):
            return line.state
    raise AssertionError("the last line of SCAN_STATE_RULE matches every scan")


def scan_state_sql(decision: str, by_tier2: str) -> str:
    """:data:`SCAN_STATE_RULE` as a SQL ``CASE`` expression.

    Parameters
    ----------
    decision : str
        SQL for the newest decision's code (NULL when the scan has none).
    by_tier2 : str
        A SQL condition: the newest decision's maker is a tier-2 reviewer or superuser.

    Examples
    --------
    >>> print(scan_state_sql("d", "t"))
    CASE WHEN (d IS NULL) THEN 'unreviewed'
         WHEN (d = 'U') THEN 'complete'
         WHEN (t) THEN 'complete'
         ELSE 'needs tier-2 review' END
    """
    *lines, last = SCAN_STATE_RULE
    whens = [f"WHEN {line.sql(decision, by_tier2)} THEN '{line.state.value}'" for line in lines]
    otherwise = (
        f"ELSE '{last.state.value}'"
        if last.sql(decision, by_tier2) == "TRUE"
        else f"WHEN {last.sql(decision, by_tier2)} THEN '{last.state.value}'"
    )
    return "CASE " + "\n     ".join([*whens, otherwise]) + " END"


def require_note_or_artifact(decision: Decision, note: str, present: Collection[str]) -> None:
    """MIQA's rule: a decision other than ``U`` needs a note or an artifact present.

    Raises
    ------
    MiqaError
        Neither is given; nothing should be recorded.

    Examples
    --------
    >>> require_note_or_artifact(Decision.USABLE, "", ())
    >>> require_note_or_artifact(Decision.UNUSABLE, "", ["ghosting_motion"])
    >>> require_note_or_artifact(Decision.QUESTIONABLE, "  ", ())
    Traceback (most recent call last):
    ...
    miqa_nb.core.errors.MiqaError: a 'Q?' decision needs a note or at least one artifact marked present
    """
    if decision != Decision.USABLE and not note.strip() and not present:
        raise MiqaError(
            f"a {decision.value!r} decision needs a note or at least one artifact marked present"
        )


#: Control characters no note may hold: C0 and DEL, but tab, line feed and carriage
#: return (a note may have several lines).
NOTE_CONTROLS = "".join(map(chr, (*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F)))
#: Control characters no name (project, experiment, scan, scan type, creator, subject
#: and session IDs, link, file location) may hold: every C0 character and DEL.
NAME_CONTROLS = "".join(map(chr, (*range(0x00, 0x20), 0x7F)))


def control_class(characters: str) -> str:
    r"""A regular-expression class of ``characters``, written as ``\xNN`` escapes (which
    Python's ``re`` and DuckDB's RE2 both read, so the text holds no raw control byte).

    >>> control_class("\x00\x7f")
    '[\\x00\\x7f]'
    """
    return "[" + "".join(f"\\x{ord(c):02x}" for c in characters) + "]"


_NOTE_CONTROL = re.compile(control_class(NOTE_CONTROLS))


def require_plain_note(note: str) -> None:
    r"""A note holds no control character but tab and line breaks (:data:`NOTE_CONTROLS`).

    Raises
    ------
    MiqaError
        The note holds one; the message shows it escaped, with its position.

    Examples
    --------
    >>> require_plain_note("motion in the\tlast\nslices")
    >>> require_plain_note("bad\x00note")
    Traceback (most recent call last):
    ...
    miqa_nb.core.errors.MiqaError: the note holds the control character '\x00' at character 4 ('bad\x00note'); notes are text (tabs and line breaks are kept): remove it
    """
    found = _NOTE_CONTROL.search(note)
    if found is not None:
        shown = note if len(note) <= 60 else note[:57] + "..."
        raise MiqaError(
            f"the note holds the control character {found.group()!r} at character "
            f"{found.start() + 1} ({shown!r}); notes are text (tabs and line breaks are "
            "kept): remove it"
        )
