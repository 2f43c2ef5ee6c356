"""The dashboard's staging area: sessions staged by the real import (DICOM series of
real anatomy written by :mod:`dicom_support`, read with ``read_sessions``, staged with
``stage_sessions``) are listed with a preview per scan and XNAT's actions, through the
real widgets on a real catalog file. Who sees what follows the prearchive's rules, and
a crafted page of a user without rights is refused."""

from __future__ import annotations

import html
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from dicom_support import write_series
from nilearn.datasets import load_mni152_template
from pydicom.uid import generate_uid
from support import page_clicks
from widgets_dashboard.dashboard_catalog import (
    ADMIN,
    COLLABORATOR,
    PROJECT,
    TIER1,
    DashboardCatalog,
)

from miqa_nb.catalog import Catalog
from miqa_nb.core.errors import MiqaError, PermissionDenied
from miqa_nb.dashboard.app import Dashboard
from miqa_nb.dashboard.staged import StagingActions, key_of
from miqa_nb.dashboard.staging import StagingPanel
from miqa_nb.ingest import prearchive
from miqa_nb.ingest.dicom import read_sessions
from miqa_nb.ingest.prearchive import Entry, stage_sessions
from miqa_nb.ingest.previews import preview_path

PNG = b"\x89PNG\r\n\x1a\n"
NASTY_DESCRIPTION = "t2 <img src=x onerror=window.__miqa_pwned=3>"


@pytest.fixture(scope="module")
def anatomy() -> nib.Nifti1Image:
    """A block of the MNI152 template at 2 mm, as a scanner stores it (int16)."""
    img = load_mni152_template(resolution=2)
    block = np.asarray(img.dataobj, dtype=np.float64)[30:60, 35:75, 25:55]
    data = np.rint(block / block.max() * 1000).astype(np.int16)
    affine = img.affine.copy()
    affine[:3, 3] = img.affine[:3, :3] @ [30, 35, 25] + img.affine[:3, 3]
    return nib.Nifti1Image(data, affine)


def stage(
    cat: Catalog,
    root: Path,
    anatomy: nib.Nifti1Image,
    session: str,
    *,
    project: str = PROJECT,
    by: str = ADMIN,
    series: tuple[tuple[int, str], ...] = ((2, "t1_mprage_sag"), (3, NASTY_DESCRIPTION)),
    study: str | None = None,
) -> Entry:
    """Write a session's series as DICOM, read and stage it as the import does."""
    folder = root / f"upload-{session}-{len(series)}-{generate_uid()[-6:]}"
    study = study or generate_uid()
    comments = f"Project:{project} Subject:S1 Session:{session}"
    for number, description in series:
        write_series(
            anatomy,
            folder / f"s{number}",
            study_uid=study,
            SeriesNumber=number,
            SeriesDescription=description,
            PatientComments=comments,
        )
    sessions = read_sessions(folder, scan_types=cat.scan_types())
    [entry] = stage_sessions(cat, sessions, by=by)
    shutil.rmtree(folder)
    return entry


def board(dash: DashboardCatalog, user: str) -> Dashboard:
    return Dashboard(dash.catalog(), user, background=False, thumbnail_dir=dash.root / "thumbs")


def row_of(panel: StagingPanel, entry: Entry):  # -> widgets.VBox
    return panel.rows[key_of(entry)]


def buttons(row) -> dict[str, object]:
    """The row's buttons by their action class (``miqa-staging-archive`` -> archive)."""
    found = {}
    bar = row.children[-1]
    for child in bar.children:
        for css in child._dom_classes:
            if css.startswith("miqa-staging-") and css != "miqa-staging-error":
                found[css.removeprefix("miqa-staging-")] = child
    return found


def error_text(row) -> str:
    """The error beside the row's buttons, as the page shows it (its HTML unescaped)."""
    return html.unescape(row.children[-1].children[-1].value)


def test_an_admin_sees_a_staged_session_with_its_scans_and_previews(
    dash: DashboardCatalog, anatomy: nib.Nifti1Image
) -> None:
    cat = dash.catalog()
    entry = stage(cat, dash.root, anatomy, "S1_MR1")
    page = board(dash, ADMIN)
    assert page.staging is not None and page.staging_area is not None
    assert page.staging_area.titles == ("Staging area: 1 session waits to be archived",)
    row = row_of(page.staging, entry)
    info = row.children[0].value
    for text in ("S1_MR1", f"Project <b>{PROJECT}</b>", "Subject <b>S1</b>", "[READY]"):
        assert text in info, info
    assert "Scan date <b>20240517</b>" in info and f"by {ADMIN}" in info
    scans = [c for c in row.children if "miqa-staging-scan" in c._dom_classes]
    assert len(scans) == 2
    texts = [line.children[1].value for line in scans]
    assert texts[0].startswith("Scan <b>2</b> · T1 · t1_mprage_sag · 30 file(s)"), texts[0]
    # the description is the scanner's text: shown, never run
    assert "&lt;img src=x onerror=window.__miqa_pwned=3&gt;" in texts[1]
    assert "<img" not in texts[1]
    for line, scan in zip(scans, entry.scans, strict=True):
        image = line.children[0]
        assert bytes(image.value).startswith(PNG)
        assert bytes(image.value) == preview_path(entry.path, scan["folder"]).read_bytes()
    assert set(buttons(row)) >= {"archive", "delete", "rebuild"}
    page.close()


def test_a_preview_is_drawn_once_and_again_when_the_series_changes(
    dash: DashboardCatalog, anatomy: nib.Nifti1Image
) -> None:
    cat = dash.catalog()
    entry = stage(cat, dash.root, anatomy, "S2_MR1")
    actions = StagingActions(cat, ADMIN)
    scan = entry.scans[0]
    first = actions.preview(entry, scan)
    picture = preview_path(entry.path, scan["folder"])
    stamp = picture.stat().st_mtime_ns
    assert actions.preview(entry, scan) == first and picture.stat().st_mtime_ns == stamp
    dicom = entry.path / "SCANS" / scan["folder"] / "DICOM"
    for extra in sorted(dicom.iterdir())[:10]:  # the series loses its first ten slices
        extra.unlink()
    redrawn = actions.preview(entry, scan)  # its middle slice is another one now
    assert redrawn != first
    assert [p.name for p in picture.parent.iterdir() if p.name.startswith(scan["folder"])] == [
        preview_path(entry.path, scan["folder"]).name
    ]


def test_who_sees_what_unassigned_for_superusers_only(
    dash: DashboardCatalog, anatomy: nib.Nifti1Image
) -> None:
    cat = dash.catalog()
    alpha = stage(cat, dash.root, anatomy, "S3_MR1")
    lost = stage(cat, dash.root, anatomy, "S3_MR2", project="Nowhere")
    assert lost.project == prearchive.UNASSIGNED
    admin = board(dash, ADMIN)
    assert admin.staging is not None
    assert {key_of(e) for e in admin.staging.entries} == {key_of(alpha), key_of(lost)}
    lost_buttons = buttons(row_of(admin.staging, lost))
    assert "archive" not in lost_buttons and {"delete", "rebuild"} <= set(lost_buttons)
    assert "move" in lost_buttons
    reviewer = board(dash, TIER1)
    assert reviewer.staging is not None
    assert [key_of(e) for e in reviewer.staging.entries] == [key_of(alpha)]
    # a collaborator may not import: no staging area at all
    collaborator = board(dash, COLLABORATOR)
    assert collaborator.staging is None and collaborator.staging_area is None
    assert StagingActions(cat, COLLABORATOR).entries() == []
    for page in (admin, reviewer, collaborator):
        page.close()


def test_archive_makes_reviewable_scans_and_the_list_updates(
    dash: DashboardCatalog, anatomy: nib.Nifti1Image
) -> None:
    cat = dash.catalog()
    entry = stage(cat, dash.root, anatomy, "S4_MR1")
    page = board(dash, TIER1)
    assert page.staging is not None and page.projects is not None
    buttons(row_of(page.staging, entry))["archive"].click()
    assert page.staging.entries == [] and not entry.path.exists()
    assert "miqa-staging-empty" in page.staging.list.children[0]._dom_classes
    assert page.staging_area is not None
    assert page.staging_area.titles == ("Staging area: 0 sessions wait to be archived",)
    assert page.status.level == "ok", page.status.message
    assert page.status.message == f"Archived session S4_MR1 into project {PROJECT} (scans 2, 3)."
    scans = cat.scans(PROJECT)
    archived = scans[scans["experiment"] == "S4_MR1"]
    assert sorted(archived["scan"]) == ["2", "3"]
    assert set(archived["state"]) == {"unreviewed"}
    frames = cat.frames(PROJECT)
    for location in frames[frames["experiment"] == "S4_MR1"]["location"]:
        assert Path(location).is_file(), location
    page.close()


def test_a_conflict_offers_append_which_adds_the_new_series(
    dash: DashboardCatalog, anatomy: nib.Nifti1Image
) -> None:
    cat = dash.catalog()
    study = generate_uid()
    first = stage(cat, dash.root, anatomy, "S5_MR1", study=study)
    StagingActions(cat, ADMIN).archive(key_of(first))
    again = stage(
        cat,
        dash.root,
        anatomy,
        "S5_MR1",
        study=study,
        series=((2, "t1_mprage_sag"), (3, "t2_tse_tra"), (4, "flair_tra")),
    )
    assert again.status == prearchive.CONFLICT
    page = board(dash, ADMIN)
    assert page.staging is not None
    row = row_of(page.staging, again)
    assert "[CONFLICT]" in row.children[0].value
    assert "miqa-staging-status-CONFLICT" in row._dom_classes
    offered = buttons(row)
    assert set(offered) == {"append", "delete", "rebuild"}
    offered["append"].click()
    assert page.status.message == f"Archived session S5_MR1 into project {PROJECT} (scans 4)."
    scans = cat.scans(PROJECT)
    assert sorted(scans[scans["experiment"] == "S5_MR1"]["scan"]) == ["2", "3", "4"]
    page.close()


def test_an_error_shows_beside_the_entry_naming_it_and_the_fix(
    dash: DashboardCatalog, anatomy: nib.Nifti1Image
) -> None:
    """The same session staged twice; one is archived by another page while this one
    lists both as READY. Archive on the other refuses, beside the entry, says what to
    do, and the entry is now CONFLICT."""
    cat = dash.catalog()
    study = generate_uid()
    shown = stage(cat, dash.root, anatomy, "S6_MR1", study=study)
    twin = stage(cat, dash.root, anatomy, "S6_MR1", study=study)
    assert (shown.status, twin.status) == (prearchive.READY, prearchive.READY)
    page = board(dash, ADMIN)
    assert page.staging is not None
    StagingActions(cat, ADMIN).archive(key_of(twin))  # another page archives the twin
    buttons(row_of(page.staging, shown))["archive"].click()
    row = row_of(page.staging, shown)  # the list was read again
    message = error_text(row)
    where = f"/prearchive/projects/{PROJECT}/{shown.timestamp}/S6_MR1"
    assert f"Session S6_MR1 ({where}): session 'S6_MR1' is already archived" in message
    assert "press 'Archive (append)' to add the series it lacks, or Delete" in message
    assert "[CONFLICT]" in row.children[0].value
    assert set(buttons(row)) == {"append", "delete", "rebuild"}
    assert page.status.level == "error"
    assert shown.path.is_dir()
    page.close()


def test_rebuild_finds_an_unreadable_file_and_its_fix(
    dash: DashboardCatalog, anatomy: nib.Nifti1Image
) -> None:
    cat = dash.catalog()
    entry = stage(cat, dash.root, anatomy, "S7_MR1")
    junk = entry.path / "SCANS" / entry.scans[0]["folder"] / "DICOM" / "notes.txt"
    junk.write_text("not an image", encoding="utf-8")
    page = board(dash, ADMIN)
    assert page.staging is not None
    buttons(row_of(page.staging, entry))["rebuild"].click()
    row = row_of(page.staging, entry)
    assert "[ERROR]" in row.children[0].value and "notes.txt" in row.children[0].value
    assert set(buttons(row)) == {"delete", "rebuild"}
    assert page.status.message == "Rebuilt session S7_MR1: ERROR."
    junk.unlink()
    buttons(row)["rebuild"].click()
    assert "[READY]" in row_of(page.staging, entry).children[0].value
    page.close()


def test_delete_asks_once_more_then_removes_the_files(
    dash: DashboardCatalog, anatomy: nib.Nifti1Image
) -> None:
    cat = dash.catalog()
    entry = stage(cat, dash.root, anatomy, "S8_MR1")
    page = board(dash, ADMIN)
    assert page.staging is not None
    delete = buttons(row_of(page.staging, entry))["delete"]
    delete.click()
    assert delete.description == "Really delete" and entry.path.is_dir()
    page.staging.refresh()  # a refresh keeps the question
    delete = buttons(row_of(page.staging, entry))["delete"]
    assert delete.description == "Really delete"
    delete.click()
    assert not entry.path.exists() and page.staging.entries == []
    assert page.status.message == "Deleted session S8_MR1 and its files from the staging area."
    page.close()


def test_a_crafted_page_without_rights_is_refused(
    dash: DashboardCatalog, anatomy: nib.Nifti1Image
) -> None:
    """Tina's page lists an Alpha entry; she then loses her role there. The click
    messages her page still sends (rebuild, archive, delete confirmed) are refused, and
    nothing changes; her list, read again, no longer shows the entry."""
    cat = dash.catalog()
    entry = stage(cat, dash.root, anatomy, "S9_MR1")
    page = board(dash, TIER1)
    assert page.staging is not None
    shown = buttons(row_of(page.staging, entry))
    cat.set_role(PROJECT, TIER1, None, by=ADMIN)
    scans_before = cat.scans(PROJECT)
    for action in ("rebuild", "archive", "delete"):
        page.status.clear()
        if action == "delete":
            page_clicks(shown[action])  # the first click only asks again
            assert page.status.message == "" and shown[action].description == "Really delete"
        page_clicks(shown[action])
        assert page.status.level == "error", (action, page.status.message)
        assert page.status.message.startswith(f"Refused: user {TIER1!r} may not"), (
            page.status.message
        )
    assert entry.path.is_dir() and (entry.path / prearchive.RECORD).is_file()
    assert len(cat.scans(PROJECT)) == len(scans_before)
    assert prearchive.get_entry(cat, ADMIN, *key_of(entry)).status == prearchive.READY
    assert page.staging.entries == []
    page.close()


def test_the_actions_refuse_what_the_status_does_not_allow(
    dash: DashboardCatalog, anatomy: nib.Nifti1Image
) -> None:
    cat = dash.catalog()
    lost = stage(cat, dash.root, anatomy, "S10_MR1", project="Nowhere")
    actions = StagingActions(cat, ADMIN)
    with pytest.raises(MiqaError, match=r"is READY: it cannot be given 'Archive'"):
        actions.archive(key_of(lost))
    with pytest.raises(MiqaError, match=r"cannot be given 'Archive \(append\)'"):
        actions.archive(key_of(lost), append=True)
    with pytest.raises(PermissionDenied):
        StagingActions(cat, TIER1).delete(key_of(lost))
    with pytest.raises(PermissionDenied):
        StagingActions(cat, COLLABORATOR).rebuild(key_of(lost))
    assert lost.path.is_dir()


def test_an_unassigned_session_is_moved_to_a_project(
    dash: DashboardCatalog, anatomy: nib.Nifti1Image
) -> None:
    cat = dash.catalog()
    lost = stage(cat, dash.root, anatomy, "S11_MR1", project="Nowhere")
    page = board(dash, ADMIN)
    assert page.staging is not None
    offered = buttons(row_of(page.staging, lost))
    target = offered["move-to"]
    assert PROJECT in target.options
    target.value = PROJECT
    offered["move"].click()
    assert page.status.level == "ok", page.status.message
    [moved] = page.staging.entries
    assert moved.project == PROJECT and moved.status == prearchive.READY
    assert "archive" in buttons(row_of(page.staging, moved))
    page.close()


def test_the_projects_to_import_into_follow_the_standing_rule(dash: DashboardCatalog) -> None:
    """Read at once from projects and roles, they equal a standing asked per project,
    for every user (a creator who is not a superuser among them)."""
    cat = dash.catalog()
    cat.add_user("cleo", by=ADMIN)
    cat.sql("UPDATE projects SET creator = ? WHERE name = ?", ["cleo", PROJECT])
    projects = sorted(str(p) for p in cat.projects()["project"])
    expected_any = False
    for user in cat.users()["name"]:
        expected = [p for p in projects if cat.standing(user, p).can_transfer]
        assert StagingActions(cat, user).import_projects() == expected, user
        expected_any |= user == "cleo" and expected == [PROJECT]
    assert expected_any  # the creator may import into her project only
    assert StagingActions(cat, COLLABORATOR).import_projects() == []
    assert not StagingActions(cat, COLLABORATOR).allowed
