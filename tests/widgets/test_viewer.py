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
    assert viewer.frame_slider.layout.display == "none"  # one frame


def test_slice_sliders_move_the_crosshair(start):
    session = start("t2", filter="all")
    viewer = ViewerPanel(session)
    before = viewer.images["coronal"].value
    viewer.sliders["axial"].value = 3
    assert session.slices.axial == 3
    assert viewer.images["coronal"].value != before  # the crosshair line moved
    assert viewer.sliders["axial"].max == 23
    session.set_slice("sagittal", 7)  # and the other way round
    assert viewer.sliders["sagittal"].value == 7


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
    viewer.window_preset.value = "full"
    assert session.window_spec == "full"
    low, high = session.window.low, session.window.high
    assert viewer.window_range.value == (low, high)
    viewer.window_range.value = (low + 10, high - 10)
    assert session.window_spec == (low + 10, high - 10)
    assert viewer.window_preset.value == "manual"
    viewer.window_preset.value = "auto"
    assert session.window_spec == "auto"


def test_frame_slider_for_multi_frame_scans(start):
    session = start("t2", filter="all")
    viewer = ViewerPanel(session)
    session.open(("E1", "S3"))
    assert viewer.frame_slider.layout.display == "" and viewer.frame_slider.max == 1
    first = viewer.images["axial"].value
    viewer.frame_slider.value = 1
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
