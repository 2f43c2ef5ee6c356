"""The administration panel's paths, driven as a person and as a hostile page would:
typed values and clicks, and widget messages that set any value and click any button
(even a disabled one). The actions refuse; the widgets check nothing."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from support import page_clicks, page_sets
from widgets_dashboard.dashboard_catalog import (
    ADMIN,
    PROJECT,
    SECRET,
    DashboardCatalog,
    build,
    outside_folder,
)

from miqa_nb.catalog import Catalog
from miqa_nb.dashboard._status import StatusBar
from miqa_nb.dashboard.admin import AdminPanel
from miqa_nb.dashboard.app import Dashboard
from miqa_nb.dashboard.model import AdminActions


@pytest.fixture
def site(tmp_path: Path) -> DashboardCatalog:
    return build(tmp_path / "site")


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    return outside_folder(tmp_path)


def _panel(site: DashboardCatalog) -> tuple[Catalog, StatusBar, AdminPanel]:
    cat = site.catalog()
    status = StatusBar()
    return cat, status, AdminPanel(AdminActions(cat, ADMIN, PROJECT), status)


def _paths(cat: Catalog) -> tuple[pd.DataFrame, dict[str, str | None]]:
    return cat.projects()[["project", "import_path", "export_path"]], cat.global_paths()


def _unchanged(cat: Catalog, before: tuple[pd.DataFrame, dict[str, str | None]]) -> None:
    now = _paths(cat)
    pd.testing.assert_frame_equal(now[0], before[0])
    assert now[1] == before[1]


def _files(*folders: Path) -> set[Path]:
    return {p for f in folders if f.exists() for p in f.rglob("*")}


def test_typed_etc_passwd_is_refused_without_showing_it(site: DashboardCatalog) -> None:
    cat, status, panel = _panel(site)
    before = _paths(cat)
    panel.import_path.value = "/etc/passwd"
    panel.save_paths.click()
    assert status.level == "error"
    message = status.message
    assert message.startswith("Refused: Import path '/etc/passwd' is not inside the data root")
    assert str(site.root) in message and "MIQA_NB_DATA_ROOTS" in message
    assert "root:" not in message and "root:" not in status.widget.value
    _unchanged(cat, before)
    panel.dry_run.click()  # the saved path is still the project's own file
    assert status.level == "ok", status.message
    assert "root:" not in panel.import_report.value


def test_typed_exports_outside_the_folder_are_refused_and_write_nothing(
    site: DashboardCatalog, outside: Path
) -> None:
    cat, status, panel = _panel(site)
    exports = site.root / "exports"
    (exports / "link.csv").symlink_to(outside / "secret.csv")
    before, files = _paths(cat), _files(site.root, outside)
    for value in ("../x.csv", str(outside / "x.csv"), "link.csv", str(exports / ".." / "x.csv")):
        panel.export_path.value = value
        panel.save_paths.click()
        assert status.level == "error", value
        assert f"Export path {value!r} is not inside the export folder {exports}" in status.message
    _unchanged(cat, before)
    panel.export.click()  # still the saved file, in the export folder
    assert status.level == "ok", status.message
    assert _files(site.root, outside) - files == {site.export_csv} - files
    assert (outside / "secret.csv").read_text(encoding="utf-8") == SECRET + "\n"
    assert not (site.root / "x.csv").exists() and not (outside / "x.csv").exists()


def test_typed_paths_inside_the_folders_work_end_to_end(site: DashboardCatalog) -> None:
    cat, status, panel = _panel(site)
    assert str(site.root / "exports") in panel.path_rules.value
    panel.import_path.value = str(site.import_csv)
    panel.export_path.value = "alpha.json"
    panel.save_paths.click()
    assert status.level == "ok", status.message
    assert panel.export_path.value == str(site.root / "exports" / "alpha.json")
    panel.dry_run.click()
    panel.run_import.click()
    assert status.level == "ok", status.message
    assert cat.decisions(PROJECT).empty  # replaced by the file, which has none
    panel.export.click()
    assert (site.root / "exports" / "alpha.json").read_text().startswith("{")
    panel.global_export_path.value = "all.csv"
    panel.global_import_path.value = str(site.import_csv)
    [save] = [c for c in panel.global_box.children if "miqa-save-global-paths" in c._dom_classes]
    save.click()
    panel.global_export.click()
    assert status.level == "ok", status.message
    assert (site.root / "exports" / "all.csv").is_file()


def test_crafted_messages_are_refused_by_the_actions(site: DashboardCatalog, outside: Path) -> None:
    """A page that sends its own messages sets any value and clicks disabled buttons;
    the widgets let it (they check nothing), and the actions refuse."""
    cat, status, panel = _panel(site)
    before, files = _paths(cat), _files(site.root, outside)
    page_sets(panel.import_path, value="/etc/passwd")
    page_sets(panel.export_path, value="../../x.csv")
    assert panel.import_path.value == "/etc/passwd"  # the widget took it
    page_clicks(panel.save_paths)
    assert status.level == "error" and "Refused: Import path '/etc/passwd'" in status.message
    page_sets(panel.import_path, value="")
    page_clicks(panel.save_paths)
    assert status.level == "error" and "Refused: Export path '../../x.csv'" in status.message
    assert panel.global_box is not None
    page_sets(panel.global_import_path, value=str(outside / "secret.csv"))
    page_sets(panel.global_export_path, value=str(outside / "all.csv"))
    [save] = [c for c in panel.global_box.children if "miqa-save-global-paths" in c._dom_classes]
    page_clicks(save)
    assert status.level == "error" and "Refused: Import path" in status.message
    _unchanged(cat, before)
    # paths stored by other means (the command line, an older version): the disabled
    # global import button, enabled and clicked by the page, still reads nothing
    cat.set_global_paths(
        by=ADMIN, import_path=str(outside / "secret.csv"), export_path=str(outside / "all.csv")
    )
    decisions = cat.decisions(PROJECT)
    assert panel.global_import.disabled
    page_sets(panel.global_import, disabled=False)
    page_clicks(panel.global_import)
    assert status.level == "error"
    assert "Refused: The global import path" in status.message and "root:" not in status.message
    assert "secret-marker" not in panel.global_report.value
    page_clicks(panel.global_export)
    assert status.level == "error" and "Refused: The global export path" in status.message
    pd.testing.assert_frame_equal(cat.decisions(PROJECT), decisions)
    assert _files(site.root, outside) == files


def test_the_served_dashboard_panel_says_where_paths_may_point(site: DashboardCatalog) -> None:
    board = Dashboard(site.catalog(), ADMIN, background=False, thumbnail_dir=site.root / "t")
    board.open_project(PROJECT, overview=False)
    assert board.admin is not None
    rules = board.admin.path_rules.value
    assert f"the data root {site.root}" in rules and str(site.root / "exports") in rules
    board.close()
