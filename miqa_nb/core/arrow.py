"""Arrow arrays to and from NumPy arrays and Python lists, without pandas.

pyarrow imports pandas (a quarter of a second) the first time it converts anything
from or to NumPy or Python objects (``pa.array``, ``pa.scalar``, ``Array.to_numpy``):
its pandas shim asks whether the object is a pandas one. An import of a file is
columnar from end to end and never needs pandas, so the import path builds and reads
its arrays here, from and to their buffers (``tests/test_arrow.py`` checks that
an import of a CSV file leaves pandas unloaded). These helpers cover what the import
needs: booleans and numbers (nulls where a mask says), and short lists of text.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pyarrow as pa

__all__ = ["from_numpy", "texts", "to_numpy"]

#: The NumPy dtype of each Arrow type :func:`to_numpy` reads from its buffers.
_DTYPES: dict[pa.DataType, np.dtype] = {
    pa.bool_(): np.dtype(np.bool_),
    **{pa.from_numpy_dtype(np.dtype(t)): np.dtype(t) for t in ("i1", "i2", "i4", "i8")},
    **{pa.from_numpy_dtype(np.dtype(t)): np.dtype(t) for t in ("u1", "u2", "u4", "u8")},
    pa.float32(): np.dtype(np.float32),
    pa.float64(): np.dtype(np.float64),
}


def from_numpy(values: npt.ArrayLike, mask: npt.ArrayLike | None = None) -> pa.Array:
    """A 1-d array of booleans or numbers as an Arrow array (null where ``mask`` is True).

    Examples
    --------
    >>> from_numpy(np.array([1, 2, 3]), mask=np.array([False, True, False])).to_pylist()
    [1, None, 3]
    >>> from_numpy(np.array([True, False])).type
    DataType(bool)
    """
    array = np.ascontiguousarray(values)
    if array.ndim != 1:
        raise ValueError(f"from_numpy takes a 1-d array; one of shape {array.shape} was given")
    if array.dtype == np.bool_:
        arrow_type, data = pa.bool_(), pa.py_buffer(np.packbits(array, bitorder="little"))
    elif array.dtype.kind == "M":  # datetime64: its int64 counts (NumPy lends no buffer)
        arrow_type = pa.from_numpy_dtype(array.dtype)
        data = pa.py_buffer(array.view(np.int64))
    else:
        arrow_type, data = pa.from_numpy_dtype(array.dtype), pa.py_buffer(array)
    return pa.Array.from_buffers(arrow_type, len(array), [*_validity(mask, len(array)), data])


def _validity(mask: npt.ArrayLike | None, n: int) -> list[pa.Buffer | None]:
    """The validity buffer of ``n`` values, null where ``mask`` is True (None: no nulls)."""
    if mask is None:
        return [None]
    return [pa.py_buffer(np.packbits(~np.asarray(mask, dtype=bool), bitorder="little"))]


def texts(values: Sequence[str | None]) -> pa.Array:
    """Python strings (or None: null) as an Arrow ``string`` array (meant for short
    lists: the strings are encoded one by one).

    Examples
    --------
    >>> texts(["a", "", None, "é"]).to_pylist()
    ['a', '', None, 'é']
    """
    encoded = [b"" if v is None else v.encode("utf-8") for v in values]
    mask = [v is None for v in values] if None in values else None
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    data = pa.py_buffer(b"".join(encoded))
    validity = _validity(mask, len(encoded))
    if offsets[-1] < 2**31:
        offsets_buffer = pa.py_buffer(offsets.astype(np.int32))
        return pa.Array.from_buffers(pa.string(), len(encoded), [*validity, offsets_buffer, data])
    large = pa.Array.from_buffers(
        pa.large_string(), len(encoded), [*validity, pa.py_buffer(offsets), data]
    )
    return large.cast(pa.string())  # raises: too long for one string array


def to_numpy(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """An Arrow array of booleans or numbers without nulls as a NumPy array (read-only
    when it is a view of one chunk of numbers). Other arrays go through pyarrow's own
    ``to_numpy`` (which loads pandas).

    Examples
    --------
    >>> to_numpy(pa.chunked_array([[True], [False, True]])).tolist()
    [True, False, True]
    """
    chunks = array.chunks if isinstance(array, pa.ChunkedArray) else [array]
    dtype = _DTYPES.get(array.type)
    if dtype is None or any(c.null_count for c in chunks):
        found: np.ndarray = array.to_numpy(zero_copy_only=False)
        return found
    parts = [_chunk(c, dtype) for c in chunks]
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(parts) if parts else np.empty(0, dtype)


def _chunk(chunk: pa.Array, dtype: np.dtype) -> np.ndarray:
    """One chunk without nulls (its offset respected)."""
    data = chunk.buffers()[1]
    n, offset = len(chunk), chunk.offset
    if data is None or n == 0:
        return np.empty(0, dtype)
    if dtype == np.bool_:
        bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8), bitorder="little")
        return bits[offset : offset + n].astype(bool)
    return np.frombuffer(data, dtype=dtype, count=n, offset=offset * dtype.itemsize)
