"""A fast reader of the common DICOM file's header, for :mod:`miqa_nb.ingest.dicom`.

pydicom reads a header element by element through several layers of Python; for an
upload of a few hundred slices that was a third of the time from upload to reviewable
scans. Most scanner exports are the simple case: a Part 10 file (``DICM``), little
endian, explicit or implicit VR, every element of the header with a defined length.
:func:`read_header` walks such a header with :func:`struct.unpack_from` and gives the
same pydicom :class:`~pydicom.dataset.Dataset` pydicom would (every element before the
pixel data, as raw elements pydicom converts when asked), or None for any other file:
another transfer syntax, an element of undefined length (a sequence or item written
that way), a file shorter than its header says, not DICOM at all. The caller then
reads it with pydicom, which says what is wrong with it.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import IO

from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.tag import BaseTag

__all__ = ["read_header"]

_EXPLICIT_LE = "1.2.840.10008.1.2.1"
_IMPLICIT_LE = "1.2.840.10008.1.2"
#: VRs whose explicit-VR length is 4 bytes after 2 reserved ones.
_LONG = frozenset(
    (b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV")
)
_PIXELS = 0x7FE00010
_UNDEFINED = 0xFFFFFFFF
_HEAD = struct.Struct("<HH2sH")
_TAG = struct.Struct("<HHI")
_U32 = struct.Struct("<I")
_CHUNK = 1 << 16


class _Short(Exception):
    """The file ends before its header does."""


class _Buffer:
    """The start of a file, read further only when an element needs it."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle
        self.data = handle.read(_CHUNK)

    def need(self, end: int) -> None:
        while len(self.data) < end:
            more = self.handle.read(max(_CHUNK, end - len(self.data)))
            if not more:
                raise _Short
            self.data += more


def _elements(
    buf: _Buffer, pos: int, *, implicit: bool, meta: bool
) -> tuple[dict[BaseTag, DataElement | RawDataElement], int] | None:
    """Raw elements from ``pos`` until the pixel data, the end of the file, or (``meta``)
    the end of group 2; None when an element has an undefined length."""
    found: dict[BaseTag, DataElement | RawDataElement] = {}
    while True:
        try:
            buf.need(pos + 8)
        except _Short:
            if len(buf.data) == pos and not meta:
                return found, pos  # the header ends with the file (no pixel data)
            raise
        data = buf.data
        if implicit:
            group, element, length = _TAG.unpack_from(data, pos)
            vr, start = None, pos + 8
        else:
            group, element, raw_vr, length = _HEAD.unpack_from(data, pos)
            start = pos + 8
            if raw_vr in _LONG:
                buf.need(pos + 12)
                data = buf.data
                (length,) = _U32.unpack_from(data, pos + 8)
                start = pos + 12
            try:
                vr = raw_vr.decode("ascii")
            except UnicodeDecodeError:
                return None
        tag = (group << 16) | element
        if meta and group != 2:
            return found, pos
        if tag >= _PIXELS or group == 0xFFFE:
            return (found, pos) if tag >= _PIXELS else None
        if length == _UNDEFINED:
            return None
        buf.need(start + length)
        value = buf.data[start : start + length]
        found[BaseTag(tag)] = RawDataElement(BaseTag(tag), vr, length, value, start, implicit, True)
        pos = start + length


def read_header(path: Path) -> Dataset | None:
    """The header of a simple DICOM file as pydicom reads it (no pixel data), or None.

    Parameters
    ----------
    path : Path
        Any file.

    Returns
    -------
    Dataset or None
        With ``file_meta``; None when the file is not the simple case (see the module's
        note): read it with pydicom then.
    """
    try:
        with open(path, "rb") as handle:
            buf = _Buffer(handle)
            buf.need(132)
            if buf.data[128:132] != b"DICM":
                return None
            read = _elements(buf, 132, implicit=False, meta=True)
            if read is None:
                return None
            meta, pos = read
            syntax_element = meta.get(BaseTag(0x00020010))
            if syntax_element is None or not isinstance(syntax_element.value, bytes):
                return None
            syntax = syntax_element.value.decode("ascii", "replace").strip("\0 ")
            if syntax not in (_EXPLICIT_LE, _IMPLICIT_LE):
                return None
            implicit = syntax == _IMPLICIT_LE
            read = _elements(buf, pos, implicit=implicit, meta=False)
    except (_Short, OSError, struct.error):
        return None
    if read is None:
        return None
    header = Dataset(read[0])
    header.set_original_encoding(implicit, True)
    header.file_meta = FileMetaDataset(meta)
    return header
