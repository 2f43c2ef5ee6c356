"""The staging area in a real browser: a session staged by the real import (DICOM of
the MNI152 template, read and staged as the import service does) into project
``Beta <script>`` shows to the admin with its preview; Archive makes it a scan the
admin opens for review. A reviewer of another project (``rex``, tier 1 in Gamma) has a
staging area too, without that session."""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from dicom_support import write_series
from nilearn.datasets import load_mni152_template
from pydicom.uid import generate_uid
from widgets_dashboard.dashboard_catalog import ADMIN, NASTY_PROJECT, DashboardCatalog

from miqa_nb.catalog import Catalog
from miqa_nb.ingest import prearchive
from miqa_nb.ingest.dicom import read_sessions
from miqa_nb.ingest.prearchive import Entry, stage_sessions

from .review_site import REVIEW_PROJECT, sign_in

OPEN_TIMEOUT = 60_000
#: A reviewer of Gamma only.
OTHER_REVIEWER = "rex"


@pytest.fixture(scope="module")
def catalog(site: DashboardCatalog) -> Catalog:
    cat = Catalog(site.catalog_path, retry_seconds=30)
    if OTHER_REVIEWER not in set(cat.users()["name"]):
        cat.add_user(OTHER_REVIEWER, by=ADMIN)
        cat.set_role(REVIEW_PROJECT, OTHER_REVIEWER, "tier1", by=ADMIN)
    return cat


def stage(cat: Catalog, root: Path, session: str) -> Entry:
    """One T1 series of a block of the template, staged into Beta as the import does."""
    img = load_mni152_template(resolution=2)
    block = np.asarray(img.dataobj, dtype=np.float64)[25:65, 30:80, 25:55]
    affine = img.affine.copy()
    affine[:3, 3] = img.affine[:3, :3] @ [25, 30, 25] + img.affine[:3, 3]
    data = np.rint(block / block.max() * 1000).astype(np.int16)
    folder = root / f"staging-{session}"
    write_series(
        nib.Nifti1Image(data, affine),
        folder,
        study_uid=generate_uid(),
        SeriesNumber=2,
        SeriesDescription="t1_mprage <i>sag</i>",
    )
    sessions = read_sessions(
        folder, project=NASTY_PROJECT, subject="S1", session=session, scan_types=cat.scan_types()
    )
    [entry] = stage_sessions(cat, sessions, by=ADMIN)
    shutil.rmtree(folder)
    return entry


def open_staging(page, server, user: str) -> None:
    sign_in(page, server, user)
    area = page.locator(".miqa-staging-area")
    area.wait_for(timeout=OPEN_TIMEOUT)
    page.get_by_text("Staging area:").click()
    page.locator(".miqa-staging").wait_for()


def test_admin_archives_a_staged_session_then_reviews_it(
    page, server, site: DashboardCatalog, catalog: Catalog, shoot
) -> None:
    entry = stage(catalog, site.root, "STG1")
    open_staging(page, server, ADMIN)
    row = page.locator(".miqa-staging-entry", has_text="STG1")
    row.wait_for()
    assert "READY" in row.inner_text()
    assert "t1_mprage <i>sag</i>" in row.inner_text()  # the scanner's text, shown as text
    assert row.locator("i").count() == 0
    thumbnail = row.locator("img.miqa-staging-thumbnail")
    thumbnail.wait_for()
    page.wait_for_function(
        "(el) => el.src.startsWith('blob:') && el.complete && el.naturalWidth > 0",
        arg=thumbnail.element_handle(),
        timeout=OPEN_TIMEOUT,
    )
    shoot("staged")
    row.locator(".miqa-staging-archive").click()
    status = page.locator(".miqa-dashboard-status")
    page.wait_for_function(
        "document.querySelector('.miqa-dashboard-status')?.innerText.includes('Archived session')",
        timeout=OPEN_TIMEOUT,
    )
    assert status.inner_text() == f"Archived session STG1 into project {NASTY_PROJECT} (scans 2)."
    page.locator(".miqa-staging-entry", has_text="STG1").wait_for(state="detached")
    assert not entry.path.exists()
    # the archived scan is reviewable: open Beta, then the scan from the overview
    page.click(".miqa-project-1")
    scan_row = page.locator(".miqa-overview-row", has_text="STG1")
    scan_row.wait_for(timeout=OPEN_TIMEOUT)
    scan_row.locator(".miqa-overview-open").click()
    page.locator(".miqa-review-area .miqa-review").wait_for(timeout=OPEN_TIMEOUT)
    page.wait_for_function(
        "document.querySelector('.miqa-review-area .miqa-scan-info')?.innerText.includes('STG1')",
        timeout=OPEN_TIMEOUT,
    )
    shoot("reviewing")


def test_a_reviewer_of_another_project_does_not_see_the_session(
    page, server, site: DashboardCatalog, catalog: Catalog
) -> None:
    entry = stage(catalog, site.root, "STG2")
    try:
        open_staging(page, server, OTHER_REVIEWER)
        page.locator(".miqa-staging-empty").wait_for()
        assert "STG2" not in page.locator(".miqa-dashboard").inner_text()
        assert page.locator(".miqa-staging-entry").count() == 0
    finally:
        prearchive.delete_entry(catalog, ADMIN, *(entry.project, entry.timestamp, entry.folder))
