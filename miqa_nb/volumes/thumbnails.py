"""Small pictures of scans for lists and grids, cached on disk.

This module owns thumbnails: one PNG per scan showing its three middle planes side by
side (axial | coronal | sagittal), each fitted into a ``size`` x ``size`` box, on a
black strip.

Why three planes and not the axial one alone: decoding the file is nearly all of
the cost (the two extra slices add about a millisecond), and the artifacts a
reviewer triages from a list -- motion and ringing along the slice direction, a
head cut off at the top of the field of view, a swapped axis -- show in the coronal
and sagittal planes, not in the axial one.

Pictures are stored in a folder the caller passes (nothing global), under a name
derived from the file's absolute path, mtime and size and the rendering settings,
so a second request for an unchanged file reads the PNG and never decodes the
scan; a modified file gets a new picture. Writes are atomic
(:func:`miqa_nb.core.files.write_atomic`), so concurrent viewers never read half a PNG.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from miqa_nb.core.files import write_atomic
from miqa_nb.core.settings import folder_beside
from miqa_nb.volumes.io import load_volume
from miqa_nb.volumes.objects import default_objects, is_object
from miqa_nb.volumes.orientation import PLANES, Convention
from miqa_nb.volumes.render import encode_image, plane_images
from miqa_nb.volumes.volume import Volume
from miqa_nb.volumes.window import WindowSpec

__all__ = [
    "THUMBNAIL_DIR_ENV",
    "THUMBNAIL_SIZE",
    "catalog_thumbnail_dir",
    "thumbnail",
    "thumbnail_path",
    "thumbnail_pixels",
]

THUMBNAIL_SIZE = 96
#: The folder of a catalog's thumbnail PNGs (default: beside the catalog).
THUMBNAIL_DIR_ENV = "MIQA_NB_THUMBNAIL_DIR"
_VERSION = "1"  # bump when the picture's layout changes, so old files are not reused


def catalog_thumbnail_dir(catalog_path: str | os.PathLike[str]) -> Path:
    """A catalog's thumbnails: ``MIQA_NB_THUMBNAIL_DIR``, else ``<catalog>-thumbnails``
    beside the catalog file (the dashboard's overview and the pipelines after an
    archive share it)."""
    return folder_beside(catalog_path, "thumbnails", THUMBNAIL_DIR_ENV)


def thumbnail_path(
    path: str | os.PathLike[str],
    cache_dir: str | os.PathLike[str],
    *,
    size: int = THUMBNAIL_SIZE,
    convention: Convention = "neurological",
    window: WindowSpec = "auto",
) -> Path:
    """Where the thumbnail of ``path`` is (or would be) stored.

    The name hashes the absolute path, mtime, size in bytes and the settings; for an
    object in storage (``s3://...``), its location, ETag and size (a HEAD request, or
    what the object cache heard lately: :mod:`miqa_nb.volumes.objects`), so a changed
    object gets a new picture.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    """
    if is_object(path):
        src = os.fspath(path)
        etag, nbytes = default_objects().head(src)
        version = [etag, str(nbytes)]
    else:
        src = os.path.abspath(os.fspath(path))
        st = os.stat(src)
        version = [str(st.st_mtime_ns), str(st.st_size)]
    key = "\0".join([_VERSION, src, *version, str(size), convention, repr(window)])
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return Path(cache_dir) / f"{digest}.png"


def thumbnail_pixels(
    volume: Volume,
    *,
    size: int = THUMBNAIL_SIZE,
    convention: Convention = "neurological",
    window: WindowSpec = "auto",
) -> np.ndarray:
    """The three middle planes side by side, each fitted into ``size`` x ``size``.

    Returns
    -------
    ndarray of uint8, shape (height, width)
        ``height <= size``; planes are centred vertically on black.
    """
    images = plane_images(volume, frame=0, window=window, convention=convention, max_size=size)
    tiles = [images[plane].pixels for plane in PLANES]
    height = max(t.shape[0] for t in tiles)
    strip = np.zeros((height, sum(t.shape[1] for t in tiles)), dtype=np.uint8)
    x = 0
    for tile in tiles:
        top = (height - tile.shape[0]) // 2
        strip[top : top + tile.shape[0], x : x + tile.shape[1]] = tile
        x += tile.shape[1]
    return strip


def thumbnail(
    path: str | os.PathLike[str],
    cache_dir: str | os.PathLike[str],
    *,
    size: int = THUMBNAIL_SIZE,
    convention: Convention = "neurological",
    window: WindowSpec = "auto",
    loader: Callable[[Path], Volume] | None = None,
) -> Path:
    """Return the PNG thumbnail of a scan, rendering it only if not yet on disk.

    Parameters
    ----------
    path : str or path-like
        The image file, or an object in storage (``s3://bucket/key``, read through
        the object cache).
    cache_dir : str or path-like
        Folder of the thumbnail files (created if missing).
    size : int
        Box each plane is fitted into, in pixels.
    convention : {'neurological', 'radiological'}
    window : str or (float, float)
        Window preset or bounds.
    loader : callable, optional
        ``Path -> Volume``, e.g. ``VolumeCache.get`` to share decoded volumes;
        default :func:`~miqa_nb.volumes.io.load_volume`.

    Returns
    -------
    Path
        The PNG file.

    Raises
    ------
    VolumeError
        If the scan is missing or cannot be decoded.
    """
    try:
        target = thumbnail_path(path, cache_dir, size=size, convention=convention, window=window)
    except FileNotFoundError:
        load_volume(path)  # raises VolumeError naming the file
        raise
    if target.exists():
        return target
    volume = (loader or load_volume)(path if is_object(path) else Path(path))  # type: ignore[arg-type]
    png = encode_image(
        thumbnail_pixels(volume, size=size, convention=convention, window=window), "png"
    )
    # Not flushed to disk (an fsync per picture would slow a grid of them): after a
    # system crash a picture may be cut short; emptying the cache folder redraws it.
    return write_atomic(target, png, durable=False)
