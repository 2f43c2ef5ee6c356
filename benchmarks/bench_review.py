"""Review speed: from "submit" to the next scan's three planes ready (PNG bytes).

Server side, no browser: a tier-2 reviewer's :class:`~miqa_nb.review.session.ReviewSession`
goes through N synthetic 256^3 int16 .nii.gz scans (10 experiments) imported into a
catalog in a temporary folder. For each scan it renders the planes, then the reviewer
looks at them for ``--look`` seconds (1 s by default; the background work -- prefetch,
claims, the decision's write -- gets that time and no more: nothing waits for it), then
it measures ``submit()`` up to ``render()`` of the next scan returning three PNGs.

Every ``submit()`` must be accepted, and at the end (after the session's background
work is flushed, untimed) the catalog must hold exactly one decision per scan by the
reviewer and none unsaved; the script fails otherwise.

- with prefetch (``prefetch=2``, the default): target p50 <= 30 ms;
- without prefetch (``prefetch=0``, a cold cache): target p50 within 1.3x of inflating
  the same file with isal (read + inflate, the floor for a .nii.gz that is not cached).

Run::

    .venv/bin/python benchmarks/bench_review.py           # 50 scans
    .venv/bin/python benchmarks/bench_review.py --quick   # 12 scans
    .venv/bin/python benchmarks/bench_review.py --look 0  # no looking time: the worst case
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import against, build_review_catalog, machine

from miqa_nb.catalog import Catalog
from miqa_nb.review.session import ReviewSession
from miqa_nb.volumes import VolumeCache, inflate, load_volume

SIZE = 256
DISTINCT = 5  # distinct volumes; the other files are byte copies (each is decoded anew)


def build(folder: Path, n_scans: int) -> Path:
    """Images, import CSV and catalog; returns the catalog path."""
    return build_review_catalog(
        folder, n_scans, project="B", reviewer="rev", distinct=DISTINCT, size=SIZE
    )


def review(catalog_path: Path, prefetch: int, look: float) -> list[float]:
    """Seconds from submit() to the next scan's three PNGs, for each scan but the last;
    raises unless every decision was accepted and stored."""
    times: list[float] = []
    submitted = 0
    with VolumeCache(max_bytes=768 << 20) as cache:
        session = ReviewSession(
            Catalog(catalog_path), "B", "rev", cache=cache, prefetch=prefetch, resume=False
        )
        try:
            session.render()
            while True:
                time.sleep(look)  # the reviewer looks at the scan; background work goes on
                session.set_decision("U")
                start = time.perf_counter()
                if not session.submit():
                    raise RuntimeError(f"submit refused: {session.last_error}")
                pngs = session.render()
                elapsed = time.perf_counter() - start
                submitted += 1
                if session.message.startswith("decision stored; no more"):
                    break
                if len(pngs) != 3:
                    raise RuntimeError(f"no planes for {session.key}: {session.last_error}")
                times.append(elapsed)
            session.flush()  # untimed: the last writes, before they are counted
            if session.unsaved:
                raise RuntimeError(f"decisions not stored: {session.unsaved}")
        finally:
            session.close()
    stored = len(Catalog(catalog_path).decisions("B").query("creator == 'rev'"))
    if stored != submitted:
        raise RuntimeError(f"{submitted} decisions submitted, {stored} in the catalog")
    return times


def inflate_times(paths: list[Path]) -> tuple[list[float], list[float]]:
    """isal read+inflate, and load_volume, per file (seconds)."""
    inflating, loading = [], []
    for path in paths:
        start = time.perf_counter()
        inflate(path.read_bytes())
        inflating.append(time.perf_counter() - start)
        start = time.perf_counter()
        load_volume(path)
        loading.append(time.perf_counter() - start)
    return inflating, loading


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="12 scans instead of 50")
    parser.add_argument("--scans", type=int, default=None)
    parser.add_argument("--look", type=float, default=1.0, help="seconds spent on a scan (1)")
    args = parser.parse_args(argv)
    n_scans = args.scans or (12 if args.quick else 50)
    with tempfile.TemporaryDirectory(prefix="bench-review-") as tmp:
        folder = Path(tmp)
        start = time.perf_counter()
        catalog_path = build(folder, n_scans)
        cold_copy = folder / "catalog-cold.duckdb"
        shutil.copyfile(catalog_path, cold_copy)
        print(
            f"{n_scans} scans of {SIZE}^3 int16 .nii.gz, built in {time.perf_counter() - start:.1f} s;"
            f" {args.look:g} s look per scan; {machine()}"
        )
        files = sorted((folder / "images").glob("E*.nii.gz"))
        inflating, loading = inflate_times(files)
        warm = review(catalog_path, prefetch=2, look=args.look)
        cold = review(cold_copy, prefetch=0, look=args.look)
    floor = statistics.median(inflating) * 1000
    print(f"every submit accepted and stored ({len(warm) + 1} + {len(cold) + 1} decisions)")
    print(
        f"isal read+inflate per file (baseline): p50 {floor:6.1f} ms   p95 {pct(inflating, 95):6.1f} ms"
    )
    print(
        f"load_volume per file (information)   : p50 {pct(loading, 50):6.1f} ms   p95 {pct(loading, 95):6.1f} ms"
    )
    print(
        f"submit -> 3 planes, prefetch         : p50 {pct(warm, 50):6.1f} ms   p95 {pct(warm, 95):6.1f} ms"
        f"   (n={len(warm)}) p50 {against(pct(warm, 50), 30, ' ms')}"
    )
    ratio = pct(cold, 50) / floor
    print(
        f"submit -> 3 planes, no prefetch      : p50 {pct(cold, 50):6.1f} ms   p95 {pct(cold, 95):6.1f} ms"
        f"   (n={len(cold)}) {ratio:.2f}x inflate, {against(ratio, 1.3, 'x')}"
    )
    print(f"load at the end: {machine()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
