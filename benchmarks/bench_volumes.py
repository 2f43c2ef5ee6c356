"""Benchmark of the volumes layer: path -> three windowed PNG planes.

Run ``.venv/bin/python benchmarks/bench_volumes.py`` (``--quick`` for 128^3 volumes
and fewer runs). Every figure is the median of several runs and is printed with its
ratio to baselines measured in the same run (the contenders called in turn), and its
target:

- notebook: what a notebook user writes today, ``nibabel.load(p).get_fdata()``
  (``nrrd.read`` then ``astype(float64)`` for NRRD), then the three middle slices saved
  as PNG with ``matplotlib.pyplot.imsave`` if matplotlib is installed, else as
  ``fair`` does; target: ours >= 3x faster;
- fair: the fastest plain way, ``np.asanyarray(nibabel.load(p).dataobj)`` (the stored
  dtype, no float copy; ``nrrd.read`` for NRRD), the three middle slices min/max scaled
  to uint8 and saved as PNG by Pillow; target: ours no slower (>= 1x);
- limit: reading the file and inflating it with ``isal`` (no decoding at all); target:
  ours <= 1.3x;
- ours, cold: ``load_volume`` + ``render_planes`` (auto window, PNG), volume not
  cached (the file itself is in the OS page cache, as after a first look);
- warm: a new slice of a cached volume (target <= 5 ms); the three planes of a
  prefetched scan (target <= 10 ms), each file also against its own fair baseline;
- memory: paging through 50 scans with a 1 GiB cache and prefetch of the next two,
  peak RSS of a fresh process, and its ratio to the cache's bound (information: the
  issue sets no target for it).

Volumes are synthetic, smooth and anatomy-like (head, skull, folded cortex,
ventricles, noise), written in a temporary folder (gzip level 1 for every format).
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import wait
from pathlib import Path

import nibabel as nib
import nrrd
import numpy as np
from _common import against, machine, peak_rss
from PIL import Image

from miqa_nb.volumes import VolumeCache, inflate, load_volume, plane_image, render_planes

try:  # matplotlib is optional (nilearn no longer requires it)
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
except ImportError:
    plt = None

FORMATS = (".nii.gz", ".mgz", ".nrrd")
SPEEDUP = 3.0  # ours against the notebook way, at least
LIMIT_RATIO = 1.3  # ours against read + inflate, at most


# -- data ------------------------------------------------------------------------------
def anatomy(n: int, dtype: str, seed: int = 0) -> np.ndarray:
    """A smooth head-like volume: skull shell, folded cortex, ventricles, noise."""
    rng = np.random.default_rng(seed)
    ax = np.linspace(-1, 1, n, dtype=np.float32)
    x, y, z = ax[:, None, None], ax[None, :, None], ax[None, None, :]
    r = np.sqrt(x**2 + (y / 1.15) ** 2 + (z / 1.05) ** 2)
    folds = 0.08 * np.sin(14 * x) * np.cos(12 * y) * np.sin(10 * z)
    brain = r + folds < 0.78
    vol = np.where(brain, 600.0 + 150.0 * np.cos(9 * (r + folds)), 0.0).astype(np.float32)
    vol += np.where((r > 0.82) & (r < 0.9), 900.0, 0.0).astype(np.float32)  # scalp and fat
    vol[np.sqrt((x / 0.18) ** 2 + (y / 0.35) ** 2 + (z / 0.2) ** 2) < 1] = 150.0  # ventricles
    vol += rng.normal(0, 12, vol.shape).astype(np.float32) * (r < 0.92)
    np.clip(vol, 0, None, out=vol)
    return vol.astype(dtype)


def write(path: Path, data: np.ndarray) -> None:
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    affine[:3, 3] = -np.asarray(data.shape) / 2
    if path.name.endswith(".nii.gz"):
        nib.save(nib.Nifti1Image(data, affine), path)  # nibabel writes gzip level 1
    elif path.name.endswith(".mgz"):
        nib.save(nib.MGHImage(data, affine), path)
    else:
        header = {
            "encoding": "gzip",
            "space": "right-anterior-superior",
            "space directions": affine[:3, :3],
            "space origin": affine[:3, 3],
        }
        nrrd.write(str(path), data, header, compression_level=1)


# -- the contenders ----------------------------------------------------------------------
def notebook(path: Path) -> list[bytes]:
    """What a notebook user writes today: float64 data, matplotlib's imsave."""
    if path.name.endswith(".nrrd"):
        data, _ = nrrd.read(str(path))
        data = data.astype(np.float64)
    else:
        data = nib.load(path).get_fdata()
    if plt is None:
        return _pillow_planes(data)
    out = []
    for plane in _middle_planes(data):
        buf = io.BytesIO()
        plt.imsave(buf, np.rot90(plane), cmap="gray", format="png")
        out.append(buf.getvalue())
    return out


def fair(path: Path) -> list[bytes]:
    """The fastest plain way: the stored dtype, min/max to uint8, Pillow's PNG."""
    if path.name.endswith(".nrrd"):
        data, _ = nrrd.read(str(path))
    else:
        data = np.asanyarray(nib.load(path).dataobj)
    return _pillow_planes(data)


def _middle_planes(data: np.ndarray) -> list[np.ndarray]:
    x, y, z = (s // 2 for s in data.shape)
    return [data[:, :, z], data[:, y, :], data[x, :, :]]


def _pillow_planes(data: np.ndarray) -> list[bytes]:
    out = []
    for plane in _middle_planes(data):
        lo, hi = float(plane.min()), float(plane.max())
        grey = ((plane - lo) * (255 / max(hi - lo, 1e-12))).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(np.rot90(grey))).save(buf, format="PNG")
        out.append(buf.getvalue())
    return out


def limit(path: Path) -> int:
    with open(path, "rb") as fh:
        if path.name.endswith(".nrrd"):
            nrrd.read_header(fh)
        return len(inflate(fh.read()))


def ours(path: Path) -> dict[str, bytes]:
    return render_planes(load_volume(path))


def median_ms(fn: Callable[[], object], runs: int) -> float:
    """Median milliseconds of ``runs`` calls (after one untimed call)."""
    return alternating_ms({"fn": fn}, runs)["fn"]


def alternating_ms(fns: dict[str, Callable[[], object]], runs: int) -> dict[str, float]:
    """Median milliseconds of each of ``fns``, called in turn (A B C A B C ...), so that a
    change in the machine's load falls on all of them alike; one untimed call each first
    (the page cache, imports)."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():
        fn()
    for _ in range(runs):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: 1000 * statistics.median(values) for name, values in times.items()}


# -- memory (in a fresh process, so the peak is this phase's own) -------------------------
def memory_child(folder: Path, scans: int) -> None:
    src = next(folder.glob("int16*.nii.gz"))
    links = []
    for i in range(scans):
        link = folder / f"page-{i:03d}.nii.gz"
        if not link.exists():
            os.link(src, link)
        links.append(link)
    with VolumeCache(1 << 30, workers=2) as cache:
        for i, path in enumerate(links):
            render_planes(cache.get(path))
            cache.prefetch(links[i + 1 : i + 3])
        stats = cache.stats()
    peak_mb = peak_rss() / 2**20
    print(f"{peak_mb:.0f} {stats.nbytes / 2**20:.0f} {stats.loads} {stats.evictions}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="128^3 volumes, fewer runs")
    parser.add_argument("--memory-child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--scans", type=int, default=50, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child, args.scans)
        return

    n, runs, scans = (128, 3, 12) if args.quick else (256, 7, 50)
    print(f"volumes benchmark: {n}^3, median of {runs} runs; {machine()}")
    saver = "matplotlib.pyplot.imsave" if plt is not None else "Pillow (matplotlib not installed)"
    print(f"notebook = nibabel get_fdata / nrrd.read as float64 + 3 PNG slices with {saver}")
    print("fair = np.asanyarray(img.dataobj) / nrrd.read + min/max uint8 + 3 PNG slices, Pillow")
    print(f"targets: ours {SPEEDUP:g}x faster than notebook, no slower than fair, "
          f"<= {LIMIT_RATIO:g}x limit\n")  # fmt: skip
    fair_ms: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-volumes-") as tmp:
        folder = Path(tmp)
        header = "file", "MB", "notebook", "fair", "limit", "ours", "vs notebook", "vs fair"
        print("{:<16}{:>5}{:>10}{:>8}{:>8}{:>8}{:>18}{:>16}{:>20}".format(*header, "ours/limit"))
        for dtype in ("int16", "float32"):
            data = anatomy(n, dtype)
            for suffix in FORMATS:
                path = folder / f"{dtype}{suffix}"
                write(path, data)
                ms = alternating_ms(
                    {
                        "notebook": lambda p=path: notebook(p),
                        "fair": lambda p=path: fair(p),
                        "limit": lambda p=path: limit(p),
                        "ours": lambda p=path: ours(p),
                    },
                    runs,
                )
                note, base, lim, our = ms["notebook"], ms["fair"], ms["limit"], ms["ours"]
                fair_ms[path.name] = base
                print(
                    f"{path.name:<16}{path.stat().st_size / 2**20:>5.1f}{note:>8.0f}ms"
                    f"{base:>6.0f}ms{lim:>6.0f}ms{our:>6.0f}ms"
                    f"{note / our:>7.2f}x {_verdict(note / our, SPEEDUP, at_least=True)}"
                    f"{base / our:>7.2f}x {_verdict(base / our, 1.0, at_least=True)}"
                    f"{our / lim:>9.2f}x {_verdict(our / lim, LIMIT_RATIO)}"
                )
        print()

        # warm: a new slice of a cached volume, and a prefetched scan's three planes
        paths = [folder / f"int16{s}" for s in FORMATS]
        with VolumeCache(1 << 30) as cache:
            volume = cache.get(paths[0])
            rng = np.random.default_rng(0)
            slices = iter(rng.permutation(n))
            slice_ms = median_ms(
                lambda: plane_image(volume, "axial", int(next(slices))).encode("png"), runs
            )
            times, speedups = [], []
            others = [folder / f"{t}{s}" for t in ("int16", "float32") for s in FORMATS]
            for path in others[1:]:
                wait(cache.prefetch([path]))
                t0 = time.perf_counter()
                render_planes(cache.get(path))
                times.append(1000 * (time.perf_counter() - t0))
                speedups.append(fair_ms[path.name] / times[-1])  # the same file's baseline
            prefetched_ms = statistics.median(times)
        print(f"warm: new axial slice of a cached volume -> PNG {slice_ms:6.1f} ms   "
              f"{against(slice_ms, 5, ' ms')}")  # fmt: skip
        print(f"warm: prefetched scan, three PNG planes     {prefetched_ms:6.1f} ms   "
              f"{against(prefetched_ms, 10, ' ms')}")  # fmt: skip
        print(
            f"      each against the fair baseline of the same file: median "
            f"{statistics.median(speedups):.0f}x faster (min {min(speedups):.0f}x, "
            f"max {max(speedups):.0f}x)\n"
        )

        out = subprocess.run(
            [sys.executable, __file__, "--memory-child", str(folder), "--scans", str(scans)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
        peak, kept, loads, evictions = (float(v) for v in out)
        one = n**3 * 2 / 2**20
        print(
            f"memory: {scans} scans of {one:.0f} MB (int16), 1 GiB cache, prefetch 2 ahead: "
            f"peak RSS {peak:.0f} MB; cache held {kept:.0f} MB at the end, "
            f"{loads:.0f} decodes, {evictions:.0f} evictions"
        )
        print(f"      peak RSS / the cache's bound: {peak / 1024:.2f} (information)")
        print(f"load at the end: {machine()}")


def _verdict(value: float, target: float, *, at_least: bool = False) -> str:
    """PASS or MISS alone, for a table cell."""
    return against(value, target, at_least=at_least).rsplit(" ", 1)[-1]


if __name__ == "__main__":
    main()
