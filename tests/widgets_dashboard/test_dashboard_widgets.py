"""The dashboard's panels, driven without a browser: clicks, values, state."""

from __future__ import annotations

import html
from datetime import UTC
from pathlib import Path

import ipywidgets as widgets
import pandas as pd
import pytest
from widgets_dashboard.dashboard_catalog import (
    ADMIN,
    COLLABORATOR,
    NASTY_EXPERIMENT,
    NASTY_PROJECT,
    NASTY_SCAN,
    PROJECT,
    TIER1,
    TIER2,
    DashboardCatalog,
    tiny_volume,
)

from miqa_nb.catalog import Catalog
from miqa_nb.core.errors import MiqaError
from miqa_nb.core.vocabulary import Decision
from miqa_nb.dashboard._status import StatusBar
from miqa_nb.dashboard.admin import AdminPanel
from miqa_nb.dashboard.app import REVIEW_TAB, Dashboard, review_placeholder, review_view
from miqa_nb.dashboard.model import AdminActions
from miqa_nb.dashboard.overview import Overview
from miqa_nb.dashboard.projects import ProjectList
from miqa_nb.dashboard.upload import UploadPanel, uploaded_files
from miqa_nb.dashboard.uploads import UploadFile, UploadStager
from miqa_nb.review.session import ReviewSession
from miqa_nb.widgets.panel import ReviewPanel


def _classes(widget: widgets.Widget) -> list[str]:
    return list(widget._dom_classes)


def _find(root: widgets.Widget, css: str) -> list[widgets.Widget]:
    """Every widget under ``root`` carrying the CSS class ``css``."""
    found = [root] if css in getattr(root, "_dom_classes", ()) else []
    for child in getattr(root, "children", ()):
        found.extend(_find(child, css))
    return found


def _dashboard(dash: DashboardCatalog, user: str, **kw) -> Dashboard:
    return Dashboard(dash.catalog(), user, background=False, thumbnail_dir=dash.root / "t", **kw)


# ---------------------------------------------------------------------- status


def test_status_shows_miqa_errors_and_hides_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    bar = StatusBar()
    bar.run(lambda: (_ for _ in ()).throw(MiqaError("no <b>such</b> thing")))
    assert bar.level == "error"
    assert "miqa-status-error" in _classes(bar.widget)
    assert "no &lt;b&gt;such&lt;/b&gt; thing" in bar.widget.value
    assert bar.run(lambda: 1 / 0) is None
    assert "ZeroDivisionError" in bar.message and "server log" in bar.message
    assert "Traceback" not in bar.widget.value
    logged = [r for r in caplog.records if r.exc_info]
    assert logged and logged[-1].exc_info[0] is ZeroDivisionError
    caplog.clear()  # the error above was on purpose
    bar.ok("done")
    assert "miqa-status-error" not in _classes(bar.widget)


# -------------------------------------------------------------------- projects


def test_project_list_shows_progress_and_opens(dash: DashboardCatalog) -> None:
    opened: list[str] = []
    panel = ProjectList(dash.catalog(), ADMIN, opened.append)
    assert [b.description for b in panel.buttons] == [PROJECT, NASTY_PROJECT]
    assert "miqa-project-0" in _classes(panel.buttons[0])
    bar = _find(panel.widget, "miqa-project-progress")[0]
    assert (bar.value, bar.max) == (2, 3)
    panel.buttons[1].click()
    assert opened == [NASTY_PROJECT]


def test_project_list_for_a_user_without_projects(dash: DashboardCatalog) -> None:
    cat = dash.catalog()
    cat.add_user("newbie", by=ADMIN)
    panel = ProjectList(cat, "newbie", lambda p: None)
    assert panel.buttons == []
    assert _find(panel.widget, "miqa-projects-empty")


# -------------------------------------------------------------------- overview


def test_overview_rows_filters_and_open(dash: DashboardCatalog) -> None:
    opened: list[tuple[str, str, str]] = []
    view = Overview(
        dash.catalog(),
        PROJECT,
        lambda *a: opened.append(a),
        thumbnail_dir=dash.root / "thumbs",
        background=False,
    )
    rows = _find(view.widget, "miqa-overview-row")
    assert len(rows) == 3
    assert all(bytes(r.children[0].value).startswith(b"\x89PNG") for r in rows)
    view.state.value = "unreviewed"
    assert list(view.shown["scan"]) == ["S3"]
    view.state.value = "all"
    view.scan_type.value = "T2"
    assert list(view.shown["scan"]) == ["S2"]
    view.scan_type.value = "all"
    view.experiment.value = "e2"
    assert list(view.shown["scan"]) == ["S3"]
    _find(view.widget, "miqa-overview-open")[0].click()
    assert opened == [(PROJECT, "E2", "S3")]


def test_overview_pages_and_survives_a_broken_image(
    dash: DashboardCatalog, caplog: pytest.LogCaptureFixture
) -> None:
    cat = dash.catalog()
    broken = cat.frames(PROJECT)["location"].iloc[0]
    Path(broken).write_bytes(b"not an image")
    view = Overview(
        cat, PROJECT, lambda *a: None, thumbnail_dir=dash.root / "t", page_size=2, background=False
    )
    rows = _find(view.widget, "miqa-overview-row")
    assert len(rows) == 2 and bytes(rows[0].children[0].value) == b""
    assert "showing the first 2" in view.count.value
    view.more.click()
    assert len(_find(view.widget, "miqa-overview-row")) == 3
    assert any("no thumbnail" in r.getMessage() for r in caplog.records)
    caplog.clear()


# ----------------------------------------------------------------------- admin


def _admin(dash: DashboardCatalog, **callbacks) -> tuple[Catalog, StatusBar, AdminPanel]:
    """The catalog, a status bar and the admin panel of the superuser on PROJECT."""
    cat = dash.catalog()
    status = StatusBar()
    return cat, status, AdminPanel(AdminActions(cat, ADMIN, PROJECT), status, **callbacks)


def test_admin_dry_run_then_replace_import(dash: DashboardCatalog) -> None:
    changed: list[int] = []
    cat, status, panel = _admin(dash, on_change=lambda: changed.append(1))
    assert panel.run_import.disabled
    panel.run_import.click()
    assert status.level == "info" and "Preview" in status.message
    panel.dry_run.click()
    assert status.level == "ok", status.message
    assert "Dry run" in panel.import_report.value and "<table" in panel.import_report.value
    assert not panel.run_import.disabled
    panel.mode.value = "append"  # a new mode needs a new preview
    assert panel.run_import.disabled
    panel.mode.value = "replace"
    panel.dry_run.click()
    panel.run_import.click()
    assert status.level == "ok", status.message
    assert changed == [1]
    assert panel.run_import.disabled
    assert cat.decisions(PROJECT).empty  # the import file has no decisions: replaced


def test_admin_export_and_paths(dash: DashboardCatalog) -> None:
    _, status, panel = _admin(dash)
    assert panel.export_path.value == str(dash.export_csv)
    panel.export.click()
    assert dash.export_csv.exists() and status.level == "ok"
    panel.export_path.value = "relative.csv"  # taken from the export folder
    panel.save_paths.click()
    assert status.level == "ok", status.message
    assert panel.export_path.value == str(dash.root / "exports" / "relative.csv")
    new = dash.root / "exports" / "other.csv"
    panel.export_path.value = str(new)
    panel.save_paths.click()
    assert status.level == "ok"
    panel.export.click()
    assert new.exists()


def test_admin_exports_are_spreadsheet_safe_unless_unticked(dash: DashboardCatalog) -> None:
    """A note a spreadsheet would run is written with a ' in front by both export
    buttons by default; unticked, the exports are MIQA's exact form."""
    cat, status, panel = _admin(dash)
    formula = '=HYPERLINK("http://evil.example","open")'
    cat.record_decision(PROJECT, "E2", "S3", "UN", by=ADMIN, note=formula)
    global_csv = dash.root / "exports" / "all.csv"
    panel.global_export_path.value = str(global_csv)
    _find(panel.widget, "miqa-save-global-paths")[0].click()
    (safe,) = _find(panel.widget, "miqa-export-safe")
    assert safe.value is True

    def notes(path: Path) -> list[str]:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        return frame.loc[frame["scan_name"] == "S3", "last_decision_note"].tolist()

    panel.export.click()
    panel.global_export.click()
    assert status.level == "ok", status.message
    assert notes(dash.export_csv) == notes(global_csv) == ["'" + formula]
    safe.value = False
    panel.export.click()
    panel.global_export.click()
    assert notes(dash.export_csv) == notes(global_csv) == [formula]


def test_admin_global_and_roles(dash: DashboardCatalog) -> None:
    cat, status, panel = _admin(dash)
    assert panel.global_box is not None
    target = dash.root / "exports" / "all.json"
    panel.global_export_path.value = str(target)
    panel.global_import_path.value = str(dash.import_csv)
    _find(panel.widget, "miqa-save-global-paths")[0].click()
    panel.global_export.click()
    assert target.exists(), status.message
    assert panel.global_import.disabled
    panel.global_dry_run.click()
    assert not panel.global_import.disabled and status.level == "ok", status.message
    panel.new_user.value = "newbie"
    _find(panel.widget, "miqa-add-user")[0].click()
    assert "newbie" in set(cat.users()["name"])
    panel.role_user.value = "newbie"
    panel.role.value = "tier2"
    _find(panel.widget, "miqa-set-role")[0].click()
    assert status.level == "ok", status.message
    roles = cat.roles(PROJECT)
    assert roles[roles["user"] == "newbie"]["role"].tolist() == ["tier2"]
    assert "newbie" in panel.roles.value


def test_admin_scan_types(dash: DashboardCatalog) -> None:
    offered: list[int] = []
    cat, status, panel = _admin(dash, on_scan_types=lambda: offered.append(1))
    assert "MIQA's scan types only" in panel.scan_types.value
    assert panel.scan_type_of.value == ""  # a new type
    panel.scan_type_name.value = "<b>FLAIR</b>"
    _find(panel.widget, "miqa-add-scan-type")[0].click()
    assert status.level == "ok" and status.message == "<b>FLAIR</b> is a scan type."
    assert "<b>" not in status.widget.value  # shown as text
    assert html.escape("<b>FLAIR</b>") in panel.scan_types.value
    assert "<b>FLAIR</b>" not in panel.scan_types.value
    assert panel.scan_type_of.options[-1] == ("<b>FLAIR</b>", "<b>FLAIR</b>")
    panel.scan_type_name.value = "3D-T1"
    panel.scan_type_of.value = "T1"
    _find(panel.widget, "miqa-add-scan-type")[0].click()
    assert status.message == "3D-T1 means T1."
    assert cat.scan_types().parse("3d-t1") == "T1"
    panel.scan_type_name.value = "bold"  # MIQA's name of FMRI
    _find(panel.widget, "miqa-add-scan-type")[0].click()
    assert status.level == "error" and "'bold' is already a name of 'FMRI'" in status.message
    assert panel.scan_type_name.value == "bold"  # kept, to be corrected
    panel.scan_type_name.value = "3d-t1"
    _find(panel.widget, "miqa-remove-scan-type")[0].click()
    assert status.level == "ok" and status.message == "Removed 3D-T1."
    assert "3D-T1" not in panel.scan_types.value
    assert offered == [1, 1, 1]  # after each change, not after the refusal


def test_admin_refusal_is_readable(dash: DashboardCatalog) -> None:
    cat = dash.catalog()
    # make tina the creator (no superuser), so the panel is built for a non-superuser
    cat.sql("UPDATE projects SET creator = ? WHERE name = ?", [TIER1, PROJECT])
    status = StatusBar()
    panel = AdminPanel(AdminActions(cat, TIER1, PROJECT), status)
    assert panel.global_box is None  # global transfer: superusers only
    assert not hasattr(panel, "new_user") and not hasattr(panel, "scan_types")
    cat.sql("UPDATE projects SET creator = ? WHERE name = ?", [ADMIN, PROJECT])
    panel.export.click()  # no longer the creator: refused, in words
    assert status.level == "error"
    assert status.message.startswith("Refused:") and "creator" in status.message


def test_admin_escapes_names_in_tables(dash: DashboardCatalog) -> None:
    panel = AdminPanel(AdminActions(dash.catalog(), ADMIN, NASTY_PROJECT))
    assert "<script>" not in panel.widget.children[0].value
    assert html.escape("<script>") in panel.widget.children[0].value


# ---------------------------------------------------------------------- upload


def test_upload_panel_imports_files(dash: DashboardCatalog, tmp_path: Path) -> None:
    cat = dash.catalog()
    tiny_volume(tmp_path / "src" / "new scan.nii.gz", 5)
    status = StatusBar()
    changed: list[int] = []
    panel = UploadPanel(
        UploadStager(cat, ADMIN, tmp_path / "uploads"),
        PROJECT,
        status,
        on_change=lambda: changed.append(1),
    )
    panel.experiment.value = "E9"
    panel.upload(
        [UploadFile("new scan.nii.gz", (tmp_path / "src" / "new scan.nii.gz").read_bytes())]
    )
    assert status.level == "ok", status.message
    assert panel.progress.value == panel.progress.max
    scans = cat.scans(PROJECT)
    assert ("E9", "new scan") in set(zip(scans["experiment"], scans["scan"], strict=True))
    assert changed == [1] and "E9" in panel.experiment.options


def test_upload_panel_refuses_bad_names(dash: DashboardCatalog, tmp_path: Path) -> None:
    status = StatusBar()
    panel = UploadPanel(UploadStager(dash.catalog(), ADMIN, tmp_path / "up"), PROJECT, status)
    panel.experiment.value = "E1"
    panel.run.click()  # nothing chosen
    assert status.level == "error" and "at least one file" in status.message
    status.run(lambda: panel.upload([UploadFile("../evil.nii.gz", b"x")]))
    assert status.level == "error" and "folder" in status.message
    assert not (tmp_path / "evil.nii.gz").exists()


def test_uploaded_files_reads_filewidget_values() -> None:
    value = ({"name": "a.nii", "type": "", "size": 2, "content": memoryview(b"ab")},)
    assert uploaded_files(value) == [UploadFile("a.nii", b"ab")]


# ------------------------------------------------------------------- dashboard


def test_dashboard_superuser_opens_project_scan_and_admin(dash: DashboardCatalog) -> None:
    board = _dashboard(dash, ADMIN)
    board.projects.buttons[0].click()
    assert board.project == PROJECT
    assert board.tabs.titles == ("Scans", "Review", "Administration")
    assert _find(board.widget, "miqa-admin")
    _find(board.widget, "miqa-overview-open")[1].click()
    assert board.tabs.selected_index == 1
    assert isinstance(board.review, ReviewPanel)
    session = board.review.session
    assert session.key == ("E1", "S2")
    _find(board.widget, "miqa-overview-open")[2].click()  # same project: same session
    assert board.review.session is session and session.key == ("E2", "S3")
    board.close()
    assert session._closed  # closing the dashboard gives up the review claims


@pytest.mark.parametrize("user", [TIER1, COLLABORATOR])
def test_dashboard_hides_admin_from_others(dash: DashboardCatalog, user: str) -> None:
    board = _dashboard(dash, user)
    board.projects.buttons[0].click()
    assert board.tabs.titles == ("Scans", "Review")
    assert not _find(board.widget, "miqa-admin")


def test_dashboard_review_factory_hook(dash: DashboardCatalog) -> None:
    calls: list[tuple[str, ...]] = []

    def factory(catalog, user, project, experiment, scan):
        calls.append((user, project, experiment, scan))
        return widgets.Label("panel")

    board = _dashboard(dash, TIER1, review_factory=factory)
    board.open_project(PROJECT)
    board.open_review(PROJECT, "E1", "S1")
    assert calls == [(TIER1, PROJECT, "E1", "S1")]
    assert board.review_box.children[0].value == "panel"


def test_review_placeholder_escapes() -> None:
    view = review_placeholder(NASTY_PROJECT, NASTY_EXPERIMENT, NASTY_SCAN)
    assert "miqa-review-slot" in _classes(view)
    assert "<script>" not in view.value and "<b>bold</b>" not in view.value
    assert html.escape(NASTY_SCAN) in view.value


def test_review_view_is_the_review_panel_on_the_scan(dash: DashboardCatalog) -> None:
    view = review_view(dash.catalog(), TIER1, PROJECT, "E2", "S3")
    try:
        assert isinstance(view, ReviewPanel)
        assert view.session.key == ("E2", "S3") and view.session.user == TIER1
    finally:
        view.close()
        view.session.close()


def test_dashboard_refuses_unknown_user_and_unreadable_project(dash: DashboardCatalog) -> None:
    env = {"MIQA_NB_CATALOG": str(dash.catalog_path)}
    board = Dashboard.from_environment(env, "token=x&user=mallory")
    refusal = _find(board.widget, "miqa-refusal")
    assert refusal and "mallory" in refusal[0].value and "not in this catalog" in refusal[0].value
    board = Dashboard.from_environment(env, "token=x&user=" + TIER1)
    assert board.user == TIER1 and not _find(board.widget, "miqa-refusal")
    cat = dash.catalog()
    cat.create_project("Hidden", by=ADMIN)
    assert "Hidden" not in [b.description for b in board.projects.buttons]
    board.status.run(lambda: board.open_project("Hidden"))
    assert board.status.level == "error" and "Refused" in board.status.message


def test_dashboard_refresh_after_upload(dash: DashboardCatalog, tmp_path: Path) -> None:
    board = _dashboard(dash, ADMIN, upload_dir=tmp_path / "uploads")
    board.open_project(PROJECT)
    tiny_volume(tmp_path / "x.nii.gz", 3)
    board.upload.experiment.value = "E1"
    board.upload.upload([UploadFile("S9.nii.gz", (tmp_path / "x.nii.gz").read_bytes())])
    assert board.status.level == "ok", board.status.message
    shown = [b.description for b in _find(board.widget, "miqa-overview-open")]
    assert sorted(shown) == ["S1", "S2", "S3", "S9"]  # the overview was read again
    assert board.projects.table.set_index("project").loc[PROJECT, "scans"] == 4


def _linked_scan(env: dict[str, str], user: str) -> tuple[str, str] | None:
    """The scan the review shows after opening ``user``'s link to PROJECT."""
    board = Dashboard.from_environment(env, f"token=x&user={user}&project={PROJECT}")
    try:
        assert board.project == PROJECT and board.tabs.selected_index == REVIEW_TAB
        session = board.review.session
        assert session.user == user
        return session.key
    finally:
        board.close()


def test_a_project_link_opens_its_review_where_the_user_left_off(dash: DashboardCatalog) -> None:
    env = {"MIQA_NB_CATALOG": str(dash.catalog_path)}
    # E1/S1 is complete, E1/S2 needs tier-2 review, E2/S3 is unreviewed. Nowhere left
    # off yet: the first scan the reviewer can decide (a tier-2 reviewer: E1/S2)
    first = _linked_scan(env, TIER2)
    assert first == ("E1", "S2")
    elsewhere = ReviewSession(dash.catalog(), PROJECT, TIER2, filter="all", background=False)
    try:
        assert elsewhere.open(("E2", "S3"))  # the reviewer moves on, then leaves
    finally:
        elsewhere.close()
    assert _linked_scan(env, TIER2) == ("E2", "S3")
    # a tier-1 reviewer decides only unreviewed scans: E2/S3, past the two others
    assert _linked_scan(env, TIER1) == ("E2", "S3")
    board = Dashboard.from_environment(env, f"token=x&user={TIER1}&project=Nope")
    try:
        assert board.project is None and board.status.level == "error"
    finally:
        board.close()


def test_a_project_link_builds_the_overview_only_when_shown(dash: DashboardCatalog) -> None:
    env = {"MIQA_NB_CATALOG": str(dash.catalog_path)}
    board = Dashboard.from_environment(env, f"token=x&user={ADMIN}&project={PROJECT}")
    try:
        assert board.overview is None
        board.tabs.selected_index = 0
        assert board.overview is not None and _find(board.widget, "miqa-overview-row")
    finally:
        board.close()


def _inline_review(catalog, user, project, experiment, scan):
    """The dashboard's review panel over a session without background threads."""
    session = ReviewSession(catalog, project, user, filter="all", background=False)
    if experiment is not None and scan is not None:
        session.open((experiment, scan))
    return ReviewPanel(session, auto_refresh=None)


def _progress_label(board: Dashboard, project: str) -> str:
    for row in _find(board.projects.widget, "miqa-project-row"):
        if row.children[0].description == project:
            return row.children[2].value
    raise AssertionError(f"no row for {project}")


def test_project_progress_and_status_follow_the_review(dash: DashboardCatalog) -> None:
    """Each decision, scan change and colleague's decision shows in the project list
    and the status line without reloading anything."""
    cat = dash.catalog()
    cat.set_role(PROJECT, TIER2, "tier2", by=ADMIN)
    board = _dashboard(dash, TIER2, review_factory=_inline_review)
    board.open_project(PROJECT)
    assert _progress_label(board, PROJECT).startswith("2/3 reviewed, 1 complete")
    board.open_review(PROJECT, "E1", "S2")
    assert board.status.message == f"Reviewing scan S2 (E1) of project {PROJECT}."
    panel = board.review
    panel.decision.buttons[Decision.USABLE].click()
    panel.decision.submit.click()
    assert _progress_label(board, PROJECT).startswith("2/3 reviewed, 2 complete")
    assert board.status.message == f"Reviewing scan S3 (E2) of project {PROJECT}."
    cat.record_decision(PROJECT, "E2", "S3", "U", by=ADMIN)  # a colleague decides
    panel.session.refresh()  # what the panel's auto-refresh does every few seconds
    assert _progress_label(board, PROJECT).startswith("3/3 reviewed, 3 complete")
    board.close()


def test_the_overview_shows_who_holds_which_experiment(dash: DashboardCatalog) -> None:
    cat = dash.catalog()
    claim = cat.claim(PROJECT, "E1", by=TIER1)
    until = claim.expires_utc.replace(tzinfo=UTC).astimezone()
    status = StatusBar()
    overview = Overview(cat, PROJECT, lambda *_: None, status=status, background=False)
    assert overview.holds_line.value == (f"Being reviewed now: E1 by {TIER1} until {until:%H:%M}.")
    held = {_row_scan(row): _hold_cell(row) for row in overview.row_widgets}
    holder = f"{TIER1} until {until:%H:%M}"
    assert held == {"S1": holder, "S2": holder, "S3": ""}
    cat.release(PROJECT, "E1", by=TIER1)
    overview.refresh()
    assert overview.holds_line.value == "Nobody is reviewing an experiment of this project now."
    assert all(_hold_cell(row) == "" for row in overview.row_widgets)
    overview.close()


def _row_scan(row: widgets.HBox) -> str:
    return _find(row, "miqa-overview-open")[0].description


def _hold_cell(row: widgets.HBox) -> str:
    return _find(row, "miqa-overview-hold")[0].value
