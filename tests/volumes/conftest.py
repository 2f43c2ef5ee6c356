"""Fixtures of the volumes tests: synthetic volumes in every format, and real anatomy.

Synthetic volumes come from a seeded RNG: a head-like ellipsoid with a bright marker
in the anterior-superior-right corner, so orientation mistakes show. Real images
come from nilearn's MNI152 template, nibabel's test data and the shared MIQA
samples (tests needing the latter skip with a reason when the folder is absent).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import nilearn
import nrrd
import numpy as np
import pytest
from nibabel.orientations import apply_orientation, axcodes2ornt, inv_ornt_aff, ornt_transform

SAMPLES = Path(
    os.environ.get(
        "MIQA_NB_SAMPLES",
        Path(__file__).resolve().parents[3] / "shared" / "data" / "miqa-samples",
    )
)
IXI_DIR = SAMPLES / "samples" / "Demo Project" / "IXI002" / "0828-DTI"
EXAMPLE = SAMPLES / "miqa" / "core" / "tests" / "data" / "example.nii.gz"
MNI_T1 = (
    Path(nilearn.__file__).parent
    / "datasets"
    / "data"
    / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
)
NIBABEL_DATA = Path(nib.__file__).parent / "tests" / "data"

SUFFIXES = (".nii", ".nii.gz", ".mgz", ".nrrd", ".nhdr")
SHAPE = (20, 24, 16)
SPACING = (1.0, 1.5, 3.0)
LPS = np.diag([-1.0, -1.0, 1.0])


def phantom(shape: tuple[int, ...] = SHAPE, dtype: str = "int16", seed: int = 0) -> np.ndarray:
    """A RAS+ ordered head-like volume: noisy ellipsoid, background 0, one marker.

    The marker (value 1000, or 1.0 scaled for floats) fills the corner nearest to
    the patient's anterior-superior-right (high x, high y, high z).
    """
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape[:3]], indexing="ij")
    r = np.sqrt(sum(g**2 for g in grids))
    vol = np.where(r < 0.9, 300 + 100 * grids[0] + rng.normal(0, 20, r.shape), 0.0)
    x, y, z = shape[:3]
    vol[x - x // 4 :, y - y // 4 :, z - z // 4 :] = 1000.0
    if len(shape) == 4:
        vol = np.stack([vol * (1 + t) for t in range(shape[3])], axis=-1)
    return vol.astype(dtype)


def ras_affine(spacing: tuple[float, float, float] = SPACING) -> np.ndarray:
    """A RAS+ affine with ``spacing`` and an off-centre origin."""
    aff = np.diag([*spacing, 1.0])
    aff[:3, 3] = (-12.0, -20.0, 7.5)
    return aff


def store_as(data: np.ndarray, affine: np.ndarray, axcodes: str) -> tuple[np.ndarray, np.ndarray]:
    """Reorder a RAS+ array to ``axcodes`` storage keeping the same world picture."""
    ornt = ornt_transform(axcodes2ornt("RAS"), axcodes2ornt(tuple(axcodes)))
    stored = np.ascontiguousarray(apply_orientation(data, ornt))
    return stored, affine @ inv_ornt_aff(ornt, data.shape[:3])


def write_image(path: Path, data: np.ndarray, affine: np.ndarray) -> Path:
    """Write ``data`` (stored order) with voxel->RAS ``affine`` in the format of ``path``."""
    name = path.name
    if name.endswith((".nii", ".nii.gz")):
        img = nib.Nifti1Image(data, affine)
        img.set_qform(affine, code=1)
        nib.save(img, path)
    elif name.endswith((".mgz", ".mgh")):
        nib.save(nib.MGHImage(data, affine), path)
    elif name.endswith((".nrrd", ".nhdr")):
        # Written in LPS space (as 3D Slicer does) and, for a series, with the frame
        # axis first (as Slicer's DWI files), to exercise both conversions.
        directions = LPS @ affine[:3, :3]
        header = {
            "space": "left-posterior-superior",
            "space directions": directions.T,
            "space origin": LPS @ affine[:3, 3],
            "kinds": ["domain"] * 3,
            "encoding": "raw" if name.endswith(".nhdr") else "gzip",
        }
        if data.ndim == 4:
            data = np.moveaxis(data, 3, 0)
            header["space directions"] = np.vstack([np.full(3, np.nan), directions.T])
            header["kinds"] = ["list", "domain", "domain", "domain"]
        nrrd.write(str(path), data, header, compression_level=1)
    else:  # pragma: no cover - helper misuse
        raise ValueError(name)
    return path


@pytest.fixture
def make_file(tmp_path: Path) -> Callable[..., Path]:
    """Write a synthetic volume: ``make_file(suffix, dtype=, axcodes=, shape=)``."""

    def make(
        suffix: str,
        dtype: str = "int16",
        axcodes: str = "RAS",
        shape: tuple[int, ...] = SHAPE,
        name: str = "scan",
    ) -> Path:
        data, aff = store_as(phantom(shape, dtype), ras_affine(), axcodes)
        return write_image(tmp_path / f"{name}-{axcodes}-{dtype}{suffix}", data, aff)

    return make


@pytest.fixture(scope="session")
def mni_image() -> nib.Nifti1Image:
    """The MNI152 2009 T1 template shipped in nilearn's wheel (197x233x189, RAS)."""
    if not MNI_T1.exists():  # pragma: no cover - depends on the nilearn build
        pytest.skip(f"nilearn's MNI template is not installed at {MNI_T1}")
    img = nib.load(MNI_T1)
    return nib.Nifti1Image(np.asanyarray(img.dataobj), img.affine)


@pytest.fixture(scope="session")
def ixi_paths() -> list[Path]:
    """The five real IXI002 DTI frames (128x128x56 at 1.75x1.75x2.35 mm, stored LAS)."""
    paths = sorted(IXI_DIR.glob("*.nii.gz"))
    if not paths:
        pytest.skip(f"the shared MIQA samples are absent ({IXI_DIR})")
    return paths


@pytest.fixture(scope="session")
def example_path() -> Path:
    """MIQA's own test image (an IXI frame)."""
    if not EXAMPLE.exists():
        pytest.skip(f"the shared MIQA samples are absent ({EXAMPLE})")
    return EXAMPLE
