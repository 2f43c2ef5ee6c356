"""Hostile files: nothing is read outside its place, nothing is unbounded.

Every hostile file is generated here, in ``tmp_path``: NRRD headers naming files
outside their folder (absolute, ``..``, a symlink), FIFOs, devices, gzip and bzip2
bombs, headers declaring more than the bound, and bad skips. Each must end as a
``VolumeError`` naming the file and the reason, and write nothing.
"""

from __future__ import annotations

import bz2
import gzip
import io
import os
import threading
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from isal import igzip

from miqa_nb.core.errors import VolumeError
from miqa_nb.core.settings import ROOTS_ENV
from miqa_nb.volumes import (
    MAX_VOLUME_BYTES,
    LoadLimits,
    VolumeCache,
    load_volume,
    thumbnail,
    write_planes,
)
from miqa_nb.volumes._nrrd import MAX_TEXT_BYTES
from miqa_nb.volumes._reading import inflate_prefix
from miqa_nb.volumes.io import MAX_BYTES_ENV

SIZES = (4, 5, 6)
VOXELS = bytes(range(120))  # 4 * 5 * 6 uint8 voxels, each distinct
SECRET = b"root:x:0:0:root:/root:/bin/bash\n" * 4  # 128 bytes: enough for the voxels


def nrrd_header(encoding: str = "raw", sizes: tuple[int, ...] = SIZES, **fields: str) -> bytes:
    """A NRRD header (ending in its blank line) with extra ``fields`` (``_`` for spaces)."""
    lines = [
        "NRRD0004",
        "type: uint8",
        f"dimension: {len(sizes)}",
        f"sizes: {' '.join(str(s) for s in sizes)}",
        f"encoding: {encoding}",
        "spacings: 1 1 1",
        *(f"{k.replace('_', ' ')}: {v}" for k, v in fields.items()),
    ]
    return ("\n".join(lines) + "\n\n").encode()


def error_of(path: Path, reason: str, **kwargs: object) -> VolumeError:
    """The VolumeError of loading ``path``; it names the file and ``reason``."""
    with pytest.raises(VolumeError) as info:
        load_volume(path, **kwargs)  # type: ignore[arg-type]
    assert str(path) in str(info.value)
    assert reason in str(info.value)
    return info.value


def within(seconds: float, call: Callable[[], object]) -> BaseException | None:
    """Run ``call`` in a thread; fail unless it ends within ``seconds``; its exception."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
        except BaseException as exc:
            outcome.append(exc)
        else:
            outcome.append(None)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s (blocked on a read?)"
    return outcome[0]


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A file outside the data folder that no header may show."""
    path = tmp_path / "private" / "passwd"
    path.parent.mkdir()
    path.write_bytes(SECRET)
    return path


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "data" / "project"
    folder.mkdir(parents=True)
    return folder


# -- 1. a detached data file stays in its header's folder and the data roots -----------
def test_nhdr_beside_its_raw_loads(data_dir):
    header = data_dir / "scan.nhdr"
    header.write_bytes(nrrd_header(data_file="scan.raw"))
    (data_dir / "scan.raw").write_bytes(VOXELS)
    volume = load_volume(header, data_roots=[data_dir.parent])
    assert volume.shape == SIZES
    assert sorted(np.asarray(volume.data).ravel().tolist()) == list(VOXELS)


def test_data_file_in_a_subfolder_of_the_header_loads(data_dir):
    (data_dir / "raw").mkdir()
    (data_dir / "raw" / "scan.raw").write_bytes(VOXELS)
    header = data_dir / "scan.nhdr"
    header.write_bytes(nrrd_header(data_file="raw/scan.raw"))
    assert load_volume(header).shape == SIZES


@pytest.mark.parametrize("suffix", [".nrrd", ".nhdr"])
def test_absolute_data_file_outside_is_refused(data_dir, secret, suffix):
    header = data_dir / f"evil{suffix}"
    header.write_bytes(nrrd_header(data_file=str(secret)))
    err = error_of(header, "outside the header's folder")
    assert str(secret) in str(err)


def test_dotdot_data_file_is_refused(data_dir, secret):
    header = data_dir / "evil.nrrd"
    header.write_bytes(nrrd_header(data_file="../../private/passwd"))
    err = error_of(header, "outside the header's folder")
    assert "'../../private/passwd'" in str(err) and str(secret) in str(err)


def test_symlinked_data_file_escaping_is_refused(data_dir, secret):
    (data_dir / "scan.raw").symlink_to(secret)
    header = data_dir / "evil.nhdr"
    header.write_bytes(nrrd_header(data_file="scan.raw"))
    err = error_of(header, "outside the header's folder")
    assert str(secret) in str(err)


def test_symlinked_folder_escaping_is_refused(data_dir, secret):
    (data_dir / "raw").symlink_to(secret.parent, target_is_directory=True)
    header = data_dir / "evil.nhdr"
    header.write_bytes(nrrd_header(data_file="raw/passwd"))
    error_of(header, "outside the header's folder")


def test_data_file_outside_the_given_roots_is_refused(tmp_path, data_dir):
    header = data_dir / "scan.nhdr"
    header.write_bytes(nrrd_header(data_file="scan.raw"))
    (data_dir / "scan.raw").write_bytes(VOXELS)
    elsewhere = tmp_path / "roots"
    elsewhere.mkdir()
    err = error_of(header, "outside the data roots", data_roots=[elsewhere])
    assert str(elsewhere) in str(err)


def test_the_catalog_cannot_be_shown_through_an_upload(tmp_path):
    # An uploaded .nrrd lands in <upload>/<project>/<experiment>/; the catalog sits
    # beside the upload folder, inside the data roots.
    catalog = tmp_path / "miqa.duckdb"
    catalog.write_bytes(b"DUCK" * 64)
    folder = tmp_path / "uploads" / "project-1" / "experiment-1"
    folder.mkdir(parents=True)
    upload = folder / "scan.nrrd"
    upload.write_bytes(nrrd_header(data_file="../../../miqa.duckdb"))
    thumbs, out = tmp_path / "thumbnails", tmp_path / "render"
    limits = LoadLimits(data_roots=(tmp_path,))
    with VolumeCache(limits=limits) as cache, pytest.raises(VolumeError, match="outside"):
        cache.get(upload)
    with pytest.raises(VolumeError, match="outside"):
        thumbnail(upload, thumbs, loader=limits.load)
    with pytest.raises(VolumeError, match="outside"):
        write_planes(upload, out, limits=limits)
    assert not thumbs.exists() or not any(thumbs.iterdir())
    assert not out.exists()


# -- 2. /dev/zero and other endless sources -----------------------------------------
@pytest.mark.parametrize("encoding", ["gzip", "ascii", "raw"])
def test_dev_zero_as_data_file_is_refused(data_dir, encoding):
    header = data_dir / "zero.nrrd"
    header.write_bytes(nrrd_header(encoding, data_file="/dev/zero"))
    err = within(10, lambda: load_volume(header))
    assert isinstance(err, VolumeError) and "/dev/zero" in str(err)


@pytest.mark.parametrize("encoding", ["gzip", "ascii"])
def test_endless_data_file_in_the_folder_is_not_read(data_dir, encoding):
    # Where containment allows the file, a FIFO (endless, or blocking) is still refused.
    header = data_dir / "zero.nrrd"
    header.write_bytes(nrrd_header(encoding, data_file="zero"))
    os.mkfifo(data_dir / "zero")
    err = within(10, lambda: load_volume(header))
    assert isinstance(err, VolumeError) and "not a regular file" in str(err)


def test_frame_symlinked_to_a_device_is_refused(tmp_path):
    frame = tmp_path / "scan.nii.gz"
    frame.symlink_to("/dev/zero")
    err = within(10, lambda: load_volume(frame))
    assert isinstance(err, VolumeError) and "device" in str(err) and str(frame) in str(err)


def test_ascii_data_longer_than_declared_are_refused(data_dir):
    header = data_dir / "long.nrrd"
    header.write_bytes(nrrd_header("ascii") + b"0 " * (5 * 120))
    error_of(header, "more than the 120 values")


def test_ascii_data_load_when_complete(data_dir):
    header = data_dir / "text.nrrd"
    text = "\n".join(" ".join(str(v) for v in VOXELS[i : i + 7]) for i in range(0, 120, 7))
    header.write_bytes(nrrd_header("ascii") + text.encode())
    volume = load_volume(header)
    assert sorted(np.asarray(volume.data).ravel().tolist()) == list(VOXELS)


def test_ascii_data_larger_than_the_text_bound_are_not_parsed(data_dir):
    header = data_dir / "big-text.nrrd"
    header.write_bytes(nrrd_header("ascii") + b"0 " * (MAX_TEXT_BYTES // 2 + 1))
    err = within(10, lambda: load_volume(header))
    assert isinstance(err, VolumeError) and f"more than the {MAX_TEXT_BYTES}" in str(err)


def test_ascii_value_without_end_is_refused(data_dir):
    header = data_dir / "endless.nrrd"
    header.write_bytes(nrrd_header("ascii") + b"1" * (3 << 20))
    error_of(header, "a value longer than")


# -- 3. bombs: inflation stops at the size the header declares ----------------------
def _bomb_nifti(path: Path, zeros: int) -> bytes:
    """A small valid NIfTI (4x5x6 uint8) followed by ``zeros`` zero bytes, gzipped."""
    img = nib.Nifti1Image(np.arange(120, dtype=np.uint8).reshape(SIZES), np.eye(4))
    img.header.set_data_offset(352)
    raw = img.header.binaryblock + b"\0" * 4 + img.dataobj.tobytes(order="F")
    with igzip.open(path, "wb", compresslevel=1) as fh:
        fh.write(raw)
        chunk = b"\0" * (1 << 20)
        for _ in range(zeros >> 20):
            fh.write(chunk)
    return raw


def _buffer_size(array: np.ndarray) -> int:
    """Bytes of the buffer a volume's voxels are a view of (what inflation allocated)."""
    base = array
    while isinstance(base.base, np.ndarray):
        base = base.base
    return base.nbytes if base.base is None else len(memoryview(base.base))


def test_gzip_bomb_inflates_only_what_the_header_declares(tmp_path):
    path = tmp_path / "bomb.nii.gz"
    raw = _bomb_nifti(path, 256 << 20)
    assert path.stat().st_size < (1 << 20)  # 256 MiB of zeros behind 120 voxels
    volume = load_volume(path)
    assert volume.shape == SIZES
    assert _buffer_size(volume.data) == len(raw)  # 472 bytes inflated, not 256 MiB


def test_header_declaring_more_than_the_bound_is_refused(tmp_path):
    path = tmp_path / "huge.nii.gz"
    hdr = nib.Nifti1Header()
    hdr.set_data_shape((2048, 2048, 2048))
    hdr.set_data_dtype(np.float64)
    with igzip.open(path, "wb") as fh:
        fh.write(hdr.binaryblock + b"\0" * 4 + b"\0" * (8 << 20))
    err = error_of(path, "more than the limit")
    assert str(2048**3 * 8) in str(err) and str(MAX_VOLUME_BYTES) in str(err)


def test_the_bound_is_configurable(tmp_path, make_file):
    path = make_file(".nii.gz")  # 20 x 24 x 16 int16: 15360 bytes of voxels
    error_of(path, "more than the limit of 15000 bytes", max_bytes=15000)
    assert load_volume(path, max_bytes=15360).shape == (20, 24, 16)
    uncompressed = make_file(".nii")
    error_of(uncompressed, "more than the limit", max_bytes=15000)


@pytest.mark.parametrize("encoding", ["gzip", "bzip2"])
def test_nrrd_bomb_inflates_only_what_the_header_declares(data_dir, encoding):
    payload = VOXELS + b"\0" * (8 << 20)
    compress = gzip.compress if encoding == "gzip" else bz2.compress
    header = data_dir / f"bomb-{encoding}.nrrd"
    header.write_bytes(nrrd_header(encoding) + compress(payload, 1))
    volume = load_volume(header)
    assert _buffer_size(volume.data) == len(VOXELS)


@pytest.mark.parametrize("codec", ["gzip", "bzip2"])
def test_inflate_prefix_never_returns_more_than_asked(codec):
    compress = gzip.compress if codec == "gzip" else bz2.compress
    two_members = compress(b"a" * 1000) + compress(b"b" * 1000)

    def inflated(size: int) -> bytes:
        buf, have = inflate_prefix(two_members, size, codec=codec)
        assert len(buf) == size  # the one buffer allocated: never more than asked
        return buf[:have].tobytes()

    assert inflated(1500) == b"a" * 1000 + b"b" * 500
    assert inflated(10) == b"a" * 10
    assert inflated(5000) == b"a" * 1000 + b"b" * 1000
    padded = io.BytesIO(two_members + b"\0" * 100)
    assert inflate_prefix(padded, 5000, codec=codec)[1] == 2000
    with pytest.raises(EOFError):
        inflate_prefix(two_members[:-30], 5000, codec=codec)


# -- 4. only regular files are opened ------------------------------------------------
@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".mgz", ".nrrd"])
def test_fifo_frame_is_refused_without_blocking(tmp_path, suffix):
    fifo = tmp_path / f"scan{suffix}"
    os.mkfifo(fifo)
    err = within(10, lambda: load_volume(fifo))
    assert isinstance(err, VolumeError)
    assert str(fifo) in str(err) and "FIFO" in str(err) and "not a regular file" in str(err)


def test_fifo_frame_does_not_hang_the_cache_or_thumbnails(tmp_path):
    fifo = tmp_path / "scan.nii.gz"
    os.mkfifo(fifo)
    with VolumeCache() as cache:
        assert isinstance(within(10, lambda: cache.get(fifo)), VolumeError)
    assert isinstance(within(10, lambda: thumbnail(fifo, tmp_path / "t")), VolumeError)
    assert not (tmp_path / "t").exists() or not any((tmp_path / "t").iterdir())


def test_fifo_data_file_is_refused_without_blocking(data_dir):
    os.mkfifo(data_dir / "scan.raw")
    header = data_dir / "scan.nhdr"
    header.write_bytes(nrrd_header(data_file="scan.raw"))
    err = within(10, lambda: load_volume(header))
    assert isinstance(err, VolumeError)
    assert "scan.raw" in str(err) and "FIFO" in str(err)


# -- 5. skips -------------------------------------------------------------------------
def test_byte_skip_minus_one_on_a_short_file(data_dir):
    header = data_dir / "short.nrrd"
    header.write_bytes(nrrd_header(byte_skip="-1") + VOXELS[:50])
    error_of(header, "truncated")


def test_byte_skip_minus_one_reads_the_end_of_the_file(data_dir):
    header = data_dir / "end.nrrd"
    header.write_bytes(nrrd_header(byte_skip="-1") + b"junk" * 10 + VOXELS)
    volume = load_volume(header)
    assert sorted(np.asarray(volume.data).ravel().tolist()) == list(VOXELS)


@pytest.mark.parametrize(
    ("fields", "encoding", "reason"),
    [
        ({"byte_skip": "-2"}, "raw", "'byte skip: -2' must be -1 or more"),
        ({"byte_skip": "-1"}, "gzip", "only allowed with raw encoding"),
        ({"byte_skip": "99999999999999999999"}, "raw", "truncated"),
        ({"line_skip": "-1"}, "raw", "'line skip: -1' must be 0 or more"),
        ({"line_skip": "1000000000000"}, "raw", "passes the end of the file"),
    ],
)
def test_bad_skips_are_volume_errors(data_dir, fields, encoding, reason):
    header = data_dir / "skip.nrrd"
    header.write_bytes(nrrd_header(encoding, **fields) + VOXELS)
    err = within(10, lambda: load_volume(header))
    assert isinstance(err, VolumeError) and reason in str(err) and str(header) in str(err)


def test_header_without_end_is_refused(tmp_path):
    path = tmp_path / "endless.nrrd"
    path.write_bytes(b"NRRD0004\n# " + b"x" * (2 << 20))
    error_of(path, "no end of the NRRD header")


# -- limits at the edge --------------------------------------------------------------
def test_load_limits_from_the_environment(tmp_path):
    env = {ROOTS_ENV: f"{tmp_path}{os.pathsep}/srv/data", MAX_BYTES_ENV: "4096"}
    limits = LoadLimits.from_environ(env)
    assert limits == LoadLimits((tmp_path, Path("/srv/data")), 4096)
    assert LoadLimits.from_environ(env, data_roots=["/x"]).data_roots == (Path("/x"),)
    assert LoadLimits.from_environ({}) == LoadLimits(None, MAX_VOLUME_BYTES)
    with pytest.raises(ValueError, match=MAX_BYTES_ENV):
        LoadLimits.from_environ({MAX_BYTES_ENV: "1e9"})


def test_cache_takes_limits_or_a_loader_not_both():
    with pytest.raises(ValueError, match="not both"):
        VolumeCache(loader=load_volume, limits=LoadLimits())
