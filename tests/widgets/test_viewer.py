"""The viewer panel, headless: pictures, sliders, window, frames, events, 3D."""

from __future__ import annotations

import pytest

from miqa_nb.widgets import ViewerPanel


def test_three_labelled_planes_with_classes(start):
    session = start("t2", filter="all")
    viewer = ViewerPanel(session)
    for plane, image in viewer.images.items():
        assert bytes(image.value).startswith(b"\x89PNG")
        assert f"miqa-plane-{plane}" in image._dom_classes
    labels = {e: lab.value for e, lab in viewer.edge_labels["axial"].items()}
    assert "L" in labels["left"] and "R" in labels["right"]
    assert "A" in labels["top"] and "P" in labels["bottom"]
    assert "S" in viewer.edge_labels["coronal"]["top"].value
    assert "miqa-viewer" in viewer._dom_classes
    assert viewer.frames.layout.display == "none"  # one frame


def test_slice_sliders_move_the_crosshair(start):
    """Sliders and titles count slices from 1 (the session's index from 0)."""
    session = start("t2", filter="all")
    viewer = ViewerPanel(session)
    before = viewer.images["coronal"].value
    viewer.sliders["axial"].value = 3
    assert session.slices.axial == 2
    assert viewer.images["coronal"].value != before  # the crosshair line moved
    assert (viewer.sliders["axial"].min, viewer.sliders["axial"].max) == (1, 24)
    assert "slice 3 of 24" in viewer.titles["axial"].value
    session.set_slice("sagittal", 7)  # and the other way round
    assert viewer.sliders["sagittal"].value == 8


def test_click_and_wheel_from_the_browser(start, browser):
    session = start("t2", filter="all")
    viewer = ViewerPanel(session)
    axial = viewer.events["axial"]
    browser(axial, type="click", dataX=0, dataY=0, relativeX=0, relativeY=0)
    assert session.slices.coronal == 39  # top of the axial plane is anterior
    browser(axial, type="wheel", deltaY=-120)
    assert session.slices.axial == 13
    browser(axial, type="wheel", deltaY=120)
    browser(axial, type="wheel", deltaY=120)
    assert session.slices.axial == 11
    height, width = session.plane_images()["sagittal"].image_shape
    browser(
        viewer.events["sagittal"],
        type="click",
        relativeX=0,
        relativeY=0,
        boundingRectWidth=width * 2,
        boundingRectHeight=height * 2,
    )
    assert session.slices.axial == 23  # top of the sagittal plane is superior
    assert "keydown" not in axial.watched_events  # keys are the page's (PageKeys)


def test_window_presets_and_manual_range(start):
    session = start("t2", filter="all")
    viewer = ViewerPanel(session)
    window = viewer.window
    window.preset.value = "full"
    assert session.window_spec == "full"
    low, high = session.window.low, session.window.high
    assert window.range.value == (low, high)
    window.range.value = (low + 10, high - 10)
    assert session.window_spec == (low + 10, high - 10)
    assert window.preset.value == "manual"
    window.preset.value = "auto"
    assert session.window_spec == "auto"


def test_frame_slider_for_multi_frame_scans(start):
    session = start("t2", filter="all")
    viewer = ViewerPanel(session)
    session.open(("E1", "S3"))
    assert viewer.frames.layout.display == ""
    assert (viewer.frame_slider.value, viewer.frame_slider.max) == (1, 2)  # frame 1 of 2
    assert viewer.frame_count.value == "of 2"
    first = viewer.images["axial"].value
    viewer.frame_slider.value = 2
    assert session.frame == 1 and viewer.images["axial"].value != first


def test_broken_scan_shows_no_picture(start):
    session = start("t2", filter="all")
    viewer = ViewerPanel(session)
    session.open(("E2", "S5"))
    assert all(bytes(image.value) == b"" for image in viewer.images.values())
    assert "no image" in viewer.titles["axial"].value
    viewer.toggle_3d.value = True
    assert "no image" in viewer.box_3d.children[0].value


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # from ipyvolume's dependencies
def test_3d_is_made_on_demand_and_closed_on_scan_change(start):
    session = start("t2", filter="all")
    viewer = ViewerPanel(session)
    assert viewer.box_3d.children == () and viewer._figure is None
    viewer.toggle_3d.value = True
    figure = viewer.box_3d.children[0]
    assert type(figure).__name__ == "Figure" and figure.volumes
    session.next()
    assert viewer.toggle_3d.value is False and viewer.box_3d.children == ()
    assert figure.comm is None  # closed


def test_window_boxes_set_minimum_and_maximum(start):
    session = start("t2", filter="all")
    window = ViewerPanel(session).window
    assert (window.low.value, window.high.value) == (session.window.low, session.window.high)
    window.high.value = session.window.low + 100
    assert session.window_spec == (window.low.value, window.low.value + 100)
    assert window.preset.value == "manual"
    assert f"width {100:.4g}," in window.readout.value or "width 100," in window.readout.value
    assert window.low.description == "Minimum (black)"
    assert window.high.description == "Maximum (white)"


def test_window_lock_keeps_a_manual_window_on_the_next_scan(start):
    session = start("t2", filter="all")
    window = ViewerPanel(session).window
    session.set_window((10.0, 200.0))
    session.next()
    assert session.window_spec == "auto"  # unlocked: back to the automatic window
    session.set_window((10.0, 200.0))
    window.lock.value = True
    session.next()
    assert session.window_spec == (10.0, 200.0)
    assert (window.low.value, window.high.value) == (10.0, 200.0)


def test_show_full_renders_one_plane_bigger_and_back(start):
    session = start("t2", filter="all")
    viewer = ViewerPanel(session, show_3d=False)
    small = session.view.shown_shapes()["coronal"]
    viewer.show_full("coronal")
    assert [p for p, b in viewer.boxes.items() if b.layout.display != "none"] == ["coronal"]
    big = session.view.shown_shapes()["coronal"]
    assert big[0] > small[0] and big[1] > small[1]
    assert viewer.full_buttons["coronal"].description == "Three planes"
    viewer.full_buttons["coronal"].click()  # back to three planes
    assert viewer.full is None
    assert all(b.layout.display == "" for b in viewer.boxes.values())
    assert session.view.shown_shapes()["coronal"] == small


def test_zoom_buttons_crop_around_the_crosshair_and_clicks_land_right(start, browser):
    session = start("t2", filter="all")
    viewer = ViewerPanel(session, show_3d=False)
    whole = session.plane_images()["axial"]
    viewer.zoom_in.click()
    viewer.zoom_in.click()
    assert session.zoom == 2.0 and "zoom 2×" in viewer.zoom_label.value
    zoomed = session.plane_images()["axial"]
    assert zoomed.shown[2:] == (whole.voxel_shape[0] // 2, whole.voxel_shape[1] // 2)
    assert zoomed.image_shape[0] > whole.image_shape[0]  # rendered big, not blown up
    # a click on the middle of the zoomed picture keeps the crosshair where it was
    before = session.slices
    height, width = zoomed.image_shape
    browser(viewer.events["axial"], type="click", dataX=width / 2, dataY=height / 2)
    assert abs(session.slices.sagittal - before.sagittal) <= 1
    assert abs(session.slices.coronal - before.coronal) <= 1
    viewer.zoom_fit.click()
    assert session.zoom == 1.0 and session.plane_images()["axial"].shown == whole.shown


def test_drag_pans_a_zoomed_plane_and_is_not_a_click(start, browser):
    session = start("t2", filter="all")
    viewer = ViewerPanel(session, show_3d=False)
    session.set_zoom(4.0)
    region = session.plane_images()["axial"].shown
    crosshair = session.crosshair
    axial = viewer.events["axial"]
    size = {"boundingRectWidth": 400, "boundingRectHeight": 400}
    browser(axial, type="mousedown", relativeX=300, relativeY=200, **size)
    browser(axial, type="mouseup", relativeX=100, relativeY=200, **size)
    browser(axial, type="click", relativeX=100, relativeY=200, dataX=10, dataY=10, **size)
    assert session.crosshair == crosshair  # the drag's click did not move it
    moved = session.plane_images()["axial"].shown
    assert moved[0] == region[0] and moved[1] > region[1]  # content moved left: view right


def test_crosshair_toggle_and_position_in_mm(start):
    session = start("t2", filter="all")
    viewer = ViewerPanel(session, show_3d=False)
    assert session.plane_images()["axial"].pixels.ndim == 3  # coloured lines
    viewer.crosshair_toggle.value = False
    assert session.plane_images()["axial"].pixels.ndim == 2
    slices, xyz = session.slices, session.crosshair
    text = viewer.position.value
    assert f"{abs(xyz[0]):.1f} mm {'R' if xyz[0] >= 0 else 'L'}" in text
    assert f"axial {slices.axial + 1}," not in text and f"axial {slices.axial + 1} " in text


def test_screenshot_is_a_png_link_of_the_planes_as_shown(start):
    import base64

    session = start("t2", filter="all")
    viewer = ViewerPanel(session, show_3d=False)
    viewer.take_screenshot()
    link = viewer.screenshot_link.value
    assert 'download="E1-S1.png"' in link
    png = base64.b64decode(link.split("base64,", 1)[1].split('"', 1)[0])
    images = session.plane_images()
    width = int.from_bytes(png[16:20], "big")
    assert (
        png.startswith(b"\x89PNG") and width == sum(i.image_shape[1] for i in images.values()) + 8
    )
    session.next()
    assert viewer.screenshot_link.value == ""  # not left over from the last scan
