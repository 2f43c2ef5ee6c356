"""The administration's quarantine section: the project's creator sees the experiments
held in quarantine and releases them with the real widgets on a real catalog; the
overview and the project list leave them out until then; a crafted page of anyone
else that reaches the release is refused and releases nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import page_clicks, page_sets
from widgets_dashboard.dashboard_catalog import (
    ADMIN,
    NASTY_EXPERIMENT,
    NASTY_PROJECT,
    PROJECT,
    TIER1,
    TIER2,
    DashboardCatalog,
    build,
)

from miqa_nb.dashboard._status import StatusBar
from miqa_nb.dashboard.admin import AdminPanel
from miqa_nb.dashboard.app import Dashboard
from miqa_nb.dashboard.model import AdminActions


@pytest.fixture
def site(tmp_path: Path) -> DashboardCatalog:
    """Alpha (E1: S1, S2; E2: S3) with E1 in quarantine; tom (tier 2) is its creator."""
    built = build(tmp_path / "site")
    cat = built.catalog()
    cat.quarantine_experiment(PROJECT, "E1", by=ADMIN)
    cat.sql("UPDATE projects SET creator = ? WHERE name = ?", [TIER2, PROJECT])
    return built


def _board(site: DashboardCatalog, user: str) -> Dashboard:
    board = Dashboard(
        site.catalog(), user, background=False, thumbnail_dir=site.root / "thumbnails"
    )
    board.open_project(PROJECT)
    return board


def _overview_experiments(board: Dashboard) -> list[str]:
    assert board.overview is not None
    return sorted(set(board.overview.table["experiment"].astype(str)))


def test_the_creator_releases_with_the_panel(site: DashboardCatalog) -> None:
    board = _board(site, TIER2)
    admin = board.admin
    assert admin is not None
    assert "<td>E1</td>" in admin.quarantined.value  # the table of what is held
    assert admin.quarantine_experiment.options == ("E1",)
    assert _overview_experiments(board) == ["E2"]
    row = board.projects.table.set_index("project").loc[PROJECT]
    assert (row["scans"], row["reviewed"]) == (1, 0)

    admin.release_button.click()
    assert board.status.level == "ok" and board.status.message == "Released E1 into review."
    assert site.catalog().quarantined().empty
    assert "No experiment is in quarantine." in admin.quarantined.value
    assert admin.quarantine_experiment.options == () and admin.release_button.disabled
    assert _overview_experiments(board) == ["E1", "E2"]  # the dashboard refreshed
    row = board.projects.table.set_index("project").loc[PROJECT]
    assert (row["scans"], row["reviewed"]) == (3, 2)
    board.close()


def test_a_reviewer_has_no_panel_and_a_crafted_one_is_refused(site: DashboardCatalog) -> None:
    board = _board(site, TIER1)
    assert board.admin is None  # a reviewer administers nothing
    assert _overview_experiments(board) == ["E2"]
    board.close()
    # a page that reached a panel anyway: its actions are the reviewer's own
    cat = site.catalog()
    status = StatusBar()
    admin = AdminActions(cat, TIER1, PROJECT)
    assert status.run(admin.quarantined) is None  # it cannot even list them
    assert status.message.startswith(
        f"Refused: user {TIER1!r} may not see the quarantined experiments of project"
    )
    creator = AdminPanel(AdminActions(cat, TIER2, PROJECT), status)
    creator.actions = admin  # the crafted page: the creator's widgets, another's actions
    page_sets(creator.release_button, disabled=False)
    page_clicks(creator.release_button)
    assert status.level == "error"
    assert status.message == (
        f"Refused: user {TIER1!r} may not release experiment 'E1' of project {PROJECT!r}: "
        "only the project's creator and superusers may do that"
    )
    assert cat.quarantined()["experiment"].tolist() == ["E1"]


def test_a_crafted_release_of_another_projects_experiment_is_refused(
    site: DashboardCatalog,
) -> None:
    """The creator of Alpha is not an administrator of the other project: a page that
    names its experiment releases nothing there."""
    cat = site.catalog()
    cat.quarantine_experiment(NASTY_PROJECT, NASTY_EXPERIMENT, by=ADMIN)
    status = StatusBar()
    panel = AdminPanel(AdminActions(cat, TIER2, PROJECT), status)
    panel.actions = AdminActions(cat, TIER2, NASTY_PROJECT)
    page_sets(panel.quarantine_experiment, index=0)
    page_clicks(panel.release_button)
    assert status.level == "error" and status.message.startswith(f"Refused: user {TIER2!r}")
    assert cat.quarantined()["experiment"].tolist() == ["E1", NASTY_EXPERIMENT]
    # names are shown as text: the nasty experiment in the superuser's table
    admin_panel = AdminPanel(AdminActions(cat, ADMIN, NASTY_PROJECT), StatusBar())
    assert "<img" not in admin_panel.quarantined.value
    assert "&lt;img src=x" in admin_panel.quarantined.value
