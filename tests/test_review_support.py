"""Helpers shared by the review tests (session, processes, widgets, notebooks).

Builds project ``P`` in a catalog from small synthetic .nii.gz volumes (seeded RNG,
32x40x24 voxels at 1 x 1.25 x 2 mm) and one truncated file:

=========  ======  =====  =========================================================
experiment scan    type   notes
=========  ======  =====  =========================================================
E1         S1      T1     link https://example.org/S1
E1         S2      T2     link ``javascript:alert(1)``, subject ``<script>...``
E1         S3      T1     two frames (two files)
E2         S4      T1
E2         S5      T1     truncated file (cannot be loaded)
E3         S6      T2
E3         S7      T1
=========  ======  =====  =========================================================

Users: ``admin`` (superuser), ``t1`` (tier-1), ``t2`` and ``t2b`` (tier-2), ``col``
(collaborator), ``nobody`` (no role).

This module has no tests; it is named ``test_review_*`` only to sit with its tests.
"""

from __future__ import annotations

import csv
import gzip
import shutil
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from miqa_nb.catalog import Catalog

SHAPE = (32, 40, 24)
SPACING = (1.0, 1.25, 2.0)
PROJECT = "P"
SCANS = [
    ("E1", "S1", "T1", 1),
    ("E1", "S2", "T2", 1),
    ("E1", "S3", "T1", 2),
    ("E2", "S4", "T1", 1),
    ("E2", "S5", "T1", 1),
    ("E3", "S6", "T2", 1),
    ("E3", "S7", "T1", 1),
]
BROKEN = ("E2", "S5")
ROLES = {"t1": "tier1", "t2": "tier2", "t2b": "tier2", "col": "collaborator"}
SCRIPT = "<script>alert('x')</script>"


def phantom(seed: int, shape: tuple[int, int, int] = SHAPE) -> np.ndarray:
    """A noisy ellipsoid 'head' (int16), different for each seed."""
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    r = np.sqrt(sum(g**2 for g in grids))
    vol = np.where(r < 0.85, 400 + 150 * grids[0] + rng.normal(0, 25, r.shape), 0.0)
    return vol.astype("int16")


def write_volume(path: Path, seed: int, shape: tuple[int, int, int] = SHAPE) -> Path:
    """Write a synthetic RAS volume with anisotropic voxels as .nii.gz."""
    affine = np.diag([*SPACING, 1.0])
    affine[:3, 3] = (-16.0, -25.0, -24.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    img = nib.Nifti1Image(phantom(seed, shape), affine)
    img.set_qform(affine, code=1)
    nib.save(img, path)
    return path


def write_broken(path: Path) -> Path:
    """A .nii.gz cut in the middle of its data."""
    good = write_volume(path, 99)
    raw = gzip.decompress(good.read_bytes())
    path.write_bytes(gzip.compress(raw[: len(raw) // 3])[:-20])
    return path


def build_project(catalog: Catalog, folder: Path) -> Path:
    """Write the images and the import file of project P, import it, add users."""
    rows = []
    seed = 0
    for experiment, scan, kind, n_frames in SCANS:
        for frame in range(n_frames):
            rel = f"images/{experiment}/{scan}/f{frame}.nii.gz"
            target = folder / rel
            if (experiment, scan) == BROKEN:
                write_broken(target)
            else:
                write_volume(target, seed)
            seed += 1
            rows.append(
                {
                    "project_name": PROJECT,
                    "experiment_name": experiment,
                    "scan_name": scan,
                    "scan_type": kind,
                    "frame_number": str(frame),
                    "file_location": rel,
                    "subject_id": SCRIPT if scan == "S2" else f"sub-{scan}",
                    "session_id": f"ses-{experiment}",
                    "scan_link": {
                        "S1": "https://example.org/S1",
                        "S2": "javascript:alert(1)",
                    }.get(scan, ""),
                }
            )
    path = folder / "import.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    catalog.import_file(path, by="admin", project=PROJECT)
    for user, role in ROLES.items():
        catalog.add_user(user, by="admin")
        catalog.set_role(PROJECT, user, role, by="admin")
    catalog.add_user("nobody", by="admin")
    return path


def build_many(catalog: Catalog, folder: Path, experiments: int = 6, scans: int = 4) -> int:
    """Project ``Q``: ``experiments`` x ``scans`` tiny scans; users r0..r3 tier-2. Returns
    the number of scans."""
    rows = []
    for e in range(experiments):
        for s in range(scans):
            rel = f"many/E{e}/S{s}.nii.gz"
            write_volume(folder / rel, e * scans + s, shape=(12, 12, 8))
            rows.append(
                {
                    "project_name": "Q",
                    "experiment_name": f"E{e}",
                    "scan_name": f"S{s}",
                    "scan_type": "T1",
                    "frame_number": "0",
                    "file_location": rel,
                }
            )
    path = folder / "many.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    catalog.import_file(path, by="admin", project="Q")
    for n in range(4):
        catalog.add_user(f"r{n}", by="admin")
        catalog.set_role("Q", f"r{n}", "tier2", by="admin")
    return experiments * scans


def build_template(folder: Path) -> Path:
    """Build project P once (images and a catalog file); tests copy the catalog file."""
    folder.mkdir(parents=True, exist_ok=True)
    catalog = Catalog(folder / "template.duckdb", retry_seconds=20)
    catalog.add_user("admin", superuser=True)
    build_project(catalog, folder)
    return catalog.path


def copy_to_backend(template: Path, folder: Path, backend: str, request: Any) -> Catalog:
    """A fresh copy of the template on ``backend``: a file, or a new PostgreSQL database
    of the session's server (``Catalog.copy_to``)."""
    if backend != "postgres":
        return copy_catalog(template, folder)
    url = request.getfixturevalue("pg_server").new_database()
    Catalog(template).copy_to(url, by="admin", check=False)
    return Catalog(url, retry_seconds=20)


def copy_catalog(template: Path, folder: Path) -> Catalog:
    """A fresh catalog with project P (its images are shared, read-only)."""
    target = folder / "catalog.duckdb"
    shutil.copyfile(template, target)
    return Catalog(target, retry_seconds=20)
