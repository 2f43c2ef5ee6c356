"""A small catalog for the dashboard tests: tiny synthetic scans, users in every role.

Imported as ``widgets_dashboard.dashboard_catalog`` (``tests/`` is on ``sys.path``) by
the widget, model and browser tests, so all three see the same projects.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from miqa_nb.catalog import Catalog
from miqa_nb.exchange.formats import MIQA_COLUMNS

ADMIN, TIER1, TIER2, COLLABORATOR = "admin", "tina", "tom", "cora"
PROJECT = "Alpha"
#: A project whose name, experiment and scan hold markup that must show as text.
NASTY_PROJECT = "Beta <script>window.__miqa_pwned=1</script>"
NASTY_EXPERIMENT = "E<img src=x onerror=window.__miqa_pwned=2>"
NASTY_SCAN = "<b>bold</b>"
SCANS = {  # experiment -> [(scan, type)]
    "E1": [("S1", "T1"), ("S2", "T2")],
    "E2": [("S3", "T1")],
}


@dataclass(frozen=True)
class DashboardCatalog:
    """Where everything is."""

    root: Path
    catalog_path: Path
    import_csv: Path
    export_csv: Path
    nasty_csv: Path

    def catalog(self) -> Catalog:
        return Catalog(self.catalog_path, retry_seconds=30)


def tiny_volume(path: Path, seed: int) -> None:
    """A 24x20x16 head-like ellipsoid with noise, as .nii.gz."""
    rng = np.random.default_rng(seed)
    z, y, x = np.mgrid[-1:1:24j, -1:1:20j, -1:1:16j]
    head = ((z / 0.8) ** 2 + (y / 0.9) ** 2 + (x / 0.7) ** 2 < 1).astype(np.float32)
    data = (head * 800 + rng.normal(0, 40, head.shape)).astype(np.int16)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, np.diag([1.0, 1.0, 1.5, 1.0])), path)


def _write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(MIQA_COLUMNS))
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row.get(c, "") for c in MIQA_COLUMNS})


def build(root: Path) -> DashboardCatalog:
    """Write scans and import files under ``root``; create and fill the catalog."""
    data = root / "data"
    rows: list[dict[str, str]] = []
    seed = 0
    for experiment, scans in SCANS.items():
        for scan, scan_type in scans:
            seed += 1
            location = f"images/{experiment}/{scan}.nii.gz"
            tiny_volume(data / location, seed)
            rows.append(
                {
                    "project_name": PROJECT,
                    "experiment_name": experiment,
                    "scan_name": scan,
                    "scan_type": scan_type,
                    "frame_number": "0",
                    "file_location": location,
                }
            )
    import_csv = data / "alpha.csv"
    _write_csv(import_csv, rows)
    tiny_volume(data / "images/nasty/n1.nii.gz", 99)
    nasty_csv = data / "beta.csv"
    _write_csv(
        nasty_csv,
        [
            {
                "project_name": NASTY_PROJECT,
                "experiment_name": NASTY_EXPERIMENT,
                "scan_name": NASTY_SCAN,
                "scan_type": "T1",
                "frame_number": "0",
                "file_location": "images/nasty/n1.nii.gz",
            }
        ],
    )
    # The dashboard writes exports only in <catalog folder>/exports (its export folder).
    export_csv = root / "exports" / "alpha-export.csv"
    export_csv.parent.mkdir(parents=True, exist_ok=True)
    catalog_path = root / "catalog.duckdb"
    cat = Catalog(catalog_path, data_roots=[data], retry_seconds=30)
    cat.add_user(ADMIN, superuser=True)
    for name in (TIER1, TIER2, COLLABORATOR):
        cat.add_user(name, by=ADMIN)
    cat.create_project(PROJECT, by=ADMIN, import_path=str(import_csv), export_path=str(export_csv))
    cat.import_file(import_csv, by=ADMIN, project=PROJECT)
    cat.import_file(nasty_csv, by=ADMIN, project=NASTY_PROJECT)
    for project in (PROJECT, NASTY_PROJECT):
        cat.set_role(project, TIER1, "tier1", by=ADMIN)
        cat.set_role(project, TIER2, "tier2", by=ADMIN)
        cat.set_role(project, COLLABORATOR, "collaborator", by=ADMIN)
    cat.record_decision(PROJECT, "E1", "S1", "U", by=TIER2)
    cat.record_decision(PROJECT, "E1", "S2", "Q?", by=TIER1, note="motion <i>maybe</i>")
    return DashboardCatalog(root, catalog_path, import_csv, export_csv, nasty_csv)


#: A line of the file outside the roots that no message of the page may ever show.
SECRET = "root:x:0:0:secret-marker:/root:/bin/bash"


def outside_folder(tmp_path: Path) -> Path:
    """A folder beside a site built in ``tmp_path/site``, outside its roots, holding
    files that start with :data:`SECRET` (``secret.csv``, ``secret.json``, ``passwd``)."""
    folder = tmp_path / "outside"
    folder.mkdir()
    for name in ("secret.csv", "secret.json", "passwd"):
        (folder / name).write_text(SECRET + "\n", encoding="utf-8")
    return folder
