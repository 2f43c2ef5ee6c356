"""The NRRD reader: pynrrd parses the header; the voxels are read here, bounded.

Contract (:func:`read_nrrd`):

- The header is read from at most :data:`MAX_HEADER_BYTES` at the start of the file
  and parsed by pynrrd (``nrrd.read_header``); it ends at the first blank line (an
  attached ``.nrrd``) or at the end of the file (a detached ``.nhdr``).
- A detached data file (``data file:``) is confined by
  :func:`~miqa_nb.volumes._reading.confine`: its header's folder or below, and the
  data roots when given. Only regular files are opened.
- Voxel data never pass ``max_bytes``; compressed data are inflated to the size the
  header declares and no further; ``line skip`` and ``byte skip`` are checked
  against the file (``byte skip: -1``, data at the end of the file, is for raw data
  only, as the specification says); text data (at most :data:`MAX_TEXT_BYTES`) are
  parsed in chunks.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import nrrd
import numpy as np
import numpy.typing as npt

from miqa_nb.volumes._reading import (
    INFLATE_ERRORS,
    Unreadable,
    check_size,
    confine,
    inflate_prefix,
    open_regular,
    voxels,
)

__all__ = ["MAX_HEADER_BYTES", "MAX_TEXT_BYTES", "read_nrrd"]

#: The longest NRRD header read (a header is a few hundred bytes; 1 MiB leaves room
#: for long comments and key/value pairs).
MAX_HEADER_BYTES = 1 << 20
#: The most text ('ascii' encoding) data read: text is parsed in Python (bounded in
#: memory, not in time), and text NRRD files hold small volumes.
MAX_TEXT_BYTES = 16 << 20
_CHUNK = 1 << 20  # lines are skipped and text parsed this many bytes at a time
_MAX_TOKEN = 1024  # the longest number in text data

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


def read_nrrd(
    path: Path,
    *,
    data_roots: Iterable[str | os.PathLike[str]] | None,
    max_bytes: int,
) -> tuple[np.ndarray, npt.NDArray[np.float64], str]:
    """Voxels (in file axis order, non-spatial axes last), voxel -> RAS+ affine, ``'nrrd'``."""
    with open_regular(path) as fh:
        header, header_end = _header(fh)
        data_file = header.get("data file", header.get("datafile"))
        if data_file is None:
            if path.suffix.lower() == ".nhdr":
                raise Unreadable("corrupt header: a .nhdr header must name its 'data file'")
            fh.seek(header_end)
            data = _data(header, fh, max_bytes)
        else:
            if str(data_file).startswith("LIST") or "%" in str(data_file):
                raise Unreadable("NRRD data split over several files is not supported")
            data_path = confine(path, str(data_file), data_roots)
            try:
                with open_regular(data_path) as dfh:
                    data = _data(header, dfh, max_bytes)
            except Unreadable as exc:
                raise Unreadable(f"its data file {data_path}: {exc}") from exc
    return (*_geometry(header, data), "nrrd")


def _header(fh: io.FileIO) -> tuple[dict[str, Any], int]:
    """The parsed header and the offset of the first byte after it."""
    prefix = fh.read(MAX_HEADER_BYTES + 1)
    if not prefix:
        raise Unreadable("corrupt header: the file is empty")
    lines: list[bytes] = []
    pos = 0
    while True:
        nl = prefix.find(b"\n", pos)
        if nl < 0:
            if len(prefix) > MAX_HEADER_BYTES:
                raise Unreadable(
                    f"corrupt header: no end of the NRRD header (a blank line) within its "
                    f"first {MAX_HEADER_BYTES} bytes"
                )
            if pos < len(prefix):
                lines.append(prefix[pos:])
            end = len(prefix)  # a detached header runs to the end of the file
            break
        lines.append(prefix[pos : nl + 1])
        pos = nl + 1
        if len(lines) > 1 and not lines[-1].strip():
            end = pos
            break
    return nrrd.read_header(lines), end


def _data(header: dict[str, Any], fh: io.FileIO, max_bytes: int) -> np.ndarray:
    """Read the voxels from ``fh``, positioned where the data (or their line skip) start."""
    type_name = str(header.get("type", "")).lower()
    if type_name not in _NRRD_TYPES:
        raise Unreadable(f"voxel type {header.get('type')!r} is not supported")
    dtype = np.dtype(_NRRD_TYPES[type_name])
    if dtype.itemsize > 1:
        dtype = dtype.newbyteorder(">" if header.get("endian") == "big" else "<")
    sizes = tuple(int(s) for s in header["sizes"])
    if any(s < 0 for s in sizes):
        raise Unreadable(f"corrupt header: negative size in 'sizes: {sizes}'")
    nbytes = math.prod(sizes) * dtype.itemsize
    check_size(nbytes, max_bytes)
    file_size = os.fstat(fh.fileno()).st_size
    line_skip = int(header.get("line skip", header.get("lineskip", 0)))
    byte_skip = int(header.get("byte skip", header.get("byteskip", 0)))
    if line_skip < 0:
        raise Unreadable(f"corrupt header: 'line skip: {line_skip}' must be 0 or more")
    if byte_skip < -1:
        raise Unreadable(f"corrupt header: 'byte skip: {byte_skip}' must be -1 or more")
    _skip_lines(fh, line_skip)
    encoding = str(header["encoding"]).lower()
    if encoding == "raw":
        start = fh.tell() + byte_skip if byte_skip >= 0 else file_size - nbytes
        if start < fh.tell():  # byte skip -1 on a file shorter than its data
            raise Unreadable(
                f"truncated: the header announces {nbytes} bytes of voxel data (at the end "
                f"of the file, 'byte skip: -1') but only {file_size - fh.tell()} are present"
            )
        return voxels(fh, None, dtype, sizes, start, file_size)
    if byte_skip == -1:
        raise Unreadable(
            f"corrupt header: 'byte skip: -1' is only allowed with raw encoding, "
            f"not {header['encoding']!r}"
        )
    if encoding in ("gzip", "gz", "bzip2", "bz2"):
        codec = "gzip" if encoding.startswith("gz") else "bzip2"
        try:
            buf, have = inflate_prefix(fh, byte_skip + nbytes, codec=codec)
        except INFLATE_ERRORS as exc:
            raise Unreadable(f"truncated or corrupt {encoding} data ({exc})") from exc
        return voxels(None, buf, dtype, sizes, byte_skip, have)
    if encoding in ("ascii", "text", "txt"):
        text_bytes = file_size - fh.tell()
        if text_bytes > MAX_TEXT_BYTES:
            raise Unreadable(
                f"its text ('ascii') data take {text_bytes} bytes, more than the "
                f"{MAX_TEXT_BYTES} read as text; "
                "store the voxels raw or gzip-compressed"
            )
        fh.seek(byte_skip, os.SEEK_CUR)
        values = _text_values(fh, math.prod(sizes), dtype.newbyteorder("="))
        return values.reshape(sizes, order="F")
    raise Unreadable(f"NRRD encoding {header['encoding']!r} is not supported")


def _skip_lines(fh: io.FileIO, count: int) -> None:
    """Move past ``count`` line ends (each one read once; stops at the end of the file)."""
    left = count
    while left:
        start = fh.tell()
        chunk = fh.read(_CHUNK)
        if not chunk:
            raise Unreadable(f"corrupt header: 'line skip: {count}' passes the end of the file")
        at = -1
        while left:
            at = chunk.find(b"\n", at + 1)
            if at < 0:
                break
            left -= 1
        if not left:
            fh.seek(start + at + 1)


def _text_values(fh: io.FileIO, count: int, dtype: np.dtype[Any]) -> np.ndarray:
    """``count`` numbers separated by white space, parsed a chunk at a time."""
    out = np.empty(count, dtype=dtype)
    n = 0
    tail = b""
    while True:
        chunk = fh.read(_CHUNK)
        text = tail + chunk
        tokens = text.split()
        tail = b""
        if chunk and tokens and not text[-1:].isspace():
            tail = tokens.pop()  # may continue in the next chunk
            if len(tail) > _MAX_TOKEN:
                raise Unreadable(f"corrupt text data: a value longer than {_MAX_TOKEN} characters")
        if n + len(tokens) > count:
            raise Unreadable(f"the text data hold more than the {count} values of the voxels")
        try:
            out[n : n + len(tokens)] = np.array(tokens, dtype=np.float64)
        except ValueError as exc:
            raise Unreadable(f"corrupt text data: {exc}") from exc
        n += len(tokens)
        if not chunk:
            break
    if n != count:
        raise Unreadable(f"truncated: {n} values for {count} voxels")
    return out


def _geometry(
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
