"""Decoding ahead of the reviewer: the shared volume cache and what to decode next.

A scan change must show its picture at once, so a session decodes the volumes the
reviewer is likely to open next while they look at this one:
:func:`frames_ahead` says which (the first frame of the next scans the queue would
give, and the open scan's other frames), :func:`start` hands them to the cache's
decoding threads and :func:`wait` waits for them (a session's ``flush()``).
Prefetching is only a speed-up: a closed cache starts nothing, a file that fails to
decode is reported when it is opened; ``s3://`` objects are fetched like files are read.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection, Sequence
from concurrent.futures import Future

from miqa_nb.review.queue import ScanKey, ScanQueue
from miqa_nb.volumes import LoadLimits, Volume, VolumeCache

__all__ = ["default_cache", "frames_ahead", "start", "wait"]

_log = logging.getLogger("miqa_nb.review")

_CACHE: VolumeCache | None = None
_CACHE_LOCK = threading.Lock()


def default_cache() -> VolumeCache:
    """The process-wide volume cache every session shares (1 GiB, 2 decoding threads;
    data roots and voxel-byte bound from the environment, :meth:`LoadLimits.from_environ`)."""
    global _CACHE
    with _CACHE_LOCK:
        if _CACHE is None:
            _CACHE = VolumeCache(max_bytes=1 << 30, workers=2, limits=LoadLimits.from_environ())
        return _CACHE


def frames_ahead(
    queue: ScanQueue,
    key: ScanKey | None,
    n: int,
    held_by_others: Collection[str],
    also: Sequence[str] = (),
) -> list[str]:
    """The files to decode next: the first frame of the ``n`` scans after ``key`` (as
    :meth:`ScanQueue.upcoming` gives them), then ``also``, each once, local files only."""
    if n <= 0 or key is None:
        return []
    upcoming = queue.upcoming(key, n, held_by_others)
    paths = [queue.info(k).frames[0] for k in upcoming if queue.info(k).frames]
    paths += also
    return list(dict.fromkeys(paths))


def start(cache: VolumeCache, paths: Sequence[str]) -> list[Future[Volume]]:
    """Start decoding ``paths`` (files, or ``s3://`` objects fetched first) on the
    cache's threads; returns their futures (none when the cache is closed)."""
    paths = list(dict.fromkeys(paths))
    if not paths:
        return []
    try:
        return cache.prefetch(paths)
    except RuntimeError as exc:  # a closed cache: prefetch is only a speed-up
        _log.debug("prefetch skipped: %s", exc)
        return []


def wait(futures: Sequence[Future[Volume]], timeout: float | None) -> None:
    """Wait for decoding to end (each future up to ``timeout`` seconds); a failure is
    left for the scan's opening to report."""
    for future in futures:
        try:
            future.result(timeout)
        except Exception as exc:  # a broken file is reported when it is opened
            _log.debug("prefetch failed: %s", exc)
