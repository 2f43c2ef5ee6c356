"""Load any frame file (.nii, .nii.gz, .mgz, .mgh, .nrrd, .nhdr) into a :class:`Volume`.

This module is the volumes layer's front door to files, like ``nibabel.load``: it
picks a reader by suffix, and it (with its private helpers ``_reading`` and
``_nrrd``) is the only place that touches the disk to decode voxels. Contract:

- Headers are parsed by nibabel (``Nifti1Header``/``Nifti2Header``/``MGHHeader``)
  and pynrrd (``nrrd.read_header``); their data readers are bypassed because they copy.
- Compressed files (gzip magic, whatever the suffix) are inflated with ``isal``
  (about twice as fast as the ``gzip`` module nibabel uses) to the size the header
  declares and no further, then the array is a zero-copy ``numpy.frombuffer`` view.
- Uncompressed files are memory-mapped (opening costs nothing; pages load on use).
- The result is reoriented to RAS+ with flips/transposes (a view, no copy) and made
  read-only. Scaled NIfTI data (``scl_slope``/``scl_inter``) become float32 values.

Files may be hostile (uploads, import files naming anything), so reading is bounded:

- Only regular files are opened (a FIFO or ``/dev/zero`` is refused, never read).
- A file may hold at most ``max_bytes`` of voxel data (default
  :data:`~miqa_nb.volumes._reading.MAX_VOLUME_BYTES`), checked against the header
  before anything is inflated or allocated.
- A detached NRRD data file must lie in its header's folder or below it, after
  resolving ``..`` and symlinks, and inside ``data_roots`` when those are given.

Every failure is a :class:`~miqa_nb.core.errors.VolumeError` (an ``OSError``) whose
message names the file and the reason, so a review can go on to the next scan.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import nrrd
import numpy as np
import numpy.typing as npt
from isal import igzip_lib
from nibabel.filebasedimages import ImageFileError
from nibabel.freesurfer.mghformat import MGHError, MGHHeader
from nibabel.nifti1 import Nifti1Header
from nibabel.nifti2 import Nifti2Header
from nibabel.spatialimages import HeaderDataError
from nibabel.wrapstruct import WrapStructError

from miqa_nb.core.errors import VolumeError
from miqa_nb.core.settings import ROOTS_ENV, data_roots_named
from miqa_nb.volumes._nrrd import read_nrrd
from miqa_nb.volumes._reading import (
    INFLATE_ERRORS,
    MAX_VOLUME_BYTES,
    Unreadable,
    check_size,
    inflate_prefix,
    open_regular,
    voxels,
)
from miqa_nb.volumes.objects import allowed, default_objects, is_object, prefixes_of
from miqa_nb.volumes.orientation import axis_codes, reorient_to_ras
from miqa_nb.volumes.volume import Volume

__all__ = [
    "MAX_VOLUME_BYTES",
    "SUFFIXES",
    "LoadLimits",
    "inflate",
    "load_volume",
    "volume_suffix",
]

SUFFIXES = (".nii", ".nii.gz", ".mgz", ".mgh", ".nrrd", ".nhdr")
_GZIP_MAGIC = b"\x1f\x8b"
#: The voxel-byte bound's variable (:meth:`LoadLimits.from_environ` also reads the
#: data roots, :data:`miqa_nb.core.settings.ROOTS_ENV`).
MAX_BYTES_ENV = "MIQA_NB_MAX_VOLUME_BYTES"


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


def load_volume(
    path: str | os.PathLike[str],
    *,
    data_roots: Iterable[str | os.PathLike[str]] | None = None,
    max_bytes: int = MAX_VOLUME_BYTES,
) -> Volume:
    """Decode an image file into a RAS+ :class:`Volume`.

    Parameters
    ----------
    path : str or path-like
        A ``.nii``, ``.nii.gz``, ``.mgz``, ``.mgh``, ``.nrrd`` or ``.nhdr`` file
        (a ``.nhdr`` names its data file).
    data_roots : iterable of path-like, optional
        Folders a detached NRRD data file must lie in (besides its header's folder or
        below, which is always required). The frame file itself is not checked here:
        the catalog checked its location when it was imported.
    max_bytes : int
        The most bytes of voxel data the file may hold (inflated, memory-mapped,
        parsed from text or scaled to float32).

    Returns
    -------
    Volume
        3D, or 4D with frames on the last axis; read-only data in RAS+ order.

    Raises
    ------
    VolumeError
        The file is missing, not a regular file, truncated, has a corrupt header,
        declares more than ``max_bytes`` of voxels, names a data file outside its
        folder or the data roots, is not 3D/4D, holds no voxels or has a voxel type
        other than integers or real numbers. The message names the file and the reason.
    """
    if is_object(path):
        return _load_object(str(path), data_roots, max_bytes)
    p = Path(path)
    suffix = volume_suffix(p)
    if data_roots is not None:
        data_roots = [r for r in data_roots if not is_object(os.fspath(r))]
    try:
        if suffix in (".nrrd", ".nhdr"):
            nrrd_data, affine, fmt = read_nrrd(p, data_roots=data_roots, max_bytes=max_bytes)
            data, scale = nrrd_data, None
        else:
            data, affine, fmt, scale = _read_nibabel(
                p, mgh=suffix in (".mgz", ".mgh"), max_bytes=max_bytes
            )
    except FileNotFoundError as exc:
        missing = exc.filename or p
        raise _error(p, f"file not found: {missing}; check the path and the mount") from exc
    except IsADirectoryError as exc:
        raise _error(p, "is a folder, not an image file") from exc
    except PermissionError as exc:
        raise _error(p, f"permission denied ({exc.strerror})") from exc
    except Unreadable as exc:
        raise _error(p, str(exc)) from exc
    except (
        HeaderDataError,
        ImageFileError,
        MGHError,
        WrapStructError,
        nrrd.NRRDError,
        ValueError,
        KeyError,
        OverflowError,
    ) as exc:
        raise _error(p, f"corrupt header: {exc}") from exc
    except OSError as exc:
        raise _error(p, f"cannot read: {exc}") from exc
    return _make_volume(p, data, affine, fmt, scale)


def _load_object(
    location: str, data_roots: Iterable[str | os.PathLike[str]] | None, max_bytes: int
) -> Volume:
    """:func:`load_volume` of an ``s3://`` object, read from its local copy."""
    volume_suffix(location)
    prefixes = prefixes_of(data_roots)
    if not allowed(location, prefixes):
        raise VolumeError(
            f"{location}: reading from S3 is allowed only inside the data roots' "
            f"s3:// prefixes ({', '.join(prefixes) or 'none is set'}); add "
            f"s3://bucket[/prefix] to {ROOTS_ENV} (separated by {os.pathsep!r}) to allow it"
        )
    try:
        local = default_objects().fetch(location)
    except FileNotFoundError as exc:
        raise VolumeError(
            f"{location}: object not found; check the bucket and key, the endpoint "
            "(AWS_ENDPOINT_URL) and that the credentials (AWS_ACCESS_KEY_ID..., ~/.aws) "
            "may list it"
        ) from exc
    except (OSError, ValueError) as exc:
        raise VolumeError(f"{location}: cannot fetch the object: {exc}") from exc
    except Exception as exc:  # botocore's errors (credentials, endpoint) are not OSErrors
        raise VolumeError(
            f"{location}: cannot fetch the object ({type(exc).__name__}: {exc}); check the "
            "credentials (AWS_ACCESS_KEY_ID..., AWS_PROFILE, ~/.aws) and AWS_ENDPOINT_URL"
        ) from exc
    try:
        return load_volume(local, max_bytes=max_bytes)
    except VolumeError as exc:
        raise VolumeError(str(exc).replace(str(local), location)) from exc


@dataclass(frozen=True)
class LoadLimits:
    """The bounds of :func:`load_volume`, as one value an application builds at its edge.

    Parameters
    ----------
    data_roots : tuple of Path, optional
        See :func:`load_volume`.
    max_bytes : int
        See :func:`load_volume`.

    Examples
    --------
    >>> limits = LoadLimits.from_environ({"MIQA_NB_MAX_VOLUME_BYTES": "1000"})
    >>> limits.max_bytes, limits.data_roots
    (1000, None)
    """

    data_roots: tuple[Path | str, ...] | None = None
    max_bytes: int = MAX_VOLUME_BYTES

    @classmethod
    def from_environ(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        data_roots: Iterable[str | os.PathLike[str]] | None = None,
    ) -> LoadLimits:
        """``data_roots`` if given, else ``MIQA_NB_DATA_ROOTS`` (``os.pathsep``-separated),
        else none; ``MIQA_NB_MAX_VOLUME_BYTES`` if set, else :data:`MAX_VOLUME_BYTES`.

        Raises
        ------
        ValueError
            If ``MIQA_NB_MAX_VOLUME_BYTES`` is not a positive whole number.
        """
        env = os.environ if environ is None else environ
        if data_roots is None:
            data_roots = data_roots_named(env) or None
        text = env.get(MAX_BYTES_ENV, "").strip()
        max_bytes = MAX_VOLUME_BYTES
        if text:
            if not text.isdigit() or int(text) <= 0:
                raise ValueError(
                    f"{MAX_BYTES_ENV} must be a positive whole number of bytes; {text!r} was set"
                )
            max_bytes = int(text)
        roots = None if data_roots is None else tuple(_root(r) for r in data_roots)
        return cls(roots, max_bytes)

    def load(self, path: str | os.PathLike[str]) -> Volume:
        """:func:`load_volume` within these limits (a ``loader`` for the cache)."""
        return load_volume(path, data_roots=self.data_roots, max_bytes=self.max_bytes)


def _root(root: str | os.PathLike[str]) -> Path | str:
    """A data root: a folder, or an ``s3://`` prefix kept as text (a Path would merge '//')."""
    text = os.fspath(root)
    return text if is_object(text) else Path(text)


def inflate(compressed: bytes | memoryview, *, max_bytes: int | None = None) -> bytes:
    """Inflate gzip data (one or more members) with ``isal``.

    Parameters
    ----------
    compressed : bytes or memoryview
    max_bytes : int, optional
        Refuse data that inflate to more than this; inflation stops there (it never
        produces more than ``max_bytes + 1`` bytes).

    Raises
    ------
    EOFError
        If the data end before the end of the gzip stream (a truncated file).
    ValueError
        If the data inflate to more than ``max_bytes``.
    """
    if max_bytes is None:
        # Each member inflated in one call (isal sizes its output itself).
        parts = []
        rest: bytes | memoryview = compressed
        while True:
            inflater = igzip_lib.IgzipDecompressor(igzip_lib.DECOMP_GZIP)
            parts.append(inflater.decompress(rest))
            if not inflater.eof:
                raise EOFError("gzip data end before the end-of-stream marker: truncated")
            rest = inflater.unused_data
            if not rest.strip(b"\x00"):  # trailing zero padding is allowed
                return parts[0] if len(parts) == 1 else b"".join(parts)
    buf, have = inflate_prefix(compressed, max_bytes + 1)
    if have > max_bytes:
        raise ValueError(f"the gzip data inflate to more than {max_bytes} bytes")
    return buf[:have].tobytes()


# -- NIfTI and MGH (nibabel headers) ------------------------------------------------
_MGH_DATA_OFFSET = 284  # MGH: voxels start here; a footer of optional tags follows them
_HEAD_BYTES = 544  # enough for any header parsed first: NIfTI-2 (540 + 4), MGH (284)


def _read_nibabel(
    path: Path, *, mgh: bool, max_bytes: int
) -> tuple[np.ndarray, npt.NDArray[np.float64], str, tuple[float, float] | None]:
    # Unbuffered: FileIO.read() sizes its buffer from fstat (a buffered read() of a
    # 10 MB file grows its buffer step by step, 8 ms slower).
    with open_regular(path) as fh:
        file_size = os.fstat(fh.fileno()).st_size
        compressed = fh.read(2) == _GZIP_MAGIC
        fh.seek(0)
        buf: np.ndarray | None = None
        have = file_size
        if compressed:
            # The header first (from a few hundred inflated bytes), then the size it
            # declares, and not one byte more: a gzip bomb costs what its header says.
            head, n = _inflate(fh, _HEAD_BYTES)
            hdr, _ = _nibabel_header(io.BytesIO(head[:n].tobytes()), mgh=mgh, head=True)
            fh.seek(0)
            buf, have = _inflate(fh, _declared_end(hdr, mgh=mgh, max_bytes=max_bytes))
            hdr, fmt = _header_in(buf, have, hdr, mgh=mgh)
        else:
            hdr, fmt = _nibabel_header(fh, mgh=mgh)
            _declared_end(hdr, mgh=mgh, max_bytes=max_bytes)
        shape = tuple(int(s) for s in hdr.get_data_shape())
        dtype = hdr.get_data_dtype()
        offset = int(hdr.get_data_offset())
        affine = np.asarray(hdr.get_affine() if mgh else hdr.get_best_affine(), dtype=np.float64)
        data = voxels(None if compressed else fh, buf, dtype, shape, offset, have)
    scale = None
    if not mgh:
        slope, inter = hdr.get_slope_inter()
        if slope is not None and (slope, inter) != (1.0, 0.0):
            # The stored voxels and their float32 copy are both in memory.
            check_size(data.size * (data.itemsize + 4), max_bytes, "voxels scaled to float32")
            scale = (float(slope), float(inter or 0.0))
    return data, affine, fmt, scale


def _inflate(fh: io.FileIO, size: int) -> tuple[np.ndarray, int]:
    try:
        return inflate_prefix(fh, size)
    except INFLATE_ERRORS as exc:
        raise Unreadable(f"truncated or corrupt gzip data ({exc})") from exc


def _declared_end(hdr: Any, *, mgh: bool, max_bytes: int) -> int:
    """Where the voxels the header declares end (MGH: with its footer); refuses sizes
    over ``max_bytes``."""
    shape = tuple(int(s) for s in hdr.get_data_shape())
    if any(s < 0 for s in shape):
        raise Unreadable(f"corrupt header: negative dimension in shape {shape}")
    nbytes = math.prod(shape) * hdr.get_data_dtype().itemsize
    check_size(nbytes, max_bytes)
    offset = int(hdr.get_data_offset())
    if offset < 0:
        raise Unreadable(f"corrupt header: negative data offset {offset}")
    check_size(offset, max_bytes, "header and extensions before the voxels")
    if mgh:
        return offset + nbytes + MGHHeader._ftrdtype.itemsize
    # The whole header too, however small the offset it declares.
    return max(offset + nbytes, hdr.template_dtype.itemsize + 4)


def _header_in(buf: np.ndarray, have: int, head: Any, *, mgh: bool) -> tuple[Any, str]:
    """The whole header from the inflated bytes ``buf[:have]`` (NIfTI extensions, the
    MGH footer of optional tags), copying only the header's own bytes."""
    view = memoryview(buf)[:have]  # type: ignore[arg-type]
    if mgh:
        shape = tuple(int(s) for s in head.get_data_shape())
        end = _MGH_DATA_OFFSET + math.prod(shape) * head.get_data_dtype().itemsize
        block = bytes(view[: MGHHeader._hdrdtype.itemsize]) + bytes(view[end:])
        return MGHHeader(block, check=True), "mgh"
    offset = max(int(head.get_data_offset()), head.template_dtype.itemsize + 4)
    return _nibabel_header(io.BytesIO(view[:offset]), mgh=False)


def _nibabel_header(fh: IO[bytes], *, mgh: bool, head: bool = False) -> tuple[Any, str]:
    """Parse a header; with ``head``, from its first bytes only (no NIfTI extensions,
    no MGH footer): enough to know the shape, type and data offset."""
    if mgh:
        if head:
            hdr_bytes = fh.read(MGHHeader._hdrdtype.itemsize)
            return MGHHeader(hdr_bytes, check=True), "mgh"
        return MGHHeader.from_fileobj(fh), "mgh"
    first = fh.read(4)
    fh.seek(0)
    if len(first) < 4:
        raise Unreadable("file is too short to hold a NIfTI header")
    sizes = {int.from_bytes(first, "little"), int.from_bytes(first, "big")}
    if 348 in sizes:
        klass: type[Nifti1Header] = Nifti1Header
    elif 540 in sizes:
        klass = Nifti2Header
    else:
        raise Unreadable(
            "corrupt header: not a NIfTI file (header size field "
            f"{int.from_bytes(first, 'little')}, expected 348 or 540)"
        )
    fmt = "nifti1" if klass is Nifti1Header else "nifti2"
    if head:
        return klass(fh.read(klass.template_dtype.itemsize), check=True), fmt
    return klass.from_fileobj(fh, check=True), fmt


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
