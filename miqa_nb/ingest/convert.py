"""A DICOM series to NIfTI frames, with dcm2niix (the binary the ``dcm2niix`` wheel ships).

:func:`convert_series` gives dcm2niix only the series' files (their folder when it
holds nothing else, as in most scanner exports; otherwise links to them in a private
staging folder, so other series beside them are never converted by accident), lets it
write uncompressed NIfTI and a JSON sidecar (BIDS fields, identifying fields stripped
by dcm2niix's default anonymisation) under a file name the caller chooses, and turns
every volume into one gzipped 3D NIfTI *frame* (gzip by isal, several times faster
than dcm2niix's own zlib for files a few percent larger), moved into the output folder
only when everything succeeded. A failure, a timeout or an empty result is a
:class:`ConversionError` naming the series, with dcm2niix's last lines of output.
:func:`convert_all` converts several series at once, one dcm2niix per CPU.

**Frames.** Volumes of one series at the same positions (a time series, a diffusion
series, an enhanced multi-frame file with several temporal positions) are one 4D image
for dcm2niix, its volumes in acquisition order; each volume becomes the frame
``NAME_f000.nii.gz``, ``NAME_f001.nii.gz``... (3D, with the 4D image's header and
affine, the same voxel bytes). A 3D image is the single frame ``NAME.nii.gz``. When
dcm2niix writes several images for a series (echoes it will not stack, magnitude and
phase: ``NAME_e2``, ``NAME_ph``), each is split the same way and the frames follow in
image order: the image named ``NAME`` first, then the others by name, so a magnitude
and phase pair is two frames (magnitude first) and a 4D multi-echo series the first
echo's volumes, then the second's.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import dcm2niix
import nibabel as nib
from isal import igzip
from nibabel.spatialimages import HeaderDataError

from miqa_nb.core.errors import MiqaError
from miqa_nb.ingest.dicom import Series

__all__ = ["DCM2NIIX", "ConversionError", "Converted", "convert_all", "convert_series"]

#: The dcm2niix program: the binary inside the ``dcm2niix`` wheel.
DCM2NIIX: str = dcm2niix.bin

#: isal's gzip level for frames (0-3): level 2 deflates a 12 MB volume in about 13 ms,
#: within 5 % of zlib's level 6 in size (dcm2niix's own gzip takes 15 times longer).
GZIP_LEVEL = 2

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,120}")
_SIDECARS = ("*.json", "*.bval", "*.bvec")


class ConversionError(MiqaError, OSError):
    """A DICOM series could not be converted to NIfTI; nothing was written."""


@dataclass(frozen=True)
class Converted:
    """What one series became: its frames (3D gzipped NIfTI, in frame order) and sidecars.

    ``sidecars`` are dcm2niix's JSON (and, for diffusion, ``.bval``/``.bvec``) files,
    one set per image it wrote (see the module's note on frames). ``log`` is what
    dcm2niix printed.
    """

    frames: tuple[Path, ...]
    sidecars: tuple[Path, ...]
    log: str

    @property
    def images(self) -> tuple[Path, ...]:
        """The frames (the name this held when each of dcm2niix's images was one file)."""
        return self.frames


def _describe(series: Series) -> str:
    what = f"series {series.scan_id}"
    if series.description:
        what += f" ({series.description!r})"
    return what


def _tail(text: str, lines: int = 12) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _sole_folder(files: Sequence[Path]) -> Path | None:
    """The folder holding ``files`` when it holds nothing else (a series per folder, as
    scanners export), so dcm2niix can read it as it is; None otherwise."""
    folders = {Path(f).parent for f in files}
    if len(folders) != 1:
        return None
    (folder,) = folders
    try:
        names = os.listdir(folder)
    except OSError:
        return None
    if len(names) != len(files) or set(names) != {Path(f).name for f in files}:
        return None
    return folder


def _volumes(image: Path) -> Iterator[tuple[str, bytes]]:
    """The frames of an uncompressed NIfTI as (name, file bytes): itself when 3D, else
    one 3D file per volume (header with the 3D shape, same extensions and affine, the
    volume's voxel bytes)."""
    raw = image.read_bytes()
    header = nib.Nifti1Header.from_fileobj(io.BytesIO(raw), check=True)
    shape = header.get_data_shape()
    stem = image.name.removesuffix(".nii")
    volumes = 1
    for extent in shape[3:]:
        volumes *= int(extent)
    if len(shape) <= 3 or volumes == 1:
        yield f"{stem}.nii.gz", raw
        return
    offset = int(header.get_data_offset())
    size = header.get_data_dtype().itemsize * int(shape[0]) * int(shape[1]) * int(shape[2])
    if len(raw) < offset + volumes * size:
        raise ValueError(f"{image.name} is shorter than its {volumes} volumes")
    frame = header.copy()
    frame.set_data_shape(shape[:3])
    prefix = frame.binaryblock + raw[len(frame.binaryblock) : offset]  # then extensions
    for t in range(volumes):
        yield f"{stem}_f{t:03d}.nii.gz", prefix + raw[offset + t * size : offset + (t + 1) * size]


def _order(name: str, main: str) -> tuple[bool, str]:
    return (name != main, name)


def convert_series(
    series: Series,
    folder: str | Path,
    name: str,
    *,
    sidecar: bool = True,
    timeout: float = 600.0,
) -> Converted:
    """Convert one DICOM series to gzipped 3D NIfTI frames ``folder/NAME[_fNNN].nii.gz``.

    Parameters
    ----------
    series : Series
        The series (from :func:`~miqa_nb.ingest.dicom.read_sessions`).
    folder : str or Path
        Where the NIfTI frames (and sidecars) go; created if missing.
    name : str
        The file name without extension: letters, digits, ``.``, ``_``, ``-``.
    sidecar : bool
        Also write dcm2niix's JSON sidecar ``NAME.json`` (acquisition parameters).
    timeout : float
        Seconds dcm2niix may run before it is stopped.

    Returns
    -------
    Converted
        The frames written (in frame order, see the module's note) and the sidecars.

    Raises
    ------
    ConversionError
        When dcm2niix fails, runs out of time or writes no image; a file of that name
        already in ``folder`` is refused too. Nothing is left in ``folder``.
    """
    if not _NAME.fullmatch(name):
        raise ConversionError(
            f"NIfTI file name must be letters, digits, '.', '_' or '-' (at most 121, "
            f"starting with a letter or digit); {name!r} was provided"
        )
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    if any(out.glob(f"{name}.*")) or any(out.glob(f"{name}_*")):
        raise ConversionError(
            f"cannot convert {_describe(series)}: files named {name!r} are already in "
            f"{str(out)!r}; choose another name or remove them"
        )
    if not series.files:
        raise ConversionError(f"cannot convert {_describe(series)}: it has no files")
    with tempfile.TemporaryDirectory(prefix=".dcm2niix-", dir=out) as work:
        staged, written, ready = Path(work, "in"), Path(work, "out"), Path(work, "ready")
        for made in (staged, written, ready):
            made.mkdir()
        source = _sole_folder(series.files)
        if source is None:  # other files beside them: dcm2niix gets links to these only
            source = staged
            for i, path in enumerate(series.files):
                os.symlink(Path(path).resolve(), staged / f"{i:06d}.dcm")
        command = [DCM2NIIX, "-z", "n", "-b", "y" if sidecar else "n", "-f", name]
        command += ["-o", str(written), "-w", "1", "-d", "0", str(source)]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            raise ConversionError(
                f"converting {_describe(series)} to NIfTI took longer than {timeout:g} s "
                "and was stopped; nothing was written"
            ) from None
        except OSError as exc:
            raise ConversionError(
                f"cannot run dcm2niix ({DCM2NIIX}) to convert {_describe(series)}: {exc}; "
                "reinstall the dcm2niix package"
            ) from None
        log = (done.stdout or "") + (done.stderr or "")
        images = sorted(written.glob("*.nii"), key=lambda p: _order(p.name, f"{name}.nii"))
        if done.returncode != 0 or not images:
            raise ConversionError(
                f"dcm2niix could not convert {_describe(series)} "
                f"({len(series.files)} files; exit status {done.returncode}); nothing was "
                f"written. Its last words:\n{_tail(log)}"
            )
        frames = []
        try:
            for image in images:
                for frame_name, data in _volumes(image):
                    (ready / frame_name).write_bytes(igzip.compress(data, GZIP_LEVEL))
                    frames.append(frame_name)
        except (OSError, ValueError, HeaderDataError) as exc:
            raise ConversionError(
                f"dcm2niix wrote NIfTI for {_describe(series)} that cannot be split into "
                f"frames ({exc}); nothing was written"
            ) from None
        sidecars = sorted(p for pattern in _SIDECARS for p in written.glob(pattern))
        moved_frames = tuple(Path(shutil.move(ready / f, out / f)) for f in frames)
        moved_sidecars = tuple(Path(shutil.move(p, out / p.name)) for p in sidecars)
    return Converted(moved_frames, moved_sidecars, log)


def convert_all(
    jobs: Sequence[tuple[Series, str | Path, str]],
    *,
    workers: int | None = None,
    sidecar: bool = True,
    timeout: float = 600.0,
) -> list[Converted]:
    """Convert several series at once: :func:`convert_series` for each job.

    Parameters
    ----------
    jobs : sequence of (Series, folder, name)
        What :func:`convert_series` takes, one tuple per series.
    workers : int, optional
        How many series convert at the same time (dcm2niix processes and gzip threads);
        the number of CPUs this process may use by default.
    sidecar, timeout
        As for :func:`convert_series`.

    Returns
    -------
    list of Converted
        In the order of ``jobs``.

    Raises
    ------
    ConversionError
        The first series that failed; the series not yet started are not converted,
        and the frames and sidecars of those that were are removed again.
    """
    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
        workers = workers or os.cpu_count() or 1
    if len(jobs) <= 1 or workers <= 1:
        done: list[Converted] = []
        try:
            for series, folder, name in jobs:
                done.append(convert_series(series, folder, name, sidecar=sidecar, timeout=timeout))
        except BaseException:
            _remove(done)
            raise
        return done
    with ThreadPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
        futures: list[Future[Converted]] = [
            pool.submit(convert_series, s, f, n, sidecar=sidecar, timeout=timeout)
            for s, f, n in jobs
        ]
        wait(futures, return_when=FIRST_EXCEPTION)
        failed = next((f for f in futures if f.done() and f.exception() is not None), None)
        if failed is None:
            return [f.result() for f in futures]
        for future in futures:
            future.cancel()
        wait(futures)
        _remove([f.result() for f in futures if not f.cancelled() and f.exception() is None])
        raise failed.exception()  # type: ignore[misc]


def _remove(converted: list[Converted]) -> None:
    for one in converted:
        for path in (*one.frames, *one.sidecars):
            path.unlink(missing_ok=True)
