"""The served administration refuses paths outside its folders, in a real browser:
the served kernel has data roots (the catalog's folder) and an export folder."""

from __future__ import annotations

import pytest
from widgets_dashboard.dashboard_catalog import ADMIN, PROJECT, DashboardCatalog

from miqa_nb.catalog import Catalog

from .review_site import sign_in

OPEN_TIMEOUT = 60_000


def _open_admin(page, server) -> None:
    sign_in(page, server, ADMIN)
    page.wait_for_selector(".miqa-project-0", timeout=OPEN_TIMEOUT)
    page.click(".miqa-project-0")
    page.wait_for_selector(".miqa-overview-row")
    page.get_by_text("Administration", exact=True).click()
    page.locator(".miqa-admin").wait_for()


def _type_into(page, css: str, text: str, delay: float) -> None:
    field = page.locator(f".{css} input")
    field.fill("")
    field.click()
    page.keyboard.type(text, delay=delay)


def _refusal(page) -> str:
    status = page.locator(".miqa-dashboard-status.miqa-status-error")
    status.wait_for(timeout=30_000)
    return status.inner_text()


@pytest.mark.parametrize("delay", [0, 80])
def test_served_admin_refuses_paths_outside_its_folders(
    page, server, site: DashboardCatalog, shoot, delay: float
) -> None:
    catalog = Catalog(site.catalog_path, retry_seconds=30)
    projects = catalog.projects()
    before = projects[projects["project"] == PROJECT][["import_path", "export_path"]]
    _open_admin(page, server)
    rules = page.locator(".miqa-path-rules").inner_text()
    assert str(site.root) in rules and str(site.root / "exports") in rules
    _type_into(page, "miqa-import-path", "/etc/passwd", delay)
    page.click(".miqa-save-paths")
    shown = _refusal(page)
    assert "Import path '/etc/passwd' is not inside the data root" in shown
    assert "root:" not in page.locator("body").inner_text()
    shoot(f"admin-path-refused-{delay}")
    _type_into(page, "miqa-import-path", "", delay)
    _type_into(page, "miqa-export-path", "../x.csv", delay)
    page.click(".miqa-save-paths")
    page.wait_for_function(
        "document.querySelector('.miqa-dashboard-status')?.innerText.includes(\"'../x.csv'\")"
    )
    assert "is not inside the export folder" in _refusal(page)
    assert not (site.root / "x.csv").exists()
    projects = catalog.projects()
    after = projects[projects["project"] == PROJECT][["import_path", "export_path"]]
    assert after.equals(before)
