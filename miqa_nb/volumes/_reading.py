"""Reading frame files that may be hostile: regular files only, bounded inflation.

The volumes layer reads files that reviewers upload or that import files name, so
every read here is bounded in what it may touch, in memory and in time:

- :func:`open_regular` opens a path without blocking (``O_NONBLOCK``) and refuses
  anything that is not a regular file *on the opened descriptor* (``fstat``), so a
  FIFO, a device such as ``/dev/zero`` or a socket never hangs a render, whatever
  the path was swapped to between a check and the open.
- :func:`inflate_prefix` inflates gzip or bzip2 data (one or more members), read a
  few MiB at a time, into one buffer of the size the caller knows from the header,
  and no further: a small file that would inflate to gigabytes (a "bomb") costs what
  its header declares, never what its stream would produce.
- :func:`confine` resolves a detached data file (``..`` and symlinks) and refuses
  it unless it lies in its header's folder or below it, and inside the data roots
  when those are given.

Reasons become :class:`Unreadable`; :mod:`miqa_nb.volumes.io` turns them into a
:class:`~miqa_nb.core.errors.VolumeError` naming the file.
"""

from __future__ import annotations

import bz2
import functools
import io
import math
import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, cast

import numpy as np
from isal import igzip_lib

__all__ = [
    "INFLATE_ERRORS",
    "MAX_VOLUME_BYTES",
    "Unreadable",
    "check_size",
    "confine",
    "inflate_prefix",
    "open_regular",
    "voxels",
]

# isal's stubs declare its error as an instance; it is an exception class.
_ISAL_ERROR = cast(type[Exception], igzip_lib.IsalError)
#: What :func:`inflate_prefix` raises for truncated or corrupt data.
INFLATE_ERRORS: tuple[type[Exception], ...] = (EOFError, OSError, ValueError, _ISAL_ERROR)

#: Default bound on the voxel bytes one file may hold (448 MiB, 470 MB): a render of
#: any file then stays under 700 MB of memory (a process that imported the volumes
#: layer holds about 185 MB before it reads a file). A larger genuine file needs a
#: larger ``max_bytes`` (``MIQA_NB_MAX_VOLUME_BYTES`` where the application builds
#: its cache).
MAX_VOLUME_BYTES = 448 << 20


class Unreadable(Exception):
    """Internal: a reason a file cannot be decoded (becomes a VolumeError)."""


def open_regular(path: str | os.PathLike[str]) -> io.FileIO:
    """Open ``path`` for reading (unbuffered) if, once open, it is a regular file.

    Raises
    ------
    Unreadable
        For a folder, FIFO, device or socket (nothing is read from it).
    OSError
        ``FileNotFoundError``, ``PermissionError``, ... from the open itself.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    flags |= getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags)
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise Unreadable("is a folder, not an image file")
        if not stat.S_ISREG(mode):
            raise Unreadable(f"is a {_kind(mode)}, not a regular file; only regular files are read")
        return io.FileIO(fd, "rb", closefd=True)
    except BaseException:
        os.close(fd)
        raise


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "special file"


def check_size(nbytes: int, max_bytes: int, what: str = "voxel data") -> None:
    """Refuse ``nbytes`` of ``what`` when it passes ``max_bytes``.

    Raises
    ------
    Unreadable
        Naming both sizes and the setting that raises the bound.
    """
    if nbytes > max_bytes:
        raise Unreadable(
            f"the header declares {nbytes} bytes of {what} ({nbytes / 2**20:.1f} MiB), "
            f"more than the limit of {max_bytes} bytes ({max_bytes / 2**20:.1f} MiB) a file "
            "may decode to; if the file is genuine, raise max_bytes "
            "(MIQA_NB_MAX_VOLUME_BYTES for the review and dashboard)"
        )


def inflate_prefix(
    source: bytes | memoryview | io.RawIOBase, size: int, *, codec: str = "gzip"
) -> tuple[np.ndarray, int]:
    """The first ``size`` bytes that ``source`` inflates to, inflating no further.

    The output buffer is allocated once, ``size`` bytes; the compressed data are fed
    a few MiB at a time (read from the file, or sliced from memory) and inflated in
    pieces of at most :data:`_PIECE` bytes copied into it. Memory is therefore
    ``size`` plus a few MiB, whatever the data would inflate to, and however large
    the compressed file is. Concatenated members (streams) follow one another; zero
    bytes after a member are allowed.

    Parameters
    ----------
    source : bytes, memoryview or binary file
        gzip or bzip2 data (a file is read from its current position).
    size : int
        The most bytes wanted.
    codec : {'gzip', 'bzip2'}

    Returns
    -------
    (ndarray of uint8, int)
        The buffer (``size`` bytes) and how many of them were inflated: fewer than
        ``size`` when the data hold fewer (the caller reports what is missing).

    Raises
    ------
    EOFError
        If the data end inside a stream before ``size`` bytes came out (truncated).
    OSError, ValueError, isal's IsalError
        If the data are not valid for ``codec`` (all in :data:`INFLATE_ERRORS`).
    """
    chunks = _chunks(source)
    out = np.empty(size, dtype=np.uint8)
    have = 0
    pending: bytes | memoryview = b""
    inflater = _inflater(codec)
    fed = False  # whether the current member has been given any input
    while have < size:
        if inflater.eof:
            pending = _skip_zeros(inflater.unused_data, chunks)
            if not pending:
                break  # the last member ended
            inflater, fed = _inflater(codec), False
        data: bytes | memoryview = b""
        if inflater.needs_input:
            data, pending = pending or next(chunks, b""), b""
            if not data:
                if fed:
                    raise EOFError(
                        "the data end before the end-of-stream marker: the file is truncated"
                    )
                break
            fed = True
        piece = inflater.decompress(data, min(size - have, _PIECE))
        out[have : have + len(piece)] = np.frombuffer(piece, dtype=np.uint8)
        have += len(piece)
    return out, have


_CHUNK = 256 << 10  # compressed bytes fed at a time (faster than bigger ones)
_PIECE = 16 << 20  # the most inflated bytes asked of one call


def _inflater(codec: str) -> Any:
    if codec == "gzip":
        return igzip_lib.IgzipDecompressor(igzip_lib.DECOMP_GZIP)
    return bz2.BZ2Decompressor()


def _chunks(source: bytes | memoryview | io.RawIOBase) -> Iterator[bytes | memoryview]:
    if isinstance(source, bytes | memoryview):
        view = memoryview(source)
        return (view[i : i + _CHUNK] for i in range(0, len(view), _CHUNK))
    return iter(functools.partial(source.read, _CHUNK), b"")


def _skip_zeros(rest: bytes, chunks: Iterator[bytes | memoryview]) -> bytes:
    """What follows a member once zero padding is skipped (b"" at the end of the data)."""
    while True:
        rest = bytes(rest).lstrip(b"\x00")
        if rest:
            return rest
        rest = bytes(next(chunks, b""))
        if not rest:
            return b""


def confine(
    header: Path, value: str, roots: Iterable[str | os.PathLike[str]] | None = None
) -> Path:
    """The real path of the data file ``value`` that the detached header ``header`` names.

    A relative ``value`` is relative to the header's folder (the NRRD specification).
    After resolving ``..`` and symlinks the file must lie in the header's own (real)
    folder or below it -- where a ``.nhdr`` and its ``.raw`` are written side by side
    -- and, when ``roots`` are given, inside one of them too. Both conditions hold for
    every legitimate detached file under the data roots; the first alone stops a
    header from naming ``/etc/passwd``, ``../../catalog.duckdb`` or a symlink to them.

    Raises
    ------
    Unreadable
        Naming the value, where it leads, and the folder it had to stay in.
    """
    candidate = Path(value) if os.path.isabs(value) else header.parent / value
    real = os.path.realpath(candidate)
    home = os.path.realpath(header.parent)
    if not _within(real, home):
        raise Unreadable(
            f"its data file {value!r} leads to {real}, outside the header's folder {home}; "
            "a detached data file must lie in its header's folder or below it"
        )
    if roots is not None:
        folders = [os.path.realpath(os.fspath(r)) for r in roots]
        if not any(_within(real, folder) for folder in folders):
            raise Unreadable(
                f"its data file {value!r} leads to {real}, outside the data roots "
                f"{os.pathsep.join(folders)}; move the header and its data file inside them"
            )
    return Path(real)


def _within(real: str, folder: str) -> bool:
    return (real.rstrip(os.sep) + os.sep).startswith(folder.rstrip(os.sep) + os.sep)


def voxels(
    fh: io.FileIO | None,
    buf: bytes | np.ndarray | None,
    dtype: np.dtype[Any],
    shape: tuple[int, ...],
    offset: int,
    have: int,
) -> np.ndarray:
    """Voxels stored in Fortran order at ``offset`` of ``buf``, or of the open file ``fh``.

    ``have`` is the number of bytes available (``len(buf)`` or the file's size). The
    file is memory-mapped through its open descriptor (never reopened by name).
    """
    if any(s < 0 for s in shape):
        raise Unreadable(f"corrupt header: negative dimension in shape {shape}")
    if dtype.kind not in "biuf":
        raise Unreadable(
            f"voxel type {dtype} is not supported; expected integers or real numbers "
            "(complex and RGB images cannot be reviewed here)"
        )
    count = math.prod(shape)
    if count == 0:
        return np.zeros(shape, dtype=dtype)  # rejected with a clear message later
    need = offset + count * dtype.itemsize
    if offset < 0 or have < need:
        raise Unreadable(
            f"truncated: the header announces {need - offset} bytes of voxel data "
            f"but only {max(have - max(offset, 0), 0)} are present"
        )
    if buf is not None:
        flat = np.frombuffer(buf, dtype=dtype, count=count, offset=offset)
        return flat.reshape(shape, order="F")
    assert fh is not None
    return np.asarray(np.memmap(fh, dtype=dtype, mode="r", offset=offset, shape=shape, order="F"))
