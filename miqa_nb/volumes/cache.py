"""A thread-safe LRU cache of decoded volumes, bounded in bytes, with prefetch.

This module owns the memory budget of the viewer and the decoding threads:

- :class:`VolumeCache` keeps decoded :class:`Volume` objects, least recently used
  first out, so that their total ``nbytes`` never exceeds ``max_bytes``. A volume
  bigger than the bound is returned to the caller but not kept.
- Thread safety: one lock guards the bookkeeping (never held while decoding); a
  path being decoded has one pending future, so two threads asking for the same
  path decode it once and both get the same object.
- :meth:`VolumeCache.prefetch` decodes the next scans a reviewer will open on a
  small thread pool (inflation with ``isal`` releases the GIL), so opening them
  later costs only rendering.
- Entries are keyed by absolute path and checked against the file's mtime and size
  on every hit: a file replaced on disk is decoded again. An ``s3://`` location is its
  own key, checked against the object's ETag and size (a HEAD; see
  :mod:`~miqa_nb.volumes.objects`).

Errors are not cached: a failed decode raises :class:`~miqa_nb.core.errors.VolumeError`
to every thread waiting for it, and the next request tries again.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Container, Iterable
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from miqa_nb.volumes.io import LoadLimits
from miqa_nb.volumes.objects import default_objects, is_object
from miqa_nb.volumes.volume import Volume
from miqa_nb.volumes.window import Window, frame_window

__all__ = ["CacheStats", "VolumeCache"]

_log = logging.getLogger(__name__)

Loader = Callable[[Path], Volume]
_Stamp = tuple[int, int]


def _auto_window(volume: Volume) -> Window:
    return frame_window(volume, "auto", 0)


@dataclass(frozen=True)
class CacheStats:
    """Counters of a :class:`VolumeCache` at one moment."""

    entries: int
    nbytes: int
    max_bytes: int
    hits: int
    misses: int
    loads: int
    evictions: int


@dataclass(frozen=True, eq=False)
class _Entry:
    volume: Volume
    stamp: _Stamp


class VolumeCache:
    """LRU cache of decoded volumes bounded in bytes, with background prefetch.

    Parameters
    ----------
    max_bytes : int
        Bound on the total ``Volume.nbytes`` kept (default 1 GiB).
    loader : callable, optional
        ``Path -> Volume``; default ``limits.load`` (:func:`~miqa_nb.volumes.io.load_volume`).
    limits : LoadLimits, optional
        Data roots and voxel-byte bound of the default loader (default
        ``LoadLimits()``: no roots, 448 MiB). An application builds them at its edge
        with :meth:`LoadLimits.from_environ`.
    workers : int
        Threads used by :meth:`prefetch`.
    warm : callable or None, optional
        Called with each decoded volume in the decoding thread, before it is handed
        out. The default computes the ``'auto'`` window of frame 0 (a few ms), so a
        prefetched scan renders with nothing left to compute; ``None`` disables it.

    Examples
    --------
    >>> import pathlib, tempfile, nibabel as nib, numpy as np
    >>> folder = tempfile.TemporaryDirectory()
    >>> paths = [pathlib.Path(folder.name, f"scan{n}.nii.gz") for n in range(3)]
    >>> for path in paths:
    ...     nib.save(nib.Nifti1Image(np.zeros((8, 8, 8), np.int16), np.eye(4)), path)
    >>> with VolumeCache(max_bytes=512 * 2**20) as cache:
    ...     volume = cache.get(paths[0])
    ...     ahead = cache.prefetch(paths[1:3])
    ...     [future.result().shape for future in ahead], cache.stats().entries
    ([(8, 8, 8), (8, 8, 8)], 3)
    >>> folder.cleanup()
    """

    def __init__(
        self,
        max_bytes: int = 1 << 30,
        *,
        loader: Loader | None = None,
        workers: int = 2,
        warm: Callable[[Volume], object] | None = _auto_window,
        limits: LoadLimits | None = None,
    ) -> None:
        if max_bytes < 0:
            raise ValueError(f"'max_bytes' must be >= 0; {max_bytes} was provided")
        if workers < 1:
            raise ValueError(f"'workers' must be >= 1; {workers} was provided")
        if loader is not None and limits is not None:
            raise ValueError(
                "give 'loader' or 'limits', not both: limits apply to the default loader"
            )
        self.max_bytes = int(max_bytes)
        self.limits = limits or LoadLimits()
        self._loader: Loader = loader or self.limits.load
        self._warm = warm
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._pending: dict[str, Future[Volume]] = {}
        self._nbytes = 0
        self._hits = self._misses = self._loads = self._evictions = 0
        self._workers = workers
        self._pool: ThreadPoolExecutor | None = None
        self._closed = False

    # -- public API ---------------------------------------------------------------
    def get(self, path: str | os.PathLike[str]) -> Volume:
        """Return the decoded volume of ``path``, decoding it at most once.

        Raises
        ------
        VolumeError
            If the file cannot be decoded (not cached; the next call retries).
        """
        key = _key(path)
        while True:
            stamp = _stamp(key, self._entries)
            with self._lock:
                entry = self._entries.get(key)
                if entry is not None and entry.stamp == stamp:
                    self._entries.move_to_end(key)
                    self._hits += 1
                    return entry.volume
                future = self._pending.get(key)
                owner = future is None
                if future is None:
                    self._misses += 1
                    future = Future()
                    self._pending[key] = future
            if owner:
                self._load(key, stamp, future)
            try:
                return future.result()
            except CancelledError:  # a prefetch cancelled by close(): decode here instead
                continue

    def prefetch(self, paths: Iterable[str | os.PathLike[str]]) -> list[Future[Volume]]:
        """Decode ``paths`` in the background (those not cached or already underway).

        Returns
        -------
        list of Future
            One per path started or already pending; failures stay in the future
            (and are raised again by :meth:`get`).
        """
        futures: list[Future[Volume]] = []
        for path in paths:
            key = _key(path)
            stamp = _stamp(key, self._entries)
            with self._lock:
                if self._closed:
                    raise RuntimeError("this VolumeCache is closed")
                entry = self._entries.get(key)
                if entry is not None and entry.stamp == stamp:
                    continue
                pending = self._pending.get(key)
                if pending is not None:
                    futures.append(pending)
                    continue
                future: Future[Volume] = Future()
                self._pending[key] = future
                self._misses += 1
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(self._workers, "miqa-prefetch")
                job = self._pool.submit(self._load, key, stamp, future)
            job.add_done_callback(functools.partial(self._cancelled, key=key, future=future))
            futures.append(future)
        return futures

    def __contains__(self, path: object) -> bool:
        if not isinstance(path, str | os.PathLike):
            return False
        with self._lock:
            return _key(path) in self._entries

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    @property
    def nbytes(self) -> int:
        """Total bytes of the volumes kept."""
        with self._lock:
            return self._nbytes

    def stats(self) -> CacheStats:
        """Counters: entries, bytes, hits, misses, decodes, evictions."""
        with self._lock:
            return CacheStats(
                entries=len(self._entries),
                nbytes=self._nbytes,
                max_bytes=self.max_bytes,
                hits=self._hits,
                misses=self._misses,
                loads=self._loads,
                evictions=self._evictions,
            )

    def discard(self, path: str | os.PathLike[str]) -> None:
        """Forget the volume of ``path`` if it is kept."""
        with self._lock:
            entry = self._entries.pop(_key(path), None)
            if entry is not None:
                self._nbytes -= entry.volume.nbytes

    def clear(self) -> None:
        """Forget every kept volume."""
        with self._lock:
            self._entries.clear()
            self._nbytes = 0

    def close(self, wait: bool = True) -> None:
        """Stop the prefetch threads (pending prefetches are cancelled)."""
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=wait, cancel_futures=True)

    def __enter__(self) -> VolumeCache:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- internals ----------------------------------------------------------------
    def _load(self, key: str, stamp: _Stamp | None, future: Future[Volume]) -> Volume | None:
        try:
            volume = self._loader(key if is_object(key) else Path(key))  # type: ignore[arg-type]
            if stamp is None and is_object(key):
                stamp = _stamp(key)
            if self._warm is not None:
                self._warm(volume)
        except BaseException as exc:  # handed to every waiter; nothing is cached
            with self._lock:
                self._pending.pop(key, None)
            _log.debug("decoding %s failed: %s", key, exc)
            future.set_exception(exc)
            return None
        with self._lock:
            self._pending.pop(key, None)
            self._loads += 1
            self._store(key, _Entry(volume, stamp or (0, 0)))
        future.set_result(volume)
        return volume

    def _store(self, key: str, entry: _Entry) -> None:
        """Insert ``entry`` evicting LRU volumes; the lock is held by the caller."""
        old = self._entries.pop(key, None)
        if old is not None:
            self._nbytes -= old.volume.nbytes
        size = entry.volume.nbytes
        if size > self.max_bytes:
            return  # returned to the caller, never kept
        while self._entries and self._nbytes + size > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self._nbytes -= evicted.volume.nbytes
            self._evictions += 1
        self._entries[key] = entry
        self._nbytes += size

    def _cancelled(self, job: Future[Volume | None], key: str, future: Future[Volume]) -> None:
        if job.cancelled():
            with self._lock:
                if self._pending.get(key) is future:
                    del self._pending[key]
            future.cancel()
            future.set_running_or_notify_cancel()


def _key(path: str | os.PathLike[str]) -> str:
    text = os.fspath(path)
    return text if is_object(text) else os.path.abspath(text)


def _stamp(key: str, known: Container[str] | None = None) -> _Stamp | None:
    """A file's mtime and size; an object's ETag and size, from a HEAD (None: the load
    reports the error). An object not in ``known`` is not asked about: its load fetches
    it, and its stamp is taken then (from the fetch's answer, no second request)."""
    if is_object(key):
        if known is not None and key not in known:
            return None
        try:
            etag, size = default_objects().head(key)
        except Exception:
            return None
        return (int(hashlib.sha256(etag.encode()).hexdigest()[:15], 16), size)
    try:
        st = os.stat(key)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)
