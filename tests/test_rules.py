"""MIQA's rules: the scan-state rule in Python and in the catalog's SQL agree on every
case; a decision other than U needs a note or an artifact present."""

import re

import pytest
from support import frame_row

from miqa_nb.core.errors import MiqaError
from miqa_nb.core.rules import SCAN_STATE_RULE, require_note_or_artifact, scan_state
from miqa_nb.core.vocabulary import Decision, ScanState

#: Who made a scan's newest decision: a tier-1 reviewer, a tier-2 reviewer, a superuser.
MAKERS = {"first": False, "second": True, "admin": True}


def test_scan_state_follows_miqa():
    assert scan_state(None, False) is ScanState.UNREVIEWED
    assert scan_state(None, True) is ScanState.UNREVIEWED
    assert scan_state("U", False) is ScanState.COMPLETE
    assert scan_state("Q?", False) is ScanState.NEEDS_TIER2
    assert scan_state("UE", False) is ScanState.NEEDS_TIER2
    assert scan_state("UN", True) is ScanState.COMPLETE


def test_the_rule_ends_with_a_line_that_matches_every_scan():
    assert SCAN_STATE_RULE[-1].sql("d", "t") == "TRUE"


def test_the_catalog_derives_every_state_as_scan_state_does(catalog, write_csv):
    """Every decision code (and none) x every kind of maker, through a real catalog."""
    cases = {
        f"S{n}": (code, maker)
        for n, (code, maker) in enumerate(
            (code, maker) for code in (None, *Decision) for maker in MAKERS
        )
    }
    catalog.import_file(write_csv([frame_row(scan=scan) for scan in cases]), by="admin")
    for user in ("first", "second"):
        catalog.add_user(user, by="admin")
        catalog.set_role("P", user, "tier2", by="admin")
    for scan, (code, maker) in cases.items():
        if code is not None:
            catalog.record_decision("P", "E1", scan, code, by=maker, note="seen")
    catalog.set_role("P", "first", "tier1", by="admin")  # its decisions are tier-1's now

    states = catalog.scans("P").set_index("scan")["state"].astype(str).to_dict()

    expected = {
        scan: scan_state(None if code is None else code.value, MAKERS[maker]).value
        for scan, (code, maker) in cases.items()
    }
    assert states == expected
    assert set(expected.values()) == {s.value for s in ScanState}


@pytest.mark.parametrize("code", [d for d in Decision if d != Decision.USABLE])
def test_a_decision_other_than_u_needs_a_note_or_an_artifact(code):
    require_note_or_artifact(code, "motion in the last frames", ())
    require_note_or_artifact(code, "", ("ghosting_motion",))
    with pytest.raises(MiqaError, match=re.escape(f"a '{code.value}' decision needs a note")):
        require_note_or_artifact(code, " \n", ())


def test_u_needs_neither_note_nor_artifact():
    require_note_or_artifact(Decision.USABLE, "", ())


def test_the_catalog_applies_the_note_rule(catalog, write_csv):
    catalog.import_file(write_csv([frame_row()]), by="admin")
    with pytest.raises(MiqaError, match="'UN' decision needs a note"):
        catalog.record_decision("P", "E1", "S1", "UN", by="admin")
    assert catalog.decisions("P").empty
