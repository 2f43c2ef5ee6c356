"""The volumes layer: load, orient, slice, window, encode and cache scan images.

A low layer: it imports no other miqa_nb module except :mod:`miqa_nb.core.errors`; a
review session sits on top of it. Modules, one concept each:

- :mod:`~miqa_nb.volumes.io` -- read .nii/.nii.gz/.mgz/.mgh/.nrrd/.nhdr into a
  :class:`Volume` (isal inflation, memory maps, RAS+ reorientation), within
  :class:`LoadLimits` (regular files only, bounded inflation, confined data files;
  private helpers in ``_reading`` and ``_nrrd``).
- :mod:`~miqa_nb.volumes.volume` -- the :class:`Volume` record and its coordinates.
- :mod:`~miqa_nb.volumes.orientation` -- planes, edge labels, display conventions,
  voxel <-> world mm, a point in world mm (:class:`WorldPoint`).
- :mod:`~miqa_nb.volumes.window` -- window/level presets and robust auto window.
- :mod:`~miqa_nb.volumes.render` -- plane pictures (aspect, crosshair, PNG/JPEG),
  :func:`write_planes` for the command line.
- :mod:`~miqa_nb.volumes.cache` -- byte-bounded LRU of decoded volumes with prefetch.
- :mod:`~miqa_nb.volumes.thumbnails` -- small per-scan pictures cached on disk.
"""

from miqa_nb.volumes.cache import CacheStats, VolumeCache
from miqa_nb.volumes.io import (
    MAX_VOLUME_BYTES,
    SUFFIXES,
    LoadLimits,
    inflate,
    load_volume,
    volume_suffix,
)
from miqa_nb.volumes.orientation import (
    CONVENTIONS,
    PLANES,
    Convention,
    Plane,
    SliceIndex,
    WorldPoint,
    extract_plane,
    plane_axes,
    plane_labels,
    reorient_to_ras,
)
from miqa_nb.volumes.render import (
    DEFAULT_MAX_SIZE,
    PlaneImage,
    encode_image,
    plane_image,
    plane_images,
    render_planes,
    side_by_side,
    write_planes,
    zoom_region,
)
from miqa_nb.volumes.thumbnails import thumbnail, thumbnail_path
from miqa_nb.volumes.volume import Volume
from miqa_nb.volumes.window import PRESETS, Window, auto_window, frame_window, resolve_window

__all__ = [
    "CONVENTIONS",
    "DEFAULT_MAX_SIZE",
    "MAX_VOLUME_BYTES",
    "PLANES",
    "PRESETS",
    "SUFFIXES",
    "CacheStats",
    "Convention",
    "LoadLimits",
    "Plane",
    "PlaneImage",
    "SliceIndex",
    "Volume",
    "VolumeCache",
    "Window",
    "WorldPoint",
    "auto_window",
    "encode_image",
    "extract_plane",
    "frame_window",
    "inflate",
    "load_volume",
    "plane_axes",
    "plane_image",
    "plane_images",
    "plane_labels",
    "render_planes",
    "reorient_to_ras",
    "resolve_window",
    "side_by_side",
    "thumbnail",
    "thumbnail_path",
    "volume_suffix",
    "write_planes",
    "zoom_region",
]
