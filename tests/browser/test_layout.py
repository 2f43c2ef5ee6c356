"""The review page's layout in a real browser at 1440 x 900: the planes use the width,
Submit is visible without scrolling; one plane full size; window boxes; screenshot.

Works on its own project ``Zeta`` (added here, read by nobody else): two head-like
scans of 128 x 150 x 120 voxels, the size of a real structural scan at 1.2 mm, so the
pictures are sized as a reviewer's are. Only looks: nothing is submitted. The module runs after ``test_dashboard`` (file
order), whose project list counts the projects before Zeta is added.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
from widgets_dashboard.dashboard_catalog import ADMIN, DashboardCatalog

from .review_site import import_project, sign_in

PROJECT = "Zeta"
SCANS = [("D1", "L1"), ("D1", "L2")]
SHAPE = (128, 150, 120)
VIEWPORT = {"width": 1440, "height": 900}
OPEN_TIMEOUT = 60_000
REVIEW = ".miqa-review-area .miqa-review"


@pytest.fixture(scope="module")
def delta(site: DashboardCatalog) -> Iterator[str]:
    """Project Zeta in the served catalog (the server reads the catalog file)."""
    import_project(site, PROJECT, [(e, s, "T1") for e, s in SCANS], seed=40, shape=SHAPE)
    yield PROJECT


def open_review(page, server) -> None:
    """Open Zeta's review at 1440 x 900 as the admin; wait for the axial picture."""
    page.set_viewport_size(VIEWPORT)
    sign_in(page, server, ADMIN)
    page.locator(".miqa-project", has_text=PROJECT).click(timeout=OPEN_TIMEOUT)
    page.locator(".miqa-project-title", has_text=PROJECT).wait_for()
    page.get_by_text("Review", exact=True).click()
    page.wait_for_function(
        "() => document.querySelector("
        "'.miqa-review-area .miqa-scan-info .miqa-where')?.innerText.includes(' / L1')",
        timeout=OPEN_TIMEOUT,
    )
    for plane in ("axial", "coronal", "sagittal"):
        wait_for_picture(page, plane)


def wait_for_picture(page, plane: str = "axial", previous: str = "") -> str:
    selector = f"{REVIEW} img.miqa-plane-{plane}"
    page.wait_for_function(
        "([sel, old]) => { const img = document.querySelector(sel);"
        " return img && img.src.startsWith('blob:') && img.src !== old"
        " && img.complete && img.naturalWidth > 0; }",
        arg=[selector, previous],
    )
    return page.locator(selector).get_attribute("src") or ""


def box(page, selector: str) -> dict[str, float]:
    found = page.locator(selector).bounding_box()
    assert found is not None, f"{selector} is not shown"
    return found


def test_planes_fill_the_width_and_submit_is_visible(page, server, delta, shoot) -> None:
    open_review(page, server)
    boxes = [box(page, f"{REVIEW} img.miqa-plane-{p}") for p in ("sagittal", "coronal", "axial")]
    left = min(b["x"] for b in boxes)
    right = max(b["x"] + b["width"] for b in boxes)
    assert right - left >= 900, boxes
    assert all(b["width"] >= 270 for b in boxes), boxes
    for b in boxes:  # every plane whole inside the viewport, at the page's first scroll
        assert b["y"] >= 0 and b["y"] + b["height"] <= VIEWPORT["height"], boxes
    submit = box(page, f"{REVIEW} .miqa-submit")
    assert submit["x"] + submit["width"] <= VIEWPORT["width"], submit
    assert submit["y"] >= 0 and submit["y"] + submit["height"] <= VIEWPORT["height"], submit
    note = box(page, f"{REVIEW} .miqa-note textarea")
    assert note["y"] + note["height"] <= VIEWPORT["height"], note
    # a refused submit (UN needs a note) is said beside Submit, inside the window too
    page.locator(f"{REVIEW} .miqa-decision", has_text="UN").click()
    page.locator(f"{REVIEW} .miqa-submit").click()
    refusal = page.locator(f"{REVIEW} .miqa-decision-error .miqa-error")
    refusal.wait_for()
    assert "note" in refusal.inner_text()
    said = box(page, f"{REVIEW} .miqa-decision-error .miqa-error")
    assert said["y"] + said["height"] <= VIEWPORT["height"], said
    assert said["x"] > submit["x"] + submit["width"], (said, submit)  # beside it
    shoot("1440x900")


def test_one_plane_full_size_and_back(page, server, delta, shoot) -> None:
    open_review(page, server)
    before = box(page, f"{REVIEW} img.miqa-plane-coronal")
    src = page.locator(f"{REVIEW} img.miqa-plane-coronal").get_attribute("src") or ""
    page.locator(f"{REVIEW} .miqa-full-coronal").click()
    wait_for_picture(page, "coronal", src)
    page.locator(f"{REVIEW} img.miqa-plane-axial").wait_for(state="hidden")
    full = box(page, f"{REVIEW} img.miqa-plane-coronal")
    assert full["height"] > 1.4 * before["height"], (before, full)
    assert full["y"] + full["height"] <= VIEWPORT["height"], full
    natural = page.locator(f"{REVIEW} img.miqa-plane-coronal").evaluate("e => e.naturalHeight")
    assert natural >= full["height"] * 0.9, (natural, full)  # rendered big, not blown up
    shoot("coronal-full")
    page.locator(f"{REVIEW} .miqa-full-coronal").click()
    page.locator(f"{REVIEW} img.miqa-plane-axial").wait_for(state="visible")
    page.wait_for_function(
        "([sel, h]) => document.querySelector(sel).getBoundingClientRect().height < h",
        arg=[f"{REVIEW} img.miqa-plane-coronal", full["height"] * 0.8],
    )


def test_window_boxes_change_the_picture(page, server, delta) -> None:
    open_review(page, server)
    src = page.locator(f"{REVIEW} img.miqa-plane-axial").get_attribute("src") or ""
    high = page.locator(f"{REVIEW} .miqa-window-high input")
    low = page.locator(f"{REVIEW} .miqa-window-low input")
    before = float(high.input_value())
    high.fill(str(round(before / 2)))
    page.locator(f"{REVIEW} .miqa-window-readout").click()  # leaves the box: sent
    wait_for_picture(page, "axial", src)
    width = round(before / 2) - float(low.input_value())
    # the preset and the readout follow the picture (the same redraw, later messages)
    page.wait_for_function(
        "([sel, text]) => document.querySelector(sel + ' .miqa-window-preset select')"
        ".value === 'manual' && document.querySelector(sel + ' .miqa-window-readout')"
        ".innerText.includes(text)",
        arg=[REVIEW, f"width {width:.0f},"],
    )
    # the preset names read in full: no option is cut by the select's width
    select = page.locator(f"{REVIEW} .miqa-window-preset select")
    assert select.evaluate("e => e.scrollWidth <= e.clientWidth")


def test_screenshot_downloads_a_png(page, server, delta) -> None:
    open_review(page, server)
    page.locator(f"{REVIEW} .miqa-screenshot").click()
    link = page.locator(f"{REVIEW} a.miqa-screenshot-download")
    link.wait_for()
    with page.expect_download() as info:
        link.click()
    download = info.value
    assert download.suggested_filename == "D1-L1.png"
    data = Path(download.path()).read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    width = int.from_bytes(data[16:20], "big")
    height = int.from_bytes(data[20:24], "big")
    # three planes side by side: wider than tall, and as wide as the three pictures
    assert width > 2 * height, (width, height)
    href = link.get_attribute("href") or ""
    assert base64.b64decode(href.split(",", 1)[1]) == data
