"""A DICOM series to NIfTI, with dcm2niix (the binary the ``dcm2niix`` wheel ships).

:func:`convert_series` gives dcm2niix only the series' files (linked into a private
staging folder, so other series beside them are never converted by accident), writes
gzipped NIfTI and a JSON sidecar (BIDS fields, identifying fields stripped by
dcm2niix's default anonymisation) under a file name the caller chooses, and moves them
into the output folder only when dcm2niix succeeded. Volumes of one series at the same
positions (a time series, a diffusion series) become one 4D NIfTI, the frames in
acquisition order. A failure, a timeout or an empty result is a
:class:`ConversionError` naming the series, with dcm2niix's last lines of output.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import dcm2niix

from miqa_nb.core.errors import MiqaError
from miqa_nb.ingest.dicom import Series

__all__ = ["DCM2NIIX", "ConversionError", "Converted", "convert_series"]

#: The dcm2niix program: the binary inside the ``dcm2niix`` wheel.
DCM2NIIX: str = dcm2niix.bin

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,120}")


class ConversionError(MiqaError, OSError):
    """A DICOM series could not be converted to NIfTI; nothing was written."""


@dataclass(frozen=True)
class Converted:
    """What one series became: its NIfTI files (the main one first) and sidecars.

    dcm2niix writes more than one image when a series holds images it will not stack
    (several echoes, magnitude and phase): ``images[0]`` is ``NAME.nii.gz``, the others
    carry dcm2niix's suffixes (``NAME_e2.nii.gz``, ``NAME_ph.nii.gz``). ``log`` is what
    dcm2niix printed.
    """

    images: tuple[Path, ...]
    sidecars: tuple[Path, ...]
    log: str


def _describe(series: Series) -> str:
    what = f"series {series.scan_id}"
    if series.description:
        what += f" ({series.description!r})"
    return what


def _tail(text: str, lines: int = 12) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def convert_series(
    series: Series,
    folder: str | Path,
    name: str,
    *,
    sidecar: bool = True,
    timeout: float = 600.0,
) -> Converted:
    """Convert one DICOM series to gzipped NIfTI ``folder/NAME.nii.gz``.

    Parameters
    ----------
    series : Series
        The series (from :func:`~miqa_nb.ingest.dicom.read_sessions`).
    folder : str or Path
        Where the NIfTI (and sidecar) go; created if missing.
    name : str
        The file name without extension: letters, digits, ``.``, ``_``, ``-``.
    sidecar : bool
        Also write dcm2niix's JSON sidecar ``NAME.json`` (acquisition parameters).
    timeout : float
        Seconds dcm2niix may run before it is stopped.

    Returns
    -------
    Converted
        The images written (main one first) and their sidecars.

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
        staged, written = Path(work, "in"), Path(work, "out")
        staged.mkdir()
        written.mkdir()
        for i, path in enumerate(series.files):
            os.symlink(Path(path).resolve(), staged / f"{i:06d}.dcm")
        command = [DCM2NIIX, "-z", "y", "-b", "y" if sidecar else "n", "-f", name]
        command += ["-o", str(written), "-w", "1", "-d", "0", str(staged)]
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
        images = sorted(written.glob("*.nii.gz"), key=lambda p: (p.name != f"{name}.nii.gz", p))
        if done.returncode != 0 or not images:
            raise ConversionError(
                f"dcm2niix could not convert {_describe(series)} "
                f"({len(series.files)} files; exit status {done.returncode}); nothing was "
                f"written. Its last words:\n{_tail(log)}"
            )
        sidecars = sorted(written.glob("*.json"))
        moved_images = tuple(Path(shutil.move(p, out / p.name)) for p in images)
        moved_sidecars = tuple(Path(shutil.move(p, out / p.name)) for p in sidecars)
    return Converted(moved_images, moved_sidecars, log)
