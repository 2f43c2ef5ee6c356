"""Benchmark: a DICOM session uploaded to the import service, end to end, against dcm2niix.

Usage::

    .venv/bin/python benchmarks/bench_ingest.py [--repeat K] [--large-mb M] [--keep]
    .venv/bin/python benchmarks/bench_ingest.py --quick   # 3 repeats, a 300 MB large upload

A three-series session of about 500 DICOM files is written from real anatomy (the
MNI152 template at 1 mm, cropped to 170 x 200 x 170 voxels, one file per slice:
T1, T2 and FLAIR series of 170 slices each) into a temporary folder outside the
repository, and zipped (stored, as scanners' exports often are). A real signed-in
server (:func:`miqa_nb.serve.start`) serves a fresh catalog.

**The import, as a person waits for it**, ``K`` runs alternating, medians:

- the baseline: dcm2niix run directly on the three series' folders, one after the
  other, as a person gets gzipped NIfTI from it (``-z y -b y``: gzip, a sidecar, one
  file per series), into a new folder each run. (The import itself runs dcm2niix with
  ``-z n`` and gzips each frame with isal, several series at once: the same files,
  written faster.)
- the second baseline, the same start as the service's: the zip unpacked (``unzip -q``;
  Python's ``zipfile`` in a child interpreter where ``unzip`` is not installed, as on a
  fresh machine, whose ``scripts/system-packages.sh`` installs only Chromium) and then
  dcm2niix on the three series' folders as above, in one timed shell process, into a
  new folder each run. dcm2niix alone starts from files already on disk, the service
  from a zip arriving over HTTP: the issue's target is printed against the first
  baseline as written, and beside it against this one, each with its own verdict.
- the upload: ``requests.post`` of the zip as the body (``inbody=true``) to
  ``data/services/import?dest=/archive/projects/P/subjects/S/experiments/E<run>`` (a new
  session label each run), from the first byte sent until the answer (200): receiving,
  unpacking, reading the headers, converting, archiving. Target <= 1.3x the baseline.
  Files/s and MB/s of both are printed.

**Where the upload's time goes**: the same stages timed in this process on the same
zip, after each upload (so under the same load; what set-up made is frozen out of the
garbage collector's reach, as the server freezes what its start-up made), medians: unpacking (``ingest.archives.unpack``), the headers
(``read_sessions``), the conversion (``convert_all``, the series at once) and the
catalog (the rest of ``archive_sessions``: checks, moving the frames, the import); what
the end-to-end median has beyond their sum is the upload itself and the server's
handling around them.

**The server's memory during a large upload**: a session of ``M`` MB (the same slices
as more series, each with a series UID of its own) is uploaded while the server
process's RSS is sampled every 50 ms; its peak above the idle RSS (measured just before)
is printed against a target of 300 MB. dcm2niix runs as a child process and is not
counted; the server's kernels are other processes and are not counted.

Every figure is printed beside its target with PASS or MISS; nothing is asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import psutil
import requests
from _common import Figure, against, machine, mb, row

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from dicom_support import write_series

from miqa_nb.catalog import Catalog
from miqa_nb.ingest import archiving
from miqa_nb.ingest.archives import UploadLimits, unpack
from miqa_nb.ingest.convert import DCM2NIIX
from miqa_nb.ingest.dicom import read_sessions
from miqa_nb.serve import Server, start

ADMIN = "admin"
PASSWORD = "a benchmark's passphrase"
PROJECT = "Scanner"
RATIO = 1.3  # x dcm2niix alone
PEAK_ABOVE_IDLE = 300e6
SERIES = (("t1_mprage_sag", 2), ("t2_tse_tra", 3), ("t2_flair_tra", 4))


def template() -> nib.Nifti1Image:
    """The MNI152 template at 1 mm cropped to 170 x 200 x 170, as a scanner stores it."""
    from nilearn.datasets import load_mni152_template

    img = load_mni152_template(resolution=1)
    start = np.array([12, 15, 10])
    i, j, k = start
    block = np.asarray(img.dataobj, dtype=np.float64)[i : i + 170, j : j + 200, k : k + 170]
    data = np.rint(block / block.max() * 1000).astype(np.int16)
    affine = img.affine.copy()
    affine[:3, 3] = img.affine[:3, :3] @ start + img.affine[:3, 3]
    return nib.Nifti1Image(data, affine)


def write_session(folder: Path, img: nib.Nifti1Image) -> list[Path]:
    """The three series, one folder each; returns the folders."""
    study = "1.2.826.0.1.3680043.8.498.20240611"
    comments = f"Project:{PROJECT} Subject:B1 Session:B1_MR"
    folders = []
    for description, number in SERIES:
        out = folder / f"s{number}"
        write_series(
            img, out, study_uid=study, SeriesNumber=number,
            SeriesDescription=description, PatientComments=comments,
        )  # fmt: skip
        folders.append(out)
    return folders


def zip_folders(folders: list[Path], archive: Path, copies: int = 1) -> int:
    """Zip the series' files (stored); with ``copies`` > 1 each series is repeated as new
    series (its SeriesInstanceUID replaced by one of the same length; the import names
    series of the same SeriesNumber ``2``, ``2-1``...). Returns the files written."""
    count = 0
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        for copy in range(copies):
            for folder in folders:
                files = sorted(folder.glob("*.dcm"))
                uid = _series_uid(files[0])
                new = uid if copy == 0 else _same_length_uid(uid, copy)
                for path in files:
                    data = path.read_bytes()
                    if copy:
                        data = data.replace(uid, new)
                    zf.writestr(f"c{copy}/{folder.name}/{path.name}", data)
                    count += 1
    return count


def _series_uid(path: Path) -> bytes:
    import pydicom

    return str(pydicom.dcmread(path, stop_before_pixels=True).SeriesInstanceUID).encode()


def _same_length_uid(uid: bytes, copy: int) -> bytes:
    tail = str(copy).encode()
    return uid[: len(uid) - len(tail)] + tail


def dcm2niix(folders: list[Path], out: Path) -> tuple[float, int]:
    """Convert each series folder as the import does; return the seconds and the
    highest peak RSS of the dcm2niix processes."""
    began, peak = time.perf_counter(), 0
    for folder in folders:
        target = out / folder.name
        target.mkdir(parents=True)
        command = [DCM2NIIX, "-z", "y", "-b", "y", "-f", "scan", "-o", str(target)]
        child = subprocess.Popen(
            [*command, "-w", "1", "-d", "0", str(folder)], stdout=subprocess.DEVNULL
        )
        with Sampler(child.pid) as sampler:  # not ru_maxrss: Linux carries the parent's
            child.wait()
        if child.returncode != 0:
            raise RuntimeError(f"dcm2niix failed on {folder} (exit {child.returncode})")
        peak = max(peak, sampler.peak)
    return time.perf_counter() - began, peak


class Sampler:
    """The peak RSS of a process, sampled every 50 ms in a thread."""

    def __init__(self, pid: int, *, children: bool = False) -> None:
        self.process = psutil.Process(pid)
        self.children = children  # the sum of it and its children's
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(0.05)

    def _sample(self) -> None:
        with contextlib.suppress(psutil.Error):  # ended, or a zombie not yet reaped
            rss = self.process.memory_info().rss
            for child in self.process.children(recursive=True) if self.children else ():
                with contextlib.suppress(psutil.Error):
                    rss += child.memory_info().rss
            self.peak = max(self.peak, rss)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


#: The second baseline's shell script: ``$1`` the zip, ``$2`` a new folder, ``$3`` the
#: unpacking command's words before the zip (``unzip -q`` or ``python -m zipfile -e``),
#: ``$4`` dcm2niix.
UNZIP_THEN_DCM2NIIX = r"""
set -e
zip="$1"; out="$2"; unpack="$3"; convert="$4"
mkdir -p "$out/files"
if [ "$unpack" = unzip ]; then unzip -q "$zip" -d "$out/files"
else "$unpack" -m zipfile -e "$zip" "$out/files"; fi
for series in "$out"/files/*/*/; do
  name=$(basename "$series")
  mkdir -p "$out/nifti/$name"
  "$convert" -z y -b y -f scan -o "$out/nifti/$name" -w 1 -d 0 "$series" >/dev/null
done
"""


def unpacker() -> str:
    """``unzip`` when installed, else this Python (its ``zipfile`` module)."""
    return "unzip" if shutil.which("unzip") else sys.executable


def unzip_then_dcm2niix(archive: Path, out: Path) -> tuple[float, int]:
    """The zip unpacked, then each series converted as :func:`dcm2niix` does, in one
    shell process; return its seconds and the peak RSS of it and its children."""
    began = time.perf_counter()
    command = ["sh", "-c", UNZIP_THEN_DCM2NIIX, "sh", str(archive), str(out), unpacker(), DCM2NIIX]
    child = subprocess.Popen(command)
    with Sampler(child.pid, children=True) as sampler:
        child.wait()
    seconds = time.perf_counter() - began
    if child.returncode != 0:
        raise RuntimeError(f"unzip and dcm2niix failed on {archive} (exit {child.returncode})")
    if len(list(out.glob("nifti/*/scan.nii.gz"))) != len(SERIES):
        raise RuntimeError(f"unzip and dcm2niix did not write one image per series in {out}")
    return seconds, sampler.peak


def upload(server: Server, archive: Path, label: str) -> tuple[float, int]:
    """Send ``archive`` as experiment ``label``; return the seconds and the server's peak
    RSS meanwhile."""
    dest = f"/archive/projects/{PROJECT}/subjects/B1/experiments/{label}"
    url = f"{server.url}data/services/import?inbody=true&dest={dest}"
    with Sampler(server.process.pid) as sampler, open(archive, "rb") as body:
        began = time.perf_counter()
        answer = requests.post(url, data=body, auth=(ADMIN, PASSWORD), timeout=3600)
        seconds = time.perf_counter() - began
    if answer.status_code != 200:
        raise RuntimeError(f"the upload {label} was answered {answer.status_code}: {answer.text}")
    return seconds, sampler.peak


STAGES = ("unpack", "headers", "convert", "catalog")


def cpu_seconds() -> float:
    """CPU seconds (user and system) of this process and its ended children so far."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class Clock:
    """Wall and CPU seconds of named stages."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        wall, cpu = time.perf_counter(), cpu_seconds()
        try:
            yield
        finally:
            self.wall[name] = self.wall.get(name, 0.0) + time.perf_counter() - wall
            self.cpu[name] = self.cpu.get(name, 0.0) + cpu_seconds() - cpu


def stages(catalog_path: Path, archive: Path, folder: Path, label: str) -> Clock:
    """The import's stages on ``archive``, in this process: their wall and CPU seconds
    (the catalog's: archiving's, less its conversion's)."""
    catalog = Catalog(catalog_path)
    clock = Clock()
    convert_all = archiving.convert_all

    def timed_convert(*args: Any, **kwargs: Any) -> Any:
        with clock.stage("convert"):
            return convert_all(*args, **kwargs)

    with clock.stage("unpack"):
        unpack(archive, folder, UploadLimits())
    with clock.stage("headers"):
        sessions = read_sessions(folder, session=label, scan_types=catalog.scan_types())
    archiving.convert_all = timed_convert  # type: ignore[assignment]
    try:
        with clock.stage("catalog"):
            archiving.archive_sessions(catalog, sessions, by=ADMIN)
    finally:
        archiving.convert_all = convert_all  # type: ignore[assignment]
    for table in (clock.wall, clock.cpu):
        table["catalog"] -= table["convert"]
    return clock


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--large-mb", type=int, default=1000, help="the large upload's size")
    parser.add_argument("--quick", action="store_true", help="3 repeats, a 300 MB large upload")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeat, args.large_mb = 3, 300
    root = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    server: Server | None = None
    try:
        folders = write_session(root / "dicom", template())
        archive = root / "session.zip"
        n_files = zip_folders(folders, archive)
        size = sum(p.stat().st_size for f in folders for p in f.glob("*.dcm"))
        print(f"session: {n_files} DICOM files in 3 series, {mb(size)} ({root})")
        catalog = Catalog(root / "c.duckdb")
        catalog.add_user(ADMIN, superuser=True)
        catalog.set_password(ADMIN, PASSWORD, by=ADMIN)
        catalog.create_project(PROJECT, by=ADMIN)
        server = start(root / "c.duckdb", log=root / "server.log", pool_size=1)
        server.wait_ready(timeout=300)
        # as the server does once warmed up: what set-up made (the template, nibabel,
        # pandas...) is not walked again by each full collection during the stages
        gc.collect()
        gc.freeze()

        base, sent = Figure("dcm2niix alone (3 series)"), Figure("upload to archive (end to end)")
        unzipped = Figure(f"{Path(unpacker()).name} + dcm2niix (one shell)")
        parts: dict[str, list[float]] = {name: [] for name in STAGES}
        cpu: dict[str, list[float]] = {name: [] for name in STAGES}
        for i in range(args.repeat):
            began = cpu_seconds()
            seconds, peak = dcm2niix(folders, root / f"nifti{i}")
            base.runs.append({"seconds": seconds, "peak_rss": peak, "cpu": cpu_seconds() - began})
            seconds, peak = unzip_then_dcm2niix(archive, root / f"unzipped{i}")
            unzipped.runs.append({"seconds": seconds, "peak_rss": peak})
            seconds, peak = upload(server, archive, f"B1_MR{i}")
            sent.runs.append({"seconds": seconds, "peak_rss": peak})
            clock = stages(root / "c.duckdb", archive, root / f"stage{i}", f"B1_STAGE{i}")
            for name in STAGES:
                parts[name].append(clock.wall[name])
                cpu[name].append(clock.cpu[name])
            print(f"  .. run {i + 1}/{args.repeat}: dcm2niix {base.runs[-1]['seconds']:.2f} s, "
                  f"unzip + dcm2niix {unzipped.runs[-1]['seconds']:.2f} s, "
                  f"upload {seconds:.2f} s", file=sys.stderr, flush=True)  # fmt: skip
        scans = catalog.scans(PROJECT)
        assert len(scans) == 2 * 3 * args.repeat, scans
        print(f"\n{machine()}")
        print(row(base))
        print(row(unzipped))
        print(row(sent, base, RATIO))
        ratio = sent.median / unzipped.median
        print(f"  the same target against the second baseline (the zip unpacked, then "
              f"dcm2niix): {ratio:.2f}x  {against(ratio, RATIO, 'x')}")  # fmt: skip
        print("  (dcm2niix alone starts from files already on disk; the service, and the "
              "second baseline, from the zip)")  # fmt: skip
        for figure in (base, unzipped, sent):
            print(f"  {figure.name}: {n_files / figure.median:6.0f} files/s, "
                  f"{size / 1e6 / figure.median:6.1f} MB/s")  # fmt: skip
        medians = {name: statistics.median(values) for name, values in parts.items()}
        print("\nwhere the upload's time goes (the stages in this process, medians):")
        for name in STAGES:
            print(f"  {name:<8} {medians[name]:.3f} s  "
                  f"[{' '.join(f'{v:.2f}' for v in parts[name])}]  "
                  f"CPU {statistics.median(cpu[name]):.3f} s")  # fmt: skip
        base_cpu = statistics.median(run["cpu"] for run in base.runs)
        stages_cpu = sum(statistics.median(values) for values in cpu.values())
        print(f"  CPU seconds, less sensitive to the machine's load: dcm2niix alone "
              f"{base_cpu:.3f} s, the stages {stages_cpu:.3f} s ({stages_cpu / base_cpu:.2f}x)")  # fmt: skip
        print(f"  the upload itself and the server around the stages: "
              f"{sent.median - sum(medians.values()):.3f} s (end to end minus their sum)")  # fmt: skip

        copies = max(1, round(args.large_mb * 1e6 / size))
        large = root / "large.zip"
        n_large = zip_folders(folders, large, copies)
        shutil.rmtree(root / "dicom")
        idle = psutil.Process(server.process.pid).memory_info().rss
        seconds, peak = upload(server, large, "B1_LARGE")
        print(f"\nlarge upload: {n_large} files in {3 * copies} series, "
              f"{mb(large.stat().st_size)}, {seconds:.1f} s "
              f"({large.stat().st_size / 1e6 / seconds:.1f} MB/s)")  # fmt: skip
        print(f"  server RSS idle {mb(idle)}, peak {mb(peak)}, above idle {mb(peak - idle)}  "
              f"{against((peak - idle) / 1e6, PEAK_ABOVE_IDLE / 1e6, ' MB')}")  # fmt: skip
    finally:
        if server is not None:
            server.stop()
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
