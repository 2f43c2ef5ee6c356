"""Load any frame file (.nii, .nii.gz, .mgz, .mgh, .nrrd, .nhdr) into a :class:`Volume`.

This module is the volumes layer's front door to files, like ``nibabel.load``: it
picks a reader by suffix, and it is the only place that touches the disk to decode
voxels. Contract:

- Compressed files (gzip magic, whatever the suffix) are read whole and inflated with
  ``isal`` (about twice as fast as the ``gzip`` module nibabel uses), then the array
  is a zero-copy ``numpy.frombuffer`` view of the inflated bytes. Headers are parsed
  by nibabel (``Nifti1Header``/``Nifti2Header``/``MGHHeader``) and pynrrd
  (``nrrd.read_header``); their data readers are bypassed because they copy.
- Uncompressed files are memory-mapped (opening costs nothing; pages load on use).
- The result is reoriented to RAS+ with flips/transposes (a view, no copy) and made
  read-only. Scaled NIfTI data (``scl_slope``/``scl_inter``) become float32 values.
- Every failure is a :class:`~miqa_nb.core.errors.VolumeError` (an ``OSError``) whose
  message names the file and the reason, so a review can go on to the next scan.
"""

from __future__ import annotations

import bz2
import io
import os
from pathlib import Path
from typing import IO, Any, cast

import nrrd
import numpy as np
import numpy.typing as npt
from isal import isal_zlib
from nibabel.filebasedimages import ImageFileError
from nibabel.freesurfer.mghformat import MGHHeader
from nibabel.nifti1 import Nifti1Header
from nibabel.nifti2 import Nifti2Header
from nibabel.spatialimages import HeaderDataError

from miqa_nb.core.errors import VolumeError
from miqa_nb.volumes.orientation import axis_codes, reorient_to_ras
from miqa_nb.volumes.volume import Volume

__all__ = ["SUFFIXES", "inflate", "load_volume", "volume_suffix"]

SUFFIXES = (".nii", ".nii.gz", ".mgz", ".mgh", ".nrrd", ".nhdr")
_GZIP_MAGIC = b"\x1f\x8b"

# NRRD "type" field -> numpy type (without byte order); NRRD spec, section "type".
_NRRD_TYPES = {
    **dict.fromkeys(["signed char", "int8", "int8_t"], "i1"),
    **dict.fromkeys(["uchar", "unsigned char", "uint8", "uint8_t"], "u1"),
    **dict.fromkeys(
        ["short", "short int", "signed short", "signed short int", "int16", "int16_t"], "i2"
    ),
    **dict.fromkeys(["ushort", "unsigned short", "unsigned short int", "uint16", "uint16_t"], "u2"),
    **dict.fromkeys(["int", "signed int", "int32", "int32_t"], "i4"),
    **dict.fromkeys(["uint", "unsigned int", "uint32", "uint32_t"], "u4"),
    **dict.fromkeys(
        [
            "longlong",
            "long long",
            "long long int",
            "signed long long",
            "signed long long int",
            "int64",
            "int64_t",
        ],
        "i8",
    ),
    **dict.fromkeys(
        ["ulonglong", "unsigned long long", "unsigned long long int", "uint64", "uint64_t"], "u8"
    ),
    "float": "f4",
    "double": "f8",
}

# NRRD "space" -> signs turning its axes into RAS+. Non-anatomical spaces
# (scanner-xyz, 3D-right-handed, ...) have no defined patient frame: taken as RAS.
_NRRD_SPACES = {
    **dict.fromkeys(["right-anterior-superior", "ras"], (1.0, 1.0, 1.0)),
    **dict.fromkeys(["left-anterior-superior", "las"], (-1.0, 1.0, 1.0)),
    **dict.fromkeys(["left-posterior-superior", "lps"], (-1.0, -1.0, 1.0)),
}


# isal's stubs declare its error as an instance; it is an exception class.
_ISAL_ERROR = cast(type[Exception], isal_zlib.error)
_INFLATE_ERRORS = (EOFError, _ISAL_ERROR)


class _Unreadable(Exception):
    """Internal: a reason a file cannot be decoded (becomes a VolumeError)."""


def volume_suffix(path: str | os.PathLike[str]) -> str:
    """Return the image suffix of ``path`` (``'.nii.gz'``, ``'.mgz'``, ...), lower case.

    Raises
    ------
    VolumeError
        If the suffix is not one of :data:`SUFFIXES`.
    """
    name = Path(path).name.lower()
    for suffix in sorted(SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return suffix
    raise _error(
        path,
        f"unsupported file type {''.join(Path(path).suffixes) or '(no suffix)'!r}; "
        f"expected one of {', '.join(SUFFIXES)}",
    )


def load_volume(path: str | os.PathLike[str]) -> Volume:
    """Decode an image file into a RAS+ :class:`Volume`.

    Parameters
    ----------
    path : str or path-like
        A ``.nii``, ``.nii.gz``, ``.mgz``, ``.mgh``, ``.nrrd`` or ``.nhdr`` file
        (a ``.nhdr`` names its data file).

    Returns
    -------
    Volume
        3D, or 4D with frames on the last axis; read-only data in RAS+ order.

    Raises
    ------
    VolumeError
        The file is missing, truncated, has a corrupt header, is not 3D/4D, holds no
        voxels or has a voxel type other than integers or real numbers. The message
        names the file and the reason.
    """
    p = Path(path)
    suffix = volume_suffix(p)
    try:
        if suffix in (".nrrd", ".nhdr"):
            data, affine, fmt, scale = (*_read_nrrd(p), None)
        else:
            data, affine, fmt, scale = _read_nibabel(p, mgh=suffix in (".mgz", ".mgh"))
    except FileNotFoundError as exc:
        missing = exc.filename or p
        raise _error(p, f"file not found: {missing}; check the path and the mount") from exc
    except IsADirectoryError as exc:
        raise _error(p, "is a folder, not an image file") from exc
    except PermissionError as exc:
        raise _error(p, f"permission denied ({exc.strerror})") from exc
    except _Unreadable as exc:
        raise _error(p, str(exc)) from exc
    except (HeaderDataError, ImageFileError, nrrd.NRRDError, ValueError, KeyError) as exc:
        raise _error(p, f"corrupt header: {exc}") from exc
    except OSError as exc:
        raise _error(p, f"cannot read: {exc}") from exc
    return _make_volume(p, data, affine, fmt, scale)


def inflate(compressed: bytes | memoryview) -> bytes:
    """Inflate gzip data (one or more members) with ``isal``.

    Raises
    ------
    EOFError
        If the data end before the end of the gzip stream (a truncated file).
    """
    parts = []
    rest: bytes | memoryview = compressed
    while True:
        d = isal_zlib.decompressobj(31)
        parts.append(d.decompress(rest))
        if not d.eof:
            raise EOFError("gzip data end before the end-of-stream marker: the file is truncated")
        rest = d.unused_data
        if not rest or not rest.strip(b"\x00"):  # trailing zero padding is allowed
            break
    return parts[0] if len(parts) == 1 else b"".join(parts)


# -- NIfTI and MGH (nibabel headers) ------------------------------------------------
def _read_nibabel(
    path: Path, *, mgh: bool
) -> tuple[np.ndarray, npt.NDArray[np.float64], str, tuple[float, float] | None]:
    # Unbuffered: FileIO.read() sizes its buffer from fstat (a buffered read() of a
    # 10 MB file grows its buffer step by step, 8 ms slower).
    with open(path, "rb", buffering=0) as fh:
        compressed = fh.read(2) == _GZIP_MAGIC
        fh.seek(0)
        if compressed:
            try:
                buf = inflate(fh.read())
            except _INFLATE_ERRORS as exc:
                raise _Unreadable(f"truncated or corrupt gzip data ({exc})") from exc
            hdr, fmt = _nibabel_header(io.BytesIO(buf), mgh=mgh)
        else:
            hdr, fmt = _nibabel_header(fh, mgh=mgh)
    shape = tuple(int(s) for s in hdr.get_data_shape())
    dtype = hdr.get_data_dtype()
    offset = int(hdr.get_data_offset())
    affine = np.asarray(hdr.get_affine() if mgh else hdr.get_best_affine(), dtype=np.float64)
    data = _array(path, buf if compressed else None, dtype, shape, offset)
    scale = None
    if not mgh:
        slope, inter = hdr.get_slope_inter()
        if slope is not None and (slope, inter) != (1.0, 0.0):
            scale = (float(slope), float(inter or 0.0))
    return data, affine, fmt, scale


def _nibabel_header(fh: IO[bytes], *, mgh: bool) -> tuple[Any, str]:
    if mgh:
        return MGHHeader.from_fileobj(fh), "mgh"
    first = fh.read(4)
    fh.seek(0)
    if len(first) < 4:
        raise _Unreadable("file is too short to hold a NIfTI header")
    sizes = {int.from_bytes(first, "little"), int.from_bytes(first, "big")}
    if 348 in sizes:
        return Nifti1Header.from_fileobj(fh, check=True), "nifti1"
    if 540 in sizes:
        return Nifti2Header.from_fileobj(fh, check=True), "nifti2"
    raise _Unreadable(
        f"corrupt header: not a NIfTI file (header size field {int.from_bytes(first, 'little')}, "
        "expected 348 or 540)"
    )


def _array(
    path: Path,
    buf: bytes | None,
    dtype: np.dtype[Any],
    shape: tuple[int, ...],
    offset: int,
) -> np.ndarray:
    """Voxels stored in Fortran order at ``offset`` of ``buf`` (or of the file)."""
    if any(s < 0 for s in shape):
        raise _Unreadable(f"corrupt header: negative dimension in shape {shape}")
    if dtype.kind not in "biuf":
        raise _Unreadable(
            f"voxel type {dtype} is not supported; expected integers or real numbers "
            "(complex and RGB images cannot be reviewed here)"
        )
    count = int(np.prod(shape, dtype=np.int64))
    if count == 0:
        return np.zeros(shape, dtype=dtype)  # rejected with a clear message later
    need = offset + count * dtype.itemsize
    have = len(buf) if buf is not None else path.stat().st_size
    if have < need:
        raise _Unreadable(
            f"truncated: the header announces {need - offset} bytes of voxel data "
            f"but only {max(have - offset, 0)} are present"
        )
    if buf is not None:
        flat = np.frombuffer(buf, dtype=dtype, count=count, offset=offset)
        return flat.reshape(shape, order="F")
    return np.asarray(np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F"))


# -- NRRD (pynrrd header, our data reader) ------------------------------------------
def _read_nrrd(path: Path) -> tuple[np.ndarray, npt.NDArray[np.float64], str]:
    with open(path, "rb") as fh:
        header = nrrd.read_header(fh)
        data_file = header.get("data file", header.get("datafile"))
        if data_file is None:
            if path.suffix.lower() == ".nhdr":
                raise _Unreadable("corrupt header: a .nhdr header must name its 'data file'")
            data = _nrrd_data(path, header, fh)
        else:
            if str(data_file).startswith("LIST") or "%" in str(data_file):
                raise _Unreadable("NRRD data split over several files is not supported")
            data_path = Path(data_file)
            if not data_path.is_absolute():
                data_path = path.parent / data_path
            with open(data_path, "rb") as dfh:
                data = _nrrd_data(data_path, header, dfh)
    return (*_nrrd_geometry(header, data), "nrrd")


def _nrrd_data(data_path: Path, header: dict[str, Any], fh: IO[bytes]) -> np.ndarray:
    type_name = str(header.get("type", "")).lower()
    if type_name not in _NRRD_TYPES:
        raise _Unreadable(f"voxel type {header.get('type')!r} is not supported")
    dtype = np.dtype(_NRRD_TYPES[type_name])
    if dtype.itemsize > 1:
        dtype = dtype.newbyteorder(">" if header.get("endian") == "big" else "<")
    sizes = tuple(int(s) for s in header["sizes"])
    count = int(np.prod(sizes, dtype=np.int64))
    nbytes = count * dtype.itemsize
    for _ in range(int(header.get("line skip", header.get("lineskip", 0)))):
        fh.readline()
    byte_skip = int(header.get("byte skip", header.get("byteskip", 0)))
    encoding = str(header["encoding"]).lower()
    if encoding == "raw":
        start = fh.tell() + byte_skip if byte_skip >= 0 else data_path.stat().st_size - nbytes
        return _array(data_path, None, dtype, sizes, start)
    if encoding in ("gzip", "gz", "bzip2", "bz2"):
        try:
            buf = inflate(fh.read()) if encoding.startswith("gz") else bz2.decompress(fh.read())
        except (EOFError, _ISAL_ERROR, OSError) as exc:
            raise _Unreadable(f"truncated or corrupt {encoding} data ({exc})") from exc
        start = byte_skip if byte_skip >= 0 else len(buf) - nbytes
        return _array(data_path, buf, dtype, sizes, max(start, 0))
    if encoding in ("ascii", "text", "txt"):
        values = np.array(fh.read().split(), dtype=np.float64)
        if values.size != count:
            raise _Unreadable(f"truncated: {values.size} values for {count} voxels")
        return values.astype(dtype.newbyteorder("=")).reshape(sizes, order="F")
    raise _Unreadable(f"NRRD encoding {header['encoding']!r} is not supported")


def _nrrd_geometry(
    header: dict[str, Any], data: np.ndarray
) -> tuple[np.ndarray, npt.NDArray[np.float64]]:
    """Move non-spatial axes last; build the voxel -> RAS+ affine."""
    ndim = data.ndim
    directions = header.get("space directions")
    if directions is not None:
        dirs = np.asarray(directions, dtype=np.float64).reshape(ndim, -1)
        spatial = [a for a in range(ndim) if np.all(np.isfinite(dirs[a])) and dirs[a, :3].any()]
    else:
        kinds = [str(k).lower() for k in header.get("kinds", [])]
        spatial = [a for a, k in enumerate(kinds) if k in ("domain", "space")] or list(range(ndim))
        spatial = spatial[:3]
        spacings = np.asarray(header.get("spacings", [1.0] * ndim), dtype=np.float64)
        spacings = np.where(np.isfinite(spacings), spacings, 1.0)
        dirs = np.zeros((ndim, 3))
        for n, a in enumerate(spatial):
            dirs[a, n] = spacings[a]
    if len(spatial) != 3:
        return data, np.eye(4)  # dimensionality is reported by _make_volume
    others = [a for a in range(ndim) if a not in spatial]
    data = data.transpose(spatial + others)
    affine = np.eye(4)
    affine[:3, :3] = dirs[spatial, :3].T
    origin = header.get("space origin")
    if origin is not None and np.all(np.isfinite(origin)):
        affine[:3, 3] = np.asarray(origin, dtype=np.float64)[:3]
    space = str(header.get("space", "ras")).lower().removesuffix("-time")
    signs = _NRRD_SPACES.get(space.removesuffix("t") if len(space) == 4 else space, (1, 1, 1))
    return data, np.diag([*signs, 1.0]) @ affine


# -- common --------------------------------------------------------------------------
def _make_volume(
    path: Path,
    data: np.ndarray,
    affine: npt.NDArray[np.float64],
    fmt: str,
    scale: tuple[float, float] | None,
) -> Volume:
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim not in (3, 4):
        raise _error(
            path,
            f"has {data.ndim} dimensions (shape {data.shape}); a scan must be 3D, "
            "or 4D for a series of frames",
        )
    if data.size == 0:
        raise _error(path, f"holds no voxels (shape {data.shape})")
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise _error(path, f"corrupt header: the voxel-to-world affine is singular:\n{affine}")
    if data.dtype.kind == "b":
        data = data.view(np.uint8)
    if scale is not None:
        slope, inter = scale
        scaled = data.astype(np.float32)
        scaled *= np.float32(slope)
        scaled += np.float32(inter)
        data = scaled
    source_axes = axis_codes(affine)
    data, ras_affine = reorient_to_ras(data, affine)
    data = data.view()
    data.flags.writeable = False
    return Volume(path=path, data=data, affine=ras_affine, source_axes=source_axes, file_format=fmt)


def _error(path: str | os.PathLike[str], reason: str) -> VolumeError:
    # The message carries the path; setting OSError.filename would change str(err).
    return VolumeError(f"{path}: {reason}")
