"""The project's automatic processing after an archive (XNAT's ``triggerPipelines``).

On a real catalog with real image files: the pipelines make the thumbnail of each new
frame in the catalog's thumbnail folder, where the dashboard's overview looks for it;
they run on a background thread (the caller returns while they wait for the catalog);
a frame that cannot be drawn is logged and noted, never raised; ``archive_sessions``
with ``trigger_pipelines=False`` makes none. The served import is tested in
``test_quarantine.test_served_quarantine``.
"""

from __future__ import annotations

import gzip
import logging
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from dicom_support import write_series
from widgets_dashboard.dashboard_catalog import ADMIN, PROJECT, DashboardCatalog, build

from miqa_nb.catalog import Catalog
from miqa_nb.ingest.archiving import Archived, archive_sessions
from miqa_nb.ingest.dicom import read_sessions
from miqa_nb.ingest.pipelines import run_pipelines
from miqa_nb.volumes.thumbnails import catalog_thumbnail_dir, thumbnail_path

WAIT = 120.0


@pytest.fixture
def site(tmp_path: Path) -> DashboardCatalog:
    """Project Alpha: E1 (S1, S2) and E2 (S3), tiny real NIfTI files."""
    return build(tmp_path / "site")


def _pictures(cat: Catalog, experiment: str) -> list[Path]:
    """Where the overview finds the thumbnails of an experiment's frames."""
    frames = cat.frames(PROJECT)
    folder = catalog_thumbnail_dir(cat.path)
    return [
        thumbnail_path(location, folder)
        for location in frames.loc[frames["experiment"] == experiment, "location"]
    ]


def test_pipelines_draw_each_new_frame_in_the_background(site: DashboardCatalog) -> None:
    cat = site.catalog()
    expected = _pictures(cat, "E1")
    assert len(expected) == 2 and not any(p.exists() for p in expected)
    with cat.store.transaction():  # the catalog is busy: the pipelines must wait
        future = run_pipelines(cat, [Archived(PROJECT, "S", "E1", ("S1", "S2"))])
        assert not future.done()  # ... and the caller did not
    run = future.result(timeout=WAIT)
    assert run.made == expected and run.failed == []
    assert all(p.is_file() and p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in expected)
    assert not any(p.exists() for p in _pictures(cat, "E2"))  # only what was archived


def test_a_frame_that_cannot_be_drawn_is_logged_not_raised(
    site: DashboardCatalog, caplog: pytest.LogCaptureFixture
) -> None:
    cat = site.catalog()
    frames = cat.frames(PROJECT)
    broken = Path(frames.loc[frames["scan"] == "S1", "location"].iloc[0])
    broken.write_bytes(gzip.compress(b"not an image at all"))
    caplog.set_level(logging.WARNING, logger="miqa_nb.ingest.pipelines")
    future = run_pipelines(cat, [Archived(PROJECT, "S", "E1", ("S1", "S2"))])
    run = future.result(timeout=WAIT)
    assert future.exception() is None
    assert [what for what, _why in run.failed] == [str(broken)]
    assert run.made == _pictures(cat, "E1")[1:]  # S2 was drawn all the same
    logged = [r.getMessage() for r in caplog.records]
    assert any(f"no thumbnail for {broken}" in m for m in logged), logged
    assert any("1 file(s) made, 1 failure(s)" in m for m in logged), logged


def test_in_the_foreground_they_are_done_on_return(site: DashboardCatalog) -> None:
    cat = site.catalog()
    future = run_pipelines(cat, [Archived(PROJECT, "S", "E2", ("S3",))], background=False)
    assert future.done() and all(p.is_file() for p in _pictures(cat, "E2"))


def _session(root: Path, name: str) -> Path:
    """A one-series DICOM session for project Alpha, from a small synthetic head."""
    rng = np.random.default_rng(len(name))
    z, y, x = np.mgrid[-1:1:20j, -1:1:24j, -1:1:12j]
    head = ((z / 0.8) ** 2 + (y / 0.9) ** 2 + (x / 0.7) ** 2 < 1) * 800.0
    data = (head + rng.normal(0, 30, head.shape)).clip(0).astype(np.int16)
    img = nib.Nifti1Image(data, np.diag([1.2, 1.0, 2.0, 1.0]))
    folder = root / name
    write_series(
        img, folder / "t1", study_uid=f"1.2.826.0.1.3680043.8.498.{len(name)}7",
        SeriesNumber=2, SeriesDescription="t1_mprage",
        PatientComments=f"Project:{PROJECT} Subject:S1 Session:{name}",
    )  # fmt: skip
    return folder


def test_archiving_runs_the_pipelines_unless_told_not_to(site: DashboardCatalog) -> None:
    cat = site.catalog()
    types = cat.scan_types()
    quiet = read_sessions(_session(site.root, "MR_QUIET"), scan_types=types)
    archive_sessions(cat, quiet, by=ADMIN, trigger_pipelines=False)
    loud = read_sessions(_session(site.root, "MR_LOUD"), scan_types=types)
    archive_sessions(cat, loud, by=ADMIN)  # triggerPipelines: true by default
    # the pipelines run one job after another: once this one is done, any the two
    # archives queued are too
    run_pipelines(cat, []).result(timeout=WAIT)
    assert len(_pictures(cat, "MR_LOUD")) == 1
    assert all(p.is_file() for p in _pictures(cat, "MR_LOUD"))
    assert len(_pictures(cat, "MR_QUIET")) == 1
    assert not any(p.exists() for p in _pictures(cat, "MR_QUIET"))
