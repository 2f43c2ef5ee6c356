"""Tests of miqa_nb.volumes.io: every format, dtype, order, 4D, scaling, broken files."""

from __future__ import annotations

import gzip
import io
import mmap
import shutil
from pathlib import Path

import nibabel as nib
import nrrd
import numpy as np
import pytest
from conftest import (
    MNI_T1,
    NIBABEL_DATA,
    SHAPE,
    SPACING,
    SUFFIXES,
    phantom,
    ras_affine,
    store_as,
    write_image,
)

from miqa_nb.core.errors import MiqaError, VolumeError
from miqa_nb.volumes import inflate, load_volume


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("dtype", ["int16", "float32", "uint8"])
def test_every_format_and_dtype_loads_the_same_values(make_file, suffix, dtype):
    volume = load_volume(make_file(suffix, dtype=dtype))
    assert volume.shape == SHAPE
    assert volume.n_frames == 1
    np.testing.assert_array_equal(volume.data, phantom(SHAPE, dtype))
    np.testing.assert_allclose(volume.affine, ras_affine(), atol=1e-5)
    np.testing.assert_allclose(volume.spacing, SPACING, rtol=1e-6)


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("axcodes", ["LPI", "ASR", "PIL", "SLA"])
def test_any_storage_order_comes_back_in_ras_order(make_file, suffix, axcodes):
    volume = load_volume(make_file(suffix, axcodes=axcodes))
    assert volume.source_axes == tuple(axcodes)
    np.testing.assert_array_equal(volume.data, phantom())
    np.testing.assert_allclose(volume.affine, ras_affine(), atol=1e-5)
    # The marker sits in the anterior-superior-right corner of the patient.
    assert (volume.voxel_to_world(np.argwhere(volume.data == 1000)).mean(axis=0) > 0).all()


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_4d_file_frames_are_navigable(make_file, suffix):
    volume = load_volume(make_file(suffix, axcodes="LPI", shape=(*SHAPE, 3)))
    expected = phantom((*SHAPE, 3))
    assert volume.n_frames == 3
    assert volume.shape == SHAPE
    for t in range(3):
        np.testing.assert_array_equal(volume.frame(t), expected[..., t])
    with pytest.raises(IndexError, match="frame 3"):
        volume.frame(3)


def test_scaled_nifti_gives_real_values(tmp_path):
    raw = phantom(dtype="int16")
    img = nib.Nifti1Image(raw, ras_affine())
    img.header.set_slope_inter(0.5, -10.0)
    path = tmp_path / "scaled.nii.gz"
    nib.save(img, path)
    volume = load_volume(path)
    assert volume.dtype == np.float32
    np.testing.assert_allclose(volume.data, raw * 0.5 - 10.0, rtol=1e-6)


def test_uncompressed_nifti_is_memory_mapped_and_read_only(make_file):
    volume = load_volume(make_file(".nii"))
    base = volume.data
    while base is not None and not isinstance(base, mmap.mmap):
        base = base.base
    assert isinstance(base, mmap.mmap)
    assert not volume.data.flags.writeable


def test_gzip_detected_by_content_not_suffix(tmp_path, make_file):
    plain = make_file(".nii")
    disguised = tmp_path / "actually-gzip.nii"
    disguised.write_bytes(gzip.compress(plain.read_bytes(), compresslevel=1))
    np.testing.assert_array_equal(load_volume(disguised).data, phantom())


def test_multi_member_gzip_inflates_whole():
    payload = np.arange(10_000, dtype=np.int32).tobytes()
    two = gzip.compress(payload[:15_000]) + gzip.compress(payload[15_000:])
    assert inflate(two) == payload


@pytest.mark.parametrize(
    "name", ["example4d.nii.gz", "example_nifti2.nii.gz", "anatomical.nii", "test.mgz"]
)
def test_real_nibabel_files_match_nibabel_canonical(name):
    path = NIBABEL_DATA / name
    if not path.exists():
        pytest.skip(f"nibabel's test data lack {name}")
    canonical = nib.as_closest_canonical(nib.load(path))
    volume = load_volume(path)
    np.testing.assert_allclose(volume.data, canonical.get_fdata(), rtol=1e-6)
    np.testing.assert_allclose(volume.affine, canonical.affine, atol=1e-4)


def test_real_mni_template_loads():
    volume = load_volume(MNI_T1)
    assert volume.shape == (197, 233, 189)
    assert volume.source_axes == ("R", "A", "S")
    assert volume.nbytes == 197 * 233 * 189


def test_ixi_frames_have_their_anisotropic_spacing(ixi_paths):
    volume = load_volume(ixi_paths[0])
    assert volume.shape == (128, 128, 56)
    assert volume.source_axes == ("L", "A", "S")
    np.testing.assert_allclose(volume.spacing, (1.75, 1.75, 2.35), rtol=1e-6)


# -- broken files: each raises a VolumeError naming the file and the reason ----------
def _assert_volume_error(path: Path, reason: str) -> VolumeError:
    with pytest.raises(VolumeError) as info:
        load_volume(path)
    err = info.value
    assert isinstance(err, OSError) and isinstance(err, MiqaError)
    assert str(path) in str(err)
    assert reason in str(err)
    return err


def test_missing_file(tmp_path):
    _assert_volume_error(tmp_path / "nope.nii.gz", "file not found")


def test_folder_instead_of_file(tmp_path):
    folder = tmp_path / "scan.nii"
    folder.mkdir()
    _assert_volume_error(folder, "folder")


def test_truncated_real_gzip(tmp_path):
    path = tmp_path / "mni-truncated.nii.gz"
    data = MNI_T1.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    _assert_volume_error(path, "truncated")


def test_truncated_uncompressed_nifti(tmp_path, make_file):
    path = make_file(".nii")
    path.write_bytes(path.read_bytes()[:-100])
    _assert_volume_error(path, "truncated")


def test_gzip_whose_inflated_data_are_short(tmp_path, make_file):
    # A complete gzip stream holding an incomplete image (cut before compression).
    raw = gzip.decompress(make_file(".nii.gz").read_bytes())
    path = tmp_path / "short.nii.gz"
    path.write_bytes(gzip.compress(raw[:-500]))
    _assert_volume_error(path, "truncated")


def test_garbled_nifti_header(tmp_path, ixi_paths):
    raw = bytearray(gzip.decompress(ixi_paths[0].read_bytes()))
    raw[0:4] = b"\x07\x07\x07\x07"  # sizeof_hdr
    path = tmp_path / "garbled.nii.gz"
    path.write_bytes(gzip.compress(bytes(raw), compresslevel=1))
    _assert_volume_error(path, "corrupt header")


def test_nifti_with_bad_magic(tmp_path, make_file):
    raw = bytearray(make_file(".nii").read_bytes())
    raw[344:348] = b"XXXX"  # the 'n+1\0' magic
    path = tmp_path / "badmagic.nii"
    path.write_bytes(bytes(raw))
    _assert_volume_error(path, "corrupt header")


def test_garbled_mgh_header(tmp_path, make_file):
    raw = bytearray(gzip.decompress(make_file(".mgz").read_bytes()))
    raw[20:24] = b"\x00\x00\x00\x63"  # voxel type 99 does not exist
    path = tmp_path / "garbled.mgz"
    path.write_bytes(gzip.compress(bytes(raw)))
    _assert_volume_error(path, "corrupt header")


def test_garbled_nrrd_header(tmp_path, make_file):
    raw = make_file(".nrrd").read_bytes()
    path = tmp_path / "garbled.nrrd"
    path.write_bytes(b"NRRX" + raw[4:])
    _assert_volume_error(path, "corrupt header")


def test_truncated_nrrd_gzip(tmp_path, make_file):
    raw = make_file(".nrrd").read_bytes()
    path = tmp_path / "truncated.nrrd"
    path.write_bytes(raw[: len(raw) - 200])
    _assert_volume_error(path, "truncated")


def test_detached_nrrd_missing_data_file(tmp_path, make_file):
    header = make_file(".nhdr")
    header.with_suffix(".raw").unlink()
    err = _assert_volume_error(header, "file not found")
    assert ".raw" in str(err)


@pytest.mark.parametrize(("shape", "ndim"), [((40,), 1), ((20, 24), 2), ((8, 8, 8, 2, 3), 5)])
def test_wrong_dimensionality(tmp_path, shape, ndim):
    path = tmp_path / f"dim{ndim}.nii.gz"
    nib.save(nib.Nifti1Image(np.ones(shape, dtype=np.int16), np.eye(4)), path)
    _assert_volume_error(path, f"has {ndim} dimensions")


def test_2d_nrrd_is_wrong_dimensionality(tmp_path):
    path = tmp_path / "slice.nrrd"
    nrrd.write(str(path), np.ones((10, 12), dtype=np.int16), {"encoding": "gzip"})
    _assert_volume_error(path, "has 2 dimensions")


def test_empty_data(tmp_path, make_file):
    raw = bytearray(make_file(".nii").read_bytes())
    hdr = nib.Nifti1Header.from_fileobj(io.BytesIO(bytes(raw)))
    hdr.set_data_shape((0, 24, 16))
    path = tmp_path / "empty.nii"
    path.write_bytes(hdr.binaryblock + b"\0\0\0\0")  # header + empty extension flag
    _assert_volume_error(path, "holds no voxels")


def test_complex_voxels_are_unsupported(tmp_path):
    path = tmp_path / "complex.nii.gz"
    data = np.ones((4, 4, 4), dtype=np.complex64)
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    _assert_volume_error(path, "voxel type complex64 is not supported")


def test_rgb_voxels_are_unsupported(tmp_path):
    rgb = np.zeros((4, 4, 4), dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    path = tmp_path / "rgb.nii"
    nib.save(nib.Nifti1Image(rgb, np.eye(4)), path)
    _assert_volume_error(path, "is not supported")


@pytest.mark.parametrize("name", ["0.dcm", "scan.img", "scan"])
def test_unsupported_suffix(tmp_path, name):
    path = tmp_path / name
    source = NIBABEL_DATA / "0.dcm"
    if source.exists():
        shutil.copy(source, path)
    else:  # pragma: no cover
        path.write_bytes(b"\0" * 200)
    _assert_volume_error(path, "unsupported file type")


def test_singular_affine_is_a_corrupt_header(tmp_path, make_file):
    raw = bytearray(make_file(".nii").read_bytes())
    hdr = nib.Nifti1Header.from_fileobj(io.BytesIO(bytes(raw)))
    hdr["qform_code"] = 0
    hdr["sform_code"] = 1
    hdr["srow_y"] = [0.0, 0.0, 0.0, 0.0]  # every voxel on one coronal plane
    path = tmp_path / "flat.nii"
    path.write_bytes(hdr.binaryblock + bytes(raw[348:]))
    _assert_volume_error(path, "singular")


def test_storage_order_helper_keeps_world_picture():
    # Guard for the fixtures themselves: the same voxel maps to the same world point.
    data, aff = store_as(phantom(), ras_affine(), "PIL")
    canonical = nib.as_closest_canonical(nib.Nifti1Image(data, aff))
    np.testing.assert_array_equal(canonical.get_fdata(), phantom())


def test_written_fixture_formats_agree(tmp_path):
    # A file written by write_image in each format decodes to the same array.
    data, aff = store_as(phantom(dtype="float32"), ras_affine(), "LPI")
    arrays = [
        load_volume(write_image(tmp_path / f"x{suffix}", data, aff)).data for suffix in SUFFIXES
    ]
    for array in arrays[1:]:
        np.testing.assert_array_equal(array, arrays[0])
