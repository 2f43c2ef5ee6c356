"""Project ``Gamma`` of the served catalog: what the browser review tests work on.

Added beside the dashboard tests' projects (``Alpha``, ``Beta <script>``) so one
server serves every browser test; only the review tests touch it.

==========  =====  ====  ====================================================
experiment  scan   type  used by
==========  =====  ====  ====================================================
E1          G1     T1    keyboard review (by ``admin``)
E1          G2     T2    keyboard review
E2          G3     T1    keyboard review
E2          G4     T1    where the keyboard reviewer resumes
E3          G5     T1    truncated .nii.gz (``G5-truncated.nii.gz``)
E3          G6     T2    the scan after the broken one
E4          G7     T1    a decision whose note is a ``<script>``; tier-1 tries UN
==========  =====  ====  ====================================================

Users: the dashboard catalog's (``admin`` superuser, ``tina`` tier-1, ``tom`` tier-2)
and ``cleo``, who is not a superuser but is the project's creator (so she has the
administration panel, without its global part).

Project ``Delta`` (:func:`add_claims_project`) is the claims tests' own: experiments
D1 (H1, H2), D2 (H3) and D3 (H4), no decisions, ``tina`` tier-1 and ``tom`` tier-2.
Its decisions and claims are kept apart from Gamma, whose progress the review tests
count.
"""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
from widgets_dashboard.dashboard_catalog import (
    ADMIN,
    TIER1,
    TIER2,
    DashboardCatalog,
)

from miqa_nb.catalog import Catalog
from miqa_nb.exchange.formats import MIQA_COLUMNS

REVIEW_PROJECT = "Gamma"
CREATOR = "cleo"
SCANS = [  # experiment, scan, type
    ("E1", "G1", "T1"),
    ("E1", "G2", "T2"),
    ("E2", "G3", "T1"),
    ("E2", "G4", "T1"),
    ("E3", "G5", "T1"),
    ("E3", "G6", "T2"),
    ("E4", "G7", "T1"),
]
BROKEN = ("E3", "G5")
BROKEN_FILE = "G5-truncated.nii.gz"
SCRIPT_SCAN = ("E4", "G7")
SCRIPT_NOTE = "<script>window.__miqa_pwned=1</script>"
SHAPE = (48, 56, 40)


def head_volume(path: Path, seed: int, shape: tuple[int, int, int] = SHAPE) -> Path:
    """A noisy head-like ellipsoid with a brighter 'ventricle', int16 .nii.gz.

    Each seed moves the inner blob, so consecutive scans give different pictures.
    """
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    x, y, z = grids
    head = (x / 0.8) ** 2 + (y / 0.9) ** 2 + (z / 0.75) ** 2 < 1
    cx, cy = rng.uniform(-0.3, 0.3, 2)
    blob = ((x - cx) / 0.25) ** 2 + ((y - cy) / 0.35) ** 2 + (z / 0.3) ** 2 < 1
    data = head * (500 + 120 * y) + blob * 400 + rng.normal(0, 30, x.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data.astype(np.int16), np.diag([1.0, 1.0, 1.2, 1.0])), path)
    return path


def truncated_volume(path: Path) -> Path:
    """A .nii.gz whose data stops a third of the way through (a broken download)."""
    good = head_volume(path, 99)
    raw = gzip.decompress(good.read_bytes())
    path.write_bytes(gzip.compress(raw[: len(raw) // 3])[:-20])
    return path


def add_review_project(site: DashboardCatalog) -> None:
    """Write Gamma's scans and import file; import them; give roles; set the creator."""
    data = site.root / "data"
    rows: list[dict[str, str]] = []
    for seed, (experiment, scan, scan_type) in enumerate(SCANS, start=10):
        if (experiment, scan) == BROKEN:
            location = f"gamma/{experiment}/{BROKEN_FILE}"
            truncated_volume(data / location)
        else:
            location = f"gamma/{experiment}/{scan}.nii.gz"
            head_volume(data / location, seed)
        rows.append(
            {
                "project_name": REVIEW_PROJECT,
                "experiment_name": experiment,
                "scan_name": scan,
                "scan_type": scan_type,
                "frame_number": "0",
                "file_location": location,
            }
        )
    import_csv = data / "gamma.csv"
    with open(import_csv, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(MIQA_COLUMNS))
        writer.writeheader()
        writer.writerows({c: row.get(c, "") for c in MIQA_COLUMNS} for row in rows)
    cat = Catalog(site.catalog_path, data_roots=[data], retry_seconds=30)
    cat.add_user(CREATOR, by=ADMIN)
    cat.create_project(
        REVIEW_PROJECT,
        by=ADMIN,
        import_path=str(import_csv),
        export_path=str(review_export_path(site)),
    )
    cat.import_file(import_csv, by=ADMIN, project=REVIEW_PROJECT)
    cat.set_role(REVIEW_PROJECT, TIER1, "tier1", by=ADMIN)
    cat.set_role(REVIEW_PROJECT, TIER2, "tier2", by=ADMIN)
    # a creator who is not a superuser (only superusers create projects, so hand it over)
    cat.sql("UPDATE projects SET creator = ? WHERE name = ?", [CREATOR, REVIEW_PROJECT])


CLAIMS_PROJECT = "Delta"
CLAIMS_SCANS = [  # experiment, scan, type
    ("D1", "H1", "T1"),
    ("D1", "H2", "T1"),
    ("D2", "H3", "T1"),
    ("D3", "H4", "T1"),
]


def add_claims_project(site: DashboardCatalog) -> None:
    """Project Delta: the claims tests' scans, imported; roles for tina and tom."""
    import_project(site, CLAIMS_PROJECT, CLAIMS_SCANS, seed=40)


def import_project(
    site: DashboardCatalog,
    project: str,
    scans: list[tuple[str, str, str]],
    *,
    seed: int,
    shape: tuple[int, int, int] = SHAPE,
) -> Catalog:
    """Write ``scans`` (experiment, scan, type) as head volumes in a folder of the
    project's own, import them as ``project`` (made by the admin) and make tina tier 1
    and tom tier 2 there; return the catalog."""
    data = site.root / "data"
    folder = project.lower()
    rows: list[dict[str, str]] = []
    for n, (experiment, scan, scan_type) in enumerate(scans, start=seed):
        location = f"{folder}/{experiment}/{scan}.nii.gz"
        head_volume(data / location, n, shape)
        rows.append(
            {
                "project_name": project,
                "experiment_name": experiment,
                "scan_name": scan,
                "scan_type": scan_type,
                "frame_number": "0",
                "file_location": location,
            }
        )
    import_csv = data / f"{folder}.csv"
    with open(import_csv, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(MIQA_COLUMNS))
        writer.writeheader()
        writer.writerows({c: row.get(c, "") for c in MIQA_COLUMNS} for row in rows)
    cat = Catalog(site.catalog_path, data_roots=[data], retry_seconds=30)
    cat.create_project(project, by=ADMIN)
    cat.import_file(import_csv, by=ADMIN, project=project)
    cat.set_role(project, TIER1, "tier1", by=ADMIN)
    cat.set_role(project, TIER2, "tier2", by=ADMIN)
    return cat


def review_export_path(site: DashboardCatalog) -> Path:
    """Where Gamma's export goes."""
    return site.root / "exports" / "gamma-export.csv"  # inside the export folder


def sign_in(page, server, user: str, project: str | None = None, timeout: float = 60_000) -> None:
    """Open the dashboard signed in as ``user`` through a one-time sign-in link (what
    ``miqa-nb users link`` prints), on ``project``'s review when given. The tests' users
    have no password, so the link asks for one first: they choose "Not now"."""
    page.goto(server.signin_link(user, project=project), timeout=timeout)
    if "/login/password" in page.url:
        page.get_by_text("Not now").click()
