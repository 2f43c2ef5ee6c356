"""The dashboard in a real browser: what each kind of user sees and can do."""

from __future__ import annotations

import time

import pytest
from widgets_dashboard.dashboard_catalog import (
    ADMIN,
    NASTY_EXPERIMENT,
    NASTY_PROJECT,
    PROJECT,
    TIER1,
    DashboardCatalog,
)

from .review_site import sign_in

#: Opening a page waits for a kernel; give a cold one time on a busy machine.
OPEN_TIMEOUT = 60_000


def open_as(page, server, user: str, wait_for: str = ".miqa-project-0") -> float:
    """Open the dashboard as ``user``; return the seconds until ``wait_for`` showed."""
    started = time.perf_counter()
    sign_in(page, server, user)
    page.wait_for_selector(wait_for, timeout=OPEN_TIMEOUT)
    return time.perf_counter() - started


def open_project(page, n: int = 0) -> None:
    page.click(f".miqa-project-{n}")
    page.wait_for_selector(".miqa-overview-row")


def test_superuser_sees_the_project_list(page, server, shoot) -> None:
    seconds = open_as(page, server, ADMIN)
    print(f"page open to project list: {seconds:.2f} s")
    assert page.locator(".miqa-project-0").inner_text() == PROJECT
    # Gamma and Delta are the review and claims tests'
    assert page.locator(".miqa-project-row").count() == 4
    assert ADMIN in page.locator(".miqa-dashboard-header").inner_text()
    shoot("projects")


def test_overview_rows_filter_and_open(page, server, shoot) -> None:
    open_as(page, server, ADMIN)
    open_project(page)
    rows = page.locator(".miqa-overview-row")
    assert rows.count() == 3
    page.wait_for_function(
        'document.querySelectorAll(\'.miqa-overview-thumbnail img[src^="blob:"], '
        '.miqa-overview-thumbnail[src^="blob:"]\').length === 3'
    )
    shoot("overview")
    page.select_option(".miqa-filter-state select", "unreviewed")
    page.wait_for_function("document.querySelectorAll('.miqa-overview-row').length === 1")
    assert "S3" in rows.first.inner_text()
    page.click(".miqa-overview-open")
    panel = page.locator(".miqa-review-area .miqa-review")
    panel.wait_for()
    page.wait_for_function(
        "document.querySelector('.miqa-review-area .miqa-scan-info')?.innerText.includes('S3')"
    )
    page.wait_for_timeout(500)  # let the planes draw for the screenshot
    shoot("review")


def test_non_superuser_sees_no_administration(page, server, shoot) -> None:
    open_as(page, server, TIER1)
    open_project(page)
    assert page.get_by_text("Review", exact=True).count() == 1
    assert page.locator(".miqa-admin").count() == 0
    assert page.get_by_text("Administration").count() == 0
    shoot("tier1")


def test_names_with_markup_render_as_text(page, server, shoot) -> None:
    open_as(page, server, ADMIN)
    button = page.locator(".miqa-project-1")
    assert button.inner_text().startswith("Beta <script>")
    open_project(page, 1)
    page.get_by_text(NASTY_EXPERIMENT).first.wait_for()
    assert page.get_by_text(NASTY_PROJECT, exact=True).count() >= 1
    injected = page.evaluate(
        "() => [window.__miqa_pwned, "
        "[...document.scripts].filter(s => s.text.includes('__miqa_pwned')).length, "
        "document.querySelectorAll('img[src=\"x\"], b').length]"
    )
    assert injected[0] is None and injected[1] == 0
    # no <b> element came from the scan name '<b>bold</b>' (the header's own <b> aside)
    assert page.locator("b", has_text="bold").count() == 0
    assert page.get_by_text("<b>bold</b>").count() >= 1
    shoot("markup")


def test_export_from_the_admin_panel(page, server, site: DashboardCatalog, shoot) -> None:
    site.export_csv.unlink(missing_ok=True)
    open_as(page, server, ADMIN)
    open_project(page)
    page.get_by_text("Administration", exact=True).click()
    page.locator(".miqa-admin").wait_for()
    page.click(".miqa-export")
    page.wait_for_function(
        "document.querySelector('.miqa-export-result').innerText.includes('wrote')"
    )
    assert site.export_csv.exists()
    assert site.export_csv.read_text().startswith("project_name,")
    shoot("admin-export")


def test_dry_run_preview_before_a_replacing_import(page, server, shoot) -> None:
    open_as(page, server, ADMIN)
    open_project(page)
    page.get_by_text("Administration", exact=True).click()
    run = page.locator(".miqa-import-run")
    assert run.is_disabled()
    page.click(".miqa-import-dry-run")
    page.locator(".miqa-import-report table").wait_for()
    assert "Dry run" in page.locator(".miqa-import-report").inner_text()
    assert run.is_enabled()
    shoot("dry-run")


@pytest.mark.parametrize("delay", [0, 80])
def test_a_name_typed_fast_then_added_is_added_whole(page, server, site, delay) -> None:
    """A superuser types a new user's name and clicks Add at once: the name reaches the
    kernel whole before the click (the field sends its value when it is left)."""
    name = f"quick{delay}-typist"
    open_as(page, server, ADMIN)
    open_project(page)
    page.get_by_text("Administration", exact=True).click()
    field = page.locator(".miqa-new-user input")
    field.click()
    field.type(name, delay=delay)
    page.click(".miqa-add-user")
    page.locator(".miqa-roles, .miqa-role-user").first.wait_for()
    deadline = time.monotonic() + 20
    while name not in set(site.catalog().users()["name"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    names = set(site.catalog().users()["name"])
    assert name in names
    assert not [n for n in names if n != name and name.startswith(n) and n.startswith("quick")]


def test_a_superuser_adds_a_scan_type(page, server, site: DashboardCatalog, shoot) -> None:
    open_as(page, server, ADMIN)
    open_project(page)
    page.get_by_text("Administration", exact=True).click()
    page.locator(".miqa-admin-scan-types").wait_for()
    page.fill(".miqa-scan-type-name input", "FLAIR")
    page.click(".miqa-add-scan-type")
    page.locator(".miqa-scan-types table", has_text="FLAIR").wait_for()
    page.fill(".miqa-scan-type-name input", "flair3d")
    page.locator(".miqa-scan-type-of select").select_option("FLAIR")
    page.click(".miqa-add-scan-type")
    page.locator(".miqa-scan-types table", has_text="flair3d").wait_for()
    # the upload panel offers the new type at once
    page.locator(".miqa-upload-type select").select_option("FLAIR")
    shoot("scan-types")
    assert site.catalog().scan_types().parse("FLAIR3D") == "FLAIR"
    site.catalog().remove_scan_type("FLAIR", by=ADMIN)  # as the other tests expect


def test_strangers_get_the_sign_in_page_and_nothing_else(page, server, shoot) -> None:
    """The dashboard's address asks for a sign-in; an unknown user and a known user's
    wrong password get the same answer, and no page of the catalog."""
    page.goto(server.url + "?user=" + ADMIN, timeout=OPEN_TIMEOUT)
    page.wait_for_selector("input#user")
    answers = []
    for user in ("mallory", ADMIN):
        page.fill("input#user", user)
        page.fill("input#password", "not the password")
        page.click("button[type=submit]")
        answers.append(page.locator("[role=alert]").inner_text())
        assert page.locator(".miqa-project-0").count() == 0
    assert answers == ["Wrong user name or password."] * 2
    assert "Traceback" not in page.content()
    shoot("refusal")


def test_upload_scans_into_an_experiment(page, server, site: DashboardCatalog, tmp_path, shoot):
    """MIQA's "Add Scans": files from the reviewer's computer become scans, with progress."""
    import nibabel as nib
    import numpy as np

    upload = tmp_path / "visit two.nii.gz"
    data = np.random.default_rng(0).integers(0, 400, (12, 14, 10)).astype(np.int16)
    nib.save(nib.Nifti1Image(data, np.diag([2.0, 2.0, 3.0, 1.0])), upload)
    open_as(page, server, ADMIN)
    open_project(page)
    page.get_by_text("Administration", exact=True).click()
    page.locator(".miqa-upload").wait_for()
    page.fill(".miqa-upload-experiment input", "Uploads")
    with page.expect_file_chooser() as chooser:  # the reviewer's file dialog
        page.click(".miqa-upload-files")
    chooser.value.set_files(str(upload))
    page.click(".miqa-upload-run")
    page.wait_for_function(
        "document.querySelector('.miqa-upload-result')?.innerText.includes('Uploaded 1 scan')"
    )
    # the project list shows the new scan (and keeps its buttons while it refreshes)
    page.wait_for_function(
        "[...document.querySelectorAll('.miqa-project-row')]"
        ".some(r => r.innerText.includes('2/4 reviewed'))"
    )
    assert page.locator(".miqa-project-0").inner_text() == PROJECT
    shoot("upload")
    scans = site.catalog().scans(PROJECT)
    uploaded = scans[scans["experiment"] == "Uploads"]
    assert len(uploaded) == 1 and uploaded["n_frames"].iloc[0] == 1
    (location,) = site.catalog().frames(PROJECT).query("experiment == 'Uploads'")["location"]
    assert nib.load(location).shape == (12, 14, 10)


def test_typing_fast_in_the_experiment_filter(page, server, shoot) -> None:
    """Each key refilters the rows; keys faster than the page draws leave no page error
    and the rows of the last filter."""
    open_as(page, server, ADMIN)
    open_project(page)
    box = page.locator(".miqa-filter-experiment input")
    for _ in range(3):
        box.press_sequentially("E1", delay=0)
        box.press("Backspace")
        box.press("2")
        box.press("Backspace")
        box.press("Backspace")
        box.press("Backspace")
    box.press_sequentially("E2", delay=0)
    page.wait_for_function("document.querySelectorAll('.miqa-overview-row').length === 1")
    page.wait_for_timeout(500)
    assert "S3" in page.locator(".miqa-overview-row").first.inner_text()
    shoot("overview-filtered")
