"""Benchmark of hostile frame files: each render ends within bounded time and memory.

Run ``.venv/bin/python benchmarks/bench_hostile.py``. Each case is a file built here
(in a temporary folder) that a reviewer could upload or an import file could name;
each is rendered -- ``render_planes(load_volume(path))``, what the review and the
thumbnails do -- in a fresh interpreter, and its wall time and peak RSS (``VmHWM``)
are printed beside the targets: under 700 MB and 20 s, ending in a ``VolumeError``
or in three pictures. Rendering the largest file the default bound admits shows what
"any file" costs.

Cases: gzip bombs (120 voxels declared, then 1 GiB or 8 GiB of zeros: about 1 MB and
8 MB on disk), a header declaring 64 GiB, an honest file just under the default
bound (448 MiB; zeros, and NaN), NRRD headers naming ``/dev/zero`` (gzip, text) and ``/etc/passwd``,
a FIFO as frame file, ``byte skip: -1`` on a short file.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from _common import mb, peak_rss, verdict
from isal import igzip

TARGET_SECONDS = 20.0
TARGET_BYTES = 700e6
MIB = 1 << 20


def _gzip_nifti(
    path: Path, shape: tuple[int, ...], dtype: str, zeros: int, voxels: int, data: bytes = b""
) -> None:
    """A gzipped NIfTI declaring ``shape``/``dtype``, holding ``voxels`` bytes of data
    (or ``data``) then ``zeros`` zero bytes, streamed (zeros never held in memory)."""
    hdr = nib.Nifti1Header()
    hdr.set_data_shape(shape)
    hdr.set_data_dtype(dtype)
    hdr.set_data_offset(352)
    block = b"\0" * (64 * MIB)
    with igzip.open(path, "wb", compresslevel=0) as fh:
        fh.write(hdr.binaryblock + b"\0" * 4)
        fh.write(np.arange(voxels, dtype=np.uint8).tobytes() + data)
        for start in range(0, zeros, len(block)):
            fh.write(block[: zeros - start])


def _nrrd(path: Path, data_file: str, encoding: str = "raw", extra: str = "") -> None:
    path.write_text(
        "NRRD0004\ntype: uint8\ndimension: 3\nsizes: 64 64 64\n"
        f"encoding: {encoding}\ndata file: {data_file}\n{extra}\n"
    )


def build(folder: Path) -> dict[str, Path]:
    cases: dict[str, Path] = {}
    cases["gzip bomb, 1 GiB of zeros"] = folder / "bomb1.nii.gz"
    _gzip_nifti(cases["gzip bomb, 1 GiB of zeros"], (4, 5, 6), "uint8", 1 << 30, 120)
    cases["gzip bomb, 8 GiB of zeros"] = folder / "bomb8.nii.gz"
    _gzip_nifti(cases["gzip bomb, 8 GiB of zeros"], (4, 5, 6), "uint8", 8 << 30, 120)
    cases["header declaring 64 GiB"] = folder / "huge.nii.gz"
    _gzip_nifti(cases["header declaring 64 GiB"], (2048, 2048, 2048), "float64", 8 * MIB, 0)
    n = 770  # 770^3 uint8 = 435 MiB, under the default bound of 448 MiB
    cases["honest 435 MiB of zeros, rendered"] = folder / "honest.nii.gz"
    _gzip_nifti(cases["honest 435 MiB of zeros, rendered"], (n, n, n), "uint8", n**3, 0)
    n = 480  # 480^3 float32 = 422 MiB of NaN: the window falls back to a full scan
    cases["honest 422 MiB of NaN, rendered"] = folder / "nan.nii.gz"
    nan = np.full(n**3, np.nan, dtype=np.float32).tobytes()
    _gzip_nifti(cases["honest 422 MiB of NaN, rendered"], (n, n, n), "float32", 0, 0, nan)
    cases["nrrd data file /dev/zero (gzip)"] = folder / "zero-gz.nrrd"
    _nrrd(cases["nrrd data file /dev/zero (gzip)"], "/dev/zero", "gzip")
    cases["nrrd data file /dev/zero (ascii)"] = folder / "zero-txt.nrrd"
    _nrrd(cases["nrrd data file /dev/zero (ascii)"], "/dev/zero", "ascii")
    cases["nrrd data file /etc/passwd"] = folder / "passwd.nhdr"
    _nrrd(cases["nrrd data file /etc/passwd"], "/etc/passwd")
    cases["FIFO as frame file"] = folder / "fifo.nii.gz"
    os.mkfifo(cases["FIFO as frame file"])
    short = folder / "short.nrrd"
    short.write_bytes(
        b"NRRD0004\ntype: uint8\ndimension: 3\nsizes: 64 64 64\nencoding: raw\n"
        b"byte skip: -1\n\n" + b"\1" * 1000
    )
    cases["byte skip -1 on a short file"] = short
    return cases


def child(path: str) -> None:
    """Render one file; print seconds, peak RSS and the outcome as JSON."""
    from miqa_nb.volumes import load_volume, render_planes

    start = time.perf_counter()
    try:
        pngs = render_planes(load_volume(path))
        outcome = f"rendered {len(pngs)} planes"
    except OSError as exc:
        outcome = f"{type(exc).__name__}: {exc}"
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "peak_rss": peak_rss(), "outcome": outcome}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    with tempfile.TemporaryDirectory(prefix="miqa-hostile-") as tmp:
        print("building the hostile files ...", file=sys.stderr, flush=True)
        cases = build(Path(tmp))
        print(f"targets: each render under {mb(TARGET_BYTES)} peak and {TARGET_SECONDS:g} s\n")
        for name, path in cases.items():
            size = path.stat().st_size if path.is_file() else 0
            try:
                proc = subprocess.run(
                    [sys.executable, __file__, "--child", str(path)],
                    capture_output=True,
                    text=True,
                    timeout=3 * TARGET_SECONDS,
                    check=True,
                )
                result = json.loads(proc.stdout.strip().splitlines()[-1])
            except subprocess.TimeoutExpired:
                print(f"{name:<36} file {mb(size):>7}: still running after 60 s  MISS")
                continue
            ok = result["seconds"] <= TARGET_SECONDS and result["peak_rss"] <= TARGET_BYTES
            print(
                f"{name:<36} file {mb(size):>7}: {result['seconds']:6.2f} s, "
                f"peak RSS {mb(result['peak_rss']):>7}  {verdict(ok)}\n"
                f"    {result['outcome'][:150]}"
            )


if __name__ == "__main__":
    main()
