"""The scan header, headless: escaping, links, claims, history, locations."""

from __future__ import annotations

from datetime import UTC

from miqa_nb.widgets import ScanHeader
from miqa_nb.widgets._base import is_web_link, link, text

PROJECT = "P"


def test_shows_where_and_what(start):
    header = ScanHeader(start("t2", filter="all"))
    value = header.info.value
    for part in ("P / E1 /", "S1", "T1", "sub-S1", "ses-E1", "frames: <b>1</b>", "unreviewed"):
        assert part in value
    assert "(1 of 7 in queue)" in value
    assert 'href="https://example.org/S1"' in value and 'rel="noopener noreferrer"' in value


def test_untrusted_text_is_escaped_and_only_web_links_are_links(start):
    session = start("t2", filter="all")
    header = ScanHeader(session)
    session.open(("E1", "S2"))  # subject "<script>...", link "javascript:alert(1)"
    value = header.info.value
    assert "<script" not in value and "&lt;script&gt;" in value
    assert "href" not in value and "javascript:" not in value.split("S2")[0]
    assert not is_web_link("javascript:alert(1)") and not is_web_link("http:/x")
    assert is_web_link("HTTPS://example.org/a?b=1")
    assert link("x", 'https://e.org/"onmouseover="x') == (
        '<a class="miqa-link" href="https://e.org/&quot;onmouseover=&quot;x" '
        'target="_blank" rel="noopener noreferrer">x</a>'
    )
    assert text(None) == ""


def test_history_with_creators_times_notes_and_locations(start, project):
    session = start("t2", filter="all")
    header = ScanHeader(session)
    assert "no decisions yet" in header.empty.value and not header.shown_rows()
    assert header.empty.layout.display != "none"
    project.record_decision(
        PROJECT,
        "E1",
        "S1",
        "Q?",
        by="t1",
        note="<img src=x onerror=alert(1)>",
        artifacts={"lesions": "present"},
        location=(-10.0, 5.0, 4.0),
    )
    project.record_decision(PROJECT, "E1", "S1", "U", by="t2b")
    session.refresh()
    rows = header.shown_rows()
    assert len(rows) == 2 and header.empty.layout.display == "none"
    newest, oldest = rows[0].text.value, rows[1].text.value
    created = project.decisions(PROJECT).sort_values("id")["created"].astype(str).tolist()
    assert newest == (
        '<b class="miqa-history-decision">U</b> by '
        f'<span class="miqa-history-creator">t2b</span> at {created[1]}'
    )
    assert oldest == (
        '<b class="miqa-history-decision">Q?</b> by '
        f'<span class="miqa-history-creator">t1</span> at {created[0]} artifacts: lesions '
        'note: <span class="miqa-history-note">&lt;img src=x onerror=alert(1)&gt;</span>'
    )
    assert "<img" not in oldest and "&lt;img" in oldest
    assert "miqa-history" in header.history._dom_classes
    assert rows[0].go.layout.display == "none"  # no location stored
    go = rows[1].go
    assert "miqa-history-location" in go._dom_classes and go.description == "go to " + (
        rows[1].target.text
    )
    go.click()
    assert session.crosshair == (-10.0, 5.0, 4.0)
    assert "state: <b>complete</b>" in header.info.value
    # Another scan, with no decision: the rows are hidden, not taken away (the page
    # may still be drawing them).
    kept = list(header.history.children)
    session.open(("E1", "S2"))
    assert not header.shown_rows() and header.empty.layout.display != "none"
    assert list(header.history.children) == kept


def test_claims_are_shown_and_superusers_may_take_over(start):
    ana = start("t2")
    ben_header = ScanHeader(start("t2b", filter="all", resume=False))
    ben_header.session.open(("E1", "S1"))
    until = ana.claim.expires_utc.replace(tzinfo=UTC).astimezone()
    assert ben_header.claim.value == (
        '<span class="miqa-claim-other"><b class="miqa-claim-holder">t2</b> is reviewing '
        f'experiment E1 until <span class="miqa-claim-until">{until:%H:%M}</span>: you can '
        "look at its scans, and decide them when the claim ends.</span>"
    )
    assert ben_header.take_over.layout.display == "none"
    admin = start("admin", filter="all", resume=False)
    header = ScanHeader(admin)
    admin.open(("E1", "S2"))
    assert "miqa-claim-other" in header.claim.value
    assert header.take_over.layout.display == ""
    header.take_over.click()
    assert "You are reviewing experiment E1 until" in header.claim.value
    ana.refresh()
    assert ana.held_by == "admin"
