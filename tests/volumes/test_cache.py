"""Tests of miqa_nb.volumes.cache: byte bound, LRU order, one decode per path under
threads, prefetch, stale files, errors not cached."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

import numpy as np
import pytest

from miqa_nb.core.errors import VolumeError
from miqa_nb.volumes import Volume, VolumeCache, load_volume


class CountingLoader:
    """A loader that counts decodes per path and can be held at a gate."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.calls: dict[Path, int] = {}
        self.lock = threading.Lock()
        self.gate = gate

    def __call__(self, path: Path) -> Volume:
        with self.lock:
            self.calls[path] = self.calls.get(path, 0) + 1
        if self.gate is not None:
            assert self.gate.wait(10)
        return load_volume(path)


@pytest.fixture
def scans(make_file):
    """Six small scans of 20*24*16*2 = 15,360 bytes each."""
    return [make_file(".nii.gz", name=f"s{i}") for i in range(6)]


NBYTES = 20 * 24 * 16 * 2


def test_hit_returns_the_same_volume(scans):
    loader = CountingLoader()
    with VolumeCache(10 * NBYTES, loader=loader) as cache:
        first = cache.get(scans[0])
        assert cache.get(str(scans[0])) is first
        assert loader.calls == {scans[0]: 1}
        stats = cache.stats()
        assert (stats.hits, stats.misses, stats.loads) == (1, 1, 1)


def test_total_bytes_never_exceed_the_bound_and_lru_goes_first(scans):
    with VolumeCache(3 * NBYTES + 100) as cache:
        for path in scans[:3]:
            cache.get(path)
        cache.get(scans[0])  # now most recent
        cache.get(scans[3])  # evicts scans[1], the least recently used
        assert scans[1] not in cache
        assert all(p in cache for p in (scans[0], scans[2], scans[3]))
        for path in scans:
            cache.get(path)
            assert cache.nbytes <= cache.max_bytes
        assert len(cache) == 3
        assert cache.stats().evictions >= 3


def test_volume_bigger_than_the_bound_is_returned_not_kept(scans):
    with VolumeCache(NBYTES - 1) as cache:
        volume = cache.get(scans[0])
        assert volume.nbytes == NBYTES
        assert len(cache) == 0 and cache.nbytes == 0


def test_threads_asking_for_the_same_path_decode_it_once(scans):
    gate = threading.Event()
    loader = CountingLoader(gate)
    with VolumeCache(10 * NBYTES, loader=loader) as cache, ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(cache.get, scans[0]) for _ in range(8)]
        gate.set()
        volumes = [f.result(timeout=10) for f in futures]
    assert loader.calls == {scans[0]: 1}
    assert all(v is volumes[0] for v in volumes)


def test_many_threads_many_paths_stay_within_bound(scans):
    loader = CountingLoader()
    bound = 2 * NBYTES + 10
    cache = VolumeCache(bound, loader=loader)
    seen: list[int] = []

    def worker(seed: int) -> None:
        rng = np.random.default_rng(seed)
        for i in rng.integers(0, len(scans), 40):
            volume = cache.get(scans[i])
            assert volume.path == scans[i]
            seen.append(cache.nbytes)

    with ThreadPoolExecutor(6) as pool:
        for f in [pool.submit(worker, s) for s in range(6)]:
            f.result(timeout=30)
    cache.close()
    assert max(seen) <= bound
    assert len(cache) == 2


def test_prefetch_decodes_in_the_background(scans):
    loader = CountingLoader()
    with VolumeCache(10 * NBYTES, loader=loader, workers=2) as cache:
        futures = cache.prefetch(scans[1:4])
        done, _ = wait(futures, timeout=10)
        assert len(done) == 3
        assert all(p in cache for p in scans[1:4])
        for path in scans[1:4]:
            cache.get(path)
        assert sum(loader.calls.values()) == 3  # gets were hits
        assert cache.prefetch(scans[1:4]) == []  # nothing left to do


def test_get_waits_for_a_prefetch_underway(scans):
    gate = threading.Event()
    loader = CountingLoader(gate)
    with VolumeCache(10 * NBYTES, loader=loader) as cache:
        (future,) = cache.prefetch([scans[0]])
        threading.Timer(0.05, gate.set).start()
        volume = cache.get(scans[0])
        assert future.result(timeout=10) is volume
        assert loader.calls == {scans[0]: 1}


def test_errors_reach_every_waiter_and_are_not_cached(tmp_path, make_file):
    path = tmp_path / "later.nii.gz"
    with VolumeCache() as cache:
        (future,) = cache.prefetch([path])
        assert isinstance(future.exception(timeout=10), VolumeError)
        with pytest.raises(VolumeError, match=r"later\.nii\.gz"):
            cache.get(path)
        os.replace(make_file(".nii.gz"), path)  # the file appears: next get decodes it
        assert cache.get(path).shape == (20, 24, 16)


def test_modified_file_is_decoded_again(scans, make_file):
    with VolumeCache() as cache:
        old = cache.get(scans[0])
        replacement = make_file(".nii.gz", dtype="float32", name="new")
        os.replace(replacement, scans[0])
        new = cache.get(scans[0])
        assert new is not old and new.dtype == np.float32


def test_close_cancels_pending_prefetches_and_get_still_works(scans):
    gate = threading.Event()
    loader = CountingLoader(gate)
    cache = VolumeCache(10 * NBYTES, loader=loader, workers=1)
    futures = cache.prefetch(scans)  # the first one blocks at the gate
    cache.close(wait=False)
    gate.set()
    assert futures[0].result(timeout=10).shape == (20, 24, 16)
    assert all(f.cancelled() for f in futures[1:])
    assert cache.get(scans[-1]).shape == (20, 24, 16)  # decoded in the caller's thread
    with pytest.raises(RuntimeError, match="closed"):
        cache.prefetch(scans[:1])


def test_prefetch_warms_volumes_in_the_decoding_thread(scans):
    warmed: list[tuple[Path, str]] = []

    def warm(volume: Volume) -> None:
        warmed.append((volume.path, threading.current_thread().name))

    with VolumeCache(warm=warm) as cache:
        wait(cache.prefetch(scans[:2]), timeout=10)
        cache.get(scans[2])
    assert sorted(p for p, _ in warmed) == sorted(scans[:3])
    assert sum(name.startswith("miqa-prefetch") for _, name in warmed) == 2


def test_default_warm_computes_the_auto_window(scans):
    with VolumeCache() as cache:
        volume = cache.get(scans[0])
        assert ("window", "auto", 0) in volume._memo


def test_discard_and_clear(scans):
    with VolumeCache() as cache:
        cache.get(scans[0])
        cache.get(scans[1])
        cache.discard(scans[0])
        assert scans[0] not in cache and cache.nbytes == NBYTES
        cache.clear()
        assert len(cache) == 0 and cache.nbytes == 0


def test_bad_arguments():
    with pytest.raises(ValueError, match="max_bytes"):
        VolumeCache(-1)
    with pytest.raises(ValueError, match="workers"):
        VolumeCache(workers=0)
