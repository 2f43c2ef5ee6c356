"""The review page's keys, headless: what the page sends reaches the session, in the
chosen key set; keys and note typing of a scan no longer shown are dropped; the key
set is each user's, kept in the catalog. (The page's own part -- text fields, the
note key, the help -- is tested in a real browser: tests/browser/test_keys.py.)"""

from __future__ import annotations

from miqa_nb.core.vocabulary import Decision
from miqa_nb.widgets import ReviewPanel
from miqa_nb.widgets._shortcuts import KEYSETS, SETTING, keyset

PROJECT = "P"


def press(panel: ReviewPanel, key: str, *, plane: str | None = None, generation=None) -> None:
    """What the page sends for a key (see miqa_nb/widgets/_keyboard.py)."""
    keys = panel.page_keys
    sent = keys.generation if generation is None else generation
    keys._handle_custom_msg({"key": key, "plane": plane, "generation": sent}, [])


def typed(panel: ReviewPanel, text: str, generation: int) -> None:
    """What the note sends as the reviewer types (see miqa_nb/widgets/_note.py)."""
    panel.decision.note._handle_custom_msg({"value": text, "generation": generation}, [])


def test_miqa_nb_keys_choose_mark_and_submit(start, project):
    session = start("t2", filter="all")
    panel = ReviewPanel(session, auto_refresh=None)
    assert panel.keyset.name == "miqa_nb" and panel.page_keys.label == "miqa_nb keys"
    assert set(panel.page_keys.bound) == set(KEYSETS["miqa_nb"].actions)
    press(panel, "3")
    assert session.pending.decision == Decision.QUESTIONABLE
    press(panel, "1")
    press(panel, "Shift+Digit5")
    assert session.pending.artifact("ghosting_motion").value == "present"
    press(panel, "l")
    assert not panel.decision.store_location.value
    press(panel, "x")  # not a key of the set: nothing
    press(panel, "Enter")
    stored = project.decisions(PROJECT)
    assert stored[["scan", "decision", "ghosting_motion"]].values.tolist() == [
        ["S1", "U", "present"]
    ]
    assert session.key == ("E1", "S2")


def test_slice_keys_scroll_the_plane_under_the_mouse(start):
    session = start("t2", filter="all")
    panel = ReviewPanel(session, auto_refresh=None)
    coronal, axial = session.slices.coronal, session.slices.axial
    press(panel, "ArrowDown", plane="coronal")
    assert session.slices.coronal == coronal - 1
    press(panel, "ArrowDown")  # the mouse over no plane: axial
    assert (session.slices.coronal, session.slices.axial) == (coronal - 1, axial - 1)


def test_n_stops_at_the_last_scan(start):
    session = start("t2", filter="all")
    panel = ReviewPanel(session, auto_refresh=None)
    last = session.queue.keys()[-1]
    session.open(last)
    press(panel, "n")
    assert session.key == last
    assert "last scan" in panel.status.value


def test_a_key_typed_for_the_scan_shown_before_does_not_act_on_the_next(start, project):
    session = start("t2", filter="all")
    panel = ReviewPanel(session, auto_refresh=None)
    shown = panel.page_keys.generation
    press(panel, "n")  # the kernel moves on ...
    assert session.key == ("E1", "S2")
    press(panel, "2", generation=shown)  # ... a key typed while S1 was still shown
    press(panel, "Enter", generation=shown)
    assert session.pending.decision is None and project.decisions(PROJECT).empty
    assert panel.page_keys.stale == 2
    press(panel, "2")  # typed on S2
    assert session.pending.decision == Decision.USABLE_EXTRA


def test_a_note_typed_for_the_scan_shown_before_is_dropped_even_when_both_are_empty(start):
    session = start("t2", filter="all")
    panel = ReviewPanel(session, auto_refresh=None)
    typed_in = panel.decision.note.generation
    press(panel, "n")  # S1's note and S2's are both empty: the text is not replaced
    typed(panel, "noisy", typed_in)
    assert session.key == ("E1", "S2") and session.pending.note == ""
    typed(panel, "noisy", panel.decision.note.generation)
    assert session.pending.note == "noisy"


def test_keys_and_note_are_stale_before_any_view_shows_the_next_scan(start):
    session = start("t2", filter="all")
    panel = ReviewPanel(session, auto_refresh=None)
    order: list[str] = []
    panel.page_keys.observe(lambda _c: order.append("keys"), names="generation")
    panel.decision.note.observe(lambda _c: order.append("note"), names="generation")
    panel.header.info.observe(lambda _c: order.append("header"), names="value")
    for image in panel.viewer.images.values():
        image.observe(lambda _c: order.append("planes"), names="value")
    panel.next_button.click()
    assert order[:2] == ["keys", "note"] and {"header", "planes"} <= set(order[2:])


def test_miqa_keys_are_kept_for_the_user_and_do_what_miqa_does(start, project):
    session = start("t2", filter="all")
    panel = ReviewPanel(session, auto_refresh=None)
    panel.keyset_choice.value = "miqa"
    assert project.user_setting(SETTING, by="t2") == "miqa"
    assert project.user_setting(SETTING, by="t1") is None  # one user's choice
    assert "MIQA keys" in panel.decision.shortcuts.value
    panel.close()

    again = ReviewPanel(start("t2", filter="all"), auto_refresh=None)  # the next page
    session = again.session
    assert again.keyset is keyset("miqa") and again.keyset_choice.value == "miqa"
    assert set(again.page_keys.bound) == set(KEYSETS["miqa"].actions)
    press(again, "o")  # Q? needs a note or an artifact: refused, nothing recorded
    assert "note" in (session.last_error or "") and project.decisions(PROJECT).empty
    press(again, "u")  # U recorded at once, then the next scan
    assert project.decisions(PROJECT)[["scan", "decision"]].values.tolist() == [["S1", "U"]]
    assert session.key == ("E1", "S2")
    press(again, "ArrowDown")
    assert session.key == ("E1", "S3")
    press(again, "ArrowUp")
    assert session.key == ("E1", "S2")
    axial, sagittal = session.slices.axial, session.slices.sagittal
    press(again, "w")
    press(again, "a")
    assert (session.slices.axial, session.slices.sagittal) == (axial + 1, sagittal - 1)
    press(again, "1")  # miqa_nb's keys do nothing in MIQA's set
    assert session.pending.decision is None


def test_one_plane_full_size_and_back(start):
    panel = ReviewPanel(
        start(
            "t2",
            filter="all",
        ),
        auto_refresh=None,
    )
    panel.use_keyset(keyset("miqa"))
    boxes = {
        plane: box
        for box in panel.viewer.planes.children
        for plane in ("axial", "coronal", "sagittal")
        if f"miqa-plane-box-{plane}" in box._dom_classes
    }
    press(panel, "d")
    assert panel.viewer.full == "sagittal"
    hidden = {p for p, box in boxes.items() if box.layout.display == "none"}
    assert hidden == {"axial", "coronal"}
    press(panel, "d")  # again: all three
    assert panel.viewer.full is None
    assert all(box.layout.display != "none" for box in boxes.values())


def test_tier1_keys_cannot_choose_tier2_decisions(start):
    session = start("t1")
    panel = ReviewPanel(session, auto_refresh=None)
    press(panel, "4")
    assert session.pending.decision is None
    assert "tier-2" in session.last_error


def test_miqa_nb_keys_show_a_plane_full_size_zoom_and_hide_the_crosshair(start):
    panel = ReviewPanel(start("t2", filter="all"), auto_refresh=None)
    session = panel.session
    press(panel, "f", plane="coronal")  # the plane under the mouse
    assert panel.viewer.full == "coronal"
    press(panel, "f", plane="coronal")  # again: all three
    assert panel.viewer.full is None
    press(panel, "f")  # the mouse elsewhere: axial
    assert panel.viewer.full == "axial"
    assert session.zoom == 1
    press(panel, "=")
    assert session.zoom > 1
    zoomed = session.zoom
    press(panel, "+")
    assert session.zoom > zoomed
    press(panel, "-")
    assert session.zoom == zoomed
    assert session.view.crosshair_shown is True
    press(panel, "c")
    assert session.view.crosshair_shown is False
    assert panel.viewer.crosshair_toggle.value is False
    press(panel, "c")
    assert session.view.crosshair_shown is True
